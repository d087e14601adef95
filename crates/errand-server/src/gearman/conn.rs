//! One Gearman connection: a client, a worker or both (gearmand keeps no
//! role; each packet says what it is). Submits are enqueued and committed
//! before `JOB_CREATED`; grabs claim through the remote-worker path with a
//! lease this connection renews while it is open; `WORK_*` reports finish
//! only jobs this connection holds; foreground results are forwarded to
//! the submitting connections through the [`Hub`].

use super::ahead::{AHEAD, Ending, Finisher, Pace, surplus};
use super::data::{to_bytes, to_json};
use super::{ConnInfo, EXCEPTION_ERROR, Hub, Listener, OnEnd, lock};
use bytes::Bytes;
use errand_core::audit::AuditActor;
use errand_core::remote::{ClaimedJob, HeldJob, WorkClaim, WorkHeartbeat, WorkerIdentity};
use errand_core::store::ListFilter;
use errand_core::{EnqueueRequest, JobId, JobState, Lease, Outcome, StoreEvent};
use errand_gearman::admin::{
    self, FunctionStatus, JobLine, MaxQueueLimits, PriorityStatusLine, WorkerLine,
};
use errand_gearman::packet::MAX_UNIQUE_LEN;
use errand_gearman::{
    Action, AdminCommand, CodecConfig, ErrorReply, Frame, GearmanCodec, JobHandle, Outgoing,
    Packet, Priority, Role,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;

/// A worker that holds no job and has not asked for one this long (it
/// does other work between jobs, or stopped) gives its jobs claimed ahead
/// back; a Gearman worker loop asks again at once after each report.
const IDLE: Duration = Duration::from_secs(1);

/// Tag on every job submitted over Gearman.
const GEARMAN_TAG: &str = "gearman";
/// Tag on a job submitted with a foreground `SUBMIT_JOB*`: its client
/// waits for the outcome, so a `WORK_FAIL` ends it instead of retrying.
const FOREGROUND_TAG: &str = "gearman:foreground";
/// Longest `SET_CLIENT_ID` kept (gearmand's limit).
const MAX_CLIENT_ID: usize = 127;
/// Longest exception text kept in the job's error list.
const MAX_EXCEPTION_TEXT: usize = 1024;
/// Most jobs `show jobs` and `show unique jobs` list.
const SHOW_JOBS_LIMIT: usize = 10_000;

/// A job this connection holds.
struct Held {
    fence: i64,
    /// Its kind (the Gearman function).
    kind: String,
    foreground: bool,
    /// The last `WORK_STATUS` not yet stored.
    progress: Option<Value>,
    /// When the kind's `timeout` ends the attempt (checked at each renewal).
    deadline: Option<tokio::time::Instant>,
    /// When the worker got it.
    assigned: tokio::time::Instant,
}

/// A job claimed ahead of the worker, and when its claim answered.
struct Ready {
    job: ClaimedJob,
    since: tokio::time::Instant,
}

/// Which grab asked for a job: it decides the assign packet.
#[derive(Clone, Copy, PartialEq)]
enum Grab {
    Plain,
    Uniq,
    All,
}

type Wake = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The connection's state.
struct Conn {
    hub: Arc<Hub>,
    id: u64,
    tx: mpsc::UnboundedSender<Packet>,
    identity: WorkerIdentity,
    exceptions: bool,
    /// Registered functions, duplicates kept (gearmand counts each).
    functions: Vec<Bytes>,
    held: HashMap<JobId, Held>,
    /// Jobs claimed ahead for the worker's next grabs, under this
    /// connection's lease; handed back unrun when it closes.
    ready: VecDeque<Ready>,
    /// How many jobs a claim takes.
    pace: Pace,
    /// A claim running while the worker works through `ready`, so its
    /// next grabs need not wait for a commit.
    refill: Option<JoinHandle<Vec<ClaimedJob>>>,
    /// Whether the last claim got all it asked for (more may be waiting).
    full: bool,
    /// When the worker last reported the end of a job.
    reported: tokio::time::Instant,
    /// Ends attempts without making the worker wait for the commit.
    finisher: Finisher,
    /// Jobs this connection listens to as a foreground client.
    listening: HashSet<JobId>,
    /// Subscribed before the last grab's claim, so a job enqueued after it
    /// wakes a worker that then sleeps.
    events: Option<broadcast::Receiver<StoreEvent>>,
    /// Set by `PRE_SLEEP`.
    sleep: bool,
    /// Set by a grab.
    awake: bool,
}

/// Serves one connection until it closes or the node stops.
pub(super) async fn run(hub: Arc<Hub>, id: u64, stream: TcpStream, peer: SocketAddr) {
    lock(&hub.conns).insert(
        id,
        ConnInfo {
            ip: peer.ip(),
            client_id: None,
            functions: Vec::new(),
        },
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    let limit = u32::try_from(hub.config.payload_limit).unwrap_or(u32::MAX);
    let codec = GearmanCodec::new(Role::Server, CodecConfig::for_payload_limit(limit));
    let (mut sink, mut frames) = Framed::new(stream, codec).split();
    let identity = WorkerIdentity {
        host: Some(peer.ip().to_string()),
        library: Some("gearman".into()),
        ..WorkerIdentity::new(worker_id(&hub.config.remote.node, id))
    };
    let mut conn = Conn {
        hub: hub.clone(),
        id,
        tx,
        identity: identity.clone(),
        exceptions: false,
        functions: Vec::new(),
        held: HashMap::new(),
        ready: VecDeque::new(),
        pace: Pace::default(),
        refill: None,
        full: false,
        reported: tokio::time::Instant::now(),
        finisher: Finisher::start(hub.clone(), identity.clone()),
        listening: HashSet::new(),
        events: None,
        sleep: false,
        awake: false,
    };
    let shutdown = hub.config.shutdown.clone();
    let mut beat = tokio::time::interval(hub.config.remote.heartbeat);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut wake: Option<Wake> = None;
    let mut stopping = false;
    loop {
        let out: Vec<Outgoing> = tokio::select! {
            frame = frames.next() => match frame {
                None => break,
                Some(Ok(Frame::Packet(p))) => conn.packet(p).await,
                Some(Ok(Frame::Admin(cmd))) => vec![Outgoing::Text(conn.admin(cmd).await)],
                Some(Ok(Frame::Rejected(e))) | Some(Err(e)) => match e.action() {
                    Action::Reply(reply) => vec![reply.to_packet().into()],
                    Action::Close => break,
                },
            },
            Some(p) = rx.recv() => vec![p.into()],
            _ = beat.tick() => {
                conn.renew().await;
                continue;
            }
            _ = tokio::time::sleep_until(conn.slow_at().unwrap_or_else(tokio::time::Instant::now)),
                if conn.slow_at().is_some() => {
                conn.running_slow();
                continue;
            }
            jobs = async {
                match conn.refill.as_mut() {
                    Some(claim) => claim.await.unwrap_or_default(),
                    None => std::future::pending().await,
                }
            }, if conn.refill.is_some() => {
                conn.refill = None;
                conn.refilled(jobs);
                continue;
            }
            _ = async {
                match wake.as_mut() {
                    Some(w) => w.await,
                    None => std::future::pending().await,
                }
            }, if wake.is_some() => {
                wake = None;
                vec![Packet::Noop.into()]
            }
            _ = shutdown.cancelled() => {
                stopping = true;
                break;
            }
        };
        if conn.sleep {
            conn.sleep = false;
            wake = Some(conn.wake());
        } else if conn.awake {
            // It grabbed: a wake-up armed for an earlier sleep is moot.
            conn.awake = false;
            wake = None;
        }
        let mut failed = false;
        for o in out {
            if sink.feed(o).await.is_err() {
                failed = true;
                break;
            }
        }
        if failed || sink.flush().await.is_err() {
            break;
        }
    }
    conn.close(stopping).await;
}

/// The remote-worker id of connection `id`: `<node>.gearman.<id>`, made
/// of name characters.
fn worker_id(node: &str, id: u64) -> String {
    let node: String = node
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(200)
        .collect();
    format!("{node}.gearman.{id}")
}

impl Conn {
    async fn packet(&mut self, packet: Packet) -> Vec<Outgoing> {
        let one = |p: Packet| vec![Outgoing::Packet(p)];
        if packet.as_submit().is_some() {
            return one(self.submit(&packet).await);
        }
        match packet {
            Packet::OptionReq { option } if &option[..] == b"exceptions" => {
                self.exceptions = true;
                one(Packet::OptionRes { option })
            }
            Packet::OptionReq { .. } => one(ErrorReply::unknown_option().to_packet()),
            Packet::EchoReq { data } => one(Packet::EchoRes { data }),
            Packet::SetClientId { id } => {
                let id = id.slice(..id.len().min(MAX_CLIENT_ID));
                if let Some(info) = lock(&self.hub.conns).get_mut(&self.id) {
                    info.client_id = Some(id);
                }
                vec![]
            }
            Packet::CanDo { function } | Packet::CanDoTimeout { function, .. } => {
                self.functions.push(function);
                self.abilities_changed();
                vec![]
            }
            Packet::CantDo { function } => {
                self.functions.retain(|f| *f != function);
                self.abilities_changed();
                vec![]
            }
            Packet::ResetAbilities => {
                self.functions.clear();
                self.abilities_changed();
                vec![]
            }
            Packet::PreSleep => {
                self.sleep = true;
                vec![]
            }
            Packet::GrabJob => one(self.grab(Grab::Plain).await),
            Packet::GrabJobUniq => one(self.grab(Grab::Uniq).await),
            Packet::GrabJobAll => one(self.grab(Grab::All).await),
            Packet::WorkStatus {
                handle,
                numerator,
                denominator,
            } => self.work_status(handle, numerator, denominator),
            Packet::WorkData { handle, data } => self.work_data(handle, data, false),
            Packet::WorkWarning { handle, data } => self.work_data(handle, data, true),
            Packet::WorkComplete { handle, data } => self.work_end(handle, End::Complete(data)),
            Packet::WorkFail { handle } => self.work_end(handle, End::Fail),
            Packet::WorkException { handle, data } => self.work_end(handle, End::Exception(data)),
            Packet::GetStatus { handle } => one(self.status(handle).await),
            Packet::GetStatusUnique { unique } => one(self.status_unique(unique).await),
            _ => one(ErrorReply::command_not_expected().to_packet()),
        }
    }

    fn abilities_changed(&mut self) {
        if let Some(info) = lock(&self.hub.conns).get_mut(&self.id) {
            info.functions = self.functions.clone();
        }
        // Jobs claimed ahead of a function it no longer does go back.
        let kinds = self.claimable();
        self.hand_back_ready(|job| !kinds.contains(&job.kind));
    }

    /// The registered functions errand hands jobs of to Gearman workers
    /// (the `remote = true` kinds), each once, in registration order.
    fn claimable(&self) -> Vec<String> {
        let mut kinds = Vec::new();
        for f in &self.functions {
            let Ok(kind) = std::str::from_utf8(f) else {
                continue;
            };
            let remote = self
                .hub
                .config
                .catalog
                .policy(kind)
                .is_some_and(|p| p.remote);
            if remote && !kinds.iter().any(|k| k == kind) {
                kinds.push(kind.to_string());
            }
        }
        kinds
    }

    fn handle(&self, id: JobId) -> Bytes {
        handle(&self.hub.handle_prefix, id)
    }

    /// A `SUBMIT_*`: enqueued (and committed) before `JOB_CREATED`.
    async fn submit(&mut self, packet: &Packet) -> Packet {
        let Some(s) = packet.as_submit() else {
            return ErrorReply::command_not_expected().to_packet();
        };
        if s.reducer.is_some() {
            return error(
                "NOT_SUPPORTED",
                "map/reduce submits are not supported by errand",
            );
        }
        let catalog = &self.hub.config.catalog;
        let Some((kind, policy)) = std::str::from_utf8(s.function)
            .ok()
            .and_then(|k| Some((k, catalog.policy(k)?)))
        else {
            return error(
                "INVALID_FUNCTION_NAME",
                "unknown function: configure it as an errand kind ([kinds.NAME] with remote = true for Gearman workers)",
            );
        };
        let unique = match unique_key(s.unique, s.data) {
            Ok(unique) => unique,
            Err(why) => return error("INVALID_ARGUMENT", why),
        };
        if let Some(full) = self.queue_full(kind, s.priority, unique.as_deref()).await {
            return full;
        }
        let priority = match s.priority {
            Priority::High => policy.priority.saturating_sub(1),
            Priority::Normal => policy.priority,
            Priority::Low => policy.priority.saturating_add(1),
        };
        let run_at = match s.epoch {
            None => None,
            Some(epoch) => match i64::try_from(epoch)
                .ok()
                .and_then(|e| jiff::Timestamp::from_second(e).ok())
            {
                Some(at) => Some(at),
                None => return error("INVALID_ARGUMENT", "epoch: out of range"),
            },
        };
        let mut tags = vec![GEARMAN_TAG.to_string()];
        if !s.background {
            tags.push(FOREGROUND_TAG.to_string());
        }
        let req = EnqueueRequest {
            kind: kind.to_string(),
            payload: to_json(s.data),
            priority: Some(priority),
            run_at,
            unique_key: unique,
            tags,
            ..Default::default()
        };
        let now = self.hub.store.clock().now();
        let job = match catalog.resolve(req, now) {
            Ok(job) => job,
            Err(e) => return error("INVALID_ARGUMENT", &e.to_string()),
        };
        let enqueued = match self.hub.store.enqueue(vec![job]).await {
            Ok(mut e) => match e.pop() {
                Some(e) => e,
                None => return error("QUEUE_ERROR", "the job was not stored"),
            },
            Err(e) => {
                tracing::warn!(error = %e, kind, "gearman submit not stored");
                return error("QUEUE_ERROR", "the job was not stored; try again");
            }
        };
        let job = enqueued.job;
        let handle = self.handle(job.id);
        if !s.background {
            if job.state.is_terminal() {
                // A unique_for duplicate that already ended: its outcome now.
                let end = match (&job.state, &job.result) {
                    (JobState::Completed, result) => Packet::WorkComplete {
                        handle: handle.clone(),
                        data: result.as_ref().map(to_bytes).unwrap_or_default(),
                    },
                    _ => Packet::WorkFail {
                        handle: handle.clone(),
                    },
                };
                let _ = self.tx.send(end);
            } else {
                lock(&self.hub.listeners)
                    .entry(job.id)
                    .or_default()
                    .push(Listener {
                        conn: self.id,
                        tx: self.tx.clone(),
                        exceptions: self.exceptions,
                    });
                self.listening.insert(job.id);
            }
        }
        Packet::JobCreated { handle }
    }

    /// A `GRAB_JOB*`: the next job claimed ahead, else a claim of
    /// [`Pace::batch`] jobs of the registered functions, or `NO_JOB`.
    async fn grab(&mut self, grab: Grab) -> Packet {
        self.awake = true;
        if self.hub.config.shutdown.is_cancelled() {
            return Packet::NoJob;
        }
        if self.ready.is_empty()
            && let Some(refill) = self.refill.take()
        {
            let jobs = refill.await.unwrap_or_default();
            self.refilled(jobs);
        }
        let job = match self.ready.pop_front() {
            Some(ready) => ready.job,
            None => match self.claim().await {
                Some(job) => job,
                None => return Packet::NoJob,
            },
        };
        self.refill_if_low();
        let now = tokio::time::Instant::now();
        self.held.insert(
            job.id,
            Held {
                fence: job.fence,
                kind: job.kind.clone(),
                foreground: job.tags.iter().any(|t| t == FOREGROUND_TAG),
                progress: None,
                deadline: job.timeout_ms.map(|ms| now + Duration::from_millis(ms)),
                assigned: now,
            },
        );
        let handle = self.handle(job.id);
        let function = Bytes::from(job.kind);
        let data = to_bytes(&job.payload);
        if grab == Grab::Plain {
            return Packet::JobAssign {
                handle,
                function,
                data,
            };
        }
        Packet::JobAssignUniq {
            handle,
            function,
            unique: job.unique_key.map(Bytes::from).unwrap_or_default(),
            data,
        }
    }

    /// Claims jobs for this worker: the first to assign, the rest kept
    /// ready.
    async fn claim(&mut self) -> Option<ClaimedJob> {
        // Before the claim: an enqueue after its snapshot stays in here.
        self.events = Some(self.hub.store.subscribe());
        let kinds = self.claimable();
        if kinds.is_empty() {
            return None;
        }
        let max_jobs = self.pace.batch();
        let jobs = claim(&self.hub, self.identity.clone(), kinds, max_jobs).await;
        self.full = jobs.len() == max_jobs as usize;
        let mut jobs = jobs.into_iter();
        let first = jobs.next();
        self.keep_ready(jobs);
        first
    }

    /// Starts claiming the next batch in the background once the jobs
    /// claimed ahead are down to one batch and the last claim suggested
    /// more are waiting: the claim's commit then overlaps a batch of work.
    fn refill_if_low(&mut self) {
        let batch = self.pace.batch();
        if batch < 2 || !self.full || self.refill.is_some() || self.ready.len() > batch as usize {
            return;
        }
        let kinds = self.claimable();
        if kinds.is_empty() {
            return;
        }
        let (hub, worker) = (self.hub.clone(), self.identity.clone());
        self.refill = Some(tokio::spawn(async move {
            claim(&hub, worker, kinds, batch).await
        }));
    }

    /// Takes in what a background claim got (handing back what the worker
    /// stopped doing meanwhile).
    fn refilled(&mut self, jobs: Vec<ClaimedJob>) {
        self.full = !jobs.is_empty() && jobs.len() >= self.pace.batch() as usize;
        self.keep_ready(jobs);
        let kinds = self.claimable();
        self.hand_back_ready(|job| !kinds.contains(&job.kind));
    }

    /// Keeps `jobs` for the worker's next grabs, claimed now.
    fn keep_ready(&mut self, jobs: impl IntoIterator<Item = ClaimedJob>) {
        let since = tokio::time::Instant::now();
        self.ready
            .extend(jobs.into_iter().map(|job| Ready { job, since }));
    }

    /// When the jobs claimed ahead should go to other workers: once the
    /// job the worker runs has taken [`AHEAD`], or once a worker holding
    /// no job has not asked for one for [`IDLE`].
    fn slow_at(&self) -> Option<tokio::time::Instant> {
        if self.ready.is_empty() {
            return None;
        }
        match self.held.values().map(|h| h.assigned + AHEAD).min() {
            Some(at) => Some(at),
            None => Some(self.reported + IDLE),
        }
    }

    /// Hands the jobs claimed ahead back (no attempt counted); when the
    /// worker's job runs long, claims one at a time until jobs are short.
    fn running_slow(&mut self) {
        if !self.held.is_empty() {
            self.pace.slowed();
        }
        self.hand_back_ready(|_| true);
    }

    /// Hands back the ready jobs `which` selects, unrun.
    fn hand_back_ready(&mut self, which: impl Fn(&ClaimedJob) -> bool) {
        let (back, keep): (Vec<_>, Vec<_>) = self.ready.drain(..).partition(|r| which(&r.job));
        self.ready = keep.into();
        self.hand_back(back);
    }

    /// Hands `jobs` claimed ahead back to the queue, no attempt counted.
    fn hand_back(&self, jobs: impl IntoIterator<Item = Ready>) {
        for Ready { job, .. } in jobs {
            self.finisher.end(
                &self.hub,
                Ending {
                    lease: job.lease(),
                    outcome: Outcome::Handback,
                    tell: None,
                },
            );
        }
    }

    /// The job a worker's handle names, if this connection holds it.
    fn held_id(&self, handle: &[u8]) -> Option<JobId> {
        let number = JobHandle::parse(handle).ok()?.number();
        let id = JobId::try_from(number).ok()?;
        self.held.contains_key(&id).then_some(id)
    }

    fn work_status(
        &mut self,
        handle: Bytes,
        numerator: Bytes,
        denominator: Bytes,
    ) -> Vec<Outgoing> {
        let Some(id) = self.held_id(&handle) else {
            return vec![ErrorReply::job_not_found().to_packet().into()];
        };
        let text = |b: &Bytes| String::from_utf8_lossy(&b[..b.len().min(32)]).into_owned();
        if let Some(held) = self.held.get_mut(&id) {
            held.progress =
                Some(json!({"numerator": text(&numerator), "denominator": text(&denominator)}));
        }
        let handle = self.handle(id);
        self.hub.forward(
            id,
            &Packet::WorkStatus {
                handle,
                numerator,
                denominator,
            },
            false,
        );
        vec![]
    }

    /// `WORK_DATA` / `WORK_WARNING`: for foreground listeners only.
    fn work_data(&mut self, handle: Bytes, data: Bytes, warning: bool) -> Vec<Outgoing> {
        let Some(id) = self.held_id(&handle) else {
            return vec![ErrorReply::job_not_found().to_packet().into()];
        };
        let handle = self.handle(id);
        let packet = if warning {
            Packet::WorkWarning { handle, data }
        } else {
            Packet::WorkData { handle, data }
        };
        self.hub.forward(id, &packet, false);
        vec![]
    }

    /// `WORK_COMPLETE`, `WORK_FAIL`, `WORK_EXCEPTION`: ends the attempt
    /// under this connection's lease, in the background (Gearman sends no
    /// answer); only an applied end reaches the listeners.
    fn work_end(&mut self, handle: Bytes, end: End) -> Vec<Outgoing> {
        let Some(id) = self.held_id(&handle) else {
            return vec![ErrorReply::job_not_found().to_packet().into()];
        };
        let Some(held) = self.held.remove(&id) else {
            return vec![ErrorReply::job_not_found().to_packet().into()];
        };
        self.pace.ran(held.assigned.elapsed());
        self.reported = tokio::time::Instant::now();
        // Jobs grew slower: other workers may have what this one will not
        // reach soon.
        let waited = self
            .ready
            .front()
            .map_or(Duration::ZERO, |r| r.since.elapsed());
        let extra = surplus(self.ready.len(), waited, self.pace.batch());
        if extra > 0 {
            let extra = self.ready.split_off(self.ready.len() - extra);
            self.hand_back(extra);
        }
        let handle = self.handle(id);
        // A foreground client is told the job failed: running it again
        // would give a result nobody waits for. A background job ends as
        // its function's `[gearman.functions]` entry says (retry unless set).
        let outcomes = self.hub.config.outcomes(&held.kind);
        let failed = |on: OnEnd, text: String| {
            if held.foreground {
                Outcome::Permanent(text)
            } else {
                on.outcome(text)
            }
        };
        let (outcome, packet) = match end {
            End::Complete(data) => (
                Outcome::Success(Some(to_json(&data))),
                Packet::WorkComplete { handle, data },
            ),
            End::Fail => (
                failed(outcomes.on_fail, "the Gearman worker sent WORK_FAIL".into()),
                Packet::WorkFail { handle },
            ),
            End::Exception(data) => {
                let text = String::from_utf8_lossy(&data[..data.len().min(MAX_EXCEPTION_TEXT)]);
                (
                    failed(outcomes.on_exception, format!("{EXCEPTION_ERROR}{text}")),
                    Packet::WorkException { handle, data },
                )
            }
        };
        // Only an end that is final has its own packet to tell; a retry's
        // or a deadly end's listeners wait for the next attempt.
        let tell = matches!(outcome, Outcome::Success(_) | Outcome::Permanent(_)).then_some(packet);
        self.end(id, held.fence, outcome, tell);
        vec![]
    }

    /// Ends this connection's attempt on job `id` (claim `fence`) with
    /// `outcome`, in the background; `tell` goes to its foreground clients
    /// once applied.
    fn end(&self, id: JobId, fence: i64, outcome: Outcome, tell: Option<Packet>) {
        let ending = Ending {
            lease: Lease { id, fence },
            outcome,
            tell,
        };
        self.finisher.end(&self.hub, ending);
    }

    /// Renews the leases held (with any `WORK_STATUS` since the last
    /// renewal) and forgets the ones lost.
    async fn renew(&mut self) {
        self.time_out();
        if self.held.is_empty() && self.ready.is_empty() {
            return;
        }
        let held = self.held.iter_mut().map(|(id, held)| HeldJob {
            id: *id,
            fence: held.fence,
            progress: held.progress.take(),
        });
        let ready = self.ready.iter().map(|r| HeldJob {
            id: r.job.id,
            fence: r.job.fence,
            progress: None,
        });
        let jobs = held.chain(ready).collect();
        let req = WorkHeartbeat {
            worker: self.identity.clone(),
            jobs,
        };
        match self.hub.remote.heartbeat(req).await {
            Ok(answer) => {
                let lost: HashSet<JobId> = answer.lost.iter().map(|l| l.id).collect();
                self.held.retain(|id, _| !lost.contains(id));
                self.ready.retain(|r| !lost.contains(&r.job.id));
            }
            Err(e) => tracing::warn!(error = %e, conn = self.id, "gearman lease renewal failed"),
        }
    }

    /// Ends the attempts that ran past their kind's `timeout` as a retry
    /// (a foreground client is told it failed); the worker's later report
    /// gets `ERROR JOB_NOT_FOUND`.
    fn time_out(&mut self) {
        let now = tokio::time::Instant::now();
        let late: Vec<JobId> = self
            .held
            .iter()
            .filter(|(_, h)| h.deadline.is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            let Some(held) = self.held.remove(&id) else {
                continue;
            };
            let text = "the Gearman worker ran past the kind's timeout".to_string();
            let outcome = if held.foreground {
                Outcome::Permanent(text)
            } else {
                Outcome::Retry(text)
            };
            let tell = held.foreground.then(|| Packet::WorkFail {
                handle: self.handle(id),
            });
            self.end(id, held.fence, outcome, tell);
        }
    }

    /// `GET_STATUS`: from the store; a finished or unknown job is `0 0 0 0`.
    async fn status(&self, handle: Bytes) -> Packet {
        let job = match JobHandle::parse(&handle)
            .ok()
            .and_then(|h| JobId::try_from(h.number()).ok())
        {
            Some(id) => self.hub.store.get(id).await.ok().flatten(),
            None => None,
        };
        let (known, running, numerator, denominator) = status_of(job.as_ref());
        Packet::StatusRes {
            handle,
            known,
            running,
            numerator,
            denominator,
        }
    }

    /// `GET_STATUS_UNIQUE`: from the store, the newest job of any
    /// configured kind with the unique that has not ended (submitted on
    /// any node, before or after a restart); the waiting clients are this
    /// node's foreground listeners of it.
    async fn status_unique(&self, unique: Bytes) -> Packet {
        let job = match std::str::from_utf8(&unique) {
            Ok(key) if !key.is_empty() => {
                let kinds: Vec<String> = self.hub.config.catalog.kinds().keys().cloned().collect();
                match self.hub.store.live_by_unique(&kinds, key).await {
                    Ok(job) => job,
                    Err(e) => {
                        tracing::warn!(error = %e, "gearman GET_STATUS_UNIQUE: job not read");
                        None
                    }
                }
            }
            // No job has an empty or non-UTF-8 key.
            _ => None,
        };
        let (known, running, numerator, denominator) = status_of(job.as_ref());
        let waiting_clients = match (&job, known) {
            (Some(job), true) => lock(&self.hub.listeners)
                .get(&job.id)
                .map_or(0, |l| l.len() as u64),
            _ => 0,
        };
        Packet::StatusResUnique {
            unique,
            known,
            running,
            numerator,
            denominator,
            waiting_clients,
        }
    }

    /// The `NOOP` a sleeping worker waits for: at once if a job was
    /// enqueued in its queues since its last grab, else at the next one,
    /// or after the poll interval (a scheduled job coming due or a retry's
    /// backoff ending sends no event; a spare `NOOP` only costs a grab).
    fn wake(&mut self) -> Wake {
        let mut events = self
            .events
            .take()
            .unwrap_or_else(|| self.hub.store.subscribe());
        let catalog = &self.hub.config.catalog;
        let queues: Vec<String> = self
            .claimable()
            .iter()
            .filter_map(|k| catalog.policy(k).map(|p| p.queue.clone()))
            .collect();
        let poll = self
            .hub
            .config
            .remote
            .poll_interval
            .max(Duration::from_millis(100));
        Box::pin(async move {
            tokio::select! {
                _ = work_event(&mut events, &queues) => {}
                _ = tokio::time::sleep(poll) => {}
            }
        })
    }

    /// An admin text command.
    async fn admin(&self, cmd: AdminCommand) -> Bytes {
        match cmd {
            AdminCommand::Status => self.admin_status().await,
            AdminCommand::Workers => {
                let conns = lock(&self.hub.conns);
                let lines: Vec<WorkerLine> = conns
                    .iter()
                    .map(|(fd, c)| WorkerLine {
                        fd: *fd,
                        ip: c.ip,
                        client_id: c.client_id.clone(),
                        functions: c.functions.clone(),
                    })
                    .collect();
                admin::format_workers(&lines)
            }
            AdminCommand::Version => admin::format_version(&self.hub.config.version),
            AdminCommand::GetPid => admin::format_getpid(std::process::id()),
            AdminCommand::Verbose => admin::format_verbose("INFO"),
            AdminCommand::CancelJob { handle } => self.admin_cancel(&handle).await,
            AdminCommand::MaxQueue { function, limits } => self.admin_max_queue(&function, limits),
            AdminCommand::PriorityStatus => self.admin_priority_status().await,
            AdminCommand::ShowJobs => match self.live_remote_jobs().await {
                Ok(jobs) => admin::format_show_jobs(
                    &jobs.iter().map(|j| self.job_line(j)).collect::<Vec<_>>(),
                ),
                Err(refused) => refused,
            },
            AdminCommand::ShowUniqueJobs => match self.live_remote_jobs().await {
                Ok(jobs) => {
                    let uniques: Vec<Bytes> = jobs
                        .iter()
                        .filter_map(|j| j.unique_key.as_deref())
                        .map(one_line)
                        .collect();
                    admin::format_show_unique_jobs(&uniques)
                }
                Err(refused) => refused,
            },
            AdminCommand::CreateFunction { function } => self.admin_create_function(&function),
            AdminCommand::DropFunction { function } => self.admin_drop_function(&function),
            // gearmand 1.1.20 has no `shutdown` either; errand stops on a
            // signal (decision 0032).
            AdminCommand::Shutdown { .. } => admin::format_unknown_command(b"shutdown"),
            AdminCommand::InvalidArguments { command } => admin::format_invalid_arguments(command),
            AdminCommand::Unknown { command } => admin::format_unknown_command(&command),
        }
    }

    /// The configured kind called `function`, if any.
    fn configured<'a>(&self, function: &'a [u8]) -> Option<&'a str> {
        let kind = std::str::from_utf8(function).ok()?;
        self.hub.config.catalog.policy(kind).map(|_| kind)
    }

    /// `maxqueue F [N | HIGH NORMAL LOW]`: sets (or with no number, or
    /// only caps of 0 or below, removes) this node's caps for a configured
    /// kind. gearmand answers `OK` for a function it does not know and
    /// changes nothing; so does errand for a name that is not a kind.
    fn admin_max_queue(&self, function: &[u8], limits: MaxQueueLimits) -> Bytes {
        let Some(kind) = self.configured(function) else {
            return admin::format_ok();
        };
        let caps = match limits {
            MaxQueueLimits::Reset => [0; 3],
            MaxQueueLimits::All(n) => [n; 3],
            MaxQueueLimits::PerPriority { high, normal, low } => [high, normal, low],
        };
        let mut max_queue = lock(&self.hub.max_queue);
        if caps.iter().all(|&c| c <= 0) {
            max_queue.remove(kind);
        } else {
            max_queue.insert(kind.to_string(), caps);
        }
        admin::format_ok()
    }

    /// `ERROR QUEUE_ERROR "Job queue is full"` when `maxqueue` capped
    /// `kind` for submits of `priority` and the kind has that many jobs
    /// queued, scheduled or running (gearmand counts queued and running),
    /// unless the submit's unique coalesces onto a live job (gearmand
    /// looks the unique up first). The count is the store's, so every
    /// node's jobs count; concurrent submits may pass it by a few.
    async fn queue_full(
        &self,
        kind: &str,
        priority: Priority,
        unique: Option<&str>,
    ) -> Option<Packet> {
        let caps = lock(&self.hub.max_queue).get(kind).copied()?;
        let cap = caps[priority_index(priority)];
        let cap = u64::try_from(cap).ok().filter(|&c| c > 0)?;
        let stats = match self.hub.store.stats().await {
            Ok(stats) => stats,
            Err(e) => {
                // The enqueue that follows reports a store that is down.
                tracing::warn!(error = %e, kind, "gearman maxqueue: counts not read");
                return None;
            }
        };
        let of = |state| stats.of_kind(kind, state);
        let total = of(JobState::Available)
            + of(JobState::Scheduled)
            + of(JobState::Retryable)
            + of(JobState::Running);
        if total < cap {
            return None;
        }
        if let Some(unique) = unique {
            let kinds = [kind.to_string()];
            if let Ok(Some(_)) = self.hub.store.live_by_unique(&kinds, unique).await {
                return None;
            }
        }
        Some(error("QUEUE_ERROR", "Job queue is full"))
    }

    /// The functions the admin lists show: every `remote = true` kind and
    /// every function a connection registered, with its registrations.
    fn admin_functions(&self) -> BTreeMap<Bytes, u64> {
        let mut workers: BTreeMap<Bytes, u64> = self
            .hub
            .config
            .catalog
            .remote_kinds()
            .map(|k| (Bytes::from(k.to_string()), 0))
            .collect();
        for info in lock(&self.hub.conns).values() {
            for f in &info.functions {
                *workers.entry(f.clone()).or_default() += 1;
            }
        }
        workers
    }

    /// `prioritystatus`: the functions of `status`, each with its waiting
    /// jobs (queued, scheduled or retryable; running ones are not counted,
    /// as in gearmand) by priority: below the kind's own priority is HIGH,
    /// the kind's is NORMAL, above it LOW (what a Gearman submit of each
    /// gets; a job enqueued over HTTP falls where its priority puts it).
    async fn admin_priority_status(&self) -> Bytes {
        let functions = self.admin_functions();
        let catalog = &self.hub.config.catalog;
        let kinds: Vec<String> = functions
            .keys()
            .filter_map(|f| self.configured(f).map(str::to_string))
            .collect();
        let waiting = match self.hub.store.waiting_by_priority(&kinds).await {
            Ok(waiting) => waiting,
            Err(e) => {
                tracing::warn!(error = %e, "gearman prioritystatus: counts not read");
                return admin::format_error(
                    "QUEUE_ERROR",
                    "the job counts could not be read; try again",
                );
            }
        };
        let lines: Vec<PriorityStatusLine> = functions
            .into_iter()
            .map(|(function, workers)| {
                let mut line = PriorityStatusLine {
                    function,
                    high: 0,
                    normal: 0,
                    low: 0,
                    workers,
                };
                let kind = std::str::from_utf8(&line.function).unwrap_or_default();
                if let (Some(policy), Some(counts)) = (catalog.policy(kind), waiting.get(kind)) {
                    for (&priority, &n) in counts {
                        match priority.cmp(&policy.priority) {
                            std::cmp::Ordering::Less => line.high += n,
                            std::cmp::Ordering::Equal => line.normal += n,
                            std::cmp::Ordering::Greater => line.low += n,
                        }
                    }
                }
                line
            })
            .collect();
        admin::format_priority_status(&lines)
    }

    /// The jobs `show jobs` and `show unique jobs` list: those of the
    /// `remote = true` kinds that have not ended, at most
    /// [`SHOW_JOBS_LIMIT`]: kind by kind, running ones first, then
    /// available, retryable and scheduled, newest first in each.
    async fn live_remote_jobs(&self) -> Result<Vec<errand_core::Job>, Bytes> {
        let mut jobs = Vec::new();
        let kinds: Vec<String> = self
            .hub
            .config
            .catalog
            .remote_kinds()
            .map(str::to_string)
            .collect();
        for kind in kinds {
            for state in [
                JobState::Running,
                JobState::Available,
                JobState::Retryable,
                JobState::Scheduled,
            ] {
                let room = SHOW_JOBS_LIMIT.saturating_sub(jobs.len());
                if room == 0 {
                    return Ok(jobs);
                }
                let filter = ListFilter {
                    state: Some(state),
                    kind: Some(kind.clone()),
                    limit: u32::try_from(room).unwrap_or(u32::MAX),
                    ..ListFilter::default()
                };
                match self.hub.store.list(&filter).await {
                    Ok(found) => jobs.extend(found),
                    Err(e) => {
                        tracing::warn!(error = %e, "gearman show jobs: jobs not read");
                        return Err(admin::format_error(
                            "QUEUE_ERROR",
                            "the jobs could not be read; try again",
                        ));
                    }
                }
            }
        }
        Ok(jobs)
    }

    /// A `show jobs` line: the handle; retries are the attempts that ended
    /// before the current one (or, for a waiting job, so far); never
    /// ignored (errand runs a job whose client left); always persisted.
    fn job_line(&self, job: &errand_core::Job) -> JobLine {
        let retries = if job.state == JobState::Running {
            job.attempt.saturating_sub(1)
        } else {
            job.attempt
        };
        JobLine {
            handle: self.handle(job.id),
            retries: u64::from(retries),
            ignored: false,
            persisted: true,
        }
    }

    /// `create function F`: errand's functions are its configured kinds,
    /// so `OK` for one (it exists already), and for any other name an
    /// error saying how to make it one; nothing changes either way.
    fn admin_create_function(&self, function: &[u8]) -> Bytes {
        if self.configured(function).is_some() {
            return admin::format_ok();
        }
        admin::format_error(
            "INVALID_FUNCTION_NAME",
            &format!(
                "{} is not an errand kind: functions are configured ([kinds.NAME] with remote = true), not created",
                String::from_utf8_lossy(function)
            ),
        )
    }

    /// `drop function F`: a configured kind cannot be dropped from here
    /// (its jobs and policy are the configuration's); another name
    /// registered by a connected worker gets gearmand's busy answer, and
    /// any other `ERR function not found`. Nothing changes.
    fn admin_drop_function(&self, function: &[u8]) -> Bytes {
        if self.configured(function).is_some() {
            return admin::format_error(
                "INVALID_FUNCTION_NAME",
                &format!(
                    "{} is a configured errand kind: remove [kinds.{0}] from the configuration to drop it",
                    String::from_utf8_lossy(function)
                ),
            );
        }
        let registered = lock(&self.hub.conns)
            .values()
            .any(|c| c.functions.iter().any(|f| &f[..] == function));
        if registered {
            admin::format_drop_function_busy()
        } else {
            admin::format_function_not_found()
        }
    }

    /// `cancel job HANDLE`: errand's cancel (audited as the local actor,
    /// as the HTTP API without auth on loopback); a waiting foreground
    /// client gets `WORK_FAIL`.
    async fn admin_cancel(&self, handle: &[u8]) -> Bytes {
        let Some(id) = JobHandle::parse(handle)
            .ok()
            .and_then(|h| JobId::try_from(h.number()).ok())
        else {
            return admin::format_unknown_job();
        };
        match self.hub.store.cancel(id, &AuditActor::Local).await {
            Ok(_) => admin::format_ok(),
            Err(e) => {
                tracing::debug!(error = %e, job = id, "gearman admin cancel refused");
                admin::format_unknown_job()
            }
        }
    }

    /// `status`: every `remote = true` kind and every registered function,
    /// with the store's counts and the connected workers.
    async fn admin_status(&self) -> Bytes {
        let workers = self.admin_functions();
        let stats = match self.hub.store.stats().await {
            Ok(stats) => stats,
            Err(e) => {
                tracing::warn!(error = %e, "gearman status: counts not read");
                Default::default()
            }
        };
        let lines: Vec<FunctionStatus> = workers
            .into_iter()
            .map(|(function, available_workers)| {
                let kind = String::from_utf8_lossy(&function).into_owned();
                let of = |s| stats.of_kind(&kind, s);
                let running = of(JobState::Running);
                let queued =
                    of(JobState::Available) + of(JobState::Scheduled) + of(JobState::Retryable);
                FunctionStatus {
                    function,
                    total: queued + running,
                    running,
                    available_workers,
                }
            })
            .collect();
        admin::format_status(&lines)
    }

    /// The connection ended: its held jobs run again (a retry with
    /// backoff, the attempt counted, as a worker that died mid-job; handed
    /// back without counting when the node stops), and it listens no more.
    async fn close(mut self, stopping: bool) {
        if let Some(refill) = self.refill.take() {
            let jobs = refill.await.unwrap_or_default();
            self.keep_ready(jobs);
        }
        // Never given to the worker: back to the queue, no attempt counted.
        self.hand_back_ready(|_| true);
        let held: Vec<(JobId, Held)> = self.held.drain().collect();
        for (id, held) in held {
            let outcome =
                if stopping {
                    Outcome::Handback
                } else {
                    self.hub.config.outcomes(&held.kind).on_disconnect.outcome(
                        "the Gearman worker's connection closed while it held the job".into(),
                    )
                };
            self.end(id, held.fence, outcome, None);
        }
        // Shutdown waits for these commits (the listener's task tracker).
        self.finisher.close().await;
        {
            let mut listeners = lock(&self.hub.listeners);
            for id in &self.listening {
                if let Some(list) = listeners.get_mut(id) {
                    list.retain(|l| l.conn != self.id);
                    if list.is_empty() {
                        listeners.remove(id);
                    }
                }
            }
        }
        lock(&self.hub.conns).remove(&self.id);
    }
}

/// Claims up to `max_jobs` jobs of `kinds` for `worker`, none on an error.
async fn claim(
    hub: &Hub,
    worker: WorkerIdentity,
    kinds: Vec<String>,
    max_jobs: u32,
) -> Vec<ClaimedJob> {
    let claim = WorkClaim {
        worker,
        kinds,
        queues: Vec::new(),
        max_jobs,
        wait: None,
    };
    match hub.remote.claim(claim).await {
        Ok(claimed) => claimed.jobs,
        Err(e) => {
            tracing::warn!(error = %e, "gearman claim failed");
            Vec::new()
        }
    }
}

/// The handle of job `id`: `<prefix>:<id>`.
pub(super) fn handle(prefix: &str, id: JobId) -> Bytes {
    JobHandle::new(prefix.to_string(), u64::try_from(id).unwrap_or(0))
        .map(|h| h.to_bytes())
        .unwrap_or_else(|_| Bytes::from(format!("H:errand:{id}")))
}

/// How a worker ended a job.
enum End {
    Complete(Bytes),
    Fail,
    Exception(Bytes),
}

fn error(code: &'static str, text: &str) -> Packet {
    ErrorReply {
        code,
        text: text.to_string(),
    }
    .to_packet()
}

/// `known`, `running`, numerator and denominator of a job (or none).
fn status_of(job: Option<&errand_core::Job>) -> (bool, bool, Bytes, Bytes) {
    let Some(job) = job.filter(|j| !j.state.is_terminal()) else {
        return (
            false,
            false,
            Bytes::from_static(b"0"),
            Bytes::from_static(b"0"),
        );
    };
    let part = |key: &str| {
        job.progress
            .as_ref()
            .and_then(|p| p.get(key))
            .and_then(Value::as_str)
            .map(|s| Bytes::from(s.to_string()))
            .unwrap_or_else(|| Bytes::from_static(b"0"))
    };
    (
        true,
        job.state == JobState::Running,
        part("numerator"),
        part("denominator"),
    )
}

/// `maxqueue`'s cap index of a submit's priority.
fn priority_index(priority: Priority) -> usize {
    match priority {
        Priority::High => 0,
        Priority::Normal => 1,
        Priority::Low => 2,
    }
}

/// A unique as one `show unique jobs` line: a line break or tab in it
/// (possible in a unique sent by a client) becomes a space.
fn one_line(unique: &str) -> Bytes {
    Bytes::from(
        unique
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>(),
    )
}

/// The job's unique key from a submit's unique and workload. An empty
/// unique has none. `-` is gearmand's "the workload is the unique": the
/// workload itself when it is UTF-8 of at most 64 bytes (the longest
/// unique a Gearman client sends, so `GET_STATUS_UNIQUE` can ask for it)
/// without control characters, else its SHA-256 in lower-case hex (64
/// characters); an empty workload has none (gearmand does not coalesce it
/// either). Any other unique is the key as sent, and must be UTF-8 (the
/// error says why not).
fn unique_key(unique: &[u8], data: &[u8]) -> Result<Option<String>, &'static str> {
    if unique.is_empty() {
        return Ok(None);
    }
    if unique == b"-" {
        if data.is_empty() {
            return Ok(None);
        }
        let key = match std::str::from_utf8(data) {
            Ok(text) if text.len() <= MAX_UNIQUE_LEN && !text.chars().any(char::is_control) => {
                text.to_string()
            }
            _ => Sha256::digest(data)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        };
        return Ok(Some(key));
    }
    match std::str::from_utf8(unique) {
        Ok(u) => Ok(Some(u.to_string())),
        Err(_) => Err("unique: must be UTF-8"),
    }
}

/// Resolves when jobs became available in one of `queues`, or events were
/// missed.
async fn work_event(events: &mut broadcast::Receiver<StoreEvent>, queues: &[String]) {
    loop {
        match events.recv().await {
            Ok(StoreEvent::Enqueued(names)) if names.iter().any(|q| queues.contains(q)) => return,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}
