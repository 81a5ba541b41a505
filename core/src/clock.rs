//! Time, injectable so tests can move it (key deletion windows, rotation periods).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// A source of the current time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    fn now_millis(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> i64 {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
    }
}

/// A clock that only moves when told to: for tests and simulations.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock standing at `millis` since the epoch.
    pub fn new(millis: i64) -> Self {
        ManualClock(Arc::new(AtomicI64::new(millis)))
    }

    /// Moves the clock forward by `millis`.
    pub fn advance(&self, millis: i64) {
        self.0.fetch_add(millis, Ordering::SeqCst);
    }

    /// Sets the clock to `millis` since the epoch.
    pub fn set(&self, millis: i64) {
        self.0.store(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Milliseconds as AWS's JSON timestamp: seconds since the epoch, as a number.
pub(crate) fn epoch_seconds(millis: i64) -> serde_json::Value {
    #[expect(
        clippy::cast_precision_loss,
        reason = "timestamps fit in f64's 53-bit mantissa"
    )]
    let secs = millis as f64 / 1000.0;
    serde_json::json!(secs)
}

/// Milliseconds as ISO 8601 in UTC, `2026-11-26T07:15:15Z`, as CloudTrail writes `eventTime`.
pub(crate) fn iso8601(millis: i64) -> String {
    let secs = millis.div_euclid(1000);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// Reads an AWS timestamp given as epoch seconds (number) or ISO 8601 text.
#[cfg_attr(
    not(feature = "audit"),
    expect(dead_code, reason = "only the audit trail reads timestamps")
)]
pub(crate) fn parse_timestamp(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_f64().map(|s| {
            #[expect(
                clippy::cast_possible_truncation,
                reason = "checked range of real dates"
            )]
            let ms = (s * 1000.0) as i64;
            ms
        }),
        serde_json::Value::String(s) => {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .ok()
                .map(|t| t.unix_timestamp().saturating_mul(1000))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_iso8601() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_795_677_315_000), "2026-11-26T07:15:15Z");
        assert_eq!(
            parse_timestamp(&serde_json::json!("2026-11-26T07:15:15Z")),
            Some(1_795_677_315_000)
        );
    }
}
