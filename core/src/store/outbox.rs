//! The transactional outbox.
//!
//! An operation appends its events with [`Txn::append_event`] inside its own transaction, so an
//! event exists exactly when the change that caused it committed. Consumers read events in
//! commit order after their acknowledged position and acknowledge what they handled; delivery is
//! at least once, and an event keeps its id across re-deliveries.

use serde::{Deserialize, Serialize};

use super::{Key, Meta, Txn};
use crate::error::{Error, Result};

/// One event in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct OutboxEvent {
    /// Position in the outbox: strictly increasing in commit order.
    pub seq: u64,
    /// Stable event id (a UUID), the same on every delivery.
    pub id: String,
    /// When the event was appended, in milliseconds since the epoch.
    pub time_millis: i64,
    /// EventBridge `source`, e.g. `aws.kms`.
    pub source: String,
    /// EventBridge `detail-type`.
    pub detail_type: String,
    /// The account the event belongs to.
    pub account: String,
    /// ARNs of the resources the event is about.
    pub resources: Vec<String>,
    /// The event's `detail` object.
    pub detail: serde_json::Value,
}

impl OutboxEvent {
    /// The event in EventBridge's envelope (`version`, `id`, `detail-type`, `source`,
    /// `account`, `time`, `region`, `resources`, `detail`).
    pub fn to_eventbridge(&self, region: &str) -> serde_json::Value {
        serde_json::json!({
            "version": "0",
            "id": self.id,
            "detail-type": self.detail_type,
            "source": self.source,
            "account": self.account,
            "time": crate::clock::iso8601(self.time_millis),
            "region": region,
            "resources": self.resources,
            "detail": self.detail,
        })
    }
}

fn seq_key() -> Key {
    Key::new("outbox").push("seq")
}

fn events_prefix() -> Key {
    Key::new("outbox").push("e")
}

fn cursor_key(consumer: &str) -> Key {
    Key::new("outbox").push("cursor").push(consumer)
}

impl Txn<'_> {
    /// Appends an event to the outbox as part of this transaction and returns its sequence
    /// number and event id. If the transaction rolls back, the event never existed.
    pub fn append_event(
        &mut self,
        time_millis: i64,
        source: &str,
        detail_type: &str,
        account: &str,
        resources: Vec<String>,
        detail: serde_json::Value,
    ) -> Result<(u64, String)> {
        let seq = self.get_json::<u64>(&seq_key())?.unwrap_or(0) + 1;
        self.put_json(&seq_key(), &seq)?;
        let event = OutboxEvent {
            seq,
            id: crate::id::uuid_v4(),
            time_millis,
            source: source.to_owned(),
            detail_type: detail_type.to_owned(),
            account: account.to_owned(),
            resources,
            detail,
        };
        self.put_sealed_json(&events_prefix().push_u64(seq), &event)?;
        self.wakes_dispatcher = true;
        Ok((seq, event.id))
    }
}

impl Txn<'_> {
    /// Wakes the events dispatcher when this transaction commits (it wrote delivery records).
    pub(crate) fn wake_dispatcher(&mut self) {
        self.wakes_dispatcher = true;
    }

    /// Moves `consumer`'s cursor to `seq` inside this transaction (so whatever the consumer
    /// recorded for those events commits with it).
    pub(crate) fn outbox_advance(&mut self, consumer: &str, seq: u64) -> Result<()> {
        check_consumer(consumer)?;
        self.put_json(&cursor_key(consumer), &seq)
    }
}

/// Rung when a commit appended events, so a consumer waiting for them wakes at once (other
/// processes sharing a PostgreSQL store are seen by polling).
#[derive(Debug, Default)]
pub struct OutboxSignal {
    rung: std::sync::Mutex<bool>,
    ready: std::sync::Condvar,
}

impl OutboxSignal {
    /// Wakes whoever waits.
    pub fn notify(&self) {
        if let Ok(mut rung) = self.rung.lock() {
            *rung = true;
            self.ready.notify_all();
        }
    }

    /// Waits until rung or `timeout` passes; clears the bell.
    pub fn wait(&self, timeout: std::time::Duration) {
        if let Ok(rung) = self.rung.lock()
            && let Ok((mut rung, _)) = self.ready.wait_timeout_while(rung, timeout, |r| !*r)
        {
            *rung = false;
        }
    }
}

impl Meta {
    /// The bell rung after commits that append events.
    pub fn outbox_signal(&self) -> std::sync::Arc<OutboxSignal> {
        std::sync::Arc::clone(&self.signal)
    }

    /// Up to `limit` events that `consumer` has not acknowledged, oldest first.
    ///
    /// # Errors
    /// `InvalidArgument` for an empty consumer name; `Storage`.
    pub fn outbox_read(&self, consumer: &str, limit: usize) -> Result<Vec<OutboxEvent>> {
        check_consumer(consumer)?;
        self.read(|t| {
            let after = t.get_json::<u64>(&cursor_key(consumer))?.unwrap_or(0);
            let rows = t.scan_prefix(
                &events_prefix(),
                Some(&events_prefix().push_u64(after)),
                limit,
            )?;
            rows.into_iter().map(|(k, v)| t.open_json(&k, &v)).collect()
        })
    }

    /// Acknowledges every event up to and including `seq` for `consumer`. Acknowledging an
    /// older position than the current one changes nothing.
    ///
    /// # Errors
    /// `InvalidArgument` for an empty consumer name; `Storage`.
    pub fn outbox_ack(&self, consumer: &str, seq: u64) -> Result<()> {
        check_consumer(consumer)?;
        self.txn(|t| {
            let current = t.get_json::<u64>(&cursor_key(consumer))?.unwrap_or(0);
            if seq > current {
                t.put_json(&cursor_key(consumer), &seq)?;
            }
            Ok(())
        })
    }
}

fn check_consumer(consumer: &str) -> Result<()> {
    if consumer.is_empty() || consumer.len() > 256 {
        Err(Error::invalid(
            "an outbox consumer name must have 1 to 256 characters",
        ))
    } else {
        Ok(())
    }
}
