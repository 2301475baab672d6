use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::Context;
use temporalio_sdk::runtime::worker_tuner::{FixedSizeSlotSupplier, TunerHolder};
use temporalio_sdk::{Runtime, Worker, WorkerOptions};
use tokio::sync::oneshot;
use windlass_activities::ActivitySet;
use windlass_activities::backplane::{SharedBackplane, StoreBackplane};
use windlass_activities::cluster_records::ClusterRecordActivities;
use windlass_activities::deployments::DeploymentRecordActivities;
use windlass_activities::runs::RunActivities;
use windlass_core::Store;
use windlass_workflows::engine::{Engine, EngineConfig};
use windlass_workflows::step_budget::{StepTiming, StepTimingInterceptor};
use windlass_workflows::{
    AwsAccessVerify, AzureAccessSetup, AzureAccessTeardown, ClusterMaintenance, DeleteCluster,
    DeployEnvironment, EnvironmentDeployments, ProvisionCluster, UpgradeCluster,
};

use crate::StepJournal;
use crate::activity_metrics::ActivityMetrics;
use crate::metrics::WorkerMetrics;
use crate::step_budget_guard::StepBudgetGuard;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Also names the task queue this worker polls.
    pub engine: EngineConfig,
    /// Activities this worker runs at once; the rest wait on the queue for other workers.
    /// Per task queue: a process polling two queues runs up to twice this many.
    pub max_concurrent_activities: usize,
    pub max_concurrent_workflow_tasks: usize,
    /// On shutdown, in-flight activities get this long to finish before they are cancelled
    /// (and handed back to Temporal for another worker to retry).
    pub graceful_shutdown: Duration,
    /// How the steps this worker's workflows schedule are timed: their queue allowance
    /// (a step's budget counts the time it runs, not the time it waits for a worker).
    pub step_timing: StepTiming,
}

/// A running worker thread.
pub struct WorkerHandle {
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<anyhow::Result<()>>>,
}

impl WorkerHandle {
    /// Stops polling, lets in-flight work finish (within the graceful period), then returns.
    pub fn shutdown(mut self) -> anyhow::Result<()> {
        self.stop_and_join()
    }

    /// Tells the worker to stop polling and returns at once; [`Self::shutdown`] then waits.
    /// Lets a process drain several queues' workers side by side.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    fn stop_and_join(&mut self) -> anyhow::Result<()> {
        self.begin_shutdown();
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| anyhow::anyhow!("worker thread panicked"))?,
            None => Ok(()),
        }
    }

    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        if let Err(error) = self.stop_and_join() {
            tracing::error!(%error, "worker stopped with an error");
        }
    }
}

/// Starts a worker on its own thread and waits until it has connected to Temporal and
/// been created with its workflows and activities, so a caller that gets `Ok` knows the
/// configuration is good; polling of `config.engine.task_queue` starts right after.
pub fn spawn_worker(
    config: WorkerConfig,
    backing: impl Into<Backing>,
    activities: ActivitySet,
) -> anyhow::Result<WorkerHandle> {
    spawn_worker_with(
        config,
        backing.into(),
        activities,
        Arc::new(WorkerMetrics::new()),
    )
}

/// What the run bookkeeping (journal, step logs, records, outcomes) is written to.
#[derive(Clone)]
pub enum Backing {
    /// A shared worker: the store itself.
    Store(Store),
    /// A placed worker: no store; the API's placement routes, for its own runs only.
    Placed(SharedBackplane),
}

impl From<Store> for Backing {
    fn from(store: Store) -> Self {
        Backing::Store(store)
    }
}

/// [`spawn_worker`], counting into the process's `metrics` (shared by its queues).
pub fn spawn_worker_with(
    config: WorkerConfig,
    backing: Backing,
    activities: ActivitySet,
    metrics: Arc<WorkerMetrics>,
) -> anyhow::Result<WorkerHandle> {
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<()>>();
    let thread = thread::Builder::new()
        .name(format!("worker-{}", config.engine.task_queue))
        .spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("worker-rt")
                .enable_all()
                .build()
                .context("building the worker's tokio runtime")?;
            let started = runtime.block_on(run_worker(
                config,
                backing,
                activities,
                metrics,
                shutdown_rx,
                ready_tx.clone(),
            ));
            if let Err(error) = &started {
                let _ = ready_tx.send(Err(anyhow::anyhow!("{error:#}")));
            }
            started
        })
        .context("spawning the worker thread")?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(WorkerHandle {
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }),
        Ok(Err(error)) => {
            let _ = thread.join();
            Err(error)
        }
        Err(_) => match thread.join() {
            Ok(Err(error)) => Err(error),
            _ => Err(anyhow::anyhow!("worker thread ended before it was ready")),
        },
    }
}

async fn run_worker(
    config: WorkerConfig,
    backing: Backing,
    activities: ActivitySet,
    metrics: Arc<WorkerMetrics>,
    shutdown: oneshot::Receiver<()>,
    ready: std::sync::mpsc::Sender<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let runtime = Runtime::from_current_tokio(Default::default())?;
    let engine = Engine::connect(&config.engine).await?;
    let tuner = TunerHolder::builder()
        .workflow_task_slot_supplier(FixedSizeSlotSupplier::new(
            config.max_concurrent_workflow_tasks,
        ))
        .activity_task_slot_supplier(FixedSizeSlotSupplier::new(config.max_concurrent_activities))
        .local_activity_task_slot_supplier(FixedSizeSlotSupplier::new(
            config.max_concurrent_activities,
        ))
        .nexus_task_slot_supplier(FixedSizeSlotSupplier::new(1))
        .build();
    let options = WorkerOptions::new(config.engine.task_queue.clone())
        .register_workflow::<AzureAccessSetup>()?
        .register_workflow::<AwsAccessVerify>()?
        .register_workflow::<AzureAccessTeardown>()?
        .register_workflow::<ProvisionCluster>()?
        .register_workflow::<ClusterMaintenance>()?
        .register_workflow::<DeleteCluster>()?
        .register_workflow::<UpgradeCluster>()?
        .register_workflow::<DeployEnvironment>()?
        .register_workflow::<EnvironmentDeployments>()?
        .workflow_interceptor(StepTimingInterceptor::constructor(
            config.step_timing.clone(),
        ));
    let backplane: SharedBackplane = match &backing {
        Backing::Store(store) => Arc::new(StoreBackplane::new(store.clone(), None)),
        Backing::Placed(backplane) => backplane.clone(),
    };
    let options = match &backing {
        // Cluster records serve schedules on the shared queues only.
        Backing::Store(store) => {
            options.register_activities(ClusterRecordActivities::new(store.clone()))
        }
        Backing::Placed(_) => options,
    };
    let options = options
        .register_activities(RunActivities::with_backplane(backplane.clone()))
        .register_activities(DeploymentRecordActivities::with_backplane(
            backplane.clone(),
        ))
        .activity_inbound_interceptor(
            StepJournal::new(backplane).announcing(activities.step_events.clone()),
        )
        .activity_inbound_interceptor(ActivityMetrics::new(metrics.clone()))
        // Innermost: the journal and the metrics see a step it refuses as failed.
        .activity_inbound_interceptor(StepBudgetGuard::new());
    let options = activities
        .register(options)
        .tuner(tuner)
        .graceful_shutdown_period(config.graceful_shutdown)
        .build();
    let mut worker = Worker::new(&runtime, engine.client().clone(), options)?;
    let stop = worker.shutdown_handle();
    let queue = config.engine.task_queue.as_str();
    tracing::info!(task_queue = %queue, "worker polling");
    metrics.queue_started(
        queue,
        config.max_concurrent_activities,
        config.max_concurrent_workflow_tasks,
    );
    let _ = ready.send(Ok(()));
    let run = worker.run();
    tokio::pin!(run);
    tokio::select! {
        finished = &mut run => {
            metrics.queue_stopped(queue);
            return finished.context("worker stopped");
        }
        _ = shutdown => {
            tracing::info!(task_queue = %queue, "worker draining");
            stop();
        }
    }
    let drained = run.await.context("worker stopped while draining");
    metrics.queue_stopped(queue);
    drained?;
    tracing::info!(task_queue = %queue, "worker stopped");
    Ok(())
}
