//! Per-interface sysctls of an endpoint (Docker's endpoint driver option
//! `com.docker.network.endpoint.sysctls`): `net.X.Y.IFNAME.Z=V`, where
//! the literal `IFNAME` stands for the endpoint's interface, so a setting
//! follows its interface whatever name it gets.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{IfName, Invalid, cut, invalid};

/// Docker's endpoint driver option for per-interface sysctls.
pub const OPT_ENDPOINT_SYSCTLS: &str = "com.docker.network.endpoint.sysctls";
/// Docker's endpoint driver option for the interface name.
pub const OPT_ENDPOINT_IFNAME: &str = "com.docker.network.endpoint.ifname";
/// Sysctls one endpoint may carry.
pub const MAX_IF_SYSCTLS: usize = 32;

/// One setting, kept as Docker writes it (`net.ipv4.conf.IFNAME.log_martians=1`)
/// and applied as `/proc/sys/net/<family>/<group>/<ifname>/<key>` inside
/// the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IfSysctl {
    /// `ipv4`, `ipv6` or `mpls`: the families with per-interface settings,
    /// as Docker allows.
    family: String,
    /// `conf`, `neigh`, ...
    group: String,
    key: String,
    value: String,
}

impl IfSysctl {
    /// The path under /proc/sys for the interface `ifname`.
    pub fn path(&self, ifname: &str) -> String {
        format!("net/{}/{}/{ifname}/{}", self.family, self.group, self.key)
    }

    pub fn value(&self) -> &str {
        &self.value
    }

    /// Docker's comma-separated list, each one checked.
    pub fn parse_list(s: &str) -> Result<Vec<IfSysctl>, Invalid> {
        let list = s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<IfSysctl>, _>>()?;
        check_list(&list)?;
        Ok(list)
    }
}

/// What Docker's endpoint driver options (`EndpointConfig.DriverOpts`,
/// `--driver-opt`) ask for, checked.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EndpointOpts {
    pub ifname: Option<IfName>,
    pub sysctls: Vec<IfSysctl>,
}

impl EndpointOpts {
    /// The two options Docker's bridge driver takes; any other is refused,
    /// named, as it would change what the container gets.
    pub fn parse<'a>(
        opts: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<EndpointOpts, Invalid> {
        let mut out = EndpointOpts::default();
        for (k, v) in opts {
            match k {
                OPT_ENDPOINT_IFNAME => {
                    out.ifname = Some(v.parse().map_err(|e: Invalid| {
                        Invalid(format!("endpoint option {OPT_ENDPOINT_IFNAME}: {}", e.0))
                    })?)
                }
                OPT_ENDPOINT_SYSCTLS => {
                    out.sysctls.extend(IfSysctl::parse_list(v).map_err(|e| {
                        Invalid(format!("endpoint option {OPT_ENDPOINT_SYSCTLS}: {}", e.0))
                    })?);
                    check_list(&out.sysctls)?;
                }
                _ => {
                    return invalid(format!(
                        "endpoint option {:?} is not supported: the bridge driver takes \
                         {OPT_ENDPOINT_IFNAME} and {OPT_ENDPOINT_SYSCTLS}",
                        cut(k)
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// At most [`MAX_IF_SYSCTLS`], and no setting given twice.
pub fn check_list(list: &[IfSysctl]) -> Result<(), Invalid> {
    if list.len() > MAX_IF_SYSCTLS {
        return invalid(format!(
            "too many interface sysctls ({}): at most {MAX_IF_SYSCTLS}",
            list.len()
        ));
    }
    for (i, s) in list.iter().enumerate() {
        if list[..i]
            .iter()
            .any(|o| o.path("IFNAME") == s.path("IFNAME"))
        {
            return invalid(format!(
                "interface sysctl {} is given twice",
                s.path("IFNAME").replace('/', ".")
            ));
        }
    }
    Ok(())
}

/// A path component under /proc/sys: never '.', '/' or empty, so the
/// setting cannot leave its interface's directory.
fn is_component(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl std::str::FromStr for IfSysctl {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        let bad = |why: &str| {
            invalid(format!(
                "invalid interface sysctl {:?}: {why}; represent net.X.Y.ethN.Z=V as \
                 net.X.Y.IFNAME.Z=V with X ipv4, ipv6 or mpls \
                 (e.g. net.ipv4.conf.IFNAME.log_martians=1)",
                cut(s)
            ))
        };
        let Some((name, value)) = s.split_once('=') else {
            return bad("no '='");
        };
        let parts: Vec<&str> = name.trim().split('.').collect();
        let [net, family, group, ifname, key] = parts[..] else {
            return bad("expected five dot-separated parts before '='");
        };
        if net != "net" {
            return bad("not a net. setting");
        }
        if !matches!(family, "ipv4" | "ipv6" | "mpls") {
            return bad("X must be ipv4, ipv6 or mpls");
        }
        // Docker takes "ifname" too: its CLI lower-cases the option.
        if ifname != "IFNAME" && ifname != "ifname" {
            return bad("the interface must be written IFNAME");
        }
        if !is_component(group) || !is_component(key) {
            return bad("Y and Z must be letters, digits, '_' or '-'");
        }
        let value = value.trim();
        if value.is_empty()
            || value.len() > 256
            || value.chars().any(|c| c.is_control() || c == ',')
        {
            return bad("the value must be 1-256 printable characters");
        }
        Ok(IfSysctl {
            family: family.into(),
            group: group.into(),
            key: key.into(),
            value: value.into(),
        })
    }
}

impl TryFrom<String> for IfSysctl {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        s.parse()
    }
}

impl From<IfSysctl> for String {
    fn from(s: IfSysctl) -> String {
        s.to_string()
    }
}

impl fmt::Display for IfSysctl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "net.{}.{}.IFNAME.{}={}",
            self.family, self.group, self.key, self.value
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_form_and_prints_it_back() {
        let l = IfSysctl::parse_list(
            "net.ipv4.conf.IFNAME.log_martians=1, net.ipv6.conf.ifname.accept_ra=2",
        )
        .unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].path("web0"), "net/ipv4/conf/web0/log_martians");
        assert_eq!(l[0].value(), "1");
        assert_eq!(l[1].to_string(), "net.ipv6.conf.IFNAME.accept_ra=2");
        let json = serde_json::to_string(&l).unwrap();
        assert_eq!(
            json,
            r#"["net.ipv4.conf.IFNAME.log_martians=1","net.ipv6.conf.IFNAME.accept_ra=2"]"#
        );
        assert_eq!(serde_json::from_str::<Vec<IfSysctl>>(&json).unwrap(), l);
        assert!(IfSysctl::parse_list("").unwrap().is_empty());
    }

    #[test]
    fn refuses_what_docker_refuses_and_paths_out_of_the_interface() {
        for (s, why) in [
            ("net.ipv4.conf.eth0.log_martians=1", "IFNAME"),
            ("net.ipv4.ip_forward=1", "five"),
            ("net.core.conf.IFNAME.x=1", "ipv4, ipv6 or mpls"),
            ("kernel.ipv4.conf.IFNAME.x=1", "net."),
            ("net.ipv4.conf.IFNAME.log_martians", "'='"),
            ("net.ipv4.conf.IFNAME.log_martians=", "value"),
            ("net.ipv4.conf.IFNAME.a/b=1", "letters"),
            ("net.ipv4..IFNAME.x=1", "letters"),
            ("net.ipv4.conf.IFNAME.x.y=1", "five"),
            ("net.ipv4.conf.IFNAME.x=1\n2", "value"),
        ] {
            let e = IfSysctl::parse_list(s).unwrap_err().0;
            assert!(e.contains(why) && e.contains("IFNAME"), "{s:?}: {e}");
        }
        let e = IfSysctl::parse_list("net.ipv4.conf.IFNAME.x=1,net.ipv4.conf.ifname.x=2")
            .unwrap_err()
            .0;
        assert!(e.contains("given twice"), "{e}");
        let many: Vec<String> = (0..=MAX_IF_SYSCTLS)
            .map(|i| format!("net.ipv4.conf.IFNAME.k{i}=1"))
            .collect();
        let e = IfSysctl::parse_list(&many.join(",")).unwrap_err().0;
        assert!(e.contains("too many"), "{e}");
        assert!(serde_json::from_str::<IfSysctl>(r#""net.ipv4.conf.eth0.x=1""#).is_err());
    }

    #[test]
    fn endpoint_opts_take_the_two_docker_keys_and_name_any_other() {
        let o = EndpointOpts::parse([
            (OPT_ENDPOINT_IFNAME, "web0"),
            (OPT_ENDPOINT_SYSCTLS, "net.ipv4.conf.IFNAME.log_martians=1"),
        ])
        .unwrap();
        assert_eq!(o.ifname.unwrap().as_str(), "web0");
        assert_eq!(o.sysctls.len(), 1);
        assert_eq!(EndpointOpts::parse([]).unwrap(), EndpointOpts::default());
        for (k, v, want) in [
            (
                "com.docker.network.endpoint.foo",
                "1",
                "\"com.docker.network.endpoint.foo\" is not supported",
            ),
            (
                OPT_ENDPOINT_IFNAME,
                "a/b",
                "endpoint option com.docker.network.endpoint.ifname: invalid interface name \"a/b\"",
            ),
            (
                OPT_ENDPOINT_IFNAME,
                "sixteen-chars-xx",
                "invalid interface name",
            ),
            (
                OPT_ENDPOINT_SYSCTLS,
                "net.ipv4.conf.eth0.x=1",
                "endpoint option com.docker.network.endpoint.sysctls: invalid interface sysctl",
            ),
        ] {
            let e = EndpointOpts::parse([(k, v)]).unwrap_err().0;
            assert!(e.contains(want), "{k}={v}: {e}");
        }
    }
}
