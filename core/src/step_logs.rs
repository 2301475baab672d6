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

    pub fn mask_value(&mut self, secret: impl Into<String>) {
        let secret = secret.into();
        if secret.len() >= 8 && !self.secrets.contains(&secret) {
            self.secrets.push(secret);
        }
    }

    pub fn apply(&self, line: &str) -> String {
        self.secrets.iter().fold(line.to_owned(), |line, secret| {
            line.replace(secret.as_str(), "***")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_and_short_values_left_alone() {
        let mut masker = Masker::new();
        masker.mask_value("s3cr3t-token-value");
        masker.mask_value("abc");
        assert_eq!(
            masker.apply("token=s3cr3t-token-value, abc"),
            "token=***, abc"
        );
    }
}
