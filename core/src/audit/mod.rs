//! The audit trail: CloudTrail-shaped records, tamper-evident, queryable.
//!
//! Every dispatched call (allowed, failed or denied) appends one record in CloudTrail's record
//! shape. Records are chained: record `n` stores `mac_n = HMAC-SHA256(chain key, "codekeep audit
//! v1" | u64be(n) | mac_{n-1} | record JSON)`, where the chain key is random, stored wrapped by
//! the key provider, and never on disk in the clear. So nobody without the keep's master key can
//! edit, delete, insert or reorder a record without verification naming the first bad one.
//! Every [`CHECKPOINT_INTERVAL`] records (and on demand) a checkpoint `(n, mac_n)` is signed with
//! an Ed25519 key (also wrapped by the key provider), which anyone holding the public key can
//! check in an export.
//!
//! Storage (metadata): `audit/r/<n>` = `mac_n | mac_{n-1} | JSON`; `audit/head` = `u64be(n) |
//! mac_n`; `audit/c/<n>` = checkpoint JSON; `audit/keys` = the wrapped keys.

mod lookup;
mod verify;

use std::io::Write;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::hmac;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use crate::api::{Operation, RequestContext};
use crate::crypto::KeyProvider;
use crate::error::{Error, Result};
use crate::keep::{Keep, KeepInner};
use crate::store::{Key, Meta, Txn};

pub(crate) use lookup::CLOUDTRAIL_OPERATIONS;
pub use verify::{AuditReport, InvalidRecord};

/// Records between two automatic signed checkpoints.
pub const CHECKPOINT_INTERVAL: u64 = 1000;
/// CloudTrail `eventVersion` of the records written.
pub const EVENT_VERSION: &str = "1.11";

const MAC_LEN: usize = 32;
const CHAIN_LABEL: &[u8] = b"codekeep audit v1";
const CHECKPOINT_LABEL: &[u8] = b"codekeep audit checkpoint v1";
const KEYS_AAD: &[u8] = b"codekeep audit keys v1";

/// Members never copied into a record, whatever the operation (secrets and key material).
const ALWAYS_SECRET: &[&str] = &[
    "Plaintext",
    "CiphertextBlob",
    "SecretAccessKey",
    "Password",
    "ServicePassword",
    "SessionToken",
    "Base32StringSeed",
    "QRCodePNG",
    "PrivateKey",
    "AuthenticationCode1",
    "AuthenticationCode2",
];

/// The audit log's keys, unwrapped in memory while the keep is open.
pub(crate) struct AuditKeys {
    chain: hmac::Key,
    signing: Ed25519KeyPair,
}

impl std::fmt::Debug for AuditKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKeys")
            .field(
                "public_key",
                &B64.encode(self.signing.public_key().as_ref()),
            )
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct StoredKeys {
    /// Wrapped 32-byte chain key (base64).
    chain: String,
    /// Wrapped Ed25519 PKCS#8 document (base64).
    signing: String,
}

impl AuditKeys {
    /// Unwraps the stored audit keys, creating them on first open.
    pub(crate) fn load_or_create(meta: &Meta, provider: &dyn KeyProvider) -> Result<Self> {
        let key = Key::new("audit").push("keys");
        let stored: StoredKeys = meta.txn(|t| {
            if let Some(s) = t.get_json::<StoredKeys>(&key)? {
                return Ok(s);
            }
            let mut chain = Zeroizing::new([0u8; 32]);
            crate::id::fill_secret(chain.as_mut_slice())?;
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
                .map_err(|_| Error::internal("cannot generate the audit signing key"))?;
            let s = StoredKeys {
                chain: B64.encode(provider.wrap(chain.as_slice(), KEYS_AAD)?),
                signing: B64.encode(provider.wrap(pkcs8.as_ref(), KEYS_AAD)?),
            };
            t.put_json(&key, &s)?;
            Ok(s)
        })?;
        let corrupt = || Error::storage("the stored audit keys are corrupt");
        let chain =
            provider.unwrap(&B64.decode(&stored.chain).map_err(|_| corrupt())?, KEYS_AAD)?;
        let pkcs8 = provider.unwrap(
            &B64.decode(&stored.signing).map_err(|_| corrupt())?,
            KEYS_AAD,
        )?;
        let signing = Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|_| corrupt())?;
        Ok(AuditKeys {
            chain: hmac::Key::new(hmac::HMAC_SHA256, &chain),
            signing,
        })
    }

    fn mac(&self, seq: u64, prev: &[u8], json: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.chain);
        ctx.update(CHAIN_LABEL);
        ctx.update(&seq.to_be_bytes());
        ctx.update(prev);
        ctx.update(json);
        ctx.sign()
    }

    fn sign_checkpoint(&self, seq: u64, mac: &[u8]) -> Vec<u8> {
        self.signing
            .sign(&checkpoint_message(seq, mac))
            .as_ref()
            .to_vec()
    }

    /// The Ed25519 public key that verifies checkpoints.
    pub(crate) fn public_key(&self) -> &[u8] {
        self.signing.public_key().as_ref()
    }
}

fn checkpoint_message(seq: u64, mac: &[u8]) -> Vec<u8> {
    let mut m = CHECKPOINT_LABEL.to_vec();
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(mac);
    m
}

/// A signed statement that the log had `seq` records ending in `mac`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct Checkpoint {
    /// Number of records covered.
    pub seq: u64,
    /// Hex of the chain value of record `seq`.
    pub mac: String,
    /// When it was signed (ISO 8601).
    pub time: String,
    /// Base64 Ed25519 signature over `"codekeep audit checkpoint v1" | u64be(seq) | mac`.
    pub signature: String,
}

fn record_key(seq: u64) -> Key {
    Key::new("audit").push("r").push_u64(seq)
}

fn records_prefix() -> Key {
    Key::new("audit").push("r")
}

fn checkpoint_key(seq: u64) -> Key {
    Key::new("audit").push("c").push_u64(seq)
}

fn checkpoints_prefix() -> Key {
    Key::new("audit").push("c")
}

fn head_key() -> Key {
    Key::new("audit").push("head")
}

/// Reads the head: the last sequence number and its chain value.
fn read_head(t: &mut Txn<'_>) -> Result<(u64, [u8; MAC_LEN])> {
    match t.get(&head_key())? {
        None => Ok((0, [0u8; MAC_LEN])),
        Some(v) => {
            let (seq, mac) = v
                .split_at_checked(8)
                .ok_or_else(|| Error::storage("audit head is corrupt"))?;
            let seq = u64::from_be_bytes(
                seq.try_into()
                    .map_err(|_| Error::storage("audit head is corrupt"))?,
            );
            let mac: [u8; MAC_LEN] = mac
                .try_into()
                .map_err(|_| Error::storage("audit head is corrupt"))?;
            Ok((seq, mac))
        }
    }
}

/// Calls whose records EventBridge does not receive although they change nothing read-only:
/// data-plane calls whose own events would double every event or message they carry.
const NOT_SENT_TO_EVENTBRIDGE: &[&str] = &["PutEvents", "Publish"];

/// Appends EventBridge's copy of a call's CloudTrail record (detail-type `AWS API Call via
/// CloudTrail`, source `aws.<service>`, the record as detail) to the outbox inside `t`, so
/// rules can match API calls, denied ones included. As in EventBridge, read-only calls are not
/// sent, and a call without an account (a rejected credential) has no bus to go to.
pub(crate) fn publish_api_call(
    t: &mut Txn<'_>,
    op: &Operation,
    time_millis: i64,
    record: &Value,
) -> Result<()> {
    if op.read_only || NOT_SENT_TO_EVENTBRIDGE.contains(&op.name) {
        return Ok(());
    }
    let Some(account) = record.get("recipientAccountId").and_then(Value::as_str) else {
        return Ok(());
    };
    t.append_event(
        time_millis,
        &format!("aws.{}", op.iam_prefix),
        "AWS API Call via CloudTrail",
        account,
        Vec::new(),
        record.clone(),
    )?;
    Ok(())
}

/// Appends `record` to the log inside `t`; returns its sequence number.
pub(crate) fn append(t: &mut Txn<'_>, keep: &KeepInner, record: &Value) -> Result<u64> {
    append_with(t, &keep.audit, keep.clock.now_millis(), record)
}

fn append_with(t: &mut Txn<'_>, keys: &AuditKeys, now: i64, record: &Value) -> Result<u64> {
    let json =
        serde_json::to_vec(record).map_err(|e| Error::internal(format!("audit record: {e}")))?;
    let (last, prev) = read_head(t)?;
    let seq = last + 1;
    if t.get(&record_key(seq))?.is_some() {
        // The head was removed or rolled back: appending would overwrite the log.
        return Err(Error::storage(
            "the audit log head does not match the log; refusing to overwrite records",
        ));
    }
    let mac = keys.mac(seq, &prev, &json);
    let mut value = Vec::with_capacity(2 * MAC_LEN + json.len());
    value.extend_from_slice(mac.as_ref());
    value.extend_from_slice(&prev);
    value.extend_from_slice(&json);
    t.put(&record_key(seq), &value)?;
    let mut head = seq.to_be_bytes().to_vec();
    head.extend_from_slice(mac.as_ref());
    t.put(&head_key(), &head)?;
    if seq % CHECKPOINT_INTERVAL == 0 {
        write_checkpoint(t, keys, now, seq, mac.as_ref())?;
    }
    Ok(seq)
}

fn write_checkpoint(
    t: &mut Txn<'_>,
    keys: &AuditKeys,
    now: i64,
    seq: u64,
    mac: &[u8],
) -> Result<()> {
    let cp = Checkpoint {
        seq,
        mac: crate::id::hex(mac),
        time: crate::clock::iso8601(now),
        signature: B64.encode(keys.sign_checkpoint(seq, mac)),
    };
    t.put_json(&checkpoint_key(seq), &cp)
}

/// Removes members that must never be logged, at any depth.
fn redact(value: &Value, secrets: &[&str]) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                if secrets.contains(&k.as_str()) || ALWAYS_SECRET.contains(&k.as_str()) {
                    continue;
                }
                out.insert(k.clone(), redact(v, secrets));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| redact(v, secrets)).collect()),
        other => other.clone(),
    }
}

/// Builds the CloudTrail record of one API call.
pub(crate) fn api_call_record(
    op: &Operation,
    req: &RequestContext,
    input: &Value,
    result: std::result::Result<&Value, &Error>,
    resources: &[(String, String)],
) -> Value {
    let account = req
        .principal
        .account()
        .map(std::string::ToString::to_string);
    let mut record = json!({
        "eventVersion": EVENT_VERSION,
        "userIdentity": req.principal.user_identity(),
        "eventTime": crate::clock::iso8601(req.time_millis),
        "eventSource": op.event_source,
        "eventName": op.name,
        "awsRegion": req.region.as_str(),
        "sourceIPAddress": req.source_ip,
        "userAgent": req.user_agent,
        "requestParameters": redact(input, op.secret_members),
        // As CloudTrail does, read-only calls log no response: it would copy data (and, for
        // LookupEvents, earlier records) into the log, which would then grow without bound.
        "responseElements": match result {
            Ok(out) if !op.read_only => redact(out, op.secret_members),
            _ => Value::Null,
        },
        "requestID": req.request_id,
        "eventID": crate::id::uuid_v4(),
        "readOnly": op.read_only,
        "resources": resources.iter().map(|(ty, arn)| {
            let owner = arn.parse::<crate::arn::Arn>().map(|a| a.account().to_owned()).unwrap_or_default();
            json!({"accountId": owner, "type": ty, "ARN": arn})
        }).collect::<Vec<_>>(),
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": account,
        "eventCategory": "Management",
        "tlsDetails": {"clientProvidedHostHeader": "in-process"},
    });
    if let (Err(e), Some(obj)) = (result, record.as_object_mut()) {
        obj.insert("errorCode".into(), json!(e.code()));
        obj.insert("errorMessage".into(), json!(e.message()));
    }
    if let Some(obj) = record.as_object_mut()
        && !req.secure_transport
    {
        obj.remove("tlsDetails");
    }
    record
}

/// The audit log of a keep: verification, checkpoints, export and custom events.
#[derive(Debug, Clone)]
pub struct AuditLog {
    keep: Keep,
}

impl Keep {
    /// The keep's audit log.
    pub fn audit(&self) -> AuditLog {
        AuditLog { keep: self.clone() }
    }

    /// Verifies the whole audit log; shorthand for `keep.audit().verify()`.
    ///
    /// # Errors
    /// `Storage` when the log cannot be read (tampering is reported, not raised).
    pub fn verify_audit_log(&self) -> Result<AuditReport> {
        self.audit().verify()
    }
}

impl AuditLog {
    /// Walks the log, checking every record's chain value and every checkpoint's signature.
    ///
    /// # Errors
    /// `Storage` when the log cannot be read.
    pub fn verify(&self) -> Result<AuditReport> {
        let inner = self.keep.inner();
        verify::verify(&inner.meta, &inner.audit)
    }

    /// Signs a checkpoint over the current head now (if there is any record not yet covered).
    ///
    /// # Errors
    /// `Storage`.
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>> {
        let inner = self.keep.inner();
        let now = inner.clock.now_millis();
        inner.meta.txn(|t| {
            let (seq, mac) = read_head(t)?;
            if seq == 0 || t.get(&checkpoint_key(seq))?.is_some() {
                return Ok(None);
            }
            write_checkpoint(t, &inner.audit, now, seq, &mac)?;
            t.get_json(&checkpoint_key(seq))
        })
    }

    /// Appends events the host application records itself (CloudTrail's "AwsServiceEvent"
    /// records), all in one transaction. Each must be a JSON object; `eventVersion`,
    /// `eventTime`, `eventID` and `eventType` are filled in when absent.
    ///
    /// # Errors
    /// `InvalidArgument` when an event is not an object.
    pub fn append_events(&self, events: &[Value]) -> Result<u64> {
        let inner = self.keep.inner();
        let now = inner.clock.now_millis();
        let mut prepared = Vec::with_capacity(events.len());
        for e in events {
            let mut obj = e
                .as_object()
                .cloned()
                .ok_or_else(|| Error::invalid("an audit event must be a JSON object"))?;
            obj.entry("eventVersion")
                .or_insert_with(|| json!(EVENT_VERSION));
            obj.entry("eventTime")
                .or_insert_with(|| json!(crate::clock::iso8601(now)));
            obj.entry("eventID")
                .or_insert_with(|| json!(crate::id::uuid_v4()));
            obj.entry("eventType")
                .or_insert_with(|| json!("AwsServiceEvent"));
            prepared.push(Value::Object(
                redact(&Value::Object(obj), &[])
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ));
        }
        inner.meta.txn(|t| {
            let mut last = 0;
            for record in &prepared {
                last = append_with(t, &inner.audit, now, record)?;
            }
            Ok(last)
        })
    }

    /// Writes every record as JSON Lines: one CloudTrail record per line, in log order, each
    /// with its sequence number and chain value under `"codekeep"`, followed by one line per
    /// checkpoint and a final line with the checkpoint public key.
    ///
    /// # Errors
    /// `Io` or `Storage`.
    pub fn export_jsonl(&self, out: &mut dyn Write) -> Result<u64> {
        let inner = self.keep.inner();
        let mut after: Option<Key> = None;
        let mut n = 0u64;
        loop {
            let rows = inner
                .meta
                .read(|t| t.scan_prefix(&records_prefix(), after.as_ref(), 1024))?;
            let Some((last_key, _)) = rows.last() else {
                break;
            };
            after = Some(last_key.clone());
            for (k, v) in rows {
                let json = v
                    .get(2 * MAC_LEN..)
                    .ok_or_else(|| Error::storage("audit record is corrupt"))?;
                let mut record: Value = serde_json::from_slice(json)?;
                if let Some(obj) = record.as_object_mut() {
                    obj.insert("codekeep".into(), json!({"seq": k.last_u64(), "mac": crate::id::hex(v.get(..MAC_LEN).unwrap_or_default())}));
                }
                serde_json::to_writer(&mut *out, &record)?;
                out.write_all(b"\n")?;
                n += 1;
            }
        }
        let checkpoints = inner
            .meta
            .read(|t| t.scan_prefix(&checkpoints_prefix(), None, usize::MAX))?;
        for (_, v) in checkpoints {
            let cp: Checkpoint = serde_json::from_slice(&v)?;
            serde_json::to_writer(&mut *out, &json!({"checkpoint": cp}))?;
            out.write_all(b"\n")?;
        }
        serde_json::to_writer(
            &mut *out,
            &json!({"checkpointPublicKey": B64.encode(inner.audit.public_key())}),
        )?;
        out.write_all(b"\n")?;
        Ok(n)
    }

    /// The Ed25519 public key (raw 32 bytes) that verifies checkpoints.
    pub fn checkpoint_public_key(&self) -> Vec<u8> {
        self.keep.inner().audit.public_key().to_vec()
    }

    /// The most recent records, newest first, at most `limit`.
    ///
    /// # Errors
    /// `Storage`.
    pub fn recent(&self, limit: usize) -> Result<Vec<Value>> {
        let rows = self
            .keep
            .inner()
            .meta
            .read(|t| t.scan_prefix_rev(&records_prefix(), None, limit))?;
        rows.into_iter()
            .map(|(_, v)| {
                serde_json::from_slice(v.get(2 * MAC_LEN..).unwrap_or_default())
                    .map_err(Error::from)
            })
            .collect()
    }
}
