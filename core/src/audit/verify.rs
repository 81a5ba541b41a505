//! Verification of the audit chain and its signed checkpoints.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{ED25519, UnparsedPublicKey};
use serde::Serialize;
use subtle::ConstantTimeEq;

use super::{AuditKeys, Checkpoint, MAC_LEN, checkpoint_message, checkpoints_prefix, head_key, read_head, records_prefix};
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
    let public = UnparsedPublicKey::new(&ED25519, keys.public_key().to_vec());
    let checkpoints: BTreeMap<u64, Checkpoint> = meta
        .read(|t| t.scan_prefix(&checkpoints_prefix(), None, usize::MAX))?
        .into_iter()
        .map(|(k, v)| Ok((k.last_u64().unwrap_or(0), serde_json::from_slice(&v)?)))
        .collect::<Result<_>>()?;
    let head = meta.read(|t| {
        if t.get(&head_key())?.is_some() { read_head(t).map(|(seq, _)| seq) } else { Ok(0) }
    })?;

    let mut report = AuditReport {
        valid: true,
        records_checked: 0,
        checkpoints_checked: 0,
        first_invalid: None,
        records_after_last_checkpoint: 0,
        truncated: false,
    };
    let fail = |report: &mut AuditReport, seq: u64, problem: String| {
        if report.first_invalid.is_none() {
            report.first_invalid = Some(InvalidRecord { seq, problem });
        }
        report.valid = false;
    };

    let mut expected = 1u64;
    let mut prev = [0u8; MAC_LEN];
    let mut after: Option<Key> = None;
    let mut last_good_checkpoint = 0u64;
    loop {
        let rows = meta.read(|t| t.scan_prefix(&records_prefix(), after.as_ref(), BATCH))?;
        let Some((last_key, _)) = rows.last() else { break };
        after = Some(last_key.clone());
        for (key, value) in rows {
            report.records_checked += 1;
            let seq = key.last_u64().ok_or_else(|| Error::storage("audit record key is corrupt"))?;
            if seq != expected {
                fail(&mut report, expected, format!("record {expected} is missing: records {expected} to {} were deleted", seq - 1));
                expected = seq;
            }
            let (Some(stored), Some(stored_prev), Some(json)) =
                (value.get(..MAC_LEN), value.get(MAC_LEN..2 * MAC_LEN), value.get(2 * MAC_LEN..))
            else {
                fail(&mut report, seq, format!("record {seq} is truncated"));
                expected += 1;
                continue;
            };
            let mac = keys.mac(seq, stored_prev, json);
            if !bool::from(mac.as_ref().ct_eq(stored)) {
                fail(&mut report, seq, format!("record {seq} was modified, or moved from another position"));
            } else if !bool::from(stored_prev.ct_eq(&prev)) {
                fail(&mut report, seq, format!("record {seq} does not follow record {}: a record before it was inserted, deleted or reordered", seq - 1));
            }
            if let Some(cp) = checkpoints.get(&seq) {
                report.checkpoints_checked += 1;
                let sig_ok = B64
                    .decode(&cp.signature)
                    .is_ok_and(|sig| public.verify(&checkpoint_message(seq, stored), &sig).is_ok());
                if !sig_ok || cp.mac != crate::id::hex(stored) {
                    fail(&mut report, seq, format!("the signed checkpoint at record {seq} does not match the log (records after {last_good_checkpoint} were rewritten)"));
                } else if report.valid {
                    last_good_checkpoint = seq;
                }
            }
            prev.copy_from_slice(stored);
            expected = seq + 1;
        }
    }
    let last = expected - 1;
    let vouched = head.max(checkpoints.keys().next_back().copied().unwrap_or(0));
    if vouched > last {
        report.truncated = true;
        fail(&mut report, last + 1, format!("records {} to {vouched} were removed from the end of the log", last + 1));
    }
    report.records_after_last_checkpoint = last.saturating_sub(checkpoints.keys().copied().filter(|s| *s <= last).max().unwrap_or(0));
    Ok(report)
}
