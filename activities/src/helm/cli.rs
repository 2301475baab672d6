//! Runs the helm CLI: one process per command, output streamed line by line to
//! the caller, failures classified ([`HelmError`]), cancellation as SIGINT (helm
//! then stops waiting and records the release as failed) and SIGKILL only after
//! a grace period.

use std::ffi::OsString;
use std::future::Future;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use zeroize::Zeroizing;

use super::args::HelmArgs;
use super::desired::{DESIRED_LABEL, desired_digest};
use super::error::HelmError;
use super::release::{Chart, Installed, Recovery, Release, ReleaseInfo, Revision};
use super::release_store::StoredRelease;
use super::render::Rendered;
use crate::memory_budget::MemoryBudget;
use crate::process_group::GroupWatchdog;

/// A kubeconfig document. It carries credentials: `Debug` does not print it,
/// its memory is zeroed on drop, and on disk it only exists as a 0600 file in a
/// 0700 directory for the duration of one helm command.
pub struct Kubeconfig(Zeroizing<String>);

impl Kubeconfig {
    pub fn new(text: impl Into<String>) -> Self {
        Self(Zeroizing::new(text.into()))
    }
}

impl std::fmt::Debug for Kubeconfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kubeconfig(redacted)")
    }
}

/// One message of `helm lint`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LintMessage {
    /// `INFO`, `WARNING` or `ERROR`.
    pub severity: String,
    pub text: String,
}

/// A helm binary and how to run it.
#[derive(Debug, Clone)]
pub struct Helm {
    program: PathBuf,
    interrupt_grace: Duration,
    pending_grace: Duration,
    history_max: u32,
    env: Vec<(String, String)>,
    /// Room for each process in the worker's helm memory; unbounded when `None`.
    memory: Option<Arc<MemoryBudget>>,
}

/// Environment variables helm reads that would override the kubeconfig and
/// namespace each command is given (a worker's own environment must not decide
/// which cluster a release lands in), or turn on `--debug`, which prints
/// rendered manifests, secrets included.
const OVERRIDING_ENV: &[&str] = &[
    "KUBECONFIG",
    "HELM_KUBECONTEXT",
    "HELM_KUBEAPISERVER",
    "HELM_KUBETOKEN",
    "HELM_KUBEASUSER",
    "HELM_KUBEASGROUPS",
    "HELM_KUBECAFILE",
    "HELM_KUBEINSECURE_SKIP_TLS_VERIFY",
    "HELM_KUBETLS_SERVER_NAME",
    "HELM_NAMESPACE",
    "HELM_DEBUG",
];

#[derive(Clone, Copy, PartialEq)]
enum Output {
    /// Every stdout line goes to the log.
    Stream,
    /// stdout is one document (`-o json`, rendered manifests), read whole and
    /// not logged: it may hold values and secrets.
    Capture,
}

struct Finished {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A private directory for one command's kubeconfig and values files, removed
/// when dropped.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new() -> Result<Self, HelmError> {
        let dir = std::env::temp_dir().join(format!("windlass-helm-{}", uuid::Uuid::new_v4()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(HelmError::Files)?;
        Ok(Self { dir })
    }

    /// Writes a file readable by this user only.
    fn write(&self, name: &str, contents: &[u8]) -> Result<PathBuf, HelmError> {
        let path = self.dir.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(HelmError::Files)?;
        file.write_all(contents).map_err(HelmError::Files)?;
        Ok(path)
    }

    fn kubeconfig(&self, kubeconfig: &Kubeconfig) -> Result<PathBuf, HelmError> {
        self.write("kubeconfig", kubeconfig.0.as_bytes())
    }

    /// Values as JSON, which is YAML too, so helm reads it with `-f`.
    fn values(&self, values: &impl Serialize) -> Result<PathBuf, HelmError> {
        let json = Zeroizing::new(
            serde_json::to_vec(values)
                .map_err(|e| HelmError::Output(format!("values do not serialise: {e}")))?,
        );
        self.write("values.json", &json)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove helm's working files");
        }
    }
}

fn go_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis().max(1))
}

impl Helm {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            interrupt_grace: Duration::from_secs(30),
            pending_grace: Duration::ZERO,
            history_max: 10,
            env: Vec::new(),
            memory: None,
        }
    }

    /// `$WINDLASS_HELM`, then `.tools/bin/helm` (what `scripts/setup.sh` installs)
    /// in this directory or a parent, then `helm` on `PATH`.
    pub fn locate() -> Self {
        if let Ok(path) = std::env::var("WINDLASS_HELM") {
            return Self::new(path);
        }
        let mut dir = std::env::current_dir().ok();
        while let Some(d) = dir {
            let candidate = d.join(".tools/bin/helm");
            if candidate.is_file() {
                return Self::new(candidate);
            }
            dir = d.parent().map(Path::to_path_buf);
        }
        Self::new("helm")
    }

    pub fn program(&self) -> &Path {
        &self.program
    }

    /// How long helm gets to stop after SIGINT before it is killed.
    pub fn with_interrupt_grace(mut self, grace: Duration) -> Self {
        self.interrupt_grace = grace;
        self
    }

    /// How old a `pending-*` revision must be before `upgrade_install` treats it
    /// as abandoned and recovers it; a younger one is reported as
    /// [`HelmError::PendingOperation`] (retryable). Zero (the default) relies on
    /// the invariant that one cluster operation runs at a time and Temporal runs
    /// one attempt of it at a time, and that helm dies with its worker
    /// (PR_SET_PDEATHSIG) or is interrupted when its attempt is cancelled: a
    /// pending revision seen at the start of an attempt belongs to a dead helm.
    pub fn with_pending_grace(mut self, grace: Duration) -> Self {
        self.pending_grace = grace;
        self
    }

    /// `--history-max` for upgrades and rollbacks (helm's default: 10).
    pub fn with_history_max(mut self, revisions: u32) -> Self {
        self.history_max = revisions;
        self
    }

    /// Starts each process only when it fits in `budget` (shared by every helm this worker
    /// runs), waiting for room otherwise.
    pub fn with_memory_budget(mut self, budget: Arc<MemoryBudget>) -> Self {
        self.memory = Some(budget);
        self
    }

    /// Adds an environment variable to every command (`HELM_CACHE_HOME`,
    /// registry settings).
    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Installs or upgrades a release and waits until its resources are ready
    /// (`--wait=watcher`: helm 4's kstatus waiter, which lists and watches each
    /// resource kind). A release whose resources do not become ready within its
    /// timeout is rolled back (`--rollback-on-failure`, helm 4's `--atomic`) and
    /// the call fails with [`HelmError::Timeout`].
    ///
    /// A release left `pending-*` by a helm that died is recovered first: rolled
    /// back to its last `deployed` revision, or uninstalled if it never had one.
    ///
    /// `values` are serialised to JSON; a `None` serialised as `null` removes the
    /// chart's default for that key, so skip absent options when serialising.
    pub async fn upgrade_install(
        &self,
        kubeconfig: &Kubeconfig,
        release: &Release,
        values: &impl Serialize,
        log: &mut (dyn FnMut(&str) + Send),
        cancel: impl Future<Output = ()>,
    ) -> Result<Installed, HelmError> {
        let mut cancel = std::pin::pin!(cancel);
        // One read of the release serves both questions: is it stuck mid-operation, and
        // does it already hold what this step asks for.
        let mut stored = self
            .stored(kubeconfig, &release.name, &release.namespace)
            .await?;
        let history: Vec<Revision> = stored.iter().map(|r| r.revision.clone()).collect();
        let recovered = self
            .recover_pending(kubeconfig, release, &history, log, cancel.as_mut())
            .await?;
        let desired = desired_digest(&release.chart, values, release.step.as_deref())?;
        if recovered.is_none()
            && let Some(current) = holding(stored.pop(), &desired)
        {
            log(&format!(
                "release {} is at revision {} (deployed), which this step already made with this chart and these values: nothing to upgrade",
                release.name, current.revision
            ));
            return Ok(Installed {
                release: current,
                recovered: None,
                unchanged: true,
            });
        }
        let scratch = Scratch::new()?;
        let config = scratch.kubeconfig(kubeconfig)?;
        let values = scratch.values(values)?;
        let mut args = HelmArgs::command(["upgrade"]);
        args.flag("--install")
            .flags(release.chart.flags())
            .flags(self.cluster_args(&config, &release.namespace))
            .positional(&release.name)
            .positional(release.chart.positional());
        args.flags(
            [
                "--create-namespace".to_string(),
                format!("--timeout={}", go_duration(release.timeout)),
                format!("--history-max={}", self.history_max),
                // NOTES templates commonly echo values (generated passwords).
                "--hide-notes".into(),
                // What this revision holds, for a retry to recognise (see `desired`).
                format!("--labels={DESIRED_LABEL}={desired}"),
            ]
            .map(OsString::from),
        );
        if release.wait {
            args.flags(["--wait=watcher", "--rollback-on-failure"]);
        }
        if release.force_conflicts {
            args.flag("--force-conflicts");
        }
        args.flag("--values").flag(values.into_os_string());
        let done = self
            .run(
                "upgrade",
                &args.build(),
                Output::Stream,
                log,
                cancel.as_mut(),
            )
            .await?;
        self.expect_success("upgrade", &release.name, done)
            .map_err(|e| super::chart_fetch::classify(&release.chart, e))?;
        let info = self
            .status(kubeconfig, &release.name, &release.namespace)
            .await?
            .ok_or_else(|| HelmError::ReleaseNotFound(release.name.clone()))?;
        Ok(Installed {
            release: info,
            recovered,
            unchanged: false,
        })
    }

    /// The release's revisions as helm stores them, oldest first, read in process (see
    /// `release_store`): no helm process for what is only a read.
    async fn stored(
        &self,
        kubeconfig: &Kubeconfig,
        name: &str,
        namespace: &str,
    ) -> Result<Vec<StoredRelease>, HelmError> {
        let client = crate::kube::client_from_kubeconfig(&kubeconfig.0)
            .await
            .map_err(|e| HelmError::Unreachable {
                command: "list release records".into(),
                message: e.to_string(),
            })?;
        super::release_store::revisions(client, name, namespace).await
    }

    /// Recovers a release whose latest revision in `history` (oldest first) a dead helm
    /// left mid-operation.
    async fn recover_pending(
        &self,
        kubeconfig: &Kubeconfig,
        release: &Release,
        history: &[Revision],
        log: &mut (dyn FnMut(&str) + Send),
        mut cancel: Pin<&mut impl Future<Output = ()>>,
    ) -> Result<Option<Recovery>, HelmError> {
        let Some(latest) = history.last().filter(|r| r.status.is_pending()) else {
            return Ok(None);
        };
        let age = latest
            .updated
            .map(|t| (chrono::Utc::now() - t).to_std().unwrap_or_default())
            .unwrap_or(Duration::MAX);
        if age < self.pending_grace {
            return Err(HelmError::PendingOperation {
                release: release.name.clone(),
                status: latest.status.to_string(),
            });
        }
        let stuck_revision = latest.revision;
        let stuck_status = latest.status.clone();
        tracing::warn!(
            release = %release.name,
            namespace = %release.namespace,
            revision = stuck_revision,
            status = %stuck_status,
            "helm release left mid-operation; recovering it"
        );
        match history
            .iter()
            .rev()
            .find(|r| r.status == super::ReleaseStatus::Deployed)
        {
            Some(deployed) => {
                let to_revision = deployed.revision;
                log(&format!(
                    "release {} is {stuck_status} at revision {stuck_revision}; rolling back to revision {to_revision}",
                    release.name
                ));
                self.rollback(kubeconfig, release, to_revision, log, cancel.as_mut())
                    .await?;
                Ok(Some(Recovery::RolledBack {
                    stuck_revision,
                    stuck_status,
                    to_revision,
                }))
            }
            None => {
                log(&format!(
                    "release {} is {stuck_status} at revision {stuck_revision} and was never deployed; uninstalling it",
                    release.name
                ));
                self.uninstall(
                    kubeconfig,
                    &release.name,
                    &release.namespace,
                    log,
                    cancel.as_mut(),
                )
                .await?;
                Ok(Some(Recovery::Uninstalled {
                    stuck_revision,
                    stuck_status,
                }))
            }
        }
    }

    /// Rolls a release back to `revision` and waits for its resources.
    pub async fn rollback(
        &self,
        kubeconfig: &Kubeconfig,
        release: &Release,
        revision: u32,
        log: &mut (dyn FnMut(&str) + Send),
        cancel: impl Future<Output = ()>,
    ) -> Result<ReleaseInfo, HelmError> {
        let scratch = Scratch::new()?;
        let config = scratch.kubeconfig(kubeconfig)?;
        let mut args = HelmArgs::command(["rollback"]);
        args.flags(self.cluster_args(&config, &release.namespace))
            .positional(&release.name)
            .positional(revision.to_string());
        args.flags(
            [
                format!("--timeout={}", go_duration(release.timeout)),
                format!("--history-max={}", self.history_max),
            ]
            .map(OsString::from),
        );
        if release.wait {
            args.flag("--wait=watcher");
        }
        if release.force_conflicts {
            args.flag("--force-conflicts");
        }
        let done = self
            .run("rollback", &args.build(), Output::Stream, log, cancel)
            .await?;
        self.expect_success("rollback", &release.name, done)?;
        self.status(kubeconfig, &release.name, &release.namespace)
            .await?
            .ok_or_else(|| HelmError::ReleaseNotFound(release.name.clone()))
    }

    /// Uninstalls a release; one that does not exist is already uninstalled.
    pub async fn uninstall(
        &self,
        kubeconfig: &Kubeconfig,
        name: &str,
        namespace: &str,
        log: &mut (dyn FnMut(&str) + Send),
        cancel: impl Future<Output = ()>,
    ) -> Result<(), HelmError> {
        let scratch = Scratch::new()?;
        let config = scratch.kubeconfig(kubeconfig)?;
        let mut args = HelmArgs::command(["uninstall"]);
        args.flags(self.cluster_args(&config, namespace))
            .flag("--ignore-not-found")
            .positional(name);
        let done = self
            .run("uninstall", &args.build(), Output::Stream, log, cancel)
            .await?;
        self.expect_success("uninstall", name, done).map(|_| ())
    }

    /// The release's current revision (its latest, as `helm status` shows it), `None` if
    /// there is no such release.
    pub async fn status(
        &self,
        kubeconfig: &Kubeconfig,
        name: &str,
        namespace: &str,
    ) -> Result<Option<ReleaseInfo>, HelmError> {
        Ok(self
            .stored(kubeconfig, name, namespace)
            .await?
            .pop()
            .map(|latest| latest.info))
    }

    /// Every stored revision, oldest first; empty if there is no such release.
    pub async fn history(
        &self,
        kubeconfig: &Kubeconfig,
        name: &str,
        namespace: &str,
    ) -> Result<Vec<Revision>, HelmError> {
        Ok(self
            .stored(kubeconfig, name, namespace)
            .await?
            .into_iter()
            .map(|r| r.revision)
            .collect())
    }

    /// Renders a release's manifests offline (`helm template`; no cluster).
    pub async fn template(
        &self,
        release: &Release,
        values: &impl Serialize,
    ) -> Result<Rendered, HelmError> {
        let scratch = Scratch::new()?;
        let values = scratch.values(values)?;
        let mut args = HelmArgs::command(["template"]);
        args.flags(release.chart.flags())
            .flag("--namespace")
            .flag(&release.namespace)
            .flag("--values")
            .flag(values.into_os_string())
            .positional(&release.name)
            .positional(release.chart.positional());
        let done = self
            .run(
                "template",
                &args.build(),
                Output::Capture,
                &mut |_| {},
                std::future::pending(),
            )
            .await?;
        let done = self.expect_success("template", &release.name, done)?;
        Ok(Rendered {
            manifest: done.stdout,
        })
    }

    /// `helm lint` with the given values: every message, or [`HelmError::Lint`]
    /// with the errors if the chart fails.
    pub async fn lint(
        &self,
        chart: &Chart,
        values: &impl Serialize,
    ) -> Result<Vec<LintMessage>, HelmError> {
        let scratch = Scratch::new()?;
        let values = scratch.values(values)?;
        let mut args = HelmArgs::command(["lint"]);
        args.flags(chart.flags())
            .flag("--values")
            .flag(values.into_os_string())
            .positional(chart.positional());
        let done = self
            .run(
                "lint",
                &args.build(),
                Output::Capture,
                &mut |_| {},
                std::future::pending(),
            )
            .await?;
        let messages = parse_lint(&done.stdout);
        if done.code == 0 {
            return Ok(messages);
        }
        let errors: Vec<String> = messages
            .into_iter()
            .filter(|m| m.severity == "ERROR")
            .map(|m| m.text)
            .collect();
        if errors.is_empty() {
            return Err(HelmError::from_failure("lint", "", done.code, &done.stderr));
        }
        Err(HelmError::Lint(errors))
    }

    fn cluster_args(&self, kubeconfig: &Path, namespace: &str) -> Vec<OsString> {
        vec![
            "--kubeconfig".into(),
            kubeconfig.as_os_str().to_owned(),
            "--namespace".into(),
            namespace.into(),
        ]
    }

    fn expect_success(
        &self,
        command: &str,
        release: &str,
        done: Finished,
    ) -> Result<Finished, HelmError> {
        if done.code == 0 {
            Ok(done)
        } else {
            Err(HelmError::from_failure(
                command,
                release,
                done.code,
                &done.stderr,
            ))
        }
    }

    async fn run(
        &self,
        command_name: &str,
        args: &[OsString],
        output: Output,
        log: &mut (dyn FnMut(&str) + Send),
        cancel: impl Future<Output = ()>,
    ) -> Result<Finished, HelmError> {
        let mut cancel = std::pin::pin!(cancel);
        // Room in the worker's helm memory first; a cancellation ends the wait.
        let mut admission = match &self.memory {
            Some(budget) => tokio::select! {
                admitted = budget.admit(|waiting| log(waiting)) => Some(admitted),
                () = &mut cancel => return Err(HelmError::Cancelled(command_name.to_owned())),
            },
            None => None,
        };
        let mut command = Command::new(&self.program);
        command
            .args(args)
            .env("NO_COLOR", "1")
            // One helm call is a second of waiting on the cluster around a tenth of a
            // CPU-second of work. Go's defaults suit a long-lived server: a scheduler
            // thread per core spinning for work and a collection each time the heap
            // doubles. One thread and a collection at five times the live heap cut helm's
            // CPU by a third when many run at once (issue 14's measurement); the memory
            // this costs is what the budget admitted it for (`GOMEMLIMIT`).
            .env("GOMAXPROCS", "1")
            .env("GOGC", "400");
        if let Some(admission) = &admission {
            // Never below the first guess: a budget that learnt from processes that ended
            // too soon to be measured would otherwise set the collector running constantly.
            let limit = admission
                .mb()
                .max(crate::memory_budget::HELM_FIRST_GUESS_MB);
            command.env("GOMEMLIMIT", format!("{limit}MiB"));
        }
        // An operator's `with_env` wins over the defaults above.
        command
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for key in OVERRIDING_ENV {
            command.env_remove(key);
        }
        // Its own process group, which dies with this worker (and whenever this call ends):
        // a Ctrl-C meant for the worker must not reach helm mid-upgrade, and a worker that
        // dies must not leave helm running unsupervised; the release it leaves pending is
        // recovered by the retry instead.
        let _group = GroupWatchdog::arm(&mut command).map_err(HelmError::Spawn)?;
        tracing::debug!(command = command_name, "running helm");
        let mut child = command.spawn().map_err(HelmError::Spawn)?;
        let pid = child.id();
        if let (Some(admission), Some(pid)) = (admission.as_mut(), pid) {
            admission.watch(pid);
        }
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr is piped")).lines();

        let (mut out_text, mut err_text) = (String::new(), String::new());
        let (mut out_open, mut err_open) = (true, true);
        let mut interrupted = false;
        let kill_at = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(kill_at);
        let mut killed = false;
        while out_open || err_open {
            tokio::select! {
                line = stdout.next_line(), if out_open => match line {
                    Ok(Some(line)) => {
                        if output == Output::Stream {
                            log(&line);
                        }
                        out_text.push_str(&line);
                        out_text.push('\n');
                    }
                    _ => out_open = false,
                },
                line = stderr.next_line(), if err_open => match line {
                    Ok(Some(line)) => {
                        log(&line);
                        err_text.push_str(&line);
                        err_text.push('\n');
                    }
                    _ => err_open = false,
                },
                () = &mut cancel, if !interrupted => {
                    interrupted = true;
                    if let Some(pid) = pid {
                        // SAFETY: sending a signal to our own child process.
                        unsafe { libc::kill(pid as i32, libc::SIGINT) };
                    }
                    kill_at.as_mut().reset(tokio::time::Instant::now() + self.interrupt_grace);
                    tracing::info!(command = command_name, "helm interrupted");
                }
                () = &mut kill_at, if interrupted && !killed => {
                    killed = true;
                    tracing::warn!(command = command_name, "helm ignored SIGINT; killing it");
                    if let Some(pid) = pid {
                        // SAFETY: the whole group is ours (process_group(0) above).
                        unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
                    }
                }
            }
        }
        let status = if interrupted && !killed {
            match tokio::time::timeout_at(kill_at.deadline(), child.wait()).await {
                Ok(status) => status,
                Err(_) => {
                    if let Some(pid) = pid {
                        // SAFETY: as above.
                        unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
                    }
                    child.wait().await
                }
            }
        } else {
            child.wait().await
        }
        .map_err(HelmError::Spawn)?;
        if interrupted {
            return Err(HelmError::Cancelled(command_name.to_owned()));
        }
        Ok(Finished {
            code: status.code().unwrap_or(-1),
            stdout: out_text,
            stderr: err_text,
        })
    }
}

fn parse_lint(stdout: &str) -> Vec<LintMessage> {
    stdout
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix('[')?;
            let (severity, text) = rest.split_once(']')?;
            matches!(severity, "INFO" | "WARNING" | "ERROR").then(|| LintMessage {
                severity: severity.into(),
                text: text.trim().into(),
            })
        })
        .collect()
}

/// The release's current revision (`latest`) if it is deployed and holds `desired` (its
/// label says so): an upgrade to it would only add an identical revision.
fn holding(latest: Option<StoredRelease>, desired: &str) -> Option<ReleaseInfo> {
    let latest = latest?;
    let holds = latest.labels.get(DESIRED_LABEL).map(String::as_str) == Some(desired)
        && latest.info.status == super::ReleaseStatus::Deployed;
    holds.then_some(latest.info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lint_output_becomes_messages() {
        let out = "==> Linting /tmp/badchart\n[INFO] Chart.yaml: icon is recommended\n\
                   [WARNING] templates/: object name does not conform\n\
                   [ERROR] templates/: parse error at (bad/templates/a.yaml:1): unexpected \"}\" in operand\n\n";
        let messages = parse_lint(out);
        assert_eq!(
            messages
                .iter()
                .map(|m| m.severity.as_str())
                .collect::<Vec<_>>(),
            ["INFO", "WARNING", "ERROR"]
        );
        assert_eq!(messages[0].text, "Chart.yaml: icon is recommended");
    }

    #[test]
    fn kubeconfig_debug_output_hides_the_document() {
        let k = Kubeconfig::new("users:\n- user:\n    token: s3cr3t\n");
        assert!(!format!("{k:?}").contains("s3cr3t"));
    }

    #[test]
    fn scratch_files_are_private_and_removed() {
        use std::os::unix::fs::PermissionsExt as _;
        let scratch = Scratch::new().unwrap();
        let path = scratch.kubeconfig(&Kubeconfig::new("x")).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&scratch.dir), 0o700);
        let dir = scratch.dir.clone();
        drop(scratch);
        assert!(!dir.exists());
    }

    #[test]
    fn timeouts_are_go_durations() {
        assert_eq!(go_duration(Duration::from_secs(300)), "300000ms");
        assert_eq!(go_duration(Duration::from_millis(2500)), "2500ms");
        assert_eq!(go_duration(Duration::ZERO), "1ms");
    }
}
