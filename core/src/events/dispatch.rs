//! The dispatcher: one thread owned by the keep drains the outbox and delivers at least once.
//!
//! 1. Fan-out: committed events are matched against each account's rules (one compiled
//!    [`Matcher`] per account, rebuilt when the rules' generation moves), and one delivery
//!    record per (event, rule, target) is written in the same transaction that advances the
//!    dispatcher's outbox cursor, so an event is fanned out exactly once. Topics, repository
//!    triggers and re-driven dead letters write delivery records the same way ([`enqueue`]).
//! 2. Delivery: records are keyed by when they are due, so the thread reads only the due head
//!    (and sleeps until the next one is due, or 200 ms, or a commit or a finished attempt
//!    wakes it). Due records are handed to a pool of workers that attempt them side by side;
//!    the thread records each outcome as it comes back, several in one transaction, and
//!    hands out more meanwhile, so a slow webhook holds one worker, never the others.
//!    Success deletes the record (so a restarted keep does not deliver it again), failure
//!    reschedules it with exponential backoff and jitter until the target's RetryPolicy runs
//!    out, then it goes to the dead-letter queue (or is dropped when the target has none). A
//!    crash between an attempt and its record's update delivers again, with the same event
//!    id: at least once.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::pattern::{Matcher, Pattern, Scratch};
use super::rules::{RuleRecord, rules_prefix};
use crate::error::Result;
use crate::keep::KeepInner;
use crate::store::{Key, OutboxEvent, OutboxSignal};

/// The dispatcher's outbox consumer name.
const CONSUMER: &str = "events-dispatcher";
/// Events read per fan-out step, and the most deliveries handed out and not yet recorded.
const BATCH: usize = 100;
/// EventBridge's defaults when a target sets no RetryPolicy.
const DEFAULT_RETRIES: u64 = 185;
const DEFAULT_MAX_AGE_SECONDS: i64 = 86_400;
/// The longest wait between retries.
const MAX_BACKOFF_MILLIS: i64 = 60_000;
/// Workers making attempts side by side.
const WORKERS: usize = 8;
/// How long the thread sleeps when nothing is due and nothing wakes it.
const IDLE_WAIT: Duration = Duration::from_millis(200);

/// One pending delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Delivery {
    pub id: String,
    /// The event in EventBridge's envelope.
    pub event: Value,
    pub rule_arn: String,
    pub rule_name: String,
    pub target: Value,
    /// Attempts made so far.
    pub attempts: u64,
    /// When the event was committed (for MaximumEventAgeInSeconds), ms since the epoch.
    pub event_millis: i64,
    /// When the next attempt is due, ms since the epoch.
    pub due_millis: i64,
    pub last_error: Option<String>,
}

fn pending_prefix() -> Key {
    Key::new("events-delivery").push("pending")
}

/// A pending delivery's key: ordered by when it is due, so a round reads only what is due.
fn pending_key(delivery: &Delivery) -> Key {
    pending_prefix()
        .push(&format!("{:020}", delivery.due_millis.max(0)))
        .push(&delivery.id)
}

/// Records a delivery for the dispatcher inside `txn` (wakes it when `txn` commits).
pub(crate) fn enqueue(txn: &mut crate::store::Txn<'_>, delivery: &Delivery) -> Result<()> {
    txn.put_sealed_json(&pending_key(delivery), delivery)?;
    txn.wake_dispatcher();
    Ok(())
}

/// Dead letters of queue `arn`.
pub(crate) fn dead_letter_prefix(queue_arn: &str) -> Key {
    Key::new("events-delivery").push("dead").push(queue_arn)
}

/// The running dispatcher: its thread and its workers, stopped and joined when the keep closes.
#[derive(Debug)]
pub(crate) struct Dispatcher {
    stop: Arc<AtomicBool>,
    wake: Arc<OutboxSignal>,
    /// The dispatcher thread first, then the workers.
    threads: Vec<JoinHandle<()>>,
}

/// A due delivery handed to a worker.
struct Job {
    key: Key,
    delivery: Delivery,
}

/// A job and how its attempt ended, handed back to the dispatcher thread to record.
struct Finished {
    job: Job,
    outcome: Outcome,
}

impl Dispatcher {
    pub(crate) fn start(keep: &Weak<KeepInner>, wake: Arc<OutboxSignal>) -> Result<Dispatcher> {
        let stop = Arc::new(AtomicBool::new(false));
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let (done, finished) = mpsc::channel::<Finished>();
        let mut threads = Vec::with_capacity(WORKERS + 1);
        let dispatcher = std::thread::Builder::new()
            .name("codekeep-events".to_owned())
            .spawn({
                let (keep, stop, wake) = (keep.clone(), Arc::clone(&stop), Arc::clone(&wake));
                move || run(&keep, &stop, &wake, &jobs, &finished)
            })?;
        threads.push(dispatcher);
        for n in 0..WORKERS {
            let worker = std::thread::Builder::new()
                .name(format!("codekeep-events-{n}"))
                .spawn({
                    let (keep, stop, wake) = (keep.clone(), Arc::clone(&stop), Arc::clone(&wake));
                    let (queue, done) = (Arc::clone(&queue), done.clone());
                    move || work(&keep, &stop, &wake, &queue, &done)
                });
            match worker {
                Ok(worker) => threads.push(worker),
                Err(e) => {
                    // Stops the threads started so far.
                    drop(Dispatcher {
                        stop,
                        wake,
                        threads,
                    });
                    return Err(e.into());
                }
            }
        }
        Ok(Dispatcher {
            stop,
            wake,
            threads,
        })
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.wake.notify();
        // The dispatcher thread ends first and closes the job queue, which ends the idle
        // workers; a worker in an attempt ends when it returns. The keep may be dropped on one
        // of these threads (it held the last reference): that one is not joined.
        let me = std::thread::current().id();
        for thread in self.threads.drain(..) {
            if thread.thread().id() != me {
                let _ = thread.join();
            }
        }
    }
}

fn run(
    keep: &Weak<KeepInner>,
    stop: &AtomicBool,
    wake: &OutboxSignal,
    jobs: &mpsc::Sender<Job>,
    finished: &mpsc::Receiver<Finished>,
) {
    let mut compiled: HashMap<String, Compiled> = HashMap::new();
    let mut in_flight: HashSet<Key> = HashSet::new();
    let mut unrecorded: Vec<Finished> = Vec::new();
    while !stop.load(Ordering::Acquire) {
        let Some(inner) = keep.upgrade() else {
            return;
        };
        // Errors (a storage hiccup) are retried on the next turn: the outbox keeps the events,
        // `unrecorded` the outcomes, the store the deliveries.
        let fanned = fan_out(&inner, &mut compiled).unwrap_or(false);
        unrecorded.extend(finished.try_iter());
        let recorded = record(&inner, &mut unrecorded, &mut in_flight).unwrap_or(false);
        let next = hand_out(&inner, jobs, &mut in_flight).unwrap_or(Next::Idle);
        drop(inner);
        match next {
            _ if fanned || recorded => {}
            Next::In(wait) => wake.wait(wait.min(IDLE_WAIT)),
            Next::Idle => wake.wait(IDLE_WAIT),
        }
    }
}

/// A worker: attempts the deliveries it is handed, and hands back how each ended.
fn work(
    keep: &Weak<KeepInner>,
    stop: &AtomicBool,
    wake: &OutboxSignal,
    queue: &Mutex<mpsc::Receiver<Job>>,
    done: &mpsc::Sender<Finished>,
) {
    loop {
        let Ok(job) = queue
            .lock()
            .map_err(drop)
            .and_then(|q| q.recv().map_err(drop))
        else {
            return;
        };
        if stop.load(Ordering::Acquire) {
            return;
        }
        let Some(inner) = keep.upgrade() else {
            return;
        };
        // Functions contain their own panics; anything else that escapes an attempt fails
        // just that attempt, which is retried.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            attempt(&inner, &job.delivery)
        }))
        .unwrap_or_else(|_| Outcome::Retry("the attempt failed unexpectedly".to_owned()));
        drop(inner);
        if done.send(Finished { job, outcome }).is_err() {
            return;
        }
        wake.notify();
    }
}

/// An account's rules compiled into one matcher, and the generation they were read at.
struct Compiled {
    generation: u64,
    matcher: Matcher,
    rules: Vec<RuleRecord>,
}

/// Rebuilds the account's compiled rules if they changed since they were compiled.
fn refresh(inner: &KeepInner, cache: &mut HashMap<String, Compiled>, account: &str) -> Result<()> {
    let generation = inner.meta.read(|t| super::generation(t, account))?;
    let stale = cache
        .get(account)
        .is_none_or(|c| c.generation != generation);
    if stale {
        let rules: Vec<RuleRecord> = inner.meta.read(|t| {
            t.scan_prefix(&rules_prefix(account), None, usize::MAX)?
                .into_iter()
                .map(|(_, v)| serde_json::from_slice(&v).map_err(Into::into))
                .collect()
        })?;
        let mut matcher = Matcher::new();
        for (i, rule) in rules.iter().enumerate() {
            if rule.state != "DISABLED"
                && !rule.targets.is_empty()
                && let Ok(pattern) = Pattern::parse(&rule.event_pattern)
            {
                matcher.insert(i as u64, &pattern);
            }
        }
        cache.insert(
            account.to_owned(),
            Compiled {
                generation,
                matcher,
                rules,
            },
        );
    }
    Ok(())
}

/// Matches the next batch of events and records their deliveries; true when it read any.
fn fan_out(inner: &KeepInner, cache: &mut HashMap<String, Compiled>) -> Result<bool> {
    let events = inner.meta.outbox_read(CONSUMER, BATCH)?;
    let Some(last) = events.last().map(|e| e.seq) else {
        return Ok(false);
    };
    // Each account's rules are checked for changes once per batch.
    let accounts: std::collections::BTreeSet<&str> =
        events.iter().map(|e| e.account.as_str()).collect();
    for account in accounts {
        refresh(inner, cache, account)?;
    }
    let mut deliveries = Vec::new();
    let mut scratch = Scratch::default();
    let mut hits = Vec::new();
    for event in &events {
        let envelope = event.to_eventbridge(inner.region.as_str());
        let Some(compiled) = cache.get(&event.account) else {
            continue;
        };
        compiled
            .matcher
            .matching_with(&envelope, &mut scratch, &mut hits);
        for rule in hits
            .iter()
            .filter_map(|i| compiled.rules.get(usize::try_from(*i).ok()?))
        {
            for target in &rule.targets {
                deliveries.push(new_delivery(event, &envelope, rule, target));
            }
        }
    }
    inner.meta.txn(|t| {
        for d in &deliveries {
            t.put_sealed_json(&pending_key(d), d)?;
        }
        t.outbox_advance(CONSUMER, last)
    })?;
    Ok(true)
}

fn new_delivery(
    event: &OutboxEvent,
    envelope: &Value,
    rule: &RuleRecord,
    target: &Value,
) -> Delivery {
    let target_id = target.get("Id").and_then(Value::as_str).unwrap_or_default();
    Delivery {
        // Unique per (event, rule, target), and ordered by the event's position.
        id: format!("{:020}-{}-{}", event.seq, rule.name, target_id),
        event: envelope.clone(),
        rule_arn: rule.arn.clone(),
        rule_name: rule.name.clone(),
        target: target.clone(),
        attempts: 0,
        event_millis: event.time_millis,
        due_millis: 0,
        last_error: None,
    }
}

/// What a delivery round found.
enum Next {
    /// The next delivery not yet handed out is due in this long.
    In(Duration),
    /// Nothing else is pending (or no more can be handed out until attempts come back).
    Idle,
}

/// Hands the due deliveries that are not already being attempted to the workers.
fn hand_out(
    inner: &KeepInner,
    jobs: &mpsc::Sender<Job>,
    in_flight: &mut HashSet<Key>,
) -> Result<Next> {
    // More are handed out once half have come back, not after every attempt: each look at
    // the due head reads the records in flight again.
    if in_flight.len() > BATCH / 2 {
        // Woken when an attempt comes back.
        return Ok(Next::Idle);
    }
    let room = BATCH - in_flight.len();
    let now = inner.clock.now_millis();
    let (due, later): (Vec<Job>, Option<i64>) = inner.meta.read(|t| {
        let mut due = Vec::new();
        let mut later = None;
        let head = t.scan_prefix(&pending_prefix(), None, BATCH + in_flight.len() + 1)?;
        for (key, value) in head {
            if in_flight.contains(&key) {
                continue;
            }
            // An unreadable record is left alone (it cannot be delivered or retried).
            let Ok(delivery) = t.open_json::<Delivery>(&key, &value) else {
                continue;
            };
            if delivery.due_millis > now {
                later = Some(delivery.due_millis);
                break;
            }
            if due.len() == room {
                break;
            }
            due.push(Job { key, delivery });
        }
        Ok((due, later))
    })?;
    for job in due {
        in_flight.insert(job.key.clone());
        if jobs.send(job).is_err() {
            // No worker is left (the keep is closing).
            return Ok(Next::Idle);
        }
    }
    Ok(later.map_or(Next::Idle, |at| {
        Next::In(Duration::from_millis(u64::try_from(at - now).unwrap_or(0)))
    }))
}

/// Records the outcomes that came back, in one transaction (a crash before it attempts those
/// deliveries again); true when there were any.
fn record(
    inner: &KeepInner,
    unrecorded: &mut Vec<Finished>,
    in_flight: &mut HashSet<Key>,
) -> Result<bool> {
    if unrecorded.is_empty() {
        return Ok(false);
    }
    let now = inner.clock.now_millis();
    let base = inner.delivery_retry_base_millis;
    inner.meta.txn(|t| {
        for f in unrecorded.iter() {
            settle(t, base, &f.job.key, &f.job.delivery, &f.outcome, now)?;
        }
        Ok(())
    })?;
    for f in unrecorded.drain(..) {
        in_flight.remove(&f.job.key);
    }
    Ok(true)
}

/// How an attempt ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    Delivered,
    /// Failed; tried again while the RetryPolicy allows.
    Retry(String),
    /// Failed for good (a webhook's 4xx, a destination that is gone): straight to the
    /// dead-letter queue.
    Fail(String),
}

/// One attempt: the target's payload to its function, webhook or topic, or a topic's message
/// to one subscription.
fn attempt(inner: &KeepInner, delivery: &Delivery) -> Outcome {
    let arn = delivery
        .target
        .get("Arn")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let sns = arn.starts_with("arn:aws:sns:");
    // A topic's ARN has six parts; a subscription's adds its id.
    if sns && arn.split(':').count() > 6 {
        return super::sns::attempt(inner, delivery);
    }
    let payload = match super::transform::payload(
        &delivery.target,
        &delivery.event,
        &delivery.rule_arn,
        &delivery.rule_name,
    ) {
        Ok(p) => p,
        Err(e) => return Outcome::Fail(e.message().to_owned()),
    };
    #[cfg(feature = "webhooks")]
    if arn.contains(":api-destination/") {
        return post_webhook(inner, delivery, arn, &payload);
    }
    if sns {
        let now = inner.clock.now_millis();
        let published = inner
            .meta
            .txn(|t| super::sns::publish_in(t, now, arn, &payload, None, None, &json!({})));
        return match published {
            Ok(_) => Outcome::Delivered,
            Err(e) if e.kind() == crate::error::ErrorKind::NotFound => {
                Outcome::Fail(format!("topic {arn} does not exist"))
            }
            // A message Publish refuses (too long, say) will not pass on a retry either.
            Err(e) if e.kind() == crate::error::ErrorKind::InvalidArgument => {
                Outcome::Fail(e.message().to_owned())
            }
            Err(e) => Outcome::Retry(e.message().to_owned()),
        };
    }
    match inner.functions.invoke(arn, &payload) {
        Ok(()) => Outcome::Delivered,
        Err(e) => Outcome::Retry(e),
    }
}

/// POSTs (or the destination's method) the payload to an API destination, signed.
#[cfg(feature = "webhooks")]
fn post_webhook(inner: &KeepInner, delivery: &Delivery, arn: &str, payload: &str) -> Outcome {
    use super::webhook::http::Outcome as Http;
    let destination = match inner.meta.read(|t| super::destinations::by_arn(t, arn)) {
        Ok(Some(d)) => d,
        Ok(None) => return Outcome::Fail(format!("API destination {arn} does not exist")),
        Err(e) => return Outcome::Retry(e.message().to_owned()),
    };
    let secret = match destination.secret(inner) {
        Ok(s) => s,
        Err(e) => return Outcome::Retry(e.message().to_owned()),
    };
    let signed = match super::webhook::signature_headers(
        &secret,
        &delivery.id,
        inner.clock.now_millis() / 1000,
        payload.as_bytes(),
    ) {
        Ok(h) => h,
        Err(e) => return Outcome::Fail(e.message().to_owned()),
    };
    let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    headers.extend(signed);
    if let Some(extra) = delivery
        .target
        .pointer("/HttpParameters/HeaderParameters")
        .and_then(Value::as_object)
    {
        for (name, value) in extra {
            if let Some(value) = value.as_str() {
                headers.push((name.clone(), value.to_owned()));
            }
        }
    }
    let endpoint = super::targets::endpoint_with_query(&destination.endpoint, &delivery.target);
    match inner
        .webhooks()
        .send(&destination.method, &endpoint, &headers, payload.as_bytes())
    {
        Http::Delivered(_) => Outcome::Delivered,
        Http::Retry(why) => Outcome::Retry(why),
        Http::Fail(why) => Outcome::Fail(why),
    }
}

/// Records an attempt's outcome: done, retried later, or dead-lettered.
fn settle(
    t: &mut crate::store::Txn<'_>,
    retry_base_millis: i64,
    key: &Key,
    delivery: &Delivery,
    outcome: &Outcome,
    now: i64,
) -> Result<()> {
    let retry = delivery.target.get("RetryPolicy");
    let max_retries = retry
        .and_then(|r| r.get("MaximumRetryAttempts"))
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_RETRIES);
    let max_age = retry
        .and_then(|r| r.get("MaximumEventAgeInSeconds"))
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_MAX_AGE_SECONDS);
    {
        // Another round may have settled it already (nothing else deletes these records).
        if t.get(key)?.is_none() {
            return Ok(());
        }
        let (error, retryable) = match outcome {
            Outcome::Delivered => {
                t.delete(key)?;
                return Ok(());
            }
            Outcome::Retry(e) => (e, true),
            Outcome::Fail(e) => (e, false),
        };
        let mut next = delivery.clone();
        next.attempts += 1;
        next.last_error = Some(error.clone());
        let expired = now - delivery.event_millis > max_age.saturating_mul(1000);
        t.delete(key)?;
        if !retryable || next.attempts > max_retries || expired {
            if let Some(queue) = delivery
                .target
                .get("DeadLetterConfig")
                .and_then(|d| d.get("Arn"))
                .and_then(Value::as_str)
            {
                t.put_sealed_json(&dead_letter_prefix(queue).push(&delivery.id), &next)?;
            }
            return Ok(());
        }
        next.due_millis = now + backoff(retry_base_millis, next.attempts);
        t.put_sealed_json(&pending_key(&next), &next)
    }
}

/// Exponential backoff with jitter: between half and all of `base · 2^(attempts-1)`, capped.
fn backoff(base_millis: i64, attempts: u64) -> i64 {
    let exponent = u32::try_from(attempts.saturating_sub(1).min(30)).unwrap_or(30);
    let full = base_millis
        .saturating_mul(1_i64 << exponent)
        .clamp(1, MAX_BACKOFF_MILLIS);
    let mut byte = [0u8; 1];
    let jitter = if crate::id::fill_secret(&mut byte).is_ok() {
        i64::from(byte[0])
    } else {
        128
    };
    full / 2 + full / 2 * jitter / 255
}

/// The dead letters of queue `arn`: each the delivery as it last failed.
pub(crate) fn dead_letters(inner: &KeepInner, queue_arn: &str) -> Result<Vec<Value>> {
    inner.meta.read(|t| {
        t.scan_prefix(&dead_letter_prefix(queue_arn), None, usize::MAX)?
            .into_iter()
            .map(|(k, v)| {
                let d: Delivery = t.open_json(&k, &v)?;
                Ok(json!({
                    "Event": d.event,
                    "RuleArn": d.rule_arn,
                    "TargetId": d.target.get("Id"),
                    "Attempts": d.attempts,
                    "Error": d.last_error,
                }))
            })
            .collect()
    })
}
