//! A step's output (terraform's `-json` messages, helm's lines, rollout events) into the
//! run's step log, masked, in order, written in the background so a slow database never
//! slows the tool; and, as each line is written, to the run's live followers.

use std::sync::Arc;
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use temporalio_sdk::activities::ActivityContext;
use tokio::sync::mpsc;
use uuid::Uuid;
use windlass_core::Store;
use windlass_core::live_logs::{LiveLine, LiveLogs};
use windlass_core::runs::Run;
use windlass_core::step_logs::{LogLine, Masker};

use crate::backplane::{SharedBackplane, StoreBackplane};

/// Lines waiting for the fan-out beyond this are dropped (the store keeps them): a stalled
/// Redis must not grow a worker's memory.
const LIVE_QUEUE: usize = 10_000;
/// How long a finished step waits for its last lines to reach the fan-out.
const LIVE_FLUSH: Duration = Duration::from_secs(2);

/// Where step logs go: the run backplane (the durable record: the store, directly or
/// through the API) and the live fan-out, or nowhere but `tracing`.
#[derive(Clone, Default)]
pub struct StepLogs {
    backplane: Option<SharedBackplane>,
    live: Option<LiveLogs>,
}

impl StepLogs {
    pub fn new(store: Store) -> Self {
        Self::with_backplane(Arc::new(StoreBackplane::new(store, None)))
    }

    /// Lines go to the run's step log through `backplane` (a placed worker's: the API).
    pub fn with_backplane(backplane: SharedBackplane) -> Self {
        Self {
            backplane: Some(backplane),
            live: None,
        }
    }

    /// Also publishes every line to the run's live followers.
    pub fn with_live(mut self, live: LiveLogs) -> Self {
        self.live = Some(live);
        self
    }

    /// A writer for the attempt `ctx` runs. Workflows started outside the API have no
    /// run, and so no step log.
    pub fn writer(&self, ctx: &ActivityContext, masker: Masker) -> StepLogWriter {
        let info = ctx.info();
        let run = info
            .workflow_id
            .as_deref()
            .and_then(Run::id_from_workflow_id);
        self.writer_for(run, &info.activity_id, info.attempt, masker)
    }

    /// A writer for one attempt of a step of a run, for code that reports on a step
    /// without being its activity (rollout events, benchmarks).
    pub fn writer_for(
        &self,
        run: Option<Uuid>,
        step_key: &str,
        attempt: u32,
        masker: Masker,
    ) -> StepLogWriter {
        let (tx, task) = match (&self.backplane, run) {
            (Some(backplane), Some(run_id)) => {
                let (tx, rx) = mpsc::unbounded_channel();
                let task = tokio::spawn(drain(backplane.clone(), run_id, step_key.to_owned(), rx));
                (Some(tx), Some(task))
            }
            _ => (None, None),
        };
        let (live_tx, live_task) = match (&self.live, run) {
            (Some(live), Some(run_id)) => {
                let (tx, rx) = mpsc::channel(LIVE_QUEUE);
                let task = tokio::spawn(publish(live.clone(), run_id, rx));
                (Some(tx), Some(task))
            }
            _ => (None, None),
        };
        StepLogWriter {
            tx,
            task,
            live_tx,
            live_task,
            live_dropped: 0,
            run,
            step_key: step_key.to_owned(),
            attempt,
            seq: 0,
            masker,
        }
    }
}

pub struct StepLogWriter {
    tx: Option<mpsc::UnboundedSender<LogLine>>,
    task: Option<tokio::task::JoinHandle<()>>,
    live_tx: Option<mpsc::Sender<LiveLine>>,
    live_task: Option<tokio::task::JoinHandle<()>>,
    live_dropped: u64,
    run: Option<Uuid>,
    step_key: String,
    attempt: u32,
    seq: u32,
    masker: Masker,
}

impl StepLogWriter {
    /// Writes one line (masked here, before it goes anywhere). `level` is `info`, `warn`
    /// or `error`.
    pub fn line(&mut self, level: &str, text: &str) {
        if self.tx.is_none() && self.live_tx.is_none() {
            return;
        }
        self.seq += 1;
        let line = LogLine {
            attempt: self.attempt,
            seq: self.seq,
            // The store keeps microseconds: live and replayed copies of a line stay equal.
            at: Utc::now().trunc_subsecs(6),
            level: level.to_owned(),
            line: self.masker.apply(text),
        };
        if let Some(live) = &self.live_tx {
            let live_line = LiveLine {
                step: self.step_key.clone(),
                attempt: line.attempt,
                seq: line.seq,
                at: line.at,
                level: line.level.clone(),
                line: line.line.clone(),
                kind: windlass_core::live_logs::LiveKind::Line,
            };
            if live.try_send(live_line).is_err() {
                self.live_dropped += 1;
            }
        }
        if let Some(tx) = &self.tx {
            let _ = tx.send(line);
        }
    }

    /// A rollout event (a workload becoming ready, a release recovered) in the step's log,
    /// between the tool's own lines.
    pub fn rollout_event(&mut self, text: &str) {
        self.line("info", &format!("[rollout] {text}"));
    }

    /// Waits until every line is written (and, briefly, published).
    pub async fn finish(mut self) {
        self.tx = None;
        self.live_tx = None;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if let Some(mut task) = self.live_task.take()
            && tokio::time::timeout(LIVE_FLUSH, &mut task).await.is_err()
        {
            task.abort();
            tracing::warn!(run_id = ?self.run, step = %self.step_key, "live log lines still unpublished at the end of the step; dropped");
        }
        if self.live_dropped > 0 {
            tracing::warn!(run_id = ?self.run, step = %self.step_key, dropped = self.live_dropped, "live log queue full; lines not published (they are in the step log)");
        }
    }
}

/// Publishes lines as they come, whatever is waiting in one go.
async fn publish(live: LiveLogs, run_id: Uuid, mut rx: mpsc::Receiver<LiveLine>) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 256).await > 0 {
        live.publish_all(run_id, &batch).await;
        batch.clear();
    }
}

async fn drain(
    backplane: SharedBackplane,
    run_id: Uuid,
    step_key: String,
    mut rx: mpsc::UnboundedReceiver<LogLine>,
) {
    let mut batch = Vec::new();
    while let Some(line) = rx.recv().await {
        batch.push(line);
        while batch.len() < 200 {
            match rx.try_recv() {
                Ok(line) => batch.push(line),
                Err(_) => break,
            }
        }
        // Lines already written are kept as they were, so a batch is tried again whole
        // (a database restarting under it would otherwise leave a gap in the log).
        let written = crate::backplane::retrying(crate::backplane::PROJECTION_RETRY_LIMIT, || {
            backplane.append_step_log(run_id, &step_key, &batch)
        })
        .await;
        if let Err(e) = written {
            // The log is for people; the step itself goes on.
            tracing::warn!(%run_id, step = %step_key, error = %e, lines = batch.len(), "step log lines not written");
        }
        batch.clear();
    }
}

/// The credentials a kubeconfig carries, to be masked wherever its tool's output goes.
pub fn mask_kubeconfig(masker: &mut Masker, kubeconfig: &str) {
    for line in kubeconfig.lines() {
        let line = line.trim().trim_start_matches('-').trim();
        // `user.token`/`password`/key data, `auth-provider.config`'s tokens and secrets.
        for key in [
            "token",
            "client-key-data",
            "client-certificate-data",
            "password",
            "access-token",
            "refresh-token",
            "id-token",
            "client-secret",
        ] {
            let value = line
                .strip_prefix(key)
                .or_else(|| line.strip_prefix(&format!("\"{key}\"")))
                .and_then(|rest| rest.trim_start().strip_prefix(':'))
                .map(|v| v.trim().trim_matches('"'));
            if let Some(value) = value {
                masker.mask_value(value);
            }
        }
        // `exec.args` passing a credential as `--token=<value>` (or password, secret).
        let arg = line.trim_matches('"');
        if let Some((flag, value)) = arg.split_once('=')
            && flag.starts_with("--")
            && ["token", "password", "secret"]
                .iter()
                .any(|k| flag.contains(k))
        {
            masker.mask_value(value.trim_matches('"'));
        }
    }
}

/// The step an activity attempt belongs to, the same for every attempt of it: workflow,
/// workflow run and activity id.
pub(crate) fn step_identity(ctx: &ActivityContext) -> String {
    let info = ctx.info();
    format!(
        "{}/{}/{}",
        info.workflow_id.as_deref().unwrap_or("-"),
        info.workflow_run_id.as_deref().unwrap_or("-"),
        info.activity_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_credentials_are_masked_in_both_spellings() {
        let mut masker = Masker::new();
        mask_kubeconfig(
            &mut masker,
            "users:\n- name: admin\n  user:\n    token: abcdefgh12345678\n\"client-key-data\": \"S0VZREFUQTEyMzQ=\"\n",
        );
        assert_eq!(
            masker.apply("sent abcdefgh12345678 and S0VZREFUQTEyMzQ="),
            "sent *** and ***"
        );
    }

    #[test]
    fn auth_provider_and_exec_credentials_are_masked() {
        let mut masker = Masker::new();
        mask_kubeconfig(
            &mut masker,
            "users:\n- name: a\n  user:\n    auth-provider:\n      config:\n        access-token: at-123\n        refresh-token: rt-456\n        client-secret: cs-789\n    exec:\n      command: get-creds\n      args:\n      - --token=ex-abc\n      - \"--client-secret=ex-def\"\n",
        );
        assert_eq!(
            masker.apply("at-123 rt-456 cs-789 ex-abc ex-def get-creds"),
            "*** *** *** *** *** get-creds"
        );
    }
}

/// The step-log level of a line of helm's output: its `Error:` lines (and the
/// `level=ERROR` lines of its structured logger) are errors, the rest is progress.
pub(crate) fn helm_line_level(line: &str) -> &'static str {
    let line = line.trim_start();
    if line.starts_with("Error:") || line.starts_with("level=ERROR") {
        "error"
    } else if line.starts_with("level=WARN") || line.starts_with("WARNING:") {
        "warn"
    } else {
        "info"
    }
}

#[cfg(test)]
mod helm_level_tests {
    use super::helm_line_level;

    #[test]
    fn helm_error_lines_are_errors() {
        assert_eq!(
            helm_line_level("Error: UPGRADE FAILED: conflict occurred"),
            "error"
        );
        assert_eq!(helm_line_level("level=WARN msg=\"upgrade failed\""), "warn");
        assert_eq!(
            helm_line_level("Release \"web\" has been upgraded."),
            "info"
        );
    }
}
