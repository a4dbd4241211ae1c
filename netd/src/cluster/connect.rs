//! Where and how to reach etcd: the `--cluster-store` URL list and the TLS
//! client settings.

use etcd_client::{Certificate, Identity, TlsOptions};

use super::etcd::unavailable;
use super::{CResult, ClusterConfig};

/// `etcd://H:P,H:P` (or `http://`, `https://` URLs, comma-separated) as
/// client URLs: `etcd://` is http, or https when TLS files are given.
pub fn parse_store(spec: &str, tls: bool) -> Result<Vec<String>, String> {
    let (scheme, rest) = match spec.split_once("://") {
        Some(("etcd", rest)) => (if tls { "https" } else { "http" }, rest),
        Some((s @ ("http" | "https"), rest)) => (s, rest),
        Some((s, _)) => return Err(format!("cluster store {spec}: unknown scheme {s}://")),
        None => {
            return Err(format!(
                "cluster store {spec}: use etcd://HOST:PORT[,HOST:PORT]"
            ));
        }
    };
    let eps: Vec<String> = rest
        .split(',')
        .map(str::trim)
        .map(|hp| hp.strip_prefix(&format!("{scheme}://")).unwrap_or(hp))
        .map(|hp| format!("{scheme}://{hp}"))
        .collect();
    if rest
        .split(',')
        .any(|hp| hp.trim().is_empty() || !hp.contains(':'))
    {
        return Err(format!("cluster store {spec}: every endpoint is HOST:PORT"));
    }
    Ok(eps)
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
    fn store_urls() {
        assert_eq!(
            parse_store("etcd://10.0.0.1:2379,10.0.0.2:2379", false).unwrap(),
            vec!["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
        );
        assert_eq!(
            parse_store("etcd://h:2379", true).unwrap(),
            vec!["https://h:2379"]
        );
        assert_eq!(
            parse_store("https://h:1", false).unwrap(),
            vec!["https://h:1"]
        );
        assert!(parse_store("h:2379", false).is_err());
        assert!(parse_store("consul://h:1", false).is_err());
        assert!(parse_store("etcd://h", false).is_err());
        assert!(parse_store("etcd://h:1,", false).is_err());
    }
}
