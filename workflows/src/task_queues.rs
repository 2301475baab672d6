//! Task queue names. Work is split by what it touches so a fleet can scale each kind apart,
//! and by placement so a worker can run inside a customer's network (or one region) and
//! see only the work meant for it.

/// Cloud access, clusters, terraform: long, rate-limited cloud calls.
pub const INFRASTRUCTURE: &str = "windlass-infrastructure";
/// Application deployments: helm and Kubernetes calls against clusters.
pub const ENVIRONMENT: &str = "windlass-environment";

/// Every kind of work, in the order an operator reads them.
pub const KINDS: [&str; 2] = [INFRASTRUCTURE, ENVIRONMENT];

/// The queue of `kind` for a placement (a region such as `westeurope`, or a customer's
/// own pool such as `acme-onprem`); the shared queue when there is none.
pub fn placed(kind: &str, placement: Option<&str>) -> String {
    match placement {
        Some(placement) => format!("{kind}@{placement}"),
        None => kind.to_owned(),
    }
}

/// A placement is 1 to 63 lowercase letters, digits and dashes (the rule is the cluster
/// spec's).
pub fn validate_placement(placement: &str) -> Result<(), String> {
    windlass_core::clusters::validate_placement(placement).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_placed_queue_names_its_kind_and_placement() {
        assert_eq!(placed(ENVIRONMENT, None), "windlass-environment");
        assert_eq!(
            placed(ENVIRONMENT, Some("acme-onprem")),
            "windlass-environment@acme-onprem"
        );
    }

    #[test]
    fn placements_are_plain_names() {
        assert!(validate_placement("westeurope").is_ok());
        assert!(validate_placement("acme-onprem-2").is_ok());
        for bad in ["", "Acme", "a@b", "-x", &"x".repeat(64)] {
            assert!(validate_placement(bad).is_err(), "{bad:?}");
        }
    }
}
