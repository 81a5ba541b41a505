//! Virtual MFA devices: TOTP seeds kept wrapped by the keep's key provider (the root of trust
//! that also wraps KMS key material), enabled with two consecutive codes, each code accepted
//! at most once.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::totp;
use super::users::authorize_user;
use super::{
    Tags, already_exists, delete_conflict, iam_arn, invalid_input, key, lower, no_such_entity,
    page, path_member, request_tags_context, tags_member,
};
use crate::api::{OpCtx, optional_str, required_str};
use crate::clock::epoch_seconds;
use crate::error::{Error, ErrorKind, Result};
use crate::keep::KeepInner;
use crate::store::{Key, Txn};

const WRAP_LABEL: &str = "codekeep iam mfa seed v1 ";
const SEED_BYTES: usize = 40;

/// A stored virtual MFA device.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MfaRecord {
    pub serial: String,
    name: String,
    create_date: i64,
    /// The seed, wrapped by the key provider (base64).
    seed_wrapped: String,
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

fn seed(keep: &KeepInner, device: &MfaRecord) -> Result<Zeroizing<Vec<u8>>> {
    let wrapped = B64
        .decode(&device.seed_wrapped)
        .map_err(|_| Error::storage("stored MFA seed is not base64"))?;
    keep.key_provider.unwrap(
        &wrapped,
        format!("{WRAP_LABEL}{}", device.serial).as_bytes(),
    )
}

/// Checks a code from `user`'s enabled device `serial` and uses it up. The MFA failure is an
/// `AccessDenied`, as STS reports it.
pub(crate) fn verify_code(
    keep: &KeepInner,
    txn: &mut Txn<'_>,
    account: &str,
    user: &str,
    serial: &str,
    code: &str,
    now_millis: i64,
) -> Result<()> {
    let failed = || {
        Error::aws(
            ErrorKind::AccessDenied,
            "AccessDenied",
            "MultiFactorAuthentication failed with invalid MFA one time pass code.",
        )
        .with_status(403)
    };
    let mut device = load_device(txn, account, serial).map_err(|_| failed())?;
    if device.user.as_deref().map(lower) != Some(lower(user)) {
        return Err(failed());
    }
    let seed = seed(keep, &device)?;
    let now_step = totp::step_at(now_millis.div_euclid(1000));
    let step = totp::find_step(&seed, now_step, code).ok_or_else(failed)?;
    if device.last_step.is_some_and(|last| step <= last) {
        return Err(failed());
    }
    device.last_step = Some(step);
    txn.put_json(&device_key(account, &device.name), &device)
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
    let wrapped = ctx
        .keep
        .key_provider
        .wrap(&raw[..], format!("{WRAP_LABEL}{serial}").as_bytes())?;
    let device = MfaRecord {
        serial: serial.clone(),
        name: name.to_owned(),
        create_date: ctx.now(),
        seed_wrapped: B64.encode(wrapped),
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
    let seed = seed(ctx.keep, &device)?;
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
    let user_name = match optional_str(input, "UserName")? {
        Some(n) => n.to_owned(),
        None => ctx
            .req
            .principal
            .user_name()
            .map(str::to_owned)
            .ok_or_else(|| {
                invalid_input("UserName is required when the caller is not an IAM user")
            })?,
    };
    let user = authorize_user(ctx, &user_name)?;
    let account = ctx.account()?.to_string();
    let mut rows = Vec::new();
    for (k, _) in ctx.txn.scan_prefix(
        &key(&account, &["user-mfa", &lower(&user.name)]),
        None,
        usize::MAX,
    )? {
        let serial = k.last().unwrap_or_default();
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
