//! What an audit entry may hold is enforced by reshaping it, never by refusing it: an entry
//! that cannot be written would let the change it records go unrecorded (a 17,000-character
//! role name, a service named `secret`). Oversized text is cut with a digest of the
//! original, so the original can still be matched; keys that name a credential are renamed
//! and their values replaced by a digest; an actor that looks like a name or an email is
//! replaced by a digest of it.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::audit::{MAX_DETAILS_BYTES, NewAuditEntry, SECRET_KEYS};

/// Longest text kept whole in a field of the details.
pub const MAX_DETAIL_TEXT: usize = 1024;
pub const MAX_ACTOR: usize = 256;
pub const MAX_RESOURCE: usize = 512;
pub const MAX_SERVICE: usize = 253;
pub const MAX_CLIENT: usize = 256;

fn digest(text: &str) -> String {
    format!("sha256:{:x}", Sha256::digest(text.as_bytes()))
}

/// `text` if it fits in `max` bytes; otherwise as much of it as fits before `…` and the
/// digest of the whole.
pub fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let tail = format!("…{}", digest(text));
    let mut end = max.saturating_sub(tail.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{tail}", &text[..end])
}

fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS.contains(&key.to_ascii_lowercase().as_str())
}

fn details(value: Value) -> Value {
    match value {
        Value::String(text) => Value::String(cut(&text, MAX_DETAIL_TEXT)),
        Value::Array(items) => Value::Array(items.into_iter().map(details).collect()),
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, inner) in map {
                let key = cut(&key, MAX_DETAIL_TEXT);
                if is_secret_key(&key) {
                    // Possibly a credential: keep that something was there, not what.
                    let seen = match &inner {
                        Value::String(text) => Value::String(digest(text)),
                        other => Value::String(digest(&other.to_string())),
                    };
                    out.insert(format!("{key}~renamed"), seen);
                } else {
                    out.insert(key, details(inner));
                }
            }
            Value::Object(out)
        }
        other => other,
    }
}

impl NewAuditEntry {
    /// The entry reshaped so that [`NewAuditEntry::validate`] accepts it, keeping every
    /// fact that can be kept.
    pub fn sanitized(mut self) -> Self {
        if self.actor.trim().is_empty() {
            "unknown".clone_into(&mut self.actor);
        }
        if self.actor.contains('@') || self.actor.chars().any(char::is_whitespace) {
            self.actor = digest(&self.actor);
        }
        self.actor = cut(&self.actor, MAX_ACTOR);
        if self.resource.trim().is_empty() {
            "unknown".clone_into(&mut self.resource);
        }
        self.resource = cut(&self.resource, MAX_RESOURCE);
        self.service = self.service.map(|s| cut(&s, MAX_SERVICE));
        self.client = self.client.map(|c| cut(&c, MAX_CLIENT));
        let mut body = match details(self.details) {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => Map::from_iter([("value".to_owned(), other)]),
        };
        if let Some(ip) = self.ip.take() {
            if ip.parse::<std::net::IpAddr>().is_ok() {
                self.ip = Some(ip);
            } else {
                body.insert("ip_unparsed".into(), Value::String(cut(&ip, 64)));
            }
        }
        let text = Value::Object(body.clone()).to_string();
        self.details = if text.len() > MAX_DETAILS_BYTES {
            serde_json::json!({
                "truncated": true,
                "bytes": text.len(),
                "sha256": digest(&text),
                "keys": body.keys().take(32).map(|k| cut(k, 64)).collect::<Vec<_>>(),
            })
        } else {
            Value::Object(body)
        };
        self
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::audit::{ActorKind, AuditResult};

    fn entry(details: Value) -> NewAuditEntry {
        NewAuditEntry::new(
            None,
            "sub-1",
            ActorKind::User,
            "access.bind_role",
            "organization:1",
            AuditResult::Failed,
            details,
        )
    }

    #[test]
    fn a_huge_role_name_is_recorded_cut_with_the_digest_of_the_whole() {
        let name = "a".repeat(17_000);
        let mut e = entry(json!({"role": {"custom": {"name": name}}}));
        e.resource = format!("role:{name}");
        let e = e.sanitized();
        e.validate().unwrap();
        assert!(e.resource.len() <= MAX_RESOURCE);
        assert!(e.resource.ends_with(&digest(&format!("role:{name}"))));
        let kept = e.details["role"]["custom"]["name"].as_str().unwrap();
        assert!(kept.len() <= MAX_DETAIL_TEXT && kept.contains(&digest(&name)));
    }

    #[test]
    fn a_key_naming_a_credential_is_renamed_and_its_value_digested() {
        let e = entry(json!({"services": {"secret": "nginx:1.27", "web": "app:2"}})).sanitized();
        e.validate().unwrap();
        assert_eq!(e.details["services"]["web"], "app:2");
        assert_eq!(
            e.details["services"]["secret~renamed"],
            digest("nginx:1.27")
        );
    }

    #[test]
    fn emails_become_digests_and_oversized_details_a_summary() {
        let mut e =
            entry(json!({"many": (0..5000).map(|i| format!("item-{i}")).collect::<Vec<_>>()}));
        e.actor = "ada@example.com".into();
        e.ip = Some("not an ip".into());
        let e = e.sanitized();
        e.validate().unwrap();
        assert!(!e.actor.contains('@'));
        assert_eq!(e.details["truncated"], true);
        assert_eq!(e.ip, None);
    }
}
