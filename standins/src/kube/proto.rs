//! Request bodies in the Kubernetes protobuf encoding, for the kinds that arrive
//! that way from the clients Windlass runs (helm's release Secrets and ConfigMaps,
//! `kubectl create namespace`).
//!
//! client-go's typed clientsets send built-in kinds as
//! `application/vnd.kubernetes.protobuf` (kubernetes/kubernetes#125314), and
//! only fall back to JSON on a `415` for CBOR, not protobuf. Helm stores
//! releases through such a clientset (Secrets; ConfigMaps with the configmap
//! driver), so those two kinds are decoded here; every other kind reaches the
//! stand-in as JSON through the dynamic client. Replies are always JSON, which
//! those clients accept too.

use base64::Engine as _;
use serde_json::{Map, Value, json};

const MAGIC: &[u8] = b"k8s\0";

/// Decodes a `k8s\0`-prefixed `runtime.Unknown` envelope holding a Secret or
/// ConfigMap into its JSON form.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or("a protobuf body must start with the k8s magic prefix")?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for field in Fields::new(envelope) {
        match field? {
            (1, Wire::Bytes(type_meta)) => {
                for f in Fields::new(type_meta) {
                    match f? {
                        (1, Wire::Bytes(b)) => api_version = text(b)?,
                        (2, Wire::Bytes(b)) => kind = text(b)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(b)) => raw = b,
            _ => {}
        }
    }
    let mut obj = match kind.as_str() {
        "Secret" => secret(raw)?,
        "ConfigMap" => config_map(raw)?,
        "Namespace" => namespace(raw)?,
        other => {
            return Err(format!(
                "the stand-in decodes protobuf bodies for Secret, ConfigMap and Namespace only, not {other:?}; send JSON"
            ));
        }
    };
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

fn secret(raw: &[u8]) -> Result<Value, String> {
    let mut obj = json!({});
    for field in Fields::new(raw) {
        match field? {
            (1, Wire::Bytes(b)) => obj["metadata"] = object_meta(b)?,
            (2, Wire::Bytes(b)) => {
                let (k, v) = map_entry(b)?;
                obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(v));
            }
            (3, Wire::Bytes(b)) => obj["type"] = json!(text(b)?),
            (4, Wire::Bytes(b)) => {
                let (k, v) = map_entry(b)?;
                obj["stringData"][k] = json!(text(v)?);
            }
            (5, Wire::Varint(v)) => obj["immutable"] = json!(v != 0),
            _ => {}
        }
    }
    Ok(obj)
}

fn config_map(raw: &[u8]) -> Result<Value, String> {
    let mut obj = json!({});
    for field in Fields::new(raw) {
        match field? {
            (1, Wire::Bytes(b)) => obj["metadata"] = object_meta(b)?,
            (2, Wire::Bytes(b)) => {
                let (k, v) = map_entry(b)?;
                obj["data"][k] = json!(text(v)?);
            }
            (3, Wire::Bytes(b)) => {
                let (k, v) = map_entry(b)?;
                obj["binaryData"][k] = json!(base64::engine::general_purpose::STANDARD.encode(v));
            }
            (4, Wire::Varint(v)) => obj["immutable"] = json!(v != 0),
            _ => {}
        }
    }
    Ok(obj)
}

/// `kubectl create namespace` sends one through the typed clientset. Its spec's
/// finalizers and its status are the server's (see the store's defaulting).
fn namespace(raw: &[u8]) -> Result<Value, String> {
    let mut obj = json!({});
    for field in Fields::new(raw) {
        if let (1, Wire::Bytes(b)) = field? {
            obj["metadata"] = object_meta(b)?;
        }
    }
    Ok(obj)
}

/// The `ObjectMeta` fields a client sets; server-maintained ones (uid,
/// timestamps, managed fields) are the server's to fill in.
fn object_meta(raw: &[u8]) -> Result<Value, String> {
    let mut meta = Map::new();
    for field in Fields::new(raw) {
        let (key, value) = match field? {
            (1, Wire::Bytes(b)) => ("name", json!(text(b)?)),
            (2, Wire::Bytes(b)) => ("generateName", json!(text(b)?)),
            (3, Wire::Bytes(b)) => ("namespace", json!(text(b)?)),
            (6, Wire::Bytes(b)) => ("resourceVersion", json!(text(b)?)),
            (n @ (11 | 12), Wire::Bytes(b)) => {
                let (k, v) = map_entry(b)?;
                let which = if n == 11 { "labels" } else { "annotations" };
                let entry = meta.entry(which).or_insert_with(|| json!({}));
                entry[k] = json!(text(v)?);
                continue;
            }
            (14, Wire::Bytes(b)) => {
                let list = meta.entry("finalizers").or_insert_with(|| json!([]));
                list.as_array_mut()
                    .expect("made an array")
                    .push(json!(text(b)?));
                continue;
            }
            _ => continue,
        };
        // Proto2 emits empty strings; an empty field is an absent one.
        if value != json!("") {
            meta.insert(key.into(), value);
        }
    }
    Ok(Value::Object(meta))
}

fn map_entry(raw: &[u8]) -> Result<(String, &[u8]), String> {
    let (mut key, mut value) = (String::new(), &[][..]);
    for field in Fields::new(raw) {
        match field? {
            (1, Wire::Bytes(b)) => key = text(b)?,
            (2, Wire::Bytes(b)) => value = b,
            _ => {}
        }
    }
    Ok((key, value))
}

fn text(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "a protobuf string is not UTF-8".to_string())
}

enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// Iterates the `(field number, value)` pairs of one protobuf message.
struct Fields<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Fields<'a> {
    fn new(rest: &'a [u8]) -> Self {
        Self {
            rest,
            failed: false,
        }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for (i, byte) in self.rest.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.rest = &self.rest[i + 1..];
                return Ok(value);
            }
        }
        Err("truncated protobuf varint".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.rest.len() < n {
            return Err("truncated protobuf field".into());
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn field(&mut self) -> Result<(u64, Wire<'a>), String> {
        let tag = self.varint()?;
        let wire = match tag & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Wire::Fixed
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| "field too long")?;
                Wire::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Wire::Fixed
            }
            other => return Err(format!("unsupported protobuf wire type {other}")),
        };
        Ok((tag >> 3, wire))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Wire<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.failed {
            return None;
        }
        let field = self.field();
        self.failed = field.is_err();
        Some(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagged(field: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![((field << 3) | 2) as u8];
        out.push(payload.len() as u8);
        out.extend_from_slice(payload);
        out
    }

    fn entry(k: &str, v: &[u8]) -> Vec<u8> {
        [tagged(1, k.as_bytes()), tagged(2, v)].concat()
    }

    #[test]
    fn a_helm_release_secret_decodes_to_its_json_form() {
        let meta = [
            tagged(1, b"sh.helm.release.v1.web.v1"),
            tagged(3, b""),
            tagged(11, &entry("owner", b"helm")),
            tagged(11, &entry("status", b"deployed")),
            tagged(12, &entry("note", b"x")),
        ]
        .concat();
        let secret = [
            tagged(1, &meta),
            tagged(2, &entry("release", b"H4sI")),
            tagged(3, b"helm.sh/release.v1"),
        ]
        .concat();
        let type_meta = [tagged(1, b"v1"), tagged(2, b"Secret")].concat();
        let body = [MAGIC.to_vec(), tagged(1, &type_meta), tagged(2, &secret)].concat();
        let obj = decode(&body).unwrap();
        assert_eq!(obj["kind"], "Secret");
        assert_eq!(obj["metadata"]["name"], "sh.helm.release.v1.web.v1");
        assert!(
            obj["metadata"].get("namespace").is_none(),
            "empty means absent"
        );
        assert_eq!(
            obj["metadata"]["labels"],
            json!({"owner": "helm", "status": "deployed"})
        );
        assert_eq!(obj["metadata"]["annotations"], json!({"note": "x"}));
        assert_eq!(obj["data"]["release"], "SDRzSQ==");
        assert_eq!(obj["type"], "helm.sh/release.v1");
    }

    #[test]
    fn other_kinds_and_garbage_are_refused() {
        let type_meta = [tagged(1, b"apps/v1"), tagged(2, b"Deployment")].concat();
        let body = [MAGIC.to_vec(), tagged(1, &type_meta)].concat();
        assert!(decode(&body).unwrap_err().contains("Deployment"));
        assert!(decode(b"{}").is_err());
        assert!(decode(&[MAGIC, &[0x0a, 0x7f]].concat()).is_err());
    }
}
