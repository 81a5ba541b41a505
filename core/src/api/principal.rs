//! The principal a request resolves to, and what the policy engine and CloudTrail see of it.

use serde_json::{Value, json};

use crate::arn::AccountId;

/// The authenticated principal of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Principal {
    /// An account's root user.
    Root(AccountId),
    /// The host application administering the keep.
    KeepAdmin,
    /// An IAM user.
    User {
        /// The user's account.
        account: AccountId,
        /// The user name.
        name: String,
        /// The unique id (`AIDA…`).
        user_id: String,
        /// The user's ARN.
        arn: String,
        /// The user's tags (`aws:PrincipalTag/*`).
        tags: std::collections::BTreeMap<String, String>,
        /// The access key the call was made with, if any.
        access_key_id: Option<String>,
        /// Set when the credentials are temporary (GetSessionToken).
        session: Option<SessionFacts>,
    },
    /// A role session from AssumeRole.
    AssumedRole {
        /// The role's account.
        account: AccountId,
        /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
        arn: String,
        /// The session.
        session: Box<RoleSession>,
    },
    /// A caller whose credentials were refused; allowed nothing.
    Unauthenticated {
        /// The account it claimed, if known.
        account: Option<AccountId>,
        /// The access key it presented, if any.
        access_key_id: Option<String>,
        /// The user name it claimed, if any.
        user_name: Option<String>,
    },
}

/// Facts about a user's temporary session (GetSessionToken).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionFacts {
    /// When the session was issued, in milliseconds.
    pub issued: i64,
    /// When MFA was proven, if it was.
    pub mfa_at: Option<i64>,
    /// The source identity, if one was set.
    pub source_identity: Option<String>,
}

/// A role session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoleSession {
    /// The role's ARN (with its path).
    pub role_arn: String,
    /// The role's name.
    pub role_name: String,
    /// The role's unique id (`AROA…`).
    pub role_id: String,
    /// The role's own tags.
    pub role_tags: std::collections::BTreeMap<String, String>,
    /// The session name.
    pub session_name: String,
    /// Inline session policy documents.
    pub policies: Vec<String>,
    /// Managed session policy ARNs.
    pub policy_arns: Vec<String>,
    /// Session tags.
    pub tags: std::collections::BTreeMap<String, String>,
    /// Session tag keys that carry over to chained sessions.
    pub transitive_tag_keys: Vec<String>,
    /// True when a role session assumed this role.
    pub chained: bool,
    /// When the session was issued, in milliseconds.
    pub issued: i64,
    /// When MFA was proven, if it was.
    pub mfa_at: Option<i64>,
    /// The source identity, if one was set.
    pub source_identity: Option<String>,
    /// The temporary access key id.
    pub access_key_id: String,
}

impl RoleSession {
    /// `aws:userid` of the session: `ROLEID:SESSION`.
    pub fn user_id(&self) -> String {
        format!("{}:{}", self.role_id, self.session_name)
    }

    /// The principal tags: the role's tags, overridden by session tags.
    fn principal_tags(&self) -> std::collections::BTreeMap<String, String> {
        let mut tags = self.role_tags.clone();
        for (k, v) in &self.tags {
            tags.retain(|old, _| !old.eq_ignore_ascii_case(k));
            tags.insert(k.clone(), v.clone());
        }
        tags
    }
}

impl Principal {
    #[cfg_attr(
        not(feature = "crypto"),
        expect(dead_code, reason = "only STS (with crypto) makes sessions")
    )]
    pub(crate) fn set_session(&mut self, facts: SessionFacts) {
        if let Principal::User { session, .. } = self {
            *session = Some(facts);
        }
    }

    pub(crate) fn from_user(
        account: AccountId,
        user: crate::iam::UserRecord,
        access_key_id: Option<String>,
    ) -> Principal {
        Principal::User {
            account,
            name: user.name,
            user_id: user.user_id,
            arn: user.arn,
            tags: user.tags,
            access_key_id,
            session: None,
        }
    }

    /// The account the principal belongs to (none for the keep administrator).
    pub fn account(&self) -> Option<&AccountId> {
        match self {
            Principal::Root(a)
            | Principal::User { account: a, .. }
            | Principal::AssumedRole { account: a, .. } => Some(a),
            Principal::KeepAdmin | Principal::Unauthenticated { .. } => None,
        }
    }

    /// The IAM user name, for IAM users.
    pub fn user_name(&self) -> Option<&str> {
        match self {
            Principal::User { name, .. } => Some(name),
            _ => None,
        }
    }

    /// The principal's ARN.
    pub fn arn(&self) -> String {
        match self {
            Principal::Root(a) => format!("arn:aws:iam::{a}:root"),
            Principal::KeepAdmin => "arn:aws:iam::000000000000:root".to_owned(),
            Principal::User { arn, .. } | Principal::AssumedRole { arn, .. } => arn.clone(),
            Principal::Unauthenticated { .. } => "anonymous".to_owned(),
        }
    }

    /// A key naming the principal and its policies for caches: a role session's session
    /// policies are part of it.
    pub(crate) fn cache_key(&self) -> String {
        match self {
            Principal::AssumedRole { arn, session, .. } => {
                let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
                for part in session.policies.iter().chain(&session.policy_arns) {
                    digest.update(part.as_bytes());
                    digest.update(&[0]);
                }
                format!("{arn}\n{}", crate::id::hex(digest.finish().as_ref()))
            }
            _ => self.arn(),
        }
    }

    /// The principal as the policy engine sees it; `None` for the keep administrator.
    pub(crate) fn policy_principal(&self) -> crate::policy::PrincipalInfo {
        use crate::policy::{PrincipalInfo, PrincipalKind};
        let (account, kind) = match self {
            Principal::Root(a) => (a.to_string(), PrincipalKind::Root),
            Principal::User { account, .. } => (account.to_string(), PrincipalKind::User),
            Principal::AssumedRole {
                account, session, ..
            } => (
                account.to_string(),
                PrincipalKind::RoleSession {
                    role_arn: session.role_arn.clone(),
                },
            ),
            Principal::KeepAdmin | Principal::Unauthenticated { .. } => {
                (String::new(), PrincipalKind::Service)
            }
        };
        PrincipalInfo {
            arn: self.arn(),
            account,
            kind,
        }
    }

    /// The global condition keys that describe the principal.
    pub(crate) fn add_context(&self, ctx: &mut crate::policy::Context, now_millis: i64) {
        // MFA keys exist only for temporary credentials, as in AWS.
        let add_mfa = |ctx: &mut crate::policy::Context, mfa_at: Option<i64>, issued: i64| {
            ctx.insert(
                "aws:MultiFactorAuthPresent",
                if mfa_at.is_some() { "true" } else { "false" },
            );
            if let Some(at) = mfa_at {
                let age = (now_millis - at).max(0) / 1000;
                ctx.insert("aws:MultiFactorAuthAge", &age.to_string());
            }
            ctx.insert("aws:TokenIssueTime", &crate::clock::iso8601(issued));
        };
        match self {
            Principal::Root(a) => {
                ctx.insert("aws:PrincipalArn", &self.arn());
                ctx.insert("aws:PrincipalAccount", a.as_str());
                ctx.insert("aws:PrincipalType", "Account");
                ctx.insert("aws:userid", a.as_str());
            }
            Principal::User {
                account,
                name,
                user_id,
                arn,
                tags,
                session,
                ..
            } => {
                if let Some(facts) = session {
                    add_mfa(ctx, facts.mfa_at, facts.issued);
                    if let Some(si) = &facts.source_identity {
                        ctx.insert("aws:SourceIdentity", si);
                    }
                }
                ctx.insert("aws:PrincipalArn", arn);
                ctx.insert("aws:PrincipalAccount", account.as_str());
                ctx.insert("aws:PrincipalType", "User");
                ctx.insert("aws:userid", user_id);
                ctx.insert("aws:username", name);
                for (k, v) in tags {
                    ctx.insert(&format!("aws:PrincipalTag/{k}"), v);
                }
            }
            Principal::AssumedRole {
                account, session, ..
            } => {
                add_mfa(ctx, session.mfa_at, session.issued);
                ctx.insert("aws:PrincipalArn", &session.role_arn);
                ctx.insert("aws:PrincipalAccount", account.as_str());
                ctx.insert("aws:PrincipalType", "AssumedRole");
                ctx.insert("aws:userid", &session.user_id());
                for (k, v) in session.principal_tags() {
                    ctx.insert(&format!("aws:PrincipalTag/{k}"), &v);
                }
                if let Some(si) = &session.source_identity {
                    ctx.insert("aws:SourceIdentity", si);
                }
            }
            Principal::KeepAdmin | Principal::Unauthenticated { .. } => {}
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
            Principal::User {
                account,
                name,
                user_id,
                arn,
                access_key_id,
                ..
            } => json!({
                "type": "IAMUser",
                "principalId": user_id,
                "arn": arn,
                "accountId": account.as_str(),
                "accessKeyId": access_key_id.as_deref().unwrap_or(""),
                "userName": name,
            }),
            Principal::AssumedRole {
                account,
                arn,
                session,
            } => json!({
                "type": "AssumedRole",
                "principalId": session.user_id(),
                "arn": arn,
                "accountId": account.as_str(),
                "accessKeyId": session.access_key_id,
                "sessionContext": {
                    "sessionIssuer": {
                        "type": "Role",
                        "principalId": session.role_id,
                        "arn": session.role_arn,
                        "accountId": account.as_str(),
                        "userName": session.role_name,
                    },
                    "attributes": {
                        "creationDate": crate::clock::iso8601(session.issued),
                        "mfaAuthenticated": if session.mfa_at.is_some() { "true" } else { "false" },
                    },
                },
            }),
            Principal::Unauthenticated {
                account,
                access_key_id,
                user_name,
            } => {
                let mut identity = json!({"type": "Unknown", "principalId": ""});
                if let Some(a) = account {
                    crate::api::set_member(&mut identity, "accountId", json!(a.as_str()));
                }
                if let Some(k) = access_key_id {
                    crate::api::set_member(&mut identity, "accessKeyId", json!(k));
                }
                if let Some(u) = user_name {
                    crate::api::set_member(&mut identity, "userName", json!(u));
                }
                identity
            }
        }
    }
}
