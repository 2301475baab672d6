//! The weekly maintenance activities: what the cloud offers against what the cluster runs, and
//! whether the cloud still matches the cluster's terraform state.

use std::sync::Arc;

use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use windlass_core::clusters::parse_minor_version;
use windlass_workflows::cluster_contracts::{
    ClusterRequest, DriftCheck, DriftReport, UpgradeCheck, maintenance_activity_names,
};

use super::ClusterWork;
use super::clouds::{Step, cloud_of};

pub struct ClusterMaintenanceActivities {
    pub(super) work: Arc<ClusterWork>,
}

#[activities]
impl ClusterMaintenanceActivities {
    #[activity(name = maintenance_activity_names::CHECK_UPGRADES)]
    pub async fn check_upgrades(
        self: Arc<Self>,
        ctx: ActivityContext,
        request: ClusterRequest,
    ) -> Result<UpgradeCheck, ActivityError> {
        let offered = cloud_of(&self.work, &request.target)?
            .offered_versions(Step::of(&ctx), &request.cluster.region)
            .await?;
        Ok(upgrade_check(
            &request.cluster.kubernetes_version,
            offered.iter().map(String::as_str),
        ))
    }

    #[activity(name = maintenance_activity_names::DETECT_DRIFT)]
    pub async fn detect_drift(
        self: Arc<Self>,
        ctx: ActivityContext,
        check: DriftCheck,
    ) -> Result<DriftReport, ActivityError> {
        super::terraform_steps::detect_drift(&self.work, &ctx, &check).await
    }
}

/// Newer minor versions than `current` among those offered, oldest first.
pub(crate) fn upgrade_check<'a>(
    current: &str,
    offered: impl Iterator<Item = &'a str>,
) -> UpgradeCheck {
    let current_minor = parse_minor_version(current);
    let mut offered: Vec<(u32, u32)> = offered.filter_map(parse_minor_version).collect();
    offered.sort();
    offered.dedup();
    UpgradeCheck {
        current: current.to_owned(),
        newer: offered
            .iter()
            .filter(|v| Some(**v) > current_minor)
            .map(|(major, minor)| format!("{major}.{minor}"))
            .collect(),
        unsupported: current_minor.is_none_or(|c| !offered.contains(&c)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_versions_are_listed_oldest_first() {
        let check = upgrade_check("1.32", ["1.34", "1.31", "1.33", "1.32"].into_iter());
        assert_eq!(check.newer, ["1.33", "1.34"]);
        assert!(!check.unsupported);
    }

    #[test]
    fn a_version_no_longer_offered_is_unsupported() {
        let check = upgrade_check("1.29", ["1.31", "1.32"].into_iter());
        assert!(check.unsupported);
        assert_eq!(check.newer, ["1.31", "1.32"]);
    }
}
