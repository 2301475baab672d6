//! The memory a worker lets its helm processes use at once.
//!
//! A fixed number of activity slots says nothing about memory, and so each helm process is
//! admitted against a budget in megabytes, for what helm processes were seen to need: the
//! highest peak of their *private* memory (`RssAnon`: heap and stacks) among the last few
//! of them, read from `/proc` while they ran, with a starting guess until one has been
//! seen. A process waits for room rather than starting; one that alone needs more than the
//! whole budget runs when nothing else does. Slots then only bound what is cheap (a
//! rollout watch, an API call) and can be many.
//!
//! Why private memory and not the resident set (`VmRSS`, `VmHWM`): about 45 of helm 4's
//! 57 MB resident are its binary's pages, mapped from the page cache and shared by every
//! helm process at once. Counting them per process admitted a third as many processes as
//! fit (issue 14: 768 MB let 11 helm processes run where 29 fit).
//!
//! The admitted size is also what the process is told it may use (`GOMEMLIMIT`, see
//! `helm::cli`): Go's collector works harder near it rather than let the heap pass it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Peaks remembered: enough to follow a change of chart or provider version,
/// few enough that one unusual process stops counting soon.
const REMEMBERED_PEAKS: usize = 8;
/// How often a running process's private memory is read (a helm call lasts about a second).
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// A worker's budget for one program's processes, shared by every one it starts.
#[derive(Debug)]
pub struct MemoryBudget {
    program: &'static str,
    total_mb: u32,
    /// What a process is assumed to need before one has been measured.
    first_guess_mb: u32,
    room: Arc<Semaphore>,
    peaks: Mutex<VecDeque<u32>>,
}

/// helm 4's private memory peaks at 15 to 25 MB for one release (issue 14's measurement,
/// with the collector settings `helm::cli` gives it).
pub const HELM_FIRST_GUESS_MB: u32 = 32;

impl MemoryBudget {
    /// `total_mb` for `program`'s processes together.
    pub fn new(program: &'static str, total_mb: u32, first_guess_mb: u32) -> Arc<Self> {
        let total_mb = total_mb.max(1);
        Arc::new(Self {
            program,
            total_mb,
            first_guess_mb,
            room: Arc::new(Semaphore::new(total_mb as usize)),
            peaks: Mutex::new(VecDeque::new()),
        })
    }

    /// helm's budget.
    pub fn for_helm(total_mb: u32) -> Arc<Self> {
        Self::new("helm", total_mb, HELM_FIRST_GUESS_MB)
    }

    /// Megabytes a process is admitted for now.
    pub fn estimate_mb(&self) -> u32 {
        let peaks = self.peaks.lock().unwrap_or_else(|e| e.into_inner());
        let seen = peaks.iter().max().copied();
        // A tenth more than the highest seen: the next chart may be a little bigger.
        let mb = seen.map_or(self.first_guess_mb, |peak| peak + peak / 10 + 1);
        mb.clamp(1, self.total_mb)
    }

    /// Megabytes admitted processes hold now.
    pub fn in_use_mb(&self) -> u32 {
        self.total_mb - self.room.available_permits() as u32
    }

    /// Waits until a process fits, telling `waiting` once if it must wait.
    pub async fn admit(self: &Arc<Self>, waiting: impl FnOnce(&str)) -> Admission {
        let mb = self.estimate_mb();
        let permit = match self.room.clone().try_acquire_many_owned(mb) {
            Ok(permit) => permit,
            Err(_) => {
                waiting(&format!(
                    "waiting for memory to start {}: it needs about {mb} MB and {} of this worker's {} MB are in use by other processes",
                    self.program,
                    self.in_use_mb(),
                    self.total_mb
                ));
                self.room
                    .clone()
                    .acquire_many_owned(mb)
                    .await
                    .expect("the budget's semaphore is never closed")
            }
        };
        Admission {
            budget: self.clone(),
            mb,
            _permit: permit,
            peak_kb: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            sampler: None,
        }
    }

    fn remember_peak(&self, peak_mb: u32) {
        let mut seen = self.peaks.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() == REMEMBERED_PEAKS {
            seen.pop_front();
        }
        seen.push_back(peak_mb);
    }
}

/// Room held for one process; dropping it gives the room back and remembers the peak.
#[derive(Debug)]
pub struct Admission {
    budget: Arc<MemoryBudget>,
    mb: u32,
    _permit: OwnedSemaphorePermit,
    peak_kb: Arc<std::sync::atomic::AtomicU64>,
    sampler: Option<tokio::task::JoinHandle<()>>,
}

impl Admission {
    /// Megabytes this process was admitted for.
    pub fn mb(&self) -> u32 {
        self.mb
    }

    /// Follows the started process `pid`'s private memory until it exits.
    pub fn watch(&mut self, pid: u32) {
        let peak = self.peak_kb.clone();
        self.sampler = Some(tokio::spawn(async move {
            while let Some(kb) = private_kb(pid) {
                peak.fetch_max(kb, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
        }));
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(sampler) = self.sampler.take() {
            sampler.abort();
        }
        let kb = self.peak_kb.load(std::sync::atomic::Ordering::Relaxed);
        if kb > 0 {
            self.budget
                .remember_peak(u32::try_from(kb.div_ceil(1024)).unwrap_or(u32::MAX));
        }
    }
}

/// The private memory of a running process now (`RssAnon`), `None` once it is gone (a
/// zombie reports no memory: it is done). Linux keeps no peak of it, hence the sampling.
fn private_kb(pid: u32) -> Option<u64> {
    process_status_kb(pid, "RssAnon")
}

/// A memory figure of process `pid` from `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in kB.
pub fn process_status_kb(pid: u32, field: &str) -> Option<u64> {
    kb_field(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        field,
    )
}

/// `<field>:   <n> kB` in a `/proc` file's text (`status`, `meminfo`, `smaps_rollup`).
pub fn kb_field(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The default budget: a quarter of the memory available when the worker starts, between
/// 256 MB and 768 MB (some twenty-five helm processes of 30 MB private memory; helm's own
/// work is a tenth of a CPU-second, the rest of its second is waiting on the cluster).
pub fn default_total_mb() -> u32 {
    let available_mb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| kb_field(&info, "MemAvailable"))
        .map(|kb| u32::try_from(kb / 1024).unwrap_or(u32::MAX));
    available_mb.map_or(768, |mb| (mb / 4).clamp(256, 768))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_process_that_does_not_fit_waits_until_another_gives_room_back() {
        let budget = MemoryBudget::new("helm", 100, 64);
        let first = budget.admit(|_| {}).await;
        assert_eq!(budget.in_use_mb(), 64);
        let said = Arc::new(Mutex::new(None));
        let told = said.clone();
        let second = tokio::spawn({
            let budget = budget.clone();
            async move {
                budget
                    .admit(move |m| *told.lock().unwrap() = Some(m.to_owned()))
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished(), "64 + 64 MB do not fit in 100");
        assert!(
            said.lock()
                .unwrap()
                .as_deref()
                .is_some_and(|m| m.contains("waiting for memory to start helm")),
            "{said:?}"
        );
        drop(first);
        let second = second.await.unwrap();
        assert_eq!(budget.in_use_mb(), 64);
        assert_eq!(second.mb(), 64, "what it was admitted for");
    }

    #[tokio::test]
    async fn the_estimate_follows_the_peaks_seen() {
        let budget = MemoryBudget::new("helm", 1024, 64);
        assert_eq!(budget.estimate_mb(), 64);
        budget.remember_peak(40);
        budget.remember_peak(50);
        assert_eq!(budget.estimate_mb(), 56);
        for _ in 0..REMEMBERED_PEAKS {
            budget.remember_peak(30);
        }
        assert_eq!(budget.estimate_mb(), 34, "old peaks are forgotten");
    }

    #[tokio::test]
    async fn a_process_bigger_than_the_whole_budget_runs_alone() {
        let budget = MemoryBudget::new("terraform", 200, 384);
        let alone = budget.admit(|_| {}).await;
        assert_eq!(budget.in_use_mb(), 200);
        drop(alone);
        assert_eq!(budget.in_use_mb(), 0);
    }

    #[tokio::test]
    async fn a_watched_process_peak_is_remembered() {
        let budget = MemoryBudget::new("helm", 1024, 64);
        let mut admission = budget.admit(|_| {}).await;
        let mut child = tokio::process::Command::new("sleep")
            .arg("0.3")
            .spawn()
            .unwrap();
        admission.watch(child.id().unwrap());
        tokio::time::sleep(Duration::from_millis(150)).await;
        child.wait().await.unwrap();
        drop(admission);
        let estimate = budget.estimate_mb();
        assert!(
            estimate < 64,
            "sleep's private memory (under a MB) replaced the first guess: {estimate}"
        );
    }
}
