//! Verification of the audit chain and its signed checkpoints.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{ED25519, UnparsedPublicKey};
use serde::Serialize;
use subtle::ConstantTimeEq;

use super::{
    AuditKeys, Checkpoint, MAC_LEN, checkpoint_message, checkpoints_prefix, head_key, read_head,
    records_prefix,
};
use crate::error::{Error, Result};
use crate::store::{Key, Meta};

/// Records read per transaction while verifying.
const BATCH: usize = 4096;

/// The outcome of [`super::AuditLog::verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct AuditReport {
    /// True when every record and checkpoint checked out and nothing was cut off.
    pub valid: bool,
    /// Records read.
    pub records_checked: u64,
    /// Signed checkpoints verified.
    pub checkpoints_checked: u64,
    /// The first record found bad, if any.
    pub first_invalid: Option<InvalidRecord>,
    /// Records after the last signed checkpoint (protected by the chain key only).
    pub records_after_last_checkpoint: u64,
    /// True when records the head or a checkpoint vouches for are missing at the end.
    pub truncated: bool,
}

/// The first bad record and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct InvalidRecord {
    /// Its sequence number (1-based position in the log).
    pub seq: u64,
    /// What verification found, in words.
    pub problem: String,
}

pub(super) fn verify(meta: &Meta, keys: &AuditKeys) -> Result<AuditReport> {
    let checkpoints: BTreeMap<u64, Checkpoint> = meta
        .read(|t| t.scan_prefix(&checkpoints_prefix(), None, usize::MAX))?
        .into_iter()
        .map(|(k, v)| Ok((k.last_u64().unwrap_or(0), serde_json::from_slice(&v)?)))
        .collect::<Result<_>>()?;
    let head = meta.read(|t| {
        if t.get(&head_key())?.is_some() {
            read_head(t).map(Some)
        } else {
            Ok(None)
        }
    })?;
    let mut walk = Walk {
        public: UnparsedPublicKey::new(&ED25519, keys.public_key().to_vec()),
        checkpoints: &checkpoints,
        report: AuditReport {
            valid: true,
            records_checked: 0,
            checkpoints_checked: 0,
            first_invalid: None,
            records_after_last_checkpoint: 0,
            truncated: false,
        },
        expected: 1,
        prev: [0u8; MAC_LEN],
        last_good_checkpoint: 0,
    };
    // One thread reads the next batch from storage while this one checks the current batch,
    // so storage and hashing overlap.
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<(Key, Vec<u8>)>>>(2);
        scope.spawn(move || {
            let mut after: Option<Key> = None;
            loop {
                let rows = meta.read(|t| t.scan_prefix(&records_prefix(), after.as_ref(), BATCH));
                let last = rows
                    .as_ref()
                    .ok()
                    .and_then(|r| r.last().map(|(k, _)| k.clone()));
                let done = last.is_none();
                // A closed channel means the checker stopped early: stop reading too.
                if tx.send(rows).is_err() || done {
                    return;
                }
                after = last;
            }
        });
        for rows in rx {
            let rows = rows?;
            if rows.is_empty() {
                break;
            }
            let macs_ok = macs_check_out(keys, &rows);
            for ((key, value), mac_ok) in rows.iter().zip(macs_ok) {
                walk.record(key, value, mac_ok)?;
            }
        }
        Ok(())
    })?;
    let last = walk.expected.saturating_sub(1);
    let (head_seq, head_mac) = head.unwrap_or((0, [0u8; MAC_LEN]));
    let vouched = head_seq.max(checkpoints.keys().next_back().copied().unwrap_or(0));
    if vouched > last {
        walk.report.truncated = true;
        walk.fail(
            last + 1,
            format!(
                "records {} to {vouched} were removed from the end of the log",
                last + 1
            ),
        );
    } else if head_seq == last && last > 0 && !bool::from(head_mac.ct_eq(&walk.prev)) {
        walk.fail(last, format!("the log head does not match record {last}"));
    }
    let covered = checkpoints
        .keys()
        .copied()
        .filter(|s| *s <= last)
        .max()
        .unwrap_or(0);
    walk.report.records_after_last_checkpoint = last.saturating_sub(covered);
    Ok(walk.report)
}

/// Recomputes the chain value of every record in `rows` and compares it with the stored one,
/// on all cores: each record's value depends only on its own bytes (its stored predecessor
/// value included), so the expensive part of verification parallelizes; the links between
/// records are then checked in order by [`Walk::record`].
fn macs_check_out(keys: &AuditKeys, rows: &[(Key, Vec<u8>)]) -> Vec<bool> {
    let check = |(key, value): &(Key, Vec<u8>)| -> bool {
        let (Some(seq), Some(stored), Some(prev), Some(json)) = (
            key.last_u64(),
            value.get(..MAC_LEN),
            value.get(MAC_LEN..2 * MAC_LEN),
            value.get(2 * MAC_LEN..),
        ) else {
            return false;
        };
        bool::from(keys.mac(seq, prev, json).as_ref().ct_eq(stored))
    };
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    if threads < 2 || rows.len() < 256 {
        return rows.iter().map(check).collect();
    }
    let per = rows.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = rows
            .chunks(per)
            .map(|part| scope.spawn(move || part.iter().map(check).collect::<Vec<bool>>()))
            .collect();
        // A worker cannot panic (no indexing, no unwrap); treat a lost worker as failed checks.
        handles
            .into_iter()
            .zip(rows.chunks(per))
            .flat_map(|(h, part)| h.join().unwrap_or_else(|_| vec![false; part.len()]))
            .collect()
    })
}

/// The state of one verification walk over the log.
struct Walk<'a> {
    public: UnparsedPublicKey<Vec<u8>>,
    checkpoints: &'a BTreeMap<u64, Checkpoint>,
    report: AuditReport,
    expected: u64,
    prev: [u8; MAC_LEN],
    last_good_checkpoint: u64,
}

impl Walk<'_> {
    fn fail(&mut self, seq: u64, problem: String) {
        if self.report.first_invalid.is_none() {
            self.report.first_invalid = Some(InvalidRecord { seq, problem });
        }
        self.report.valid = false;
    }

    fn record(&mut self, key: &Key, value: &[u8], mac_ok: bool) -> Result<()> {
        self.report.records_checked += 1;
        let seq = key
            .last_u64()
            .ok_or_else(|| Error::storage("audit record key is corrupt"))?;
        let expected = self.expected;
        if seq > expected {
            self.fail(
                expected,
                format!(
                    "record {expected} is missing: records {expected} to {} were deleted",
                    seq - 1
                ),
            );
        } else if seq < expected {
            self.fail(
                seq,
                format!("record {seq} is out of place: a record was inserted"),
            );
            return Ok(());
        }
        self.expected = seq + 1;
        let (Some(stored), Some(stored_prev)) =
            (value.get(..MAC_LEN), value.get(MAC_LEN..2 * MAC_LEN))
        else {
            self.fail(seq, format!("record {seq} is truncated"));
            return Ok(());
        };
        if !mac_ok {
            self.fail(
                seq,
                format!("record {seq} was modified, or moved from another position"),
            );
        } else if !bool::from(stored_prev.ct_eq(&self.prev)) {
            self.fail(
                seq,
                format!(
                    "record {seq} does not follow record {}: a record before it was inserted, deleted or reordered",
                    seq.saturating_sub(1)
                ),
            );
        }
        if let Some(cp) = self.checkpoints.get(&seq) {
            self.report.checkpoints_checked += 1;
            let signed = B64.decode(&cp.signature).is_ok_and(|sig| {
                self.public
                    .verify(&checkpoint_message(seq, stored), &sig)
                    .is_ok()
            });
            if !signed || cp.mac != crate::id::hex(stored) {
                let since = self.last_good_checkpoint;
                self.fail(seq, format!("the signed checkpoint at record {seq} does not match the log (records after {since} were rewritten)"));
            } else if self.report.valid {
                self.last_good_checkpoint = seq;
            }
        }
        self.prev.copy_from_slice(stored);
        Ok(())
    }
}
