//! What a release is made of (name, namespace, chart, timeout) and what helm
//! reports about it (`status -o json`, `history -o json`).

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a chart comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Chart {
    /// A chart directory or packaged `.tgz` on the worker.
    Local(PathBuf),
    /// `name` from the HTTP chart repository at `url`, pinned to `version`.
    Repository {
        url: String,
        name: String,
        version: String,
    },
    /// `oci://registry/path/chart`, pinned to `version`.
    Oci { reference: String, version: String },
}

impl Chart {
    /// The chart's positional argument of `upgrade`, `template` and `lint` (given after
    /// `--`, see `args`).
    pub(crate) fn positional(&self) -> String {
        match self {
            Self::Local(path) => path.display().to_string(),
            Self::Repository { name, .. } => name.clone(),
            Self::Oci { reference, .. } => reference.clone(),
        }
    }

    /// Where helm finds the chart and which version: flags with their values.
    pub(crate) fn flags(&self) -> Vec<String> {
        match self {
            Self::Local(_) => Vec::new(),
            Self::Repository { url, version, .. } => {
                vec![format!("--repo={url}"), format!("--version={version}")]
            }
            Self::Oci { version, .. } => vec![format!("--version={version}")],
        }
    }
}

/// A release to install or upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub name: String,
    pub namespace: String,
    pub chart: Chart,
    /// How long helm waits for the release's resources to become ready.
    pub timeout: Duration,
    /// Whether helm itself waits for the resources (and rolls back on timeout). False:
    /// helm applies and returns, and the caller watches the rollout.
    pub wait: bool,
    /// The step asking (workflow run and activity), if any. An upgrade finding the release
    /// at a deployed revision that this step made with the same chart and values is a
    /// no-op: a retry of the step makes no second revision. Another step's identical
    /// request still makes one (each deployment is its own revision; maintenance
    /// re-applies).
    #[serde(default)]
    pub step: Option<String>,
    /// Whether Windlass owns every field of the release's objects: server-side apply then
    /// takes fields another manager changed back (`--force-conflicts`), as a policy
    /// add-on's edits to a chart Windlass installs are not the chart's intent. False (a
    /// user's chart): such a conflict fails, naming the other manager.
    #[serde(default)]
    pub force_conflicts: bool,
}

/// `info.status` of a release revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReleaseStatus {
    Unknown,
    Deployed,
    Uninstalled,
    Superseded,
    Failed,
    Uninstalling,
    PendingInstall,
    PendingUpgrade,
    PendingRollback,
    #[serde(untagged)]
    Other(String),
}

impl ReleaseStatus {
    /// A helm operation started on this revision and has not finished: it is
    /// running now, or the helm that ran it died.
    pub fn is_pending(&self) -> bool {
        matches!(
            self,
            Self::PendingInstall | Self::PendingUpgrade | Self::PendingRollback
        )
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Unknown => "unknown",
            Self::Deployed => "deployed",
            Self::Uninstalled => "uninstalled",
            Self::Superseded => "superseded",
            Self::Failed => "failed",
            Self::Uninstalling => "uninstalling",
            Self::PendingInstall => "pending-install",
            Self::PendingUpgrade => "pending-upgrade",
            Self::PendingRollback => "pending-rollback",
            Self::Other(s) => s,
        }
    }
}

impl std::fmt::Display for ReleaseStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The current revision of a release (what `helm status` shows). The rendered
/// manifest and values are not kept: they may hold secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseInfo {
    pub name: String,
    pub namespace: String,
    pub revision: u32,
    pub status: ReleaseStatus,
    pub description: String,
    pub first_deployed: Option<DateTime<Utc>>,
    pub last_deployed: Option<DateTime<Utc>>,
}

/// One revision of a release (an entry of what `helm history` shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    pub revision: u32,
    pub updated: Option<DateTime<Utc>>,
    pub status: ReleaseStatus,
    /// `name-version` of the chart.
    pub chart: String,
    #[serde(default)]
    pub app_version: String,
    #[serde(default)]
    pub description: String,
}

/// What `upgrade_install` did to a release left mid-operation by a dead helm
/// before upgrading it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Recovery {
    /// Rolled back to the last `deployed` revision.
    RolledBack {
        stuck_revision: u32,
        stuck_status: ReleaseStatus,
        to_revision: u32,
    },
    /// Nothing had ever been deployed: the release was uninstalled.
    Uninstalled {
        stuck_revision: u32,
        stuck_status: ReleaseStatus,
    },
}

/// The result of `upgrade_install`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    pub release: ReleaseInfo,
    pub recovered: Option<Recovery>,
    /// The release already held this chart and these values: no new revision was made.
    #[serde(default)]
    pub unchanged: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_arguments_pin_remote_versions() {
        let repo = Chart::Repository {
            url: "https://charts.jetstack.io".into(),
            name: "cert-manager".into(),
            version: "v1.19.1".into(),
        };
        assert_eq!(repo.positional(), "cert-manager");
        assert_eq!(
            repo.flags(),
            ["--repo=https://charts.jetstack.io", "--version=v1.19.1"]
        );
        let local = Chart::Local("charts/loki".into());
        assert_eq!(local.positional(), "charts/loki");
        assert!(local.flags().is_empty());
    }
}
