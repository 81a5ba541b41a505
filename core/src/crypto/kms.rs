//! The KMS service: symmetric customer-managed keys with versions, rotation, states, aliases,
//! key policies and tags, with AWS KMS's operation names, shapes and error codes.
//!
//! Key material never leaves this module unwrapped except as the plaintext data keys callers ask
//! for. Each key version's 256-bit material is stored wrapped by the keep's [`KeyProvider`]
//! (`super::KeyProvider`) and bound to the key ARN and version.
//!
//! Ciphertext blobs (ours, opaque to callers as in AWS):
//! `0x01 | u16be(len) key ARN | u32be version | nonce[12] | AES-256-GCM(ciphertext | tag)`, with
//! AAD = `"codekeep kms v1" | key ARN | u32be version | canonical(encryption context)`.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zeroize::{Zeroize, Zeroizing};

use super::envelope::EncryptionContext;
use crate::api::{
    OpCtx, Operation, member, optional_bool, optional_i64, optional_str, required_str,
};
use crate::clock::epoch_seconds;
use crate::error::{Error, ErrorKind, Result};
use crate::store::{Key, Txn};

const DAY_MS: i64 = 86_400_000;
const BLOB_VERSION: u8 = 1;
const AAD_LABEL: &[u8] = b"codekeep kms v1";
const MAX_ON_DEMAND_ROTATIONS: usize = 25;
const MAX_TAGS: usize = 50;
const MAX_POLICY_BYTES: usize = 32 * 1024;

macro_rules! kms_op {
    ($name:literal, $handler:expr, read_only = $ro:expr, blobs = $blobs:expr, secrets = $secrets:expr) => {
        Operation {
            service: "kms",
            iam_prefix: "kms",
            event_source: "kms.amazonaws.com",
            name: $name,
            read_only: $ro,
            blob_members: $blobs,
            secret_members: $secrets,
            resources: KMS_RESOURCES,
            handler: $handler,
        }
    };
    ($name:literal, $handler:expr, read_only = $ro:expr) => {
        kms_op!($name, $handler, read_only = $ro, blobs = &[], secrets = &[])
    };
}

/// KMS's resource types: keys and aliases; creating and listing keys has no resource.
const KMS_RESOURCES: &[&str] = &["arn:aws:kms:*:*:key/*", "arn:aws:kms:*:*:alias/*", "*"];

/// Members that hold key material or customer data: never audited.
const CRYPTO_SECRETS: &[&str] = &["Plaintext", "CiphertextBlob"];

/// Every KMS operation.
pub(crate) static KMS_OPERATIONS: &[Operation] = &[
    kms_op!("CreateKey", create_key, read_only = false),
    kms_op!("DescribeKey", describe_key, read_only = true),
    kms_op!("ListKeys", list_keys, read_only = true),
    kms_op!("CreateAlias", create_alias, read_only = false),
    kms_op!("ListAliases", list_aliases, read_only = true),
    kms_op!("DeleteAlias", delete_alias, read_only = false),
    kms_op!("EnableKey", enable_key, read_only = false),
    kms_op!("DisableKey", disable_key, read_only = false),
    kms_op!("EnableKeyRotation", enable_key_rotation, read_only = false),
    kms_op!(
        "DisableKeyRotation",
        disable_key_rotation,
        read_only = false
    ),
    kms_op!(
        "GetKeyRotationStatus",
        get_key_rotation_status,
        read_only = true
    ),
    kms_op!("RotateKeyOnDemand", rotate_key_on_demand, read_only = false),
    kms_op!("ListKeyRotations", list_key_rotations, read_only = true),
    kms_op!(
        "ScheduleKeyDeletion",
        schedule_key_deletion,
        read_only = false
    ),
    kms_op!("CancelKeyDeletion", cancel_key_deletion, read_only = false),
    kms_op!(
        "GenerateDataKey",
        generate_data_key,
        read_only = true,
        blobs = &["CiphertextBlob", "Plaintext"],
        secrets = CRYPTO_SECRETS
    ),
    kms_op!(
        "GenerateDataKeyWithoutPlaintext",
        generate_data_key_without_plaintext,
        read_only = true,
        blobs = &["CiphertextBlob"],
        secrets = CRYPTO_SECRETS
    ),
    kms_op!(
        "Encrypt",
        encrypt,
        read_only = true,
        blobs = &["CiphertextBlob"],
        secrets = CRYPTO_SECRETS
    ),
    kms_op!(
        "Decrypt",
        decrypt,
        read_only = true,
        blobs = &["Plaintext"],
        secrets = CRYPTO_SECRETS
    ),
    kms_op!(
        "ReEncrypt",
        re_encrypt,
        read_only = true,
        blobs = &["CiphertextBlob"],
        secrets = CRYPTO_SECRETS
    ),
    kms_op!("PutKeyPolicy", put_key_policy, read_only = false),
    kms_op!("GetKeyPolicy", get_key_policy, read_only = true),
    kms_op!("TagResource", tag_resource, read_only = false),
    kms_op!("UntagResource", untag_resource, read_only = false),
    kms_op!("ListResourceTags", list_resource_tags, read_only = true),
];

/// A stored KMS key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyRecord {
    key_id: String,
    arn: String,
    account: String,
    description: String,
    created: i64,
    state: KeyState,
    deletion_date: Option<i64>,
    pending_window_days: Option<i64>,
    rotation_enabled: bool,
    rotation_period_days: i64,
    next_rotation: Option<i64>,
    versions: Vec<KeyVersion>,
    policy: String,
    tags: BTreeMap<String, String>,
    /// `AWS` for an AWS managed key (`alias/aws/<service>`); absent for customer keys.
    #[serde(default)]
    manager: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum KeyState {
    Enabled,
    Disabled,
    PendingDeletion,
}

impl KeyState {
    fn as_str(self) -> &'static str {
        match self {
            KeyState::Enabled => "Enabled",
            KeyState::Disabled => "Disabled",
            KeyState::PendingDeletion => "PendingDeletion",
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct KeyVersion {
    version: u32,
    created: i64,
    /// `None` for the key's original material, else `ON_DEMAND` or `AUTOMATIC`.
    rotation_type: Option<String>,
    /// The 32-byte material, wrapped by the key provider (base64).
    wrapped: String,
}

impl std::fmt::Debug for KeyVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyVersion")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AliasRecord {
    name: String,
    target_key_id: String,
    created: i64,
    updated: i64,
}

fn key_key(account: &str, key_id: &str) -> Key {
    Key::new("kms").push(account).push("key").push(key_id)
}

fn keys_prefix(account: &str) -> Key {
    Key::new("kms").push(account).push("key")
}

fn alias_key(account: &str, alias: &str) -> Key {
    Key::new("kms").push(account).push("alias").push(alias)
}

fn aliases_prefix(account: &str) -> Key {
    Key::new("kms").push(account).push("alias")
}

fn not_found(what: &str) -> Error {
    Error::aws(
        ErrorKind::NotFound,
        "NotFoundException",
        format!("{what} is not found."),
    )
}

fn validation(msg: impl Into<String>) -> Error {
    Error::aws(ErrorKind::InvalidArgument, "ValidationException", msg)
}

fn default_policy(account: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [{
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{account}:root")},
            "Action": "kms:*",
            "Resource": "*"
        }]
    })
    .to_string()
}

fn material_aad(arn: &str, version: u32) -> Vec<u8> {
    format!("codekeep kms key material v1|{arn}|{version}").into_bytes()
}

impl KeyRecord {
    fn metadata(&self) -> Value {
        let mut m = json!({
            "AWSAccountId": self.account,
            "KeyId": self.key_id,
            "Arn": self.arn,
            "CreationDate": epoch_seconds(self.created),
            "Enabled": self.state == KeyState::Enabled,
            "Description": self.description,
            "KeyUsage": "ENCRYPT_DECRYPT",
            "KeyState": self.state.as_str(),
            "Origin": "AWS_KMS",
            "KeyManager": self.manager.as_deref().unwrap_or("CUSTOMER"),
            "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
            "KeySpec": "SYMMETRIC_DEFAULT",
            "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
            "MultiRegion": false,
        });
        if let (Some(obj), Some(date)) = (m.as_object_mut(), self.deletion_date) {
            obj.insert("DeletionDate".into(), epoch_seconds(date));
            if let Some(w) = self.pending_window_days {
                obj.insert("PendingDeletionWindowInDays".into(), json!(w));
            }
        }
        m
    }

    fn current_version(&self) -> Result<&KeyVersion> {
        self.versions
            .last()
            .ok_or_else(|| Error::internal("a KMS key has no key material"))
    }

    /// Refuses cryptographic use unless the key is enabled, with AWS's codes.
    fn check_usable(&self) -> Result<()> {
        match self.state {
            KeyState::Enabled => Ok(()),
            KeyState::Disabled => Err(Error::aws(
                ErrorKind::Disabled,
                "DisabledException",
                format!("{} is disabled.", self.arn),
            )),
            KeyState::PendingDeletion => Err(pending_deletion(&self.arn)),
        }
    }

    fn check_not_pending_deletion(&self) -> Result<()> {
        if self.state == KeyState::PendingDeletion {
            Err(pending_deletion(&self.arn))
        } else {
            Ok(())
        }
    }
}

fn pending_deletion(arn: &str) -> Error {
    Error::aws(
        ErrorKind::InvalidState,
        "KMSInvalidStateException",
        format!("{arn} is pending deletion."),
    )
}

/// Where a `KeyId` input points.
enum KeyRef {
    Key { account: String, key_id: String },
    Alias { account: String, name: String },
}

fn parse_key_ref(ctx: &OpCtx<'_, '_>, key_id: &str) -> Result<KeyRef> {
    let account = ctx.account()?.to_string();
    if key_id.starts_with("arn:") {
        let arn: crate::arn::Arn = key_id.parse()?;
        if arn.service() != "kms" {
            return Err(Error::aws(
                ErrorKind::InvalidArgument,
                "InvalidArnException",
                format!("`{key_id}` is not a KMS ARN"),
            ));
        }
        let acct = arn.account().to_owned();
        if let Some(id) = arn.resource().strip_prefix("key/") {
            return Ok(KeyRef::Key {
                account: acct,
                key_id: id.to_owned(),
            });
        }
        if arn.resource().starts_with("alias/") {
            return Ok(KeyRef::Alias {
                account: acct,
                name: arn.resource().to_owned(),
            });
        }
        return Err(Error::aws(
            ErrorKind::InvalidArgument,
            "InvalidArnException",
            format!("`{key_id}` is not a key or alias ARN"),
        ));
    }
    if key_id.starts_with("alias/") {
        return Ok(KeyRef::Alias {
            account,
            name: key_id.to_owned(),
        });
    }
    if key_id.is_empty() || key_id.len() > 2048 {
        return Err(validation("KeyId must have length between 1 and 2048"));
    }
    Ok(KeyRef::Key {
        account,
        key_id: key_id.to_owned(),
    })
}

/// Loads a key, applying what time has done to it: a key whose deletion date has passed is
/// deleted (with its material, so data under it is unrecoverable), and a key whose automatic
/// rotation is due gets a new version.
fn load_key(ctx: &mut OpCtx<'_, '_>, key_id_input: &str) -> Result<KeyRecord> {
    let (account, key_id) = match parse_key_ref(ctx, key_id_input)? {
        KeyRef::Key { account, key_id } => (account, key_id),
        KeyRef::Alias { account, name } => {
            let alias: AliasRecord =
                ctx.txn
                    .get_json(&alias_key(&account, &name))?
                    .ok_or_else(|| {
                        not_found(&format!(
                            "Alias arn:aws:kms:{}:{account}:{name}",
                            ctx.req.region
                        ))
                    })?;
            (account, alias.target_key_id)
        }
    };
    let key = key_key(&account, &key_id);
    let missing = || {
        not_found(&format!(
            "Key 'arn:aws:kms:{}:{account}:key/{key_id}'",
            ctx.req.region
        ))
    };
    let mut record: KeyRecord = ctx.txn.get_json(&key)?.ok_or_else(missing)?;
    let now = ctx.now();
    if record.state == KeyState::PendingDeletion && record.deletion_date.is_some_and(|d| now >= d) {
        // Deleted: `sweep_deleted_keys` removes the record and its material durably.
        return Err(missing());
    }
    rotate_if_due(ctx, &mut record)?;
    ctx.audit_resources
        .push(("AWS::KMS::Key".to_owned(), record.arn.clone()));
    // The key's tags are `aws:ResourceTag/*` for the check that follows.
    let context = ctx.context_mut();
    context.remove_prefix("aws:ResourceTag/");
    for (k, v) in &record.tags {
        context.insert(&format!("aws:ResourceTag/{k}"), v);
    }
    Ok(record)
}

fn purge_key(txn: &mut Txn<'_>, cache: &super::KeyCache, record: &KeyRecord) -> Result<()> {
    txn.delete(&key_key(&record.account, &record.key_id))?;
    for (k, v) in txn.scan_prefix(&aliases_prefix(&record.account), None, usize::MAX)? {
        let alias: AliasRecord = serde_json::from_slice(&v)?;
        if alias.target_key_id == record.key_id {
            txn.delete(&k)?;
        }
    }
    cache.evict_prefix(&format!("{}|", record.arn));
    Ok(())
}

fn deletion_index() -> Key {
    Key::new("kms-deletions")
}

fn deletion_entry(date: i64, account: &str, key_id: &str) -> Key {
    deletion_index()
        .push_u64(u64::try_from(date).unwrap_or(0))
        .push(account)
        .push(key_id)
}

fn due_date(k: &Key) -> Option<i64> {
    k.components()
        .get(1)
        .and_then(|d| i64::from_str_radix(d, 16).ok())
}

/// Deletes, for good, every key whose deletion date has passed: its record, its wrapped key
/// material and its aliases. Runs in its own transaction before each KMS call, so a deletion is
/// never undone by the rollback of a failing call. Reads only the due head of a date-ordered
/// index, which is usually empty.
pub(crate) fn sweep_deleted_keys(
    meta: &crate::store::Meta,
    cache: &super::KeyCache,
    now: i64,
) -> Result<()> {
    let first = meta.read(|t| {
        Ok(t.scan_prefix(&deletion_index(), None, 1)?
            .first()
            .and_then(|(k, _)| due_date(k)))
    })?;
    if first.is_none_or(|d| d > now) {
        return Ok(());
    }
    meta.txn(|t| {
        for (k, _) in t.scan_prefix(&deletion_index(), None, 100)? {
            if due_date(&k).is_none_or(|d| d > now) {
                break;
            }
            t.delete(&k)?;
            let parts = k.components();
            let (Some(account), Some(key_id)) = (parts.get(2), parts.get(3)) else {
                continue;
            };
            if let Some(record) = t.get_json::<KeyRecord>(&key_key(account, key_id))?
                && record.state == KeyState::PendingDeletion
                && record.deletion_date.is_some_and(|d| now >= d)
            {
                purge_key(t, cache, &record)?;
                key_event(t, now, &record, "KMS CMK Deletion")?;
            }
        }
        Ok(())
    })
}

fn save_key(ctx: &mut OpCtx<'_, '_>, record: &KeyRecord) -> Result<()> {
    ctx.txn
        .put_json(&key_key(&record.account, &record.key_id), record)
}

fn add_version(ctx: &mut OpCtx<'_, '_>, record: &mut KeyRecord, rotation_type: &str) -> Result<()> {
    let version = record.versions.last().map_or(Ok(1), |v| {
        v.version
            .checked_add(1)
            .ok_or_else(|| Error::internal("key version overflow"))
    })?;
    let mut material = Zeroizing::new([0u8; 32]);
    crate::id::fill_secret(material.as_mut_slice())?;
    let wrapped = ctx
        .keep
        .key_provider
        .wrap(material.as_slice(), &material_aad(&record.arn, version))?;
    record.versions.push(KeyVersion {
        version,
        created: ctx.now(),
        rotation_type: (!rotation_type.is_empty()).then(|| rotation_type.to_owned()),
        wrapped: B64.encode(wrapped),
    });
    Ok(())
}

/// The unwrapped material of one key version, from the cache or the key provider.
fn material(ctx: &OpCtx<'_, '_>, record: &KeyRecord, version: u32) -> Result<LessSafeKey> {
    let v = record
        .versions
        .iter()
        .find(|v| v.version == version)
        .ok_or_else(invalid_ciphertext)?;
    // The wrapped bytes are part of the cache id: material cached by a transaction that later
    // rolled back can never stand in for the material that was committed.
    let id = format!("{}|{version}|{}", record.arn, v.wrapped);
    let now = ctx.now();
    let bytes = if let Some(m) = ctx.keep.key_cache.get(&id, now) {
        m
    } else {
        let wrapped = B64
            .decode(&v.wrapped)
            .map_err(|_| Error::internal("stored key material is corrupt"))?;
        let m = ctx
            .keep
            .key_provider
            .unwrap(&wrapped, &material_aad(&record.arn, version))?;
        ctx.keep.key_cache.insert(&id, m.clone(), now);
        m
    };
    let unbound = UnboundKey::new(&AES_256_GCM, &bytes)
        .map_err(|_| Error::internal("stored key material is corrupt"))?;
    Ok(LessSafeKey::new(unbound))
}

fn invalid_ciphertext() -> Error {
    Error::aws(
        ErrorKind::IntegrityFailure,
        "InvalidCiphertextException",
        "the ciphertext is invalid or does not match the key and encryption context",
    )
}

fn blob_aad(arn: &str, version: u32, context: &EncryptionContext) -> Vec<u8> {
    let mut aad = Vec::with_capacity(128);
    aad.extend_from_slice(AAD_LABEL);
    aad.extend_from_slice(arn.as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad.extend_from_slice(&context.canonical_bytes());
    aad
}

fn encrypt_with(
    ctx: &OpCtx<'_, '_>,
    record: &KeyRecord,
    context: &EncryptionContext,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let version = record.current_version()?.version;
    let key = material(ctx, record, version)?;
    let mut nonce = [0u8; NONCE_LEN];
    crate::id::fill_secret(&mut nonce)?;
    let arn_len = u16::try_from(record.arn.len()).map_err(|_| Error::internal("ARN too long"))?;
    let mut body = Zeroizing::new(plaintext.to_vec());
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(blob_aad(&record.arn, version, context)),
        &mut *body,
    )
    .map_err(|_| Error::internal("encryption failed"))?;
    let mut blob = Vec::with_capacity(1 + 2 + record.arn.len() + 4 + NONCE_LEN + body.len());
    blob.push(BLOB_VERSION);
    blob.extend_from_slice(&arn_len.to_be_bytes());
    blob.extend_from_slice(record.arn.as_bytes());
    blob.extend_from_slice(&version.to_be_bytes());
    blob.extend_from_slice(&nonce);
    blob.extend_from_slice(&body);
    Ok(blob)
}

struct ParsedBlob<'b> {
    arn: String,
    version: u32,
    nonce: [u8; NONCE_LEN],
    body: &'b [u8],
}

fn parse_blob(blob: &[u8]) -> Result<ParsedBlob<'_>> {
    let (&v, rest) = blob.split_first().ok_or_else(invalid_ciphertext)?;
    if v != BLOB_VERSION {
        return Err(invalid_ciphertext());
    }
    let (len, rest) = rest.split_at_checked(2).ok_or_else(invalid_ciphertext)?;
    let len = usize::from(u16::from_be_bytes(
        len.try_into().map_err(|_| invalid_ciphertext())?,
    ));
    let (arn, rest) = rest.split_at_checked(len).ok_or_else(invalid_ciphertext)?;
    let (version, rest) = rest.split_at_checked(4).ok_or_else(invalid_ciphertext)?;
    let (nonce, body) = rest
        .split_at_checked(NONCE_LEN)
        .ok_or_else(invalid_ciphertext)?;
    if body.len() < 16 {
        return Err(invalid_ciphertext());
    }
    Ok(ParsedBlob {
        arn: String::from_utf8(arn.to_vec()).map_err(|_| invalid_ciphertext())?,
        version: u32::from_be_bytes(version.try_into().map_err(|_| invalid_ciphertext())?),
        nonce: nonce.try_into().map_err(|_| invalid_ciphertext())?,
        body,
    })
}

/// Decrypts a ciphertext blob: returns the key record and the plaintext. Authorization for
/// `action` on the key happens here, after the key is known and before anything is decrypted.
fn decrypt_blob(
    ctx: &mut OpCtx<'_, '_>,
    blob: &[u8],
    context: &EncryptionContext,
    expected_key: Option<&str>,
    action: &str,
) -> Result<(KeyRecord, Zeroizing<Vec<u8>>)> {
    let parsed = parse_blob(blob)?;
    let record = load_key(ctx, &parsed.arn).map_err(|e| {
        if e.kind() == ErrorKind::NotFound {
            invalid_ciphertext()
        } else {
            e
        }
    })?;
    if record.arn != parsed.arn {
        return Err(invalid_ciphertext());
    }
    if let Some(expected) = expected_key {
        let wanted = load_key(ctx, expected)?;
        if wanted.arn != record.arn {
            return Err(Error::aws(
                ErrorKind::InvalidArgument,
                "IncorrectKeyException",
                "The key ID in the request does not identify a CMK that can perform this operation.",
            ));
        }
    }
    ctx.authorize_as(action, std::slice::from_ref(&record.arn))?;
    let body = open_parsed(ctx, &record, &parsed, context)?;
    Ok((record, body))
}

/// Decrypts a parsed blob under `record` (which it names).
fn open_parsed(
    ctx: &OpCtx<'_, '_>,
    record: &KeyRecord,
    parsed: &ParsedBlob<'_>,
    context: &EncryptionContext,
) -> Result<Zeroizing<Vec<u8>>> {
    record.check_usable()?;
    let key = material(ctx, record, parsed.version)?;
    let mut body = Zeroizing::new(parsed.body.to_vec());
    let n = key
        .open_in_place(
            Nonce::assume_unique_for_key(parsed.nonce),
            Aad::from(blob_aad(&record.arn, parsed.version, context)),
            body.as_mut_slice(),
        )
        .map_err(|_| invalid_ciphertext())?
        .len();
    body.truncate(n);
    Ok(body)
}

// ---- AWS managed keys: services encrypt the caller's data under them ----

/// Encrypts `plaintext` under the caller's account's AWS managed key for `service`
/// (`alias/aws/<service>`), creating the key on first use. The service acts on the caller's
/// behalf, as AWS services use their managed keys; the key policy lets customers read the key's
/// metadata but neither use it directly nor change it.
pub(crate) fn encrypt_for_service(
    ctx: &mut OpCtx<'_, '_>,
    service: &str,
    context: &EncryptionContext,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let record = managed_key(ctx, service)?;
    record.check_usable()?;
    encrypt_with(ctx, &record, context, plaintext)
}

/// Decrypts a blob made by [`encrypt_for_service`]: it must name an AWS managed key of the
/// caller's account.
pub(crate) fn decrypt_for_service(
    ctx: &mut OpCtx<'_, '_>,
    blob: &[u8],
    context: &EncryptionContext,
) -> Result<Zeroizing<Vec<u8>>> {
    let parsed = parse_blob(blob)?;
    let account = ctx.account()?.to_string();
    let key_id = parsed
        .arn
        .rsplit_once(":key/")
        .map(|(_, id)| id.to_owned())
        .ok_or_else(invalid_ciphertext)?;
    let record: KeyRecord = ctx
        .txn
        .get_json(&key_key(&account, &key_id))?
        .filter(|r: &KeyRecord| r.arn == parsed.arn && r.manager.as_deref() == Some("AWS"))
        .ok_or_else(invalid_ciphertext)?;
    open_parsed(ctx, &record, &parsed, context)
}

#[cfg(feature = "git")]
/// Encrypts `plaintext` (a service's data key) under `key_arn`, a key the service resolved
/// with [`usable_key_arn`] or [`managed_key_arn`] in the same call (which authorized the caller).
pub(crate) fn wrap_for_service(
    ctx: &mut OpCtx<'_, '_>,
    key_arn: &str,
    context: &EncryptionContext,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let record = load_key(ctx, key_arn)?;
    record.check_usable()?;
    encrypt_with(ctx, &record, context, plaintext)
}

#[cfg(feature = "git")]
/// Decrypts a blob a service wrapped with [`wrap_for_service`], on the caller's behalf: the key
/// must belong to the caller's account; a customer managed key must allow the caller
/// `kms:Decrypt` through the service (`kms:ViaService`), an AWS managed key needs no permission.
pub(crate) fn unwrap_for_service(
    ctx: &mut OpCtx<'_, '_>,
    service: &str,
    blob: &[u8],
    context: &EncryptionContext,
) -> Result<Zeroizing<Vec<u8>>> {
    let parsed = parse_blob(blob)?;
    let record = load_key(ctx, &parsed.arn).map_err(|e| {
        if e.kind() == ErrorKind::NotFound {
            invalid_ciphertext()
        } else {
            e
        }
    })?;
    if record.arn != parsed.arn || record.account != ctx.account()?.as_str() {
        return Err(invalid_ciphertext());
    }
    if record.manager.as_deref() != Some("AWS") {
        let account = record.account.clone();
        let via = via_service(service, ctx.req.region.as_str());
        let context_keys = ctx.context_mut();
        context_keys.insert("kms:ViaService", &via);
        context_keys.insert("kms:CallerAccount", &account);
        ctx.authorize_as("kms:Decrypt", std::slice::from_ref(&record.arn))?;
    }
    open_parsed(ctx, &record, &parsed, context)
}

/// KMS's EventBridge event for something that happened to a key without an API call
/// (`KMS CMK Rotation`, `KMS CMK Deletion`): source `aws.kms`, the key's ARN as resource.
fn key_event(
    t: &mut crate::store::Txn<'_>,
    now: i64,
    record: &KeyRecord,
    detail_type: &str,
) -> Result<()> {
    t.append_event(
        now,
        "aws.kms",
        detail_type,
        &record.account,
        vec![record.arn.clone()],
        json!({"key-id": record.key_id}),
    )
    .map(drop)
}

/// Adds a key version when automatic rotation is due (on use: there is no background task).
fn rotate_if_due(ctx: &mut OpCtx<'_, '_>, record: &mut KeyRecord) -> Result<()> {
    let now = ctx.now();
    if record.rotation_enabled
        && record.state == KeyState::Enabled
        && record.next_rotation.is_some_and(|d| now >= d)
    {
        add_version(ctx, record, "AUTOMATIC")?;
        record.next_rotation = Some(now + record.rotation_period_days * DAY_MS);
        ctx.txn
            .put_json(&key_key(&record.account, &record.key_id), &*record)?;
        key_event(ctx.txn, now, record, "KMS CMK Rotation")?;
    }
    Ok(())
}

#[cfg(feature = "git")]
/// The ARN of the caller's account's AWS managed key for `service`, created on first use.
pub(crate) fn managed_key_arn(ctx: &mut OpCtx<'_, '_>, service: &str) -> Result<String> {
    managed_key(ctx, service).map(|k| k.arn)
}

#[cfg(feature = "git")]
/// Resolves a key reference a service was given (key id, key ARN, alias name or alias ARN) to
/// the key's ARN, for a service that will encrypt the caller's data under it: the key must be
/// the caller's account's own, the caller must be allowed to use it through the service
/// (`kms:ViaService`), and it must be able to encrypt now. The service's own AWS managed key
/// (`alias/aws/<service>`) is created on first use; another service's is refused. Errors keep
/// KMS's codes (`NotFoundException`, `AccessDeniedException`, `DisabledException`,
/// `KMSInvalidStateException`) for the service to translate.
pub(crate) fn usable_key_arn(
    ctx: &mut OpCtx<'_, '_>,
    service: &str,
    key_ref: &str,
) -> Result<String> {
    let account = ctx.account()?.to_string();
    let own_alias = format!("alias/aws/{service}");
    let own_alias_arn = format!("arn:aws:kms:{}:{account}:{own_alias}", ctx.req.region);
    if key_ref == own_alias || key_ref == own_alias_arn {
        return managed_key_arn(ctx, service);
    }
    let record = load_key(ctx, key_ref)?;
    if record.account != account {
        return Err(not_found(&format!("Key '{key_ref}'")));
    }
    if record.manager.as_deref() == Some("AWS") {
        return Err(Error::aws(
            ErrorKind::AccessDenied,
            "AccessDeniedException",
            format!("{} is an AWS managed key of another service", record.arn),
        ));
    }
    let via = via_service(service, ctx.req.region.as_str());
    let context = ctx.context_mut();
    context.insert("kms:ViaService", &via);
    context.insert("kms:CallerAccount", &account);
    for action in ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"] {
        ctx.authorize_as(action, std::slice::from_ref(&record.arn))?;
    }
    record.check_usable()?;
    Ok(record.arn)
}

fn managed_key(ctx: &mut OpCtx<'_, '_>, service: &str) -> Result<KeyRecord> {
    let account = ctx.account()?.to_string();
    let alias_name = format!("alias/aws/{service}");
    if let Some(alias) = ctx
        .txn
        .get_json::<AliasRecord>(&alias_key(&account, &alias_name))?
    {
        return ctx
            .txn
            .get_json(&key_key(&account, &alias.target_key_id))?
            .ok_or_else(|| Error::storage(format!("{alias_name} names a missing key")));
    }
    let key_id = crate::id::uuid_v4();
    let now = ctx.now();
    let mut record = KeyRecord {
        arn: key_arn(ctx, &account, &key_id),
        key_id: key_id.clone(),
        account: account.clone(),
        description: format!(
            "Default key that protects my {service} data when no other key is defined"
        ),
        created: now,
        state: KeyState::Enabled,
        deletion_date: None,
        pending_window_days: None,
        // AWS rotates its managed keys every year.
        rotation_enabled: true,
        rotation_period_days: 365,
        next_rotation: Some(now + 365 * DAY_MS),
        versions: Vec::new(),
        policy: managed_key_policy(&account, &via_service(service, ctx.req.region.as_str())),
        tags: BTreeMap::new(),
        manager: Some("AWS".to_owned()),
    };
    add_version(ctx, &mut record, "")?;
    save_key(ctx, &record)?;
    ctx.txn.put_json(
        &alias_key(&account, &alias_name),
        &AliasRecord {
            name: alias_name.clone(),
            target_key_id: key_id,
            created: now,
            updated: now,
        },
    )?;
    Ok(record)
}

/// `kms:ViaService` for a request a service makes: `<service>.<region>.amazonaws.com` as AWS
/// sets it (IAM, a global service, has no region in its host name).
fn via_service(service: &str, region: &str) -> String {
    if service == "iam" {
        "iam.amazonaws.com".to_owned()
    } else {
        format!("{service}.{region}.amazonaws.com")
    }
}

/// The key policy AWS gives its managed keys: use only through the service, metadata for the
/// account.
fn managed_key_policy(account: &str, via: &str) -> String {
    let service = via.split('.').next().unwrap_or(via);
    json!({
        "Version": "2012-10-17",
        "Id": format!("auto-{service}-1"),
        "Statement": [
            {
                "Sid": format!("Allow access through {service} for all principals in the account that are authorized to use {service}"),
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
                "Resource": "*",
                "Condition": {"StringEquals": {
                    "kms:CallerAccount": account,
                    "kms:ViaService": via,
                }},
            },
            {
                "Sid": "Allow direct access to key metadata to the account",
                "Effect": "Allow",
                "Principal": {"AWS": format!("arn:aws:iam::{account}:root")},
                "Action": ["kms:Describe*", "kms:Get*", "kms:List*"],
                "Resource": "*",
            },
        ],
    })
    .to_string()
}

fn context_member(input: &Value, name: &str) -> Result<EncryptionContext> {
    match member(input, name) {
        None => Ok(EncryptionContext::new()),
        Some(Value::Object(map)) => {
            let mut ctx = BTreeMap::new();
            let mut size = 0usize;
            for (k, v) in map {
                let v = v
                    .as_str()
                    .ok_or_else(|| validation(format!("`{name}` values must be strings")))?;
                size += k.len() + v.len();
                ctx.insert(k.clone(), v.to_owned());
            }
            if size > 8192 {
                return Err(validation(format!("`{name}` is larger than 8192 bytes")));
            }
            Ok(EncryptionContext::from(ctx))
        }
        Some(_) => Err(validation(format!("`{name}` must be a map of strings"))),
    }
}

fn blob_member(input: &Value, name: &str) -> Result<Zeroizing<Vec<u8>>> {
    let text = required_str(input, name)?;
    B64.decode(text)
        .map(Zeroizing::new)
        .map_err(|_| validation(format!("`{name}` must be base64-encoded")))
}

fn key_arn(ctx: &OpCtx<'_, '_>, account: &str, key_id: &str) -> String {
    format!("arn:aws:kms:{}:{account}:key/{key_id}", ctx.req.region)
}

fn tags_member(input: &Value) -> Result<BTreeMap<String, String>> {
    let mut tags = BTreeMap::new();
    let Some(list) = member(input, "Tags") else {
        return Ok(tags);
    };
    let list = list
        .as_array()
        .ok_or_else(|| validation("`Tags` must be a list"))?;
    for tag in list {
        let key = required_str(tag, "TagKey")?;
        let value = required_str(tag, "TagValue")?;
        if key.is_empty() || key.chars().count() > 128 || value.chars().count() > 256 {
            return Err(Error::aws(
                ErrorKind::InvalidArgument,
                "TagException",
                "tag keys have 1 to 128 characters and values at most 256",
            ));
        }
        if key.starts_with("aws:") {
            return Err(Error::aws(
                ErrorKind::InvalidArgument,
                "TagException",
                "tag keys beginning with `aws:` are reserved",
            ));
        }
        tags.insert(key.to_owned(), value.to_owned());
    }
    Ok(tags)
}

fn tags_json(tags: &BTreeMap<String, String>) -> Value {
    Value::Array(
        tags.iter()
            .map(|(k, v)| json!({"TagKey": k, "TagValue": v}))
            .collect(),
    )
}

/// Validates a key policy with the policy engine's grammar for resource-based policies.
fn validate_policy(policy: &str) -> Result<()> {
    let malformed = |why: &str| {
        Error::aws(
            ErrorKind::InvalidArgument,
            "MalformedPolicyDocumentException",
            why.to_owned(),
        )
    };
    if policy.len() > MAX_POLICY_BYTES {
        return Err(malformed("the key policy is larger than 32 KiB"));
    }
    crate::policy::Policy::parse(crate::policy::PolicyKind::Resource, "key policy", policy)
        .map(|_| ())
        .map_err(|e| malformed(e.message()))
}

/// KMS's condition keys of a request: `kms:CallerAccount`, `kms:EncryptionContext:KEY` and
/// `kms:EncryptionContextKeys`.
pub(crate) fn add_condition_keys(
    context: &mut crate::policy::Context,
    input: &Value,
    caller_account: Option<&str>,
) {
    if let Some(account) = caller_account {
        context.insert("kms:CallerAccount", account);
    }
    let mut keys = Vec::new();
    for member in [
        "EncryptionContext",
        "SourceEncryptionContext",
        "DestinationEncryptionContext",
    ] {
        if let Some(pairs) = input.get(member).and_then(Value::as_object) {
            for (k, v) in pairs {
                if let Some(v) = v.as_str() {
                    context.insert(&format!("kms:EncryptionContext:{k}"), v);
                    keys.push(k.clone());
                }
            }
        }
    }
    if !keys.is_empty() {
        context.insert_multi("kms:EncryptionContextKeys", keys);
    }
    // `aws:RequestTag/*` and `aws:TagKeys` from `Tags` (CreateKey, TagResource) or `TagKeys`
    // (UntagResource).
    let mut tag_keys = Vec::new();
    if let Some(tags) = input.get("Tags").and_then(Value::as_array) {
        for tag in tags {
            if let (Some(k), Some(v)) = (
                tag.get("TagKey").and_then(Value::as_str),
                tag.get("TagValue").and_then(Value::as_str),
            ) {
                context.insert(&format!("aws:RequestTag/{k}"), v);
                tag_keys.push(k.to_owned());
            }
        }
    }
    if let Some(keys) = input.get("TagKeys").and_then(Value::as_array) {
        tag_keys.extend(keys.iter().filter_map(Value::as_str).map(str::to_owned));
    }
    if !tag_keys.is_empty() {
        context.insert_multi("aws:TagKeys", tag_keys);
    }
}

/// The key policy of the key `arn` (`arn:aws:kms:REGION:ACCOUNT:key/ID`), for the authorizer.
pub(crate) fn key_policy(txn: &mut Txn<'_>, arn: &crate::arn::Arn) -> Result<Option<String>> {
    let Some(key_id) = arn.resource().strip_prefix("key/") else {
        return Ok(None);
    };
    Ok(txn
        .get_json::<KeyRecord>(&key_key(arn.account(), key_id))?
        .map(|record| record.policy))
}

fn limit_member(input: &Value, default: usize, max: usize) -> Result<usize> {
    match optional_i64(input, "Limit")? {
        None => Ok(default),
        Some(n) if n >= 1 && usize::try_from(n).is_ok_and(|n| n <= max) => {
            Ok(usize::try_from(n).unwrap_or(default))
        }
        Some(_) => Err(validation(format!("Limit must be between 1 and {max}"))),
    }
}

/// A page of `rows` after `Marker`: rows sorted by a string id; the marker is the last id.
fn page<T>(
    rows: Vec<(String, T)>,
    input: &Value,
    limit: usize,
) -> Result<(Vec<T>, Option<String>)> {
    let marker = optional_str(input, "Marker")?;
    let mut out = Vec::new();
    let mut next = None;
    for (id, row) in rows
        .into_iter()
        .filter(|(id, _)| marker.is_none_or(|m| id.as_str() > m))
    {
        if out.len() == limit {
            next = Some(id);
            break;
        }
        out.push((id, row));
    }
    let next = next.and(out.last().map(|(id, _)| id.clone()));
    Ok((out.into_iter().map(|(_, r)| r).collect(), next))
}

fn paged(mut body: Value, member_name: &str, items: Vec<Value>, next: Option<String>) -> Value {
    if let Some(obj) = body.as_object_mut() {
        obj.insert(member_name.to_owned(), Value::Array(items));
        obj.insert("Truncated".into(), json!(next.is_some()));
        if let Some(m) = next {
            obj.insert("NextMarker".into(), json!(m));
        }
    }
    body
}

// ---- operations ----

fn create_key(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    ctx.authorize(&["*".to_owned()])?;
    let account = ctx.account()?.to_string();
    let description = optional_str(input, "Description")?
        .unwrap_or_default()
        .to_owned();
    if description.chars().count() > 8192 {
        return Err(validation("Description must have at most 8192 characters"));
    }
    for (name, allowed) in [("KeyUsage", "ENCRYPT_DECRYPT"), ("Origin", "AWS_KMS")] {
        if let Some(v) = optional_str(input, name)?
            && v != allowed
        {
            return Err(Error::aws(
                ErrorKind::Unsupported,
                "UnsupportedOperationException",
                format!("{name} `{v}` is not supported; only {allowed}"),
            ));
        }
    }
    for name in ["KeySpec", "CustomerMasterKeySpec"] {
        if let Some(v) = optional_str(input, name)?
            && v != "SYMMETRIC_DEFAULT"
        {
            return Err(Error::aws(
                ErrorKind::Unsupported,
                "UnsupportedOperationException",
                format!("{name} `{v}` is not supported; only SYMMETRIC_DEFAULT"),
            ));
        }
    }
    if optional_bool(input, "MultiRegion")? == Some(true) {
        return Err(Error::aws(
            ErrorKind::Unsupported,
            "UnsupportedOperationException",
            "multi-Region keys are not supported",
        ));
    }
    let policy = match optional_str(input, "Policy")? {
        Some(p) => {
            validate_policy(p)?;
            p.to_owned()
        }
        None => default_policy(&account),
    };
    let tags = tags_member(input)?;
    if tags.len() > MAX_TAGS {
        return Err(Error::aws(
            ErrorKind::InvalidArgument,
            "TagException",
            "a key can have at most 50 tags",
        ));
    }
    let key_id = crate::id::uuid_v4();
    let mut record = KeyRecord {
        arn: key_arn(ctx, &account, &key_id),
        key_id,
        account,
        description,
        created: ctx.now(),
        state: KeyState::Enabled,
        deletion_date: None,
        pending_window_days: None,
        rotation_enabled: false,
        rotation_period_days: 365,
        next_rotation: None,
        versions: Vec::new(),
        policy,
        tags,
        manager: None,
    };
    add_version(ctx, &mut record, "")?;
    save_key(ctx, &record)?;
    ctx.audit_resources
        .push(("AWS::KMS::Key".to_owned(), record.arn.clone()));
    Ok(json!({"KeyMetadata": record.metadata()}))
}

fn describe_key(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let record = load_key(ctx, required_str(input, "KeyId")?)?;
    ctx.authorize(std::slice::from_ref(&record.arn))?;
    Ok(json!({"KeyMetadata": record.metadata()}))
}

fn list_keys(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    ctx.authorize(&["*".to_owned()])?;
    let limit = limit_member(input, 100, 1000)?;
    let account = ctx.account()?.to_string();
    let now = ctx.now();
    let mut rows = Vec::new();
    for (_, v) in ctx
        .txn
        .scan_prefix(&keys_prefix(&account), None, usize::MAX)?
    {
        let record: KeyRecord = serde_json::from_slice(&v)?;
        if record.state == KeyState::PendingDeletion
            && record.deletion_date.is_some_and(|d| now >= d)
        {
            continue;
        }
        rows.push((
            record.key_id.clone(),
            json!({"KeyId": record.key_id, "KeyArn": record.arn}),
        ));
    }
    let (items, next) = page(rows, input, limit)?;
    Ok(paged(json!({}), "Keys", items, next))
}

fn validate_alias_name(name: &str) -> Result<()> {
    let invalid = |why: &str| {
        Error::aws(
            ErrorKind::InvalidArgument,
            "InvalidAliasNameException",
            format!("alias `{name}` {why}"),
        )
    };
    let rest = name
        .strip_prefix("alias/")
        .ok_or_else(|| invalid("must begin with `alias/`"))?;
    if rest.is_empty() || name.len() > 256 {
        return Err(invalid("must have 1 to 250 characters after `alias/`"));
    }
    if !rest
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b))
    {
        return Err(invalid(
            "may contain only letters, digits, `/`, `_` and `-`",
        ));
    }
    if rest.starts_with("aws/") {
        return Err(invalid("uses the reserved prefix `alias/aws/`"));
    }
    Ok(())
}

fn alias_arn(ctx: &OpCtx<'_, '_>, account: &str, name: &str) -> String {
    format!("arn:aws:kms:{}:{account}:{name}", ctx.req.region)
}

fn create_alias(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "AliasName")?;
    validate_alias_name(name)?;
    let target = required_str(input, "TargetKeyId")?;
    if target.starts_with("alias/") || target.contains(":alias/") {
        return Err(validation(
            "TargetKeyId must be a key id or key ARN, not an alias",
        ));
    }
    let record = load_key(ctx, target)?;
    let account = ctx.account()?.to_string();
    let arn = alias_arn(ctx, &account, name);
    ctx.authorize(&[arn.clone(), record.arn.clone()])?;
    record.check_not_pending_deletion()?;
    if record.account != account {
        return Err(validation(
            "an alias and its key must be in the same account",
        ));
    }
    let key = alias_key(&account, name);
    if ctx.txn.get(&key)?.is_some() {
        return Err(Error::aws(
            ErrorKind::AlreadyExists,
            "AlreadyExistsException",
            format!("An alias with the name {arn} already exists"),
        ));
    }
    let now = ctx.now();
    ctx.txn.put_json(
        &key,
        &AliasRecord {
            name: name.to_owned(),
            target_key_id: record.key_id,
            created: now,
            updated: now,
        },
    )?;
    Ok(json!({}))
}

fn list_aliases(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let limit = limit_member(input, 50, 100)?;
    let filter = if let Some(k) = optional_str(input, "KeyId")? {
        let record = load_key(ctx, k)?;
        ctx.authorize(std::slice::from_ref(&record.arn))?;
        Some(record.key_id)
    } else {
        ctx.authorize(&["*".to_owned()])?;
        None
    };
    let account = ctx.account()?.to_string();
    let mut rows = Vec::new();
    for (_, v) in ctx
        .txn
        .scan_prefix(&aliases_prefix(&account), None, usize::MAX)?
    {
        let alias: AliasRecord = serde_json::from_slice(&v)?;
        if filter.as_ref().is_some_and(|f| *f != alias.target_key_id) {
            continue;
        }
        let item = json!({
            "AliasName": alias.name,
            "AliasArn": alias_arn(ctx, &account, &alias.name),
            "TargetKeyId": alias.target_key_id,
            "CreationDate": epoch_seconds(alias.created),
            "LastUpdatedDate": epoch_seconds(alias.updated),
        });
        rows.push((alias.name, item));
    }
    let (items, next) = page(rows, input, limit)?;
    Ok(paged(json!({}), "Aliases", items, next))
}

fn delete_alias(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "AliasName")?;
    validate_alias_name(name)?;
    let account = ctx.account()?.to_string();
    let arn = alias_arn(ctx, &account, name);
    let key = alias_key(&account, name);
    let alias: Option<AliasRecord> = ctx.txn.get_json(&key)?;
    let target = alias
        .as_ref()
        .map(|a| key_arn(ctx, &account, &a.target_key_id));
    let mut resources = vec![arn.clone()];
    resources.extend(target);
    ctx.authorize(&resources)?;
    if alias.is_none() {
        return Err(not_found(&format!("Alias {arn}")));
    }
    ctx.txn.delete(&key)?;
    Ok(json!({}))
}

fn enable_key(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let mut record = load_key(ctx, required_str(input, "KeyId")?)?;
    ctx.authorize(std::slice::from_ref(&record.arn))?;
    record.check_not_pending_deletion()?;
    record.state = KeyState::Enabled;
    save_key(ctx, &record)?;
    Ok(json!({}))
}

fn disable_key(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let mut record = load_key(ctx, required_str(input, "KeyId")?)?;
    ctx.authorize(std::slice::from_ref(&record.arn))?;
    record.check_not_pending_deletion()?;
    record.state = KeyState::Disabled;
    save_key(ctx, &record)?;
    ctx.keep.key_cache.evict_prefix(&format!("{}|", record.arn));
    Ok(json!({}))
}

fn enable_key_rotation(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let mut record = load_key(ctx, required_str(input, "KeyId")?)?;
    ctx.authorize(std::slice::from_ref(&record.arn))?;
    record.check_usable()?;
    let period = optional_i64(input, "RotationPeriodInDays")?.unwrap_or(365);
    if !(90..=2560).contains(&period) {
        return Err(validation(
            "RotationPeriodInDays must be between 90 and 2560",
        ));
    }
    record.rotation_enabled = true;
    record.rotation_period_days = period;
    record.next_rotation = Some(ctx.now() + period * DAY_MS);
    save_key(ctx, &record)?;
    Ok(json!({}))
}

fn disable_key_rotation(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let mut record = load_key(ctx, required_str(input, "KeyId")?)?;
    ctx.authorize(std::slice::from_ref(&record.arn))?;
    record.check_usable()?;
    record.rotation_enabled = false;
    record.next_rotation = None;
    save_key(ctx, &record)?;
    Ok(json!({}))
}

fn get_key_rotation_status(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let record = load_key(ctx, required_str(input, "KeyId")?)?;
    ctx.authorize(std::slice::from_ref(&record.arn))?;
    let mut out = json!({
        "KeyRotationEnabled": record.rotation_enabled,
        "KeyId": record.arn,
    });
    if let Some(obj) = out.as_object_mut() {
        if record.rotation_enabled {
            obj.insert(
                "RotationPeriodInDays".into(),
                json!(record.rotation_period_days),
            );
            if let Some(n) = record.next_rotation {
                obj.insert("NextRotationDate".into(), epoch_seconds(n));
            }
        }
        if let Some(v) = record
            .versions
            .iter()
            .rev()
            .find(|v| v.rotation_type.as_deref() == Some("ON_DEMAND"))
        {
            obj.insert("OnDemandRotationStartDate".into(), epoch_seconds(v.created));
        }
    }
    Ok(out)
}

fn rotate_key_on_demand(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let mut record = load_key(ctx, required_str(input, "KeyId")?)?;
    ctx.authorize(std::slice::from_ref(&record.arn))?;
    record.check_usable()?;
    let on_demand = record
        .versions
        .iter()
        .filter(|v| v.rotation_type.as_deref() == Some("ON_DEMAND"))
        .count();
    if on_demand >= MAX_ON_DEMAND_ROTATIONS {
        return Err(Error::aws(
            ErrorKind::LimitExceeded,
            "LimitExceededException",
            "this key has reached its limit of on-demand rotations",
        ));
    }
    add_version(ctx, &mut record, "ON_DEMAND")?;
    save_key(ctx, &record)?;
    Ok(json!({"KeyId": record.key_id}))
}

fn list_key_rotations(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let record = load_key(ctx, required_str(input, "KeyId")?)?;
    ctx.authorize(std::slice::from_ref(&record.arn))?;
    let limit = limit_member(input, 100, 1000)?;
    let rows = record
        .versions
        .iter()
        .filter_map(|v| {
            v.rotation_type.as_ref().map(|t| {
                (format!("{:010}", v.version), json!({"KeyId": record.arn, "RotationDate": epoch_seconds(v.created), "RotationType": t}))
            })
        })
        .collect();
    let (items, next) = page(rows, input, limit)?;
    Ok(paged(json!({}), "Rotations", items, next))
}

fn schedule_key_deletion(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let mut record = load_key(ctx, required_str(input, "KeyId")?)?;
    ctx.authorize(std::slice::from_ref(&record.arn))?;
    record.check_not_pending_deletion()?;
    let days = optional_i64(input, "PendingWindowInDays")?.unwrap_or(30);
    if !(7..=30).contains(&days) {
        return Err(validation("PendingWindowInDays must be between 7 and 30"));
    }
    let date = ctx.now() + days * DAY_MS;
    record.state = KeyState::PendingDeletion;
    ctx.txn
        .put(&deletion_entry(date, &record.account, &record.key_id), b"")?;
    record.deletion_date = Some(date);
    record.pending_window_days = Some(days);
    save_key(ctx, &record)?;
    ctx.keep.key_cache.evict_prefix(&format!("{}|", record.arn));
    Ok(json!({
        "KeyId": record.arn,
        "DeletionDate": epoch_seconds(date),
        "KeyState": "PendingDeletion",
        "PendingWindowInDays": days,
    }))
}

fn cancel_key_deletion(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let mut record = load_key(ctx, required_str(input, "KeyId")?)?;
    ctx.authorize(std::slice::from_ref(&record.arn))?;
    if record.state != KeyState::PendingDeletion {
        return Err(Error::aws(
            ErrorKind::InvalidState,
            "KMSInvalidStateException",
            format!("{} is not pending deletion.", record.arn),
        ));
    }
    // As in AWS, a key whose deletion is cancelled comes back disabled.
    if let Some(date) = record.deletion_date {
        ctx.txn
            .delete(&deletion_entry(date, &record.account, &record.key_id))?;
    }
    record.state = KeyState::Disabled;
    record.deletion_date = None;
    record.pending_window_days = None;
    save_key(ctx, &record)?;
    Ok(json!({"KeyId": record.arn}))
}

fn data_key_len(input: &Value) -> Result<usize> {
    let spec = optional_str(input, "KeySpec")?;
    let bytes = optional_i64(input, "NumberOfBytes")?;
    match (spec, bytes) {
        (Some(_), Some(_)) => Err(validation(
            "Please specify either number of bytes or key spec, not both.",
        )),
        (None, None) => Err(validation(
            "Please specify either number of bytes or key spec.",
        )),
        (Some("AES_256"), None) => Ok(32),
        (Some("AES_128"), None) => Ok(16),
        (Some(other), None) => Err(validation(format!(
            "1 validation error detected: Value '{other}' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]"
        ))),
        (None, Some(n)) if (1..=1024).contains(&n) => {
            usize::try_from(n).map_err(|_| validation("NumberOfBytes"))
        }
        (None, Some(_)) => Err(validation("NumberOfBytes must be between 1 and 1024")),
    }
}

fn check_dry_run(input: &Value) -> Result<()> {
    if optional_bool(input, "DryRun")? == Some(true) {
        return Err(Error::aws(
            ErrorKind::InvalidArgument,
            "DryRunOperationException",
            "The request would have succeeded, but the DryRun option is set.",
        ));
    }
    Ok(())
}

fn generate(ctx: &mut OpCtx<'_, '_>, input: &Value, with_plaintext: bool) -> Result<Value> {
    let record = load_key(ctx, required_str(input, "KeyId")?)?;
    ctx.authorize(std::slice::from_ref(&record.arn))?;
    let len = data_key_len(input)?;
    let context = context_member(input, "EncryptionContext")?;
    record.check_usable()?;
    check_dry_run(input)?;
    let mut data_key = Zeroizing::new(vec![0u8; len]);
    crate::id::fill_secret(&mut data_key)?;
    let blob = encrypt_with(ctx, &record, &context, &data_key)?;
    let mut out = json!({"CiphertextBlob": B64.encode(blob), "KeyId": record.arn});
    if with_plaintext && let Some(obj) = out.as_object_mut() {
        obj.insert("Plaintext".into(), json!(B64.encode(data_key.as_slice())));
    }
    Ok(out)
}

fn generate_data_key(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    generate(ctx, input, true)
}

fn generate_data_key_without_plaintext(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    generate(ctx, input, false)
}

fn check_algorithm(input: &Value, name: &str) -> Result<()> {
    match optional_str(input, name)? {
        None | Some("SYMMETRIC_DEFAULT") => Ok(()),
        Some(other) => Err(Error::aws(
            ErrorKind::InvalidArgument,
            "InvalidKeyUsageException",
            format!("encryption algorithm `{other}` is not supported by a symmetric key"),
        )),
    }
}

fn encrypt(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let record = load_key(ctx, required_str(input, "KeyId")?)?;
    ctx.authorize(std::slice::from_ref(&record.arn))?;
    check_algorithm(input, "EncryptionAlgorithm")?;
    let plaintext = blob_member(input, "Plaintext")?;
    if plaintext.is_empty() || plaintext.len() > 4096 {
        return Err(validation("Plaintext must have between 1 and 4096 bytes"));
    }
    let context = context_member(input, "EncryptionContext")?;
    record.check_usable()?;
    check_dry_run(input)?;
    let blob = encrypt_with(ctx, &record, &context, &plaintext)?;
    Ok(
        json!({"CiphertextBlob": B64.encode(blob), "KeyId": record.arn, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}),
    )
}

fn decrypt(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    check_algorithm(input, "EncryptionAlgorithm")?;
    let blob = blob_member(input, "CiphertextBlob")?;
    let context = context_member(input, "EncryptionContext")?;
    let expected = optional_str(input, "KeyId")?;
    let (record, plaintext) = decrypt_blob(ctx, &blob, &context, expected, "kms:Decrypt")?;
    check_dry_run(input)?;
    let mut encoded = B64.encode(plaintext.as_slice());
    let out = json!({"KeyId": record.arn, "Plaintext": encoded.clone(), "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"});
    encoded.zeroize();
    Ok(out)
}

fn re_encrypt(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    check_algorithm(input, "SourceEncryptionAlgorithm")?;
    check_algorithm(input, "DestinationEncryptionAlgorithm")?;
    let blob = blob_member(input, "CiphertextBlob")?;
    let source_context = context_member(input, "SourceEncryptionContext")?;
    let dest_context = context_member(input, "DestinationEncryptionContext")?;
    let expected = optional_str(input, "SourceKeyId")?;
    let (source, plaintext) =
        decrypt_blob(ctx, &blob, &source_context, expected, "kms:ReEncryptFrom")?;
    let dest = load_key(ctx, required_str(input, "DestinationKeyId")?)?;
    ctx.authorize_as("kms:ReEncryptTo", std::slice::from_ref(&dest.arn))?;
    dest.check_usable()?;
    check_dry_run(input)?;
    let new_blob = encrypt_with(ctx, &dest, &dest_context, &plaintext)?;
    Ok(json!({
        "CiphertextBlob": B64.encode(new_blob),
        "SourceKeyId": source.arn,
        "KeyId": dest.arn,
        "SourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        "DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }))
}

fn policy_name(input: &Value) -> Result<()> {
    match optional_str(input, "PolicyName")? {
        None | Some("default") => Ok(()),
        Some(_) => Err(not_found("Policy")),
    }
}

fn put_key_policy(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let mut record = load_key(ctx, required_str(input, "KeyId")?)?;
    ctx.authorize(std::slice::from_ref(&record.arn))?;
    policy_name(input)?;
    let policy = required_str(input, "Policy")?;
    validate_policy(policy)?;
    record.check_not_pending_deletion()?;
    let bypass = optional_bool(input, "BypassPolicyLockoutSafetyCheck")?.unwrap_or(false);
    if !bypass && !ctx.would_allow_with_policy("kms:PutKeyPolicy", &record.arn, policy)? {
        return Err(Error::aws(
            ErrorKind::InvalidArgument,
            "MalformedPolicyDocumentException",
            "The new key policy will not allow you to update the key policy in the future.",
        ));
    }
    policy.clone_into(&mut record.policy);
    save_key(ctx, &record)?;
    Ok(json!({}))
}

fn get_key_policy(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let record = load_key(ctx, required_str(input, "KeyId")?)?;
    ctx.authorize(std::slice::from_ref(&record.arn))?;
    policy_name(input)?;
    Ok(json!({"Policy": record.policy, "PolicyName": "default"}))
}

fn tag_resource(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let mut record = load_key(ctx, required_str(input, "KeyId")?)?;
    ctx.authorize(std::slice::from_ref(&record.arn))?;
    record.check_not_pending_deletion()?;
    let tags = tags_member(input)?;
    record.tags.extend(tags);
    if record.tags.len() > MAX_TAGS {
        return Err(Error::aws(
            ErrorKind::InvalidArgument,
            "TagException",
            "a key can have at most 50 tags",
        ));
    }
    save_key(ctx, &record)?;
    Ok(json!({}))
}

fn untag_resource(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let mut record = load_key(ctx, required_str(input, "KeyId")?)?;
    ctx.authorize(std::slice::from_ref(&record.arn))?;
    record.check_not_pending_deletion()?;
    let keys = member(input, "TagKeys")
        .and_then(Value::as_array)
        .ok_or_else(|| validation("TagKeys must be a list of strings"))?;
    for k in keys {
        let k = k
            .as_str()
            .ok_or_else(|| validation("TagKeys must be a list of strings"))?;
        record.tags.remove(k);
    }
    save_key(ctx, &record)?;
    Ok(json!({}))
}

fn list_resource_tags(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let record = load_key(ctx, required_str(input, "KeyId")?)?;
    ctx.authorize(std::slice::from_ref(&record.arn))?;
    let limit = limit_member(input, 50, 50)?;
    let rows = record
        .tags
        .iter()
        .map(|(k, v)| (k.clone(), (k.clone(), v.clone())))
        .collect();
    let (items, next) = page(rows, input, limit)?;
    let tags: BTreeMap<String, String> = items.into_iter().collect();
    Ok(paged(
        json!({}),
        "Tags",
        tags_json(&tags).as_array().cloned().unwrap_or_default(),
        next,
    ))
}
