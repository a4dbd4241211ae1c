//! `netd network ...`: create (one subnet, gateway and ip-range per
//! family), ls, inspect, rm, prune, connect, disconnect.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use super::template::Template;
use super::{
    EndpointArgs, confirm, endpoint_request, inspect, key_value, label, print_json, print_table,
    remove,
};
use crate::model::NetworkCreate;
use crate::ops::{EndpointDetail, NetworkDetail};
use netd_api::blocking::Client;
use netd_api::{Disconnect, Prune, Pruned, seg};

#[derive(Subcommand, Debug)]
pub enum NetworkCmd {
    /// Create a network.
    Create {
        #[arg(long, short = 'd', default_value = "bridge")]
        driver: String,
        /// Subnet in CIDR form, at most one per family (an IPv6 one needs
        /// --ipv6); a free private range when omitted.
        #[arg(long)]
        subnet: Vec<String>,
        /// Gateway address per family (default: the subnet's first address).
        #[arg(long)]
        gateway: Vec<String>,
        /// Allocate dynamic addresses from this sub-range (one per family).
        #[arg(long)]
        ip_range: Vec<String>,
        /// NAME=IP: an address of the subnet (either family) never handed
        /// out, for a host or router already on the segment. Repeatable.
        #[arg(long = "aux-address", value_parser = key_value)]
        aux_addresses: Vec<(String, String)>,
        /// Dual-stack: an IPv6 subnet too (a ULA /64 when none is given).
        #[arg(long)]
        ipv6: bool,
        /// IPv4 on the network (default true); `--ipv4=false --ipv6` makes
        /// an IPv6-only network, as Docker's.
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
        ipv4: Option<bool>,
        /// No route out, no masquerade.
        #[arg(long)]
        internal: bool,
        /// An upstream DNS server of the network's sandboxes (podman's
        /// `--dns`): 127.0.0.11 forwards their other names there instead of
        /// to the daemon's upstreams. Repeatable.
        #[arg(long = "dns", value_name = "IP")]
        dns: Vec<String>,
        /// Driver options KEY=VALUE: com.docker.network.bridge.name, com.docker.network.driver.mtu,
        /// com.docker.network.bridge.enable_ip_masquerade, com.docker.network.bridge.enable_icc,
        /// com.docker.network.bridge.gateway_mode_ipv6 (nat or routed; needs --ipv6),
        /// netd.forward_accept (auto, or FAMILY/TABLE/CHAIN,...: accept rules for the
        /// bridge in the host firewall's forward chains; see docs/security.md).
        #[arg(long = "opt", short = 'o', value_parser = key_value)]
        opts: Vec<(String, String)>,
        /// Metadata KEY[=VALUE].
        #[arg(long = "label", value_parser = label)]
        labels: Vec<(String, String)>,
        /// Only hold the IPAM settings (--subnet, --gateway, --ip-range,
        /// --aux-address, --ipv6, --ipv4) and options for networks made
        /// with --config-from; nothing joins it and nothing is made.
        #[arg(long, conflicts_with = "config_from")]
        config_only: bool,
        /// Take the IPAM settings, options and labels of this config-only
        /// network (by name); none of those may be given here.
        #[arg(long, value_name = "NAME")]
        config_from: Option<String>,
        name: String,
    },
    /// List networks.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Show networks in detail (JSON).
    Inspect {
        /// A template per network, as Docker's: `{{.Name}}`, `{{json .Driver}}`.
        #[arg(long, short)]
        format: Option<String>,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove networks.
    #[command(alias = "remove")]
    Rm {
        /// A network that does not exist is not an error.
        #[arg(long, short)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove every user-defined network no sandbox uses.
    Prune {
        /// Do not ask for confirmation.
        #[arg(long, short)]
        force: bool,
        /// label=KEY[=VALUE], label!=KEY[=VALUE], until=TIME.
        #[arg(long = "filter")]
        filters: Vec<String>,
    },
    /// Connect a sandbox to a network.
    Connect {
        #[command(flatten)]
        endpoint: EndpointArgs,
        network: String,
        sandbox: String,
    },
    /// Disconnect a sandbox from a network.
    Disconnect {
        /// Remove the record even if the kernel objects cannot be cleaned up.
        #[arg(long, short)]
        force: bool,
        network: String,
        sandbox: String,
    },
}

#[derive(clap::Args, Debug)]
pub struct LsArgs {
    /// `table` (the default), `json`, or a template as Docker's:
    /// `{{.Name}}\t{{.ID}}`, `table {{.Name}}\t{{.Driver}}`. Fields: ID,
    /// Name, Driver, Scope, Subnet, Endpoints, IPv6, Internal, Labels, CreatedAt.
    #[arg(long, default_value = "table")]
    format: String,
    /// Only print ids.
    #[arg(long, short)]
    quiet: bool,
    /// KEY=VALUE, repeatable, as `docker network ls --filter`: name and id
    /// (regular expressions), driver, scope, type, dangling, label.
    #[arg(long = "filter", short)]
    filters: Vec<String>,
    /// Full ids.
    #[arg(long)]
    no_trunc: bool,
}

/// `--filter KEY=VALUE` flags in Docker's `filters` shape.
fn filter_map(specs: &[String]) -> Result<BTreeMap<String, BTreeMap<String, bool>>> {
    let mut f: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    for spec in specs {
        let (k, v) = spec
            .split_once('=')
            .with_context(|| format!("invalid --filter {spec:?}: expected KEY=VALUE"))?;
        f.entry(k.to_string())
            .or_default()
            .insert(v.to_string(), true);
    }
    Ok(f)
}

/// A network as `ls --format` templates see it (Docker's field names).
fn ls_item(d: &NetworkDetail, no_trunc: bool) -> Value {
    let n = &d.network;
    let row = network_row(d);
    let labels: Vec<String> = n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    json!({
        "ID": if no_trunc { n.id.to_string() } else { n.id.short().to_string() },
        "Name": n.name,
        "Driver": n.driver.name(),
        "Scope": "local",
        "Subnet": row[4],
        "Endpoints": d.endpoints.len(),
        "IPv6": n.bridge().is_some_and(|b| b.ipv6.is_some()),
        "Internal": n.bridge().is_some_and(|b| b.internal),
        "Labels": labels.join(","),
        "CreatedAt": n.created,
    })
}

fn ls(c: &Client, a: LsArgs) -> Result<()> {
    let filter = crate::daemon::docker::Filters::parse(Some(&serde_json::to_string(&filter_map(
        &a.filters,
    )?)?))
    .and_then(|f| f.networks())
    .map_err(|e| anyhow::anyhow!(e))?;
    let list: Vec<NetworkDetail> = c.get("/netd/networks")?;
    let list: Vec<&NetworkDetail> = list.iter().filter(|d| filter.matches(d)).collect();
    if a.quiet {
        for d in list {
            let id = &d.network.id;
            println!("{}", if a.no_trunc { id.as_str() } else { id.short() });
        }
        return Ok(());
    }
    match a.format.as_str() {
        "json" => print_json(&list)?,
        "table" => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|d| {
                    let mut r = network_row(d);
                    if a.no_trunc {
                        r[0] = d.network.id.to_string();
                    }
                    r
                })
                .collect();
            print_table(
                &[
                    "NETWORK ID",
                    "NAME",
                    "DRIVER",
                    "SCOPE",
                    "SUBNET",
                    "ENDPOINTS",
                ],
                &rows,
            );
        }
        t => {
            let t = Template::parse(t)?;
            if t.table {
                println!("{}", t.header());
            }
            for d in list {
                println!("{}", t.render(&ls_item(d, a.no_trunc))?);
            }
        }
    }
    Ok(())
}

/// A repeatable flag's values as (IPv4, IPv6), as Docker takes `--subnet`
/// once per family.
fn by_family(flag: &str, values: Vec<String>) -> Result<(Option<String>, Option<String>)> {
    let (v6, v4): (Vec<String>, Vec<String>) = values.into_iter().partition(|v| v.contains(':'));
    for (family, vs) in [("IPv4", &v4), ("IPv6", &v6)] {
        if vs.len() > 1 {
            bail!(
                "{} {family} {flag} values ({}): give at most one per family",
                vs.len(),
                vs.join(", ")
            );
        }
    }
    Ok((v4.into_iter().next(), v6.into_iter().next()))
}

pub(super) fn network(c: &Client, cmd: NetworkCmd) -> Result<()> {
    match cmd {
        NetworkCmd::Create {
            driver,
            subnet,
            gateway,
            ip_range,
            aux_addresses,
            ipv6,
            ipv4,
            internal,
            dns,
            opts,
            labels,
            config_only,
            config_from,
            name,
        } => {
            let (subnet, subnet6) = by_family("--subnet", subnet)?;
            let (gateway, gateway6) = by_family("--gateway", gateway)?;
            let (ip_range, ip_range6) = by_family("--ip-range", ip_range)?;
            let mut aux = BTreeMap::new();
            for (k, v) in aux_addresses {
                if let Some(first) = aux.insert(k.clone(), v.clone()) {
                    bail!("--aux-address {k} given twice ({first} and {v})");
                }
            }
            let req = NetworkCreate {
                name,
                driver,
                subnet,
                gateway,
                ip_range,
                ipv4,
                ipv6,
                subnet6,
                gateway6,
                ip_range6,
                internal,
                options: opts.into_iter().collect(),
                labels: labels.into_iter().collect(),
                aux_addresses: aux,
                dns,
                config_only,
                config_from,
            };
            // Refuse bad input before it reaches the daemon, with the same message.
            req.validate()?;
            let d: NetworkDetail = c.post("/netd/networks", &req)?;
            println!("{}", d.network.id);
        }
        NetworkCmd::Ls(a) => ls(c, a)?,
        NetworkCmd::Inspect {
            format: None,
            names,
        } => inspect::<NetworkDetail>(c, "networks", &names)?,
        NetworkCmd::Inspect {
            format: Some(t),
            names,
        } => {
            let t = Template::parse(&t)?;
            let mut missing = Vec::new();
            for n in &names {
                match c.get::<Value>(&format!("/netd/networks/{}", seg(n))) {
                    Ok(d) => println!("{}", t.render(&d)?),
                    Err(e) => missing.push(e.to_string()),
                }
            }
            if !missing.is_empty() {
                bail!("{}", missing.join("; "));
            }
        }
        NetworkCmd::Rm {
            force: false,
            names,
        } => remove(c, "networks", &names, "")?,
        NetworkCmd::Rm { force: true, names } => {
            let mut failed = Vec::new();
            for n in &names {
                match c.delete::<Value>(&format!("/netd/networks/{}", seg(n))) {
                    Ok(_) => println!("{n}"),
                    // As Docker's -f: a network already gone is no error.
                    Err(e) if e.status() == Some(netd_api::StatusCode::NOT_FOUND) => {}
                    Err(e) => failed.push(e.to_string()),
                }
            }
            if !failed.is_empty() {
                bail!("{}", failed.join("; "));
            }
        }
        NetworkCmd::Prune { force, filters } => {
            let f = filter_map(&filters)?;
            if !force
                && !confirm(
                    "WARNING! This will remove all custom networks not used by at least one sandbox.",
                )?
            {
                bail!("prune cancelled");
            }
            let r: Pruned = c.post(
                "/netd/networks/prune",
                &Prune {
                    filters: Some(serde_json::to_value(f)?),
                },
            )?;
            if !r.removed.is_empty() {
                println!("Deleted Networks:");
                for n in r.removed {
                    println!("{n}");
                }
            }
        }
        NetworkCmd::Connect {
            endpoint,
            network,
            sandbox,
        } => {
            let endpoint = endpoint_request(endpoint)?;
            let _: EndpointDetail = c.post(
                &format!("/netd/networks/{}/connect", seg(&network)),
                &json!({ "sandbox": sandbox, "endpoint": endpoint }),
            )?;
        }
        NetworkCmd::Disconnect {
            force,
            network,
            sandbox,
        } => {
            let _: Value = c.post(
                &format!("/netd/networks/{}/disconnect", seg(&network)),
                &Disconnect { sandbox, force },
            )?;
        }
    }
    Ok(())
}

/// A `network ls` row. SUBNET lists both families, comma-separated with no
/// space as the sandbox table's IPS, so the table still splits on blanks.
fn network_row(d: &NetworkDetail) -> Vec<String> {
    let n = &d.network;
    let subnets: Vec<String> = match (n.bridge(), n.config_only()) {
        (Some(b), _) => b.subnets().iter().map(ToString::to_string).collect(),
        // A config-only network's subnets, held for the networks made from it.
        (None, Some(c)) => c
            .subnet
            .map(|s| s.to_string())
            .into_iter()
            .chain(c.subnet6.map(|s| s.to_string()))
            .collect(),
        (None, None) => Vec::new(),
    };
    vec![
        n.id.short().to_string(),
        n.name.to_string(),
        n.driver.name().to_string(),
        "local".into(),
        subnets.join(","),
        d.endpoints.len().to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fixtures;

    #[test]
    fn by_family_takes_one_of_each_and_names_extras() {
        let v = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (a, b) = by_family("--subnet", v(&["fd00::/64", "10.1.0.0/24"])).unwrap();
        assert_eq!(a.as_deref(), Some("10.1.0.0/24"));
        assert_eq!(b.as_deref(), Some("fd00::/64"));
        let e = by_family("--subnet", v(&["fd00:1::/64", "fd00:2::/64"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("fd00:1::/64, fd00:2::/64"), "{e}");
    }

    #[test]
    fn ls_rows_show_the_ipv6_subnet_beside_the_ipv4_one() {
        let row = |n| {
            network_row(&NetworkDetail {
                network: n,
                endpoints: vec![],
            })[4]
                .clone()
        };
        let n = fixtures::network("ds", "10.9.0.0/24");
        assert_eq!(row(n.clone()), "10.9.0.0/24");
        assert_eq!(
            row(fixtures::with_ipv6(n, "fd00:9::/64")),
            "10.9.0.0/24,fd00:9::/64"
        );
    }
}
