//! Simulated workload controllers: what a Deployment, StatefulSet, DaemonSet,
//! ReplicaSet or Job reports once its pods have (or have not) come up. There
//! are no pods; the status is what `kubectl rollout status` and helm's kstatus
//! waiter read, in the shape the real controllers write.

use serde_json::{Value, json};

/// Whether any container image in the pod template contains `marker` (the failure marker,
/// or a per-image rollout time's).
pub fn has_image_containing(obj: &Value, marker: Option<&str>) -> bool {
    let Some(marker) = marker.filter(|m| !m.is_empty()) else {
        return false;
    };
    let pod = &obj["spec"]["template"]["spec"];
    ["containers", "initContainers"]
        .iter()
        .flat_map(|k| pod[*k].as_array().into_iter().flatten())
        .filter_map(|c| c["image"].as_str())
        .any(|image| image.contains(marker))
}

/// The status the controller settles on for the current generation: ready, or
/// stuck with no ready pods when `fails` (images that cannot be pulled).
pub fn settled_status(kind: &str, obj: &Value, fails: bool) -> Option<Value> {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let generation = obj["metadata"]["generation"].as_i64().unwrap_or(1);
    let replicas = obj["spec"]["replicas"].as_i64().unwrap_or(1);
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let revision = format!("{name}-{:08x}", template_hash(obj));
    let ready = if fails { 0 } else { replicas };
    let status = match kind {
        "Deployment" => {
            let (available, progressing) = if fails {
                (
                    condition(
                        "Available",
                        "False",
                        "MinimumReplicasUnavailable",
                        "Deployment does not have minimum availability.",
                        &now,
                    ),
                    condition(
                        "Progressing",
                        "True",
                        "ReplicaSetUpdated",
                        &format!("ReplicaSet \"{revision}\" is progressing."),
                        &now,
                    ),
                )
            } else {
                (
                    condition(
                        "Available",
                        "True",
                        "MinimumReplicasAvailable",
                        "Deployment has minimum availability.",
                        &now,
                    ),
                    condition(
                        "Progressing",
                        "True",
                        "NewReplicaSetAvailable",
                        &format!("ReplicaSet \"{revision}\" has successfully progressed."),
                        &now,
                    ),
                )
            };
            json!({
                "observedGeneration": generation,
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": ready,
                "availableReplicas": ready,
                "unavailableReplicas": replicas - ready,
                "conditions": [available, progressing],
            })
        }
        "StatefulSet" => json!({
            "observedGeneration": generation,
            "replicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "currentReplicas": replicas,
            "updatedReplicas": replicas,
            "currentRevision": revision,
            "updateRevision": revision,
            "collisionCount": 0,
        }),
        "ReplicaSet" => json!({
            "observedGeneration": generation,
            "replicas": replicas,
            "fullyLabeledReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
        }),
        // One node: a DaemonSet wants one pod.
        "DaemonSet" => json!({
            "observedGeneration": generation,
            "desiredNumberScheduled": 1,
            "currentNumberScheduled": 1,
            "updatedNumberScheduled": 1,
            "numberMisscheduled": 0,
            "numberReady": if fails { 0 } else { 1 },
            "numberAvailable": if fails { 0 } else { 1 },
            "numberUnavailable": if fails { 1 } else { 0 },
        }),
        "Job" if fails => json!({"active": 1, "ready": 0, "startTime": now}),
        "Job" => json!({
            "succeeded": obj["spec"]["completions"].as_i64().unwrap_or(1),
            "active": 0,
            "ready": 0,
            "startTime": now,
            "completionTime": now,
            "conditions": [
                condition("SuccessCriteriaMet", "True", "CompletionsReached", "Reached expected number of succeeded pods", &now),
                condition("Complete", "True", "CompletionsReached", "Reached expected number of succeeded pods", &now),
            ],
        }),
        _ => return None,
    };
    Some(status)
}

/// How many pods a rolling update may add (`maxSurge`) and take away (`maxUnavailable`)
/// for `replicas`, percentages rounded as the controller does (surge up, unavailable
/// down).
fn rolling_bounds(obj: &Value, replicas: i64) -> (i64, i64) {
    let rolling = &obj["spec"]["strategy"]["rollingUpdate"];
    let resolve = |v: &Value, default: &str, round_up: bool| -> i64 {
        match v {
            Value::Number(n) => n.as_i64().unwrap_or(0),
            Value::String(p) => {
                let pct: i64 = p.trim_end_matches('%').parse().unwrap_or(0);
                if round_up {
                    (replicas * pct + 99) / 100
                } else {
                    replicas * pct / 100
                }
            }
            _ => {
                let pct: i64 = default.trim_end_matches('%').parse().unwrap_or(25);
                if round_up {
                    (replicas * pct + 99) / 100
                } else {
                    replicas * pct / 100
                }
            }
        }
    };
    let surge = resolve(&rolling["maxSurge"], "25%", true);
    let unavailable = resolve(&rolling["maxUnavailable"], "25%", false);
    // Both zero is refused by validation; the controller then surges by one.
    if surge == 0 && unavailable == 0 {
        (1, 0)
    } else {
        (surge, unavailable)
    }
}

/// A Deployment's status while its rolling update is under way (or stuck): the
/// controller has seen the new spec at once and created the surge pods; the old pods
/// it may not take away (`maxUnavailable`, 0 keeps them all) stay available. `previous`:
/// the status before the update (no old pods when the Deployment is new).
pub fn rolling_deployment(obj: &Value, previous: &Value) -> Value {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let generation = obj["metadata"]["generation"].as_i64().unwrap_or(1);
    let replicas = obj["spec"]["replicas"].as_i64().unwrap_or(1);
    let (surge, max_unavailable) = rolling_bounds(obj, replicas);
    let old_available = previous["availableReplicas"]
        .as_i64()
        .unwrap_or(0)
        .min(replicas);
    let old_kept = old_available.min(replicas).max(0);
    // The old ReplicaSet is scaled down only as far as `maxUnavailable` allows.
    let available_now = if previous.is_null() {
        0
    } else {
        old_kept.min(replicas - max_unavailable).max(0)
    };
    let new_pods = surge.max(1).min(replicas.max(1));
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let revision = format!("{name}-{:08x}", template_hash(obj));
    let minimum = replicas - max_unavailable;
    let available = if available_now >= minimum {
        condition(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            &now,
        )
    } else {
        condition(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            &now,
        )
    };
    let progressing = condition(
        "Progressing",
        "True",
        "ReplicaSetUpdated",
        &format!("ReplicaSet \"{revision}\" is progressing."),
        &now,
    );
    json!({
        "observedGeneration": generation,
        "replicas": available_now + new_pods,
        "updatedReplicas": new_pods,
        "readyReplicas": available_now,
        "availableReplicas": available_now,
        "unavailableReplicas": (replicas - available_now).max(0),
        "conditions": [available, progressing],
    })
}

/// A Job whose pods keep failing, once past its backoff limit: first `FailureTarget`
/// (the controller has decided, pods are being terminated), then with `final_` also
/// `Failed`, as the Job controller writes them since Kubernetes 1.31.
pub fn failed_job(obj: &Value, final_: bool) -> Value {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let backoff = obj["spec"]["backoffLimit"].as_i64().unwrap_or(6);
    let message = "Job has reached the specified backoff limit";
    let mut conditions = vec![condition(
        "FailureTarget",
        "True",
        "BackoffLimitExceeded",
        message,
        &now,
    )];
    if final_ {
        conditions.push(condition(
            "Failed",
            "True",
            "BackoffLimitExceeded",
            message,
            &now,
        ));
    }
    let mut status = json!({
        "failed": backoff + 1,
        "active": 0,
        "ready": 0,
        "startTime": obj["status"]["startTime"].as_str().unwrap_or(&now),
        "conditions": conditions,
    });
    if !final_ {
        status["terminating"] = json!(1);
    }
    status
}

/// A stuck Deployment's status once its progress deadline has passed.
pub fn deadline_exceeded(obj: &Value) -> Value {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let revision = format!("{name}-{:08x}", template_hash(obj));
    let mut status = obj["status"].clone();
    let progressing = condition(
        "Progressing",
        "False",
        "ProgressDeadlineExceeded",
        &format!("ReplicaSet \"{revision}\" has timed out progressing."),
        &now,
    );
    let mut conditions: Vec<Value> = status["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c["type"] != "Progressing")
        .collect();
    conditions.push(progressing);
    status["conditions"] = Value::Array(conditions);
    status
}

fn condition(kind: &str, status: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
    })
}

/// A stable short hash of the pod template, like `pod-template-hash`.
fn template_hash(obj: &Value) -> u32 {
    // FNV-1a: stable across runs, unlike std's RandomState hasher.
    let text = obj["spec"]["template"].to_string();
    text.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(image: &str) -> Value {
        json!({"metadata": {"name": "web", "generation": 3},
               "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a", "image": image}]}}}})
    }

    #[test]
    fn marker_in_any_container_image_fails_the_rollout() {
        assert!(has_image_containing(
            &deployment("registry/fail-me:1"),
            Some("fail")
        ));
        assert!(!has_image_containing(
            &deployment("nginx:1.27"),
            Some("fail")
        ));
        assert!(!has_image_containing(
            &deployment("registry/fail-me:1"),
            None
        ));
    }

    #[test]
    fn a_ready_deployment_reports_every_replica_for_its_generation() {
        let s = settled_status("Deployment", &deployment("nginx"), false).unwrap();
        assert_eq!(s["observedGeneration"], 3);
        assert_eq!(s["readyReplicas"], 2);
        assert_eq!(s["availableReplicas"], 2);
        assert_eq!(s["conditions"][0]["status"], "True");
        assert_eq!(s["conditions"][1]["reason"], "NewReplicaSetAvailable");
    }

    #[test]
    fn a_stuck_update_with_max_unavailable_zero_keeps_the_old_pods_available() {
        let mut d = deployment("web:2");
        d["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}});
        let before = json!({"availableReplicas": 2, "readyReplicas": 2});
        let s = rolling_deployment(&d, &before);
        assert_eq!(s["observedGeneration"], 3);
        assert_eq!(s["availableReplicas"], 2);
        assert_eq!(s["updatedReplicas"], 1);
        assert_eq!(s["replicas"], 3);
        assert_eq!(s["conditions"][0]["status"], "True");
        assert_eq!(s["conditions"][1]["reason"], "ReplicaSetUpdated");
        // A new Deployment has no old pods to keep.
        let fresh = rolling_deployment(&d, &Value::Null);
        assert_eq!(fresh["availableReplicas"], 0);
        assert_eq!(fresh["conditions"][0]["status"], "False");
    }

    #[test]
    fn a_failed_job_reports_failure_target_then_failed() {
        let job = json!({"metadata": {"name": "migrate"}, "spec": {"backoffLimit": 2}});
        let target = failed_job(&job, false);
        assert_eq!(target["failed"], 3);
        assert_eq!(target["conditions"].as_array().unwrap().len(), 1);
        assert_eq!(target["conditions"][0]["type"], "FailureTarget");
        let failed = failed_job(&job, true);
        assert_eq!(failed["conditions"][1]["type"], "Failed");
        assert_eq!(failed["conditions"][1]["reason"], "BackoffLimitExceeded");
    }

    #[test]
    fn a_failing_deployment_has_no_ready_pods() {
        let s = settled_status("Deployment", &deployment("fail"), true).unwrap();
        assert_eq!(s["readyReplicas"], 0);
        assert_eq!(s["conditions"][0]["status"], "False");
        assert!(settled_status("ConfigMap", &json!({}), false).is_none());
    }
}
