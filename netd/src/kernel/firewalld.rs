//! firewalld's D-Bus API: netd's bridges in a firewalld zone.
//!
//! firewalld keeps its own nftables table (and 2.x owns it: nobody else may
//! add rules there), so netd asks firewalld itself, as Docker and
//! netavark's firewalld driver do: each bridge becomes an interface of a
//! zone at runtime (`zone.addInterface`), and is added again after
//! firewalld reloads or restarts, which drops every runtime change.
//! The operations see firewalld only through [`FirewalldApi`]; [`Dbus`] is
//! the real one (zbus on the daemon's tokio runtime), a recording fake
//! stands in for it in unit tests.

use std::future::Future;

use futures::{Stream, StreamExt};
use thiserror::Error;
use zbus::message::Type;
use zbus::{MatchRule, MessageStream};

/// firewalld's bus name, object path and interfaces.
pub const NAME: &str = "org.fedoraproject.FirewallD1";
const PATH: &str = "/org/fedoraproject/FirewallD1";
const ZONE_IFACE: &str = "org.fedoraproject.FirewallD1.zone";
/// The D-Bus error firewalld answers with; its message starts with one of
/// firewalld's error codes (`ALREADY_ENABLED: netd0`).
const EXCEPTION: &str = "org.fedoraproject.FirewallD1.Exception";

/// firewalld takes a while for a reload (seconds on a big config); libdbus
/// waits 25 s by default, so do we.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(25);

/// What firewalld (or the bus) answered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FirewalldError {
    /// addInterface: the interface is in that zone already.
    #[error("already in the zone")]
    AlreadyEnabled,
    /// removeInterface: the interface is not in that zone.
    #[error("not in the zone")]
    NotEnabled,
    /// addInterface: the interface is in another zone (the operator's choice).
    #[error("firewalld has it in another zone: {0}")]
    ZoneConflict(String),
    /// No zone of that name.
    #[error("firewalld has no such zone: {0}")]
    InvalidZone(String),
    /// Nobody owns firewalld's name on the bus (not running, restarting).
    #[error("firewalld is not running on the system bus")]
    NotRunning,
    /// Anything else firewalld or the bus said.
    #[error("{0}")]
    Other(String),
}

/// Map firewalld's exception text (`CODE: detail`) to an error.
pub fn from_exception(msg: &str) -> FirewalldError {
    let (code, detail) = match msg.split_once(':') {
        Some((c, d)) => (c.trim(), d.trim()),
        None => (msg.trim(), ""),
    };
    match code {
        "ALREADY_ENABLED" => FirewalldError::AlreadyEnabled,
        "NOT_ENABLED" => FirewalldError::NotEnabled,
        "ZONE_CONFLICT" => FirewalldError::ZoneConflict(detail.to_string()),
        "INVALID_ZONE" => FirewalldError::InvalidZone(detail.to_string()),
        _ => FirewalldError::Other(msg.to_string()),
    }
}

fn from_zbus(e: zbus::Error) -> FirewalldError {
    match &e {
        zbus::Error::MethodError(name, detail, _) if name.as_str() == EXCEPTION => {
            from_exception(detail.as_deref().unwrap_or(""))
        }
        zbus::Error::MethodError(name, _, _)
            if name.as_str() == "org.freedesktop.DBus.Error.ServiceUnknown"
                || name.as_str() == "org.freedesktop.DBus.Error.NameHasNoOwner" =>
        {
            FirewalldError::NotRunning
        }
        _ => FirewalldError::Other(e.to_string()),
    }
}

/// The two calls netd makes. Runtime only: netd never writes firewalld's
/// permanent configuration, so a reload or restart takes the bridges out
/// and the daemon puts them back.
pub trait FirewalldApi: Send + Sync {
    /// `zone.addInterface(zone, iface)`.
    fn add_interface(
        &self,
        zone: &str,
        iface: &str,
    ) -> impl Future<Output = Result<(), FirewalldError>> + Send;
    /// `zone.removeInterface(zone, iface)`.
    fn remove_interface(
        &self,
        zone: &str,
        iface: &str,
    ) -> impl Future<Output = Result<(), FirewalldError>> + Send;
}

/// What the bus tells the daemon about firewalld.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusEvent {
    /// firewalld reloaded (`firewall-cmd --reload`): runtime zones are
    /// back to the permanent configuration.
    Reloaded,
    /// firewalld's name got an owner (started) or lost it (stopped).
    Owner(bool),
}

/// firewalld on the system bus (`DBUS_SYSTEM_BUS_ADDRESS`, else the
/// standard socket).
#[derive(Clone)]
pub struct Dbus {
    conn: zbus::Connection,
}

impl Dbus {
    pub async fn system() -> zbus::Result<Dbus> {
        Ok(Dbus {
            // A firewalld that hangs must not hang the follower for ever:
            // the call fails (and is tried again at the next change).
            conn: zbus::connection::Builder::system()?
                .method_timeout(CALL_TIMEOUT)
                .build()
                .await?,
        })
    }

    /// Whether firewalld runs now.
    pub async fn running(&self) -> zbus::Result<bool> {
        let proxy = zbus::fdo::DBusProxy::new(&self.conn).await?;
        Ok(proxy
            .name_has_owner(NAME.try_into().map_err(zbus::Error::from)?)
            .await?)
    }

    /// firewalld's reloads and its comings and goings. Subscribe before
    /// asking [`Dbus::running`], so nothing falls between the two. The
    /// stream ends when the bus connection does.
    pub async fn events(&self) -> zbus::Result<impl Stream<Item = BusEvent> + Send + use<>> {
        let reloaded = MatchRule::builder()
            .msg_type(Type::Signal)
            .sender(NAME)?
            .interface(NAME)?
            .member("Reloaded")?
            .build();
        let owner = MatchRule::builder()
            .msg_type(Type::Signal)
            .sender("org.freedesktop.DBus")?
            .interface("org.freedesktop.DBus")?
            .member("NameOwnerChanged")?
            .arg(0, NAME)?
            .build();
        let reloaded = MessageStream::for_match_rule(reloaded, &self.conn, None)
            .await?
            .filter_map(|m| async move { m.ok().map(|_| BusEvent::Reloaded) });
        let owner = MessageStream::for_match_rule(owner, &self.conn, None)
            .await?
            .filter_map(|m| async move {
                let m = m.ok()?;
                let (_, _, new): (String, String, String) = m.body().deserialize().ok()?;
                Some(BusEvent::Owner(!new.is_empty()))
            });
        Ok(futures::stream::select(reloaded, owner))
    }

    async fn zone_call(&self, method: &str, zone: &str, iface: &str) -> Result<(), FirewalldError> {
        self.conn
            .call_method(Some(NAME), PATH, Some(ZONE_IFACE), method, &(zone, iface))
            .await
            .map(|_| ())
            .map_err(from_zbus)
    }
}

impl FirewalldApi for Dbus {
    async fn add_interface(&self, zone: &str, iface: &str) -> Result<(), FirewalldError> {
        self.zone_call("addInterface", zone, iface).await
    }

    async fn remove_interface(&self, zone: &str, iface: &str) -> Result<(), FirewalldError> {
        self.zone_call("removeInterface", zone, iface).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firewalld_exceptions_by_code() {
        assert_eq!(
            from_exception("ALREADY_ENABLED: 'netd0' already bound to 'trusted'"),
            FirewalldError::AlreadyEnabled
        );
        assert_eq!(
            from_exception("NOT_ENABLED: netd0"),
            FirewalldError::NotEnabled
        );
        assert_eq!(
            from_exception("ZONE_CONFLICT: 'netd0' already bound to 'public'"),
            FirewalldError::ZoneConflict("'netd0' already bound to 'public'".into())
        );
        assert_eq!(
            from_exception("INVALID_ZONE: nope"),
            FirewalldError::InvalidZone("nope".into())
        );
        assert_eq!(
            from_exception("RUNNING_BUT_FAILED"),
            FirewalldError::Other("RUNNING_BUT_FAILED".into())
        );
    }
}
