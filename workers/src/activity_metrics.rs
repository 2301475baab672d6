//! Counts every activity attempt into [`WorkerMetrics`], beside the step journal, so the
//! activities themselves carry no metrics code.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use temporalio_sdk::activities::ActivityError;
use temporalio_sdk::interceptors::{
    ActivityInboundInterceptor, ExecuteActivityInput, ExecuteActivityOutput, Next,
};

use crate::metrics::{ActivityLabels, WorkerMetrics};

pub struct ActivityMetrics {
    metrics: Arc<WorkerMetrics>,
}

impl ActivityMetrics {
    pub fn new(metrics: Arc<WorkerMetrics>) -> Self {
        Self { metrics }
    }
}

/// Leaves the in-flight gauges however the attempt ends, even if its future is dropped.
struct InFlight<'a> {
    metrics: &'a WorkerMetrics,
    labels: &'a ActivityLabels,
}

impl<'a> InFlight<'a> {
    fn enter(metrics: &'a WorkerMetrics, labels: &'a ActivityLabels) -> Self {
        metrics.in_flight.get_or_create(labels).inc();
        metrics.in_flight_total.fetch_add(1, Ordering::SeqCst);
        Self { metrics, labels }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.metrics.in_flight.get_or_create(self.labels).dec();
        self.metrics.in_flight_total.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ActivityInboundInterceptor for ActivityMetrics {
    fn execute_activity<'a>(
        &'a self,
        input: ExecuteActivityInput,
        next: Next<'a, ExecuteActivityInput, ExecuteActivityOutput<'a>>,
    ) -> ExecuteActivityOutput<'a> {
        let info = input.activity_info();
        let labels = ActivityLabels {
            activity_type: info.activity_type.clone(),
            task_queue: info.task_queue.clone(),
        };
        let retry = info.attempt > 1;
        Box::pin(async move {
            let metrics = &*self.metrics;
            metrics.started.get_or_create(&labels).inc();
            if retry {
                metrics.retried.get_or_create(&labels).inc();
            }
            let began = Instant::now();
            let result = {
                let _in_flight = InFlight::enter(metrics, &labels);
                next.run(input).await
            };
            metrics
                .duration
                .get_or_create(&labels)
                .observe(began.elapsed().as_secs_f64());
            let outcome = match &result {
                Ok(_) => &metrics.succeeded,
                Err(ActivityError::Cancelled { .. }) => &metrics.cancelled,
                Err(_) => &metrics.failed,
            };
            outcome.get_or_create(&labels).inc();
            result
        })
    }
}
