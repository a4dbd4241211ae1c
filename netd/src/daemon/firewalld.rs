//! `netd daemon --firewalld ZONE`: keep netd's bridges in a firewalld zone
//! while the daemon runs.
//!
//! One task follows the system bus: it syncs the zone when firewalld
//! appears (started or restarted: `NameOwnerChanged`), after each of its
//! reloads (`Reloaded`: runtime interfaces are gone), after each network
//! the daemon creates or removes, and every [`RESYNC_EVERY`] for networks
//! made by other processes (a CNI plugin).
//! A sync is one store read; firewalld is only called for differences.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, info, warn};

use crate::kernel::firewalld::{BusEvent, Dbus};
use crate::ops::Netd;
use crate::ops::firewalld::ZoneSync;

/// How often the store is read again for networks other processes made.
const RESYNC_EVERY: Duration = Duration::from_secs(2);
/// How long to wait before reconnecting to a bus that went away.
const RECONNECT_AFTER: Duration = Duration::from_secs(5);

/// Start following firewalld for `zone`.
pub fn start(netd: Arc<Netd>, zone: String) {
    info!(zone = %zone, "--firewalld: netd's bridges go in this firewalld zone while firewalld runs");
    tokio::spawn(async move {
        let mut zs = ZoneSync::new(zone);
        let mut warned = false;
        loop {
            if let Err(e) = follow(&netd, &mut zs).await {
                if warned {
                    debug!("firewalld: the system bus: {e}");
                } else {
                    warn!(
                        "--firewalld: cannot follow firewalld on the system bus: {e}; retrying every {RECONNECT_AFTER:?}"
                    );
                    warned = true;
                }
            }
            // Whatever happened while we were away, check everything again.
            zs.forget();
            tokio::time::sleep(RECONNECT_AFTER).await;
        }
    });
}

/// Follow one bus connection until it ends.
async fn follow(netd: &Netd, zs: &mut ZoneSync) -> zbus::Result<()> {
    let bus = Dbus::system().await?;
    let mut netd_events = netd.subscribe();
    // Subscribed before asking whether firewalld runs: a start between
    // the two is seen either way.
    let bus_events = bus.events().await?;
    futures::pin_mut!(bus_events);
    let mut up = bus.running().await?;
    if !up {
        info!(
            "firewalld is not running; netd will put its bridges in zone {} when it starts",
            zs.zone()
        );
    }
    let mut tick = tokio::time::interval(RESYNC_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if up {
            match netd.firewalld_bridges() {
                Ok(want) => {
                    let r = zs.sync(&bus, &want).await;
                    zs.log(&r);
                }
                Err(e) => warn!("firewalld: cannot read the networks: {e}"),
            }
        }
        tokio::select! {
            ev = bus_events.next() => match ev {
                None => return Err(zbus::Error::Failure("the bus connection closed".into())),
                Some(BusEvent::Reloaded) => {
                    info!(zone = %zs.zone(), "firewalld reloaded; putting netd's bridges back in the zone");
                    zs.forget();
                    up = true;
                }
                Some(BusEvent::Owner(owner)) => {
                    if owner {
                        info!(zone = %zs.zone(), "firewalld started; putting netd's bridges in the zone");
                    } else {
                        info!("firewalld stopped");
                    }
                    zs.forget();
                    up = owner;
                }
            },
            ev = netd_events.recv() => match ev {
                Ok(e) if e.kind != "network" => continue,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return Ok(()),
            },
            _ = tick.tick() => {}
        }
    }
}
