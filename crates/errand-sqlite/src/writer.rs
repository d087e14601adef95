//! The one writer: a dedicated thread owns the only write connection and
//! commits every operation queued at the time in one transaction (group
//! commit); a short operation that finds nothing queued and no commit
//! running commits alone on its caller's thread instead
//! ([`Writer::submit_in_place`], decision 0043), sparing a lone request two
//! thread hand-offs. Either way a failing operation rolls back alone. An
//! operation that may run twice ([`Writer::submit_repeatable`]: claims,
//! finishes, heartbeats) runs with its neighbours of that sort under one
//! savepoint (none at the start of the transaction); should one fail, that
//! group is rolled back and run again one operation per savepoint. Any
//! other operation runs in its own savepoint. Callers are answered, and
//! events sent, only after the COMMIT.
//! The history counts the operations made ([`errand_core::history`]) are
//! carried in memory and written by the first group commit at least
//! [`HISTORY_EVERY`] after the previous write (or one that asks for it),
//! just before its COMMIT: a busy writer pays those upserts about once a
//! second instead of once per commit. The job counts operations change
//! ([`crate::counts`]) are written by every commit, exact.

use crate::counts::Changes;
use crate::rows::db_error;
use errand_core::history::Pending as PendingHistory;
use errand_core::load::{CommitTimes, StoreLoad};
use errand_core::{JobId, StoreError, StoreEvent};
use rusqlite::Connection;
use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, oneshot};

/// Most operations committed together.
const MAX_BATCH: usize = 1024;

/// How often carried history counts are written (at most).
pub(crate) const HISTORY_EVERY: Duration = Duration::from_secs(1);

/// What an operation did that waiters care about.
#[derive(Debug, Default)]
pub(crate) struct Events {
    /// Queues where jobs became claimable now.
    pub enqueued: BTreeSet<String>,
    /// Jobs that reached a terminal state.
    pub finished: Vec<JobId>,
    /// Throughput counts, carried until a commit writes them.
    pub history: PendingHistory,
    /// Set by an operation that wants the carried counts written by its
    /// own commit ([`crate::SqliteStore`]'s `flush_history`).
    pub flush_history: bool,
    /// Job count changes, written by the commit that makes them.
    pub counts: Changes,
}

impl Events {
    fn absorb(&mut self, other: Events) {
        self.enqueued.extend(other.enqueued);
        self.finished.extend(other.finished);
        self.history.absorb(other.history);
        self.flush_history |= other.flush_history;
        self.counts.absorb(other.counts);
    }

    fn publish(self, tx: &broadcast::Sender<StoreEvent>) {
        // Nobody listening is fine.
        if !self.enqueued.is_empty() {
            let _ = tx.send(StoreEvent::Enqueued(self.enqueued.into_iter().collect()));
        }
        if !self.finished.is_empty() {
            let _ = tx.send(StoreEvent::Finished(self.finished.into()));
        }
    }
}

/// An operation waiting in the queue, its result type erased.
trait Pending: Send {
    /// Runs inside the batch transaction; true when it succeeded.
    fn run(&mut self, conn: &Connection, events: &mut Events) -> bool;
    /// Whether `run` may be called again after its writes were rolled back.
    fn repeatable(&self) -> bool;
    /// Answers the caller once the batch's fate is known.
    fn answer(self: Box<Self>, commit: &Result<(), StoreError>);
}

/// An operation and its answer: `W` is the work, an `Option` of a `FnOnce`
/// for an operation that runs once, a `Fn` for a repeatable one.
struct Op<T, W> {
    work: W,
    outcome: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

/// Runs `work`, turning a panic into an error: a bug in one operation must
/// not take the writer (and every later write) down with it; it fails
/// alone and its writes roll back.
fn guarded<T>(work: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    std::panic::catch_unwind(AssertUnwindSafe(work))
        .unwrap_or_else(|_| Err(StoreError::Internal("a write operation panicked".into())))
}

impl<T, F> Pending for Op<T, Option<F>>
where
    T: Send,
    F: FnOnce(&Connection, &mut Events) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &Connection, events: &mut Events) -> bool {
        let work = self.work.take().expect("an operation runs once");
        let outcome = guarded(|| work(conn, events));
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn repeatable(&self) -> bool {
        false
    }

    fn answer(self: Box<Self>, commit: &Result<(), StoreError>) {
        answer(self.outcome, self.reply, commit);
    }
}

/// A repeatable operation's work (a newtype, so its `Pending` does not
/// overlap the run-once one's).
struct Repeat<F>(F);

impl<T, F> Pending for Op<T, Repeat<F>>
where
    T: Send,
    F: Fn(&Connection, &mut Events) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &Connection, events: &mut Events) -> bool {
        let outcome = guarded(|| (self.work.0)(conn, events));
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn repeatable(&self) -> bool {
        true
    }

    fn answer(self: Box<Self>, commit: &Result<(), StoreError>) {
        answer(self.outcome, self.reply, commit);
    }
}

/// Sends an operation's caller its outcome, or the batch's error.
fn answer<T>(
    outcome: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
    commit: &Result<(), StoreError>,
) {
    let outcome = match (outcome, commit) {
        (Some(Err(e)), _) => Err(e),
        // The batch's own error, as is: wrapping its message again would
        // repeat "store unavailable:" and turn a bug into an outage.
        (Some(Ok(_)), Err(e)) | (None, Err(e)) => Err(e.clone()),
        (Some(Ok(v)), Ok(())) => Ok(v),
        (None, Ok(())) => Err(StoreError::Internal("operation was not run".into())),
    };
    // The caller may have gone away; its work is committed regardless.
    let _ = reply.send(outcome);
}

/// The handle callers use to queue work for the writer thread.
#[derive(Debug)]
pub(crate) struct Writer {
    queue: Option<mpsc::Sender<Box<dyn Pending>>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

/// What the writer thread and a caller committing on its own thread share.
struct Shared {
    /// Held through each group commit, by whichever thread runs it.
    core: Mutex<Core>,
    events: broadcast::Sender<StoreEvent>,
    load: Load,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("load", &self.load).finish()
    }
}

/// The core a thread panicked holding (operations run guarded, so only a
/// bug in the commit itself): its transaction, if one is open, rolled back.
fn recovered(core: MutexGuard<'_, Core>) -> MutexGuard<'_, Core> {
    if !core.conn.is_autocommit()
        && let Err(e) = exec(&core.conn, "ROLLBACK")
    {
        tracing::error!(error = %e, "rollback after a panicked commit failed");
    }
    core
}

/// The only write connection and the history counts carried between commits.
struct Core {
    conn: Connection,
    carry: Carry,
}

impl Shared {
    /// The core, even if a thread panicked holding it ([`recovered`]).
    fn lock(&self) -> MutexGuard<'_, Core> {
        self.core
            .lock()
            .unwrap_or_else(|poisoned| recovered(poisoned.into_inner()))
    }

    /// The core, if no commit is running now.
    fn try_lock(&self) -> Option<MutexGuard<'_, Core>> {
        match self.core.try_lock() {
            Ok(core) => Some(core),
            Err(TryLockError::Poisoned(poisoned)) => Some(recovered(poisoned.into_inner())),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Runs `batch` in one transaction on `core`, answers each caller and,
    /// once committed, sends the events.
    fn commit(&self, core: &mut Core, batch: &mut Vec<Box<dyn Pending>>) {
        let mut done = Events::default();
        let started = Instant::now();
        let commit = run_batch(&core.conn, batch, &mut done, &mut core.carry);
        self.load.commits.observe(started.elapsed());
        if commit.is_ok() {
            done.publish(&self.events);
        }
        for op in batch.drain(..) {
            op.answer(&commit);
        }
    }
}

/// What the writer reports about its own work, for `/metrics`.
#[derive(Debug, Default)]
struct Load {
    /// Operations queued and not yet taken into a batch.
    queued: AtomicU64,
    /// Time from BEGIN to COMMIT of each batch.
    commits: CommitTimes,
}

impl Writer {
    /// Starts the writer thread on a connection made by `open` (run on that
    /// thread); returns once `open` has succeeded or failed.
    pub(crate) async fn start(
        open: impl FnOnce() -> Result<Connection, StoreError> + Send + 'static,
        events: broadcast::Sender<StoreEvent>,
    ) -> Result<Writer, StoreError> {
        let (queue, incoming) = mpsc::channel::<Box<dyn Pending>>();
        let (ready_tx, ready) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("errand-sqlite-writer".into())
            .spawn(move || match open() {
                Ok(conn) => {
                    let carry = Carry {
                        pending: PendingHistory::default(),
                        written: Instant::now(),
                    };
                    let shared = Arc::new(Shared {
                        core: Mutex::new(Core { conn, carry }),
                        events,
                        load: Load::default(),
                    });
                    let _ = ready_tx.send(Ok(shared.clone()));
                    run(&shared, incoming);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| StoreError::Internal(format!("cannot start the writer thread: {e}")))?;
        let shared = ready
            .await
            .unwrap_or_else(|_| Err(StoreError::Internal("the writer thread died".into())))?;
        Ok(Writer {
            queue: Some(queue),
            thread: Some(thread),
            shared,
        })
    }

    /// Runs `work` in the next group commit and returns its result once committed.
    pub(crate) async fn submit<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Events) -> Result<T, StoreError> + Send + 'static,
    {
        self.queue_op(Some(work), false).await
    }

    /// [`Writer::submit`] for short work (a few inserts), committed on the
    /// caller's thread when the writer is idle ([`Writer::commit_here`]).
    pub(crate) async fn submit_in_place<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Events) -> Result<T, StoreError> + Send + 'static,
    {
        self.queue_op(Some(work), true).await
    }

    /// [`Writer::submit`] for work that may run twice, its first run's
    /// writes and events rolled back: it must do nothing but write through
    /// `conn` and record in its events. Saves the savepoint per operation.
    pub(crate) async fn submit_repeatable<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Connection, &mut Events) -> Result<T, StoreError> + Send + 'static,
    {
        self.queue_op(Repeat(work), false).await
    }

    /// Queues `work` (either sort), or commits it here if `in_place` allows
    /// ([`Writer::commit_here`]), and waits for its answer.
    async fn queue_op<T, W>(&self, work: W, in_place: bool) -> Result<T, StoreError>
    where
        T: Send + 'static,
        W: Send + 'static,
        Op<T, W>: Pending,
    {
        let (reply, answer) = oneshot::channel();
        let op: Box<dyn Pending> = Box::new(Op {
            work,
            outcome: None,
            reply,
        });
        let queued = if in_place {
            self.commit_here(op)
        } else {
            Some(op)
        };
        if let Some(op) = queued {
            let queue = self.queue.as_ref().expect("queue lives until drop");
            let load = &self.shared.load;
            load.queued.fetch_add(1, Ordering::Relaxed);
            queue.send(op).map_err(|_| {
                load.queued.fetch_sub(1, Ordering::Relaxed);
                StoreError::Unavailable("the writer thread has stopped".into())
            })?;
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "the writer thread has stopped".into(),
            ))
        })
    }
}

impl Writer {
    /// Commits `op` alone on this thread, answering it, when nothing is
    /// queued and no commit runs; else hands it back to be queued. The
    /// writer thread would commit the same group of one, but after a
    /// wake-up, and wake the caller after it: those two hand-offs cost a
    /// lone enqueue a sixth of its rate. The commit blocks this runtime
    /// worker, as a short one may: only on a runtime with other workers,
    /// which keep serving meanwhile. (`block_in_place` would hand this
    /// worker's tasks to another thread per commit, which cost more than it
    /// saved.) Under load the writer thread's group commits take over, as
    /// the queue is rarely empty.
    fn commit_here(&self, op: Box<dyn Pending>) -> Option<Box<dyn Pending>> {
        let spare_workers = tokio::runtime::Handle::try_current().is_ok_and(|rt| {
            rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
                && rt.metrics().num_workers() > 1
        });
        if !spare_workers || self.shared.load.queued.load(Ordering::Relaxed) > 0 {
            return Some(op);
        }
        let Some(mut core) = self.shared.try_lock() else {
            return Some(op);
        };
        self.shared.commit(&mut core, &mut vec![op]);
        None
    }

    /// Commit latencies so far and operations waiting for the writer.
    pub(crate) fn load(&self) -> StoreLoad {
        let load = &self.shared.load;
        StoreLoad {
            commits: load.commits.snapshot(),
            pending_writes: load.queued.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue lets the thread finish what is queued, then exit.
        drop(self.queue.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the SQLite writer thread panicked");
        }
    }
}

fn run(shared: &Shared, incoming: mpsc::Receiver<Box<dyn Pending>>) {
    let mut batch: Vec<Box<dyn Pending>> = Vec::with_capacity(MAX_BATCH);
    loop {
        // Wait no longer than carried counts are due (commits on callers'
        // threads carry some too), so an idle store still writes them about
        // a second late at most.
        let due = HISTORY_EVERY.saturating_sub(shared.lock().carry.written.elapsed());
        let first = match incoming.recv_timeout(due.max(Duration::from_millis(1))) {
            Ok(op) => op,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let mut core = shared.lock();
                let Core { conn, carry } = &mut *core;
                if carry.written.elapsed() >= HISTORY_EVERY {
                    write_carried(conn, carry);
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match incoming.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let mut core = shared.lock();
        let taken = batch.len() as u64;
        shared.load.queued.fetch_sub(taken, Ordering::Relaxed);
        shared.commit(&mut core, &mut batch);
    }
    // The queue closed (the store is dropped): write what is carried.
    let mut core = shared.lock();
    let Core { conn, carry } = &mut *core;
    write_carried(conn, carry);
}

/// Writes the carried counts in a transaction of their own (the writer is
/// idle or closing).
fn write_carried(conn: &Connection, carry: &mut Carry) {
    if carry.pending.is_empty() {
        carry.written = Instant::now();
        return;
    }
    let written = exec(conn, "BEGIN IMMEDIATE")
        .and_then(|()| write_history(conn, &mut carry.pending))
        .and_then(|()| exec(conn, "COMMIT"));
    carry.written = Instant::now();
    if let Err(e) = written {
        tracing::error!(error = %e, "throughput counts of the last second not written");
        if !conn.is_autocommit()
            && let Err(e) = exec(conn, "ROLLBACK")
        {
            tracing::error!(error = %e, "rollback of a failed history write failed");
        }
    }
}

/// History counts of committed batches not written yet.
struct Carry {
    pending: PendingHistory,
    /// When they were last written.
    written: Instant,
}

/// Runs every operation in one transaction; an error here means the whole
/// transaction was rolled back.
fn run_batch(
    conn: &Connection,
    batch: &mut [Box<dyn Pending>],
    done: &mut Events,
    carry: &mut Carry,
) -> Result<(), StoreError> {
    exec(conn, "BEGIN IMMEDIATE")?;
    let mut ran = run_ops(conn, batch, done);
    let mut counted = std::mem::take(&mut done.history);
    let due = done.flush_history || carry.written.elapsed() >= HISTORY_EVERY;
    // With a write due, the carried counts are written with this batch's
    // and put back should the batch not commit.
    let mut carried = None;
    if due && ran.is_ok() {
        let rows = carry.pending.drain();
        let mut all = PendingHistory::default();
        for (key, tally) in &rows {
            all.add(key.clone(), *tally);
        }
        all.absorb(std::mem::take(&mut counted));
        ran = write_history(conn, &mut all);
        carried = Some(rows);
    }
    // The job counts are exact: written with the changes they count, and
    // the batch fails if they cannot be.
    let result = ran
        .and_then(|()| done.counts.write(conn))
        .and_then(|()| exec(conn, "COMMIT"));
    match (&result, carried) {
        (Ok(()), Some(_)) => carry.written = Instant::now(),
        // Not due: this batch's counts wait for a later write.
        (Ok(()), None) => carry.pending.absorb(counted),
        (Err(_), carried) => {
            for (key, tally) in carried.into_iter().flatten() {
                carry.pending.add(key, tally);
            }
            if !conn.is_autocommit()
                && let Err(e) = exec(conn, "ROLLBACK")
            {
                tracing::error!(error = %e, "rollback of a failed batch failed");
            }
        }
    }
    result
}

/// Writes the batch's history counts in their own savepoint: should that
/// fail, the counts are lost (and logged) but the jobs' changes commit.
fn write_history(conn: &Connection, history: &mut PendingHistory) -> Result<(), StoreError> {
    if history.is_empty() {
        return Ok(());
    }
    exec(conn, "SAVEPOINT history")?;
    if let Err(e) = crate::history::write(conn, history.drain()) {
        tracing::error!(error = %e, "throughput history not written; its counts are lost");
        exec(conn, "ROLLBACK TO history")?;
    }
    exec(conn, "RELEASE history")
}

/// Runs the batch's operations in order: each run of repeatable ones as a
/// group (see the module's header), every other in its own savepoint.
fn run_ops(
    conn: &Connection,
    batch: &mut [Box<dyn Pending>],
    done: &mut Events,
) -> Result<(), StoreError> {
    let mut start = 0;
    while start < batch.len() {
        let end = start
            + batch[start..]
                .iter()
                .take_while(|op| op.repeatable())
                .count();
        if end == start {
            run_one(conn, batch[start].as_mut(), done)?;
            start += 1;
        } else {
            run_group(conn, &mut batch[start..end], start == 0, done)?;
            start = end;
        }
    }
    Ok(())
}

/// Runs repeatable operations together, under one savepoint, or none when
/// they open the transaction (`first`); should one fail, undoes them all
/// and runs each in its own savepoint, so the failing one rolls back alone.
fn run_group(
    conn: &Connection,
    group: &mut [Box<dyn Pending>],
    first: bool,
    done: &mut Events,
) -> Result<(), StoreError> {
    if !first {
        exec(conn, "SAVEPOINT ops")?;
    }
    let mut events = Events::default();
    if group.iter_mut().all(|op| op.run(conn, &mut events)) {
        done.absorb(events);
        return if first {
            Ok(())
        } else {
            exec(conn, "RELEASE ops")
        };
    }
    if first {
        // Nothing else is in the transaction yet: start it again.
        if !conn.is_autocommit() {
            exec(conn, "ROLLBACK")?;
        }
        exec(conn, "BEGIN IMMEDIATE")?;
    } else {
        exec(conn, "ROLLBACK TO ops")?;
        exec(conn, "RELEASE ops")?;
    }
    group
        .iter_mut()
        .try_for_each(|op| run_one(conn, op.as_mut(), done))
}

fn run_one(conn: &Connection, op: &mut dyn Pending, done: &mut Events) -> Result<(), StoreError> {
    exec(conn, "SAVEPOINT op")?;
    let mut events = Events::default();
    if op.run(conn, &mut events) {
        done.absorb(events);
    } else {
        exec(conn, "ROLLBACK TO op")?;
    }
    exec(conn, "RELEASE op")
}

/// Runs one transaction-control statement, prepared once: these run a few
/// times per commit, and parsing them each time showed in profiles.
fn exec(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute([]))
        .map(drop)
        .map_err(db_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::Pin;

    /// A writer on an in-memory database holding one table `t (op)`.
    async fn writer() -> Arc<Writer> {
        let open = || {
            let conn = Connection::open_in_memory().map_err(db_error)?;
            conn.execute_batch("CREATE TABLE t (op TEXT NOT NULL)")
                .map_err(db_error)?;
            Ok(conn)
        };
        Arc::new(Writer::start(open, broadcast::channel(16).0).await.unwrap())
    }

    /// Work that inserts `op` into `t`, then fails if `fails`.
    fn insert(
        op: &'static str,
        fails: bool,
    ) -> impl Fn(&Connection, &mut Events) -> Result<(), StoreError> {
        move |conn, _| {
            conn.execute("INSERT INTO t (op) VALUES (?1)", [op])
                .map_err(db_error)?;
            if fails {
                return Err(StoreError::Internal(format!("{op} fails")));
            }
            Ok(())
        }
    }

    /// Runs every operation of `ops` in one group commit, in that order:
    /// the writer is held busy while they are queued one at a time.
    async fn in_one_batch(writer: &Arc<Writer>, ops: Vec<Queue>) -> Vec<Result<(), StoreError>> {
        let (started_tx, started) = std::sync::mpsc::channel();
        let (go, go_rx) = std::sync::mpsc::channel::<()>();
        let held = writer.clone();
        let blocker = tokio::spawn(async move {
            held.submit(move |_, _| {
                started_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                Ok(())
            })
            .await
        });
        tokio::task::spawn_blocking(move || started.recv().unwrap())
            .await
            .unwrap();
        let mut answers = Vec::new();
        for (n, op) in ops.into_iter().enumerate() {
            answers.push(tokio::spawn(op(writer.clone())));
            while writer.shared.load.queued.load(Ordering::Relaxed) <= n as u64 {
                tokio::task::yield_now().await;
            }
        }
        go.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        let mut results = Vec::new();
        for answer in answers {
            results.push(answer.await.unwrap());
        }
        results
    }

    /// The rows of `t`, sorted.
    async fn rows(writer: &Writer) -> Vec<String> {
        writer
            .submit(|conn, _| {
                let mut stmt = conn
                    .prepare("SELECT op FROM t ORDER BY op")
                    .map_err(db_error)?;
                stmt.query_map([], |r| r.get(0))
                    .and_then(|rows| rows.collect())
                    .map_err(db_error)
            })
            .await
            .unwrap()
    }

    /// Queues one operation on the writer and answers its result.
    type Queue = Box<
        dyn FnOnce(Arc<Writer>) -> Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>,
    >;

    /// [`insert`] as a repeatable operation.
    fn repeatable(op: &'static str, fails: bool) -> Queue {
        Box::new(move |w| Box::pin(async move { w.submit_repeatable(insert(op, fails)).await }))
    }

    /// [`insert`] as an operation that runs once.
    fn once(op: &'static str, fails: bool) -> Queue {
        Box::new(move |w| Box::pin(async move { w.submit(insert(op, fails)).await }))
    }

    /// Short work that records the name of the thread it ran on.
    fn thread_name(
        conn: &Connection,
        _: &mut Events,
    ) -> Result<(String, std::thread::ThreadId), StoreError> {
        let thread = std::thread::current();
        conn.execute("INSERT INTO t (op) VALUES ('in place')", [])
            .map_err(db_error)?;
        Ok((thread.name().unwrap_or("").to_string(), thread.id()))
    }

    /// With nothing queued and no commit running, short work commits on
    /// the caller's own thread, and is committed when answered.
    #[tokio::test(flavor = "multi_thread")]
    async fn an_idle_writer_lets_short_work_commit_on_the_callers_thread() {
        let writer = writer().await;
        let caller = std::thread::current().id();
        let (_, ran_on) = writer.submit_in_place(thread_name).await.unwrap();
        assert_eq!(ran_on, caller);
        assert_eq!(rows(&writer).await, ["in place"]);
        assert_eq!(writer.load().commits.count, 2);
    }

    /// A commit running: short work queues and the writer thread commits it
    /// with the others queued, in order.
    #[tokio::test(flavor = "multi_thread")]
    async fn short_work_queues_behind_a_running_commit() {
        let writer = writer().await;
        let in_place: Queue = Box::new(|w| {
            Box::pin(async move {
                let (name, _) = w.submit_in_place(thread_name).await?;
                assert_eq!(name, "errand-sqlite-writer");
                Ok(())
            })
        });
        let results = in_one_batch(&writer, vec![once("a", false), in_place]).await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(rows(&writer).await, ["a", "in place"]);
    }

    /// A runtime with one worker cannot spare it for a commit: short work
    /// goes to the writer thread there.
    #[tokio::test(flavor = "current_thread")]
    async fn a_single_threaded_runtime_hands_short_work_to_the_writer_thread() {
        let writer = writer().await;
        let (name, _) = writer.submit_in_place(thread_name).await.unwrap();
        assert_eq!(name, "errand-sqlite-writer");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_runtime_of_one_worker_hands_short_work_to_the_writer_thread() {
        let writer = writer().await;
        let (name, _) = writer.submit_in_place(thread_name).await.unwrap();
        assert_eq!(name, "errand-sqlite-writer");
    }

    /// A failing repeatable operation that opens the transaction, between
    /// others that succeed: it alone is rolled back, and the others' writes
    /// (undone with it, then run again) are there exactly once.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_failing_repeatable_operation_first_in_its_transaction_rolls_back_alone() {
        let writer = writer().await;
        let results = in_one_batch(
            &writer,
            vec![
                repeatable("a", false),
                repeatable("b", true),
                repeatable("c", false),
            ],
        )
        .await;
        assert!(results[0].is_ok(), "{results:?}");
        assert!(
            matches!(&results[1], Err(StoreError::Internal(m)) if m == "b fails"),
            "{results:?}"
        );
        assert!(results[2].is_ok(), "{results:?}");
        assert_eq!(rows(&writer).await, ["a", "c"]);
    }

    /// The same after operations that run once: those keep their writes,
    /// and the repeatable group is rolled back to its own savepoint.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_failing_repeatable_operation_after_others_rolls_back_alone() {
        let writer = writer().await;
        let results = in_one_batch(
            &writer,
            vec![
                once("a", false),
                once("b", true),
                repeatable("c", false),
                repeatable("d", true),
                repeatable("e", false),
                once("f", false),
                repeatable("g", false),
            ],
        )
        .await;
        let failed: Vec<bool> = results.iter().map(Result::is_err).collect();
        assert_eq!(failed, [false, true, false, true, false, false, false]);
        assert_eq!(rows(&writer).await, ["a", "c", "e", "f", "g"]);
    }
}
