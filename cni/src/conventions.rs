//! What CONVENTIONS and SPEC pass beside netd's own keys, kept apart from
//! `conf.rs` (netd's own keys) so each reads on its own.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The `aliases` capability: CONVENTIONS' list (`["a", "b"]`, the names of
/// this attachment), or podman's map of network name to names.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Aliases {
    List(Vec<String>),
    Map(BTreeMap<String, Vec<String>>),
}

impl Default for Aliases {
    fn default() -> Aliases {
        Aliases::List(Vec::new())
    }
}

impl Aliases {
    /// The names on network `net` (a map's other entries are other
    /// networks' and not this attachment's).
    pub fn on(&self, net: &str) -> Vec<String> {
        match self {
            Aliases::List(l) => l.clone(),
            Aliases::Map(m) => m.get(net).cloned().unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::conf::NetConf;
    use crate::error::code;

    fn parse(extra: &str) -> Result<NetConf, crate::error::CniError> {
        NetConf::parse(
            format!(r#"{{"cniVersion":"1.1.0","name":"n","type":"netd-cni"{extra}}}"#).as_bytes(),
        )
    }

    #[test]
    fn aliases_as_a_list_or_a_map() {
        let c = parse(r#","runtimeConfig":{"aliases":["a","b"]}"#).unwrap();
        assert_eq!(c.names(""), vec!["a", "b"]);
        let c = parse(r#","runtimeConfig":{"aliases":{"n":["a"],"m":["z"]}}"#).unwrap();
        assert_eq!(c.names(""), vec!["a"]);
        assert_eq!(
            parse(r#","runtimeConfig":{"aliases":"a"}"#)
                .unwrap_err()
                .code,
            code::INVALID_CONFIG
        );
    }
}
