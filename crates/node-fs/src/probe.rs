//! What a block device holds: nothing, a filesystem, or something else.
//!
//! Another driver took `blkid`'s "not ready" after a reconnect for "no
//! filesystem" and formatted a live volume. So a device is [`Probe::Empty`]
//! only on positive evidence, all of it:
//!
//! 1. the path opens as a block device (`blkid` says "nothing found" for a
//!    path that does not exist, too), and stays open until the end, so a
//!    device that disappears meanwhile fails the last step;
//! 2. `blkid -p -o export <device>` (low-level probe, no cache) exits with
//!    status 2, "nothing found", and prints nothing at all;
//! 3. the first and the last MiB of the device read back as zeros: `blkid`
//!    knows only signatures, and a volume a workload used raw (as a block
//!    volume) has data but no signature. A new RDS volume is a new sparse file,
//!    so it reads as zeros.
//!
//! Every other answer — exit status 4 or 8, a timeout, a read error, output
//! that cannot be read — is an error, never a guess. The whole probe, `blkid`
//! and reads together, is bounded by one timeout.

use std::fmt;
use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use crate::FsError;
use crate::tool;

/// How much of each end of the device must be zeros for it to count as empty.
pub const ZERO_CHECK_BYTES: u64 = 1 << 20;

/// What a device holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// No signature and zeros at both ends: safe to format.
    Empty,
    /// A filesystem, by its `blkid` `TYPE` (`ext4`, `xfs`, …).
    Filesystem(String),
    /// Something else: a partition table (`PTTYPE=gpt`), a non-filesystem
    /// signature (`TYPE=crypto_LUKS USAGE=crypto`), or data without a signature.
    Other(String),
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("nothing (no signature, zeros at both ends)"),
            Self::Filesystem(fs_type) => write!(f, "a filesystem of type {fs_type}"),
            Self::Other(what) => write!(f, "something other than a filesystem ({what})"),
        }
    }
}

/// Finds out what `device` holds, within `timeout`. See the module docs for
/// what counts as empty.
pub async fn probe(device: &Path, timeout: Duration) -> Result<Probe, FsError> {
    let deadline = Instant::now() + timeout;
    let path = device.to_path_buf();
    let file = blocking("opening", device, timeout, deadline, move || {
        open_block_device(&path)
    })
    .await?;

    // blkid and the zero check run at once (staging time is what a pod
    // start waits for); the answer is judged as if in sequence: blkid
    // first, the zeros only when it found nothing.
    let path = device.to_path_buf();
    let zeros = blocking("reading", device, timeout, deadline, move || {
        first_non_zero(&file).map_err(|source| FsError::Io {
            op: "reading",
            path,
            source,
        })
    });
    let args = [
        "-p".as_ref(),
        "-o".as_ref(),
        "export".as_ref(),
        device.as_os_str(),
    ];
    let remaining = deadline.saturating_duration_since(Instant::now());
    let signature = async {
        let output = tool::run("blkid", &args, remaining)
            .await
            .map_err(|source| FsError::Tool {
                path: device.to_path_buf(),
                source,
            })?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        interpret(output.status.code(), &stdout, &stderr).map_err(|reason| FsError::Probe {
            device: device.to_path_buf(),
            reason,
        })
    };
    let (answer, non_zero) = tokio::join!(signature, zeros);
    let answer = answer?;
    if answer != Probe::Empty {
        return Ok(answer);
    }
    Ok(match non_zero? {
        None => Probe::Empty,
        Some(offset) => Probe::Other(format!(
            "data without a known signature: a non-zero byte at offset {offset}"
        )),
    })
}

/// Reads `blkid -p -o export`'s answer from its exit status (`None` if it was
/// killed by a signal) and output. `Ok(Probe::Empty)` here means only "no
/// signature"; [`probe`] checks for zeros on top. `Err` holds the reason the
/// answer is not definite.
pub fn interpret(exit: Option<i32>, stdout: &str, stderr: &str) -> Result<Probe, String> {
    let said = || match (stdout.trim(), stderr.trim()) {
        ("", "") => "no output".to_owned(),
        (out, "") => format!("output {out:?}"),
        ("", err) => format!("error output {err:?}"),
        (out, err) => format!("output {out:?}, error output {err:?}"),
    };
    match exit {
        Some(0) => {}
        Some(2) if stdout.trim().is_empty() && stderr.trim().is_empty() => {
            return Ok(Probe::Empty);
        }
        Some(2) => {
            return Err(format!(
                "blkid found nothing but printed something: {}",
                said()
            ));
        }
        Some(4) => {
            return Err(format!(
                "blkid failed (exit status 4, usage or I/O error): {}",
                said()
            ));
        }
        Some(8) => {
            return Err(format!(
                "blkid found more than one signature (exit status 8); inspect with `wipefs --no-act`: {}",
                said()
            ));
        }
        Some(code) => {
            return Err(format!(
                "blkid exited with unexpected status {code}: {}",
                said()
            ));
        }
        None => return Err(format!("blkid was killed by a signal: {}", said())),
    }

    let fields = parse_export(stdout)?;
    let get = |key: &str| {
        fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    Ok(match (get("TYPE"), get("USAGE"), get("PTTYPE")) {
        (Some(fs_type), None | Some("filesystem"), _) => Probe::Filesystem(fs_type.to_owned()),
        (Some(fs_type), Some(usage), _) => Probe::Other(format!("TYPE={fs_type} USAGE={usage}")),
        (None, _, Some(pt_type)) => Probe::Other(format!("PTTYPE={pt_type}")),
        (None, _, None) => {
            let keys: Vec<&str> = fields
                .iter()
                .map(|(k, _)| k.as_str())
                .filter(|k| *k != "DEVNAME")
                .collect();
            if keys.is_empty() {
                return Err(format!("blkid succeeded but reported nothing: {}", said()));
            }
            Probe::Other(format!("a signature with {}", keys.join(", ")))
        }
    })
}

/// Parses `KEY=value` lines; `blkid` escapes special characters in values
/// with a backslash.
fn parse_export(stdout: &str) -> Result<Vec<(String, String)>, String> {
    stdout
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| format!("blkid printed a line that is not KEY=value: {line:?}"))?;
            let mut unescaped = String::with_capacity(value.len());
            let mut chars = value.chars();
            while let Some(c) = chars.next() {
                unescaped.push(if c == '\\' {
                    chars.next().unwrap_or(c)
                } else {
                    c
                });
            }
            Ok((key.to_owned(), unescaped))
        })
        .collect()
}

fn open_block_device(path: &Path) -> Result<File, FsError> {
    let io_error = |source| FsError::Io {
        op: "opening",
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_error)?;
    if !file
        .metadata()
        .map_err(io_error)?
        .file_type()
        .is_block_device()
    {
        return Err(FsError::NotBlockDevice {
            path: path.to_path_buf(),
        });
    }
    Ok(file)
}

/// The offset of the first non-zero byte within the first or last
/// [`ZERO_CHECK_BYTES`] of the device, if any.
fn first_non_zero(mut file: &File) -> io::Result<Option<u64>> {
    let size = file.seek(SeekFrom::End(0))?;
    let head = 0..size.min(ZERO_CHECK_BYTES);
    let tail = size.saturating_sub(ZERO_CHECK_BYTES).max(head.end)..size;
    let mut buffer = vec![0u8; 64 * 1024];
    for range in [head, tail] {
        let mut offset = range.start;
        while offset < range.end {
            let len = usize::try_from(range.end - offset)
                .unwrap_or(usize::MAX)
                .min(buffer.len());
            let chunk = &mut buffer[..len];
            file.read_exact_at(chunk, offset)?;
            if let Some(index) = chunk.iter().position(|byte| *byte != 0) {
                return Ok(Some(offset + index as u64));
            }
            offset += len as u64;
        }
    }
    Ok(None)
}

/// Runs blocking device I/O on tokio's blocking pool, giving up at `deadline`.
/// A thread stuck in the kernel stays stuck; the caller gets an error at once.
pub(crate) async fn blocking<T: Send + 'static>(
    op: &'static str,
    device: &Path,
    timeout: Duration,
    deadline: Instant,
    work: impl FnOnce() -> Result<T, FsError> + Send + 'static,
) -> Result<T, FsError> {
    let path = || PathBuf::from(device);
    match tokio::time::timeout_at(deadline, tokio::task::spawn_blocking(work)).await {
        Ok(Ok(result)) => result,
        Ok(Err(join_error)) => Err(FsError::Io {
            op,
            path: path(),
            source: io::Error::other(join_error),
        }),
        Err(_elapsed) => Err(FsError::Timeout {
            op,
            path: path(),
            timeout,
        }),
    }
}

#[cfg(test)]
#[path = "probe_tests.rs"]
mod tests;
