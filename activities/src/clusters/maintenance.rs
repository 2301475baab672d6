//! The weekly maintenance activities: what AKS offers against what the cluster runs, and
//! whether the cloud still matches the cluster's terraform state.

use crate::error::FailureCode;
use std::sync::Arc;

use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use windlass_core::clusters::parse_minor_version;
use windlass_workflows::cluster_contracts::{
    CloudTarget, ClusterRequest, DriftCheck, DriftReport, UpgradeCheck, maintenance_activity_names,
};

use super::ClusterWork;
use crate::heartbeat::heartbeating;

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
        let target = match &request.target {
            CloudTarget::Azure(target) => target,
            CloudTarget::Aws(target) => {
                let eks = self
                    .work
                    .aws()?
                    .eks(target, &request.cluster.region)
                    .await?;
                let offered = heartbeating(&ctx, eks_versions(&eks)).await??;
                return Ok(upgrade_check(
                    &request.cluster.kubernetes_version,
                    offered.iter().map(String::as_str),
                ));
            }
        };
        let arm = &self.work.azure.platform_clients(target)?.arm;
        let offered = heartbeating(
            &ctx,
            arm.kubernetes_versions(&target.subscription_id, &request.cluster.region),
        )
        .await?
        .map_err(self.work.azure.failure(&ctx))?;
        Ok(upgrade_check(
            &request.cluster.kubernetes_version,
            offered
                .iter()
                .filter(|v| !v.preview)
                .map(|v| v.version.as_str()),
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

/// The versions EKS offers for new clusters and upgrades (standard or extended support).
async fn eks_versions(eks: &aws_sdk_eks::Client) -> Result<Vec<String>, ActivityError> {
    let mut versions = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = eks
            .describe_cluster_versions()
            .set_next_token(next.clone())
            .send()
            .await
            .map_err(|e| {
                crate::error::retryable(
                    std::io::Error::other(format!(
                        "EKS DescribeClusterVersions: {}",
                        aws_sdk_eks::error::DisplayErrorContext(&e)
                    )),
                    FailureCode::AwsUnavailable,
                    None,
                )
            })?;
        versions.extend(
            page.cluster_versions()
                .iter()
                .filter_map(|v| v.cluster_version().map(str::to_owned)),
        );
        next = page.next_token().map(str::to_owned);
        if next.is_none() {
            return Ok(versions);
        }
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
