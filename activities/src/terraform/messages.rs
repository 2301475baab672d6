//! Terraform's machine-readable UI (`-json`): one JSON object per line. We read the fields
//! the runner acts on and keep each line's human message for the step log.

use serde::Deserialize;

/// One line of `terraform <command> -json`.
#[derive(Debug, Clone, PartialEq)]
pub struct TerraformMessage {
    pub level: String,
    pub message: String,
    pub kind: String,
    pub diagnostic: Option<Diagnostic>,
    pub changes: Option<ChangeSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Diagnostic {
    pub severity: String,
    pub summary: String,
    #[serde(default)]
    pub detail: String,
    /// The resource instance the diagnostic is about, where there is one.
    #[serde(default)]
    pub address: Option<String>,
}

/// The `change_summary` line of a plan or apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct ChangeSummary {
    #[serde(default)]
    pub add: u32,
    #[serde(default)]
    pub change: u32,
    #[serde(default)]
    pub remove: u32,
    #[serde(default)]
    pub import: u32,
}

#[derive(Deserialize)]
struct RawMessage {
    #[serde(rename = "@level", default)]
    level: String,
    #[serde(rename = "@message", default)]
    message: String,
    #[serde(rename = "type", default)]
    kind: String,
    diagnostic: Option<Diagnostic>,
    changes: Option<ChangeSummary>,
}

impl TerraformMessage {
    /// Parses one line; lines that are not terraform's JSON (a provider writing to stdout,
    /// the wrapper's own warnings) come back as plain `log` lines.
    pub fn parse(line: &str) -> Self {
        match serde_json::from_str::<RawMessage>(line) {
            Ok(raw) => Self {
                level: raw.level,
                message: raw.message,
                kind: raw.kind,
                diagnostic: raw.diagnostic,
                changes: raw.changes,
            },
            Err(_) => Self {
                level: "info".into(),
                message: line.to_owned(),
                kind: "log".into(),
                diagnostic: None,
                changes: None,
            },
        }
    }

    /// A line of the runner's own, told among terraform's.
    pub fn line(level: &str, message: String) -> Self {
        Self {
            level: level.to_owned(),
            message,
            kind: "log".into(),
            diagnostic: None,
            changes: None,
        }
    }

    pub fn is_error(&self) -> bool {
        self.diagnostic
            .as_ref()
            .is_some_and(|d| d.severity == "error")
    }
}

/// Who holds a state lock, as terraform prints it when it cannot take the lock.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LockInfo {
    pub id: String,
    pub path: String,
    pub operation: String,
    pub who: String,
    pub created: String,
    /// Terraform's free-form `Info`: Windlass writes its [`super::LockHolder`] there.
    pub info: String,
}

impl LockInfo {
    /// Reads the `Lock Info:` block of an "Error acquiring the state lock" diagnostic.
    pub fn from_diagnostic(diagnostic: &Diagnostic) -> Option<Self> {
        if !diagnostic.summary.contains("state lock") {
            return None;
        }
        let mut info = LockInfo::default();
        for line in diagnostic.detail.lines() {
            let Some((key, value)) = line.trim().split_once(':') else {
                continue;
            };
            let value = value.trim().to_owned();
            match key.trim() {
                "ID" => info.id = value,
                "Path" => info.path = value,
                "Operation" => info.operation = value,
                "Who" => info.who = value,
                "Created" => info.created = value,
                "Info" => info.info = value,
                _ => {}
            }
        }
        (!info.id.is_empty()).then_some(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_error_names_its_holder() {
        let line = r#"{"@level":"error","@message":"Error: Error acquiring the state lock","type":"diagnostic","diagnostic":{"severity":"error","summary":"Error acquiring the state lock","detail":"Error message: HTTP remote state already locked: ID=7a3c\nLock Info:\n  ID:        7a3c\n  Path:      clusters/c1\n  Operation: OperationTypeApply\n  Who:       windlass@worker-1\n  Version:   1.15.5\n  Created:   2026-11-24 20:00:00 +0000 UTC\n  Info:      \n\n\nTerraform acquires a state lock..."}}"#;
        let message = TerraformMessage::parse(line);
        assert!(message.is_error());
        let lock = LockInfo::from_diagnostic(message.diagnostic.as_ref().unwrap()).unwrap();
        assert_eq!(lock.id, "7a3c");
        assert_eq!(lock.operation, "OperationTypeApply");
        assert_eq!(lock.who, "windlass@worker-1");
    }

    #[test]
    fn plain_lines_are_kept_as_log_lines() {
        let message = TerraformMessage::parse("not json");
        assert_eq!(message.kind, "log");
        assert_eq!(message.message, "not json");
        assert!(!message.is_error());
    }
}
