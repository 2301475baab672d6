//! What `helm template` rendered, summarised without a YAML parser: helm
//! separates documents with `---` and names each one's template in a
//! `# Source:` comment; kind, name and images are read from their lines.

use serde::{Deserialize, Serialize};

/// The manifests a chart renders to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rendered {
    /// The multi-document YAML helm printed. May hold secrets from the values.
    pub manifest: String,
}

/// One rendered object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedObject {
    /// The template it came from (`agent/templates/deployment.yaml`).
    pub source: String,
    pub kind: String,
    pub name: String,
    /// Container images, in the order they appear.
    pub images: Vec<String>,
}

impl Rendered {
    pub fn objects(&self) -> Vec<RenderedObject> {
        self.manifest
            .split("\n---")
            .filter_map(|doc| {
                let mut object = RenderedObject {
                    source: String::new(),
                    kind: String::new(),
                    name: String::new(),
                    images: Vec::new(),
                };
                let mut in_metadata = false;
                for line in doc.lines() {
                    if let Some(source) = line.strip_prefix("# Source: ") {
                        object.source = source.trim().into();
                    } else if let Some(kind) = line.strip_prefix("kind:") {
                        object.kind = unquote(kind);
                    } else if line.starts_with("metadata:") {
                        in_metadata = true;
                        continue;
                    } else if let Some(image) = line
                        .trim_start()
                        .trim_start_matches("- ")
                        .strip_prefix("image:")
                    {
                        object.images.push(unquote(image));
                    }
                    if in_metadata {
                        if !line.starts_with(' ') && !line.trim().is_empty() {
                            in_metadata = false;
                        } else if let Some(name) = line.strip_prefix("  name:") {
                            object.name = unquote(name);
                        }
                    }
                }
                (!object.kind.is_empty()).then_some(object)
            })
            .collect()
    }

    /// The first object of `kind` (`Deployment`).
    pub fn find(&self, kind: &str) -> Option<RenderedObject> {
        self.objects().into_iter().find(|o| o.kind == kind)
    }
}

fn unquote(value: &str) -> String {
    value
        .trim()
        .trim_matches('"')
        .trim_matches('\'')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_name_their_kind_name_source_and_images() {
        let rendered = Rendered {
            manifest: "---\n# Source: agent/templates/serviceaccount.yaml\napiVersion: v1\nkind: ServiceAccount\n\
                       metadata:\n  name: agent\n  labels:\n    name: not-this\n\
                       ---\n# Source: agent/templates/deployment.yaml\napiVersion: apps/v1\nkind: Deployment\n\
                       metadata:\n  name: \"agent\"\nspec:\n  template:\n    spec:\n      containers:\n\
                       \x20       - name: agent\n          image: \"ghcr.io/windlass/agent:0.1.0\"\n\
                       \x20       - image: 'busybox:1.37'\n          name: sidecar\n"
                .into(),
        };
        let objects = rendered.objects();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0].kind, "ServiceAccount");
        assert_eq!(objects[0].name, "agent");
        assert!(objects[0].images.is_empty());
        let deployment = rendered.find("Deployment").unwrap();
        assert_eq!(deployment.source, "agent/templates/deployment.yaml");
        assert_eq!(
            deployment.images,
            ["ghcr.io/windlass/agent:0.1.0", "busybox:1.37"]
        );
    }
}
