//! When a held state lock may be broken.
//!
//! The invariant that makes this safe: a cluster's state is only ever touched by one cluster
//! operation at a time (the API refuses a second), and Temporal runs one attempt of an
//! activity at a time, retrying only once the previous attempt failed or stopped
//! heartbeating. Terraform and everything it started die with their worker (its process
//! group is killed, see `crate::process_group`), and a live worker whose heartbeat was
//! refused interrupts its terraform; an attempt whose lock was broken is refused at its
//! next state upload and its terraform killed.
//!
//! So the lock's [`LockHolder`] (written into the lock's `Info`) settles it at once: a lock
//! held by an earlier attempt of this very activity, or by a worker process on this machine
//! that no longer runs, belongs to a dead attempt. Only a lock whose holder cannot be told
//! (no holder recorded, another machine's worker) waits for the grace: taken before this
//! retry was scheduled, and old enough for an interrupted terraform to have stopped.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::messages::LockInfo;

#[derive(Debug, Clone, Copy)]
pub struct StaleLockPolicy {
    /// How long an interrupted terraform may take to release its own lock.
    pub grace: Duration,
}

/// Who took a lock: the worker process and the activity attempt, as the lock's `Info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub worker: String,
    /// The machine and process namespace the pid means something in (host name, boot id,
    /// pid namespace): another machine's pid is never looked up here.
    pub host: String,
    pub pid: u32,
    /// The process's start time (clock ticks since boot), so a reused pid is not the holder.
    pub pid_start: Option<u64>,
    pub workflow_id: String,
    pub workflow_run_id: String,
    pub activity_id: String,
    pub attempt: u32,
}

/// Why a held lock may be broken now, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockVerdict {
    /// Its holder may still be running: wait for it (a Temporal retry).
    Live,
    /// An earlier attempt of the same activity holds it: Temporal started this attempt
    /// because that one is over.
    EarlierAttempt { holder_attempt: u32 },
    /// Its worker process, on this machine, is gone.
    WorkerGone { worker: String, pid: u32 },
    /// No holder could be told; the lock predates this retry and outlived the grace.
    StaleAfterGrace,
}

impl LockVerdict {
    pub fn is_dead(&self) -> bool {
        !matches!(self, Self::Live)
    }
}

impl std::fmt::Display for LockVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Live => f.write_str("its holder may be alive"),
            Self::EarlierAttempt { holder_attempt } => write!(
                f,
                "its holder, attempt {holder_attempt} of this step, is dead (a later attempt runs)"
            ),
            Self::WorkerGone { worker, pid } => {
                write!(f, "its holder's worker {worker} (pid {pid}) is dead")
            }
            Self::StaleAfterGrace => f.write_str("it outlived the stale-lock grace"),
        }
    }
}

impl LockHolder {
    /// This worker process, running `attempt` of `activity_id` in a workflow run.
    pub fn this_process(
        worker: &str,
        workflow_id: &str,
        workflow_run_id: &str,
        activity_id: &str,
        attempt: u32,
    ) -> Self {
        let pid = std::process::id();
        Self {
            worker: worker.to_owned(),
            host: host_identity(),
            pid,
            pid_start: process_start(pid),
            workflow_id: workflow_id.to_owned(),
            workflow_run_id: workflow_run_id.to_owned(),
            activity_id: activity_id.to_owned(),
            attempt,
        }
    }

    pub fn to_info(&self) -> String {
        serde_json::to_string(self).expect("a lock holder serialises")
    }

    /// The holder a lock's `Info` names; `None` for locks of other writers.
    pub fn from_info(info: &str) -> Option<Self> {
        serde_json::from_str(info).ok()
    }

    fn same_activity(&self, other: &Self) -> bool {
        self.workflow_id == other.workflow_id
            && self.workflow_run_id == other.workflow_run_id
            && self.activity_id == other.activity_id
    }
}

/// Whether `lock` may be broken by `me`, the attempt Temporal scheduled at
/// `attempt_scheduled`.
pub fn judge(
    lock: &LockInfo,
    me: &LockHolder,
    attempt_scheduled: SystemTime,
    now: SystemTime,
    policy: StaleLockPolicy,
) -> LockVerdict {
    if let Some(holder) = LockHolder::from_info(&lock.info) {
        if holder.same_activity(me) && holder.attempt < me.attempt {
            return LockVerdict::EarlierAttempt {
                holder_attempt: holder.attempt,
            };
        }
        if holder.host == me.host && !process_runs(holder.pid, holder.pid_start) {
            return LockVerdict::WorkerGone {
                worker: holder.worker,
                pid: holder.pid,
            };
        }
    }
    if is_stale(lock, me.attempt, attempt_scheduled, now, policy) {
        LockVerdict::StaleAfterGrace
    } else {
        LockVerdict::Live
    }
}

/// Whether `lock` was left by an earlier, dead attempt of the activity now on `attempt`,
/// which Temporal scheduled at `attempt_scheduled`, judged by time alone.
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

/// Host name, boot and pid namespace: two processes with equal identities see the same pids.
fn host_identity() -> String {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let pid_namespace = std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    format!(
        "{}/{}/{}",
        read("/proc/sys/kernel/hostname").trim(),
        read("/proc/sys/kernel/random/boot_id").trim(),
        pid_namespace
    )
}

/// Field 22 of `/proc/<pid>/stat`, and whether the process is a zombie.
fn process_stat(pid: u32) -> Option<(u64, bool)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; everything after its `)` splits cleanly.
    let (_, rest) = stat.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let zombie = fields
        .first()
        .is_some_and(|state| *state == "Z" || *state == "X");
    Some((fields.get(19)?.parse().ok()?, zombie))
}

fn process_start(pid: u32) -> Option<u64> {
    process_stat(pid).map(|(start, _)| start)
}

/// Whether the process `pid` that started at `start` still runs.
fn process_runs(pid: u32, start: Option<u64>) -> bool {
    match process_stat(pid) {
        None => false,
        Some((_, true)) => false,
        Some((now_start, false)) => start.is_none_or(|s| s == now_start),
    }
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

    fn holder(attempt: u32) -> LockHolder {
        LockHolder::this_process("first", "cluster-1", "run-1", "3", attempt)
    }

    fn held_by(holder: &LockHolder, created: &str) -> LockInfo {
        LockInfo {
            info: holder.to_info(),
            ..lock(created)
        }
    }

    #[test]
    fn a_lock_of_an_earlier_attempt_of_the_same_step_is_dead_at_once() {
        let created = "2026-11-24 20:00:00 +0000 UTC";
        let now = at("2026-11-24 20:00:01 +0000 UTC");
        let verdict = judge(&held_by(&holder(1), created), &holder(2), now, now, GRACE);
        assert_eq!(verdict, LockVerdict::EarlierAttempt { holder_attempt: 1 });
        assert!(verdict.is_dead());
        // The same attempt, or another step's, is not judged by attempt numbers.
        let mut other = holder(1);
        other.activity_id = "4".into();
        other.pid_start = process_start(std::process::id());
        assert_eq!(
            judge(&held_by(&other, created), &holder(2), now, now, GRACE),
            LockVerdict::Live
        );
        assert_eq!(
            judge(&held_by(&holder(2), created), &holder(2), now, now, GRACE),
            LockVerdict::Live
        );
    }

    #[test]
    fn a_lock_of_a_worker_process_that_is_gone_is_dead_at_once() {
        let created = "2026-11-24 20:00:00 +0000 UTC";
        let now = at("2026-11-24 20:00:01 +0000 UTC");
        let mut gone = holder(1);
        gone.activity_id = "another step".into();
        // This process, but not the one that started then: the pid was reused.
        gone.pid_start = gone.pid_start.map(|s| s + 1);
        assert_eq!(
            judge(&held_by(&gone, created), &holder(1), now, now, GRACE),
            LockVerdict::WorkerGone {
                worker: "first".into(),
                pid: std::process::id()
            }
        );
        // Another machine's pid is never looked up.
        gone.host = "elsewhere".into();
        assert_eq!(
            judge(&held_by(&gone, created), &holder(1), now, now, GRACE),
            LockVerdict::Live
        );
    }

    #[test]
    fn a_lock_without_a_holder_waits_for_the_grace() {
        let lock = lock("2026-11-24 20:00:00 +0000 UTC");
        let scheduled = at("2026-11-24 20:00:20 +0000 UTC");
        let me = holder(2);
        let early = at("2026-11-24 20:00:21 +0000 UTC");
        let late = at("2026-11-24 20:00:31 +0000 UTC");
        assert_eq!(
            judge(&lock, &me, scheduled, early, GRACE),
            LockVerdict::Live
        );
        assert_eq!(
            judge(&lock, &me, scheduled, late, GRACE),
            LockVerdict::StaleAfterGrace
        );
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
