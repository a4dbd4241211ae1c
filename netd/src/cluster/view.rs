//! The cluster view as a fold over etcd's keys: a full read puts every key,
//! then watch events put and delete them. Pure, so the fake and the etcd
//! store build the view alike.

use std::collections::BTreeMap;

use super::keys::{self, Key};
use super::{ClusterEndpoint, ClusterView, HostRecord};
use crate::model::Network;

#[derive(Debug, Default, Clone)]
pub struct ViewState {
    /// By etcd key, so a delete event (a key, no value) finds its record.
    networks: BTreeMap<String, Network>,
    hosts: BTreeMap<String, HostRecord>,
    endpoints: BTreeMap<String, ClusterEndpoint>,
}

impl ViewState {
    pub fn put(&mut self, key: &str, value: &[u8]) {
        let Some(k) = keys::parse(key) else { return };
        // A record netd cannot read is skipped, not fatal: the rest of the
        // cluster stays visible.
        let warn = |e: serde_json::Error| tracing::warn!(key, "unreadable cluster record: {e}");
        match k {
            Key::Network(_) => match serde_json::from_slice(value) {
                Ok(n) => {
                    self.networks.insert(key.to_string(), n);
                }
                Err(e) => warn(e),
            },
            Key::Host(_) => match serde_json::from_slice(value) {
                Ok(h) => {
                    self.hosts.insert(key.to_string(), h);
                }
                Err(e) => warn(e),
            },
            Key::Endpoint { .. } => match serde_json::from_slice(value) {
                Ok(ep) => {
                    self.endpoints.insert(key.to_string(), ep);
                }
                Err(e) => warn(e),
            },
            Key::Vni(_) | Key::Ipam { .. } => {}
        }
    }

    pub fn delete(&mut self, key: &str) {
        self.networks.remove(key);
        self.hosts.remove(key);
        self.endpoints.remove(key);
    }

    pub fn view(&self, revision: i64, connected: bool) -> ClusterView {
        let hosts: BTreeMap<String, HostRecord> = self
            .hosts
            .values()
            .map(|h| (h.host.clone(), h.clone()))
            .collect();
        ClusterView {
            revision,
            connected,
            networks: self
                .networks
                .values()
                .map(|n| (n.name.clone(), n.clone()))
                .collect(),
            // A host's endpoints share its lease and go with it; one whose
            // host record is gone is on its way out, never shown.
            endpoints: self
                .endpoints
                .values()
                .filter(|e| hosts.contains_key(&e.host))
                .cloned()
                .collect(),
            hosts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Id, Mac, fixtures};

    #[test]
    fn endpoints_without_their_host_are_dropped() {
        let mut s = ViewState::default();
        let net = fixtures::network("ov", "10.9.0.0/24");
        s.put(&keys::network("ov"), &serde_json::to_vec(&net).unwrap());
        let h = HostRecord {
            host: "a".into(),
            vtep: "192.0.2.1".parse().unwrap(),
        };
        s.put(&keys::host("a"), &serde_json::to_vec(&h).unwrap());
        let ep = ClusterEndpoint {
            network: net.id.clone(),
            host: "a".into(),
            vtep: h.vtep,
            endpoint: Id::from_stored("e1".into()),
            sandbox: Id::from_stored("s1".into()),
            sandbox_name: "s1".parse().unwrap(),
            aliases: vec![],
            ip: Some("10.9.0.2".parse().unwrap()),
            ip6: None,
            mac: Mac([2, 0, 0, 0, 0, 1]),
        };
        let key = keys::endpoint(&net.id, "a", &ep.endpoint);
        s.put(&key, &serde_json::to_vec(&ep).unwrap());
        s.put(&keys::network("bad"), b"{not json");
        let v = s.view(7, true);
        assert_eq!(v.networks.len(), 1);
        assert_eq!(v.endpoints, vec![ep]);
        s.delete(&keys::host("a"));
        assert!(s.view(8, true).endpoints.is_empty());
        s.delete(&keys::network("ov"));
        assert!(s.view(9, true).networks.is_empty());
    }
}
