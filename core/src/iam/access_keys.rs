//! Access keys: `AKIA…` ids with a secret shown once. The secret is kept wrapped by the keep's
//! key provider (SigV4 verification needs it back), bound to the key id.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::users::authorize_user;
use super::{key, limit_exceeded, lower, no_such_entity, page};
use crate::api::{OpCtx, required_str};
use crate::clock::epoch_seconds;
use crate::error::{Error, Result};
use crate::store::{Key, Txn};

const MAX_KEYS_PER_USER: usize = 2;
const WRAP_LABEL: &str = "codekeep iam access key v1 ";

/// A stored access key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AccessKeyRecord {
    pub access_key_id: String,
    pub account: String,
    pub user: String,
    pub status: String,
    pub create_date: i64,
    /// The secret, wrapped by the key provider (base64).
    secret_wrapped: String,
    #[serde(default)]
    pub last_used: Option<i64>,
    #[serde(default)]
    last_service: Option<String>,
    #[serde(default)]
    last_region: Option<String>,
}

/// How stale the recorded last use of a key may get before a call refreshes it: recording
/// every call would turn every read into a write.
const LAST_USED_GRANULARITY_MILLIS: i64 = 60_000;

/// Records that access key `id` was used for `service` in `region` at `now`.
pub(crate) fn note_used(
    txn: &mut Txn<'_>,
    id: &str,
    service: &str,
    region: &str,
    now: i64,
) -> Result<()> {
    let Some(mut record) = find_access_key(txn, id)? else {
        return Ok(());
    };
    let fresh = record
        .last_used
        .is_some_and(|t| now - t < LAST_USED_GRANULARITY_MILLIS)
        && record.last_service.as_deref() == Some(service);
    if !fresh {
        record.last_used = Some(now);
        record.last_service = Some(service.to_owned());
        record.last_region = Some(region.to_owned());
        txn.put_json(&global_key(id), &record)?;
    }
    Ok(())
}

impl AccessKeyRecord {
    pub fn is_active(&self) -> bool {
        self.status == "Active"
    }

    /// The secret access key, unwrapped.
    pub fn secret(&self, keep: &crate::keep::KeepInner) -> Result<Zeroizing<Vec<u8>>> {
        let wrapped = base64::engine::general_purpose::STANDARD
            .decode(&self.secret_wrapped)
            .map_err(|_| Error::storage("stored access key secret is not base64"))?;
        keep.key_provider.unwrap(
            &wrapped,
            format!("{WRAP_LABEL}{}", self.access_key_id).as_bytes(),
        )
    }

    fn metadata(&self) -> Value {
        json!({
            "UserName": self.user,
            "AccessKeyId": self.access_key_id,
            "Status": self.status,
            "CreateDate": epoch_seconds(self.create_date),
        })
    }
}

fn global_key(id: &str) -> Key {
    Key::new("iam-access-key").push(id)
}

/// The access key `id`, wherever it lives.
pub(crate) fn find_access_key(txn: &mut Txn<'_>, id: &str) -> Result<Option<AccessKeyRecord>> {
    txn.get_json(&global_key(id))
}

/// Updates the owner name of a renamed user's keys.
pub(crate) fn rename_owner(
    txn: &mut Txn<'_>,
    account: &str,
    lname: &str,
    name: &str,
) -> Result<()> {
    for id in super::index_entries(txn, account, "user-key", lname)? {
        if let Some(mut record) = find_access_key(txn, &id)? {
            name.clone_into(&mut record.user);
            txn.put_json(&global_key(&id), &record)?;
        }
    }
    Ok(())
}

fn load_key_of(ctx: &mut OpCtx<'_, '_>, user: &str, id: &str) -> Result<AccessKeyRecord> {
    let account = ctx.account()?.to_string();
    match find_access_key(ctx.txn, id)? {
        Some(record) if record.account == account && lower(&record.user) == lower(user) => {
            Ok(record)
        }
        _ => Err(no_such_entity(format!(
            "The Access Key with id {id} cannot be found."
        ))),
    }
}

pub(crate) fn create_access_key(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = super::user_name_or_caller(ctx, input)?;
    let user = authorize_user(ctx, &name)?;
    let account = ctx.account()?.to_string();
    let lname = lower(&user.name);
    let existing = ctx
        .txn
        .scan_prefix(&key(&account, &["user-key", &lname]), None, usize::MAX)?;
    if existing.len() >= MAX_KEYS_PER_USER {
        return Err(limit_exceeded(format!(
            "Cannot exceed quota for AccessKeysPerUser: {MAX_KEYS_PER_USER}"
        )));
    }
    let id = super::unique_id("AKIA", 20);
    let mut raw = Zeroizing::new([0u8; 30]);
    crate::id::fill_secret(&mut raw[..])?;
    let secret = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&raw[..]));
    let wrapped = ctx
        .keep
        .key_provider
        .wrap(secret.as_bytes(), format!("{WRAP_LABEL}{id}").as_bytes())?;
    let record = AccessKeyRecord {
        access_key_id: id.clone(),
        account: account.clone(),
        user: user.name.clone(),
        status: "Active".to_owned(),
        create_date: ctx.now(),
        secret_wrapped: base64::engine::general_purpose::STANDARD.encode(wrapped),
        last_used: None,
        last_service: None,
        last_region: None,
    };
    ctx.txn.put_json(&global_key(&id), &record)?;
    ctx.txn
        .put(&key(&account, &["user-key", &lname, &id]), b"{}")?;
    let mut access_key = record.metadata();
    crate::api::set_member(&mut access_key, "SecretAccessKey", json!(secret.as_str()));
    Ok(json!({"AccessKey": access_key}))
}

pub(crate) fn update_access_key(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let id = required_str(input, "AccessKeyId")?;
    let status = super::status_member(input)?;
    let name = super::user_name_or_caller(ctx, input)?;
    authorize_user(ctx, &name)?;
    let mut record = load_key_of(ctx, &name, id)?;
    status.clone_into(&mut record.status);
    ctx.txn.put_json(&global_key(id), &record)?;
    Ok(json!({}))
}

pub(crate) fn delete_access_key(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let id = required_str(input, "AccessKeyId")?;
    let name = super::user_name_or_caller(ctx, input)?;
    authorize_user(ctx, &name)?;
    let record = load_key_of(ctx, &name, id)?;
    ctx.txn.delete(&global_key(id))?;
    ctx.txn.delete(&key(
        &record.account,
        &["user-key", &lower(&record.user), id],
    ))?;
    Ok(json!({}))
}

pub(crate) fn list_access_keys(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = super::user_name_or_caller(ctx, input)?;
    let user = authorize_user(ctx, &name)?;
    let account = ctx.account()?.to_string();
    let mut rows = Vec::new();
    for id in super::index_entries(ctx.txn, &account, "user-key", &lower(&user.name))? {
        if let Some(record) = find_access_key(ctx.txn, &id)? {
            rows.push((id, record.metadata()));
        }
    }
    page(
        rows,
        input,
        "AccessKeyMetadata",
        json!({"UserName": user.name}),
    )
}

pub(crate) fn get_access_key_last_used(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let id = required_str(input, "AccessKeyId")?;
    let account = ctx.account()?.to_string();
    let record = find_access_key(ctx.txn, id)?.filter(|r| r.account == account);
    let Some(record) = record else {
        ctx.authorize(&["*".to_owned()])?;
        return Err(no_such_entity(format!(
            "The Access Key with id {id} cannot be found."
        )));
    };
    authorize_user(ctx, &record.user)?;
    let last_used = match record.last_used {
        Some(t) => json!({
            "LastUsedDate": epoch_seconds(t),
            "ServiceName": record.last_service.as_deref().unwrap_or("N/A"),
            "Region": record.last_region.as_deref().unwrap_or("N/A"),
        }),
        None => json!({"ServiceName": "N/A", "Region": "N/A"}),
    };
    Ok(json!({"UserName": record.user, "AccessKeyLastUsed": last_used}))
}
