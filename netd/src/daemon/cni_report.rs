//! CNI commands in the daemon's operation counters.
//!
//! The plugin is a process of its own per command and never waits for the
//! daemon (an attach must not depend on it), so it reports each command it
//! ran in one datagram, sent without blocking, to a socket beside the API
//! socket ([`socket_for`]). A running daemon counts them as `cni_add`,
//! `cni_del`, ... with the API's operations. As with every Prometheus
//! counter, the counts start with the daemon: commands run while no daemon
//! listens are not counted, and a full socket buffer drops a report rather
//! than slow the plugin.
//!
//! A report is one line of ASCII, `netd-cni/1 COMMAND OUTCOME MICROS`, e.g.
//! `netd-cni/1 ADD ok 1830`. The socket has the API socket's mode, so only
//! those who may use the API can report.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tracing::{debug, warn};

use super::metrics::{Op, OpMetrics, Outcome};

const MAGIC: &str = "netd-cni/1";

/// Longer than any report: a datagram that fills it is not one.
const MAX_LEN: usize = 64;

/// One CNI command the plugin ran: which, how it ended, how long it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CniReport {
    pub op: Op,
    pub outcome: Outcome,
    pub took: Duration,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ReportError {
    #[error("not a netd-cni report (expected `{MAGIC} COMMAND OUTCOME MICROS`)")]
    Shape,
    #[error("unknown CNI command {0:?}")]
    Command(String),
    #[error("unknown outcome {0:?}")]
    Outcome(String),
    #[error("bad duration {0:?} (whole microseconds)")]
    Micros(String),
}

/// The CNI commands a report may name (VERSION is not an operation).
const COMMANDS: [(&str, Op); 5] = [
    ("ADD", Op::CniAdd),
    ("DEL", Op::CniDel),
    ("CHECK", Op::CniCheck),
    ("GC", Op::CniGc),
    ("STATUS", Op::CniStatus),
];

impl CniReport {
    /// The report of `command` (as in `CNI_COMMAND`); `None` for one that
    /// is not counted.
    pub fn of(command: &str, outcome: Outcome, took: Duration) -> Option<CniReport> {
        let op = COMMANDS.iter().find(|(c, _)| *c == command)?.1;
        Some(CniReport { op, outcome, took })
    }

    pub fn encode(&self) -> String {
        let command = COMMANDS
            .iter()
            .find(|(_, op)| *op == self.op)
            .map_or("?", |(c, _)| c);
        format!(
            "{MAGIC} {command} {} {}",
            self.outcome.name(),
            self.took.as_micros()
        )
    }

    pub fn parse(b: &[u8]) -> Result<CniReport, ReportError> {
        let s = std::str::from_utf8(b).map_err(|_| ReportError::Shape)?;
        let mut words = s.strip_suffix('\n').unwrap_or(s).split(' ');
        let (Some(MAGIC), Some(command), Some(outcome), Some(micros), None) = (
            words.next(),
            words.next(),
            words.next(),
            words.next(),
            words.next(),
        ) else {
            return Err(ReportError::Shape);
        };
        let op = COMMANDS
            .iter()
            .find(|(c, _)| *c == command)
            .ok_or_else(|| ReportError::Command(command.into()))?
            .1;
        let outcome = Outcome::ALL
            .into_iter()
            .find(|o| o.name() == outcome)
            .ok_or_else(|| ReportError::Outcome(outcome.into()))?;
        // Digits only: `u64::from_str` would also take a leading `+`.
        let took = micros
            .bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| micros.parse::<u64>().ok())
            .flatten()
            .ok_or_else(|| ReportError::Micros(micros.into()))?;
        Ok(CniReport {
            op,
            outcome,
            took: Duration::from_micros(took),
        })
    }

    /// Send this report to the daemon of the API socket `api`, without
    /// waiting: no daemon, or one too busy to read, loses it.
    pub fn send(&self, api: &Path) {
        let sent = std::os::unix::net::UnixDatagram::unbound().and_then(|s| {
            s.set_nonblocking(true)?;
            s.send_to(self.encode().as_bytes(), socket_for(api))
        });
        if let Err(e) = sent {
            debug!("CNI report not sent: {e}");
        }
    }
}

/// The report socket of the daemon whose API socket is `api`: its path
/// with `.cni` appended, so daemons sharing a run dir do not meet.
pub fn socket_for(api: &Path) -> PathBuf {
    let mut p = api.as_os_str().to_owned();
    p.push(".cni");
    PathBuf::from(p)
}

/// Bind the report socket of `api` and count what arrives in `ops`. The
/// caller holds the daemon's locks and its API socket, so a file already
/// there is a dead daemon's. Counting is not worth refusing to start for:
/// a failure is logged and CNI commands go uncounted.
pub(super) fn listen(api: &Path, ops: Arc<OpMetrics>) -> Option<Guard> {
    let path = socket_for(api);
    let bound = (|| {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let sock = tokio::net::UnixDatagram::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))?;
        Ok(sock)
    })();
    let sock = match bound {
        Ok(s) => s,
        Err(e) => {
            warn!(path = %path.display(), "CNI commands will not be counted: {e}");
            return None;
        }
    };
    tokio::spawn(async move {
        let mut buf = [0u8; MAX_LEN];
        loop {
            match sock.recv(&mut buf).await {
                Ok(n) => match CniReport::parse(&buf[..n]) {
                    Ok(r) => ops.record(r.op, r.outcome, r.took),
                    Err(e) => debug!("CNI report ignored: {e}"),
                },
                Err(e) => {
                    warn!("CNI report socket: {e}; CNI commands no longer counted");
                    return;
                }
            }
        }
    });
    Some(Guard(path))
}

/// Removes the report socket's file when the daemon stops.
pub(super) struct Guard(PathBuf);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The `cni_report` fuzz target: any datagram. Must never panic; what
/// parses must encode to a report that parses to the same.
#[doc(hidden)]
pub fn fuzz(bytes: &[u8]) {
    if let Ok(r) = CniReport::parse(bytes) {
        let again = CniReport::parse(r.encode().as_bytes())
            .unwrap_or_else(|e| panic!("{bytes:?} encoded as {} does not parse: {e}", r.encode()));
        assert_eq!(again, r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_survives_its_encoding() {
        for (c, _) in COMMANDS {
            for o in Outcome::ALL {
                let r = CniReport::of(c, o, Duration::from_micros(1830)).unwrap();
                assert_eq!(CniReport::parse(r.encode().as_bytes()), Ok(r));
            }
        }
        assert_eq!(
            CniReport::of("ADD", Outcome::Ok, Duration::from_micros(7))
                .unwrap()
                .encode(),
            "netd-cni/1 ADD ok 7"
        );
        assert!(CniReport::of("VERSION", Outcome::Ok, Duration::ZERO).is_none());
    }

    #[test]
    fn anything_else_is_refused_by_name() {
        use ReportError::*;
        for (input, want) in [
            ("", Shape),
            ("netd-cni/1 ADD ok", Shape),
            ("netd-cni/1 ADD ok 5 extra", Shape),
            ("netd-cni/2 ADD ok 5", Shape),
            ("netd-cni/1  ADD ok 5", Shape),
            ("netd-cni/1 add ok 5", Command("add".into())),
            ("netd-cni/1 VERSION ok 5", Command("VERSION".into())),
            ("netd-cni/1 ADD fine 5", Outcome("fine".into())),
            ("netd-cni/1 ADD ok +5", Micros("+5".into())),
            ("netd-cni/1 ADD ok -5", Micros("-5".into())),
            (
                "netd-cni/1 ADD ok 99999999999999999999",
                Micros("99999999999999999999".into()),
            ),
            ("netd-cni/1 ADD ok ", Micros("".into())),
        ] {
            assert_eq!(CniReport::parse(input.as_bytes()), Err(want), "{input:?}");
        }
        assert_eq!(CniReport::parse(b"\xff\xfe"), Err(Shape));
        assert!(CniReport::parse(b"netd-cni/1 DEL error 12\n").is_ok());
    }
}
