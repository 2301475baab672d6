//! The embedded default's fan-out: one tokio broadcast channel per run that someone is
//! watching, inside this process only (`windlass dev` runs the API and the worker in one).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::Stream;
use futures::stream::{self, StreamExt};
use tokio::sync::broadcast;
use uuid::Uuid;

use super::LiveLine;

/// A subscriber that falls this far behind loses lines (the store still has them).
const CHANNEL_CAPACITY: usize = 4096;

#[derive(Default)]
pub(super) struct InProcess {
    // A channel exists only while a run has subscribers: a publish to a run nobody
    // watches costs one map lookup.
    runs: Arc<Mutex<HashMap<Uuid, broadcast::Sender<LiveLine>>>>,
}

impl InProcess {
    pub(super) fn publish(&self, run_id: Uuid, lines: &[LiveLine]) {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        let Some(sender) = runs.get(&run_id) else {
            return;
        };
        for line in lines {
            if sender.send(line.clone()).is_err() {
                // Every subscriber left since the last publish.
                runs.remove(&run_id);
                return;
            }
        }
    }

    pub(super) fn subscribe(&self, run_id: Uuid) -> impl Stream<Item = LiveLine> + Send + use<> {
        let receiver = {
            let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
            runs.entry(run_id)
                .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
                .subscribe()
        };
        let state = Subscription {
            receiver: Some(receiver),
            runs: self.runs.clone(),
            run_id,
        };
        stream::unfold(state, |mut state| async move {
            loop {
                let receiver = state.receiver.as_mut()?;
                match receiver.recv().await {
                    Ok(line) => return Some((line, state)),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(run_id = %state.run_id, missed, "live log subscriber fell behind; lines skipped");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .boxed()
    }

    #[cfg(test)]
    pub(super) fn channels(&self) -> usize {
        self.runs.lock().unwrap().len()
    }
}

/// A subscriber's receiver; dropping the last one drops the run's channel.
struct Subscription {
    receiver: Option<broadcast::Receiver<LiveLine>>,
    runs: Arc<Mutex<HashMap<Uuid, broadcast::Sender<LiveLine>>>>,
    run_id: Uuid,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.receiver = None;
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        if runs
            .get(&self.run_id)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            runs.remove(&self.run_id);
        }
    }
}
