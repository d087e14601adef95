//! The email executor against a real SMTP server (aiosmtpd, started by
//! `email_smtpd.py`; `pip install aiosmtpd`): delivered headers, envelope
//! and bodies; 4xx retried, 5xx failed; an unreachable, silent, TLS-less or
//! login-refusing server is deadly, and delivery resumes once it is back.

mod common;

use common::smtpd::{FROM, Smtpd, email_to_free_port, header};
use common::*;
use errand_core::{Job, JobState, NewJob, Outcome};
use errand_executors::email::{EmailExecutor, SmtpConfig, SmtpTls};
use errand_worker::{Executor, ProgressSink};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs every payload as a job and returns each once its first attempt ended.
async fn run_jobs(executor: Arc<EmailExecutor>, payloads: Vec<Value>) -> Vec<Job> {
    let (store, _dir) = store().await;
    let running = run_executor(&store, "email", hour_backoff(None), executor, 2);
    let mut ids = Vec::new();
    for payload in payloads {
        ids.push(enqueue(&store, "email", payload).await);
    }
    let mut jobs = Vec::new();
    for id in ids {
        jobs.push(wait_attempted(&store, id).await);
    }
    running.stop().await;
    jobs
}

/// Runs one attempt directly, for failures that never reach a server.
async fn execute_once(executor: &EmailExecutor, payload: Value) -> Outcome {
    let (store, _dir) = store().await;
    let id = enqueue(&store, "email", payload).await;
    let job = store.get(id).await.unwrap().unwrap();
    tokio::time::timeout(
        DEADLINE,
        executor.execute(&job, CancellationToken::new(), ProgressSink::discard()),
    )
    .await
    .expect("the attempt ends")
}

fn simple(to: &str) -> Value {
    json!({"to": to, "subject": "hello", "text": "hi"})
}

fn last_error(job: &Job) -> &str {
    &job.errors.last().expect("an error was recorded").error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_headers_envelope_and_multipart_bodies() {
    let smtpd = Smtpd::start();
    let payload = json!({
        "to": ["Ann <ann@example.com>", "bob@example.com"],
        "cc": "Carol <carol@example.com>",
        "bcc": ["hidden@example.com"],
        "reply_to": "Support <support@example.com>",
        "subject": "Grüße — your report is ready",
        "text": "Hello Ann,\nyour report is ready. ünïcödé\n",
        "html": "<p>Hello Ann,</p><p>your report is <b>ready</b>. ünïcödé</p>",
        "headers": {"X-Campaign": "spring-2030", "List-Unsubscribe": "<mailto:unsubscribe@example.com>"},
    });
    let job = run_jobs(smtpd.executor(), vec![payload]).await.remove(0);
    assert_eq!(job.state, JobState::Completed, "{job:?}");

    let messages = smtpd.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m["mail_from"], "noreply@example.com");
    let mut rcpt: Vec<&str> = m["rcpt_tos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    rcpt.sort_unstable();
    assert_eq!(
        rcpt,
        [
            "ann@example.com",
            "bob@example.com",
            "carol@example.com",
            "hidden@example.com"
        ]
    );
    assert_eq!(header(m, "From"), ["App <noreply@example.com>"]);
    assert_eq!(header(m, "To"), ["Ann <ann@example.com>, bob@example.com"]);
    assert_eq!(header(m, "Cc"), ["Carol <carol@example.com>"]);
    assert_eq!(header(m, "Reply-To"), ["Support <support@example.com>"]);
    assert_eq!(header(m, "Subject"), ["Grüße — your report is ready"]);
    assert_eq!(header(m, "X-Campaign"), ["spring-2030"]);
    assert_eq!(
        header(m, "List-Unsubscribe"),
        ["<mailto:unsubscribe@example.com>"]
    );
    assert!(
        header(m, "Bcc").is_empty(),
        "Bcc must not be in the headers"
    );
    assert_eq!(header(m, "Date").len(), 1);
    let message_id = header(m, "Message-ID");
    assert_eq!(
        job.result.as_ref().unwrap()["message_id"],
        json!(message_id[0]),
        "the result names the delivered message"
    );
    assert!(
        job.result.as_ref().unwrap()["response"]
            .as_str()
            .unwrap()
            .starts_with("250")
    );

    assert_eq!(m["content_type"], "multipart/alternative");
    let parts = m["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0]["type"], "text/plain");
    assert_eq!(
        parts[0]["text"].as_str().unwrap().replace("\r\n", "\n"),
        "Hello Ann,\nyour report is ready. ünïcödé\n"
    );
    assert_eq!(parts[1]["type"], "text/html");
    assert_eq!(
        parts[1]["text"].as_str().unwrap().trim_end(),
        "<p>Hello Ann,</p><p>your report is <b>ready</b>. ünïcödé</p>"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_only_and_html_only_are_single_parts() {
    let smtpd = Smtpd::start();
    let jobs = run_jobs(
        smtpd.executor(),
        vec![
            json!({"to": "a@example.com", "subject": "t", "text": "plain only"}),
            json!({"to": "b@example.com", "subject": "h", "html": "<i>html only</i>"}),
        ],
    )
    .await;
    assert!(jobs.iter().all(|j| j.state == JobState::Completed));
    let messages = smtpd.messages();
    let by_subject = |s: &str| {
        messages
            .iter()
            .find(|m| header(m, "Subject") == [s])
            .unwrap()
            .clone()
    };
    let (t, h) = (by_subject("t"), by_subject("h"));
    assert_eq!(t["content_type"], "text/plain");
    assert_eq!(
        t["parts"][0]["text"].as_str().unwrap().trim_end(),
        "plain only"
    );
    assert_eq!(h["content_type"], "text/html");
    assert_eq!(
        h["parts"][0]["text"].as_str().unwrap().trim_end(),
        "<i>html only</i>"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_4xx_is_retried_5xx_fails_bad_payloads_fail() {
    let smtpd = Smtpd::start();
    let jobs = run_jobs(
        smtpd.executor(),
        vec![
            simple("tempfail@example.com"),
            simple("reject@example.com"),
            json!({"to": "a@example.com", "text": "no subject"}),
            json!({"to": ["a@example.com", "nope"], "subject": "s", "text": "t"}),
        ],
    )
    .await;
    let states: Vec<JobState> = jobs.iter().map(|j| j.state).collect();
    use JobState::*;
    assert_eq!(states, [Retryable, Failed, Failed, Failed]);
    assert!(
        last_error(&jobs[0]).contains("451"),
        "{}",
        last_error(&jobs[0])
    );
    assert!(
        last_error(&jobs[1]).contains("550"),
        "{}",
        last_error(&jobs[1])
    );
    assert_eq!(
        last_error(&jobs[2]),
        "invalid email payload: subject: is required"
    );
    assert!(
        last_error(&jobs[3]).starts_with("invalid email payload: to[1]: invalid address \"nope\""),
        "{}",
        last_error(&jobs[3])
    );
    assert!(smtpd.messages().is_empty(), "nothing was delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_deadly_and_delivery_resumes_exactly_once() {
    // The server comes up on this port only after the outage.
    let (executor, port) = email_to_free_port();
    let (store, _dir) = store().await;
    let mut new = NewJob::new("email", simple("ann@example.com"));
    new.max_attempts = 2;
    let id = store.enqueue(vec![new]).await.unwrap()[0].job.id;
    let running = run_executor(&store, "email", hour_backoff(None), executor, 1);

    let down = wait_for(&store, id, |j| !j.errors.is_empty()).await;
    assert!(
        down.errors[0]
            .error
            .starts_with("deadly (attempt not counted)")
            && down.errors[0].error.contains("refused"),
        "{:?}",
        down.errors[0]
    );
    let smtpd = Smtpd::start_on(port);
    let job = wait_for(&store, id, |j| j.state.is_terminal()).await;
    running.stop().await;

    assert_eq!(job.state, JobState::Completed, "{job:?}");
    assert!(
        job.errors.iter().all(|e| e.error.starts_with("deadly")),
        "only deadly errors: {:?}",
        job.errors
    );
    // Every deadly attempt was refunded: the job still has its whole budget.
    assert_eq!(job.max_attempts - job.attempt, 2 - 1);
    assert_eq!(smtpd.messages().len(), 1, "delivered exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_tls_less_and_login_refusing_servers_are_deadly() {
    // Accepts connections (the kernel does, from the backlog) but never speaks.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = SmtpConfig {
        timeout: Duration::from_millis(500),
        ..SmtpConfig::new(
            format!("smtp://127.0.0.1:{}", silent.local_addr().unwrap().port()),
            FROM,
        )
    };
    let outcome = execute_once(
        &EmailExecutor::new(config).unwrap(),
        simple("a@example.com"),
    )
    .await;
    assert!(
        matches!(&outcome, Outcome::Deadly(m) if m.contains("within 500ms")),
        "{outcome:?}"
    );

    let smtpd = Smtpd::start();
    for tls in [SmtpTls::Implicit, SmtpTls::Starttls] {
        let config = SmtpConfig {
            tls: Some(tls),
            timeout: Duration::from_secs(5),
            ..SmtpConfig::new(smtpd.url(), FROM)
        };
        let outcome = execute_once(
            &EmailExecutor::new(config).unwrap(),
            simple("a@example.com"),
        )
        .await;
        assert!(
            matches!(outcome, Outcome::Deadly(_)),
            "{tls:?}: {outcome:?}"
        );
    }

    let wrong_password = SmtpConfig::new(
        format!("smtp://errand:wrong@127.0.0.1:{}", smtpd.port),
        FROM,
    );
    let outcome = execute_once(
        &EmailExecutor::new(wrong_password).unwrap(),
        simple("a@example.com"),
    )
    .await;
    assert!(
        matches!(&outcome, Outcome::Deadly(m) if m.contains("535")),
        "{outcome:?}"
    );
    assert!(smtpd.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticates_and_reuses_pooled_connections() {
    let smtpd = Smtpd::start();
    let executor = Arc::new(
        EmailExecutor::new(SmtpConfig::new(
            format!("smtp://errand:s3cret@127.0.0.1:{}", smtpd.port),
            FROM,
        ))
        .unwrap(),
    );
    let (store, _dir) = store().await;
    let running = run_executor(&store, "email", hour_backoff(None), executor, 1);
    for i in 0..10 {
        let id = enqueue(&store, "email", simple(&format!("user{i}@example.com"))).await;
        let job = wait_attempted(&store, id).await;
        assert_eq!(job.state, JobState::Completed, "{:?}", job.errors);
    }
    running.stop().await;
    let messages = smtpd.messages();
    assert_eq!(messages.len(), 10);
    assert!(messages.iter().all(|m| m["login"] == "errand"));
    let mut ports: Vec<u64> = messages
        .iter()
        .map(|m| m["peer_port"].as_u64().unwrap())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    assert!(
        ports.len() <= 3,
        "10 emails used {} connections",
        ports.len()
    );
}
