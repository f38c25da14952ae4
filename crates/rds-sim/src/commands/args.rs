//! Decoding `name=value` arguments into typed settings, with RouterOS's
//! errors: `input does not match any value of X` for a keyword that is not
//! one of the argument's choices, `invalid value for argument X` for a value
//! that does not parse.
//!
//! Values arrive typed ([`Value`]): `yes` is a string, `true` a boolean,
//! `4420` a number, `"4420"` a string; every argument accepts each of the
//! forms that spell a valid value.

use crate::error::CmdError;
use crate::size::parse_size;
use crate::state::Disk;
use crate::value::Value;

/// Named arguments of one command; a repeated name takes its last value.
pub struct Args<'a> {
    named: &'a [(String, Value)],
}

impl<'a> Args<'a> {
    /// Wraps the named arguments of an invocation.
    pub fn new(named: &'a [(String, Value)]) -> Self {
        Args { named }
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.named
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// Names given, in order.
    pub fn names(&self) -> impl Iterator<Item = &'a str> {
        self.named.iter().map(|(n, _)| n.as_str())
    }

    /// A text argument.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name).map(Value::to_text)
    }

    /// A `yes`/`no` argument.
    pub fn flag(&self, name: &'static str) -> Result<Option<bool>, CmdError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        match value {
            Value::Bool(b) => Ok(Some(*b)),
            Value::Str(s) if s == "yes" || s == "true" => Ok(Some(true)),
            Value::Str(s) if s == "no" || s == "false" => Ok(Some(false)),
            _ => Err(CmdError::NoMatch(name)),
        }
    }

    /// A size in bytes, with optional unit (`10G`).
    pub fn size(&self, name: &'static str) -> Result<Option<u64>, CmdError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let parsed = match value {
            Value::Num(n) => u64::try_from(*n).ok(),
            Value::Str(s) => parse_size(s),
            _ => None,
        };
        parsed.map(Some).ok_or(CmdError::InvalidValue(name))
    }

    /// A TCP port.
    pub fn port(&self, name: &'static str) -> Result<Option<u16>, CmdError> {
        match self.size(name) {
            Ok(None) => Ok(None),
            Ok(Some(n)) => u16::try_from(n)
                .map(Some)
                .map_err(|_| CmdError::InvalidValue(name)),
            Err(e) => Err(e),
        }
    }
}

/// The settings `/disk add` and `/disk set` share, decoded and checked
/// before anything changes.
#[derive(Debug, Default)]
pub struct DiskSettings {
    /// New slot.
    pub slot: Option<String>,
    /// New size.
    pub file_size: Option<u64>,
    comment: Option<String>,
    disabled: Option<bool>,
    mount_filesystem: Option<bool>,
    mount_read_only: Option<bool>,
    compress: Option<bool>,
    nvme_tcp_export: Option<bool>,
    nvme_tcp_server_port: Option<u16>,
    nvme_tcp_server_nqn: Option<String>,
    nvme_tcp_server_allow_host_name: Option<String>,
    nvme_tcp_server_password: Option<String>,
    iscsi_export: Option<bool>,
    nfs_sharing: Option<bool>,
    smb_sharing: Option<bool>,
    swap: Option<bool>,
    file_offset: Option<u64>,
}

impl DiskSettings {
    /// Decodes the settings among `args`; slots may be `max_slot` characters
    /// long.
    pub fn decode(args: &Args<'_>, max_slot: usize) -> Result<DiskSettings, CmdError> {
        let slot = args.text("slot");
        if let Some(slot) = &slot
            && (slot.is_empty() || slot.chars().count() > max_slot)
        {
            return Err(CmdError::InvalidValue("slot"));
        }
        let file_size = args.size("file-size")?;
        if file_size == Some(0) {
            return Err(CmdError::InvalidValue("file-size"));
        }
        Ok(DiskSettings {
            slot,
            file_size,
            comment: args.text("comment"),
            disabled: args.flag("disabled")?,
            mount_filesystem: args.flag("mount-filesystem")?,
            mount_read_only: args.flag("mount-read-only")?,
            compress: args.flag("compress")?,
            nvme_tcp_export: args.flag("nvme-tcp-export")?,
            nvme_tcp_server_port: args.port("nvme-tcp-server-port")?,
            nvme_tcp_server_nqn: args.text("nvme-tcp-server-nqn"),
            nvme_tcp_server_allow_host_name: args.text("nvme-tcp-server-allow-host-name"),
            nvme_tcp_server_password: args.text("nvme-tcp-server-password"),
            iscsi_export: args.flag("iscsi-export")?,
            nfs_sharing: args.flag("nfs-sharing")?,
            smb_sharing: args.flag("smb-sharing")?,
            swap: args.flag("swap")?,
            file_offset: args.size("file-offset")?,
        })
    }

    /// The comment to store: an empty comment removes it.
    pub fn comment(&self) -> Option<Option<String>> {
        self.comment
            .as_ref()
            .map(|c| Some(c.clone()).filter(|c| !c.is_empty()))
    }

    /// Applies everything except the slot and the size, which need checks
    /// against the rest of the state.
    pub fn apply(&self, disk: &mut Disk) {
        fn put<T: Clone>(target: &mut T, value: &Option<T>) {
            if let Some(v) = value {
                *target = v.clone();
            }
        }
        if let Some(comment) = self.comment() {
            disk.comment = comment;
        }
        put(&mut disk.disabled, &self.disabled);
        put(&mut disk.mount_filesystem, &self.mount_filesystem);
        put(&mut disk.mount_read_only, &self.mount_read_only);
        put(&mut disk.compress, &self.compress);
        put(&mut disk.nvme_tcp_export, &self.nvme_tcp_export);
        put(&mut disk.nvme_tcp_server_port, &self.nvme_tcp_server_port);
        put(&mut disk.nvme_tcp_server_nqn, &self.nvme_tcp_server_nqn);
        put(
            &mut disk.nvme_tcp_server_allow_host_name,
            &self.nvme_tcp_server_allow_host_name,
        );
        put(
            &mut disk.nvme_tcp_server_password,
            &self.nvme_tcp_server_password,
        );
        put(&mut disk.iscsi_export, &self.iscsi_export);
        put(&mut disk.nfs_sharing, &self.nfs_sharing);
        put(&mut disk.smb_sharing, &self.smb_sharing);
        put(&mut disk.swap, &self.swap);
        put(&mut disk.file_offset, &self.file_offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(pairs: &[(&str, Value)]) -> Vec<(String, Value)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect()
    }

    fn str(s: &str) -> Value {
        Value::Str(s.into())
    }

    #[test]
    fn typed_arguments() {
        let list = named(&[
            ("a", str("yes")),
            ("b", Value::Bool(false)),
            ("c", str("maybe")),
            ("s", str("10G")),
            ("n", Value::Num(4420)),
            ("q", str("4420")),
            ("big", Value::Num(70000)),
            ("neg", Value::Num(-1)),
        ]);
        let args = Args::new(&list);
        assert_eq!(args.flag("a"), Ok(Some(true)));
        assert_eq!(args.flag("b"), Ok(Some(false)));
        assert_eq!(args.flag("c"), Err(CmdError::NoMatch("c")));
        assert_eq!(args.flag("zz"), Ok(None));
        assert_eq!(args.size("s"), Ok(Some(10 << 30)));
        assert_eq!(args.port("n"), Ok(Some(4420)));
        assert_eq!(args.port("q"), Ok(Some(4420)));
        assert_eq!(args.port("big"), Err(CmdError::InvalidValue("big")));
        assert_eq!(args.size("neg"), Err(CmdError::InvalidValue("neg")));
    }

    #[test]
    fn disk_settings_check_slot_and_size() {
        let long = "x".repeat(33);
        for (pairs, err) in [
            (vec![("slot", str(&long))], CmdError::InvalidValue("slot")),
            (vec![("slot", str(""))], CmdError::InvalidValue("slot")),
            (
                vec![("file-size", str("ten"))],
                CmdError::InvalidValue("file-size"),
            ),
            (
                vec![("file-size", Value::Num(0))],
                CmdError::InvalidValue("file-size"),
            ),
            (
                vec![("nvme-tcp-export", str("maybe"))],
                CmdError::NoMatch("nvme-tcp-export"),
            ),
        ] {
            let list = named(&pairs);
            assert_eq!(DiskSettings::decode(&Args::new(&list), 32).err(), Some(err));
        }
        let list = named(&[("slot", str(&"x".repeat(32))), ("comment", str(""))]);
        let settings = DiskSettings::decode(&Args::new(&list), 32).unwrap();
        assert_eq!(settings.comment(), Some(None));
    }
}
