//! A sandbox's resolver settings, as `docker run --dns`, `--dns-search` and
//! `--dns-option` give them: upstream servers for 127.0.0.11, and the
//! `search` and `options` lines of the resolv.conf netd writes. Each value
//! is checked here, so nothing that reaches a resolv.conf can add a line of
//! its own or a directive the resolver would read differently.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Invalid, invalid};

/// At most this many of each (`--dns`, `--dns-search`, `--dns-option`):
/// more than a resolver reads, far below anything that costs.
pub const MAX_RESOLVER_ITEMS: usize = 16;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolver {
    /// Where 127.0.0.11 forwards this sandbox's names that are not local,
    /// instead of its networks' servers or the daemon's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<IpAddr>,
    /// The `search` line of its resolv.conf, instead of the host's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<SearchDomain>,
    /// The `options` line of its resolv.conf (netd's `ndots:0` unless one
    /// of these sets `ndots`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<ResolvOption>,
}

impl Resolver {
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty() && self.search.is_empty() && self.options.is_empty()
    }

    /// Parse the request's strings; the error names the flag and value.
    pub fn parse(
        servers: &[String],
        search: &[String],
        options: &[String],
    ) -> Result<Self, Invalid> {
        Ok(Resolver {
            servers: parse_servers("--dns", servers)?,
            search: parse_all("--dns-search", search)?,
            options: parse_all("--dns-option", options)?,
        })
    }

    /// The resolv.conf `options` netd writes: these, and `ndots:0` unless
    /// one of them sets ndots (names of sandboxes are single labels, asked
    /// as they are before any search domain).
    pub fn options_line(&self) -> Vec<String> {
        let mut out: Vec<String> = self.options.iter().map(|o| o.to_string()).collect();
        if !self.options.iter().any(|o| o.name() == "ndots") {
            out.push("ndots:0".into());
        }
        out
    }
}

/// Upstream server addresses (`--dns IP`, repeatable; port 53, as Docker and
/// podman take them).
pub fn parse_servers(flag: &str, values: &[String]) -> Result<Vec<IpAddr>, Invalid> {
    let parsed: Vec<IpAddr> = parse_all(flag, values)?;
    if let Some(a) = parsed
        .iter()
        .find(|a| a.is_unspecified() || a.is_multicast())
    {
        return invalid(format!(
            "{flag} {a}: not the address of a DNS server (unspecified or multicast)"
        ));
    }
    Ok(parsed)
}

fn parse_all<T: FromStr>(flag: &str, values: &[String]) -> Result<Vec<T>, Invalid>
where
    T::Err: fmt::Display,
{
    if values.len() > MAX_RESOLVER_ITEMS {
        return invalid(format!(
            "{flag}: {} given, at most {MAX_RESOLVER_ITEMS}",
            values.len()
        ));
    }
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        match v.parse::<T>() {
            Ok(t) => out.push(t),
            Err(e) => return invalid(format!("{flag} {v:?}: {e}")),
        }
    }
    Ok(out)
}

/// A domain of a resolv.conf `search` line: labels of letters, digits,
/// `-` and `_` (1-63 bytes, not starting or ending with `-`), 253 bytes at
/// most, an optional final dot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SearchDomain(String);

impl FromStr for SearchDomain {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bare = s.strip_suffix('.').unwrap_or(s);
        if bare.is_empty() || bare.len() > 253 {
            return Err("a search domain is 1 to 253 bytes".into());
        }
        for label in bare.split('.') {
            let ok_chars = label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if label.is_empty()
                || label.len() > 63
                || !ok_chars
                || label.starts_with('-')
                || label.ends_with('-')
            {
                return Err(format!(
                    "label {label:?} is not a DNS label (letters, digits, '-', '_'; 1-63 bytes)"
                ));
            }
        }
        Ok(SearchDomain(s.to_string()))
    }
}

impl TryFrom<String> for SearchDomain {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<SearchDomain> for String {
    fn from(d: SearchDomain) -> String {
        d.0
    }
}

impl fmt::Display for SearchDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The resolv.conf(5) options glibc reads: `NAME` or `NAME:N`.
const FLAGS: &[&str] = &[
    "debug",
    "rotate",
    "no-check-names",
    "inet6",
    "edns0",
    "single-request",
    "single-request-reopen",
    "no-tld-query",
    "use-vc",
    "no-reload",
    "trust-ad",
    "no-aaaa",
];
/// Options with a value, and the largest value glibc keeps.
const VALUED: &[(&str, u32)] = &[("ndots", 15), ("timeout", 30), ("attempts", 5)];

/// One resolv.conf option, checked against resolv.conf(5): a flag
/// (`rotate`, `edns0`, ...) or `ndots:N`, `timeout:N`, `attempts:N`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ResolvOption(String);

impl ResolvOption {
    pub fn name(&self) -> &str {
        self.0.split(':').next().unwrap_or_default()
    }
}

impl FromStr for ResolvOption {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (name, value) = match s.split_once(':') {
            Some((n, v)) => (n, Some(v)),
            None => (s, None),
        };
        match (VALUED.iter().find(|(n, _)| *n == name), value) {
            (Some((_, max)), Some(v)) => match v.parse::<u32>() {
                Ok(n) if n <= *max => Ok(ResolvOption(format!("{name}:{n}"))),
                _ => Err(format!("{name} takes a number from 0 to {max}")),
            },
            (Some(_), None) => Err(format!("{name} needs a value ({name}:N)")),
            (None, None) if FLAGS.contains(&name) => Ok(ResolvOption(s.to_string())),
            (None, Some(_)) if FLAGS.contains(&name) => Err(format!("{name} takes no value")),
            _ => Err(format!(
                "not a resolv.conf option (one of {}, or ndots:N, timeout:N, attempts:N)",
                FLAGS.join(", ")
            )),
        }
    }
}

impl TryFrom<String> for ResolvOption {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<ResolvOption> for String {
    fn from(o: ResolvOption) -> String {
        o.0
    }
}

impl fmt::Display for ResolvOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_what_docker_run_takes() {
        let r = Resolver::parse(
            &s(&["10.0.0.53", "fd00::53"]),
            &s(&["svc.local", "example.com."]),
            &s(&["ndots:2", "rotate", "timeout:3"]),
        )
        .unwrap();
        assert_eq!(r.servers.len(), 2);
        assert_eq!(r.options_line(), ["ndots:2", "rotate", "timeout:3"]);
        let plain = Resolver::default();
        assert!(plain.is_empty());
        assert_eq!(plain.options_line(), ["ndots:0"]);
    }

    #[test]
    fn refuses_what_would_change_the_file_or_mean_something_else() {
        let none: Vec<String> = vec![];
        for (servers, search, options, want) in [
            (s(&["dns.example"]), none.clone(), none.clone(), "--dns"),
            (s(&["0.0.0.0"]), none.clone(), none.clone(), "unspecified"),
            (none.clone(), s(&["a b"]), none.clone(), "--dns-search"),
            (
                none.clone(),
                s(&["x\nnameserver 8.8.8.8"]),
                none.clone(),
                "label",
            ),
            (none.clone(), s(&["-bad.example"]), none.clone(), "label"),
            (
                none.clone(),
                none.clone(),
                s(&["ndots:1\nnameserver 8.8.8.8"]),
                "ndots",
            ),
            (none.clone(), none.clone(), s(&["ndots:99"]), "0 to 15"),
            (none.clone(), none.clone(), s(&["ndots"]), "needs a value"),
            (none.clone(), none.clone(), s(&["rotate:1"]), "no value"),
            (
                none.clone(),
                none.clone(),
                s(&["frobnicate"]),
                "not a resolv.conf option",
            ),
        ] {
            let e = Resolver::parse(&servers, &search, &options).unwrap_err();
            assert!(e.0.contains(want), "{e} should name {want}");
        }
        let many = vec!["10.0.0.1".to_string(); MAX_RESOLVER_ITEMS + 1];
        assert!(Resolver::parse(&many, &none, &none).is_err());
    }

    #[test]
    fn records_read_back_and_old_ones_have_none() {
        let r = Resolver::parse(&s(&["10.0.0.53"]), &s(&["a.b"]), &s(&["edns0"])).unwrap();
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Resolver>(&json).unwrap(), r);
        assert!(serde_json::from_str::<Resolver>(r#"{"options":["bogus"]}"#).is_err());
        assert_eq!(serde_json::to_string(&Resolver::default()).unwrap(), "{}");
    }
}
