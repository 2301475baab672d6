//! What a step printed, line by line: terraform's `-json` messages, helm's output.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogLine {
    pub attempt: u32,
    /// Order within the attempt.
    pub seq: u32,
    pub at: DateTime<Utc>,
    /// `info`, `warn` or `error`.
    pub level: String,
    pub line: String,
}

/// Replaces every occurrence of the given secret values with `***` before a line is kept.
/// Values shorter than 8 characters are not masked (they would mask ordinary words).
#[derive(Debug, Clone, Default)]
pub struct Masker {
    secrets: Vec<String>,
}

impl Masker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Masks `secret` (of any length) and the forms it takes in tools' output: base64
    /// (standard and URL-safe, padded or not), percent-encoded and JSON-escaped; and, for a
    /// secret of several lines (a PEM key), each of its lines, since tools print line by
    /// line.
    pub fn mask_value(&mut self, secret: impl Into<String>) {
        let secret = secret.into();
        if secret.is_empty() {
            return;
        }
        use base64::Engine as _;
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        let bytes = secret.as_bytes();
        let json = serde_json::to_string(&secret).unwrap_or_default();
        let mut forms = vec![
            secret.clone(),
            STANDARD.encode(bytes),
            STANDARD_NO_PAD.encode(bytes),
            URL_SAFE.encode(bytes),
            URL_SAFE_NO_PAD.encode(bytes),
            percent_encoded(&secret),
            json.trim_matches('"').to_owned(),
        ];
        forms.extend(
            secret
                .lines()
                .map(str::trim)
                .filter(|line| line.len() >= 8 && *line != secret)
                .map(str::to_owned),
        );
        for form in forms {
            if !form.is_empty() && !self.secrets.contains(&form) {
                self.secrets.push(form);
            }
        }
        // Longest first: a form inside another (the raw value in its JSON escape) must not
        // leave pieces of the longer one behind.
        self.secrets
            .sort_by_key(|form| std::cmp::Reverse(form.len()));
    }

    pub fn apply(&self, line: &str) -> String {
        self.secrets.iter().fold(line.to_owned(), |line, secret| {
            line.replace(secret.as_str(), "***")
        })
    }
}

/// RFC 3986 percent-encoding of everything but unreserved characters.
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_of_any_length_are_masked_in_every_form() {
        let mut masker = Masker::new();
        masker.mask_value("s3cr3t-token-value");
        masker.mask_value("pw!");
        assert_eq!(
            masker.apply("token=s3cr3t-token-value, pw!"),
            "token=***, ***"
        );
        // base64 (czNjcjN0LXRva2VuLXZhbHVl), percent- and JSON-escaped forms.
        assert_eq!(masker.apply("basic czNjcjN0LXRva2VuLXZhbHVl"), "basic ***");
        assert_eq!(masker.apply("url ?p=pw%21"), "url ?p=***");
        let mut quoted = Masker::new();
        quoted.mask_value("a\"b\\c\td");
        assert_eq!(quoted.apply(r#"{"v":"a\"b\\c\td"}"#), r#"{"v":"***"}"#);
        // A multi-line secret, printed line by line.
        let mut pem = Masker::new();
        pem.mask_value("-----BEGIN KEY-----\nMIIBVQIBADANBgkqhkiG9w0B\n-----END KEY-----");
        assert_eq!(pem.apply("  MIIBVQIBADANBgkqhkiG9w0B"), "  ***");
    }
}
