//! The CNI versions this plugin speaks and what each allows.

use crate::env::Command;
use crate::error::{CniError, code};

/// The versions this plugin speaks, oldest first. 0.1.0 and 0.2.0 get
/// their own result shape (`ip4`/`ip6`, see [`crate::result`]) and only
/// ADD, DEL and VERSION, as those versions had.
pub const SUPPORTED: &[&str] = &[
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

/// The version a configuration without `cniVersion` is taken to ask for
/// (as libcni's decoder does).
pub const IMPLICIT_VERSION: &str = "0.1.0";

fn version_key(v: &str) -> Option<(u32, u32, u32)> {
    let mut it = v.split('.').map(|p| p.parse::<u32>().ok());
    let k = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(k)
}

/// Whether `v` is at least `min` (both `MAJOR.MINOR.PATCH`).
pub fn at_least(v: &str, min: &str) -> bool {
    matches!((version_key(v), version_key(min)), (Some(a), Some(b)) if a >= b)
}

/// Whether results in `v` have 0.1.0/0.2.0's shape (`ip4`, `ip6`, `dns`:
/// no interfaces, no `ips`), which 0.3.0 replaced.
pub fn legacy_result(v: &str) -> bool {
    !at_least(v, "0.3.0")
}

/// Chaining (`prevResult`) came with 0.3.0: an ADD of an older
/// configuration that carries one is refused (code 1) rather than
/// answered with a result that drops the previous plugin's.
pub fn prev_result_allowed(version: &str, has_prev: bool) -> Result<(), CniError> {
    if !has_prev || !legacy_result(version) {
        return Ok(());
    }
    Err(CniError::new(
        code::INCOMPATIBLE_VERSION,
        "config version does not allow prevResult",
    )
    .details(format!(
        "chaining (prevResult) needs cniVersion 0.3.0 or later, the configuration is {version}"
    )))
}

/// The configuration's version allows the command: CHECK from 0.4.0, GC
/// and STATUS from 1.1.0 (code 1 otherwise, as libcni's skel answers).
pub fn command_allowed(command: Command, version: &str) -> Result<(), CniError> {
    let min = match command {
        Command::Check => "0.4.0",
        Command::Gc | Command::Status => "1.1.0",
        _ => return Ok(()),
    };
    if at_least(version, min) {
        Ok(())
    } else {
        Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!("config version does not allow {}", command.as_str()),
        )
        .details(format!(
            "{} needs cniVersion {min} or later, the configuration is {version}",
            command.as_str()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_gate_commands() {
        assert!(at_least("1.1.0", "1.0.0") && at_least("0.4.0", "0.4.0"));
        assert!(!at_least("0.3.1", "0.4.0") && !at_least("x", "0.4.0"));
        assert_eq!(
            command_allowed(Command::Check, "0.3.1").unwrap_err().code,
            code::INCOMPATIBLE_VERSION
        );
        assert!(command_allowed(Command::Check, "0.4.0").is_ok());
        assert!(command_allowed(Command::Gc, "1.0.0").is_err());
        assert!(command_allowed(Command::Status, "1.1.0").is_ok());
        assert!(command_allowed(Command::Add, "0.3.0").is_ok());
        // 0.1.0 and 0.2.0 had ADD and DEL only (and 0.2.0 VERSION).
        for old in ["0.1.0", "0.2.0"] {
            assert!(command_allowed(Command::Add, old).is_ok());
            assert!(command_allowed(Command::Del, old).is_ok());
            for c in [Command::Check, Command::Gc, Command::Status] {
                let e = command_allowed(c, old).unwrap_err();
                assert_eq!(e.code, code::INCOMPATIBLE_VERSION);
                assert!(e.details.contains(old), "{e}");
            }
        }
    }

    #[test]
    fn legacy_results_and_chaining() {
        assert!(legacy_result("0.1.0") && legacy_result("0.2.0"));
        assert!(!legacy_result("0.3.0") && !legacy_result("1.1.0"));
        assert!(prev_result_allowed("0.2.0", false).is_ok());
        assert!(prev_result_allowed("0.3.0", true).is_ok());
        let e = prev_result_allowed("0.2.0", true).unwrap_err();
        assert_eq!(e.code, code::INCOMPATIBLE_VERSION);
        assert!(
            e.details.contains("0.3.0") && e.details.contains("0.2.0"),
            "{e}"
        );
    }
}
