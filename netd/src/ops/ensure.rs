//! A bridge network made on first use: the CNI plugin names a network in
//! its configuration and expects it to exist with those settings, creating
//! it when it does not (several plugins may race to do so).

use std::fmt;

use tracing::warn;

use super::Netd;
use crate::error::{Error, Kind};
use crate::kernel::{Kernel, KernelError};
use crate::model::*;
use crate::store::Ref;

/// A bridge network a caller creates when it is missing and otherwise
/// expects to find as it describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    /// What to create when no network of that name exists. Its subnet,
    /// gateway, ip range, bridge and MTU, where given, must also match an
    /// existing network.
    pub create: NetworkCreate,
    /// Settings compared with an existing network only when the caller said
    /// them (a configuration without the key accepts any value).
    pub internal: Option<bool>,
    pub masquerade: Option<bool>,
    pub isolate: Option<bool>,
    /// The families: `Some(true)` with IPv6, `Some(false)` IPv4 only (and
    /// `create.ipv4`, when said, IPv4 on or off).
    /// `create.ipv6` says what to create; this what an existing network
    /// must be (a caller that did not say accepts either).
    pub ipv6: Option<bool>,
    /// NAT66 (false: routed IPv6), compared on a dual-stack network only.
    pub masquerade6: Option<bool>,
}

/// A setting of a bridge network that a [`NetworkSpec`] can disagree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    Subnet,
    Gateway,
    IpRange,
    Bridge,
    Mtu,
    Internal,
    Masquerade,
    Isolate,
    /// IPv4 on, or an IPv6-only network.
    Ipv4,
    /// Dual-stack or IPv4 only.
    Ipv6,
    Subnet6,
    Gateway6,
    IpRange6,
    Masquerade6,
}

/// One setting an existing network has otherwise than asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub setting: Setting,
    pub have: String,
    pub want: String,
}

#[derive(Debug, thiserror::Error)]
pub enum EnsureError {
    /// A network of that name exists and is not a bridge network (an
    /// overlay network is the daemon's: the CNI plugin is not in a cluster).
    #[error("network {0} is not a bridge network")]
    NotBridge(Name),
    /// A network of that name exists with other settings.
    #[error("network {network} exists with other settings than the configuration's")]
    Differs {
        network: Name,
        differences: Vec<Difference>,
    },
    /// The bridge name asked for is a link of the host's (of `kind`) that
    /// is not this network's bridge: netd never adopts a link it did not make.
    #[error(
        "interface {name} already exists on the host (a {kind}): the bridge needs a name of its own"
    )]
    InterfaceTaken { name: String, kind: String },
    #[error(transparent)]
    Netd(#[from] Error),
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?}: the network has {}, the request {}",
            self.setting, self.have, self.want
        )
    }
}

/// How `b` differs from what `want` (validated from `spec.create`) and the
/// spec's optional settings ask for.
pub fn differences(
    b: &BridgeConfig,
    want: &ValidNetworkCreate,
    spec: &NetworkSpec,
) -> Vec<Difference> {
    let mut out = Vec::new();
    let mut cmp = |setting, have: String, want: Option<String>| {
        if let Some(want) = want
            && want != have
        {
            out.push(Difference {
                setting,
                have,
                want,
            });
        }
    };
    let s = |v: &dyn ToString| v.to_string();
    let none = || "none".to_string();
    let v4 = b.ipv4.as_ref();
    cmp(
        Setting::Subnet,
        v4.map_or_else(none, |c| s(&c.subnet)),
        want.subnet.map(|v| s(&v)),
    );
    cmp(
        Setting::Gateway,
        v4.map_or_else(none, |c| s(&c.gateway)),
        want.gateway.map(|v| s(&v)),
    );
    cmp(
        Setting::IpRange,
        v4.map_or_else(none, |c| s(&c.ip_range.unwrap_or(c.subnet))),
        want.ip_range.map(|v| s(&v)),
    );
    cmp(
        Setting::Bridge,
        s(&b.bridge),
        want.bridge.as_ref().map(|v| s(v)),
    );
    cmp(
        Setting::Mtu,
        b.mtu.map(|v| s(&v)).unwrap_or_else(|| "default".into()),
        want.mtu.map(|v| s(&v)),
    );
    cmp(
        Setting::Internal,
        s(&b.internal),
        spec.internal.map(|v| s(&v)),
    );
    // An internal network's record has masquerade off; a spec saying
    // `true` (CNI's ipMasq default) still matches it.
    cmp(
        Setting::Masquerade,
        s(&(v4.is_none_or(|c| c.masquerade) || b.internal)),
        spec.masquerade.map(|v| s(&v)),
    );
    cmp(Setting::Isolate, s(&!b.icc), spec.isolate.map(|v| s(&v)));
    // The families, each compared only when the caller said it; a
    // difference is named by the family that differs, IPv4 first.
    let family = |v4: bool, v6: bool| {
        match (v4, v6) {
            (true, true) => "IPv4 and IPv6",
            (true, false) => "IPv4 only",
            (false, _) => "IPv6 only",
        }
        .to_string()
    };
    let have = (b.ipv4.is_some(), b.ipv6.is_some());
    let want_v4 = spec.create.ipv4.unwrap_or(have.0);
    let want_v6 = spec.ipv6.unwrap_or(have.1);
    let setting = if want_v4 != have.0 {
        Setting::Ipv4
    } else {
        Setting::Ipv6
    };
    cmp(
        setting,
        family(have.0, have.1),
        Some(family(want_v4, want_v6)),
    );
    // The IPv6 settings are compared only on a dual-stack network: on an
    // IPv4-only one the family difference above says it all.
    if let (Some(have), Some(want)) = (&b.ipv6, &want.ipv6) {
        cmp(
            Setting::Subnet6,
            s(&have.subnet),
            want.subnet.map(|v| s(&v)),
        );
        cmp(
            Setting::Gateway6,
            s(&have.gateway),
            want.gateway.map(|v| s(&v)),
        );
        cmp(
            Setting::IpRange6,
            have.ip_range
                .map(|v| s(&v))
                .unwrap_or_else(|| s(&have.subnet)),
            want.ip_range.map(|v| s(&v)),
        );
        // As for IPv4: an internal network's record has NAT66 off.
        cmp(
            Setting::Masquerade6,
            s(&(have.masquerade || b.internal)),
            spec.masquerade6.map(|v| s(&v)),
        );
    }
    out
}

impl<K: Kernel> Netd<K> {
    /// The network `spec` names, created on first use (`true` when this
    /// call created it). An existing one must be a bridge network with the
    /// settings the spec gives.
    pub async fn ensure_network(
        &self,
        spec: &NetworkSpec,
    ) -> Result<(BridgeConfig, bool), EnsureError> {
        let want = spec.create.validate().map_err(Error::from)?;
        let name = want.name.as_str();
        for _ in 0..3 {
            match self.network(Ref::Name(name)) {
                Ok(net) => {
                    let b = net
                        .bridge()
                        .filter(|_| net.overlay().is_none())
                        .ok_or(EnsureError::NotBridge(net.name.clone()))?;
                    let differences = differences(b, &want, spec);
                    if !differences.is_empty() {
                        return Err(EnsureError::Differs {
                            network: net.name,
                            differences,
                        });
                    }
                    return Ok((b.clone(), false));
                }
                Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
            // A taken bridge name is a request that can never succeed, told
            // apart from a race with another process creating this very
            // network (whose bridge appears once its record is in the store)
            // by reading the record again.
            if let Some(b) = &want.bridge
                && let Some(kind) = self
                    .k
                    .host_link_kind(b.as_str())
                    .await
                    .map_err(Error::from)?
            {
                if self.network(Ref::Name(name)).is_ok() {
                    continue;
                }
                return Err(EnsureError::InterfaceTaken {
                    name: b.to_string(),
                    kind,
                });
            }
            match self.create_network(&spec.create).await {
                Ok(net) => {
                    let b = net
                        .bridge()
                        .filter(|_| net.overlay().is_none())
                        .ok_or(EnsureError::NotBridge(net.name.clone()))?;
                    return Ok((b.clone(), true));
                }
                // Another process created it at the same moment: compare
                // with that one.
                Err(e) if e.kind() == Kind::Conflict && self.network(Ref::Name(name)).is_ok() => {
                    continue;
                }
                // The link appeared between the look above and the create.
                Err(Error::Kernel(KernelError::NotABridge { name, kind })) => {
                    return Err(EnsureError::InterfaceTaken { name, kind });
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Busy(format!("network {name} kept changing while being created")).into())
    }

    /// Remove a network this caller has just created, unless something
    /// joined it meanwhile (undo of a failed first attach).
    pub async fn remove_network_if_unused(&self, name: &str) {
        if self
            .inspect_network(name)
            .is_ok_and(|d| d.endpoints.is_empty())
            && let Err(e) = self.remove_network(Ref::Name(name)).await
        {
            warn!(network = %name, "undo: could not remove the network: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bridge() -> BridgeConfig {
        let n = crate::model::fixtures::network("x", "10.1.0.0/24");
        n.bridge().cloned().expect("a bridge network")
    }

    fn spec(create: NetworkCreate) -> NetworkSpec {
        NetworkSpec {
            create,
            internal: None,
            masquerade: None,
            isolate: None,
            ipv6: None,
            masquerade6: None,
        }
    }

    fn named() -> NetworkCreate {
        NetworkCreate {
            name: "n".into(),
            ..Default::default()
        }
    }

    fn diff(spec: &NetworkSpec) -> Vec<Setting> {
        let want = spec.create.validate().unwrap();
        differences(&bridge(), &want, spec)
            .into_iter()
            .map(|d| d.setting)
            .collect()
    }

    #[test]
    fn unsaid_settings_match_any_network() {
        assert!(diff(&spec(named())).is_empty());
    }

    #[test]
    fn said_settings_must_match() {
        let mut c = named();
        c.subnet = Some("10.2.0.0/24".into());
        assert_eq!(diff(&spec(c)), vec![Setting::Subnet]);
        let mut c = named();
        c.subnet = Some("10.1.0.0/24".into());
        c.ip_range = Some("10.1.0.0/24".into());
        c.options.insert(OPT_BRIDGE_NAME.into(), "br-y".into());
        assert_eq!(diff(&spec(c)), vec![Setting::Bridge]);
        let s = NetworkSpec {
            internal: Some(true),
            masquerade: Some(false),
            isolate: Some(true),
            ..spec(named())
        };
        assert_eq!(
            diff(&s),
            vec![Setting::Internal, Setting::Masquerade, Setting::Isolate]
        );
    }

    #[test]
    fn an_internal_network_does_not_differ_on_masquerade_true() {
        let mut b = bridge();
        b.internal = true;
        b.ipv4.as_mut().unwrap().masquerade = false;
        let s = NetworkSpec {
            masquerade: Some(true),
            ..spec(named())
        };
        let want = s.create.validate().unwrap();
        assert!(differences(&b, &want, &s).is_empty());
    }

    #[test]
    fn the_families_must_match_when_said() {
        let dual = |spec: &NetworkSpec| {
            let b = crate::model::fixtures::with_ipv6(
                crate::model::fixtures::network("x", "10.1.0.0/24"),
                "fd00:1::/64",
            );
            let b = b.bridge().cloned().expect("a bridge network");
            let want = spec.create.validate().unwrap();
            differences(&b, &want, spec)
        };
        // Unsaid: either family is fine.
        assert!(diff(&spec(named())).is_empty());
        assert!(dual(&spec(named())).is_empty());
        let mut c = named();
        c.ipv6 = true;
        c.subnet6 = Some("fd00:1::/64".into());
        let asks_v6 = NetworkSpec {
            ipv6: Some(true),
            ..spec(c)
        };
        assert_eq!(
            diff(&asks_v6),
            vec![Setting::Ipv6],
            "one difference, not four"
        );
        assert!(dual(&asks_v6).is_empty());
        let v4_only = NetworkSpec {
            ipv6: Some(false),
            ..spec(named())
        };
        let d = dual(&v4_only);
        assert_eq!(
            (d[0].setting, d[0].have.as_str(), d[0].want.as_str()),
            (Setting::Ipv6, "IPv4 and IPv6", "IPv4 only")
        );
        let mut only = named();
        only.ipv4 = Some(false);
        only.ipv6 = true;
        let d = dual(&NetworkSpec {
            ipv6: Some(true),
            ..spec(only)
        });
        assert_eq!(
            (d[0].setting, d[0].have.as_str(), d[0].want.as_str()),
            (Setting::Ipv4, "IPv4 and IPv6", "IPv6 only")
        );
        let mut c = named();
        c.ipv6 = true;
        c.subnet6 = Some("fd00:2::/64".into());
        c.gateway6 = Some("fd00:2::9".into());
        c.ip_range6 = Some("fd00:2::/80".into());
        let other = NetworkSpec {
            ipv6: Some(true),
            ..spec(c)
        };
        let other = NetworkSpec {
            masquerade6: Some(false),
            ..other
        };
        let d: Vec<Setting> = dual(&other).into_iter().map(|d| d.setting).collect();
        assert_eq!(
            d,
            vec![
                Setting::Subnet6,
                Setting::Gateway6,
                Setting::IpRange6,
                Setting::Masquerade6
            ]
        );
    }

    // ---- over the fake kernel ----

    use crate::ops::tests::{net, world};

    fn cni_spec(name: &str, subnet: &str) -> NetworkSpec {
        spec(net(name, subnet))
    }

    #[tokio::test]
    async fn a_missing_network_is_created_once_and_found_after() {
        let t = world().await;
        let s = cni_spec("n1", "10.60.0.0/24");
        let (b, created) = t.netd.ensure_network(&s).await.unwrap();
        assert!(created);
        assert_eq!(b.ipv4.as_ref().unwrap().subnet.to_string(), "10.60.0.0/24");
        let (again, created) = t.netd.ensure_network(&s).await.unwrap();
        assert!(!created);
        assert_eq!(again, b);
        t.assert_consistent();
    }

    #[tokio::test]
    async fn an_existing_network_with_other_settings_is_refused_unchanged() {
        let t = world().await;
        t.network("n1", "10.60.0.0/24").await;
        let before = t.snapshot();
        let e = t
            .netd
            .ensure_network(&cni_spec("n1", "10.61.0.0/24"))
            .await
            .unwrap_err();
        let EnsureError::Differs { differences, .. } = e else {
            panic!("{e}");
        };
        assert_eq!(differences[0].setting, Setting::Subnet);
        assert_eq!(t.snapshot(), before);
        let e = t
            .netd
            .ensure_network(&cni_spec("host", "10.62.0.0/24"))
            .await;
        assert!(matches!(e, Err(EnsureError::NotBridge(_))), "{e:?}");
    }

    /// The CNI bug: a bridge name a host link already has looped three
    /// times through "already exists" and ended as "try again later".
    #[tokio::test]
    async fn a_bridge_name_a_host_link_has_is_taken_at_once_and_nothing_is_made() {
        let t = world().await;
        t.k().add_foreign_link("eth7", "veth");
        let before = t.snapshot();
        let calls = t.k().calls().len();
        let mut c = net("n1", "10.60.0.0/24");
        c.options.insert(OPT_BRIDGE_NAME.into(), "eth7".into());
        let e = t.netd.ensure_network(&spec(c)).await.unwrap_err();
        match &e {
            EnsureError::InterfaceTaken { name, kind } => {
                assert_eq!((name.as_str(), kind.as_str()), ("eth7", "veth"));
            }
            other => panic!("{other}"),
        }
        assert!(e.to_string().contains("eth7"), "{e}");
        assert_eq!(t.snapshot(), before);
        // One look at the link, no retries.
        assert!(t.k().calls().len() - calls <= 1, "{:?}", t.k().calls());
    }

    #[tokio::test]
    async fn a_new_network_is_removed_again_only_while_unused() {
        let t = world().await;
        let before = t.snapshot();
        t.netd
            .ensure_network(&cni_spec("n1", "10.60.0.0/24"))
            .await
            .unwrap();
        t.netd.remove_network_if_unused("n1").await;
        assert_eq!(t.snapshot(), before);
        t.netd
            .ensure_network(&cni_spec("n1", "10.60.0.0/24"))
            .await
            .unwrap();
        t.sandbox("s1", "n1").await;
        t.netd.remove_network_if_unused("n1").await;
        assert!(t.netd.network(Ref::Name("n1")).is_ok());
    }
}
