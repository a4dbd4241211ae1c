//! Where and how to reach etcd: the `--cluster-store` URL list and the TLS
//! client settings.

use etcd_client::{Certificate, Identity, TlsOptions};

use super::etcd::unavailable;
use super::{CResult, ClusterConfig};

/// `etcd://HOST:PORT[,HOST:PORT...]` (Docker's form) as etcd client URLs,
/// `https://` with TLS. `http://` and `https://` URLs are taken as they are.
pub fn store_endpoints(url: &str, tls: bool) -> Result<Vec<String>, crate::model::Invalid> {
    let bad = |why: &str| crate::model::Invalid(format!("{url:?}: {why}"));
    let (scheme, rest) = match url.split_once("://") {
        Some(("etcd", rest)) => (if tls { "https" } else { "http" }, rest),
        Some((s @ ("http" | "https"), rest)) => (s, rest),
        _ => return Err(bad("expected etcd://HOST:PORT[,HOST:PORT...]")),
    };
    let mut out = Vec::new();
    for hp in rest.trim_end_matches('/').split(',') {
        let Some((host, port)) = hp.rsplit_once(':') else {
            return Err(bad(&format!("{hp:?} has no port (etcd's is 2379)")));
        };
        if host.is_empty() || host.contains('/') || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(bad(&format!("{hp:?} is not HOST:PORT")));
        }
        out.push(format!("{scheme}://{host}:{port}"));
    }
    Ok(out)
}

pub(super) fn tls_options(label: &str, cfg: &ClusterConfig) -> CResult<Option<TlsOptions>> {
    let Some(files) = &cfg.tls else {
        return Ok(None);
    };
    let read = |p: &std::path::PathBuf| {
        std::fs::read(p).map_err(|e| unavailable(label, format!("{}: {e}", p.display())))
    };
    let mut tls = TlsOptions::new();
    if let Some(ca) = &files.ca {
        tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
    }
    match (&files.cert, &files.key) {
        (Some(c), Some(k)) => tls = tls.identity(Identity::from_pem(read(c)?, read(k)?)),
        (None, None) => {}
        _ => {
            return Err(unavailable(
                label,
                "a client certificate and its key go together",
            ));
        }
    }
    Ok(Some(tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_become_client_urls() {
        assert_eq!(
            store_endpoints("etcd://10.0.0.1:2379,10.0.0.2:2379", false).unwrap(),
            ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
        );
        assert_eq!(
            store_endpoints("etcd://[fd00::1]:2379", true).unwrap(),
            ["https://[fd00::1]:2379"]
        );
        assert_eq!(
            store_endpoints("http://e:2379", false).unwrap(),
            ["http://e:2379"]
        );
        for bad in [
            "consul://x:8500",
            "etcd://x",
            "etcd://:2379",
            "etcd://x:0",
            "x:2379",
        ] {
            let e = store_endpoints(bad, false).unwrap_err().0;
            assert!(e.contains(bad), "{e}");
        }
    }
}
