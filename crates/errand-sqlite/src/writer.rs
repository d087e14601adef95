//! The one writer: a dedicated thread owns the only write connection and
//! commits every operation queued at the time in one transaction (group
//! commit), where a failing operation rolls back alone. An operation that
//! may run twice ([`Writer::submit_repeatable`]: claims, finishes,
//! heartbeats) runs with its neighbours of that sort under one savepoint
//! (none at the start of the transaction); should one fail, that group is
//! rolled back and run again one operation per savepoint. Any other
//! operation runs in its own savepoint. Callers are answered, and events
//! sent, only after the COMMIT.
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
use std::sync::{Arc, mpsc};
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
    load: Arc<Load>,
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
        let load = Arc::new(Load::default());
        let thread_load = load.clone();
        let thread = std::thread::Builder::new()
            .name("errand-sqlite-writer".into())
            .spawn(move || match open() {
                Ok(conn) => {
                    let _ = ready_tx.send(Ok(()));
                    run(conn, incoming, events, &thread_load);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| StoreError::Internal(format!("cannot start the writer thread: {e}")))?;
        let started = ready
            .await
            .unwrap_or_else(|_| Err(StoreError::Internal("the writer thread died".into())));
        let writer = Writer {
            queue: Some(queue),
            thread: Some(thread),
            load,
        };
        started.map(|()| writer)
    }

    /// Runs `work` in the next group commit and returns its result once committed.
    pub(crate) async fn submit<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Events) -> Result<T, StoreError> + Send + 'static,
    {
        self.queue_op(Some(work)).await
    }

    /// [`Writer::submit`] for work that may run twice, its first run's
    /// writes and events rolled back: it must do nothing but write through
    /// `conn` and record in its events. Saves the savepoint per operation.
    pub(crate) async fn submit_repeatable<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Connection, &mut Events) -> Result<T, StoreError> + Send + 'static,
    {
        self.queue_op(Repeat(work)).await
    }

    /// Queues `work` (either sort) and waits for its answer.
    async fn queue_op<T, W>(&self, work: W) -> Result<T, StoreError>
    where
        T: Send + 'static,
        W: Send + 'static,
        Op<T, W>: Pending,
    {
        let (reply, answer) = oneshot::channel();
        let op = Op {
            work,
            outcome: None,
            reply,
        };
        let queue = self.queue.as_ref().expect("queue lives until drop");
        self.load.queued.fetch_add(1, Ordering::Relaxed);
        queue.send(Box::new(op)).map_err(|_| {
            self.load.queued.fetch_sub(1, Ordering::Relaxed);
            StoreError::Unavailable("the writer thread has stopped".into())
        })?;
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "the writer thread has stopped".into(),
            ))
        })
    }
}

impl Writer {
    /// Commit latencies so far and operations waiting for the writer.
    pub(crate) fn load(&self) -> StoreLoad {
        StoreLoad {
            commits: self.load.commits.snapshot(),
            pending_writes: self.load.queued.load(Ordering::Relaxed),
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

fn run(
    conn: Connection,
    incoming: mpsc::Receiver<Box<dyn Pending>>,
    events: broadcast::Sender<StoreEvent>,
    load: &Load,
) {
    let mut batch: Vec<Box<dyn Pending>> = Vec::with_capacity(MAX_BATCH);
    let mut carry = Carry {
        pending: PendingHistory::default(),
        written: Instant::now(),
    };
    loop {
        // With counts carried, wait no longer than their write is due, so
        // an idle store still writes them about a second late at most.
        let first = if carry.pending.is_empty() {
            incoming
                .recv()
                .map_err(|_| mpsc::RecvTimeoutError::Disconnected)
        } else {
            incoming.recv_timeout(HISTORY_EVERY.saturating_sub(carry.written.elapsed()))
        };
        let first = match first {
            Ok(op) => op,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                write_carried(&conn, &mut carry);
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
        load.queued.fetch_sub(batch.len() as u64, Ordering::Relaxed);
        let mut done = Events::default();
        let started = Instant::now();
        let commit = run_batch(&conn, &mut batch, &mut done, &mut carry);
        load.commits.observe(started.elapsed());
        if commit.is_ok() {
            done.publish(&events);
        }
        for op in batch.drain(..) {
            op.answer(&commit);
        }
    }
    // The queue closed (the store is dropped): write what is carried.
    write_carried(&conn, &mut carry);
}

/// Writes the carried counts in a transaction of their own (the writer is
/// idle or closing).
fn write_carried(conn: &Connection, carry: &mut Carry) {
    if carry.pending.is_empty() {
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
            while writer.load.queued.load(Ordering::Relaxed) <= n as u64 {
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
