//! Serve one sandbox's DNS from a hosts file, for benchmarks and trials:
//!
//!     serve --netns /run/netns/NAME --hosts FILE [--upstream IP:PORT]...
//!           [--no-forward] [--threads N]
//!
//! The hosts file is the usual `ADDRESS NAME [NAME...]` per line (`#`
//! comments); a name on several lines gets all their addresses. The server
//! answers at 127.0.0.11:53 inside the namespace; this process (its tokio
//! runtime, and so its upstream queries) stays where it was started.
//! Prints `ready` once serving; SIGHUP re-reads the file (`set_view`);
//! SIGINT or SIGTERM stops.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use netd_dns::{Config, Dns, Record4, View};

fn read_hosts(path: &PathBuf, forward: bool) -> std::io::Result<View> {
    let text = std::fs::read_to_string(path)?;
    let mut records: Vec<Record4> = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(Ok(ip)) = words.next().map(str::parse::<IpAddr>) else {
            continue;
        };
        for name in words {
            let name = name.to_ascii_lowercase();
            match records.iter_mut().find(|r| r.name == name) {
                Some(r) => r.addrs.push(ip),
                None => records.push(Record4 {
                    name,
                    addrs: vec![ip],
                }),
            }
        }
    }
    Ok(View {
        records,
        forward,
        upstreams: vec![],
    })
}

fn usage() -> ! {
    eprintln!(
        "usage: serve --netns PATH --hosts FILE [--upstream IP:PORT]... [--no-forward] [--threads N]"
    );
    std::process::exit(2)
}

fn main() {
    let mut netns = None;
    let mut hosts = None;
    let mut cfg = Config::default();
    let mut forward = true;
    let mut threads = 2;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--netns" => netns = Some(PathBuf::from(val())),
            "--hosts" => hosts = Some(PathBuf::from(val())),
            "--upstream" => cfg
                .upstreams
                .push(val().parse::<SocketAddr>().unwrap_or_else(|_| usage())),
            "--no-forward" => forward = false,
            "--threads" => threads = val().parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    let (Some(netns), Some(hosts)) = (netns, hosts) else {
        usage()
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    }
    .enable_all()
    .build()
    .expect("tokio runtime");
    rt.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let view = read_hosts(&hosts, forward).unwrap_or_else(|e| {
            eprintln!("{}: {e}", hosts.display());
            std::process::exit(1)
        });
        let dns = Dns::new(cfg);
        if let Err(e) = dns.serve("example", &netns, view).await {
            eprintln!("{e}");
            std::process::exit(1);
        }
        println!("ready");
        let mut hup = signal(SignalKind::hangup()).expect("SIGHUP");
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT");
        loop {
            tokio::select! {
                _ = hup.recv() => match read_hosts(&hosts, forward) {
                    Ok(v) => dns.set_view("example", v),
                    Err(e) => eprintln!("{}: {e}", hosts.display()),
                },
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        dns.stop("example");
    });
}
