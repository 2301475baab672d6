use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// Whether services may name charts from plain `http://` repositories (off unless an
    /// administrator turns it on; `https://` and `oci://` are always allowed).
    #[serde(default)]
    pub allow_plain_http_charts: bool,
}

impl Organization {
    pub fn chart_policy(&self) -> crate::chart_references::ChartPolicy {
        crate::chart_references::ChartPolicy {
            allow_plain_http: self.allow_plain_http_charts,
        }
    }
}
