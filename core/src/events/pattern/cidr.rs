//! `cidr` patterns: an IPv4 or IPv6 network in CIDR notation, matching event strings that
//! are addresses inside it (a string that is not an address matches nothing).

use std::net::IpAddr;

use super::invalid;
use crate::error::Result;

/// A network: its address with host bits cleared, and the prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    network: IpAddr,
    bits: u8,
}

impl Cidr {
    pub(crate) fn parse(text: &str) -> Result<Cidr> {
        let Some((address, bits)) = text.split_once('/') else {
            return Err(invalid(format!("Malformed CIDR, one '/' required: {text}")));
        };
        let bits: i64 = bits.parse().map_err(|_| {
            invalid(format!(
                "Malformed CIDR, mask bits must be an integer: {text}"
            ))
        })?;
        if bits < 0 {
            return Err(invalid(format!(
                "Malformed CIDR, mask bits must not be negative: {text}"
            )));
        }
        let network: IpAddr = address
            .parse()
            .map_err(|_| invalid(format!("Nonstandard IP address: {address}")))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let bits = u8::try_from(bits)
            .ok()
            .filter(|b| u32::from(*b) <= max)
            .ok_or_else(|| {
                invalid(format!(
                    "Malformed CIDR, mask bits must be between 0 and {max}: {text}"
                ))
            })?;
        Ok(Cidr {
            network: mask(network, bits),
            bits,
        })
    }

    pub(crate) fn contains(&self, text: &str) -> bool {
        text.parse::<IpAddr>()
            .is_ok_and(|address| self.contains_address(address))
    }

    pub(crate) fn contains_address(&self, address: IpAddr) -> bool {
        address.is_ipv4() == self.network.is_ipv4() && mask(address, self.bits) == self.network
    }
}

fn mask(address: IpAddr, bits: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let keep = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & keep).into())
        }
        IpAddr::V6(v6) => {
            let keep = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & keep).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_contain_their_addresses_only() {
        let net = Cidr::parse("10.0.0.0/24").unwrap();
        assert!(net.contains("10.0.0.255"));
        assert!(!net.contains("10.0.1.0"));
        assert!(!net.contains("not an ip"));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("192.0.2.1"));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:1::1"));
        assert!(!v6.contains("2001:db9::1"));
        assert!(!v6.contains("10.0.0.1"));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
    }
}
