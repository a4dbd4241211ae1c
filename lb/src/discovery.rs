//! Where members come from: the netd API (listed, then followed through
//! `/netd/events`), or periodic DNS A (or AAAA) lookups of the alias.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use anyhow::{Context, Result};
use http::StatusCode;
use netd_api::{Client, Events, Member};
use tracing::{debug, info, warn};

use crate::config::{Discover, IpFamily, ServiceConfig};
use crate::service::ServiceState;

/// Re-list this often even without events, in case some were missed.
const RESYNC: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const API_TIMEOUT: Duration = Duration::from_secs(5);
/// Events closer together than this are applied with one re-list...
const COALESCE: Duration = Duration::from_millis(20);
/// ...for at most this long.
const COALESCE_MAX: Duration = Duration::from_millis(200);

pub async fn run(svc: Arc<ServiceState>, cfg: Arc<ServiceConfig>) {
    match cfg.discover {
        Discover::Api => run_api(&svc, &cfg).await,
        Discover::Dns => run_dns(&svc, &cfg).await,
    }
}

// ---- netd API -------------------------------------------------------------

/// Members as (name, address:port), in address order, at their address of
/// `family`. Which endpoints are members is netd's answer: the same rule as
/// its DNS (alias, sandbox name, NAME.NETWORK, short id, any case). With
/// ipv6, an endpoint without an IPv6 address (an IPv4-only network, an
/// older daemon) is no member: its IPv4 address would mix families; with
/// ipv4, neither is one without an IPv4 address (an IPv6-only network).
pub fn member_addrs(eps: &[Member], port: u16, family: IpFamily) -> Vec<(String, SocketAddr)> {
    let mut v: Vec<(String, SocketAddr)> = eps
        .iter()
        .filter_map(|e| {
            let ip: IpAddr = match (family, e.ip, e.ip6) {
                (IpFamily::Ipv4, Some(ip), _) => ip.into(),
                (IpFamily::Ipv6, _, Some(ip6)) => ip6.into(),
                (IpFamily::Ipv4, None, _) => {
                    debug!(member = %e.sandbox_name, "no IPv4 address: skipped (ip_family ipv4)");
                    return None;
                }
                (IpFamily::Ipv6, _, None) => {
                    debug!(member = %e.sandbox_name, "no IPv6 address: skipped (ip_family ipv6)");
                    return None;
                }
            };
            Some((e.sandbox_name.clone(), SocketAddr::new(ip, port)))
        })
        .collect();
    v.sort_by_key(|(_, a)| *a);
    v
}

/// The members of `alias` on `network`; `None` when netd does not know
/// the network.
pub async fn list_members(
    socket: &Path,
    network: &str,
    alias: &str,
) -> Result<Option<Vec<Member>>> {
    let path = format!(
        "/netd/networks/{}/members/{}",
        netd_api::seg(network),
        netd_api::seg(alias)
    );
    let listed = tokio::time::timeout(API_TIMEOUT, Client::new(socket).get(&path))
        .await
        .context("netd did not answer in time")?;
    match listed {
        Ok(members) => Ok(Some(members)),
        Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("GET {path}")),
    }
}

/// `GET /netd/events`, followed.
async fn open_events(socket: &Path) -> Result<Events> {
    tokio::time::timeout(API_TIMEOUT, Client::new(socket).events("/netd/events"))
        .await
        .context("netd did not answer in time")?
        .context("GET /netd/events")
}

async fn relist(svc: &ServiceState, cfg: &ServiceConfig) -> Result<()> {
    let network = cfg.network.as_deref().unwrap_or_default();
    let list = match list_members(&cfg.socket, network, &cfg.alias).await? {
        Some(eps) => member_addrs(&eps, cfg.port, cfg.ip_family),
        None => {
            if svc.pool.members().is_empty() && !svc.pool.discovered() {
                warn!(service = %svc.name, network, "netd has no such network (yet)");
            }
            Vec::new()
        }
    };
    svc.apply_members(&list);
    Ok(())
}

async fn run_api(svc: &ServiceState, cfg: &ServiceConfig) {
    let mut backoff = Duration::from_millis(100);
    let mut failing = false;
    loop {
        // Subscribe first, then list: a change between the two is not lost.
        let res = async {
            let ev = open_events(&cfg.socket).await?;
            relist(svc, cfg).await?;
            Ok::<_, anyhow::Error>(ev)
        }
        .await;
        let mut events = match res {
            Ok(ev) => ev,
            Err(e) => {
                svc.metrics.discovery_errors.fetch_add(1, Relaxed);
                if !failing {
                    warn!(service = %svc.name, "netd API: {e:#}; keeping the {} known members, retrying", svc.pool.members().len());
                    failing = true;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        if failing {
            info!(service = %svc.name, "netd API reachable again");
            failing = false;
        }
        backoff = Duration::from_millis(100);
        loop {
            match tokio::time::timeout(RESYNC, events.next_line()).await {
                // Quiet for a while: re-list anyway.
                Err(_) => {}
                Ok(Ok(Some(line))) => {
                    debug!(service = %svc.name, event = %line, "netd event");
                    // A burst (a sandbox on several networks, a compose
                    // project starting) costs one re-list, not one each.
                    let until = tokio::time::Instant::now() + COALESCE_MAX;
                    while let Ok(Ok(Some(line))) = tokio::time::timeout_at(
                        until.min(tokio::time::Instant::now() + COALESCE),
                        events.next_line(),
                    )
                    .await
                    {
                        debug!(service = %svc.name, event = %line, "netd event");
                    }
                }
                Ok(Ok(None)) => {
                    warn!(service = %svc.name, "netd event stream ended; reconnecting");
                    break;
                }
                Ok(Err(e)) => {
                    warn!(service = %svc.name, "netd event stream: {e:#}; reconnecting");
                    break;
                }
            }
            if let Err(e) = relist(svc, cfg).await {
                svc.metrics.discovery_errors.fetch_add(1, Relaxed);
                warn!(service = %svc.name, "list members: {e:#}; reconnecting");
                break;
            }
        }
    }
}

// ---- DNS ------------------------------------------------------------------

async fn run_dns(svc: &ServiceState, cfg: &ServiceConfig) {
    let Some(server) = cfg.dns_server else {
        warn!(service = %svc.name, "DNS discovery without a DNS server");
        return;
    };
    let mut failing = false;
    loop {
        match crate::dns::lookup(server, &cfg.alias, cfg.ip_family, Duration::from_secs(2)).await {
            Ok(ips) => {
                if failing {
                    info!(service = %svc.name, %server, "DNS answers again");
                    failing = false;
                }
                let list: Vec<(String, SocketAddr)> = ips
                    .into_iter()
                    .map(|ip| (ip.to_string(), SocketAddr::new(ip, cfg.port)))
                    .collect();
                svc.apply_members(&list);
            }
            Err(e) => {
                svc.metrics.discovery_errors.fetch_add(1, Relaxed);
                if !failing {
                    warn!(service = %svc.name, %server, "DNS {} lookup of {:?}: {e:#}; keeping the known members", crate::dns::record_type(cfg.ip_family), cfg.alias);
                    failing = true;
                }
            }
        }
        tokio::time::sleep(cfg.dns_interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_in_address_order() {
        let eps: Vec<Member> = serde_json::from_str(
            r#"[
            {"sandbox_name":"a","ip":"10.0.0.3","aliases":["web"],"network_name":"n"},
            {"sandbox_name":"web","ip":"10.0.0.4","aliases":[]},
            {"sandbox_name":"c","ip":"10.0.0.2","aliases":["db","web"]}
        ]"#,
        )
        .unwrap();
        let m = member_addrs(&eps, 80, IpFamily::Ipv4);
        let names: Vec<_> = m.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["c", "a", "web"]);
        assert_eq!(m[0].1, "10.0.0.2:80".parse().unwrap());
    }

    #[test]
    fn ipv6_members_by_their_ip6_and_without_one_skipped() {
        let eps: Vec<Member> = serde_json::from_str(
            r#"[
            {"sandbox_name":"a","ip":"10.0.0.3","ip6":"fd00::3"},
            {"sandbox_name":"old","ip":"10.0.0.4"},
            {"sandbox_name":"c","ip":"10.0.0.2","ip6":"fd00::10"}
        ]"#,
        )
        .unwrap();
        let m = member_addrs(&eps, 80, IpFamily::Ipv6);
        assert_eq!(
            m,
            [
                ("a".to_string(), "[fd00::3]:80".parse().unwrap()),
                ("c".to_string(), "[fd00::10]:80".parse().unwrap()),
            ]
        );
        // ipv4 ignores ip6.
        assert_eq!(member_addrs(&eps, 80, IpFamily::Ipv4).len(), 3);
    }
}
