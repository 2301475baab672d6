//! What a saved plan would do, read from `terraform show -json <plan>`, and the guard that
//! refuses to apply plans that replace or destroy protected resources.

use serde::{Deserialize, Serialize};

/// One resource the plan touches, with terraform's action list (`["create"]`,
/// `["delete", "create"]` for a replacement, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceChange {
    pub address: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub actions: Vec<String>,
}

impl ResourceChange {
    pub fn action(&self) -> &'static str {
        let has = |a: &str| self.actions.iter().any(|x| x == a);
        match (has("create"), has("delete"), has("update")) {
            (true, true, _) => "replace",
            (false, true, _) => "destroy",
            (true, false, _) => "create",
            (_, _, true) => "update",
            _ => "no-op",
        }
    }

    fn removes(&self) -> bool {
        self.actions.iter().any(|a| a == "delete")
    }
}

/// The saved plan's resource changes (no-ops and reads left out).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanReport {
    pub changes: Vec<ResourceChange>,
}

#[derive(Deserialize)]
struct ShowJson {
    #[serde(default)]
    resource_changes: Vec<RawChange>,
}

#[derive(Deserialize)]
struct RawChange {
    address: String,
    #[serde(rename = "type")]
    resource_type: String,
    change: RawActions,
}

#[derive(Deserialize)]
struct RawActions {
    actions: Vec<String>,
}

impl PlanReport {
    pub fn from_show_json(json: &str) -> Result<Self, serde_json::Error> {
        let show: ShowJson = serde_json::from_str(json)?;
        let changes = show
            .resource_changes
            .into_iter()
            .filter(|c| !c.change.actions.iter().all(|a| a == "no-op" || a == "read"))
            .map(|c| ResourceChange {
                address: c.address,
                resource_type: c.resource_type,
                actions: c.change.actions,
            })
            .collect();
        Ok(Self { changes })
    }

    pub fn count(&self, action: &str) -> usize {
        self.changes.iter().filter(|c| c.action() == action).count()
    }
}

/// Which resources a plan may not remove. A cluster replaced by accident takes every
/// workload with it, so replacing or destroying one needs an explicit yes in the request.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlanGuard {
    /// Resource addresses (`azurerm_kubernetes_cluster.cluster`) that must survive.
    pub protected: Vec<String>,
    /// The request says removing them is intended (cluster deletion, forced rebuild).
    pub allow_removal: bool,
}

impl PlanGuard {
    /// The protected resources this plan would replace or destroy.
    pub fn violations(&self, report: &PlanReport) -> Vec<ResourceChange> {
        if self.allow_removal {
            return Vec::new();
        }
        report
            .changes
            .iter()
            .filter(|c| c.removes() && self.protected.iter().any(|p| p == &c.address))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> PlanReport {
        PlanReport::from_show_json(
            r#"{"resource_changes":[
              {"address":"azurerm_kubernetes_cluster.cluster","type":"azurerm_kubernetes_cluster","change":{"actions":["delete","create"]}},
              {"address":"azurerm_subnet.zone[0]","type":"azurerm_subnet","change":{"actions":["update"]}},
              {"address":"azurerm_public_ip.nat[2]","type":"azurerm_public_ip","change":{"actions":["no-op"]}}
            ]}"#,
        )
        .unwrap()
    }

    #[test]
    fn a_cluster_replacement_is_refused_unless_allowed() {
        let mut guard = PlanGuard {
            protected: vec!["azurerm_kubernetes_cluster.cluster".into()],
            allow_removal: false,
        };
        let violations = guard.violations(&report());
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].action(), "replace");
        guard.allow_removal = true;
        assert!(guard.violations(&report()).is_empty());
    }

    #[test]
    fn no_ops_are_not_changes() {
        let report = report();
        assert_eq!(report.changes.len(), 2);
        assert_eq!(report.count("update"), 1);
    }
}
