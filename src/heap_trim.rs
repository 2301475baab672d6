//! Gives freed heap back to the system every few seconds (glibc's `malloc_trim`).
//!
//! glibc keeps what a process frees for its next allocation and returns memory to the
//! system only from the top of each arena. A worker's heap peaks while many steps run at
//! once (TLS handshakes, response bodies, workflow histories) and then falls back, but its
//! resident memory stayed at every peak it ever reached: under heaptrack the worker's heap
//! never passed 20 MB over 250 tenants while its private memory grew from 14 to 36 MB
//! over 1,000 (`benches/worker_memory.rs`). Trimming returns the free pages in the middle
//! of the arenas too, so resident memory follows what is in use.

use std::time::Duration;

/// Often enough that a quiet worker is back to its live heap within seconds; a trim of a
/// heap this size takes about a millisecond.
const EVERY: Duration = Duration::from_secs(10);

/// Trims every [`EVERY`] for as long as the process runs (like the API's audit digest
/// task). Elsewhere than Linux with glibc, does nothing.
pub fn spawn() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            trim();
        }
    })
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim takes the allocator's own locks; it is safe to call at any time
    // from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
