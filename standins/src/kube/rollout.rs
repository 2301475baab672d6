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
    fn a_failing_deployment_has_no_ready_pods() {
        let s = settled_status("Deployment", &deployment("fail"), true).unwrap();
        assert_eq!(s["readyReplicas"], 0);
        assert_eq!(s["conditions"][0]["status"], "False");
        assert!(settled_status("ConfigMap", &json!({}), false).is_none());
    }
}
