//! errand-client: a small async client for errand's HTTP API.
//!
//! ```no_run
//! # async fn demo() -> Result<(), errand_client::ClientError> {
//! let client = errand_client::Client::new("http://127.0.0.1:7070")?;
//! let job = client
//!     .enqueue(errand_client::job("send_email", serde_json::json!({"to": "a@b"})).queue("mail"))
//!     .await?;
//! let done = client.wait(job.job.id, std::time::Duration::from_secs(30)).await?;
//! println!("{}", done.state);
//! # Ok(()) }
//! ```
//!
//! Fanning work out and waiting for every result, in submission order:
//!
//! ```no_run
//! # async fn demo(client: errand_client::Client) -> Result<(), errand_client::ClientError> {
//! use errand_client::{NewBatchRequest, job};
//! use serde_json::json;
//! let batch = client
//!     .enqueue_batch(&NewBatchRequest {
//!         jobs: (0..10).map(|n| job("report_part", json!(n)).into()).collect(),
//!         on_complete: Some(job("report_done", json!({"report": 7})).into()),
//!     })
//!     .await?;
//! let done = batch.wait(std::time::Duration::from_secs(30)).await?;
//! for r in &done.results {
//!     println!("{} {} {:?} {:?}", r.id, r.state, r.result, r.error);
//! }
//! # Ok(()) }
//! ```

mod batch;
mod builder;
mod connect;
mod error;
mod table;

pub use batch::BatchHandle;
pub use builder::{JobBuilder, job};
pub use connect::ClientBuilder;
pub use errand_core::api::{
    AuditPage, BatchResults, CreatedToken, EventPage, EventView, JobPage, JobResult,
    NewBatchRequest, NewTokenRequest, Problem, PublishResponse,
};
pub use errand_core::remote::{
    ClaimedJob, FinishAnswer, FinishResult, FinishedJob, HeartbeatAnswer, HeldJob, LostJob,
    LostReason, OutcomeName, WorkClaim, WorkClaimed, WorkFinish, WorkHeartbeat, WorkerIdentity,
};
pub use error::ClientError;
pub use table::table;

use errand_core::api::{
    BatchRequest, BatchResponse, BatchView, Health, NodeList, QueueList, StatsResponse, TokenList,
};
use errand_core::audit::AuditFilter;
use errand_core::auth::Token;
use errand_core::event::EventFilter;
use errand_core::store::ListFilter;
use errand_core::{
    Batch, BatchId, EnqueueRequest, Enqueued, EventId, Job, JobId, NewEvent, NodeInfo, QueueInfo,
};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use std::time::{Duration, Instant};

/// A handle on one errand server; cheap to clone (connections are pooled).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    /// `Bearer <token>`, marked sensitive so no debug output shows it.
    auth: Option<HeaderValue>,
}

/// Makes ring the process's TLS crypto provider unless one is installed.
/// errand builds rustls without a default provider (ring builds fast and
/// small); every HTTP client in the process needs one, for https servers
/// and, with reqwest, even to build a client at all. Idempotent.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Client {
    /// A client for the server at `base_url`, e.g. `http://127.0.0.1:7070`
    /// or `https://errand.internal:7070` (trusting the system's CAs).
    pub fn new(base_url: &str) -> Result<Client, ClientError> {
        Client::builder(base_url).build()
    }

    /// A client with more settings, e.g. a private CA for an `https://` server.
    pub fn builder(base_url: &str) -> ClientBuilder {
        ClientBuilder::new(base_url)
    }

    /// The same client, sending `token` (from `errand tokens create`) as
    /// `Authorization: Bearer …` on every request.
    pub fn with_token(mut self, token: &str) -> Result<Client, ClientError> {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
            .map_err(|_| ClientError::BadToken)?;
        value.set_sensitive(true);
        self.auth = Some(value);
        Ok(self)
    }

    /// Enqueues one job; a unique-key duplicate returns the live job with `duplicate: true`.
    pub async fn enqueue(&self, req: impl Into<EnqueueRequest>) -> Result<Enqueued, ClientError> {
        let req = req.into();
        self.call(self.request(Method::POST, "v1/jobs").json(&req))
            .await
    }

    /// Enqueues jobs all or none; answers in input order.
    pub async fn enqueue_many(
        &self,
        reqs: Vec<EnqueueRequest>,
    ) -> Result<Vec<Enqueued>, ClientError> {
        let body = BatchRequest { jobs: reqs };
        let answer: BatchResponse = self
            .call(self.request(Method::POST, "v1/jobs/batch").json(&body))
            .await?;
        Ok(answer.jobs)
    }

    /// One job.
    pub async fn get(&self, id: JobId) -> Result<Job, ClientError> {
        self.call(self.request(Method::GET, &format!("v1/jobs/{id}")))
            .await
    }

    /// The job once it ends, or as it is after `timeout` (check its state).
    /// Repeats the server's capped wait until then.
    pub async fn wait(&self, id: JobId, timeout: Duration) -> Result<Job, ClientError> {
        self.held(&format!("v1/jobs/{id}"), timeout, |job: &Job| {
            job.state.is_terminal()
        })
        .await
    }

    /// One page of jobs, newest first; pass `next_cursor` as `filter.before`
    /// for the next. A `limit` of 0 means the server's default.
    pub async fn list(&self, filter: &ListFilter) -> Result<JobPage, ClientError> {
        let mut url = self.url("v1/jobs");
        {
            let mut query = url.query_pairs_mut();
            if let Some(state) = filter.state {
                query.append_pair("state", state.as_str());
            }
            if let Some(kind) = &filter.kind {
                query.append_pair("kind", kind);
            }
            if let Some(queue) = &filter.queue {
                query.append_pair("queue", queue);
            }
            if let Some(tag) = &filter.tag {
                query.append_pair("tag", tag);
            }
            if let Some(t) = filter.created_after {
                query.append_pair("created_after", &t.to_string());
            }
            if let Some(t) = filter.created_before {
                query.append_pair("created_before", &t.to_string());
            }
            if let Some(text) = &filter.text {
                query.append_pair("text", text);
            }
        }
        page_query(&mut url, filter.before, filter.limit);
        self.call(self.send_to(Method::GET, url)).await
    }

    /// Cancels a job that has not ended.
    pub async fn cancel(&self, id: JobId) -> Result<Job, ClientError> {
        self.call(self.request(Method::POST, &format!("v1/jobs/{id}/cancel")))
            .await
    }

    /// Makes a failed or cancelled job available again.
    pub async fn retry(&self, id: JobId) -> Result<Job, ClientError> {
        self.call(self.request(Method::POST, &format!("v1/jobs/{id}/retry")))
            .await
    }

    /// Starts a bulk action (`POST /v1/jobs/bulk`); the server steps it in
    /// the background: poll [`Client::bulk`] for its progress.
    pub async fn start_bulk(
        &self,
        req: &errand_core::bulk::BulkRequest,
    ) -> Result<errand_core::bulk::BulkOperation, ClientError> {
        self.call(self.request(Method::POST, "v1/jobs/bulk").json(req))
            .await
    }

    /// A bulk operation's progress.
    pub async fn bulk(
        &self,
        id: errand_core::bulk::BulkId,
    ) -> Result<errand_core::bulk::BulkOperation, ClientError> {
        self.call(self.request(Method::GET, &format!("v1/jobs/bulk/{id}")))
            .await
    }

    /// Publishes an event: one job per listener the server configures for
    /// its name; a unique-key duplicate returns the earlier event with
    /// `duplicate: true`.
    pub async fn publish(&self, event: &NewEvent) -> Result<PublishResponse, ClientError> {
        self.call(self.request(Method::POST, "v1/events").json(event))
            .await
    }

    /// One event, with its listener jobs as they stand.
    pub async fn event(&self, id: EventId) -> Result<EventView, ClientError> {
        self.call(self.request(Method::GET, &format!("v1/events/{id}")))
            .await
    }

    /// One page of events, newest first; pass `next_cursor` as
    /// `filter.before` for the next. A `limit` of 0 means the server's default.
    pub async fn events(&self, filter: &EventFilter) -> Result<EventPage, ClientError> {
        let mut url = self.url("v1/events");
        if let Some(name) = &filter.name {
            url.query_pairs_mut().append_pair("name", name);
        }
        page_query(&mut url, filter.before, filter.limit);
        self.call(self.send_to(Method::GET, url)).await
    }

    /// Enqueues a batch, all its jobs or none; the handle waits for its results.
    pub async fn enqueue_batch(&self, req: &NewBatchRequest) -> Result<BatchHandle, ClientError> {
        let view: BatchView = self
            .call(self.request(Method::POST, "v1/batches").json(req))
            .await?;
        Ok(BatchHandle::new(self.clone(), view.batch))
    }

    /// One batch, with its jobs' counts by state.
    pub async fn batch(&self, id: BatchId) -> Result<Batch, ClientError> {
        let view: BatchView = self
            .call(self.request(Method::GET, &format!("v1/batches/{id}")))
            .await?;
        Ok(view.batch)
    }

    /// One batch and every job's result or error so far, in submission order.
    pub async fn batch_results(&self, id: BatchId) -> Result<BatchResults, ClientError> {
        self.call(self.request(Method::GET, &format!("v1/batches/{id}?results=true")))
            .await
    }

    /// The batch's results once its last job has ended, or as they stand
    /// after `timeout` (check `batch.finished_at`).
    pub async fn wait_batch(
        &self,
        id: BatchId,
        timeout: Duration,
    ) -> Result<BatchResults, ClientError> {
        self.held(&format!("v1/batches/{id}"), timeout, |r: &BatchResults| {
            r.batch.is_finished()
        })
        .await
    }

    /// Job counts by state, queue and kind, and the nodes' open breakers.
    pub async fn stats(&self) -> Result<StatsResponse, ClientError> {
        self.call(self.request(Method::GET, "v1/stats")).await
    }

    /// The live nodes sharing the server's store.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, ClientError> {
        let list: NodeList = self.call(self.request(Method::GET, "v1/nodes")).await?;
        Ok(list.nodes)
    }

    /// Every queue with jobs or a pause record, by name.
    pub async fn queues(&self) -> Result<Vec<QueueInfo>, ClientError> {
        let list: QueueList = self.call(self.request(Method::GET, "v1/queues")).await?;
        Ok(list.queues)
    }

    /// The server's cron schedules with their next run and last recorded tick.
    pub async fn schedules(&self) -> Result<Vec<errand_core::schedule::ScheduleView>, ClientError> {
        let list: errand_core::schedule::ScheduleList =
            self.call(self.request(Method::GET, "v1/schedules")).await?;
        Ok(list.schedules)
    }

    /// Pauses a queue on every node: it keeps accepting jobs and runs none.
    pub async fn pause_queue(&self, name: &str) -> Result<QueueInfo, ClientError> {
        self.queue_action(name, "pause").await
    }

    /// Resumes a paused queue.
    pub async fn resume_queue(&self, name: &str) -> Result<QueueInfo, ClientError> {
        self.queue_action(name, "resume").await
    }

    async fn queue_action(&self, name: &str, action: &str) -> Result<QueueInfo, ClientError> {
        self.call(self.request(Method::POST, &format!("v1/queues/{name}/{action}")))
            .await
    }

    /// One page of the audit log, newest first (`admin` scope); pass
    /// `next_cursor` as `filter.before` for the next. A `limit` of 0 means
    /// the server's default.
    pub async fn audit(&self, filter: &AuditFilter) -> Result<AuditPage, ClientError> {
        let mut url = self.url("v1/audit");
        {
            let mut query = url.query_pairs_mut();
            if let Some(actor) = &filter.actor {
                query.append_pair("actor", actor);
            }
            if let Some(action) = filter.action {
                query.append_pair("action", action.as_str());
            }
            if let Some(since) = filter.since {
                query.append_pair("since", &since.to_string());
            }
        }
        page_query(&mut url, filter.before, filter.limit);
        self.call(self.send_to(Method::GET, url)).await
    }

    /// Every API token, by name (`admin` scope); never a secret.
    pub async fn tokens(&self) -> Result<Vec<Token>, ClientError> {
        let list: TokenList = self.call(self.request(Method::GET, "v1/tokens")).await?;
        Ok(list.tokens)
    }

    /// Makes an API token (`admin` scope); the answer holds its secret,
    /// which the server never shows again.
    pub async fn create_token(&self, req: &NewTokenRequest) -> Result<CreatedToken, ClientError> {
        self.call(self.request(Method::POST, "v1/tokens").json(req))
            .await
    }

    /// Revokes the token `name` (`admin` scope): every node refuses it
    /// within a second.
    pub async fn revoke_token(&self, name: &str) -> Result<(), ClientError> {
        self.call_empty(self.request(Method::DELETE, &format!("v1/tokens/{name}")))
            .await
    }

    /// Claims remote jobs (`work` scope; docs/worker-protocol.md), holding
    /// the request up to `req.wait` when there is none.
    pub async fn worker_claim(&self, req: &WorkClaim) -> Result<WorkClaimed, ClientError> {
        self.call(self.request(Method::POST, "v1/worker/claim").json(req))
            .await
    }

    /// Extends the leases of held remote jobs and reports their progress.
    /// When none is held any more the server answers 409; its problem's
    /// `lost` lists them (see [`Problem::lost`]).
    pub async fn worker_heartbeat(
        &self,
        req: &WorkHeartbeat,
    ) -> Result<HeartbeatAnswer, ClientError> {
        self.call(self.request(Method::POST, "v1/worker/heartbeat").json(req))
            .await
    }

    /// Ends remote attempts, each only if its lease is still held; a 409
    /// means none was applied (the problem's `results` say why for each).
    pub async fn worker_finish(&self, req: &WorkFinish) -> Result<FinishAnswer, ClientError> {
        self.call(self.request(Method::POST, "v1/worker/finish").json(req))
            .await
    }

    /// Asks node `name` (a remote worker) to drain (`admin` scope).
    pub async fn drain_node(&self, name: &str) -> Result<(), ClientError> {
        self.call_empty(self.request(Method::POST, &format!("v1/nodes/{name}/drain")))
            .await
    }

    /// Ok when the server and its store answer.
    pub async fn health(&self) -> Result<(), ClientError> {
        let _: Health = self.call(self.request(Method::GET, "healthz")).await?;
        Ok(())
    }

    fn url(&self, path: &str) -> Url {
        // Joining a relative path of our own onto a valid base cannot fail.
        self.base.join(path).unwrap_or_else(|_| self.base.clone())
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.send_to(method, self.url(path))
    }

    /// Every request starts here, so every one carries the token.
    fn send_to(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let request = self.http.request(method, url);
        match &self.auth {
            Some(auth) => request.header(AUTHORIZATION, auth.clone()),
            None => request,
        }
    }

    /// GETs `path` with `?wait=` until `done` holds for the answer or
    /// `timeout` has passed, repeating the server's capped wait; answers
    /// the last reading.
    async fn held<T: DeserializeOwned>(
        &self,
        path: &str,
        timeout: Duration,
        done: impl Fn(&T) -> bool,
    ) -> Result<T, ClientError> {
        // Capped so that the addition cannot overflow the clock.
        let deadline = Instant::now() + timeout.min(errand_core::duration::MAX);
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let mut url = self.url(path);
            url.query_pairs_mut()
                .append_pair("wait", &format!("{}ms", remaining.as_millis()));
            let answer: T = self.call(self.send_to(Method::GET, url)).await?;
            if done(&answer) || Instant::now() >= deadline {
                return Ok(answer);
            }
        }
    }

    /// Sends a request and reads a JSON answer, or the problem of an error status.
    /// Sends `request` for an answer with no body worth reading (204).
    async fn call_empty(&self, request: reqwest::RequestBuilder) -> Result<(), ClientError> {
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::transport(&self.base, &e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| ClientError::transport(&self.base, &e))?;
        Err(ClientError::from_answer(status, &body))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::transport(&self.base, &e))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| ClientError::transport(&self.base, &e))?;
        if status.is_success() {
            serde_json::from_slice(&body).map_err(|e| ClientError::Decode(e.to_string()))
        } else {
            Err(ClientError::from_answer(status, &body))
        }
    }
}

/// A listing's cursor and page size as query parameters (0: the server's default size).
fn page_query(url: &mut Url, before: Option<i64>, limit: u32) {
    let mut query = url.query_pairs_mut();
    if let Some(before) = before {
        query.append_pair("cursor", &before.to_string());
    }
    if limit > 0 {
        query.append_pair("limit", &limit.to_string());
    }
}
