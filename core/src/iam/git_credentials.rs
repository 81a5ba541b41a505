//! Git HTTPS credentials (IAM service-specific credentials for `codecommit.amazonaws.com`):
//! a generated user name and password, the password shown once and stored only as a salted
//! HMAC-SHA256, compared in constant time.
//!
//! The password is 240 random bits, not something a person chose: no amount of key stretching
//! makes that harder to guess, while PBKDF2 made every git request (a clone is two or three)
//! pay tens of milliseconds. Records written before this carry no `scheme` and are still
//! verified with PBKDF2.

use std::num::NonZeroU32;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::pbkdf2;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::users::authorize_user;
use super::{key, limit_exceeded, lower, no_such_entity, unique_id};
use crate::api::{OpCtx, optional_str, required_str};
use crate::clock::epoch_seconds;
use crate::error::{Error, ErrorKind, Result};
use crate::store::{Key, Txn};

/// The only service IAM issues these credentials for here.
const SERVICE: &str = "codecommit.amazonaws.com";
const MAX_PER_USER: usize = 2;
/// PBKDF2 rounds of records written without a scheme.
const LEGACY_ITERATIONS: u32 = 100_000;
/// The scheme of records written now: HMAC-SHA256 keyed by the salt.
const HMAC_SCHEME: &str = "hmac-sha256";

/// A stored credential.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GitCredentialRecord {
    id: String,
    pub account: String,
    pub user: String,
    service_user_name: String,
    pub status: String,
    create_date: i64,
    salt: String,
    hash: String,
    /// How `hash` was made: [`HMAC_SCHEME`], or PBKDF2 when absent (older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scheme: Option<String>,
}

impl GitCredentialRecord {
    fn metadata(&self) -> Value {
        json!({
            "UserName": self.user,
            "Status": self.status,
            "ServiceUserName": self.service_user_name,
            "CreateDate": epoch_seconds(self.create_date),
            "ServiceSpecificCredentialId": self.id,
            "ServiceName": SERVICE,
        })
    }

    /// Checks `password` against the stored hash in constant time.
    fn verify(&self, password: &str) -> bool {
        let (Ok(salt), Ok(hash)) = (B64.decode(&self.salt), B64.decode(&self.hash)) else {
            return false;
        };
        match self.scheme.as_deref() {
            Some(HMAC_SCHEME) => ring::hmac::verify(
                &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &salt),
                password.as_bytes(),
                &hash,
            )
            .is_ok(),
            Some(_) => false,
            None => pbkdf2::verify(
                pbkdf2::PBKDF2_HMAC_SHA256,
                NonZeroU32::new(LEGACY_ITERATIONS).unwrap_or(NonZeroU32::MIN),
                &salt,
                password.as_bytes(),
                &hash,
            )
            .is_ok(),
        }
    }
}

fn by_service_user(name: &str) -> Key {
    Key::new("iam-git-credential").push(name)
}

fn record_key(account: &str, user: &str, id: &str) -> Key {
    key(account, &["user-credential", &lower(user), id])
}

/// A new password and its (salt, hash), both base64, hashed with [`HMAC_SCHEME`].
fn new_password() -> Result<(Zeroizing<String>, String, String)> {
    let mut raw = Zeroizing::new([0u8; 30]);
    crate::id::fill_secret(&mut raw[..])?;
    let password = Zeroizing::new(B64.encode(&raw[..]));
    let mut salt = [0u8; 16];
    crate::id::fill_secret(&mut salt)?;
    let hash = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &salt),
        password.as_bytes(),
    );
    Ok((password, B64.encode(salt), B64.encode(hash.as_ref())))
}

/// Authenticates a git HTTPS user name and password to `(account, IAM user name)`.
pub(crate) fn authenticate(
    txn: &mut Txn<'_>,
    service_user_name: &str,
    password: &str,
) -> Result<(String, String)> {
    let refused = || {
        Error::aws(
            ErrorKind::AccessDenied,
            "InvalidClientTokenId",
            "The git credentials are not valid.",
        )
        .with_status(403)
    };
    let pointer: Option<(String, String, String)> =
        txn.get_json(&by_service_user(service_user_name))?;
    let Some((account, user, id)) = pointer else {
        return Err(refused());
    };
    let record: GitCredentialRecord = txn
        .get_json(&record_key(&account, &user, &id))?
        .ok_or_else(refused)?;
    if record.status != "Active" || !record.verify(password) {
        return Err(refused());
    }
    Ok((record.account, record.user))
}

fn load(ctx: &mut OpCtx<'_, '_>, user: &str, id: &str) -> Result<GitCredentialRecord> {
    let account = ctx.account()?.to_string();
    ctx.txn
        .get_json(&record_key(&account, user, id))?
        .ok_or_else(|| no_such_entity(format!("No such credential {id} exists")))
}

pub(crate) fn create_service_specific_credential(
    ctx: &mut OpCtx<'_, '_>,
    input: &Value,
) -> Result<Value> {
    let name = required_str(input, "UserName")?;
    let service = required_str(input, "ServiceName")?;
    let user = authorize_user(ctx, name)?;
    if service != SERVICE {
        return Err(Error::aws(
            ErrorKind::Unsupported,
            "NotSupportedService",
            format!("Service {service} is not supported for service-specific credentials."),
        )
        .with_status(404));
    }
    let account = ctx.account()?.to_string();
    let existing = ctx.txn.scan_prefix(
        &key(&account, &["user-credential", &lower(&user.name)]),
        None,
        usize::MAX,
    )?;
    if existing.len() >= MAX_PER_USER {
        return Err(limit_exceeded(format!(
            "Cannot exceed quota for ServiceSpecificCredentialsPerUserPerService: {MAX_PER_USER}"
        )));
    }
    // `alice-at-111122223333`, then `alice+1-at-...` for a second credential.
    let mut service_user_name = format!("{}-at-{account}", user.name);
    let mut n = 1;
    while ctx.txn.get(&by_service_user(&service_user_name))?.is_some() {
        service_user_name = format!("{}+{n}-at-{account}", user.name);
        n += 1;
    }
    let (password, salt, hash) = new_password()?;
    let record = GitCredentialRecord {
        id: unique_id("ACCA", 21),
        account: account.clone(),
        user: user.name.clone(),
        service_user_name: service_user_name.clone(),
        status: "Active".to_owned(),
        create_date: ctx.now(),
        salt,
        hash,
        scheme: Some(HMAC_SCHEME.to_owned()),
    };
    ctx.txn
        .put_json(&record_key(&account, &user.name, &record.id), &record)?;
    ctx.txn.put_json(
        &by_service_user(&service_user_name),
        &(account.as_str(), user.name.as_str(), record.id.as_str()),
    )?;
    let mut out = record.metadata();
    crate::api::set_member(&mut out, "ServicePassword", json!(password.as_str()));
    Ok(json!({"ServiceSpecificCredential": out}))
}

pub(crate) fn reset_service_specific_credential(
    ctx: &mut OpCtx<'_, '_>,
    input: &Value,
) -> Result<Value> {
    let id = required_str(input, "ServiceSpecificCredentialId")?;
    let name = super::user_name_or_caller(ctx, input)?;
    authorize_user(ctx, &name)?;
    let mut record = load(ctx, &name, id)?;
    let (password, salt, hash) = new_password()?;
    record.salt = salt;
    record.hash = hash;
    record.scheme = Some(HMAC_SCHEME.to_owned());
    ctx.txn
        .put_json(&record_key(&record.account, &record.user, id), &record)?;
    let mut out = record.metadata();
    crate::api::set_member(&mut out, "ServicePassword", json!(password.as_str()));
    Ok(json!({"ServiceSpecificCredential": out}))
}

pub(crate) fn update_service_specific_credential(
    ctx: &mut OpCtx<'_, '_>,
    input: &Value,
) -> Result<Value> {
    let id = required_str(input, "ServiceSpecificCredentialId")?;
    let status = super::status_member(input)?;
    let name = super::user_name_or_caller(ctx, input)?;
    authorize_user(ctx, &name)?;
    let mut record = load(ctx, &name, id)?;
    status.clone_into(&mut record.status);
    ctx.txn
        .put_json(&record_key(&record.account, &record.user, id), &record)?;
    Ok(json!({}))
}

pub(crate) fn list_service_specific_credentials(
    ctx: &mut OpCtx<'_, '_>,
    input: &Value,
) -> Result<Value> {
    let name = super::user_name_or_caller(ctx, input)?;
    let service = optional_str(input, "ServiceName")?;
    let user = authorize_user(ctx, &name)?;
    let account = ctx.account()?.to_string();
    let mut rows = Vec::new();
    if service.is_none_or(|s| s == SERVICE) {
        for (_, v) in ctx.txn.scan_prefix(
            &key(&account, &["user-credential", &lower(&user.name)]),
            None,
            usize::MAX,
        )? {
            let record: GitCredentialRecord = serde_json::from_slice(&v)?;
            rows.push((record.id.clone(), record.metadata()));
        }
    }
    let rows: Vec<Value> = rows.into_iter().map(|(_, v)| v).collect();
    Ok(json!({"ServiceSpecificCredentials": rows}))
}

pub(crate) fn delete_service_specific_credential(
    ctx: &mut OpCtx<'_, '_>,
    input: &Value,
) -> Result<Value> {
    let id = required_str(input, "ServiceSpecificCredentialId")?;
    let name = super::user_name_or_caller(ctx, input)?;
    authorize_user(ctx, &name)?;
    let record = load(ctx, &name, id)?;
    ctx.txn
        .delete(&record_key(&record.account, &record.user, id))?;
    ctx.txn
        .delete(&by_service_user(&record.service_user_name))?;
    Ok(json!({}))
}

/// Keeps the user name of a renamed user's credentials current.
pub(crate) fn rename_owner(
    txn: &mut Txn<'_>,
    account: &str,
    lname: &str,
    name: &str,
) -> Result<()> {
    for (k, v) in txn.scan_prefix(&key(account, &["user-credential", lname]), None, usize::MAX)? {
        let mut record: GitCredentialRecord = serde_json::from_slice(&v)?;
        name.clone_into(&mut record.user);
        txn.put_json(&k, &record)?;
        txn.put_json(
            &by_service_user(&record.service_user_name),
            &(account, name, record.id.as_str()),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(salt: String, hash: String, scheme: Option<&str>) -> GitCredentialRecord {
        GitCredentialRecord {
            id: "ACCA".into(),
            account: "111122223333".into(),
            user: "alice".into(),
            service_user_name: "alice-at-111122223333".into(),
            status: "Active".into(),
            create_date: 0,
            salt,
            hash,
            scheme: scheme.map(str::to_owned),
        }
    }

    #[test]
    fn passwords_verify_only_themselves() {
        let (password, salt, hash) = new_password().unwrap();
        let record = record(salt, hash, Some(HMAC_SCHEME));
        assert!(record.verify(&password));
        assert!(!record.verify("not it"));
        assert!(!record.hash.contains(password.as_str()));
        let unknown = GitCredentialRecord {
            scheme: Some("md5".into()),
            ..record
        };
        assert!(
            !unknown.verify(&password),
            "an unknown scheme verifies nothing"
        );
    }

    #[test]
    fn records_without_a_scheme_are_pbkdf2() {
        let salt = [7u8; 16];
        let mut hash = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            NonZeroU32::new(LEGACY_ITERATIONS).unwrap(),
            &salt,
            b"old password",
            &mut hash,
        );
        let stored =
            serde_json::to_value(record(B64.encode(salt), B64.encode(hash), None)).unwrap();
        assert!(stored.get("scheme").is_none());
        let legacy: GitCredentialRecord = serde_json::from_value(stored).unwrap();
        assert!(legacy.verify("old password"));
        assert!(!legacy.verify("new password"));
    }
}
