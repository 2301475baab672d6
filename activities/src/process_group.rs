//! A child's whole process group dies with the worker that started it.
//!
//! `PR_SET_PDEATHSIG` reaches only the direct child: what terraform starts (provisioners'
//! shells, provider plugins) is reparented when the worker dies and goes on creating
//! resources terraform never records. So every such child runs in its own process group
//! with a watchdog in that group: a process forked just before `exec` that holds the read
//! end of a pipe whose write end only the worker holds. When the worker closes it (the
//! [`GroupWatchdog`] is dropped: the command finished, was cancelled, or its future was
//! dropped) or the kernel closes it (the worker died, even by SIGKILL), the watchdog reads
//! end-of-file and SIGKILLs the whole group, itself included.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Holds the watchdog's pipe; dropping it kills the child's group.
#[derive(Debug)]
pub(crate) struct GroupWatchdog {
    _write: OwnedFd,
    /// Only the watchdog reads; the worker's copy (named by the `pre_exec` closure, so
    /// kept until the spawn) is closed with the write end, which is what counts.
    _read: OwnedFd,
}

impl GroupWatchdog {
    /// Puts `command` in its own process group, watched: call before `spawn`, and keep the
    /// returned value for as long as the child may run.
    pub(crate) fn arm(command: &mut tokio::process::Command) -> io::Result<Self> {
        let (read, write) = pipe()?;
        let read_fd = read.as_raw_fd();
        command.process_group(0);
        // SAFETY: between fork and exec the closure calls only async-signal-safe functions
        // (prctl, fork, close, close_range, read, kill, _exit) and allocates nothing.
        unsafe {
            command.pre_exec(move || {
                #[cfg(target_os = "linux")]
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                match libc::fork() {
                    -1 => Err(io::Error::last_os_error()),
                    0 => watch(read_fd),
                    // The child goes on to exec; both pipe ends are close-on-exec.
                    _ => Ok(()),
                }
            });
        }
        Ok(Self {
            _write: write,
            _read: read,
        })
    }
}

/// The watchdog: never returns.
fn watch(read_fd: RawFd) -> ! {
    // SAFETY: async-signal-safe calls on descriptors of this forked process only.
    unsafe {
        // Keep nothing but the pipe's read end: not the command's stdout (its reader would
        // never see end-of-file), nor the write end, nor any other child's pipe.
        close_all_but(read_fd);
        let mut byte = 0u8;
        loop {
            let n = libc::read(read_fd, (&raw mut byte).cast(), 1);
            let interrupted = io::Error::last_os_error().raw_os_error() == Some(libc::EINTR);
            if n == 0 || (n < 0 && !interrupted) {
                break;
            }
        }
        // Our group is the command's (process_group(0) comes before pre_exec).
        libc::kill(0, libc::SIGKILL);
        libc::_exit(0)
    }
}

unsafe fn close_all_but(keep: RawFd) {
    // SAFETY: the caller is the forked watchdog.
    unsafe {
        #[cfg(target_os = "linux")]
        {
            let below = keep as libc::c_uint;
            let ok_low =
                keep == 0 || libc::syscall(libc::SYS_close_range, 0u32, below - 1, 0u32) == 0;
            let ok_high = libc::syscall(libc::SYS_close_range, below + 1, u32::MAX, 0u32) == 0;
            if ok_low && ok_high {
                return;
            }
        }
        for fd in 0..4096 {
            if fd != keep {
                libc::close(fd);
            }
        }
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn alive(pid: i32) -> bool {
        // A zombie is dead for our purpose: it runs nothing.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
            .unwrap_or(false)
    }

    #[tokio::test]
    async fn dropping_the_watchdog_kills_what_the_child_started() {
        let mut command = tokio::process::Command::new("sh");
        command
            .args(["-c", "sleep 60 & echo $!; wait"])
            .stdout(std::process::Stdio::piped());
        let watchdog = GroupWatchdog::arm(&mut command).unwrap();
        let mut child = command.spawn().unwrap();
        let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        tokio::io::AsyncBufReadExt::read_line(&mut out, &mut line)
            .await
            .unwrap();
        let grandchild: i32 = line.trim().parse().unwrap();
        assert!(alive(grandchild));
        drop(watchdog);
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(grandchild) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!alive(grandchild), "the group was killed");
        let status = child.wait().await.unwrap();
        assert!(!status.success());
    }

    #[tokio::test]
    async fn a_command_that_ends_by_itself_sees_end_of_file_at_once() {
        let mut command = tokio::process::Command::new("sh");
        command
            .args(["-c", "echo done"])
            .stdout(std::process::Stdio::piped());
        let _watchdog = GroupWatchdog::arm(&mut command).unwrap();
        let started = Instant::now();
        let output = command.output().await.unwrap();
        assert_eq!(String::from_utf8_lossy(&output.stdout), "done\n");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
