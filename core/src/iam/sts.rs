//! STS: AssumeRole, GetSessionToken, GetCallerIdentity, and the temporary credentials they
//! issue.
//!
//! A session token carries everything about the session (who, until when, MFA, session
//! policies, tags, and the session's secret) sealed with AES-256-GCM under the keep's token
//! key, so the keep verifies it without a lookup: a modified token fails authentication, an
//! expired one gets `ExpiredToken`. The token key itself is stored wrapped by the key provider.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::roles::{RoleRecord, role_key};
use super::{tags_member, unique_id, validation_error};
use crate::api::{OpCtx, Operation, Principal, optional_i64, optional_str, required_str};
use crate::clock::epoch_seconds;
use crate::crypto::KeyProvider;
use crate::error::{Error, ErrorKind, Result};
use crate::policy::{Policy, PolicyKind, policy_size};
use crate::store::{Key, Meta, Txn};

const TOKEN_PREFIX: &str = "CKST1";
const TOKEN_AAD: &[u8] = b"codekeep sts session token v1";
const TOKEN_KEY_AAD: &[u8] = b"codekeep sts token key v1";
const HOUR_SECONDS: i64 = 3600;
/// IAM's quota on a session policy, in characters other than white space.
const MAX_SESSION_POLICY: usize = 2048;

macro_rules! sts_op {
    ($name:literal, $handler:expr, read_only = $ro:expr) => {
        Operation {
            service: "sts",
            iam_prefix: "sts",
            event_source: "sts.amazonaws.com",
            name: $name,
            read_only: $ro,
            blob_members: &[],
            secret_members: &["TokenCode"],
            resources: &["arn:aws:iam::*:role/*", "*"],
            handler: $handler,
        }
    };
}

/// Every STS operation.
pub(crate) static STS_OPERATIONS: &[Operation] = &[
    sts_op!("AssumeRole", assume_role, read_only = false),
    sts_op!("GetSessionToken", get_session_token, read_only = false),
    sts_op!("GetCallerIdentity", get_caller_identity, read_only = true),
];

/// The key session tokens are sealed with, unwrapped in memory while the keep is open.
pub(crate) struct TokenKey(LessSafeKey);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// Unwraps the stored token key, creating it on first open.
    pub(crate) fn load_or_create(meta: &Meta, provider: &dyn KeyProvider) -> Result<Self> {
        let key = Key::new("sts").push("token-key");
        let raw = crate::crypto::keep_secret(meta, provider, &key, TOKEN_KEY_AAD)?;
        let unbound = UnboundKey::new(&AES_256_GCM, &raw)
            .map_err(|_| Error::storage("the stored STS token key has the wrong length"))?;
        Ok(TokenKey(LessSafeKey::new(unbound)))
    }

    fn seal(&self, claims: &SessionClaims) -> Result<String> {
        let mut body = Zeroizing::new(serde_json::to_vec(claims)?);
        let mut nonce = [0u8; NONCE_LEN];
        crate::id::fill_secret(&mut nonce)?;
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(TOKEN_AAD),
                &mut *body,
            )
            .map_err(|_| Error::internal("sealing a session token failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&body);
        Ok(format!("{TOKEN_PREFIX}{}", B64URL.encode(out)))
    }

    fn open(&self, token: &str) -> Option<SessionClaims> {
        let raw = B64URL.decode(token.strip_prefix(TOKEN_PREFIX)?).ok()?;
        let (nonce, body) = raw.split_at_checked(NONCE_LEN)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = Zeroizing::new(body.to_vec());
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(TOKEN_AAD), &mut body)
            .ok()?;
        serde_json::from_slice(plain).ok()
    }
}

/// What a session token says about its session.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SessionClaims {
    pub account: String,
    pub access_key_id: String,
    secret: Zeroizing<String>,
    /// Milliseconds since the epoch.
    pub issued: i64,
    pub expires: i64,
    /// When MFA was proven, if it was.
    pub mfa_at: Option<i64>,
    pub source_identity: Option<String>,
    pub subject: SessionSubject,
}

/// Whose session it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum SessionSubject {
    /// A role session from AssumeRole.
    Role {
        role_arn: String,
        role_name: String,
        role_id: String,
        session_name: String,
        /// Inline session policy documents.
        policies: Vec<String>,
        /// Managed session policy ARNs.
        policy_arns: Vec<String>,
        tags: BTreeMap<String, String>,
        transitive_tag_keys: Vec<String>,
        /// True when a role session assumed this role (role chaining).
        chained: bool,
    },
    /// An IAM user's session from GetSessionToken.
    User {
        user_name: String,
        /// The user's unique id: a user created again under the same name is someone else.
        user_id: String,
    },
}

/// The secret of the session `token` for `access_key_id`, for SigV4 verification.
pub(crate) fn session_secret(
    keep: &crate::keep::KeepInner,
    access_key_id: &str,
    token: &str,
) -> Result<Zeroizing<String>> {
    keep.token_key
        .open(token)
        .filter(|c| c.access_key_id == access_key_id)
        .map(|c| c.secret)
        .ok_or_else(|| crate::api::invalid_token(access_key_id))
}

/// Authenticates temporary credentials to the principal they stand for.
pub(crate) fn authenticate_session(
    txn: &mut Txn<'_>,
    keep: &crate::keep::KeepInner,
    access_key_id: &str,
    secret: &str,
    token: &str,
    now: i64,
) -> Result<Principal> {
    let claims = keep
        .token_key
        .open(token)
        .filter(|c| c.access_key_id == access_key_id)
        .ok_or_else(|| crate::api::invalid_token(access_key_id))?;
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        claims.secret.as_bytes(),
        secret.as_bytes(),
    )) {
        return Err(super::signature_mismatch());
    }
    if now >= claims.expires {
        return Err(Error::aws(
            ErrorKind::AccessDenied,
            "ExpiredToken",
            "The security token included in the request is expired",
        )
        .with_status(403));
    }
    let account: crate::arn::AccountId = claims.account.parse()?;
    match &claims.subject {
        SessionSubject::User { user_name, user_id } => {
            let user = super::users::load_user(txn, &claims.account, user_name)
                .ok()
                .filter(|u| u.user_id == *user_id)
                .ok_or_else(|| crate::api::invalid_token(access_key_id))?;
            let mut principal =
                Principal::from_user(account, user, Some(claims.access_key_id.clone()));
            principal.set_session(crate::api::SessionFacts {
                issued: claims.issued,
                mfa_at: claims.mfa_at,
                source_identity: claims.source_identity.clone(),
            });
            Ok(principal)
        }
        SessionSubject::Role {
            role_name, role_id, ..
        } => {
            // The same role: one deleted and created again under the name is another role.
            let role: RoleRecord = txn
                .get_json(&role_key(&claims.account, role_name))?
                .filter(|r: &RoleRecord| r.role_id == *role_id)
                .ok_or_else(|| crate::api::invalid_token(access_key_id))?;
            Ok(role_session_principal(account, role, claims))
        }
    }
}

fn role_session_principal(
    account: crate::arn::AccountId,
    role: RoleRecord,
    claims: SessionClaims,
) -> Principal {
    let SessionSubject::Role {
        session_name,
        policies,
        policy_arns,
        tags,
        transitive_tag_keys,
        chained,
        ..
    } = claims.subject
    else {
        return Principal::Unauthenticated {
            account: Some(account),
            access_key_id: Some(claims.access_key_id),
            user_name: None,
        };
    };
    let arn = format!(
        "arn:aws:sts::{account}:assumed-role/{}/{session_name}",
        role.name
    );
    Principal::AssumedRole {
        account,
        arn,
        session: Box::new(crate::api::RoleSession {
            role_arn: role.arn,
            role_name: role.name,
            role_id: role.role_id,
            role_tags: role.tags,
            session_name,
            policies,
            policy_arns,
            tags,
            transitive_tag_keys,
            chained,
            issued: claims.issued,
            mfa_at: claims.mfa_at,
            source_identity: claims.source_identity,
            access_key_id: claims.access_key_id,
        }),
    }
}

// ---- operations ----

fn check_session_name(name: &str) -> Result<()> {
    let ok = (2..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(validation_error(format!(
            "1 validation error detected: Value '{name}' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*"
        )))
    }
}

fn duration(input: &Value, default: i64, max: i64, chained: bool) -> Result<i64> {
    let seconds = optional_i64(input, "DurationSeconds")?.unwrap_or(default.min(max));
    if chained && seconds > HOUR_SECONDS {
        return Err(validation_error(
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
        ));
    }
    if !(900..=max).contains(&seconds) {
        return Err(validation_error(format!(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role. (DurationSeconds must be between 900 and {max})"
        )));
    }
    Ok(seconds)
}

fn new_secret() -> Result<Zeroizing<String>> {
    let mut raw = Zeroizing::new([0u8; 30]);
    crate::id::fill_secret(&mut raw[..])?;
    Ok(Zeroizing::new(B64.encode(&raw[..])))
}

fn credentials_json(claims: &SessionClaims, token: &str) -> Value {
    json!({
        "AccessKeyId": claims.access_key_id,
        "SecretAccessKey": claims.secret.as_str(),
        "SessionToken": token,
        "Expiration": epoch_seconds(claims.expires),
    })
}

/// Verifies `SerialNumber` + `TokenCode` for the calling user, when given.
fn mfa_from_input(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Option<i64>> {
    let serial = optional_str(input, "SerialNumber")?;
    let code = optional_str(input, "TokenCode")?;
    match (serial, code) {
        (None, None) => Ok(None),
        (Some(serial), Some(code)) => {
            let Some(user) = ctx.req.principal.user_name().map(str::to_owned) else {
                return Err(Error::aws(
                    ErrorKind::AccessDenied,
                    "AccessDenied",
                    "MultiFactorAuthentication failed: only an IAM user can prove MFA with a device",
                )
                .with_status(403));
            };
            let account = ctx.account()?.to_string();
            super::mfa::verify_code(ctx, &account, &user, serial, code)?;
            Ok(Some(ctx.now()))
        }
        _ => Err(validation_error(
            "SerialNumber and TokenCode must be given together",
        )),
    }
}

fn assume_role(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let TagRequest { tags, transitive } = TagRequest::read(input)?;
    let role_arn = required_str(input, "RoleArn")?;
    let session_name = required_str(input, "RoleSessionName")?;
    check_session_name(session_name)?;
    let external_id = optional_str(input, "ExternalId")?
        .map(|id| {
            (2..=1224)
                .contains(&id.len())
                .then_some(id)
                .ok_or_else(|| validation_error("ExternalId must have 2 to 1224 characters"))
        })
        .transpose()?;
    let source_identity = optional_str(input, "SourceIdentity")?.map(str::to_owned);
    let (role_account, role_name) = parse_role_arn(role_arn)?;
    let caller_session = caller_role_session(&ctx.req.principal)?;
    let chained = caller_session.is_some();

    let mfa_at = trust_context(
        ctx,
        input,
        caller_session.as_deref(),
        external_id,
        source_identity.as_deref(),
        session_name,
        &tags,
    )?;

    let role: Option<RoleRecord> = ctx
        .txn
        .get_json(&role_key(&role_account, &role_name))?
        .filter(|r: &RoleRecord| r.arn == role_arn);
    let Some(role) = role else {
        return Err(crate::api::access_denied(
            &ctx.req.principal,
            "sts:AssumeRole",
            role_arn,
            "because no resource-based policy allows the sts:AssumeRole action",
        ));
    };
    ctx.authorize_as("sts:AssumeRole", &[role_arn.to_owned()])?;
    if !tags.is_empty() || !transitive.is_empty() {
        ctx.authorize_as("sts:TagSession", &[role_arn.to_owned()])?;
    }
    if source_identity.is_some() {
        ctx.authorize_as("sts:SetSourceIdentity", &[role_arn.to_owned()])?;
    }

    let max = if chained {
        HOUR_SECONDS
    } else {
        role.max_session_duration
    };
    let seconds = duration(input, HOUR_SECONDS, max.max(HOUR_SECONDS), chained)?;
    let (policies, policy_arns) = session_policies(ctx, input, &role_account)?;

    let (session_tags, transitive_keys) = session_tags(&ctx.req.principal, tags, transitive)?;
    // A source identity, once set, stays with every session chained from it.
    let inherited = caller_session.and_then(|s| s.source_identity);
    if let (Some(old), Some(new)) = (&inherited, &source_identity)
        && old != new
    {
        return Err(validation_error(
            "the source identity of a chained session cannot differ from the calling session's",
        ));
    }
    let source_identity = source_identity.or(inherited);

    let now = ctx.now();
    let claims = SessionClaims {
        account: role_account.clone(),
        access_key_id: unique_id("ASIA", 20),
        secret: new_secret()?,
        issued: now,
        expires: now + seconds * 1000,
        mfa_at,
        source_identity: source_identity.clone(),
        subject: SessionSubject::Role {
            role_arn: role.arn.clone(),
            role_name: role.name.clone(),
            role_id: role.role_id.clone(),
            session_name: session_name.to_owned(),
            policies,
            policy_arns,
            tags: session_tags,
            transitive_tag_keys: transitive_keys,
            chained,
        },
    };
    let token = ctx.keep.token_key.seal(&claims)?;
    ctx.audit_resources
        .push(("AWS::IAM::Role".into(), role.arn.clone()));
    let mut out = json!({
        "Credentials": credentials_json(&claims, &token),
        "AssumedRoleUser": {
            "AssumedRoleId": format!("{}:{session_name}", role.role_id),
            "Arn": format!("arn:aws:sts::{role_account}:assumed-role/{}/{session_name}", role.name),
        },
        "PackedPolicySize": packed_size(input),
    });
    if let Some(si) = source_identity {
        crate::api::set_member(&mut out, "SourceIdentity", json!(si));
    }
    Ok(out)
}

/// The caller's role session when it is one (role chaining); the root user may not assume
/// roles at all.
fn caller_role_session(principal: &Principal) -> Result<Option<Box<crate::api::RoleSession>>> {
    match principal {
        Principal::Root(_) => Err(Error::aws(
            ErrorKind::AccessDenied,
            "AccessDenied",
            "Roles may not be assumed by root accounts.",
        )
        .with_status(403)),
        Principal::AssumedRole { session, .. } => Ok(Some(session.clone())),
        _ => Ok(None),
    }
}

/// Fills the request context the trust policy sees; returns when MFA was proven.
fn trust_context(
    ctx: &mut OpCtx<'_, '_>,
    input: &Value,
    caller_session: Option<&crate::api::RoleSession>,
    external_id: Option<&str>,
    source_identity: Option<&str>,
    session_name: &str,
    tags: &super::Tags,
) -> Result<Option<i64>> {
    let mut mfa_at = mfa_from_input(ctx, input)?;
    if mfa_at.is_some() {
        ctx.context_mut()
            .insert("aws:MultiFactorAuthPresent", "true");
        ctx.context_mut().insert("aws:MultiFactorAuthAge", "0");
    } else if let Some(s) = caller_session {
        mfa_at = s.mfa_at;
    }
    if let Some(id) = external_id {
        ctx.context_mut().insert("sts:ExternalId", id);
    }
    if let Some(si) = source_identity {
        ctx.context_mut().insert("sts:SourceIdentity", si);
    }
    ctx.context_mut()
        .insert("sts:RoleSessionName", session_name);
    super::request_tags_context(ctx, tags);
    Ok(mfa_at)
}

/// `Tags` and `TransitiveTagKeys` of an AssumeRole request.
struct TagRequest {
    tags: super::Tags,
    transitive: Vec<String>,
}

impl TagRequest {
    fn read(input: &Value) -> Result<Self> {
        let tags = tags_member(input)?;
        let transitive: Vec<String> = match crate::api::member(input, "TransitiveTagKeys") {
            None => Vec::new(),
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|_| validation_error("TransitiveTagKeys must be a list of strings"))?,
        };
        if transitive
            .iter()
            .any(|k| !tags.keys().any(|t| t.eq_ignore_ascii_case(k)))
        {
            return Err(validation_error(
                "TransitiveTagKeys must name tags of the request",
            ));
        }
        Ok(TagRequest { tags, transitive })
    }
}

/// The new session's tags: a chained session inherits the caller's transitive tags; the
/// request's own tags win.
fn session_tags(
    caller: &Principal,
    tags: super::Tags,
    transitive: Vec<String>,
) -> Result<(BTreeMap<String, String>, Vec<String>)> {
    let mut session_tags = BTreeMap::new();
    let mut transitive_keys = transitive;
    if let Principal::AssumedRole { session, .. } = caller {
        for k in &session.transitive_tag_keys {
            if let Some(v) = session.tags.get(k) {
                // AWS refuses to let a chained session set a tag it inherits.
                if tags.keys().any(|t| t.eq_ignore_ascii_case(k)) {
                    return Err(validation_error(format!(
                        "the session tag {k} is inherited from the calling session as a transitive tag and cannot be set again"
                    )));
                }
                session_tags.insert(k.clone(), v.clone());
                transitive_keys.push(k.clone());
            }
        }
    }
    session_tags.extend(tags);
    Ok((session_tags, transitive_keys))
}

/// `Policy` and `PolicyArns`: validated, and the managed ones resolved now.
fn session_policies(
    ctx: &mut OpCtx<'_, '_>,
    input: &Value,
    role_account: &str,
) -> Result<(Vec<String>, Vec<String>)> {
    let mut policies = Vec::new();
    if let Some(doc) = optional_str(input, "Policy")? {
        if policy_size(doc) > MAX_SESSION_POLICY {
            return Err(Error::aws(
                ErrorKind::LimitExceeded,
                "PackedPolicyTooLarge",
                "Packed size of consolidated session policies exceeds 100% of allowed value.",
            ));
        }
        Policy::parse(PolicyKind::Identity, "session policy", doc)?;
        policies.push(doc.to_owned());
    }
    let mut arns = Vec::new();
    if let Some(list) = crate::api::member(input, "PolicyArns") {
        let list = list
            .as_array()
            .ok_or_else(|| validation_error("PolicyArns must be a list of {arn}"))?;
        if list.len() > 10 {
            return Err(validation_error("PolicyArns may name at most 10 policies"));
        }
        for entry in list {
            let arn = entry
                .get("arn")
                .and_then(Value::as_str)
                .ok_or_else(|| validation_error("each PolicyArns entry needs an arn"))?;
            if super::policies::managed_document(ctx.txn, role_account, arn)?.is_none() {
                return Err(validation_error(format!(
                    "Policy {arn} does not exist or is not attachable."
                )));
            }
            arns.push(arn.to_owned());
        }
    }
    Ok((policies, arns))
}

fn packed_size(input: &Value) -> i64 {
    let size = optional_str(input, "Policy")
        .ok()
        .flatten()
        .map_or(0, policy_size);
    i64::try_from(size * 100 / MAX_SESSION_POLICY).unwrap_or(100)
}

fn parse_role_arn(arn: &str) -> Result<(String, String)> {
    let invalid = || validation_error(format!("{arn} is invalid"));
    let parsed: crate::arn::Arn = arn.parse().map_err(|_| invalid())?;
    let name = parsed
        .resource()
        .strip_prefix("role/")
        .and_then(|r| r.rsplit('/').next())
        .filter(|n| !n.is_empty())
        .ok_or_else(invalid)?;
    if parsed.service() != "iam" || parsed.account().len() != 12 {
        return Err(invalid());
    }
    Ok((parsed.account().to_owned(), name.to_owned()))
}

fn get_session_token(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    // As in AWS, no permission is needed: the caller only gets a session of itself.
    ctx.authorized_without_permission();
    let (user, max, default) = match &ctx.req.principal {
        Principal::User {
            name,
            user_id,
            session: None,
            ..
        } => (Some((name.clone(), user_id.clone())), 129_600, 43_200),
        Principal::Root(_) => (None, HOUR_SECONDS, HOUR_SECONDS),
        _ => {
            return Err(Error::aws(
                ErrorKind::AccessDenied,
                "AccessDenied",
                "Cannot call GetSessionToken with session credentials",
            )
            .with_status(403));
        }
    };
    let Some((user_name, user_id)) = user else {
        return Err(validation_error(
            "GetSessionToken issues sessions for IAM users; the root user of a keep account has no access keys",
        ));
    };
    let seconds = duration(input, default, max, false)?;
    let mfa_at = mfa_from_input(ctx, input)?;
    let now = ctx.now();
    let claims = SessionClaims {
        account: ctx.account()?.to_string(),
        access_key_id: unique_id("ASIA", 20),
        secret: new_secret()?,
        issued: now,
        expires: now + seconds * 1000,
        mfa_at,
        source_identity: None,
        subject: SessionSubject::User { user_name, user_id },
    };
    let token = ctx.keep.token_key.seal(&claims)?;
    Ok(json!({"Credentials": credentials_json(&claims, &token)}))
}

fn get_caller_identity(ctx: &mut OpCtx<'_, '_>, _input: &Value) -> Result<Value> {
    // As in AWS, no permission is needed, and a deny cannot hide who the caller is.
    ctx.authorized_without_permission();
    let principal = &ctx.req.principal;
    let user_id = match principal {
        Principal::Root(a) => a.to_string(),
        Principal::User { user_id, .. } => user_id.clone(),
        Principal::AssumedRole { session, .. } => session.user_id(),
        _ => {
            return Err(validation_error(
                "the keep administrator has no caller identity",
            ));
        }
    };
    let account = ctx.account()?.to_string();
    Ok(json!({"UserId": user_id, "Account": account, "Arn": principal.arn()}))
}

/// The managed session policy documents of a role session, for the authorizer.
pub(crate) fn session_policy_documents(
    txn: &mut Txn<'_>,
    account: &str,
    session: &crate::api::RoleSession,
) -> Result<Vec<(String, String)>> {
    let mut docs: Vec<(String, String)> = session
        .policies
        .iter()
        .enumerate()
        .map(|(i, d)| (format!("session policy {i}"), d.clone()))
        .collect();
    for arn in &session.policy_arns {
        // A session policy that no longer exists must not lift the session's limits: the
        // session ends instead.
        let doc = super::policies::managed_document(txn, account, arn)?
            .ok_or_else(|| crate::api::invalid_token(&session.access_key_id))?;
        docs.push((arn.clone(), doc));
    }
    Ok(docs)
}
