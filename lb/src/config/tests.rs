use super::*;

#[test]
fn durations() {
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
    assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
    assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
    assert!(parse_duration("x").is_err());
    assert!(parse_duration("5 parsecs").is_err());
    assert!(parse_duration("-1").is_err());
    assert!(parse_duration("2000000000s").is_err());
    assert_eq!(parse_duration("0.1"), Ok(Duration::from_millis(100)));
    assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
}

#[test]
fn keywords() {
    assert_eq!("tcp".parse::<HealthCheck>(), Ok(HealthCheck::Tcp));
    assert_eq!(
        "http:/healthz".parse::<HealthCheck>(),
        Ok(HealthCheck::Http("/healthz".into()))
    );
    assert!("http:healthz".parse::<HealthCheck>().is_err());
    assert_eq!(
        "header:x-user".parse::<HashKey>(),
        Ok(HashKey::Header("x-user".into()))
    );
    assert!("least-connections".parse::<Algorithm>().is_err());
    assert_eq!(parse_listen(":8080").unwrap().port(), 8080);
    assert_eq!(parse_dns_server("10.0.0.1").unwrap().port(), 53);
    assert_eq!("ipv6".parse::<IpFamily>(), Ok(IpFamily::Ipv6));
    assert_eq!("ipv4".parse::<IpFamily>(), Ok(IpFamily::Ipv4));
}

#[test]
fn ipv6_listeners_resolvers_and_family() {
    assert_eq!(parse_listen("[::]:8080"), Ok("[::]:8080".parse().unwrap()));
    assert_eq!(parse_listen("[::1]:80"), Ok("[::1]:80".parse().unwrap()));
    // A bare port stays IPv4, as before.
    assert_eq!(parse_listen("8080"), Ok("0.0.0.0:8080".parse().unwrap()));
    let e = parse_listen("::1:80").unwrap_err();
    assert!(e.contains("[IPV6]:PORT"), "{e}");
    assert_eq!(parse_dns_server("::1"), Ok("[::1]:53".parse().unwrap()));
    assert_eq!(parse_dns_server("[::1]"), Ok("[::1]:53".parse().unwrap()));
    assert_eq!(
        parse_dns_server("[fd00::1]:5353"),
        Ok("[fd00::1]:5353".parse().unwrap())
    );
    let c = parse_file_text(
        "[[service]]\nlisten = \"[::1]:8080\"\nnetwork = \"n\"\nalias = \"a\"\nport = 1\n\
         ip_family = \"ipv6\"\n\n[[service]]\nlisten = \"127.0.0.1:8080\"\nnetwork = \"n\"\n\
         alias = \"b\"\nport = 1\n",
    )
    .unwrap();
    assert_eq!(c.services[0].ip_family, IpFamily::Ipv6);
    assert_eq!(c.services[0].listen, "[::1]:8080".parse().unwrap());
    assert_eq!(c.services[1].ip_family, IpFamily::Ipv4, "the default");
}

#[test]
fn full_file() {
    let c = parse_file_text(
        r#"
socket = "/tmp/x.sock"
metrics = "127.0.0.1:9100"
drain_timeout = "2s"
threads = 1

[[service]]
name = "web"
listen = "127.0.0.1:8080"
network = "app"
alias = "web"
port = 80
algorithm = "least-conn"
health_check = "http:/healthz"
health_interval = "500ms"
rise = 1
fall = 3
connect_timeout = 2

[[service]]
listen = "127.0.0.1:5432"
mode = "tcp"
alias = "db"
port = 5432
discover = "dns"
dns_server = "127.0.0.11"
"#,
    )
    .unwrap();
    assert_eq!(c.socket, PathBuf::from("/tmp/x.sock"));
    assert_eq!(c.drain_timeout, Duration::from_secs(2));
    assert_eq!(c.services.len(), 2);
    let web = &c.services[0];
    assert_eq!(web.algorithm, Algorithm::LeastConn);
    assert_eq!(web.health.check, HealthCheck::Http("/healthz".into()));
    assert_eq!(web.health.interval, Duration::from_millis(500));
    assert_eq!(web.connect_timeout, Duration::from_secs(2));
    let db = &c.services[1];
    assert_eq!(db.name, "db-1");
    assert_eq!(db.mode, Mode::Tcp);
    assert_eq!(db.dns_server, Some("127.0.0.11:53".parse().unwrap()));
}

#[test]
fn errors_are_clear() {
    let e =
        parse_file_text("[[service]]\nlisten = \":80\"\nalias = \"a\"\nport = 1\n").unwrap_err();
    assert!(format!("{e:#}").contains("network is required"), "{e:#}");
    let e = parse_file_text("[[service]]\nlisten = \":80\"\nbogus = 1\n").unwrap_err();
    assert!(format!("{e:#}").contains("unknown field"), "{e:#}");
    let e = parse_file_text(
        "[[service]]\nlisten=\":80\"\nnetwork=\"n\"\nalias=\"a\"\nport=1\nalgorithm=\"fastest\"\n",
    )
    .unwrap_err();
    assert!(format!("{e:#}").contains("unknown algorithm"), "{e:#}");
    for bad in ["IPv6", "inet6", "6", "both"] {
        let e = parse_file_text(&format!(
            "[[service]]\nlisten=\":80\"\nnetwork=\"n\"\nalias=\"a\"\nport=1\nip_family=\"{bad}\"\n"
        ))
        .unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains(&format!("unknown IP family {bad:?}")) && msg.contains("ipv4, ipv6"),
            "{msg}"
        );
    }
}
