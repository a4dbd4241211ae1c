//! Record types netd does not keep (SRV, TXT, MX, ...) asked for a name it
//! does keep: the name is netd's, so the answer is netd's too, NOERROR
//! with no records (NODATA), as AAAA of an IPv4-only name is. Never
//! forwarded (an upstream's records for the same name must not leak in) and
//! never NXDOMAIN (which would deny the name's A record to caches).

use netd_tests as support;

use std::time::Duration;

use support::{Child, Daemon, Netns};

#[test]
fn other_types_of_a_local_name_are_nodata_not_forwarded() {
    let tag = format!("ncon{}", std::process::id());
    let host = Netns::new(&format!("{tag}-host"));
    let name = |s: &str| format!("{tag}-{s}");
    let (net, a) = (name("net"), name("a"));
    let local = ["web".to_string(), a.clone(), format!("{a}.{net}")];
    // An upstream that has SRV, TXT and MX records for netd's names (which
    // would show if netd forwarded them) and for a name of its own (which
    // shows these types do get through when the name is not netd's).
    let mut args: Vec<String> = [
        "--no-daemon",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        "--listen-address=127.0.1.1",
        "--pid-file=",
    ]
    .map(String::from)
    .to_vec();
    for n in local.iter().map(String::as_str).chain(["ext.test"]) {
        args.push(format!("--txt-record={n},upstream"));
        args.push(format!("--mx-host={n},mx.ext.test,10"));
        args.push(format!("--srv-host={n},srv.ext.test,80"));
    }
    args.push("--srv-host=_http._tcp.web,srv.ext.test,8080".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let _dnsmasq: Child = support::spawn_in(host.name(), "dnsmasq", &args);
    std::thread::sleep(Duration::from_millis(300));
    let daemon = Daemon::start_with(&host, &["--dns-upstream", "127.0.1.1"]);
    daemon.cli_ok(&["network", "create", "--subnet", "10.215.1.0/24", &net]);
    daemon.cli_ok(&["sandbox", "create", "--network", &net, "--alias", "web", &a]);

    // The upstream answers these types for its own name: forwarding works.
    for qtype in ["SRV", "TXT", "MX"] {
        let d = support::dig(&a, &["ext.test", qtype]);
        assert_eq!(
            (d.status.as_str(), d.answers.len()),
            ("NOERROR", 1),
            "{qtype} ext.test: {}",
            d.text
        );
    }
    // netd's names: NODATA, from netd (aa), like AAAA of an IPv4-only name.
    let aaaa = support::dig(&a, &["web", "AAAA"]);
    assert_eq!((aaaa.status.as_str(), aaaa.answers.len()), ("NOERROR", 0));
    for qname in &local {
        for qtype in ["SRV", "TXT", "MX", "CAA"] {
            let d = support::dig(&a, &[qname, qtype]);
            assert_eq!(
                (d.status.as_str(), d.answers.len()),
                ("NOERROR", 0),
                "{qtype} {qname}: {}",
                d.text
            );
            assert!(
                d.text.contains(" aa "),
                "{qtype} {qname} not answered by netd: {}",
                d.text
            );
            assert_eq!(
                d.text.contains("AUTHORITY SECTION"),
                aaaa.text.contains("AUTHORITY SECTION"),
                "{qtype} {qname} differs from AAAA's NODATA: {}",
                d.text
            );
        }
        // ...and its address still resolves.
        assert_eq!(support::dig(&a, &[qname]).answers, ["10.215.1.2"]);
    }
    // A name under one of netd's (RFC 2782's `_service._proto.NAME`) is
    // not netd's: it is forwarded like any other.
    let d = support::dig(&a, &["_http._tcp.web", "SRV"]);
    assert_eq!(
        (d.status.as_str(), d.answers.len()),
        ("NOERROR", 1),
        "{}",
        d.text
    );
}
