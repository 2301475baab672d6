//! A worker process polling several task queues (one SDK worker thread per queue) and
//! draining them together.

use std::sync::Arc;

use windlass_activities::ActivitySet;

use crate::metrics::WorkerMetrics;
use crate::worker::{Backing, WorkerConfig, WorkerHandle, spawn_worker_with};

pub struct Fleet {
    workers: Vec<(String, WorkerHandle)>,
    metrics: Arc<WorkerMetrics>,
}

impl Fleet {
    /// Starts one worker per queue, all sharing the store (or the placed worker's backplane), the activities' clients (and so
    /// the cloud rate limit) and the metrics. Blocks until every worker is polling; if one
    /// cannot start, the ones already started are stopped and the error returned.
    pub fn spawn(
        config: &WorkerConfig,
        queues: &[String],
        backing: &Backing,
        activities: &ActivitySet,
        metrics: Arc<WorkerMetrics>,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(!queues.is_empty(), "a worker needs at least one task queue");
        let mut workers = Vec::with_capacity(queues.len());
        for queue in queues {
            let mut queue_config = config.clone();
            queue_config.engine.task_queue = queue.clone();
            let handle = spawn_worker_with(
                queue_config,
                backing.clone(),
                activities.clone(),
                metrics.clone(),
            )?;
            workers.push((queue.clone(), handle));
        }
        Ok(Self { workers, metrics })
    }

    pub fn metrics(&self) -> &Arc<WorkerMetrics> {
        &self.metrics
    }

    pub fn queues(&self) -> impl Iterator<Item = &str> {
        self.workers.iter().map(|(queue, _)| queue.as_str())
    }

    /// A queue whose worker stopped on its own (an error): the process should not go on
    /// looking healthy with a queue nobody polls.
    pub fn stopped_queue(&self) -> Option<&str> {
        self.workers
            .iter()
            .find(|(_, handle)| handle.is_finished())
            .map(|(queue, _)| queue.as_str())
    }

    /// Marks the process draining (not ready), stops polling on every queue at once, then
    /// waits for each worker: in-flight activities finish within the graceful period or
    /// are cancelled and handed back to Temporal. Blocking.
    pub fn drain(self) -> anyhow::Result<()> {
        self.metrics.set_draining();
        let Self {
            mut workers,
            metrics,
        } = self;
        tracing::info!(
            queues = workers.len(),
            activities_in_flight = metrics.activities_in_flight(),
            "draining: polling stopped, finishing in-flight work"
        );
        for (_, handle) in &mut workers {
            handle.begin_shutdown();
        }
        let mut first_error = None;
        for (queue, handle) in workers {
            if let Err(error) = handle.shutdown() {
                tracing::error!(task_queue = %queue, error = %format!("{error:#}"), "worker stopped with an error");
                first_error.get_or_insert(error);
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => {
                tracing::info!("drained");
                Ok(())
            }
        }
    }
}
