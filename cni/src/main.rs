//! `netd-cni`: the CNI plugin. Exec'd by a container runtime with the
//! command in `CNI_COMMAND`, the configuration on stdin; answers on stdout.
//! It calls the same netd operations as the CLI and the daemon, and does the
//! kernel work itself in the namespace it runs in: attaching never waits for
//! a daemon.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use netd::Netd;
use netd::kernel::Netlink;
use netd::model::{EndpointRequest, NetworkCreate, SandboxCreate};
use netd::ops::{DEFAULT_STATE_DIR, EndpointDetail};
use netd_cni::{Attachment, CniError, NetConf, SUPPORTED, cni_arg, code, result, sandbox_name};
use serde_json::{Value, json};

struct Env {
    command: String,
    container: String,
    netns: Option<String>,
    ifname: String,
    args: String,
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

fn required(key: &str) -> Result<String, CniError> {
    env(key).ok_or_else(|| CniError::new(code::INVALID_ENV, format!("{key} is not set")))
}

fn netd_error(e: netd::Error) -> CniError {
    let c = match e {
        netd::Error::Invalid(_) | netd::Error::NotFound(_) => code::INVALID_CONFIG,
        netd::Error::Store(_) => code::TRY_LATER,
        _ => code::GENERIC,
    };
    CniError::new(c, e.to_string())
}

fn state_dir(conf: &NetConf) -> PathBuf {
    conf.state_dir
        .clone()
        .or_else(|| env("NETD_STATE_DIR"))
        .unwrap_or_else(|| DEFAULT_STATE_DIR.into())
        .into()
}

fn socket(conf: &NetConf) -> PathBuf {
    conf.socket
        .clone()
        .or_else(|| env("NETD_SOCKET"))
        .unwrap_or_else(|| "/run/netd/netd.sock".into())
        .into()
}

fn main() {
    let mut stdin = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut stdin);
    let version = serde_json::from_slice::<Value>(&stdin)
        .ok()
        .and_then(|v| v["cniVersion"].as_str().map(str::to_string))
        .unwrap_or_else(|| "1.1.0".to_string());
    let out = run(&stdin, &version);
    let mut stdout = std::io::stdout();
    match out {
        Ok(Some(v)) => {
            let _ = writeln!(stdout, "{v}");
        }
        Ok(None) => {}
        Err(e) => {
            eprintln!("netd-cni: {} {}", e.msg, e.details);
            let _ = writeln!(stdout, "{}", e.to_json(&version));
            std::process::exit(1);
        }
    }
}

fn run(stdin: &[u8], version: &str) -> Result<Option<Value>, CniError> {
    let command = required("CNI_COMMAND")?;
    if command == "VERSION" {
        return Ok(Some(
            json!({ "cniVersion": version, "supportedVersions": SUPPORTED }),
        ));
    }
    let conf = NetConf::parse(stdin)?;
    let raw: Value = serde_json::from_slice(stdin).unwrap_or_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CniError::new(code::IO, format!("start runtime: {e}")))?;
    match command.as_str() {
        "STATUS" => rt.block_on(status(&conf)).map(|_| None),
        "GC" => rt.block_on(gc(&conf, &raw)).map(|_| None),
        "ADD" | "DEL" | "CHECK" => {
            let e = Env {
                command: command.clone(),
                container: required("CNI_CONTAINERID")?,
                netns: env("CNI_NETNS"),
                ifname: required("CNI_IFNAME")?,
                args: env("CNI_ARGS").unwrap_or_default(),
            };
            if e.command != "DEL" && e.netns.is_none() {
                return Err(CniError::new(code::INVALID_ENV, "CNI_NETNS is not set"));
            }
            match e.command.as_str() {
                "ADD" => rt.block_on(add(&conf, &e)).map(Some),
                "DEL" => rt.block_on(del(&conf, &e)).map(|_| None),
                _ => rt.block_on(check(&conf, &e)).map(|_| None),
            }
        }
        other => Err(CniError::new(
            code::INVALID_ENV,
            format!("unknown CNI_COMMAND {other}"),
        )),
    }
}

async fn open(conf: &NetConf) -> Result<Netd, CniError> {
    Netd::open(&state_dir(conf)).await.map_err(netd_error)
}

/// The network named in the config, created on first use; an existing one
/// with other settings is a configuration error.
async fn ensure_network(netd: &Netd, conf: &NetConf) -> Result<(), CniError> {
    for _ in 0..2 {
        match netd.inspect_network(&conf.name) {
            Ok(d) => {
                let Some(b) = d.network.bridge() else {
                    return Err(CniError::new(
                        code::INVALID_CONFIG,
                        format!("network {} is not a bridge network", conf.name),
                    ));
                };
                let differs = |what: &str, have: String, want: &Option<String>| match want {
                    Some(w) if *w != have => Err(CniError::new(
                        code::INVALID_CONFIG,
                        format!(
                            "network {} exists with {what} {have}, the configuration asks for {w}",
                            conf.name
                        ),
                    )),
                    _ => Ok(()),
                };
                differs("subnet", b.subnet.to_string(), &conf.subnet)?;
                differs("gateway", b.gateway.to_string(), &conf.gateway)?;
                differs("bridge", b.bridge.to_string(), &conf.bridge)?;
                if b.internal != conf.internal {
                    return Err(CniError::new(
                        code::INVALID_CONFIG,
                        format!(
                            "network {} exists with internal={}, the configuration says {}",
                            conf.name, b.internal, conf.internal
                        ),
                    ));
                }
                return Ok(());
            }
            Err(netd::Error::NotFound(_)) => {
                let req = NetworkCreate {
                    name: conf.name.clone(),
                    driver: "bridge".into(),
                    subnet: conf.subnet.clone(),
                    gateway: conf.gateway.clone(),
                    ip_range: conf.ip_range.clone(),
                    internal: conf.internal,
                    options: conf.options(),
                    labels: Default::default(),
                };
                match netd.create_network(&req).await {
                    Ok(_) => return Ok(()),
                    // Another plugin created it at the same moment: look again.
                    Err(netd::Error::Conflict(m)) if m.contains("already exists") => continue,
                    Err(e) => return Err(netd_error(e)),
                }
            }
            Err(e) => return Err(netd_error(e)),
        }
    }
    Err(CniError::new(
        code::TRY_LATER,
        format!("network {} could not be created", conf.name),
    ))
}

fn endpoint_request(conf: &NetConf, e: &Env) -> Result<EndpointRequest, CniError> {
    let rc = &conf.runtime_config;
    let bad = |m: String| CniError::new(code::INVALID_CONFIG, m);
    let ip = rc
        .ips
        .first()
        .map(|s| {
            s.split('/')
                .next()
                .unwrap_or(s)
                .parse()
                .map_err(|_| bad(format!("invalid ips entry {s:?}")))
        })
        .transpose()?;
    let mut aliases = rc.aliases.get(&conf.name).cloned().unwrap_or_default();
    if let Some(pod) = cni_arg(&e.args, "K8S_POD_NAME") {
        aliases.push(pod.to_string());
    }
    let ports = rc
        .port_mappings
        .iter()
        .map(|p| {
            p.spec()
                .parse()
                .map_err(|err: netd::model::Invalid| bad(err.0))
        })
        .collect::<Result<_, _>>()?;
    let mac = rc
        .mac
        .as_deref()
        .map(|m| m.parse().map_err(|err: netd::model::Invalid| bad(err.0)))
        .transpose()?;
    let ifname = Some(
        e.ifname
            .parse()
            .map_err(|err: netd::model::Invalid| CniError::new(code::INVALID_ENV, err.0))?,
    );
    Ok(EndpointRequest {
        ip,
        aliases,
        ports,
        mac,
        ifname,
    })
}

async fn add(conf: &NetConf, e: &Env) -> Result<Value, CniError> {
    let netd = open(conf).await?;
    ensure_network(&netd, conf).await?;
    let name = sandbox_name(&e.container);
    let netns = e.netns.clone().unwrap_or_default();
    let req = endpoint_request(conf, e)?;
    let ep: EndpointDetail = match netd.inspect_sandbox(&name) {
        // The same container on a second network (another CNI_IFNAME).
        Ok(_) => netd
            .connect(&conf.name, &name, &req)
            .await
            .map_err(netd_error)?,
        Err(netd::Error::NotFound(_)) => {
            let d = netd
                .create_sandbox(&SandboxCreate {
                    name: name.clone(),
                    network: Some(conf.name.clone()),
                    netns: Some(netns.clone()),
                    endpoint: req,
                })
                .await
                .map_err(netd_error)?;
            d.endpoints
                .into_iter()
                .next()
                .ok_or_else(|| CniError::new(code::GENERIC, "no endpoint was made"))?
        }
        Err(err) => return Err(netd_error(err)),
    };
    let net = netd.inspect_network(&conf.name).map_err(netd_error)?;
    let b = net
        .network
        .bridge()
        .ok_or_else(|| CniError::new(code::GENERIC, "not a bridge network"))?;
    if conf.dns {
        ensure_dns(conf);
    }
    Ok(result(
        &conf.cni_version,
        &Attachment {
            host_ifname: ep.host_veth.to_string(),
            ifname: ep.endpoint.ifname.to_string(),
            mac: ep.endpoint.mac.to_string(),
            netns,
            address: format!("{}/{}", ep.endpoint.ip, b.subnet.prefix_len()),
            gateway: b.gateway.to_string(),
            default_route: !b.internal,
            dns: conf.dns,
        },
    ))
}

/// Make sure a daemon serves DNS for the new names: tell a running one to
/// re-read the store, or start one (detached, in this host namespace, on the
/// same state) and wait for it briefly, so the names answer as soon as ADD
/// returns. Failing to do so never fails the attach: the network works.
fn ensure_dns(conf: &NetConf) {
    let sock = socket(conf);
    if dns_sync(&sock) {
        return;
    }
    if let Err(e) = start_daemon(conf, &sock) {
        eprintln!("netd-cni: could not start the netd daemon for DNS: {e}");
        return;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        if dns_sync(&sock) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    eprintln!(
        "netd-cni: the netd daemon did not answer on {} in time",
        sock.display()
    );
}

/// `POST /netd/dns/sync`; true when the daemon answered.
fn dns_sync(socket: &Path) -> bool {
    use std::os::unix::net::UnixStream;
    let Ok(mut s) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
    if s.write_all(b"POST /netd/dns/sync HTTP/1.1\r\nHost: netd\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 16];
    matches!(s.read(&mut head), Ok(n) if n >= 12 && &head[9..12] == b"200")
}

fn start_daemon(conf: &NetConf, sock: &Path) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    // The netd binary beside this plugin, else the one on PATH.
    let beside = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("netd")))
        .filter(|p| p.exists());
    let bin = beside.unwrap_or_else(|| PathBuf::from("netd"));
    let state = state_dir(conf);
    let run = sock
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/run/netd"));
    std::fs::create_dir_all(&state)?;
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(state.join("daemon.log"))?;
    let mut cmd = std::process::Command::new(bin);
    cmd.arg("--socket")
        .arg(sock)
        .arg("daemon")
        .arg("--state-dir")
        .arg(&state)
        .arg("--run-dir")
        .arg(&run)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; the daemon must outlive the
    // plugin and not share the runtime's session or terminal.
    unsafe {
        cmd.pre_exec(|| {
            let _ = nix::unistd::setsid();
            Ok(())
        });
    }
    cmd.spawn().map(|_| ())
}

async fn del(conf: &NetConf, e: &Env) -> Result<(), CniError> {
    let netd = open(conf).await?;
    let name = sandbox_name(&e.container);
    let Ok(sb) = netd.inspect_sandbox(&name) else {
        return Ok(());
    };
    if sb
        .endpoints
        .iter()
        .any(|ep| ep.network_name.as_str() == conf.name)
    {
        match netd.disconnect(&conf.name, &name, true).await {
            Ok(()) | Err(netd::Error::NotFound(_)) => {}
            Err(err) => return Err(netd_error(err)),
        }
    }
    let left = netd
        .inspect_sandbox(&name)
        .map(|s| s.endpoints.len())
        .unwrap_or(0);
    if left == 0 {
        match netd.remove_sandbox(&name, true).await {
            Ok(_) | Err(netd::Error::NotFound(_)) => {}
            Err(err) => return Err(netd_error(err)),
        }
    }
    if conf.dns {
        // Only a running daemon needs to forget the names; never start one for a DEL.
        dns_sync(&socket(conf));
    }
    Ok(())
}

async fn check(conf: &NetConf, e: &Env) -> Result<(), CniError> {
    let fail = |m: String| CniError::new(code::GENERIC, m);
    let prev = conf
        .prev_result
        .as_ref()
        .ok_or_else(|| CniError::new(code::INVALID_CONFIG, "CHECK needs prevResult"))?;
    let netd = open(conf).await?;
    let name = sandbox_name(&e.container);
    let sb = netd.inspect_sandbox(&name).map_err(|_| {
        CniError::new(
            code::UNKNOWN_CONTAINER,
            format!("unknown container {}", e.container),
        )
    })?;
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
    let want = prev["ips"][0]["address"].as_str().unwrap_or_default();
    let ip = want.split('/').next().unwrap_or_default();
    if ip != ep.endpoint.ip.to_string() {
        return Err(fail(format!(
            "address {want} of prevResult is not the reserved {}",
            ep.endpoint.ip
        )));
    }
    let host = Netlink::current().map_err(|err| fail(format!("{err:#}")))?;
    if host
        .link(ep.host_veth.as_str())
        .await
        .map_err(|err| fail(format!("{err:#}")))?
        .is_none()
    {
        return Err(fail(format!("host interface {} is missing", ep.host_veth)));
    }
    let netns = e.netns.clone().unwrap_or_default();
    let inside = Netlink::in_netns(Path::new(&netns)).map_err(|err| fail(format!("{err:#}")))?;
    let link = inside
        .link(&e.ifname)
        .await
        .map_err(|err| fail(format!("{err:#}")))?
        .ok_or_else(|| fail(format!("interface {} is missing in {netns}", e.ifname)))?;
    let addrs = inside
        .addresses(link.index)
        .await
        .map_err(|err| fail(format!("{err:#}")))?;
    if !addrs.iter().any(|a| a.to_string() == want) {
        return Err(fail(format!("interface {} lacks address {want}", e.ifname)));
    }
    Ok(())
}

async fn status(conf: &NetConf) -> Result<(), CniError> {
    let dir = state_dir(conf);
    let probe = dir.join(".status-probe");
    std::fs::create_dir_all(&dir)
        .and_then(|_| std::fs::write(&probe, b"ok"))
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| {
            CniError::new(
                code::NOT_READY,
                format!("state dir {} is not writable: {e}", dir.display()),
            )
        })
}

/// Remove every attachment of this network that the runtime no longer lists.
async fn gc(conf: &NetConf, raw: &Value) -> Result<(), CniError> {
    let valid: Vec<String> = raw["cni.dev/valid-attachments"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["containerID"].as_str())
                .map(sandbox_name)
                .collect()
        })
        .unwrap_or_default();
    let netd = open(conf).await?;
    for sb in netd.list_sandboxes().map_err(netd_error)? {
        let on_net = sb
            .endpoints
            .iter()
            .any(|ep| ep.network_name.as_str() == conf.name);
        // Only sandboxes this plugin made: adopted namespaces.
        let adopted = matches!(
            sb.sandbox.net,
            netd::model::SandboxNet::Namespace { owned: false, .. }
        );
        if on_net && adopted && !valid.contains(&sb.sandbox.name.to_string()) {
            let _ = netd
                .disconnect(&conf.name, sb.sandbox.name.as_str(), true)
                .await;
            if netd
                .inspect_sandbox(sb.sandbox.name.as_str())
                .map(|s| s.endpoints.is_empty())
                .unwrap_or(false)
            {
                let _ = netd.remove_sandbox(sb.sandbox.name.as_str(), true).await;
            }
        }
    }
    Ok(())
}
