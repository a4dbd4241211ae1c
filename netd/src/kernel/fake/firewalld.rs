//! A recording firewalld: zones and their interfaces as firewalld keeps
//! them at runtime, and a failure to script, for the operations' unit tests.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use crate::kernel::firewalld::{FirewalldApi, FirewalldError};

#[derive(Default)]
pub struct FakeFirewalld {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// zone -> interfaces.
    zones: BTreeMap<String, BTreeSet<String>>,
    /// Every call, as "add ZONE IFACE" / "remove ZONE IFACE".
    calls: Vec<String>,
    /// The next calls naming this interface fail so.
    fail: Option<(String, FirewalldError)>,
}

impl FakeFirewalld {
    /// A firewalld with these (empty) zones, as its permanent config has them.
    pub fn with_zones(zones: &[&str]) -> FakeFirewalld {
        let f = FakeFirewalld::default();
        f.lock().zones = zones
            .iter()
            .map(|z| (z.to_string(), BTreeSet::new()))
            .collect();
        f
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn interfaces(&self, zone: &str) -> BTreeSet<String> {
        self.lock().zones.get(zone).cloned().unwrap_or_default()
    }

    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// Put `iface` in `zone` as the operator would (`firewall-cmd`).
    pub fn place(&self, zone: &str, iface: &str) {
        self.lock()
            .zones
            .entry(zone.into())
            .or_default()
            .insert(iface.into());
    }

    /// `firewall-cmd --reload`: every runtime interface is gone.
    pub fn reload(&self) {
        for z in self.lock().zones.values_mut() {
            z.clear();
        }
    }

    /// Calls naming `iface` fail with `e` until [`FakeFirewalld::heal`].
    pub fn fail_on(&self, iface: &str, e: FirewalldError) {
        self.lock().fail = Some((iface.into(), e));
    }

    pub fn heal(&self) {
        self.lock().fail = None;
    }
}

impl FirewalldApi for FakeFirewalld {
    async fn add_interface(&self, zone: &str, iface: &str) -> Result<(), FirewalldError> {
        let mut s = self.lock();
        s.calls.push(format!("add {zone} {iface}"));
        if let Some((i, e)) = &s.fail
            && i == iface
        {
            return Err(e.clone());
        }
        if !s.zones.contains_key(zone) {
            return Err(FirewalldError::InvalidZone(zone.into()));
        }
        if let Some((other, _)) = s.zones.iter().find(|(_, ifs)| ifs.contains(iface)) {
            return Err(if other == zone {
                FirewalldError::AlreadyEnabled
            } else {
                FirewalldError::ZoneConflict(format!("'{iface}' already bound to '{other}'"))
            });
        }
        s.zones.entry(zone.into()).or_default().insert(iface.into());
        Ok(())
    }

    async fn remove_interface(&self, zone: &str, iface: &str) -> Result<(), FirewalldError> {
        let mut s = self.lock();
        s.calls.push(format!("remove {zone} {iface}"));
        if let Some((i, e)) = &s.fail
            && i == iface
        {
            return Err(e.clone());
        }
        match s.zones.get_mut(zone) {
            None => Err(FirewalldError::InvalidZone(zone.into())),
            Some(ifs) => match ifs.remove(iface) {
                true => Ok(()),
                false => Err(FirewalldError::NotEnabled),
            },
        }
    }
}
