//! Virtual MFA devices: TOTP seeds sealed with KMS under the account's AWS managed key
//! `alias/aws/iam` (bound to the device's serial number by the encryption context), enabled
//! with two consecutive codes, each code accepted at most once.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::totp;
use super::users::authorize_user;
use super::{
    Tags, already_exists, delete_conflict, iam_arn, key, lower, no_such_entity, page, path_member,
    request_tags_context, tags_member,
};
use crate::api::{OpCtx, required_str};
use crate::clock::epoch_seconds;
use crate::crypto::EncryptionContext;
use crate::error::{Error, ErrorKind, Result};
use crate::store::{Key, Txn};

/// The encryption context that binds a sealed seed to its device.
const CONTEXT_KEY: &str = "aws:iam:mfa-serial";
const SEED_BYTES: usize = 40;

/// A stored virtual MFA device.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MfaRecord {
    pub serial: String,
    name: String,
    create_date: i64,
    /// The seed, a KMS ciphertext under `alias/aws/iam` (base64).
    seed_sealed: String,
    /// The user it is enabled for.
    pub user: Option<String>,
    enable_date: Option<i64>,
    /// The last time step whose code was accepted: a code is good once.
    last_step: Option<i64>,
    #[serde(default)]
    tags: Tags,
}

fn device_key(account: &str, name: &str) -> Key {
    key(account, &["mfa", &lower(name)])
}

/// The device name in a serial number `arn:aws:iam::ACCOUNT:mfa/PATH/NAME`, if the serial is
/// one of `account`'s.
fn device_name<'s>(account: &str, serial: &'s str) -> Option<&'s str> {
    serial
        .strip_prefix(&format!("arn:aws:iam::{account}:mfa/"))
        .map(|rest| rest.rsplit('/').next().unwrap_or(rest))
}

pub(crate) fn load_device(txn: &mut Txn<'_>, account: &str, serial: &str) -> Result<MfaRecord> {
    let missing = || {
        no_such_entity(format!(
            "MFA device with serial number {serial} does not exist."
        ))
    };
    let name = device_name(account, serial).ok_or_else(missing)?;
    txn.get_json::<MfaRecord>(&device_key(account, name))?
        .filter(|d| d.serial == serial)
        .ok_or_else(missing)
}

fn seed_context(serial: &str) -> EncryptionContext {
    EncryptionContext::new().with(CONTEXT_KEY, serial)
}

fn seed(ctx: &mut OpCtx<'_, '_>, device: &MfaRecord) -> Result<Zeroizing<Vec<u8>>> {
    let sealed = B64
        .decode(&device.seed_sealed)
        .map_err(|_| Error::storage("stored MFA seed is not base64"))?;
    crate::crypto::decrypt_for_service(ctx, &sealed, &seed_context(&device.serial))
}

/// Failed codes a device may see in a window before it refuses every code until the window
/// ends: one guess in ~333,000 succeeds (three valid codes per step), so guessing must be slow.
const MAX_FAILURES: u32 = 10;
const FAILURE_WINDOW_MILLIS: i64 = 10 * 60 * 1000;

/// Failed code attempts per device, in memory: a failed call rolls its transaction back, so the
/// count cannot live in the store.
#[derive(Debug, Default)]
pub(crate) struct MfaThrottle(std::sync::Mutex<std::collections::HashMap<String, (i64, u32)>>);

impl MfaThrottle {
    fn locked(&self, serial: &str, now: i64) -> bool {
        self.0.lock().map_or(true, |m| {
            m.get(serial)
                .is_some_and(|(start, n)| now - start < FAILURE_WINDOW_MILLIS && *n >= MAX_FAILURES)
        })
    }

    fn record(&self, serial: &str, now: i64, failed: bool) {
        if let Ok(mut m) = self.0.lock() {
            if !failed {
                m.remove(serial);
                return;
            }
            let entry = m.entry(serial.to_owned()).or_insert((now, 0));
            if now - entry.0 >= FAILURE_WINDOW_MILLIS {
                *entry = (now, 0);
            }
            entry.1 += 1;
        }
    }
}

/// Checks a code from `user`'s enabled device `serial` and uses it up. The MFA failure is an
/// `AccessDenied`, as STS reports it.
pub(crate) fn verify_code(
    ctx: &mut OpCtx<'_, '_>,
    account: &str,
    user: &str,
    serial: &str,
    code: &str,
) -> Result<()> {
    let failed = || {
        Error::aws(
            ErrorKind::AccessDenied,
            "AccessDenied",
            "MultiFactorAuthentication failed with invalid MFA one time pass code.",
        )
        .with_status(403)
    };
    let mut device = load_device(ctx.txn, account, serial).map_err(|_| failed())?;
    if device.user.as_deref().map(lower) != Some(lower(user)) {
        return Err(failed());
    }
    let now = ctx.now();
    if ctx.keep.mfa_throttle.locked(serial, now) {
        return Err(failed());
    }
    let seed = seed(ctx, &device)?;
    let now_step = totp::step_at(now.div_euclid(1000));
    let step = totp::find_step(&seed, now_step, code)
        .filter(|s| device.last_step.is_none_or(|last| *s > last));
    ctx.keep.mfa_throttle.record(serial, now, step.is_none());
    let step = step.ok_or_else(failed)?;
    device.last_step = Some(step);
    ctx.txn
        .put_json(&device_key(account, &device.name), &device)
}

/// Keeps the owner of a renamed user's devices current.
pub(crate) fn rename_owner(
    txn: &mut Txn<'_>,
    account: &str,
    lname: &str,
    name: &str,
) -> Result<()> {
    for serial in super::index_entries(txn, account, "user-mfa", lname)? {
        if let Ok(mut device) = load_device(txn, account, &serial) {
            device.user = Some(name.to_owned());
            txn.put_json(&device_key(account, &device.name), &device)?;
        }
    }
    Ok(())
}

pub(crate) fn create_virtual_mfa_device(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "VirtualMFADeviceName")?;
    super::check_name("VirtualMFADeviceName", name, 226)?;
    let path = path_member(input, "Path")?;
    let tags = tags_member(input)?;
    let account = ctx.account()?.to_string();
    let serial = iam_arn(&account, "mfa", &path, name);
    request_tags_context(ctx, &tags);
    ctx.authorize(std::slice::from_ref(&serial))?;
    if ctx.txn.get(&device_key(&account, name))?.is_some() {
        return Err(already_exists(
            "MFADevice entity at the same path and name already exists.",
        ));
    }
    let mut raw = Zeroizing::new([0u8; SEED_BYTES]);
    crate::id::fill_secret(&mut raw[..])?;
    let sealed = crate::crypto::encrypt_for_service(ctx, "iam", &seed_context(&serial), &raw[..])?;
    let device = MfaRecord {
        serial: serial.clone(),
        name: name.to_owned(),
        create_date: ctx.now(),
        seed_sealed: B64.encode(sealed),
        user: None,
        enable_date: None,
        last_step: None,
        tags,
    };
    ctx.txn.put_json(&device_key(&account, name), &device)?;
    let base32 = Zeroizing::new(totp::base32(&raw[..]));
    Ok(json!({"VirtualMFADevice": {
        "SerialNumber": serial,
        // A blob, as in IAM's API: the base32 text of the seed, base64-encoded in JSON.
        "Base32StringSeed": B64.encode(base32.as_bytes()),
    }}))
}

pub(crate) fn enable_mfa_device(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let user_name = required_str(input, "UserName")?;
    let serial = required_str(input, "SerialNumber")?;
    let code1 = required_str(input, "AuthenticationCode1")?;
    let code2 = required_str(input, "AuthenticationCode2")?;
    let user = authorize_user(ctx, user_name)?;
    let account = ctx.account()?.to_string();
    let mut device = load_device(ctx.txn, &account, serial)?;
    if device.user.is_some() {
        return Err(already_exists("MFA Device is already in use."));
    }
    let invalid = || {
        Error::aws(
            ErrorKind::InvalidArgument,
            "InvalidAuthenticationCode",
            "Authentication code for device is not valid.",
        )
        .with_status(403)
    };
    let seed = seed(ctx, &device)?;
    let now_step = totp::step_at(ctx.now().div_euclid(1000));
    // Two consecutive codes: the first for some recent step, the second for the next one.
    let first = (now_step - 2..=now_step)
        .find(|s| totp::matches(&seed, *s, code1) && totp::matches(&seed, *s + 1, code2))
        .ok_or_else(invalid)?;
    device.user = Some(user.name.clone());
    device.enable_date = Some(ctx.now());
    device.last_step = Some(first + 1);
    ctx.txn
        .put_json(&device_key(&account, &device.name), &device)?;
    ctx.txn.put(
        &key(&account, &["user-mfa", &lower(&user.name), serial]),
        b"{}",
    )?;
    Ok(json!({}))
}

pub(crate) fn deactivate_mfa_device(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let user_name = required_str(input, "UserName")?;
    let serial = required_str(input, "SerialNumber")?;
    let user = authorize_user(ctx, user_name)?;
    let account = ctx.account()?.to_string();
    let mut device = load_device(ctx.txn, &account, serial)?;
    if device.user.as_deref().map(lower) != Some(lower(&user.name)) {
        return Err(no_such_entity(format!(
            "MFA device with serial number {serial} is not enabled for user {user_name}."
        )));
    }
    device.user = None;
    device.enable_date = None;
    ctx.txn
        .put_json(&device_key(&account, &device.name), &device)?;
    ctx.txn
        .delete(&key(&account, &["user-mfa", &lower(&user.name), serial]))?;
    Ok(json!({}))
}

pub(crate) fn list_mfa_devices(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let user_name = super::user_name_or_caller(ctx, input)?;
    let user = authorize_user(ctx, &user_name)?;
    let account = ctx.account()?.to_string();
    let mut rows = Vec::new();
    for serial in super::index_entries(ctx.txn, &account, "user-mfa", &lower(&user.name))? {
        if let Ok(device) = load_device(ctx.txn, &account, &serial) {
            rows.push((
                serial.clone(),
                json!({
                    "UserName": user.name,
                    "SerialNumber": serial,
                    "EnableDate": epoch_seconds(device.enable_date.unwrap_or(device.create_date)),
                }),
            ));
        }
    }
    page(rows, input, "MFADevices", json!({}))
}

pub(crate) fn delete_virtual_mfa_device(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let serial = required_str(input, "SerialNumber")?;
    let account = ctx.account()?.to_string();
    if device_name(&account, serial).is_none() {
        return Err(super::validation_error(format!(
            "SerialNumber {serial} is not a virtual MFA device of this account"
        )));
    }
    ctx.authorize(&[serial.to_owned()])?;
    let device = load_device(ctx.txn, &account, serial)?;
    if device.user.is_some() {
        return Err(delete_conflict(
            "MFA device is still enabled for a user; deactivate it first.",
        ));
    }
    ctx.txn.delete(&device_key(&account, &device.name))?;
    Ok(json!({}))
}
