//! Scalar values of the configuration file that are richer than a YAML string or number:
//! durations (`10s`, `1m30s`), RFC 3339 timestamps, product id lists (`42`, `1-1000`), and IP
//! networks (`10.0.0.0/8` or a bare address). Each parses while the YAML is being read, so a bad
//! value is reported by serde_yaml with the line and column where it stands.

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A length of time written the human way: `250ms`, `10s`, `1m`, `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(text.trim())
            .map(HumanDuration)
            .map_err(|e| {
                de::Error::custom(format!(
                    "expected a duration such as 10s, 500ms or 1m, found {text:?} ({e})"
                ))
            })
    }
}

/// A point in time written as RFC 3339, e.g. `2026-11-22T12:00:00Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub SystemTime);

impl Timestamp {
    /// Milliseconds since the Unix epoch (0 for times before it).
    pub fn unix_millis(self) -> u64 {
        self.0
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_rfc3339_seconds(self.0))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339_weak(text.trim())
            .map(Timestamp)
            .map_err(|e| {
                de::Error::custom(format!(
                    "expected an RFC 3339 time such as 2026-11-22T12:00:00Z, found {text:?} ({e})"
                ))
            })
    }
}

/// One entry of a product id list: a single id (`42`) or an inclusive range (`1-1000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// First id, inclusive.
    pub first: u64,
    /// Last id, inclusive.
    pub last: u64,
}

impl IdRange {
    /// Whether `id` lies in this range.
    pub fn contains(&self, id: u64) -> bool {
        (self.first..=self.last).contains(&id)
    }

    /// How many ids the range holds (`u64::MAX` for the whole id space, one more than fits).
    pub fn len(&self) -> u64 {
        (self.last - self.first).saturating_add(1)
    }

    /// A range always holds at least one id.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl std::str::FromStr for IdRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let expected =
            || format!("expected a product id (42) or an id range (1-1000), found {text:?}");
        let text = text.trim();
        let (first, last) = match text.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (text, text),
        };
        // Digits only: `str::parse` alone would also read `+5` as 5.
        let id = |digits: &str| {
            Some(digits)
                .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|d| d.parse::<u64>().ok())
                .ok_or_else(expected)
        };
        let (first, last) = (id(first)?, id(last)?);
        if last < first {
            return Err(format!("id range {text:?} ends before it starts"));
        }
        Ok(IdRange { first, last })
    }
}

impl<'de> Deserialize<'de> for IdRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RangeVisitor;
        impl Visitor<'_> for RangeVisitor {
            type Value = IdRange;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a product id (42) or an id range (1-1000)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IdRange, E> {
                Ok(IdRange { first: v, last: v })
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IdRange, E> {
                u64::try_from(v)
                    .map(|v| IdRange { first: v, last: v })
                    .map_err(|_| E::custom(format!("product ids are not negative, found {v}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IdRange, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(RangeVisitor)
    }
}

/// An IP network; a bare address means that one address (`/32` or `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network(pub IpNet);

impl std::str::FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Ok(net) = text.parse::<IpNet>() {
            return Ok(Network(net.trunc()));
        }
        text.parse::<IpAddr>()
            .map(|ip| Network(IpNet::from(ip)))
            .map_err(|_| {
                format!("expected an IP address or network such as 10.0.0.0/8, found {text:?}")
            })
    }
}

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// A user id as written in the file: `123` and `"u-123"` are both accepted and kept as text,
/// because the login token's `sub` claim is text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidValue(pub String);

impl<'de> Deserialize<'de> for UidValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct UidVisitor;
        impl Visitor<'_> for UidVisitor {
            type Value = UidValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a user id (a number or a string)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<UidValue, E> {
                Ok(UidValue(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<UidValue, E> {
                Ok(UidValue(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<UidValue, E> {
                if v.is_empty() {
                    return Err(E::custom("a user id is not empty"));
                }
                Ok(UidValue(v.to_string()))
            }
        }
        d.deserialize_any(UidVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_ranges_parse_single_and_span() {
        assert_eq!(
            "42".parse::<IdRange>().unwrap(),
            IdRange {
                first: 42,
                last: 42
            }
        );
        assert_eq!(
            "1-1000".parse::<IdRange>().unwrap(),
            IdRange {
                first: 1,
                last: 1000
            }
        );
        assert!("9-3".parse::<IdRange>().is_err());
        assert!("a-b".parse::<IdRange>().is_err());
        // Found by the property tests (tests/properties): a sign was read as part of an id.
        assert!("0-+0".parse::<IdRange>().is_err());
        assert!("+5".parse::<IdRange>().is_err());
        assert_eq!(
            " 7 - 09 ".parse::<IdRange>().unwrap(),
            IdRange { first: 7, last: 9 }
        );
    }

    #[test]
    fn networks_accept_bare_addresses() {
        let net: Network = "127.0.0.1".parse().unwrap();
        assert!(net.0.contains(&"127.0.0.1".parse::<IpAddr>().unwrap()));
        assert!(!net.0.contains(&"127.0.0.2".parse::<IpAddr>().unwrap()));
        let net: Network = "10.1.2.3/8".parse().unwrap();
        assert_eq!(net.0.to_string(), "10.0.0.0/8");
    }
}
