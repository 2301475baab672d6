//! What a release is asked to hold, as one digest: the chart (its reference, and for a
//! chart on the worker its files), the values and the step asking. Every upgrade stores it
//! as a release label, so a retried upgrade can tell that the release's current revision
//! is what this very step already made, and make no new revision. Rollbacks copy the
//! target revision's labels, so the label always describes the revision it is on.

use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Chart, HelmError};

/// The release label holding the digest.
pub(crate) const DESIRED_LABEL: &str = "windlass-desired";

/// The digest of `chart` with `values` asked by `step`, short enough for a label value
/// (40 hex digits).
pub(crate) fn desired_digest(
    chart: &Chart,
    values: &impl Serialize,
    step: Option<&str>,
) -> Result<String, HelmError> {
    let mut hash = Sha256::new();
    hash.update(b"step\0");
    hash.update(step.unwrap_or("").as_bytes());
    hash.update(b"\0chart\0");
    let reference = serde_json::to_value(chart)
        .map_err(|e| HelmError::Output(format!("chart reference: {e}")))?;
    hash.update(canonical(&reference).as_bytes());
    if let Chart::Local(path) = chart {
        hash_files(&mut hash, path, path)
            .map_err(|e| HelmError::Output(format!("reading chart {}: {e}", path.display())))?;
    }
    let values =
        serde_json::to_value(values).map_err(|e| HelmError::Output(format!("values: {e}")))?;
    hash.update(b"\0values\0");
    hash.update(canonical(&values).as_bytes());
    let digest = hash.finalize();
    Ok(digest[..20].iter().map(|b| format!("{b:02x}")).collect())
}

/// JSON with every object's keys sorted, whatever map type produced it.
fn canonical(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::Value::from(k.as_str()),
                        canonical(&map[k])
                    )
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        serde_json::Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// Every file under `path` (or `path` itself, a packaged chart), by relative name and
/// content, in a fixed order.
fn hash_files(hash: &mut Sha256, root: &Path, path: &Path) -> std::io::Result<()> {
    if path.is_file() {
        let relative = path.strip_prefix(root).unwrap_or(path);
        hash.update(b"\0file\0");
        hash.update(relative.to_string_lossy().as_bytes());
        hash.update(b"\0");
        hash.update(std::fs::read(path)?);
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(path)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for entry in entries {
        hash_files(hash, root, &entry)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_follows_values_and_chart_files_not_key_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Chart.yaml"), "name: app\nversion: 0.1.0\n").unwrap();
        let chart = Chart::Local(dir.path().to_owned());
        let a: std::collections::HashMap<&str, i32> = [("x", 1), ("y", 2), ("z", 3)].into();
        let b = serde_json::json!({"z": 3, "y": 2, "x": 1});
        let first = desired_digest(&chart, &a, None).unwrap();
        assert_eq!(first.len(), 40);
        assert_eq!(first, desired_digest(&chart, &b, None).unwrap());
        assert_ne!(
            first,
            desired_digest(&chart, &serde_json::json!({"x": 1}), None).unwrap()
        );
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        std::fs::write(dir.path().join("templates/a.yaml"), "kind: ConfigMap\n").unwrap();
        assert_ne!(first, desired_digest(&chart, &a, None).unwrap());
        // Another step asking for the same is another request.
        assert_ne!(
            desired_digest(&chart, &a, Some("deploy-1/run/deploy/web")).unwrap(),
            desired_digest(&chart, &a, Some("deploy-2/run/deploy/web")).unwrap()
        );
    }
}
