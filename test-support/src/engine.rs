//! The workflow engine in process: it starts nothing, it remembers what it was asked.
//! A started workflow counts as running until it is cancelled.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use uuid::Uuid;
use windlass_core::runs::RunStatus;
use windlass_workflows::cluster_contracts::MaintenanceInput;
use windlass_workflows::deployment_contracts::{
    CancelledDeployment, DeploymentRequest, QueuedDeployment,
};
use windlass_workflows::engine::schedules::MaintenanceSchedule;
use windlass_workflows::engine::{
    Accepted, EngineError, WorkflowEngine, WorkflowInput, WorkflowState,
};

/// One thing the engine was asked, in the order asked.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineCall {
    Started {
        organization_id: Uuid,
        workflow_id: String,
        input: Box<WorkflowInput>,
    },
    Cancelled {
        workflow_id: String,
    },
    DeploymentRequested {
        run_id: Uuid,
    },
    DeploymentCancelled {
        run_id: Uuid,
    },
    ScheduleEnsured {
        cluster_id: Uuid,
    },
    ScheduleDeleted {
        cluster_id: Uuid,
    },
}

#[derive(Default)]
pub struct InProcessEngine {
    calls: Mutex<Vec<EngineCall>>,
    running: Mutex<BTreeSet<String>>,
    schedules: Mutex<BTreeMap<Uuid, MaintenanceSchedule>>,
}

impl InProcessEngine {
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything asked so far.
    pub fn calls(&self) -> Vec<EngineCall> {
        self.calls.lock().unwrap().clone()
    }

    /// The workflows started so far: (organisation, workflow id, input).
    pub fn started(&self) -> Vec<(Uuid, String, WorkflowInput)> {
        self.calls()
            .into_iter()
            .filter_map(|call| match call {
                EngineCall::Started {
                    organization_id,
                    workflow_id,
                    input,
                } => Some((organization_id, workflow_id, *input)),
                _ => None,
            })
            .collect()
    }

    fn record(&self, call: EngineCall) {
        self.calls.lock().unwrap().push(call);
    }
}

#[async_trait::async_trait]
impl WorkflowEngine for InProcessEngine {
    async fn start(
        &self,
        organization_id: Uuid,
        workflow_id: &str,
        input: WorkflowInput,
    ) -> Result<String, EngineError> {
        self.running.lock().unwrap().insert(workflow_id.to_owned());
        self.record(EngineCall::Started {
            organization_id,
            workflow_id: workflow_id.to_owned(),
            input: Box::new(input),
        });
        Ok(format!("in-process-{workflow_id}"))
    }

    async fn cancel(&self, workflow_id: &str, _reason: &str) -> Result<(), EngineError> {
        self.running.lock().unwrap().remove(workflow_id);
        self.record(EngineCall::Cancelled {
            workflow_id: workflow_id.to_owned(),
        });
        Ok(())
    }

    async fn describe(&self, workflow_id: &str) -> Result<WorkflowState, EngineError> {
        if self.running.lock().unwrap().contains(workflow_id) {
            Ok(WorkflowState {
                status: RunStatus::Running,
                closed_at: None,
            })
        } else {
            Err(EngineError::NotFound(workflow_id.to_owned()))
        }
    }

    async fn request_deployment(
        &self,
        request: DeploymentRequest,
    ) -> Result<Accepted<QueuedDeployment>, EngineError> {
        self.record(EngineCall::DeploymentRequested {
            run_id: request.run_id,
        });
        Ok(Accepted::Confirmed(QueuedDeployment::Queued { ahead: 0 }))
    }

    async fn cancel_deployment(
        &self,
        _organization_id: Uuid,
        _environment_id: Uuid,
        run_id: Uuid,
    ) -> Result<Accepted<CancelledDeployment>, EngineError> {
        self.record(EngineCall::DeploymentCancelled { run_id });
        Ok(Accepted::Confirmed(CancelledDeployment::Unknown))
    }

    async fn ensure_maintenance_schedule(
        &self,
        input: MaintenanceInput,
    ) -> Result<String, EngineError> {
        let cluster_id = input.cluster.id;
        let schedule_id = format!("maintenance-{cluster_id}");
        self.schedules
            .lock()
            .unwrap()
            .entry(cluster_id)
            .or_insert_with(|| MaintenanceSchedule {
                schedule_id: schedule_id.clone(),
                paused: false,
                note: None,
                next_runs: Vec::new(),
                recent_runs: Vec::new(),
                skipped_overlaps: 0,
            });
        self.record(EngineCall::ScheduleEnsured { cluster_id });
        Ok(schedule_id)
    }

    async fn delete_maintenance_schedule(&self, cluster_id: Uuid) -> Result<(), EngineError> {
        self.schedules.lock().unwrap().remove(&cluster_id);
        self.record(EngineCall::ScheduleDeleted { cluster_id });
        Ok(())
    }

    async fn maintenance_schedule(
        &self,
        cluster_id: Uuid,
    ) -> Result<MaintenanceSchedule, EngineError> {
        self.schedules
            .lock()
            .unwrap()
            .get(&cluster_id)
            .cloned()
            .ok_or_else(|| EngineError::NotFound(format!("maintenance-{cluster_id}")))
    }

    async fn pause_maintenance(
        &self,
        cluster_id: Uuid,
        pause: bool,
        note: &str,
    ) -> Result<(), EngineError> {
        let mut schedules = self.schedules.lock().unwrap();
        let schedule = schedules
            .get_mut(&cluster_id)
            .ok_or_else(|| EngineError::NotFound(format!("maintenance-{cluster_id}")))?;
        schedule.paused = pause;
        schedule.note = Some(note.to_owned());
        Ok(())
    }

    async fn trigger_maintenance(&self, _cluster_id: Uuid) -> Result<(), EngineError> {
        Ok(())
    }

    async fn backfill_maintenance(
        &self,
        _cluster_id: Uuid,
        _start: DateTime<Utc>,
        _end: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        Ok(())
    }
}
