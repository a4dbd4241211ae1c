//! Attach and detach latency through the library call (no daemon, no CLI),
//! with 1, 100 and 1000 sandboxes already present: `create`/`rm` of a
//! sandbox (namespace included) and `connect`/`disconnect` of an existing
//! sandbox (veth, addresses, routes only).
//!
//! Run it inside a network namespace of your own (it creates bridges and
//! namespaces in the namespace it runs in), e.g. via `bench/attach.sh`, or:
//!   ip netns add ndlat-host
//!   nsenter --net=/run/netns/ndlat-host target/release/examples/attach_latency [PRESENT,...] [SAMPLES]
//! Sandbox namespaces are named `ndlat-<pid>-<n>` and removed at the end.

use std::time::Instant;

use netd::Netd;
use netd::model::{NetworkCreate, SandboxCreate};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let present: Vec<usize> = args
        .get(1)
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 100, 1000]);
    let samples: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(30);
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("ndlat-{pid}"));
    let netd = Netd::open(&dir).await?;
    let net = format!("ndlat-{pid}");
    netd.create_network(&NetworkCreate {
        name: net.clone(),
        subnet: Some("10.195.0.0/16".into()),
        ..Default::default()
    })
    .await?;
    let other = format!("ndlat-{pid}-o");
    netd.create_network(&NetworkCreate {
        name: other.clone(),
        subnet: Some("10.194.0.0/24".into()),
        ..Default::default()
    })
    .await?;
    let probe = format!("ndlat-{pid}-probe");
    netd.create_sandbox(&SandboxCreate {
        name: probe.clone(),
        network: Some(other.clone()),
        ..Default::default()
    })
    .await?;
    let mut made = 0usize;
    let mk = |i: usize| SandboxCreate {
        name: format!("ndlat-{pid}-{i}"),
        network: Some(net.clone()),
        ..Default::default()
    };
    println!(
        "{:>8}  {:<10}  {:>8}  {:>8}  {:>4}",
        "present", "op", "p50 ms", "p99 ms", "n"
    );
    let result: anyhow::Result<()> = async {
        for &target in &present {
            while made < target {
                netd.create_sandbox(&mk(made)).await?;
                made += 1;
            }
            let (mut attach, mut detach, mut connect, mut disconnect) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for s in 0..samples {
                let req = mk(1_000_000 + s);
                let t = Instant::now();
                netd.create_sandbox(&req).await?;
                attach.push(t.elapsed().as_secs_f64() * 1e3);
                let t = Instant::now();
                netd.remove_sandbox(&req.name, false).await?;
                detach.push(t.elapsed().as_secs_f64() * 1e3);
                let t = Instant::now();
                netd.connect(&net, &probe, &Default::default()).await?;
                connect.push(t.elapsed().as_secs_f64() * 1e3);
                let t = Instant::now();
                netd.disconnect(&net, &probe, false).await?;
                disconnect.push(t.elapsed().as_secs_f64() * 1e3);
            }
            for (op, v) in [
                ("create", &mut attach),
                ("rm", &mut detach),
                ("connect", &mut connect),
                ("disconnect", &mut disconnect),
            ] {
                v.sort_by(|a, b| a.total_cmp(b));
                println!(
                    "{target:>8}  {op:<10}  {:>8.2}  {:>8.2}  {:>4}",
                    percentile(v, 0.5),
                    percentile(v, 0.99),
                    v.len()
                );
            }
        }
        Ok(())
    }
    .await;
    for i in 0..made {
        let _ = netd.remove_sandbox(&format!("ndlat-{pid}-{i}"), true).await;
    }
    let _ = netd.remove_sandbox(&probe, true).await;
    let _ = netd.remove_network(&net).await;
    let _ = netd.remove_network(&other).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}
