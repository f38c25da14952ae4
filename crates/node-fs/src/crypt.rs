//! LUKS2 encryption of a volume with `cryptsetup` (Debian's `cryptsetup-bin`):
//! format, open, close, resize, label, add a key.
//!
//! Why the command-line tool and not libcryptsetup through a crate: the tool
//! is what the field runs (Ceph-CSI and Longhorn do the same), it needs no C
//! toolchain or bindgen at build time, and every run goes through
//! [`tool::run`] with a timeout like every other program the node runs.
//!
//! The key never appears in an argument, the environment, a file or a log:
//! it is written to `cryptsetup`'s standard input (`--key-file=-`, which
//! takes the bytes exactly, a trailing newline included) by
//! [`tool::run_with_input`], from a [`Passphrase`] that zeroes itself. When
//! one run needs two keys (adding a key), both go down the same pipe, each
//! read by its length (`--keyfile-size`, `--new-keyfile-size`).
//!
//! What `cryptsetup` says is judged by its exit status, which its manual
//! documents: 1 bad parameters, 2 no permission (a passphrase no key slot
//! takes), 3 out of memory, 4 wrong device (or a mapping that is not
//! active), 5 device busy or already there.
//!
//! The key derivation is Argon2id with its memory bounded to
//! [`PBKDF_MEMORY_KIB`] and its time to [`PBKDF_TIME_MS`]: `cryptsetup`'s
//! default takes up to 1 GiB, which a node plugin's container limit
//! (256 MiB in `deploy/`) turns into an out-of-memory kill, and volumes are
//! opened at every stage, so a pod start waits for it.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{ExitStatus, Output};
use std::time::Duration;

use crate::error::summarize_output;
use crate::secret::Passphrase;
use crate::tool::{self, ToolError};

/// The program.
pub const CRYPTSETUP: &str = "cryptsetup";

/// The device-mapper UUID prefix of the mappings `cryptsetup open` makes for
/// LUKS2 volumes (`CRYPT-LUKS2-<uuid>-<name>`): a mapping without it is not
/// one this driver opened.
pub const LUKS2_UUID_PREFIX: &str = "CRYPT-LUKS2-";

/// Memory of the key derivation (Argon2id), KiB.
pub const PBKDF_MEMORY_KIB: u32 = 65_536;

/// Time of the key derivation at format (and key addition) time, on the
/// node that does it, in milliseconds: every open costs about as much.
pub const PBKDF_TIME_MS: u32 = 1000;

/// Why a `cryptsetup` run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptError {
    /// `cryptsetup` could not be run to completion: missing, not startable,
    /// or timed out.
    #[error("{target}: {source}")]
    Tool {
        /// The device or mapping it worked on.
        target: String,
        /// What went wrong.
        #[source]
        source: ToolError,
    },
    /// No key slot of the LUKS header takes the passphrase (exit status 2).
    #[error("no key slot of the LUKS header on {device} takes the passphrase given")]
    WrongKey {
        /// The device (or, for a resize, the mapping).
        device: String,
    },
    /// The mapping is in use (mounted, bound, open) and was left as it is
    /// (exit status 5 of `close`).
    #[error("the encrypted mapping {name} is in use, so it was not closed: {output}")]
    Busy {
        /// The mapping.
        name: String,
        /// What `cryptsetup` said.
        output: String,
    },
    /// A mapping of that name exists already, or the device is in use (by
    /// another mapping, a mount): exit status 5 of `open`.
    #[error("cannot open {device} as {name}: the name is taken or the device is in use: {output}")]
    Taken {
        /// The device.
        device: String,
        /// The mapping's name.
        name: String,
        /// What `cryptsetup` said.
        output: String,
    },
    /// `cryptsetup` ran and failed otherwise.
    #[error("`cryptsetup {action}` failed on {target} ({status}): {output}")]
    Failed {
        /// The action (`luksFormat`, `open`, …).
        action: &'static str,
        /// The device or mapping.
        target: String,
        /// How it exited.
        status: ExitStatus,
        /// What it printed, on one line.
        output: String,
    },
    /// The device-mapper state in sysfs could not be read.
    #[error("reading device-mapper devices in sysfs: {0}")]
    Sysfs(#[source] std::io::Error),
    /// A mapping name this driver would not give (not of letters, digits
    /// and `._+-`, or too long for device-mapper).
    #[error("{name:?} cannot be a device-mapper name: {reason}")]
    BadName {
        /// The name.
        name: String,
        /// Why not.
        reason: &'static str,
    },
}

impl CryptError {
    /// Whether the same call may succeed later unchanged: a timeout, a busy
    /// mapping.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Tool {
                source: ToolError::Timeout { .. } | ToolError::Wait { .. },
                ..
            } | Self::Busy { .. }
        )
    }
}

/// Longest device-mapper name (`DM_NAME_LEN` 128, with its NUL).
pub const MAX_NAME_LEN: usize = 127;

/// Checks a mapping name: letters, digits, `.`, `_`, `+`, `-`, at most
/// [`MAX_NAME_LEN`] bytes, not `.` or `..`.
pub fn check_name(name: &str) -> Result<(), CryptError> {
    let bad = |reason| {
        Err(CryptError::BadName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() || name == "." || name == ".." {
        return bad("it is empty, `.` or `..`");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("it is longer than 127 bytes");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
    {
        return bad("only letters, digits and ._+- are allowed");
    }
    Ok(())
}

/// The arguments of `luksFormat` for `device`, labelled `label`; the key
/// comes on standard input.
pub fn format_args<'a>(device: &'a Path, label: &'a str) -> Vec<&'a OsStr> {
    let mut args: Vec<&OsStr> = [
        "luksFormat",
        "--batch-mode",
        "--type",
        "luks2",
        "--cipher",
        "aes-xts-plain64",
        "--key-size",
        "512",
    ]
    .iter()
    .map(OsStr::new)
    .collect();
    args.extend(pbkdf_args());
    args.extend([
        OsStr::new("--label"),
        OsStr::new(label),
        OsStr::new("--key-file=-"),
        device.as_os_str(),
    ]);
    args
}

/// The key derivation's settings, for a new key slot.
fn pbkdf_args() -> [&'static OsStr; 6] {
    // Constant strings of the constants above, checked by a test.
    [
        "--pbkdf",
        "argon2id",
        "--pbkdf-memory",
        "65536",
        "--iter-time",
        "1000",
    ]
    .map(OsStr::new)
}

/// The arguments of `open` of `device` as mapping `name`.
pub fn open_args<'a>(device: &'a Path, name: &'a str) -> Vec<&'a OsStr> {
    ["open", "--type", "luks2", "--key-file=-"]
        .iter()
        .map(OsStr::new)
        .chain([device.as_os_str(), OsStr::new(name)])
        .collect()
}

/// The arguments of `luksAddKey` of `device`: the existing key (`existing`
/// bytes) then the new one (`new` bytes), both on standard input.
pub fn add_key_args(device: &Path, existing: usize, new: usize) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec!["luksAddKey".into(), "--batch-mode".into()];
    args.extend(pbkdf_args().iter().map(|a| a.to_os_string()));
    args.extend([
        "--key-file=-".into(),
        format!("--keyfile-size={existing}").into(),
        "--new-keyfile=-".into(),
        format!("--new-keyfile-size={new}").into(),
        device.as_os_str().to_os_string(),
    ]);
    args
}

/// Formats `device` as LUKS2, with `key` in its first key slot and `label`
/// in its header. Whatever the device held is lost: the caller makes sure it
/// held nothing.
pub async fn format(
    device: &Path,
    key: &Passphrase,
    label: &str,
    timeout: Duration,
) -> Result<(), CryptError> {
    let target = device.display().to_string();
    let output = run(
        "luksFormat",
        &target,
        &format_args(device, label),
        Some(key.expose()),
        timeout,
    )
    .await?;
    expect_success("luksFormat", target, &output)
}

/// Opens `device` as the mapping `/dev/mapper/<name>` with `key`.
pub async fn open(
    device: &Path,
    name: &str,
    key: &Passphrase,
    timeout: Duration,
) -> Result<(), CryptError> {
    check_name(name)?;
    let target = device.display().to_string();
    let output = run(
        "open",
        &target,
        &open_args(device, name),
        Some(key.expose()),
        timeout,
    )
    .await?;
    match output.status.code() {
        Some(0) => Ok(()),
        Some(2) => Err(CryptError::WrongKey { device: target }),
        Some(5) => Err(CryptError::Taken {
            device: target,
            name: name.to_owned(),
            output: summarize_output(&output),
        }),
        _ => Err(failed("open", target, &output)),
    }
}

/// Whether [`close`] closed a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// It was open and is closed now.
    Closed,
    /// No mapping of that name was open.
    NotOpen,
}

/// Closes the mapping `name`. A mapping that is not open is no error.
pub async fn close(name: &str, timeout: Duration) -> Result<Closed, CryptError> {
    check_name(name)?;
    let output = run("close", name, &["close", name], None, timeout).await?;
    match output.status.code() {
        Some(0) => Ok(Closed::Closed),
        Some(4) => Ok(Closed::NotOpen),
        Some(5) => Err(CryptError::Busy {
            name: name.to_owned(),
            output: summarize_output(&output),
        }),
        _ => Err(failed("close", name.to_owned(), &output)),
    }
}

/// Grows the mapping `name` to the size of the disk under it (after the disk
/// grew). A LUKS2 mapping whose volume key is in the kernel's keyring (the
/// default) needs a key of the volume for this.
pub async fn resize(
    name: &str,
    key: Option<&Passphrase>,
    timeout: Duration,
) -> Result<(), CryptError> {
    check_name(name)?;
    let output = match key {
        Some(key) => {
            run(
                "resize",
                name,
                &["resize", "--key-file=-", name],
                Some(key.expose()),
                timeout,
            )
            .await?
        }
        None => run("resize", name, &["resize", name], None, timeout).await?,
    };
    match output.status.code() {
        Some(0) => Ok(()),
        Some(2) => Err(CryptError::WrongKey {
            device: name.to_owned(),
        }),
        _ => Err(failed("resize", name.to_owned(), &output)),
    }
}

/// Adds `new` to a free key slot of `device`'s LUKS header, with `existing`
/// (a key a slot takes) as the authority.
pub async fn add_key(
    device: &Path,
    existing: &Passphrase,
    new: &Passphrase,
    timeout: Duration,
) -> Result<(), CryptError> {
    let target = device.display().to_string();
    let args = add_key_args(device, existing.len(), new.len());
    // One buffer holding both keys, zeroed on drop like each of them.
    let mut both = Vec::with_capacity(existing.len() + new.len());
    both.extend_from_slice(existing.expose());
    both.extend_from_slice(new.expose());
    let both = Passphrase::new(both);
    let output = run("luksAddKey", &target, &args, Some(both.expose()), timeout).await?;
    match output.status.code() {
        Some(0) => Ok(()),
        Some(2) => Err(CryptError::WrongKey { device: target }),
        _ => Err(failed("luksAddKey", target, &output)),
    }
}

/// Sets the label of `device`'s LUKS2 header (no key needed).
pub async fn set_label(device: &Path, label: &str, timeout: Duration) -> Result<(), CryptError> {
    let target = device.display().to_string();
    let args = [
        OsStr::new("config"),
        OsStr::new("--label"),
        OsStr::new(label),
        device.as_os_str(),
    ];
    let output = run("config", &target, &args, None, timeout).await?;
    expect_success("config", target, &output)
}

async fn run<A: AsRef<OsStr>>(
    action: &'static str,
    target: &str,
    args: &[A],
    input: Option<&[u8]>,
    timeout: Duration,
) -> Result<Output, CryptError> {
    let ran = match input {
        Some(input) => tool::run_with_input(CRYPTSETUP, args, input, timeout).await,
        None => tool::run(CRYPTSETUP, args, timeout).await,
    };
    let output = ran.map_err(|source| CryptError::Tool {
        target: target.to_owned(),
        source,
    })?;
    tracing::debug!(action, target, status = %output.status, "cryptsetup finished");
    Ok(output)
}

fn expect_success(action: &'static str, target: String, output: &Output) -> Result<(), CryptError> {
    if output.status.success() {
        Ok(())
    } else {
        Err(failed(action, target, output))
    }
}

fn failed(action: &'static str, target: String, output: &Output) -> CryptError {
    CryptError::Failed {
        action,
        target,
        status: output.status,
        output: summarize_output(output),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<A: AsRef<OsStr>>(args: &[A]) -> String {
        args.iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn commands_carry_no_key_and_read_it_from_standard_input() {
        assert_eq!(
            line(&format_args(Path::new("/dev/nvme1n1"), "rds-csi:new")),
            "luksFormat --batch-mode --type luks2 --cipher aes-xts-plain64 --key-size 512 \
             --pbkdf argon2id --pbkdf-memory 65536 --iter-time 1000 --label rds-csi:new \
             --key-file=- /dev/nvme1n1"
        );
        assert_eq!(
            line(&open_args(Path::new("/dev/nvme1n1"), "rds-csi-pvc-1")),
            "open --type luks2 --key-file=- /dev/nvme1n1 rds-csi-pvc-1"
        );
        assert_eq!(
            line(&add_key_args(Path::new("/dev/nvme1n1"), 6, 12)),
            "luksAddKey --batch-mode --pbkdf argon2id --pbkdf-memory 65536 --iter-time 1000 \
             --key-file=- --keyfile-size=6 --new-keyfile=- --new-keyfile-size=12 /dev/nvme1n1"
        );
        assert_eq!(pbkdf_args()[3], PBKDF_MEMORY_KIB.to_string().as_str());
        assert_eq!(pbkdf_args()[5], PBKDF_TIME_MS.to_string().as_str());
    }

    #[test]
    fn mapping_names_are_checked() {
        assert!(check_name("rds-csi-pvc-0b0e8b8e3c434c2f9d2e53f0d3b1").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "a\n", &"x".repeat(128)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name(&"x".repeat(127)).is_ok());
    }

    #[test]
    fn busy_and_timeouts_are_transient_and_a_wrong_key_is_not() {
        assert!(
            CryptError::Busy {
                name: "m".into(),
                output: String::new()
            }
            .is_transient()
        );
        assert!(
            !CryptError::WrongKey {
                device: "/dev/nvme0n1".into()
            }
            .is_transient()
        );
    }
}
