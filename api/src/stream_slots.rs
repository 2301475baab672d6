//! How many live streams (`GET .../runs/{id}/events`) may be open at once: per caller and
//! per run, so one caller (or one popular run) cannot hold every connection and database
//! poll of an API process. A slot is held for as long as its stream is open and given back
//! when the stream is dropped, however it ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

/// Streams one caller (a person, an API token, a placement) may have open.
pub(crate) const MAX_STREAMS_PER_CALLER: usize = 8;
/// Streams one run may have open, whoever follows it.
pub(crate) const MAX_STREAMS_PER_RUN: usize = 32;

#[derive(Clone)]
pub(crate) struct StreamSlots {
    open: Arc<Mutex<Open>>,
    per_caller: usize,
    per_run: usize,
}

#[derive(Default)]
struct Open {
    by_caller: HashMap<String, usize>,
    by_run: HashMap<Uuid, usize>,
}

/// Which limit a stream would exceed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SlotRefusal {
    Caller(usize),
    Run(usize),
}

/// An open stream's slot; dropping it gives the slot back.
pub(crate) struct StreamSlot {
    slots: StreamSlots,
    caller: String,
    run_id: Uuid,
}

impl StreamSlots {
    pub(crate) fn new() -> Self {
        Self::with_limits(MAX_STREAMS_PER_CALLER, MAX_STREAMS_PER_RUN)
    }

    pub(crate) fn with_limits(per_caller: usize, per_run: usize) -> Self {
        Self {
            open: Arc::default(),
            per_caller,
            per_run,
        }
    }

    pub(crate) fn take(&self, caller: &str, run_id: Uuid) -> Result<StreamSlot, SlotRefusal> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let of_caller = open.by_caller.get(caller).copied().unwrap_or(0);
        if of_caller >= self.per_caller {
            return Err(SlotRefusal::Caller(self.per_caller));
        }
        let of_run = open.by_run.get(&run_id).copied().unwrap_or(0);
        if of_run >= self.per_run {
            return Err(SlotRefusal::Run(self.per_run));
        }
        open.by_caller.insert(caller.to_owned(), of_caller + 1);
        open.by_run.insert(run_id, of_run + 1);
        Ok(StreamSlot {
            slots: self.clone(),
            caller: caller.to_owned(),
            run_id,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|p| p.into_inner());
        // Entries at zero are removed, so the maps hold open streams only.
        if let Some(count) = open.by_caller.get_mut(&self.caller) {
            *count -= 1;
            if *count == 0 {
                open.by_caller.remove(&self.caller);
            }
        }
        if let Some(count) = open.by_run.get_mut(&self.run_id) {
            *count -= 1;
            if *count == 0 {
                open.by_run.remove(&self.run_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_capped_per_caller_and_per_run_and_slots_come_back() {
        let slots = StreamSlots::with_limits(2, 3);
        let (run, other_run) = (Uuid::new_v4(), Uuid::new_v4());
        let a1 = slots.take("alice", run).unwrap();
        let _a2 = slots.take("alice", other_run).unwrap();
        assert_eq!(slots.take("alice", run).err(), Some(SlotRefusal::Caller(2)));
        let _b1 = slots.take("bob", run).unwrap();
        let _c1 = slots.take("carol", run).unwrap();
        assert_eq!(slots.take("dave", run).err(), Some(SlotRefusal::Run(3)));
        drop(a1);
        let _d1 = slots.take("dave", run).unwrap();
        let _a3 = slots.take("alice", other_run).unwrap();
        drop((_a2, _a3, _b1, _c1, _d1));
        let open = slots.open.lock().unwrap();
        assert!(open.by_caller.is_empty() && open.by_run.is_empty());
    }
}
