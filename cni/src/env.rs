//! The `CNI_*` environment of one invocation, and the names derived
//! from it.

use crate::error::{CniError, code};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Gc,
    Status,
    Version,
}

impl Command {
    fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "GC" => Command::Gc,
            "STATUS" => Command::Status,
            "VERSION" => Command::Version,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Gc => "GC",
            Command::Status => "STATUS",
            Command::Version => "VERSION",
        }
    }
}

/// The `CNI_*` parameters of one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    pub command: Command,
    pub container: String,
    pub netns: Option<String>,
    pub ifname: String,
    pub args: String,
    pub path: String,
}

/// A plugin binary name: no path, nothing a shell or a directory walk
/// would read differently.
pub fn valid_plugin_name(s: &str) -> bool {
    valid_cni_name(s) && !s.contains("..")
}

/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`: container ids and network names (SPEC
/// "Parameters", libcni's `cniValidNameChars`).
pub fn valid_cni_name(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn valid_ifname(s: &str) -> Result<(), &'static str> {
    if s.len() > 15 {
        return Err("interface name is too long");
    }
    if s == "." || s == ".." {
        return Err("interface name is . or ..");
    }
    if s.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        return Err("interface name contains / or : or whitespace characters");
    }
    Ok(())
}

impl Env {
    /// Read and check the parameters. Which are required follows the spec:
    /// `CNI_CONTAINERID` and `CNI_IFNAME` for ADD, DEL and CHECK,
    /// `CNI_NETNS` for ADD and CHECK, `CNI_PATH` for GC. Every missing
    /// variable is named in one error (code 4), as libcni's skel does.
    pub fn from(get: impl Fn(&str) -> Option<String>) -> Result<Env, CniError> {
        let get = |k: &str| get(k).filter(|v| !v.is_empty());
        let Some(raw) = get("CNI_COMMAND") else {
            return Err(CniError::new(
                code::INVALID_ENV,
                "required env variables [CNI_COMMAND] missing",
            ));
        };
        let command = Command::parse(&raw).ok_or_else(|| {
            CniError::new(code::INVALID_ENV, format!("unknown CNI_COMMAND: {raw}"))
        })?;
        use Command::*;
        let required: &[&str] = match command {
            Add | Check => &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
            Del => &["CNI_CONTAINERID", "CNI_IFNAME"],
            Gc => &["CNI_PATH"],
            Status | Version => &[],
        };
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|k| get(k).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(CniError::new(
                code::INVALID_ENV,
                format!("required env variables [{}] missing", missing.join(",")),
            ));
        }
        let env = Env {
            command,
            container: get("CNI_CONTAINERID").unwrap_or_default(),
            netns: get("CNI_NETNS"),
            ifname: get("CNI_IFNAME").unwrap_or_default(),
            args: get("CNI_ARGS").unwrap_or_default(),
            path: get("CNI_PATH").unwrap_or_default(),
        };
        if matches!(command, Add | Del | Check) {
            if !valid_cni_name(&env.container) {
                return Err(CniError::new(
                    code::INVALID_ENV,
                    "invalid characters in CNI_CONTAINERID",
                )
                .details(env.container));
            }
            if let Err(m) = valid_ifname(&env.ifname) {
                return Err(CniError::new(code::INVALID_ENV, format!("CNI_IFNAME: {m}"))
                    .details(env.ifname));
            }
        }
        Ok(env)
    }
}

/// One `K=V` of CNI_ARGS (`K=V;K=V`).
pub fn cni_arg<'a>(args: &'a str, key: &str) -> Option<&'a str> {
    args.split(';')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// The netd sandbox name for a container id. Ids are already
/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`; anything else is replaced by `_`, and ids
/// longer than a sandbox name (64) keep 47 characters and a hash of the rest.
pub fn sandbox_name(container_id: &str) -> String {
    let mut s: String = container_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        s.insert(0, 'c');
    }
    if s.len() > 64 {
        // FNV-1a: stable across releases, unlike std's hasher.
        let h = container_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        s.truncate(47);
        s.push_str(&format!("-{h:016x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn env(vars: &[(&str, &str)]) -> Result<Env, CniError> {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env::from(|k| vars.get(k).cloned())
    }

    #[test]
    fn environment_as_skel_checks_it() {
        let e = env(&[]).unwrap_err();
        assert_eq!(e.code, code::INVALID_ENV);
        assert!(e.msg.contains("CNI_COMMAND"));
        let e = env(&[("CNI_COMMAND", "ADD"), ("CNI_IFNAME", "eth0")]).unwrap_err();
        assert_eq!(
            e.msg,
            "required env variables [CNI_CONTAINERID,CNI_NETNS] missing"
        );
        // DEL needs no namespace; GC needs CNI_PATH; VERSION and STATUS nothing.
        assert!(
            env(&[
                ("CNI_COMMAND", "DEL"),
                ("CNI_CONTAINERID", "c"),
                ("CNI_IFNAME", "eth0")
            ])
            .is_ok()
        );
        assert_eq!(
            env(&[("CNI_COMMAND", "GC")]).unwrap_err().msg,
            "required env variables [CNI_PATH] missing"
        );
        assert!(env(&[("CNI_COMMAND", "VERSION")]).is_ok());
        assert!(env(&[("CNI_COMMAND", "STATUS")]).is_ok());
        let bad_id = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "-x/y"),
            ("CNI_IFNAME", "eth0"),
        ])
        .unwrap_err();
        assert_eq!(bad_id.code, code::INVALID_ENV);
        let bad_if = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c"),
            ("CNI_IFNAME", "a-very-long-interface"),
        ])
        .unwrap_err();
        assert_eq!(bad_if.code, code::INVALID_ENV);
        assert_eq!(
            env(&[("CNI_COMMAND", "FROB")]).unwrap_err().code,
            code::INVALID_ENV
        );
    }

    #[test]
    fn names_and_args() {
        assert_eq!(sandbox_name("abc123"), "abc123");
        assert_eq!(sandbox_name("-x/y"), "c-x_y");
        let long = "a".repeat(80);
        let n = sandbox_name(&long);
        assert_eq!(n.len(), 64);
        assert_ne!(n, sandbox_name(&format!("{long}b")));
        assert_eq!(n, sandbox_name(&long));
        assert_eq!(
            cni_arg("IgnoreUnknown=1;K8S_POD_NAME=web-0", "K8S_POD_NAME"),
            Some("web-0")
        );
        assert!(valid_cni_name("a.b-c_d") && !valid_cni_name(".a") && !valid_cni_name(""));
    }
}
