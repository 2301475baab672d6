//! The charts every cluster gets, and which must be running before which.
//!
//! cert-manager issues the certificates the ingress controller's admission webhook and the
//! agent's endpoint need; the agent reports on ingress, logs and metrics, so it goes last.
//! Everything else is independent and installs in parallel, so a cluster's charts take as
//! long as the longest chain (cert-manager, ingress-nginx, windlass-agent), not the sum.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClusterChart {
    /// Release name, also the chart's directory under `charts/` and its values file name.
    pub name: String,
    pub namespace: String,
    /// Releases that must be deployed before this one starts.
    pub depends_on: Vec<String>,
}

/// A validated dependency graph of charts, in an order where every chart comes after the
/// charts it depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChartGraph {
    charts: Vec<ClusterChart>,
}

impl ChartGraph {
    /// Checks that every dependency exists and that there is no cycle, and orders the
    /// charts topologically (ties keep the given order, so the result is deterministic).
    pub fn new(charts: Vec<ClusterChart>) -> Result<Self> {
        for chart in &charts {
            if charts.iter().filter(|c| c.name == chart.name).count() > 1 {
                return Err(Error::InvalidInput(format!(
                    "chart {} is listed twice",
                    chart.name
                )));
            }
            for dependency in &chart.depends_on {
                if !charts.iter().any(|c| &c.name == dependency) {
                    return Err(Error::InvalidInput(format!(
                        "chart {} depends on {dependency}, which is not in the graph",
                        chart.name
                    )));
                }
            }
        }
        let mut ordered: Vec<ClusterChart> = Vec::with_capacity(charts.len());
        let mut remaining = charts;
        while !remaining.is_empty() {
            let ready = remaining.iter().position(|c| {
                c.depends_on
                    .iter()
                    .all(|d| ordered.iter().any(|o| &o.name == d))
            });
            match ready {
                Some(i) => ordered.push(remaining.remove(i)),
                None => {
                    let names: Vec<&str> = remaining.iter().map(|c| c.name.as_str()).collect();
                    return Err(Error::InvalidInput(format!(
                        "charts {} depend on each other in a cycle",
                        names.join(", ")
                    )));
                }
            }
        }
        Ok(Self { charts: ordered })
    }

    /// The charts of every cluster.
    pub fn standard() -> Self {
        let chart = |name: &str, namespace: &str, depends_on: &[&str]| ClusterChart {
            name: name.into(),
            namespace: namespace.into(),
            depends_on: depends_on.iter().map(|d| (*d).into()).collect(),
        };
        Self::new(vec![
            chart("cert-manager", "cert-manager", &[]),
            chart("external-dns", "external-dns", &[]),
            chart("karpenter", "kube-system", &[]),
            chart("loki", "logging", &[]),
            chart("prometheus", "monitoring", &[]),
            chart("ingress-nginx", "ingress-nginx", &["cert-manager"]),
            chart(
                "windlass-agent",
                "windlass",
                &["ingress-nginx", "loki", "prometheus"],
            ),
        ])
        .expect("the standard chart graph is acyclic")
    }

    /// Dependencies first.
    pub fn charts(&self) -> &[ClusterChart] {
        &self.charts
    }

    pub fn get(&self, name: &str) -> Option<&ClusterChart> {
        self.charts.iter().find(|c| c.name == name)
    }

    /// The longest chain of `duration`s through the graph: the least time installing it
    /// can take when independent charts run in parallel.
    pub fn critical_path<T>(&self, duration: impl Fn(&ClusterChart) -> T) -> T
    where
        T: Copy + Default + PartialOrd + std::ops::Add<Output = T>,
    {
        let mut finish: Vec<(String, T)> = Vec::new();
        for chart in &self.charts {
            let start = chart
                .depends_on
                .iter()
                .filter_map(|d| finish.iter().find(|(n, _)| n == d).map(|(_, t)| *t))
                .fold(T::default(), |a, b| if b > a { b } else { a });
            finish.push((chart.name.clone(), start + duration(chart)));
        }
        finish
            .into_iter()
            .map(|(_, t)| t)
            .fold(T::default(), |a, b| if b > a { b } else { a })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(name: &str, depends_on: &[&str]) -> ClusterChart {
        ClusterChart {
            name: name.into(),
            namespace: "default".into(),
            depends_on: depends_on.iter().map(|d| (*d).into()).collect(),
        }
    }

    #[test]
    fn dependencies_come_first() {
        let graph = ChartGraph::new(vec![
            chart("agent", &["ingress"]),
            chart("ingress", &["certs"]),
            chart("certs", &[]),
        ])
        .unwrap();
        let order: Vec<&str> = graph.charts().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(order, ["certs", "ingress", "agent"]);
    }

    #[test]
    fn cycles_and_unknown_dependencies_are_refused() {
        let cycle = ChartGraph::new(vec![chart("a", &["b"]), chart("b", &["a"])]).unwrap_err();
        assert!(cycle.to_string().contains("cycle"), "{cycle}");
        let unknown = ChartGraph::new(vec![chart("a", &["nope"])]).unwrap_err();
        assert!(unknown.to_string().contains("nope"), "{unknown}");
    }

    #[test]
    fn the_standard_critical_path_is_certs_ingress_agent() {
        let graph = ChartGraph::standard();
        assert_eq!(graph.charts().len(), 7);
        // One unit each: the longest chain has three charts.
        assert_eq!(graph.critical_path(|_| 1u32), 3);
        // A slow log store lengthens the path through the agent, not through ingress.
        let slow_loki = graph.critical_path(|c| if c.name == "loki" { 10u32 } else { 1 });
        assert_eq!(slow_loki, 11);
    }
}
