//! The activity implementations a worker registers, built once with their clients.

use temporalio_sdk::WorkerOptionsBuilder;
use temporalio_sdk::worker_options_builder::State;

use crate::aws::AwsAccessActivities;
use crate::azure_access::AzureAccessActivities;
use crate::clusters::ClusterActivities;
use crate::key_rotation::KeyRotationActivities;

/// Everything a worker can run besides the run bookkeeping (which needs only the store).
/// A worker without Azure clients configured does not poll for Azure activities.
/// Clones share their clients: one set serves every task queue a worker process polls.
#[derive(Default, Clone)]
pub struct ActivitySet {
    pub azure: Option<AzureAccessActivities>,
    /// Verifying AWS accounts (STS AssumeRole); None: this worker takes no AWS work.
    pub aws_access: Option<AwsAccessActivities>,
    pub clusters: Option<ClusterActivities>,
    pub keys: Option<KeyRotationActivities>,
    /// Deployments act on clusters, so they need the cluster clients too.
    pub deployments: Option<crate::deployments::DeploymentActivities>,
    /// Where the step journal announces each step change to the run's followers (the
    /// live log fan-out), so they see it at once; None: they see it at their next poll.
    pub step_events: Option<windlass_core::live_logs::LiveLogs>,
}

impl ActivitySet {
    pub fn register<S: State>(self, options: WorkerOptionsBuilder<S>) -> WorkerOptionsBuilder<S> {
        let options = match self.azure {
            Some(azure) => options.register_activities(azure),
            None => options,
        };
        let options = match self.aws_access {
            Some(aws_access) => options.register_activities(aws_access),
            None => options,
        };
        let options = match self.keys {
            Some(keys) => options.register_activities(keys),
            None => options,
        };
        let options = match self.deployments {
            Some(deployments) => options.register_activities(deployments),
            None => options,
        };
        match self.clusters {
            Some(clusters) => options
                .register_activities(clusters.maintenance())
                .register_activities(clusters.lifecycle())
                .register_activities(clusters),
            None => options,
        }
    }
}
