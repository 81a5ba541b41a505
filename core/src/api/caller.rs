//! Who is calling: the caller a client acts as, the principal it resolves to, and the request
//! context an operation and the authorizer see.

use serde_json::Value;

use super::principal::Principal;
use crate::arn::{AccountId, Region};
use crate::error::{Error, Result};

/// The identity a [`super::Client`] acts as, plus transport facts the host application knows.
#[derive(Clone, PartialEq, Eq)]
pub struct Caller {
    identity: Identity,
    source_ip: String,
    user_agent: String,
    secure_transport: bool,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("identity", &self.identity)
            .field("source_ip", &self.source_ip)
            .field("user_agent", &self.user_agent)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, PartialEq, Eq)]
enum Identity {
    /// The root user of an account (trusted: the host application authenticated it).
    AccountRoot(AccountId),
    /// The host application itself, administering the keep (accounts, audit verification).
    KeepAdmin,
    /// An IAM user the host application authenticated.
    IamUser { account: AccountId, name: String },
    /// Long-term access key credentials, checked on every call.
    AccessKey {
        id: String,
        secret: zeroize::Zeroizing<String>,
    },
    /// A SigV4-signed HTTP request, verified on every call.
    #[cfg(feature = "crypto")]
    Signed(Box<crate::iam::sigv4::SignedRequest>),
    /// Temporary credentials from STS, checked on every call.
    Session {
        id: String,
        secret: zeroize::Zeroizing<String>,
        token: String,
    },
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::AccountRoot(a) => write!(f, "AccountRoot({a})"),
            Identity::KeepAdmin => f.write_str("KeepAdmin"),
            Identity::IamUser { account, name } => write!(f, "IamUser({account}, {name})"),
            // Never the secret.
            Identity::AccessKey { id, .. } => write!(f, "AccessKey({id})"),
            Identity::Session { id, .. } => write!(f, "Session({id})"),
            #[cfg(feature = "crypto")]
            Identity::Signed(r) => write!(f, "Signed({} {})", r.method, r.path),
        }
    }
}

impl Caller {
    /// The root user of `account`, already authenticated by the host application.
    pub fn account_root(account: AccountId) -> Self {
        Caller::from_identity(Identity::AccountRoot(account))
    }

    /// The host application administering the keep: it may create and list accounts.
    pub fn keep_admin() -> Self {
        Caller::from_identity(Identity::KeepAdmin)
    }

    /// The IAM user `name` of `account`, already authenticated by the host application. Every
    /// call is authorized by the user's policies; a call after the user is deleted fails.
    pub fn iam_user(account: AccountId, name: &str) -> Self {
        Caller::from_identity(Identity::IamUser {
            account,
            name: name.to_owned(),
        })
    }

    /// A caller holding an access key: the key must exist, be active and the secret match on
    /// every call (as AWS checks every signed request).
    pub fn access_key(access_key_id: &str, secret_access_key: &str) -> Self {
        Caller::from_identity(Identity::AccessKey {
            id: access_key_id.to_owned(),
            secret: zeroize::Zeroizing::new(secret_access_key.to_owned()),
        })
    }

    /// A caller holding temporary credentials from STS (`ASIA…` id, secret and session token).
    pub fn session(access_key_id: &str, secret_access_key: &str, session_token: &str) -> Self {
        Caller::from_identity(Identity::Session {
            id: access_key_id.to_owned(),
            secret: zeroize::Zeroizing::new(secret_access_key.to_owned()),
            token: session_token.to_owned(),
        })
    }

    /// A caller that proves itself with a SigV4-signed HTTP request (access key, or temporary
    /// credentials with `X-Amz-Security-Token`), as AWS's endpoints authenticate.
    #[cfg(feature = "crypto")]
    pub fn signed_request(request: crate::iam::sigv4::SignedRequest) -> Self {
        Caller::from_identity(Identity::Signed(Box::new(request)))
    }

    fn from_identity(identity: Identity) -> Self {
        Caller {
            identity,
            source_ip: "127.0.0.1".to_owned(),
            user_agent: format!("codekeep/{}", env!("CARGO_PKG_VERSION")),
            secure_transport: true,
        }
    }

    /// Sets the source IP address recorded for this caller's requests.
    ///
    /// # Errors
    /// `InvalidArgument` when `ip` is not an IPv4 or IPv6 address.
    pub fn with_source_ip(mut self, ip: &str) -> Result<Self> {
        ip.parse::<std::net::IpAddr>()
            .map_err(|_| Error::invalid(format!("`{ip}` is not an IP address")))?;
        ip.clone_into(&mut self.source_ip);
        Ok(self)
    }

    /// Sets the user agent recorded for this caller's requests.
    #[must_use]
    pub fn with_user_agent(mut self, agent: &str) -> Self {
        self.user_agent = agent.chars().take(1024).collect();
        self
    }

    /// Sets `aws:SecureTransport` (true by default: in-process calls do not cross a network).
    #[must_use]
    pub fn with_secure_transport(mut self, secure: bool) -> Self {
        self.secure_transport = secure;
        self
    }

    /// Parses a caller from JSON, as the C and Python bindings pass it:
    /// `{"AccountId": "111122223333"}` (that account's root), `{"AccountId": ..., "UserName":
    /// "alice"}` (an IAM user), `{"AccessKeyId": ..., "SecretAccessKey": ...}` or
    /// `{"Admin": true}`, with optional `"SourceIp"`, `"UserAgent"` and `"SecureTransport"`.
    ///
    /// # Errors
    /// `InvalidArgument` for anything else.
    pub fn from_json(value: &Value) -> Result<Self> {
        const MEMBERS: &[&str] = &[
            "AccountId",
            "UserName",
            "AccessKeyId",
            "SecretAccessKey",
            "SessionToken",
            "SignedRequest",
            "Admin",
            "SourceIp",
            "UserAgent",
            "SecureTransport",
        ];
        let obj = value
            .as_object()
            .ok_or_else(|| Error::invalid("a caller must be a JSON object"))?;
        for key in obj.keys() {
            if !MEMBERS.contains(&key.as_str()) {
                return Err(Error::invalid(format!("unknown caller member `{key}`")));
            }
        }
        let text = |name: &str| match obj.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(Error::invalid(format!(
                "caller member `{name}` must be a string"
            ))),
        };
        let token = text("SessionToken")?;
        #[cfg(feature = "crypto")]
        if let Some(signed) = obj.get("SignedRequest") {
            if obj.keys().any(|k| {
                [
                    "AccountId",
                    "UserName",
                    "AccessKeyId",
                    "SecretAccessKey",
                    "SessionToken",
                    "Admin",
                ]
                .contains(&k.as_str())
            }) {
                return Err(Error::invalid(
                    "`SignedRequest` stands alone: the signature names the credentials",
                ));
            }
            let request: crate::iam::sigv4::SignedRequest = serde_json::from_value(signed.clone())
                .map_err(|e| Error::invalid(format!("`SignedRequest` is not valid: {e}")))?;
            return Caller::signed_request(request).with_transport(obj);
        }
        let caller = match (
            text("AccountId")?,
            text("UserName")?,
            text("AccessKeyId")?,
            text("SecretAccessKey")?,
            obj.get("Admin"),
        ) {
            (Some(a), None, None, None, None) if token.is_none() => {
                Caller::account_root(a.parse()?)
            }
            (Some(a), Some(user), None, None, None) if token.is_none() => {
                Caller::iam_user(a.parse()?, user)
            }
            (None, None, Some(id), Some(secret), None) => match token {
                Some(token) => Caller::session(id, secret, token),
                None => Caller::access_key(id, secret),
            },
            (None, None, None, None, Some(Value::Bool(true))) if token.is_none() => {
                Caller::keep_admin()
            }
            _ => {
                return Err(Error::invalid(
                    "a caller needs `AccountId` (with an optional `UserName`), `AccessKeyId` with `SecretAccessKey` (and `SessionToken` for temporary credentials), or `Admin: true`",
                ));
            }
        };
        caller.with_transport(obj)
    }

    /// Applies `SourceIp`, `UserAgent` and `SecureTransport` from a caller JSON object.
    fn with_transport(mut self, obj: &serde_json::Map<String, Value>) -> Result<Self> {
        let text = |name: &str| match obj.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(Error::invalid(format!(
                "caller member `{name}` must be a string"
            ))),
        };
        if let Some(ip) = text("SourceIp")? {
            self = self.with_source_ip(ip)?;
        }
        if let Some(agent) = text("UserAgent")? {
            self = self.with_user_agent(agent);
        }
        if let Some(secure) = obj.get("SecureTransport") {
            let secure = secure
                .as_bool()
                .ok_or_else(|| Error::invalid("`SecureTransport` must be a boolean"))?;
            self = self.with_secure_transport(secure);
        }
        Ok(self)
    }

    /// Refuses a call that is not the one a signed request signed (other identities prove who
    /// is calling, not what the call is, so any call may use them).
    pub(crate) fn check_binding(
        &self,
        service: &str,
        operation: &str,
        input: &Value,
    ) -> Result<()> {
        match &self.identity {
            #[cfg(feature = "crypto")]
            Identity::Signed(request) => {
                crate::iam::sigv4::check_binding(request, service, operation, input)
            }
            _ => {
                let _ = (service, operation, input);
                Ok(())
            }
        }
    }

    /// Resolves the identity to the principal it is now: checks that the user still exists,
    /// that the access key is active and its secret right.
    pub(crate) fn resolve(
        &self,
        txn: &mut crate::store::Txn<'_>,
        keep: &crate::keep::KeepInner,
    ) -> Result<Principal> {
        match &self.identity {
            Identity::AccountRoot(account) => {
                // Only accounts of the keep have a root user (the organization's own id,
                // 000000000000, is not one).
                if !crate::keep::account_exists(txn, account.as_str())? {
                    return Err(invalid_token(account.as_str()));
                }
                Ok(Principal::Root(account.clone()))
            }
            Identity::KeepAdmin => Ok(Principal::KeepAdmin),
            Identity::IamUser { account, name } => {
                let user = crate::iam::users::load_user(txn, account.as_str(), name)?;
                Ok(Principal::from_user(account.clone(), user, None))
            }
            Identity::AccessKey { id, secret } => {
                #[cfg(feature = "crypto")]
                {
                    crate::iam::authenticate_access_key(txn, keep, id, secret)
                }
                #[cfg(not(feature = "crypto"))]
                {
                    let _ = (txn, keep, secret);
                    Err(invalid_token(id))
                }
            }
            #[cfg(feature = "crypto")]
            Identity::Signed(request) => crate::iam::authenticate_signed(txn, keep, request),
            Identity::Session { id, secret, token } => {
                #[cfg(feature = "crypto")]
                {
                    let now = keep.clock.now_millis();
                    crate::iam::sts::authenticate_session(txn, keep, id, secret, token, now)
                }
                #[cfg(not(feature = "crypto"))]
                {
                    let _ = (txn, keep, secret, token);
                    Err(invalid_token(id))
                }
            }
        }
    }

    /// The principal recorded for a call whose identity could not be resolved.
    pub(crate) fn unresolved_principal(&self) -> Principal {
        match &self.identity {
            Identity::AccountRoot(account) => Principal::Root(account.clone()),
            Identity::KeepAdmin => Principal::KeepAdmin,
            Identity::IamUser { account, name } => Principal::Unauthenticated {
                account: Some(account.clone()),
                access_key_id: None,
                user_name: Some(name.clone()),
            },
            #[cfg(feature = "crypto")]
            Identity::Signed(_) => Principal::Unauthenticated {
                account: None,
                access_key_id: None,
                user_name: None,
            },
            Identity::AccessKey { id, .. } | Identity::Session { id, .. } => {
                Principal::Unauthenticated {
                    account: None,
                    access_key_id: Some(id.clone()),
                    user_name: None,
                }
            }
        }
    }

    pub(crate) fn request_context(
        &self,
        principal: Principal,
        time_millis: i64,
        region: Region,
    ) -> RequestContext {
        RequestContext {
            principal,
            source_ip: self.source_ip.clone(),
            user_agent: self.user_agent.clone(),
            secure_transport: self.secure_transport,
            mfa_authenticated: false,
            time_millis,
            region,
            request_id: crate::id::uuid_v4(),
        }
    }
}

/// AWS's answer to an unknown or inactive access key.
pub(crate) fn invalid_token(id: &str) -> Error {
    let _ = id;
    Error::aws(
        crate::error::ErrorKind::AccessDenied,
        "InvalidClientTokenId",
        "The security token included in the request is invalid.",
    )
    .with_status(403)
}

/// Facts about one request, as the operation and the authorizer see them.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RequestContext {
    /// Who is calling.
    pub principal: Principal,
    /// `aws:SourceIp`.
    pub source_ip: String,
    /// `aws:UserAgent`.
    pub user_agent: String,
    /// `aws:SecureTransport`.
    pub secure_transport: bool,
    /// `aws:MultiFactorAuthPresent`.
    pub mfa_authenticated: bool,
    /// `aws:CurrentTime`, in milliseconds since the epoch.
    pub time_millis: i64,
    /// The keep's region.
    pub region: Region,
    /// The request id, also the audit record's `requestID`.
    pub request_id: String,
}
