//! `/system resource print` and `get`.
//!
//! Only `version` (from the configuration) and `uptime` (since the engine
//! opened) vary; the rest describes an RDS2216 with fixed figures, as in
//! docs/routeros-cli.md.

use std::time::{Duration, Instant};

use super::{Invocation, Outcome};
use crate::error::CmdError;
use crate::format::key_value_block;
use crate::menu::{RESOURCE_KEYS, Verb};
use crate::records::{Field, Prop, Record};
use crate::value::Value;

/// Facts `/system resource` reports.
#[derive(Debug, Clone)]
pub struct SystemInfo {
    /// `version`, e.g. `7.21.1 (stable)`.
    pub version: String,
    /// When the simulated device "booted".
    pub started: Instant,
    /// Longest slot accepted ([`crate::SimConfig::max_slot_len`]).
    pub max_slot_len: usize,
    /// The answers to RouterOS's unknowns ([`crate::SimConfig::behaviour`]).
    pub behaviour: crate::config::Behaviour,
}

/// RouterOS's duration form: `3d4h12m9s`, weeks as `w`, zero parts left out.
pub fn format_uptime(elapsed: Duration) -> String {
    let mut secs = elapsed.as_secs();
    if secs == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("w", 604_800),
        ("d", 86_400),
        ("h", 3600),
        ("m", 60),
        ("s", 1),
    ] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

impl SystemInfo {
    /// The properties in print order, with their printed text.
    fn pairs(&self) -> Vec<(&'static str, Prop)> {
        let w = |s: &str| Prop::Word(s.to_string());
        let values = [
            w(&format_uptime(self.started.elapsed())),
            w(&self.version),
            w("2025-11-20 10:11:12"),
            w("14.2GiB"),
            w("16.0GiB"),
            w("ARM64"),
            Prop::Int(16),
            w("2%"),
            w("arm64"),
            w("RDS2216"),
            w("MikroTik"),
        ];
        RESOURCE_KEYS.iter().copied().zip(values).collect()
    }

    /// The resource as a record, for `where` and `get`.
    pub fn record(&self) -> Record {
        Record {
            id: 0,
            flags: String::new(),
            comment: None,
            fields: self
                .pairs()
                .into_iter()
                .map(|(name, value)| Field {
                    name,
                    value,
                    shown: true,
                })
                .collect(),
        }
    }
}

/// Runs `print` or `get` in `/system resource`.
pub fn run(inv: &Invocation, verb: Verb, info: &SystemInfo) -> Result<Outcome, CmdError> {
    let record = info.record();
    if verb == Verb::Get {
        let name = inv
            .positional
            .first()
            .or_else(|| {
                inv.named
                    .iter()
                    .rev()
                    .find(|(n, _)| n == "value-name")
                    .map(|(_, v)| v)
            })
            .map(Value::to_text);
        return match name {
            None => Ok(Outcome::value(record.to_map())),
            Some(name) => record
                .get(&name)
                .map(|p| Outcome::value(p.to_value()))
                .ok_or(CmdError::NoMatch("value-name")),
        };
    }
    if inv.flags.iter().any(|f| f == "as-value") {
        return Ok(Outcome::value(record.to_map()));
    }
    let pairs: Vec<(&str, String)> = info
        .pairs()
        .into_iter()
        .map(|(k, v)| (k, v.text()))
        .collect();
    Ok(Outcome {
        value: Value::Nothing,
        lines: key_value_block(&pairs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_format() {
        assert_eq!(format_uptime(Duration::ZERO), "0s");
        assert_eq!(format_uptime(Duration::from_secs(59)), "59s");
        assert_eq!(
            format_uptime(Duration::from_secs(3 * 86_400 + 4 * 3600 + 12 * 60 + 9)),
            "3d4h12m9s"
        );
        assert_eq!(
            format_uptime(Duration::from_secs(8 * 86_400 + 60)),
            "1w1d1m"
        );
    }
}
