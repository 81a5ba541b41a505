//! Who is calling: the caller a client acts as, the principal it resolves to, and the request
//! context an operation and the authorizer see.

use serde_json::{Value, json};

use crate::arn::{AccountId, Region};
use crate::error::{Error, Result};

/// The identity a [`super::Client`] acts as, plus transport facts the host application knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    identity: Identity,
    source_ip: String,
    user_agent: String,
    secure_transport: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Identity {
    /// The root user of an account (trusted: the host application authenticated it).
    AccountRoot(AccountId),
    /// The host application itself, administering the keep (accounts, audit verification).
    KeepAdmin,
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

    /// Parses a caller from JSON, as the C and Python bindings pass it:
    /// `{"AccountId": "111122223333"}` (that account's root) or `{"Admin": true}`, with optional
    /// `"SourceIp"` and `"UserAgent"`.
    ///
    /// # Errors
    /// `InvalidArgument` for anything else.
    pub fn from_json(value: &Value) -> Result<Self> {
        let obj = value
            .as_object()
            .ok_or_else(|| Error::invalid("a caller must be a JSON object"))?;
        for key in obj.keys() {
            if !["AccountId", "Admin", "SourceIp", "UserAgent"].contains(&key.as_str()) {
                return Err(Error::invalid(format!("unknown caller member `{key}`")));
            }
        }
        let mut caller = match (obj.get("AccountId"), obj.get("Admin")) {
            (Some(Value::String(a)), None) => Caller::account_root(a.parse()?),
            (None, Some(Value::Bool(true))) => Caller::keep_admin(),
            _ => {
                return Err(Error::invalid(
                    "a caller needs either `AccountId` (a 12-digit string) or `Admin: true`",
                ));
            }
        };
        if let Some(ip) = obj.get("SourceIp") {
            let ip = ip
                .as_str()
                .ok_or_else(|| Error::invalid("`SourceIp` must be a string"))?;
            caller = caller.with_source_ip(ip)?;
        }
        if let Some(agent) = obj.get("UserAgent") {
            let agent = agent
                .as_str()
                .ok_or_else(|| Error::invalid("`UserAgent` must be a string"))?;
            caller = caller.with_user_agent(agent);
        }
        Ok(caller)
    }

    pub(crate) fn request_context(&self, time_millis: i64, region: Region) -> RequestContext {
        let principal = match &self.identity {
            Identity::AccountRoot(account) => Principal::Root(account.clone()),
            Identity::KeepAdmin => Principal::KeepAdmin,
        };
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

/// The authenticated principal of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Principal {
    /// An account's root user.
    Root(AccountId),
    /// The host application administering the keep.
    KeepAdmin,
}

impl Principal {
    /// The account the principal belongs to (none for the keep administrator).
    pub fn account(&self) -> Option<&AccountId> {
        match self {
            Principal::Root(a) => Some(a),
            Principal::KeepAdmin => None,
        }
    }

    /// The principal's ARN.
    pub fn arn(&self) -> String {
        match self {
            Principal::Root(a) => format!("arn:aws:iam::{a}:root"),
            Principal::KeepAdmin => "arn:aws:iam::000000000000:root".to_owned(),
        }
    }

    /// CloudTrail's `userIdentity` element.
    pub fn user_identity(&self) -> Value {
        match self {
            Principal::Root(a) => json!({
                "type": "Root",
                "principalId": a.as_str(),
                "arn": self.arn(),
                "accountId": a.as_str(),
                "accessKeyId": "",
            }),
            Principal::KeepAdmin => json!({
                "type": "AWSService",
                "invokedBy": "codekeep.keep-admin",
                "principalId": "codekeep-admin",
            }),
        }
    }
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
