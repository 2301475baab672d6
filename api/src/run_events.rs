//! A run as it happens, over Server-Sent Events: its steps' lines (masked at the worker),
//! its steps' changes, and its end.
//!
//! The stream subscribes to the live fan-out first, then replays what the store already
//! has, so no line falls between the two; a line seen both ways is sent once. Event ids
//! let a reconnecting client (`Last-Event-ID`) carry on without duplicates.
//!
//! Bounded: the store is read a page at a time ([`REPLAY_PAGE`] lines), a resume looks up
//! the one line it names, a caller holds at most 8 streams and a run has at most 32
//! (`stream_slots`; `429` beyond), and the caller is authenticated and authorised again
//! every [`REAUTHORIZE_EVERY`]: a revoked or expired token's stream ends with an `error`
//! event within that interval.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::{self, Stream};
use tokio::sync::mpsc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use windlass_core::live_logs::{LiveKind, LiveLine, LiveStream};
use windlass_core::rbac::Permission;
use windlass_core::runs::{Run, Step};
use windlass_core::store::RunLogCursor;

use crate::AppState;
use crate::authz::Authenticated;
use crate::extract::Path;
use crate::problem::Problem;
use crate::runs::{RunDetail, repair_from_engine, repair_is_due};
use crate::stream_slots::{SlotRefusal, StreamSlots};

/// How often steps and the run's status are read while it runs. Step changes also come
/// at once, announced on the fan-out by the worker's step journal; the poll catches what
/// an announcement missed (a placed worker's, a fan-out hiccup) and the run's status.
const POLL: Duration = Duration::from_millis(500);
/// How often a run still running is checked with Temporal (terminated, timed out).
const REPAIR_EVERY: u32 = 10;
/// How long a resume waits for the line it names to reach the store (the fan-out is
/// faster than the batched write).
const RESUME_WAIT: Duration = Duration::from_secs(2);
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Lines read from the store at once.
pub(crate) const REPLAY_PAGE: u32 = 500;
/// How often an open stream checks that its caller still may read the run.
pub(crate) const REAUTHORIZE_EVERY: Duration = Duration::from_secs(10);

/// What a stream needs to check its caller again.
struct Access {
    authn: Authenticated,
    token: String,
    path: String,
    organization_id: Uuid,
}

impl Access {
    async fn still_allowed(&self, state: &AppState) -> Result<(), Problem> {
        self.authn
            .renewed(state, &self.token, &self.path)
            .await?
            .authorize(state, self.organization_id, Permission::RunsRead)
            .await
            .map(|_| ())
    }
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(run_events))
}

/// Follow a run live (Server-Sent Events). Events: `log` (id `<step>:<attempt>:<seq>`, data
/// `{"step","attempt","seq","at","level","line"}`, secrets masked), `step` (a step as in
/// the run's detail, whenever it changes), `end` (the run's detail, once it is finished;
/// then the stream closes). Lines printed before the request are replayed first; a finished
/// run replays everything and ends at once. `Last-Event-ID` resumes after that line. The
/// caller is checked again every 10 seconds; one no longer allowed gets an `error` event
/// (a problem document) and the stream closes. At most 8 streams per caller, 32 per run.
#[utoipa::path(get, path = "/v1/organizations/{organization_id}/runs/{run_id}/events",
    tag = "runs",
    params(("organization_id" = Uuid, Path), ("run_id" = Uuid, Path),
        ("Last-Event-ID" = Option<String>, Header,
            description = "resume after this `log` event (`<step>:<attempt>:<seq>`)")),
    responses(
        (status = OK, content_type = "text/event-stream", body = String,
            description = "`event: log|step|end` with JSON data"),
        (status = BAD_REQUEST, body = Problem), (status = NOT_FOUND, body = Problem),
        (status = TOO_MANY_REQUESTS, body = Problem, description = "the caller or the run has as many streams open as allowed")))]
async fn run_events(
    State(state): State<AppState>,
    axum::Extension(slots): axum::Extension<StreamSlots>,
    Path((organization_id, run_id)): Path<(Uuid, Uuid)>,
    authn: Authenticated,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let caller = authn
        .authorize(&state, organization_id, Permission::RunsRead)
        .await?;
    let resume = last_event_id(&headers)?;
    let run = state
        .store
        .run(organization_id, run_id)
        .await
        .map_err(Problem::from);
    // Who watched a run's live log is on the record (the log can show what a run did in
    // the customer's cloud), once per stream opened.
    caller
        .record(
            &state,
            Some(organization_id),
            "runs.log_stream",
            format!("run:{run_id}"),
            &run,
            serde_json::json!({"resume": resume.is_some()}),
        )
        .await;
    let run = run?;
    let slot = slots.take(&caller.actor, run_id).map_err(|refusal| {
        let detail = match refusal {
            SlotRefusal::Caller(limit) => {
                format!("a caller may follow at most {limit} streams at once; close one")
            }
            SlotRefusal::Run(limit) => {
                format!("at most {limit} streams may follow one run at once")
            }
        };
        Problem::too_many_requests(detail, 5)
    })?;
    let access = Access {
        authn,
        // `authenticate` let the request in, so it carried a bearer token.
        token: crate::authz::bearer_token(&headers).unwrap_or_default(),
        path: format!("/v1/organizations/{organization_id}/runs/{run_id}/events"),
        organization_id,
    };
    // Subscribed before the replay is read: nothing printed in between is lost.
    let live = state.live_logs.subscribe(run_id).await;
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        // Held while the stream is followed; given back however it ends.
        let _slot = slot;
        match follow(&state, run, live, resume, &access, &tx).await {
            Err(problem) if problem.status != StatusCode::GONE.as_u16() => {
                // The client sees the stream close and reconnects with Last-Event-ID.
                tracing::warn!(%run_id, detail = %problem.detail, "run events stream stopped");
            }
            _ => {}
        }
    });
    let events = stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok(event), rx))
    });
    Ok(Sse::new(events.boxed()).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// `<step>:<attempt>:<seq>`; step keys may hold `:` themselves, attempt and seq do not.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LineId {
    step: String,
    attempt: u32,
    seq: u32,
}

impl LineId {
    fn of(line: &LiveLine) -> Self {
        Self {
            step: line.step.clone(),
            attempt: line.attempt,
            seq: line.seq,
        }
    }
}

fn last_event_id(headers: &HeaderMap) -> Result<Option<LineId>, Problem> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let invalid = || Problem::bad_request("Last-Event-ID must be `<step>:<attempt>:<seq>`");
    let value = value.to_str().map_err(|_| invalid())?;
    if value.is_empty() {
        return Ok(None);
    }
    let mut parts = value.rsplitn(3, ':');
    let (Some(seq), Some(attempt), Some(step)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid());
    };
    Ok(Some(LineId {
        step: step.to_owned(),
        attempt: attempt.parse().map_err(|_| invalid())?,
        seq: seq.parse().map_err(|_| invalid())?,
    }))
}

/// Which lines this client already has.
#[derive(Default)]
struct Seen {
    /// From `Last-Event-ID`: the client had every line up to this one in print order
    /// (time, step, attempt, seq), and every earlier line of the same attempt.
    resumed_after: Option<(Option<DateTime<Utc>>, LineId)>,
    sent: HashSet<LineId>,
}

impl Seen {
    /// Whether to send `line`, remembering that it was.
    fn admit(&mut self, line: &LiveLine) -> bool {
        if let Some((at, last)) = &self.resumed_after {
            let same_attempt = line.step == last.step && line.attempt == last.attempt;
            if same_attempt && line.seq <= last.seq {
                return false;
            }
            if let Some(at) = at
                && (line.at, &line.step, line.attempt, line.seq)
                    <= (*at, &last.step, last.attempt, last.seq)
            {
                return false;
            }
        }
        self.sent.insert(LineId::of(line))
    }
}

/// Sends the run's events until it ends, the client leaves or the caller may no longer
/// read the run.
async fn follow(
    state: &AppState,
    mut run: Run,
    mut live: LiveStream,
    resume: Option<LineId>,
    access: &Access,
    tx: &mpsc::Sender<Event>,
) -> Result<(), Problem> {
    let run_id = run.id;
    let mut seen = Seen::default();
    let mut replay_from = None;
    if let Some(last) = resume {
        // One line looked up, not the whole log re-read, while it reaches the store.
        let lookup = || {
            state
                .store
                .run_log_line_at(run_id, &last.step, last.attempt, last.seq)
        };
        let mut at = lookup().await?;
        let deadline = tokio::time::Instant::now() + RESUME_WAIT;
        while at.is_none() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            at = lookup().await?;
        }
        if let Some(at) = at {
            replay_from = Some(RunLogCursor {
                at,
                step: last.step.clone(),
                attempt: last.attempt,
                seq: last.seq,
            });
        }
        seen.resumed_after = Some((at, last));
    }
    replay(state, run_id, replay_from.as_ref(), &mut seen, tx).await?;
    let mut steps = HashMap::new();
    send_step_changes(state, run_id, &mut steps, tx).await?;
    let mut ticker = tokio::time::interval(POLL);
    let mut reauthorize = tokio::time::interval_at(
        tokio::time::Instant::now() + REAUTHORIZE_EVERY,
        REAUTHORIZE_EVERY,
    );
    let mut ticks = 0u32;
    loop {
        if run.status.is_finished() {
            // Whatever the fan-out dropped is in the store by now: the run's last
            // activity records its end only after every step's writer has flushed.
            replay(state, run_id, replay_from.as_ref(), &mut seen, tx).await?;
            send_step_changes(state, run_id, &mut steps, tx).await?;
            let detail = detail(state, run).await?;
            send(tx, Event::default().event("end").json_data(&detail)).await?;
            return Ok(());
        }
        tokio::select! {
            () = tx.closed() => return Ok(()),
            line = live.next() => match line {
                // A step's journal changed: read the steps now, not at the next poll.
                Some(line) if line.kind == LiveKind::StepChanged => {
                    send_step_changes(state, run_id, &mut steps, tx).await?;
                }
                Some(line) => send_line(&mut seen, &line, tx).await?,
                // The fan-out ended (it does not, short of a bug): the store still has
                // every line, and the end catches up from it.
                None => live = stream::pending().boxed(),
            },
            _ = reauthorize.tick() => {
                if let Err(problem) = access.still_allowed(state).await {
                    tracing::info!(%run_id, status = problem.status, "run events stream ended: caller no longer authorised");
                    send(tx, Event::default().event("error").json_data(&problem)).await?;
                    return Ok(());
                }
            }
            _ = ticker.tick() => {
                ticks += 1;
                send_step_changes(state, run_id, &mut steps, tx).await?;
                run = state.store.run(run.organization_id, run_id).await?;
                // The steps just sent are the store's as of this tick.
                if ticks.is_multiple_of(REPAIR_EVERY) && repair_is_due(&run, steps.values()) {
                    run = repair_from_engine(state, run).await?;
                }
            }
        }
    }
}

/// Sends the store's lines from `from` on (the start without it) a page at a time.
async fn replay(
    state: &AppState,
    run_id: Uuid,
    from: Option<&RunLogCursor>,
    seen: &mut Seen,
    tx: &mpsc::Sender<Event>,
) -> Result<(), Problem> {
    let mut cursor = from.cloned();
    loop {
        let page = state
            .store
            .run_log_page(run_id, cursor.as_ref(), REPLAY_PAGE)
            .await?;
        for line in &page {
            send_line(seen, line, tx).await?;
        }
        match page.last() {
            Some(last) if page.len() == REPLAY_PAGE as usize => {
                cursor = Some(RunLogCursor::after(last));
            }
            _ => return Ok(()),
        }
    }
}

async fn send_line(
    seen: &mut Seen,
    line: &LiveLine,
    tx: &mpsc::Sender<Event>,
) -> Result<(), Problem> {
    if !seen.admit(line) {
        return Ok(());
    }
    send(
        tx,
        Event::default()
            .event("log")
            .id(line.event_id())
            .json_data(line),
    )
    .await
}

/// Sends each step whose state differs from what the client was last sent.
async fn send_step_changes(
    state: &AppState,
    run_id: Uuid,
    sent: &mut HashMap<String, Step>,
    tx: &mpsc::Sender<Event>,
) -> Result<(), Problem> {
    for step in state.store.steps(run_id).await? {
        if sent.get(&step.key) != Some(&step) {
            send(tx, Event::default().event("step").json_data(&step)).await?;
            sent.insert(step.key.clone(), step);
        }
    }
    Ok(())
}

async fn detail(state: &AppState, run: Run) -> Result<RunDetail, Problem> {
    let steps = state.store.steps(run.id).await?;
    Ok(RunDetail::new(run, steps))
}

/// A client that left ends the stream: `410 Gone`, which nobody sees.
async fn send(tx: &mpsc::Sender<Event>, event: Result<Event, axum::Error>) -> Result<(), Problem> {
    let event = event.map_err(|error| {
        tracing::error!(%error, "encoding an event");
        Problem::internal()
    })?;
    tx.send(event)
        .await
        .map_err(|_| Problem::new(StatusCode::GONE, "client-gone", "the client left"))
}
