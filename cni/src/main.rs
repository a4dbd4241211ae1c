//! `netd-cni`: the CNI plugin. Exec'd by a container runtime with the
//! command in `CNI_COMMAND`, the configuration on stdin; answers on stdout,
//! logs on stderr. It calls the same netd operations as the CLI and the
//! daemon, and does the kernel work itself in the namespace it runs in:
//! attaching never waits for a daemon.

mod dns;
mod ipam;
mod reap;

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use netd::Netd;
use netd::kernel::{Netlink, netns};
use netd::model::{BridgeConfig, EndpointRequest, Mac, Network, SandboxCreate, SandboxNet};
use netd::ops::{DEFAULT_RUN_DIR, DEFAULT_STATE_DIR, EndpointDetail, SandboxDetail};
use netd::store::Ref;
use netd_cni::{
    Attachment, CniError, Command, Env, NetConf, SUPPORTED, code, command_allowed, expected,
    result, sandbox_name, valid_attachments,
};
use serde_json::{Value, json};

fn var(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

pub(crate) fn state_dir(conf: &NetConf) -> PathBuf {
    conf.state_dir
        .clone()
        .or_else(|| var("NETD_STATE_DIR"))
        .unwrap_or_else(|| DEFAULT_STATE_DIR.into())
        .into()
}

pub(crate) fn socket(conf: &NetConf) -> PathBuf {
    conf.socket
        .clone()
        .or_else(|| var("NETD_SOCKET"))
        .unwrap_or_else(|| format!("{DEFAULT_RUN_DIR}/netd.sock"))
        .into()
}

fn main() {
    reap::run_if_asked();
    // netd's own warnings (forced removals, firewall rebuilds) go to stderr,
    // which runtimes log; NETD_LOG=debug shows more.
    let filter = tracing_subscriber::EnvFilter::try_from_env("NETD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();

    let read = if var("CNI_COMMAND").is_none() {
        // For a human running the binary, as the reference plugins print;
        // the error result below still says what is missing (code 4).
        eprintln!("CNI netd-cni plugin v{}", env!("CARGO_PKG_VERSION"));
        eprintln!("CNI protocol versions supported: {}", SUPPORTED.join(", "));
        Ok(Vec::new())
    } else {
        netd_cni::read_config(std::io::stdin().lock())
    };
    let stdin = read.as_deref().unwrap_or_default();
    let asked = serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| v["cniVersion"].as_str().map(str::to_string));
    let out = match &read {
        Ok(stdin) => run(stdin, asked.as_deref()),
        Err(e) => Err(e.clone()),
    };
    let mut stdout = std::io::stdout();
    match out {
        Ok(Some(v)) => {
            let _ = writeln!(stdout, "{v}");
        }
        Ok(None) => {}
        Err(e) => {
            // Errors are written in the configuration's version when this
            // plugin speaks it, else in the newest.
            let version = asked
                .as_deref()
                .filter(|v| SUPPORTED.contains(v))
                .unwrap_or("1.1.0");
            eprintln!("netd-cni: {e}");
            let _ = writeln!(stdout, "{}", e.to_json(version));
            let _ = stdout.flush();
            std::process::exit(1);
        }
    }
}

fn run(stdin: &[u8], asked: Option<&str>) -> Result<Option<Value>, CniError> {
    // Undecodable input is reported before the environment is (both come
    // before anything else); VERSION needs no configuration.
    if var("CNI_COMMAND").is_some_and(|c| c != "VERSION") {
        netd_cni::decode(stdin)?;
    }
    let env = Env::from(var)?;
    if env.command == Command::Version {
        return Ok(Some(json!({
            "cniVersion": asked.unwrap_or("1.1.0"),
            "supportedVersions": SUPPORTED,
        })));
    }
    let conf = NetConf::parse(stdin)?;
    command_allowed(env.command, &conf.cni_version)?;
    let raw: Value = serde_json::from_slice(stdin).unwrap_or_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            CniError::new(code::GENERIC, "cannot start a runtime").details(e.to_string())
        })?;
    rt.block_on(async {
        match env.command {
            Command::Add => add(&conf, &env, stdin).await.map(Some),
            Command::Del => del(&conf, &env, stdin).await.map(|_| None),
            Command::Check => check(&conf, &env, stdin).await.map(|_| None),
            Command::Gc => gc(&conf, &raw).await.map(|_| None),
            Command::Status => status(&conf).await.map(|_| None),
            Command::Version => unreachable!("answered above"),
        }
    })
}

fn netd_error(e: netd::Error) -> CniError {
    use netd::error::Kind;
    let c = match e.kind() {
        Kind::Invalid | Kind::NotFound | Kind::Forbidden => code::INVALID_CONFIG,
        // A lock (the store's, a sandbox's, the firewall's) stayed held past
        // netd's wait: the runtime may retry.
        Kind::Busy => code::TRY_LATER,
        Kind::Conflict | Kind::Internal => code::GENERIC,
    };
    CniError::new(c, e.to_string())
}

fn kernel_error(what: &str) -> impl Fn(anyhow::Error) -> CniError + '_ {
    move |e| CniError::new(code::GENERIC, what.to_string()).details(format!("{e:#}"))
}

async fn open(conf: &NetConf) -> Result<Netd, CniError> {
    Netd::open(&state_dir(conf)).await.map_err(netd_error)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// CNI_NETNS must be a live namespace, and not the one the plugin runs in.
fn check_netns(path: &str) -> Result<(), CniError> {
    if !netns::is_netns(Path::new(path)) {
        return Err(CniError::new(
            code::INVALID_ENV,
            format!("CNI_NETNS {path} is not a network namespace"),
        ));
    }
    if same_file(Path::new(path), &netns::own_netns_path()) {
        return Err(CniError::new(
            code::INVALID_ENV,
            "the plugin's netns and the netns from CNI_NETNS should not be the same",
        )
        .details(path.to_string()));
    }
    Ok(())
}

fn mac_string(bytes: Option<&[u8]>) -> String {
    match bytes.and_then(|b| <[u8; 6]>::try_from(b).ok()) {
        Some(m) => Mac(m).to_string(),
        None => String::new(),
    }
}

// ---- the network --------------------------------------------------------------

/// The netd network for this configuration. With a delegated IPAM and no
/// `subnet`/`gateway` keys, the lease's subnet and gateway are the network's.
/// The network named in the config, created on first use (true when this
/// call created it). An existing one with settings other than the keys the
/// configuration gives is a configuration error.
async fn ensure_network(
    netd: &Netd,
    conf: &NetConf,
    lease: Option<&ipam::Lease>,
) -> Result<(BridgeConfig, bool), CniError> {
    let req = netd_cni::network_request(conf, lease.map(|l| (l.address, l.gateway)));
    let want = req
        .validate()
        .map_err(|e| CniError::new(code::INVALID_CONFIG, e.0))?;
    for _ in 0..3 {
        match netd.network(Ref::Name(&conf.name)) {
            Ok(net) => {
                let Some(b) = net.bridge() else {
                    return Err(CniError::new(
                        code::INVALID_CONFIG,
                        format!("network {} is not a bridge network", conf.name),
                    ));
                };
                let mut differs = Vec::new();
                let mut cmp = |key: &str, have: String, want: Option<String>| {
                    if let Some(w) = want
                        && w != have
                    {
                        differs.push(format!(
                            "{key}: the network has {have}, the configuration {w}"
                        ));
                    }
                };
                let s = |v: &dyn ToString| v.to_string();
                cmp("subnet", s(&b.subnet), want.subnet.map(|v| s(&v)));
                cmp("gateway", s(&b.gateway), want.gateway.map(|v| s(&v)));
                cmp(
                    "ipRange",
                    b.ip_range.map(|v| s(&v)).unwrap_or_else(|| s(&b.subnet)),
                    want.ip_range.map(|v| s(&v)),
                );
                cmp("bridge", s(&b.bridge), want.bridge.as_ref().map(|v| s(v)));
                cmp(
                    "mtu",
                    b.mtu.map(|v| s(&v)).unwrap_or_else(|| "default".into()),
                    want.mtu.map(|v| s(&v)),
                );
                cmp("internal", s(&b.internal), conf.internal.map(|v| s(&v)));
                cmp(
                    "ipMasq",
                    s(&(b.masquerade || b.internal)),
                    conf.ip_masq.map(|v| s(&v)),
                );
                cmp("isolate", s(&!b.icc), conf.isolate.map(|v| s(&v)));
                if !differs.is_empty() {
                    return Err(CniError::new(
                        code::INVALID_CONFIG,
                        format!(
                            "network {} exists with other settings than the configuration's",
                            conf.name
                        ),
                    )
                    .details(differs.join("; ")));
                }
                return Ok((b.clone(), false));
            }
            Err(netd::Error::NotFound(_)) => match netd.create_network(&req).await {
                Ok(net) => return Ok((bridge_of(&net, conf)?, true)),
                // Another plugin created it at the same moment: look again.
                Err(netd::Error::Conflict(m)) if m.contains("already exists") => continue,
                Err(e) => return Err(netd_error(e)),
            },
            Err(e) => return Err(netd_error(e)),
        }
    }
    Err(CniError::new(
        code::TRY_LATER,
        format!("network {} could not be created", conf.name),
    ))
}

/// Remove a network this ADD created, if nothing else joined it meanwhile.
async fn drop_new_network(netd: &Netd, conf: &NetConf) {
    if netd
        .inspect_network(Ref::Name(&conf.name))
        .is_ok_and(|d| d.endpoints.is_empty())
        && let Err(e) = netd.remove_network(Ref::Name(&conf.name)).await
    {
        eprintln!(
            "netd-cni: undo: could not remove network {}: {e}",
            conf.name
        );
    }
}

// ---- ADD ------------------------------------------------------------------------

/// The delegated IPAM plugin's type, if the configuration names one.
fn ipam_type(conf: &NetConf) -> Option<&str> {
    conf.ipam.as_ref().and_then(|i| i["type"].as_str())
}

async fn add(conf: &NetConf, e: &Env, stdin: &[u8]) -> Result<Value, CniError> {
    let netns = e.netns.clone().unwrap_or_default();
    check_netns(&netns)?;
    let req = netd_cni::endpoint_request(conf, e)?;
    let Some(kind) = ipam_type(conf) else {
        return add_with(conf, e, &netns, req, None).await;
    };
    let lease = ipam::lease(&ipam::exec(stdin, kind, "ADD", e)?);
    let out = match lease {
        Ok(lease) => add_with(conf, e, &netns, req, Some(&lease)).await,
        Err(err) => Err(err),
    };
    if out.is_err() {
        // Give the address back: nothing of this ADD stays.
        if let Err(undo) = ipam::exec(stdin, kind, "DEL", e) {
            eprintln!("netd-cni: undo: ipam DEL failed: {}", undo.msg);
        }
    }
    out
}

async fn add_with(
    conf: &NetConf,
    e: &Env,
    netns: &str,
    mut req: EndpointRequest,
    lease: Option<&ipam::Lease>,
) -> Result<Value, CniError> {
    let netns = netns.to_string();
    if let Some(l) = lease {
        req.ip = Some(l.address.addr());
    }
    let netd = open(conf).await?;
    let (bridge, created) = ensure_network(&netd, conf, lease).await?;
    // The daemon adds the names while the interfaces are made and the result
    // is put together: begun once the sandbox is recorded. Should the ADD
    // fail, the daemon's full re-read shortly after drops them again.
    let mut handoff = None;
    let attached = async {
        let inside = Netlink::in_netns(Path::new(&netns))
            .map_err(kernel_error("cannot open the container's namespace"))?;
        if inside
            .link(&e.ifname)
            .await
            .map_err(kernel_error("cannot read the container's interfaces"))?
            .is_some()
        {
            // Most likely another container's interface: say whose.
            netd.check_namespace_free(&netns, &sandbox_name(&e.container))
                .map_err(netd_error)?;
            return Err(CniError::new(
                code::GENERIC,
                format!("interface {} already exists in {netns}", e.ifname),
            ));
        }
        let ep = attach(&netd, conf, e, &netns, &req, &mut handoff).await?;
        Ok((inside, ep))
    };
    let (inside, ep) = match attached.await {
        Ok(x) => x,
        Err(err) => {
            if created {
                drop_new_network(&netd, conf).await;
            }
            return Err(err);
        }
    };
    if conf.dns() && handoff.is_none() {
        handoff = Some(dns::begin(conf, ep.sandbox_name.as_str()));
    }
    let out = match describe(&netd, conf, &bridge, &ep, &netns, &inside).await {
        Ok(a) => result(&conf.cni_version, &a, conf.prev_result.as_ref()),
        Err(err) => {
            // Undo everything this ADD did.
            detach(&netd, conf, &ep.sandbox_name.to_string(), &e.ifname).await;
            if created {
                drop_new_network(&netd, conf).await;
            }
            return Err(err);
        }
    };
    if let Some(h) = handoff {
        h.finish(conf).await;
    }
    Ok(out)
}

/// Put the container's namespace on the network through netd: a new
/// sandbox named after the container, or a second endpoint of the one it has.
/// A new sandbox's DNS hand-off is begun as soon as it is recorded.
async fn attach(
    netd: &Netd,
    conf: &NetConf,
    e: &Env,
    netns: &str,
    req: &EndpointRequest,
    handoff: &mut Option<dns::Handoff>,
) -> Result<EndpointDetail, CniError> {
    let name = sandbox_name(&e.container);
    for _ in 0..3 {
        match netd.inspect_sandbox(Ref::Name(&name)) {
            Ok(sb) if !same_file(Path::new(&sb.netns), Path::new(netns)) => {
                if netns::is_netns(Path::new(&sb.netns)) {
                    return Err(CniError::new(
                        code::INVALID_CONFIG,
                        format!(
                            "sandbox {name} (container {}) is already attached in namespace {}",
                            e.container, sb.netns
                        ),
                    ));
                }
                // A container of that id whose namespace is gone and whose
                // DEL never came: forget it.
                eprintln!(
                    "netd-cni: removing stale sandbox {name} ({} is gone)",
                    sb.netns
                );
                match netd.remove_sandbox(Ref::Name(&name), true).await {
                    Ok(_) | Err(netd::Error::NotFound(_)) => continue,
                    Err(err) => return Err(netd_error(err)),
                }
            }
            Ok(sb) => {
                // The interface is not in the namespace (checked before): an
                // endpoint on this network is left over from an ADD without DEL.
                if sb
                    .endpoints
                    .iter()
                    .any(|x| x.network_name.as_str() == conf.name)
                {
                    match netd
                        .disconnect(Ref::Name(&conf.name), Ref::Name(&name), true)
                        .await
                    {
                        Ok(()) | Err(netd::Error::NotFound(_)) => {}
                        Err(err) => return Err(netd_error(err)),
                    }
                }
                return netd
                    .connect(Ref::Name(&conf.name), Ref::Name(&name), req)
                    .await
                    .map_err(netd_error);
            }
            Err(netd::Error::NotFound(_)) => {
                let create = SandboxCreate {
                    name: name.clone(),
                    network: Some(conf.name.clone()),
                    netns: Some(netns.to_string()),
                    endpoint: req.clone(),
                };
                let made = netd
                    .create_sandbox_and(&create, |sb| {
                        if conf.dns() {
                            *handoff = Some(dns::begin(conf, sb.name.as_str()));
                        }
                    })
                    .await;
                return match made {
                    Ok(d) => d
                        .endpoints
                        .into_iter()
                        .next()
                        .ok_or_else(|| CniError::new(code::GENERIC, "no endpoint was made")),
                    // The same container's ADD on another network at the same moment.
                    Err(netd::Error::Conflict(m)) if m.contains("already exists") => continue,
                    Err(err) => Err(netd_error(err)),
                };
            }
            Err(err) => return Err(netd_error(err)),
        }
    }
    Err(CniError::new(
        code::TRY_LATER,
        format!("sandbox {name} changed while attaching"),
    ))
}

/// The bridge settings of the configuration's netd network.
fn bridge_config(netd: &Netd, conf: &NetConf) -> Result<BridgeConfig, CniError> {
    bridge_of(
        &netd.network(Ref::Name(&conf.name)).map_err(netd_error)?,
        conf,
    )
}

fn bridge_of(net: &Network, conf: &NetConf) -> Result<BridgeConfig, CniError> {
    net.bridge().cloned().ok_or_else(|| {
        CniError::new(
            code::GENERIC,
            format!("network {} is not a bridge network", conf.name),
        )
    })
}

/// The attachment as the kernel now has it.
async fn describe(
    netd: &Netd,
    conf: &NetConf,
    b: &BridgeConfig,
    ep: &EndpointDetail,
    netns: &str,
    inside: &Netlink,
) -> Result<Attachment, CniError> {
    let hv = netd
        .host()
        .link(ep.host_veth.as_str())
        .await
        .map_err(kernel_error("cannot read the host interface"))?
        .ok_or_else(|| {
            CniError::new(
                code::GENERIC,
                format!("host interface {} vanished", ep.host_veth),
            )
        })?;
    let gw = inside
        .default_gateway()
        .await
        .map_err(kernel_error("cannot read the container's routes"))?;
    Ok(Attachment {
        host_ifname: ep.host_veth.to_string(),
        host_mac: mac_string(hv.mac.as_deref()),
        ifname: ep.endpoint.ifname.to_string(),
        mac: ep.endpoint.mac.to_string(),
        mtu: hv.mtu,
        netns: netns.to_string(),
        address: format!("{}/{}", ep.endpoint.ip, b.subnet.prefix_len()),
        gateway: b.gateway.to_string(),
        default_route: !b.internal && gw == Some(b.gateway),
        dns: conf.dns(),
    })
}

// ---- DEL ------------------------------------------------------------------------

/// Take the attachment (this network, this interface) off the sandbox, and
/// the sandbox with its last endpoint. Best effort: kernel failures are
/// logged, the records and the address go anyway.
async fn detach(netd: &Netd, conf: &NetConf, name: &str, ifname: &str) -> Option<CniError> {
    match netd.inspect_sandbox(Ref::Name(name)) {
        Ok(sb) => detach_sandbox(netd, conf, &sb, ifname).await.err(),
        Err(netd::Error::NotFound(_)) => None,
        Err(err) => Some(netd_error(err)),
    }
}

/// Take `sb`'s attachment at `ifname` on this network away; an adopted
/// namespace left without attachments is forgotten too.
async fn detach_sandbox(
    netd: &Netd,
    conf: &NetConf,
    sb: &SandboxDetail,
    ifname: &str,
) -> Result<(), CniError> {
    let name = sb.sandbox.name.as_str();
    if sb
        .endpoints
        .iter()
        .any(|x| x.network_name.as_str() == conf.name && x.endpoint.ifname.as_str() == ifname)
    {
        match netd
            .disconnect(Ref::Name(&conf.name), Ref::Name(name), true)
            .await
        {
            Ok(()) | Err(netd::Error::NotFound(_)) => {}
            Err(err) => return Err(netd_error(err)),
        }
    }
    let adopted = matches!(sb.sandbox.net, SandboxNet::Namespace { owned: false, .. });
    // Read again: another ADD of this container may have attached it to
    // another network meanwhile.
    if adopted
        && netd
            .inspect_sandbox(Ref::Name(name))
            .is_ok_and(|s| s.endpoints.is_empty())
    {
        match netd.remove_sandbox(Ref::Name(name), true).await {
            // Conflict: attached elsewhere even later; that ADD keeps it.
            Ok(_) | Err(netd::Error::NotFound(_) | netd::Error::Conflict(_)) => {}
            Err(err) => return Err(netd_error(err)),
        }
    }
    Ok(())
}

async fn del(conf: &NetConf, e: &Env, stdin: &[u8]) -> Result<(), CniError> {
    let netd_side = del_netd(conf, e).await;
    // The delegated plugin releases its lease whatever happened on netd's
    // side (a DEL after a failed ADD, or twice, must still free it).
    if let Some(kind) = ipam_type(conf) {
        ipam::exec(stdin, kind, "DEL", e)?;
    }
    netd_side
}

async fn del_netd(conf: &NetConf, e: &Env) -> Result<(), CniError> {
    // The links go after DEL has returned (see reap.rs).
    let netd = open(conf).await?.defer_link_removal();
    let name = sandbox_name(&e.container);
    let detached = match netd.inspect_sandbox(Ref::Name(&name)) {
        Ok(sb) => {
            // A sandbox of that name in another live namespace is not this
            // container's.
            if let Some(ns) = &e.netns
                && netns::is_netns(Path::new(ns))
                && netns::is_netns(Path::new(&sb.netns))
                && !same_file(Path::new(ns), Path::new(&sb.netns))
            {
                eprintln!(
                    "netd-cni: sandbox {name} is in {}, not {ns}: nothing to delete",
                    sb.netns
                );
                return Ok(());
            }
            detach_sandbox(&netd, conf, &sb, &e.ifname)
                .await
                .map(|()| true)
        }
        Err(netd::Error::NotFound(_)) => Ok(false),
        Err(err) => Err(netd_error(err)),
    };
    // Only a running daemon needs to forget the names (never start one for
    // a DEL), and only when a sandbox of this name was there.
    let dns = (conf.dns() && !matches!(detached, Ok(false))).then(|| socket(conf));
    let links = netd.take_deferred_links();
    reap::spawn(&links, dns.as_deref(), netd.firewall_socket().ok());
    detached.map(|_| ())
}

// ---- CHECK ----------------------------------------------------------------------

async fn check(conf: &NetConf, e: &Env, stdin: &[u8]) -> Result<(), CniError> {
    if let Some(kind) = ipam_type(conf) {
        ipam::exec(stdin, kind, "CHECK", e)?;
    }
    let fail = |m: String| CniError::new(code::GENERIC, m);
    let netns = e.netns.clone().unwrap_or_default();
    let prev = conf
        .prev_result
        .as_ref()
        .ok_or_else(|| CniError::new(code::INVALID_CONFIG, "required prevResult missing"))?;
    let want = expected(prev, &e.ifname, &netns)?;
    if !netns::is_netns(Path::new(&netns)) {
        return Err(fail(format!("namespace {netns} is gone")));
    }
    let netd = open(conf).await?;
    let name = sandbox_name(&e.container);
    let sb = match netd.inspect_sandbox(Ref::Name(&name)) {
        Ok(sb) => sb,
        Err(netd::Error::NotFound(_)) => {
            return Err(CniError::new(
                code::UNKNOWN_CONTAINER,
                format!("unknown container {}", e.container),
            ));
        }
        Err(err) => return Err(netd_error(err)),
    };
    let ep = sb
        .endpoints
        .iter()
        .find(|x| x.network_name.as_str() == conf.name && x.endpoint.ifname.as_str() == e.ifname)
        .ok_or_else(|| {
            fail(format!(
                "container {} has no {} on network {}",
                e.container, e.ifname, conf.name
            ))
        })?;
    let b = bridge_config(&netd, conf)?;
    // The IP reservation in the store.
    let reserved = format!("{}/{}", ep.endpoint.ip, b.subnet.prefix_len());
    if !want.addresses.contains(&reserved) {
        return Err(fail(format!(
            "address {} of prevResult is not reserved: the store has {reserved} for {}",
            want.addresses.join(", "),
            e.container
        )));
    }
    // The host side: the veth, on the network's bridge.
    let host = Netlink::current().map_err(kernel_error("cannot open netlink"))?;
    let read = kernel_error("cannot read the host's interfaces");
    let hv = host
        .link(ep.host_veth.as_str())
        .await
        .map_err(&read)?
        .ok_or_else(|| fail(format!("host interface {} is missing", ep.host_veth)))?;
    let bridge = host
        .link(b.bridge.as_str())
        .await
        .map_err(&read)?
        .ok_or_else(|| fail(format!("bridge {} is missing", b.bridge)))?;
    if hv.controller != Some(bridge.index) {
        return Err(fail(format!(
            "host interface {} is not on bridge {}",
            ep.host_veth, b.bridge
        )));
    }
    // The container side: the interface, its MAC and address, the routes.
    let inside = Netlink::in_netns(Path::new(&netns))
        .map_err(kernel_error("cannot open the container's namespace"))?;
    let read = kernel_error("cannot read the container's network");
    let link = inside
        .link(&e.ifname)
        .await
        .map_err(&read)?
        .ok_or_else(|| fail(format!("interface {} is missing in {netns}", e.ifname)))?;
    let mac = mac_string(link.mac.as_deref());
    if let Some(m) = &want.mac
        && !m.eq_ignore_ascii_case(&mac)
    {
        return Err(fail(format!(
            "interface {} has MAC {mac}, prevResult says {m}",
            e.ifname
        )));
    }
    let addrs = inside.addresses(link.index).await.map_err(&read)?;
    for a in &want.addresses {
        if !addrs.iter().any(|x| x.to_string() == *a) {
            return Err(fail(format!("interface {} lacks address {a}", e.ifname)));
        }
    }
    for (dst, gw) in &want.routes {
        if dst == "0.0.0.0/0" {
            let have = inside.default_gateway().await.map_err(&read)?;
            if have.map(|g| g.to_string()) != *gw {
                return Err(fail(format!(
                    "the default route via {} is missing in {netns}",
                    gw.as_deref().unwrap_or("?")
                )));
            }
        } else {
            let dsts = inside.route_destinations().await.map_err(&read)?;
            if !dsts.iter().any(|d| d.to_string() == *dst) {
                return Err(fail(format!("the route to {dst} is missing in {netns}")));
            }
        }
    }
    Ok(())
}

// ---- STATUS and GC ------------------------------------------------------------------

/// Ready when the state dir takes writes and netd opens (store, netlink,
/// nftables); 50 otherwise.
async fn status(conf: &NetConf) -> Result<(), CniError> {
    let dir = state_dir(conf);
    let probe = dir.join(format!(".status-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .and_then(|_| std::fs::write(&probe, b"ok"))
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| {
            CniError::new(
                code::NOT_AVAILABLE,
                format!("state dir {} is not writable", dir.display()),
            )
            .details(e.to_string())
        })?;
    open(conf).await.map_err(|e| {
        CniError::new(code::NOT_AVAILABLE, "netd cannot open its state").details(e.to_string())
    })?;
    Ok(())
}

/// Remove every attachment of this network that the runtime no longer
/// lists; keep going past failures and report them at the end.
async fn gc(conf: &NetConf, raw: &Value) -> Result<(), CniError> {
    let valid: Vec<(String, String)> = valid_attachments(raw)?
        .into_iter()
        .map(|(c, i)| (sandbox_name(&c), i))
        .collect();
    // Links go after their records (below), so a daemon watching links
    // never takes one of these deletions for someone else's and puts the
    // link back.
    let netd = open(conf).await?.defer_link_removal();
    let mut failures = Vec::new();
    for sb in netd.list_sandboxes().map_err(netd_error)? {
        // Only namespaces netd adopted: what CNI plugins (and --netns) made.
        if !matches!(sb.sandbox.net, SandboxNet::Namespace { owned: false, .. }) {
            continue;
        }
        let name = sb.sandbox.name.to_string();
        for ep in &sb.endpoints {
            let key = (name.clone(), ep.endpoint.ifname.to_string());
            if ep.network_name.as_str() == conf.name && !valid.contains(&key) {
                if let Some(err) = detach(&netd, conf, &name, &key.1).await {
                    failures.push(format!("{name}/{}: {}", key.1, err.msg));
                } else {
                    eprintln!("netd-cni: GC removed {name}/{} from {}", key.1, conf.name);
                }
            }
        }
    }
    for link in netd.take_deferred_links() {
        if let Err(e) = netd.host().delete_link(&link).await {
            failures.push(format!("{link}: {e:#}"));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(
            CniError::new(code::GENERIC, "GC could not remove every stale attachment")
                .details(failures.join("; ")),
        )
    }
}
