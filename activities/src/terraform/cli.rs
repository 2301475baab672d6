//! Runs the terraform CLI: one process per command, `-json` output streamed line by line to
//! the caller, exit codes interpreted, cancellation as terraform expects it (SIGINT, which
//! lets it stop cleanly and release its state lock; SIGKILL only after a grace period).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

use super::error::TerraformError;
use super::messages::{ChangeSummary, Diagnostic, LockInfo, TerraformMessage};
use super::plan::{PlanGuard, PlanReport};
use crate::process_group::GroupWatchdog;

/// The saved plan inside a working directory.
pub const PLAN_FILE: &str = "windlass.tfplan";

/// A terraform binary and how to run it.
#[derive(Debug, Clone)]
pub struct Terraform {
    program: PathBuf,
    interrupt_grace: Duration,
    env: Vec<(String, String)>,
}

/// The outcome of `plan -detailed-exitcode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Exit code 2: there is something to do.
    pub has_changes: bool,
    pub summary: ChangeSummary,
    pub report: PlanReport,
}

/// What a command left behind once it exited.
struct Finished {
    code: i32,
    diagnostics: Vec<Diagnostic>,
    summary: Option<ChangeSummary>,
    stdout: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Output {
    /// `-json` UI lines, each handed to the log as it arrives.
    Stream,
    /// One JSON document (`show -json`, `output -json`), read whole.
    Capture,
}

impl Terraform {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            interrupt_grace: Duration::from_secs(60),
            env: Vec::new(),
        }
    }

    /// `$WINDLASS_TERRAFORM`, then `.tools/bin/terraform` (what `scripts/setup.sh`
    /// installs) in this directory or a parent, then `terraform` on `PATH`.
    pub fn locate() -> Self {
        if let Ok(path) = std::env::var("WINDLASS_TERRAFORM") {
            return Self::new(path);
        }
        let mut dir = std::env::current_dir().ok();
        while let Some(d) = dir {
            let candidate = d.join(".tools/bin/terraform");
            if candidate.is_file() {
                return Self::new(candidate);
            }
            dir = d.parent().map(Path::to_path_buf);
        }
        Self::new("terraform")
    }

    /// How long terraform gets to stop after SIGINT before it is killed.
    pub fn with_interrupt_grace(mut self, grace: Duration) -> Self {
        self.interrupt_grace = grace;
        self
    }

    /// Adds an environment variable to every command (backend credentials, `TF_VAR_*`).
    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub async fn init(
        &self,
        dir: &Path,
        log: &mut (dyn FnMut(&TerraformMessage) + Send),
        cancel: impl Future<Output = ()>,
    ) -> Result<(), TerraformError> {
        let done = self
            .run(
                dir,
                &["init", "-input=false", "-json"],
                Output::Stream,
                log,
                cancel,
            )
            .await?;
        expect_success("init", done).map(|_| ())
    }

    /// Plans into [`PLAN_FILE`] and reads back what the plan would do. State locks are not
    /// waited for here (`-lock-timeout=0s`): a held lock is reported at once, and the caller
    /// decides whether to wait (a Temporal retry) or recover it.
    pub async fn plan(
        &self,
        dir: &Path,
        destroy: bool,
        log: &mut (dyn FnMut(&TerraformMessage) + Send),
        cancel: impl Future<Output = ()>,
    ) -> Result<Plan, TerraformError> {
        let out = format!("-out={PLAN_FILE}");
        let mut args = vec![
            "plan",
            "-input=false",
            "-json",
            "-detailed-exitcode",
            "-lock-timeout=0s",
            &out,
        ];
        if destroy {
            args.push("-destroy");
        }
        let mut cancel = std::pin::pin!(cancel);
        let done = self
            .run(dir, &args, Output::Stream, log, cancel.as_mut())
            .await?;
        let has_changes = match done.code {
            0 => false,
            2 => true,
            _ => return Err(failure("plan", done)),
        };
        let summary = done.summary.unwrap_or_default();
        let report = self.show_plan(dir, cancel).await?;
        Ok(Plan {
            has_changes,
            summary,
            report,
        })
    }

    async fn show_plan(
        &self,
        dir: &Path,
        cancel: impl Future<Output = ()>,
    ) -> Result<PlanReport, TerraformError> {
        let done = self
            .run(
                dir,
                &["show", "-json", PLAN_FILE],
                Output::Capture,
                &mut |_| {},
                cancel,
            )
            .await?;
        let done = expect_success("show", done)?;
        PlanReport::from_show_json(&done.stdout).map_err(|e| TerraformError::Output(e.to_string()))
    }

    /// Plans, refuses what the guard forbids, then applies exactly the plan that was checked.
    pub async fn plan_and_apply(
        &self,
        dir: &Path,
        destroy: bool,
        guard: &PlanGuard,
        log: &mut (dyn FnMut(&TerraformMessage) + Send),
        cancel: impl Future<Output = ()>,
    ) -> Result<Plan, TerraformError> {
        let mut cancel = std::pin::pin!(cancel);
        let plan = self.plan(dir, destroy, log, cancel.as_mut()).await?;
        let refused = guard.violations(&plan.report);
        if !refused.is_empty() {
            return Err(TerraformError::Refused(refused));
        }
        if plan.has_changes {
            let done = self
                .run(
                    dir,
                    &[
                        "apply",
                        "-input=false",
                        "-json",
                        "-lock-timeout=0s",
                        PLAN_FILE,
                    ],
                    Output::Stream,
                    log,
                    cancel,
                )
                .await?;
            expect_success("apply", done)?;
        }
        Ok(plan)
    }

    /// `output -json`: every output with its value (sensitive ones included: the caller
    /// must keep them out of logs and workflow history).
    pub async fn outputs(
        &self,
        dir: &Path,
    ) -> Result<serde_json::Map<String, serde_json::Value>, TerraformError> {
        let done = self
            .run(
                dir,
                &["output", "-json"],
                Output::Capture,
                &mut |_| {},
                std::future::pending(),
            )
            .await?;
        let done = expect_success("output", done)?;
        let all: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&done.stdout)
            .map_err(|e| TerraformError::Output(e.to_string()))?;
        Ok(all
            .into_iter()
            .map(|(name, o)| (name, o.get("value").cloned().unwrap_or_default()))
            .collect())
    }

    /// Releases a lock whose holder is known to be dead.
    pub async fn force_unlock(&self, dir: &Path, lock_id: &str) -> Result<(), TerraformError> {
        let done = self
            .run(
                dir,
                &["force-unlock", "-force", lock_id],
                Output::Stream,
                &mut |_| {},
                std::future::pending(),
            )
            .await?;
        expect_success("force-unlock", done).map(|_| ())
    }

    async fn run(
        &self,
        dir: &Path,
        args: &[&str],
        output: Output,
        log: &mut (dyn FnMut(&TerraformMessage) + Send),
        cancel: impl Future<Output = ()>,
    ) -> Result<Finished, TerraformError> {
        let command_name = args[0].to_owned();
        let mut command = Command::new(&self.program);
        command
            .args(args)
            .current_dir(dir)
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("CHECKPOINT_DISABLE", "1");
        // The worker's own cloud identity must not reach terraform: it runs as the
        // customer's scoped identity, given in `self.env`, or not at all.
        for (name, _) in std::env::vars_os() {
            if let Some(name) = name.to_str()
                && inherited_cloud_credential(name)
            {
                command.env_remove(name);
            }
        }
        command
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Dropped only when its run lost the state lock: it must stop writing.
            .kill_on_drop(true);
        // Its own process group, which dies with this worker and whenever this call ends or
        // is dropped: a Ctrl-C meant for the worker must not reach terraform mid-apply, and
        // nothing terraform started (provisioners, providers) may outlive the attempt and
        // create what the retry then creates again. Its lock is then recovered by the retry
        // (see `super::locks`).
        let _group = GroupWatchdog::arm(&mut command).map_err(TerraformError::Spawn)?;
        let mut child = command.spawn().map_err(TerraformError::Spawn)?;
        let pid = child.id();
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let stderr_task = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });

        let mut diagnostics = Vec::new();
        let mut summary = None;
        let mut captured = String::new();
        let mut lines = BufReader::new(stdout).lines();
        let mut cancel = std::pin::pin!(cancel);
        let mut interrupted = false;
        loop {
            tokio::select! {
                line = lines.next_line() => match line {
                    Ok(Some(line)) => {
                        if output == Output::Capture {
                            captured.push_str(&line);
                            captured.push('\n');
                            continue;
                        }
                        let message = TerraformMessage::parse(&line);
                        if let Some(d) = &message.diagnostic {
                            diagnostics.push(d.clone());
                        }
                        if message.kind == "change_summary" {
                            summary = message.changes;
                        }
                        log(&message);
                    }
                    _ => break,
                },
                () = &mut cancel, if !interrupted => {
                    interrupted = true;
                    if let Some(pid) = pid {
                        // SAFETY: sending a signal to our own child process.
                        unsafe { libc::kill(pid as i32, libc::SIGINT) };
                    }
                    tracing::info!(command = %command_name, "terraform interrupted");
                }
            }
        }
        let status = if interrupted {
            match tokio::time::timeout(self.interrupt_grace, child.wait()).await {
                Ok(status) => status,
                Err(_) => {
                    tracing::warn!(command = %command_name, "terraform ignored SIGINT; killing it");
                    if let Some(pid) = pid {
                        // SAFETY: the whole group is ours (process_group(0) above).
                        unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
                    }
                    child.wait().await
                }
            }
        } else {
            child.wait().await
        }
        .map_err(TerraformError::Spawn)?;
        let stderr = stderr_task.await.unwrap_or_default();
        if interrupted {
            return Err(TerraformError::Cancelled(command_name));
        }
        if !stderr.trim().is_empty() && diagnostics.is_empty() && !status.success() {
            diagnostics.push(Diagnostic {
                severity: "error".into(),
                summary: stderr
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .into(),
                detail: stderr.clone(),
                address: None,
            });
        }
        Ok(Finished {
            code: status.code().unwrap_or(-1),
            diagnostics,
            summary,
            stdout: captured,
        })
    }
}

fn expect_success(command: &str, done: Finished) -> Result<Finished, TerraformError> {
    if done.code == 0 {
        Ok(done)
    } else {
        Err(failure(command, done))
    }
}

fn failure(command: &str, done: Finished) -> TerraformError {
    if let Some(lock) = done.diagnostics.iter().find_map(LockInfo::from_diagnostic) {
        return TerraformError::Locked(Box::new(lock));
    }
    TerraformError::Failed {
        command: command.to_owned(),
        code: done.code,
        diagnostics: done.diagnostics,
    }
}

/// Whether an environment variable of the worker's would give terraform a cloud identity
/// (the AWS SDK's, the azurerm provider's, the Azure SDKs' settings); CA bundles stay.
fn inherited_cloud_credential(name: &str) -> bool {
    (name.starts_with("AWS_") && name != "AWS_CA_BUNDLE")
        || name.starts_with("ARM_")
        || name.starts_with("AZURE_")
}
