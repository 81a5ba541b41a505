//! Where webhooks may go. A destination's host must match one of the allowed host patterns,
//! and every address it is reached at must be public, or inside a network allowed by name:
//! loopback, private, link-local (the cloud metadata address) and other special ranges are
//! refused unless the configuration lists them. The address checked is the address connected
//! to, so a name that resolves differently later cannot slip past the check.

use std::net::IpAddr;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::events::pattern::cidr::Cidr;

/// The keep's webhook allowance: nothing is allowed until hosts are named.
#[derive(Debug, Clone, Default)]
pub struct WebhookAllowance {
    hosts: Vec<String>,
    networks: Vec<Cidr>,
}

/// Ranges that are not the public internet (RFC 6890's special-purpose registries).
const SPECIAL_V4: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/3",
];
const SPECIAL_V6: &[&str] = &[
    "::/127",
    "64:ff9b::/96",
    "100::/64",
    "2001:db8::/32",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

impl WebhookAllowance {
    /// Allows nothing.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Also allows hosts matching `pattern`: a host name or address literal (`hooks.example.com`,
    /// `127.0.0.1`), `*.example.com` for its subdomains, or `*` for any host.
    ///
    /// # Errors
    /// `InvalidArgument` for an empty pattern or a `*` anywhere but a leading `*.` or alone.
    pub fn allow_host(mut self, pattern: &str) -> Result<Self> {
        let pattern = pattern.trim().to_ascii_lowercase();
        let rest = pattern.strip_prefix("*.").unwrap_or(&pattern);
        if pattern.is_empty() || (pattern != "*" && (rest.is_empty() || rest.contains('*'))) {
            return Err(Error::invalid(format!(
                "webhook host pattern {pattern:?} must be a host, *.domain or *"
            )));
        }
        self.hosts.push(pattern);
        Ok(self)
    }

    /// Also allows addresses inside `cidr` (e.g. `127.0.0.0/8`), which loopback, private and
    /// link-local addresses need.
    ///
    /// # Errors
    /// `InvalidArgument` when `cidr` is not a network in CIDR notation.
    pub fn allow_network(mut self, cidr: &str) -> Result<Self> {
        let network = Cidr::parse(cidr)
            .map_err(|e| Error::invalid(format!("webhook network {cidr:?}: {}", e.message())))?;
        self.networks.push(network);
        Ok(self)
    }

    /// Reads `{"hosts": [...], "networks": [...]}` (the bindings' form).
    ///
    /// # Errors
    /// `InvalidArgument` for another shape or an invalid pattern or network.
    pub fn from_json(value: &Value) -> Result<Self> {
        let list = |member: &str| -> Result<Vec<&str>> {
            match value.get(member) {
                None => Ok(Vec::new()),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| {
                        v.as_str().ok_or_else(|| {
                            Error::invalid(format!("webhooks.{member} must hold strings"))
                        })
                    })
                    .collect(),
                Some(_) => Err(Error::invalid(format!(
                    "webhooks.{member} must be a list of strings"
                ))),
            }
        };
        let mut allowance = Self::new();
        for host in list("hosts")? {
            allowance = allowance.allow_host(host)?;
        }
        for network in list("networks")? {
            allowance = allowance.allow_network(network)?;
        }
        Ok(allowance)
    }

    /// Whether `host` (lowercase) matches an allowed pattern.
    pub(crate) fn permits_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.hosts.iter().any(|pattern| {
            pattern == "*"
                || *pattern == host
                || pattern
                    .strip_prefix('*')
                    .is_some_and(|suffix| host.ends_with(suffix))
        })
    }

    /// Whether a webhook may connect to `address`.
    pub(crate) fn permits_address(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 @ IpAddr::V4(_) => v4,
        };
        !is_special(address) || self.networks.iter().any(|n| n.contains_address(address))
    }
}

fn is_special(address: IpAddr) -> bool {
    let ranges = if address.is_ipv4() {
        SPECIAL_V4
    } else {
        SPECIAL_V6
    };
    ranges
        .iter()
        .filter_map(|r| Cidr::parse(r).ok())
        .any(|r| r.contains_address(address))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_by_name_or_subdomain() {
        let allow = WebhookAllowance::new()
            .allow_host("hooks.example.com")
            .unwrap()
            .allow_host("*.corp.example")
            .unwrap();
        assert!(allow.permits_host("HOOKS.example.com"));
        assert!(allow.permits_host("ci.corp.example"));
        assert!(!allow.permits_host("corp.example"));
        assert!(!allow.permits_host("evil-hooks.example.com"));
        assert!(!WebhookAllowance::new().permits_host("hooks.example.com"));
        assert!(WebhookAllowance::new().allow_host("a*b").is_err());
        assert!(WebhookAllowance::new().allow_host("*.").is_err());
    }

    #[test]
    fn special_addresses_need_their_network() {
        let allow = WebhookAllowance::new();
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "169.254.169.254",
            "192.168.1.1",
            "::1",
            "::ffff:127.0.0.1",
            "fd00::1",
            "fe80::1",
            "0.0.0.0",
        ] {
            assert!(
                !allow.permits_address(refused.parse().unwrap()),
                "{refused}"
            );
        }
        assert!(allow.permits_address("93.184.216.34".parse().unwrap()));
        assert!(allow.permits_address("2606:4700::1111".parse().unwrap()));
        let loopback = WebhookAllowance::new()
            .allow_network("127.0.0.0/8")
            .unwrap();
        assert!(loopback.permits_address("127.0.0.1".parse().unwrap()));
        assert!(loopback.permits_address("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!loopback.permits_address("10.0.0.1".parse().unwrap()));
    }
}
