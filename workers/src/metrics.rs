//! What a worker process tells Prometheus: activity attempts per type and queue, what is in
//! flight against the configured slots, drain state, and how long cloud calls waited for
//! their account's budget. Rendered in the text format by whoever serves `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use windlass_activities::rate_limit::{CloudProvider, WaitObserver};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActivityLabels {
    pub activity_type: String,
    pub task_queue: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub task_queue: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: String,
}

type DurationFamily = Family<ActivityLabels, Histogram, fn() -> Histogram>;

pub struct WorkerMetrics {
    registry: Mutex<Registry>,
    draining: AtomicBool,
    // Whether each queue's worker is polling: readiness needs every one of them.
    queues: Mutex<BTreeMap<String, bool>>,
    pub(crate) in_flight_total: AtomicI64,
    pub(crate) started: Family<ActivityLabels, Counter>,
    pub(crate) succeeded: Family<ActivityLabels, Counter>,
    pub(crate) failed: Family<ActivityLabels, Counter>,
    pub(crate) retried: Family<ActivityLabels, Counter>,
    pub(crate) cancelled: Family<ActivityLabels, Counter>,
    pub(crate) in_flight: Family<ActivityLabels, Gauge>,
    pub(crate) duration: DurationFamily,
    activity_slots: Family<QueueLabels, Gauge>,
    workflow_task_slots: Family<QueueLabels, Gauge>,
    polling: Family<QueueLabels, Gauge>,
    draining_gauge: Gauge,
    rate_limit_waits: Family<ProviderLabels, Counter>,
    rate_limit_wait_seconds: Family<ProviderLabels, Counter<f64, AtomicU64>>,
    rate_limit_backend_errors: Family<ProviderLabels, Counter>,
}

impl std::fmt::Debug for WorkerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerMetrics").finish_non_exhaustive()
    }
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl WorkerMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("windlass");
        // Families first, then registered by clone (they share their values).
        let mut metrics = Self {
            registry: Mutex::new(Registry::default()),
            draining: AtomicBool::new(false),
            queues: Mutex::new(BTreeMap::new()),
            in_flight_total: AtomicI64::new(0),
            started: Family::default(),
            succeeded: Family::default(),
            failed: Family::default(),
            retried: Family::default(),
            cancelled: Family::default(),
            in_flight: Family::default(),
            // 50 ms to ~3.6 h: provider registrations take seconds, terraform applies an hour.
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.05, 4.0, 10))
            }),
            activity_slots: Family::default(),
            workflow_task_slots: Family::default(),
            polling: Family::default(),
            draining_gauge: Gauge::default(),
            rate_limit_waits: Family::default(),
            rate_limit_wait_seconds: Family::default(),
            rate_limit_backend_errors: Family::default(),
        };
        let r = &mut registry;
        r.register(
            "activities_started",
            "Activity attempts started",
            metrics.started.clone(),
        );
        r.register(
            "activities_succeeded",
            "Activity attempts that succeeded",
            metrics.succeeded.clone(),
        );
        r.register(
            "activities_failed",
            "Activity attempts that failed (retried or not)",
            metrics.failed.clone(),
        );
        r.register(
            "activities_retried",
            "Activity attempts that were retries (attempt > 1)",
            metrics.retried.clone(),
        );
        r.register(
            "activities_cancelled",
            "Activity attempts cancelled, including work handed back on drain",
            metrics.cancelled.clone(),
        );
        r.register(
            "activities_in_flight",
            "Activity attempts running now",
            metrics.in_flight.clone(),
        );
        r.register(
            "activity_duration_seconds",
            "Duration of activity attempts",
            metrics.duration.clone(),
        );
        r.register(
            "worker_activity_slots",
            "Activities this worker runs at once on the task queue (its limit)",
            metrics.activity_slots.clone(),
        );
        r.register(
            "worker_workflow_task_slots",
            "Workflow tasks this worker runs at once on the task queue (its limit)",
            metrics.workflow_task_slots.clone(),
        );
        r.register(
            "worker_polling",
            "1 while this worker polls the task queue",
            metrics.polling.clone(),
        );
        r.register(
            "worker_draining",
            "1 once the worker stopped polling to finish in-flight work",
            metrics.draining_gauge.clone(),
        );
        r.register(
            "cloud_rate_limit_waits",
            "Cloud requests that waited for their account's budget",
            metrics.rate_limit_waits.clone(),
        );
        r.register(
            "cloud_rate_limit_wait_seconds",
            "Time cloud requests spent waiting for their account's budget",
            metrics.rate_limit_wait_seconds.clone(),
        );
        r.register(
            "cloud_rate_limit_backend_errors",
            "Budget checks that failed (the request went ahead)",
            metrics.rate_limit_backend_errors.clone(),
        );
        metrics.registry = Mutex::new(registry);
        metrics
    }

    /// A queue's worker started polling with these limits.
    pub fn queue_started(
        &self,
        task_queue: &str,
        activity_slots: usize,
        workflow_task_slots: usize,
    ) {
        let labels = QueueLabels {
            task_queue: task_queue.to_owned(),
        };
        self.activity_slots
            .get_or_create(&labels)
            .set(i64::try_from(activity_slots).unwrap_or(i64::MAX));
        self.workflow_task_slots
            .get_or_create(&labels)
            .set(i64::try_from(workflow_task_slots).unwrap_or(i64::MAX));
        self.polling.get_or_create(&labels).set(1);
        self.set_polling(task_queue, true);
    }

    fn set_polling(&self, task_queue: &str, polling: bool) {
        self.queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(task_queue.to_owned(), polling);
    }

    /// Every queue this process was started for has a polling worker.
    pub fn all_queues_polling(&self) -> bool {
        let queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        !queues.is_empty() && queues.values().all(|polling| *polling)
    }

    pub fn queue_stopped(&self, task_queue: &str) {
        self.polling
            .get_or_create(&QueueLabels {
                task_queue: task_queue.to_owned(),
            })
            .set(0);
        self.set_polling(task_queue, false);
    }

    /// From now on the worker reports not ready.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.draining_gauge.set(1);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Activity attempts running now, over every queue and type.
    pub fn activities_in_flight(&self) -> i64 {
        self.in_flight_total.load(Ordering::SeqCst)
    }

    /// The Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }
}

impl WaitObserver for WorkerMetrics {
    fn waited(&self, provider: CloudProvider, wait: Duration) {
        let labels = ProviderLabels {
            provider: provider.as_str().to_owned(),
        };
        self.rate_limit_waits.get_or_create(&labels).inc();
        self.rate_limit_wait_seconds
            .get_or_create(&labels)
            .inc_by(wait.as_secs_f64());
    }

    fn backend_failed(&self, provider: CloudProvider) {
        self.rate_limit_backend_errors
            .get_or_create(&ProviderLabels {
                provider: provider.as_str().to_owned(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_names_every_family_with_its_labels() {
        let metrics = WorkerMetrics::new();
        metrics.queue_started("windlass-infrastructure", 20, 10);
        metrics.waited(CloudProvider::Azure, Duration::from_millis(1500));
        metrics.set_draining();
        let text = metrics.encode();
        for line in [
            "windlass_worker_activity_slots{task_queue=\"windlass-infrastructure\"} 20",
            "windlass_worker_polling{task_queue=\"windlass-infrastructure\"} 1",
            "windlass_worker_draining 1",
            "windlass_cloud_rate_limit_waits_total{provider=\"azure\"} 1",
            "windlass_cloud_rate_limit_wait_seconds_total{provider=\"azure\"} 1.5",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert!(metrics.is_draining());
        assert!(metrics.all_queues_polling());
        metrics.queue_stopped("windlass-infrastructure");
        assert!(!metrics.all_queues_polling());
    }
}
