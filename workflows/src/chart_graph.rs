//! Runs installs along a chart dependency graph: each chart starts the moment the charts it
//! depends on are deployed, so the total time is the critical path's, not the sum.
//!
//! Deterministic in a workflow: futures are created and polled in the graph's fixed order,
//! and an install is only *started* (its activity scheduled) once its dependencies are done.

use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;

use futures::FutureExt;
use futures::future::{LocalBoxFuture, Shared};
use windlass_core::cluster_charts::{ChartGraph, ClusterChart};

/// How one chart's install ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChartOutcome<T> {
    Installed(T),
    Failed(String),
    /// Not attempted: a chart it depends on did not install.
    Skipped {
        failed_dependency: String,
    },
}

type Pending<'a, T> = Shared<LocalBoxFuture<'a, ChartOutcome<T>>>;

/// One future per chart, in the graph's order; await them together (the workflow's
/// `join_all`). `install` is called for a chart only when its dependencies are installed.
pub fn along_graph<'a, T, F, Fut>(graph: &ChartGraph, install: F) -> Vec<Pending<'a, T>>
where
    T: Clone + 'a,
    F: Fn(ClusterChart) -> Fut + 'a,
    Fut: Future<Output = Result<T, String>> + 'a,
{
    let install = Rc::new(install);
    let mut started: HashMap<String, Pending<'a, T>> = HashMap::new();
    let mut ordered = Vec::with_capacity(graph.charts().len());
    for chart in graph.charts() {
        let dependencies: Vec<(String, Pending<'a, T>)> = chart
            .depends_on
            .iter()
            .map(|d| (d.clone(), started[d].clone()))
            .collect();
        let install = install.clone();
        let chart = chart.clone();
        let name = chart.name.clone();
        let pending = async move {
            for (dependency, outcome) in dependencies {
                if !matches!(outcome.await, ChartOutcome::Installed(_)) {
                    return ChartOutcome::Skipped {
                        failed_dependency: dependency,
                    };
                }
            }
            match install(chart).await {
                Ok(done) => ChartOutcome::Installed(done),
                Err(error) => ChartOutcome::Failed(error),
            }
        }
        .boxed_local()
        .shared();
        started.insert(name, pending.clone());
        ordered.push(pending);
    }
    ordered
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    fn chart(name: &str, depends_on: &[&str]) -> ClusterChart {
        ClusterChart {
            name: name.into(),
            namespace: "default".into(),
            depends_on: depends_on.iter().map(|d| (*d).into()).collect(),
        }
    }

    #[test]
    fn a_failed_chart_skips_its_dependents_only() {
        let graph = ChartGraph::new(vec![
            chart("certs", &[]),
            chart("logs", &[]),
            chart("ingress", &["certs"]),
            chart("agent", &["ingress", "logs"]),
        ])
        .unwrap();
        let attempted = Rc::new(RefCell::new(Vec::new()));
        let seen = attempted.clone();
        let outcomes = futures::executor::block_on(futures::future::join_all(along_graph(
            &graph,
            move |c: ClusterChart| {
                seen.borrow_mut().push(c.name.clone());
                async move {
                    if c.name == "ingress" {
                        Err("rollout timed out".to_string())
                    } else {
                        Ok(c.name)
                    }
                }
            },
        )));
        assert_eq!(outcomes[0], ChartOutcome::Installed("certs".to_string()));
        assert_eq!(outcomes[1], ChartOutcome::Installed("logs".to_string()));
        assert_eq!(
            outcomes[2],
            ChartOutcome::Failed("rollout timed out".into())
        );
        assert_eq!(
            outcomes[3],
            ChartOutcome::Skipped {
                failed_dependency: "ingress".into()
            }
        );
        assert_eq!(*attempted.borrow(), ["certs", "logs", "ingress"]);
    }
}
