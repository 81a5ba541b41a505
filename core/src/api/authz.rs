//! The authorization hook: the single place where the policy engine plugs in.

use super::caller::{Principal, RequestContext};

/// One authorization question: may `principal` perform `action` on `resources`?
#[derive(Debug)]
#[non_exhaustive]
pub struct AuthzRequest<'a> {
    /// Who asks.
    pub principal: &'a Principal,
    /// The IAM action, e.g. `kms:Decrypt`.
    pub action: &'a str,
    /// Resource ARNs, or `*` for actions without a resource.
    pub resources: &'a [String],
    /// The request context (source IP, time, ...), for condition keys.
    pub context: &'a RequestContext,
}

/// The answer to an [`AuthzRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// The request may proceed.
    Allow,
    /// The request is refused; `reason` completes "... because `reason`".
    Deny {
        /// Why, in words for the caller.
        reason: String,
    },
}

/// Decides authorization requests.
pub trait Authorizer: Send + Sync + std::fmt::Debug {
    /// Decides one request.
    fn authorize(&self, request: &AuthzRequest<'_>) -> Decision;
}

/// The authorizer a keep uses until identity policies exist: an account's root may do
/// everything inside its own account and nothing in another; the keep administrator may do
/// everything.
#[derive(Debug, Default, Clone, Copy)]
#[non_exhaustive]
pub struct AccountRootAuthorizer;

impl Authorizer for AccountRootAuthorizer {
    fn authorize(&self, request: &AuthzRequest<'_>) -> Decision {
        let account = match request.principal {
            Principal::KeepAdmin => return Decision::Allow,
            Principal::Root(account) => account.as_str(),
        };
        for resource in request.resources {
            if resource == "*" {
                continue;
            }
            let owner = resource
                .parse::<crate::arn::Arn>()
                .map(|arn| arn.account().to_owned());
            match owner {
                Ok(owner) if owner == account => {}
                Ok(_) => {
                    return Decision::Deny {
                        reason: "no resource-based policy allows the action from another account"
                            .to_owned(),
                    };
                }
                Err(_) => {
                    return Decision::Deny {
                        reason: "the resource is not a valid ARN".to_owned(),
                    };
                }
            }
        }
        Decision::Allow
    }
}
