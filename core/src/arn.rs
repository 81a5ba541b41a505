//! Amazon Resource Names, account ids and regions as parsed newtypes.
//!
//! Once you hold an [`Arn`], an [`AccountId`] or a [`Region`], it is valid: `FromStr` is the only
//! fallible constructor and `Display` round-trips with it.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, ErrorKind};

/// A 12-digit AWS account id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(String);

impl AccountId {
    /// Draws a fresh random account id (never starting with 0, so it reads as a number).
    pub fn random() -> Self {
        let bytes = crate::id::random_bytes::<8>();
        let mut n = u64::from_be_bytes(bytes) % 900_000_000_000;
        n += 100_000_000_000;
        AccountId(n.to_string())
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for AccountId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(AccountId(s.to_owned()))
        } else {
            Err(Error::invalid(format!(
                "`{s}` is not a 12-digit account id"
            )))
        }
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for AccountId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// An AWS region name such as `us-east-1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region(String);

impl Region {
    /// The region a keep uses when none is configured.
    pub fn default_region() -> Self {
        Region("us-east-1".to_owned())
    }

    /// The region as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Region {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok {
            Ok(Region(s.to_owned()))
        } else {
            Err(Error::invalid(format!("`{s}` is not a region name")))
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Region {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// An Amazon Resource Name: `arn:partition:service:region:account:resource`.
///
/// Region and account may be empty (IAM ARNs have no region, S3 ARNs no account).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Arn {
    text: String,
    // Byte offsets of the five colons that separate the six fields.
    colons: [usize; 5],
}

impl Arn {
    /// Builds an ARN from its parts.
    ///
    /// # Errors
    /// `InvalidArgument` when a part contains a character an ARN cannot hold there.
    pub fn from_parts(
        partition: &str,
        service: &str,
        region: &str,
        account: &str,
        resource: &str,
    ) -> Result<Self, Error> {
        format!("arn:{partition}:{service}:{region}:{account}:{resource}").parse()
    }

    /// The partition, `aws` by default.
    pub fn partition(&self) -> &str {
        self.field(0)
    }

    /// The service namespace, e.g. `kms`.
    pub fn service(&self) -> &str {
        self.field(1)
    }

    /// The region, possibly empty.
    pub fn region(&self) -> &str {
        self.field(2)
    }

    /// The account id, possibly empty.
    pub fn account(&self) -> &str {
        self.field(3)
    }

    /// The resource part, e.g. `key/1234abcd-...`.
    pub fn resource(&self) -> &str {
        self.field(4)
    }

    /// The ARN as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn field(&self, index: usize) -> &str {
        // Field i runs from after colon i to colon i+1 (or the end for the resource).
        let start = self.colons.get(index).map_or(0, |c| c + 1);
        let end = self
            .colons
            .get(index + 1)
            .copied()
            .unwrap_or(self.text.len());
        self.text.get(start..end).unwrap_or_default()
    }
}

impl FromStr for Arn {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |why: &str| {
            Error::aws(
                ErrorKind::InvalidArgument,
                "InvalidArnException",
                format!("`{s}` is not a valid ARN: {why}"),
            )
        };
        if s.len() > 2048 {
            return Err(bad("longer than 2048 characters"));
        }
        if s.chars().any(char::is_control) {
            return Err(bad("contains a control character"));
        }
        let mut colons = [0usize; 5];
        let mut found = 0usize;
        for (i, b) in s.bytes().enumerate() {
            if b == b':' {
                if found == 0 && i != 3 {
                    return Err(bad("must start with `arn:`"));
                }
                if found < 5 {
                    if let Some(slot) = colons.get_mut(found) {
                        *slot = i;
                    }
                    found += 1;
                }
                if found == 5 {
                    break;
                }
            }
        }
        if found < 5 || !s.starts_with("arn:") {
            return Err(bad("must have six colon-separated parts"));
        }
        let arn = Arn {
            text: s.to_owned(),
            colons,
        };
        if arn.partition().is_empty() || arn.service().is_empty() || arn.resource().is_empty() {
            return Err(bad("partition, service and resource must not be empty"));
        }
        let fine = |p: &str| p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !fine(arn.partition()) || !fine(arn.service()) || !fine(arn.region()) {
            return Err(bad(
                "partition, service and region may hold only letters, digits and `-`",
            ));
        }
        if !arn.account().is_empty() && !arn.account().bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("the account must be digits"));
        }
        Ok(arn)
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl AsRef<str> for Arn {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parses_the_parts() {
        let arn: Arn = "arn:aws:kms:us-east-1:111122223333:key/abc"
            .parse()
            .unwrap();
        assert_eq!(arn.partition(), "aws");
        assert_eq!(arn.service(), "kms");
        assert_eq!(arn.region(), "us-east-1");
        assert_eq!(arn.account(), "111122223333");
        assert_eq!(arn.resource(), "key/abc");
        let iam: Arn = "arn:aws:iam::111122223333:user/a:b".parse().unwrap();
        assert_eq!(iam.region(), "");
        assert_eq!(iam.resource(), "user/a:b");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "arn",
            "arn:aws:kms",
            "xrn:aws:kms:r:1:x",
            "arn::kms:r:1:x",
            "arn:aws:kms:r:12a:x",
        ] {
            assert!(bad.parse::<Arn>().is_err(), "{bad}");
        }
        assert!("12345678901".parse::<AccountId>().is_err());
        assert!("Us-East-1".parse::<Region>().is_err());
    }

    proptest! {
        #[test]
        fn arn_display_round_trips(
            service in "[a-z][a-z0-9-]{0,10}",
            region in "([a-z]{2}-[a-z]+-[0-9])?",
            account in "([0-9]{12})?",
            resource in "[a-zA-Z0-9/:_.*-]{1,40}",
        ) {
            let arn = Arn::from_parts("aws", &service, &region, &account, &resource).unwrap();
            let again: Arn = arn.to_string().parse().unwrap();
            prop_assert_eq!(&again, &arn);
            prop_assert_eq!(again.resource(), resource.as_str());
        }

        #[test]
        fn account_round_trips(n in 100_000_000_000u64..1_000_000_000_000) {
            let a: AccountId = n.to_string().parse().unwrap();
            prop_assert_eq!(a.to_string(), n.to_string());
        }
    }

    #[test]
    fn random_accounts_are_valid() {
        for _ in 0..100 {
            let a = AccountId::random();
            assert_eq!(a.as_str().parse::<AccountId>().unwrap(), a);
        }
    }
}
