//! When a held state lock may be broken.
//!
//! The invariant that makes this safe: a cluster's state is only ever touched by one cluster
//! operation at a time (the API refuses a second), and Temporal runs one attempt of an
//! activity at a time, retrying only once the previous attempt failed or stopped
//! heartbeating. Terraform dies with its worker (PR_SET_PDEATHSIG), and a live worker whose
//! heartbeat was refused interrupts its terraform. So a lock taken before this retry was
//! scheduled belonged to a dead attempt, once the interrupted one has had its grace period
//! to stop cleanly.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};

use super::messages::LockInfo;

#[derive(Debug, Clone, Copy)]
pub struct StaleLockPolicy {
    /// How long an interrupted terraform may take to release its own lock.
    pub grace: Duration,
}

/// Whether `lock` was left by an earlier, dead attempt of the activity now on `attempt`,
/// which Temporal scheduled at `attempt_scheduled`.
pub fn is_stale(
    lock: &LockInfo,
    attempt: u32,
    attempt_scheduled: SystemTime,
    now: SystemTime,
    policy: StaleLockPolicy,
) -> bool {
    if attempt <= 1 {
        return false;
    }
    let Some(created) = parse_created(&lock.created) else {
        return false;
    };
    let created = SystemTime::from(created);
    created < attempt_scheduled && now.duration_since(created).unwrap_or_default() >= policy.grace
}

/// Terraform prints Go's default time format: `2026-11-24 20:00:00.123456789 +0000 UTC`.
fn parse_created(created: &str) -> Option<DateTime<Utc>> {
    let trimmed = created.trim().trim_end_matches(" UTC");
    DateTime::parse_from_str(trimmed, "%Y-%m-%d %H:%M:%S%.f %z")
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(created: &str) -> LockInfo {
        LockInfo {
            id: "l1".into(),
            created: created.into(),
            ..LockInfo::default()
        }
    }

    fn at(text: &str) -> SystemTime {
        SystemTime::from(parse_created(text).unwrap())
    }

    const GRACE: StaleLockPolicy = StaleLockPolicy {
        grace: Duration::from_secs(30),
    };

    #[test]
    fn a_lock_from_before_a_retry_is_stale_once_the_grace_is_over() {
        let lock = lock("2026-11-24 20:00:00.5 +0000 UTC");
        let scheduled = at("2026-11-24 20:00:20 +0000 UTC");
        assert!(!is_stale(
            &lock,
            2,
            scheduled,
            at("2026-11-24 20:00:21 +0000 UTC"),
            GRACE
        ));
        assert!(is_stale(
            &lock,
            2,
            scheduled,
            at("2026-11-24 20:00:31 +0000 UTC"),
            GRACE
        ));
    }

    #[test]
    fn a_first_attempt_never_breaks_a_lock() {
        let lock = lock("2026-11-24 20:00:00 +0000 UTC");
        let later = at("2026-11-24 21:00:00 +0000 UTC");
        assert!(!is_stale(&lock, 1, later, later, GRACE));
    }

    #[test]
    fn a_lock_taken_after_the_retry_was_scheduled_is_live() {
        let lock = lock("2026-11-24 20:00:30 +0000 UTC");
        let scheduled = at("2026-11-24 20:00:20 +0000 UTC");
        assert!(!is_stale(
            &lock,
            3,
            scheduled,
            at("2026-11-24 21:00:00 +0000 UTC"),
            GRACE
        ));
    }

    #[test]
    fn an_unreadable_creation_time_is_never_stale() {
        let later = at("2026-11-24 21:00:00 +0000 UTC");
        assert!(!is_stale(&lock("yesterday"), 5, later, later, GRACE));
    }
}
