//! The keep's front doors: turning credentials presented to a host application's server (git
//! HTTPS, SSH) into callers, and deciding a request without performing it.

use crate::api::{Authorization, Caller, authorize_explained};
use crate::error::Result;
use crate::policy::Context;

impl crate::Keep {
    /// Authenticates git HTTPS credentials (an IAM service-specific credential for
    /// `codecommit.amazonaws.com`) to the IAM user they belong to.
    ///
    /// # Errors
    /// `AccessDenied` (`InvalidClientTokenId`) for an unknown, inactive or wrong credential.
    #[cfg(feature = "crypto")]
    pub fn authenticate_git_https(&self, user_name: &str, password: &str) -> Result<Caller> {
        let inner = self.inner();
        let (account, user) = inner
            .meta
            .read(|txn| super::git_credentials::authenticate(txn, user_name, password))?;
        Ok(Caller::iam_user(account.parse()?, &user))
    }

    /// Authenticates an SSH user name presenting `public_key` (SSH wire format) to the IAM
    /// user it belongs to. The SSH user name is an SSH public key id (`APKA…`, as CodeCommit
    /// uses) or the IAM user's name.
    ///
    /// # Errors
    /// `AccessDenied` (`InvalidClientTokenId`) for an unknown or inactive key, a key that is
    /// not the one uploaded under that id or for that user, or a user name that is ambiguous
    /// across accounts for this key.
    pub fn authenticate_ssh(&self, ssh_user: &str, public_key: &[u8]) -> Result<Caller> {
        let inner = self.inner();
        let (account, user) = inner
            .meta
            .read(|txn| super::ssh_keys::authenticate(txn, ssh_user, public_key))?;
        Ok(Caller::iam_user(account.parse()?, &user))
    }

    /// Decides whether `caller` may perform `action` (e.g. `kms:Decrypt`) on `resource` (an
    /// ARN or `*`), with the request context a call would have plus the keys in `context`,
    /// without performing anything; explains the decision (matching statements, the deciding
    /// one, missing context keys).
    ///
    /// # Errors
    /// The caller's authentication errors; `Storage`.
    pub fn authorize(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        context: &Context,
    ) -> Result<Authorization> {
        authorize_explained(self.inner(), caller, action, resource, context)
    }
}
