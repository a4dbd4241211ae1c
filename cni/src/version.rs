//! The CNI versions this plugin speaks and what each allows.

use crate::env::Command;
use crate::error::{CniError, code};

/// The versions this plugin speaks, oldest first.
pub const SUPPORTED: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The version a configuration without `cniVersion` is taken to ask for
/// (as libcni's decoder does): one this plugin does not speak.
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
    }
}
