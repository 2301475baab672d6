//! A step's output (terraform's `-json` messages, helm's lines) into the run's step log,
//! masked, in order, written in the background so a slow database never slows the tool.

use chrono::Utc;
use temporalio_sdk::activities::ActivityContext;
use tokio::sync::mpsc;
use uuid::Uuid;
use windlass_core::Store;
use windlass_core::runs::Run;
use windlass_core::step_logs::{LogLine, Masker};

/// Where step logs go: the store, or nowhere but `tracing` (a worker without a store).
#[derive(Clone, Default)]
pub struct StepLogs {
    store: Option<Store>,
}

impl StepLogs {
    pub fn new(store: Store) -> Self {
        Self { store: Some(store) }
    }

    /// A writer for the attempt `ctx` runs. Workflows started outside the API have no
    /// run, and so no step log.
    pub fn writer(&self, ctx: &ActivityContext, masker: Masker) -> StepLogWriter {
        let info = ctx.info();
        let run = info
            .workflow_id
            .as_deref()
            .and_then(Run::id_from_workflow_id);
        let (tx, task) = match (&self.store, run) {
            (Some(store), Some(run_id)) => {
                let (tx, rx) = mpsc::unbounded_channel();
                let task = tokio::spawn(drain(store.clone(), run_id, info.activity_id.clone(), rx));
                (Some(tx), Some(task))
            }
            _ => (None, None),
        };
        StepLogWriter {
            tx,
            task,
            attempt: info.attempt,
            seq: 0,
            masker,
        }
    }
}

pub struct StepLogWriter {
    tx: Option<mpsc::UnboundedSender<LogLine>>,
    task: Option<tokio::task::JoinHandle<()>>,
    attempt: u32,
    seq: u32,
    masker: Masker,
}

impl StepLogWriter {
    pub fn line(&mut self, level: &str, text: &str) {
        let Some(tx) = &self.tx else {
            return;
        };
        self.seq += 1;
        let _ = tx.send(LogLine {
            attempt: self.attempt,
            seq: self.seq,
            at: Utc::now(),
            level: level.to_owned(),
            line: self.masker.apply(text),
        });
    }

    /// Waits until every line is written.
    pub async fn finish(mut self) {
        self.tx = None;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

async fn drain(
    store: Store,
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
        if let Err(e) = store.append_step_log(run_id, &step_key, &batch).await {
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
        for key in [
            "token",
            "client-key-data",
            "client-certificate-data",
            "password",
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
    }
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
}
