//! Real btrfs under a simulated pool: the simulator's `/disk/btrfs/subvolume`
//! commands are real `btrfs subvolume` operations on a filesystem mounted at
//! the pool's folder, so that snapshots share extents as they do on the RDS.
//!
//! Everything goes through btrfs-progs' `btrfs` command (the ioctls would
//! need `unsafe`), each run with a timeout. Listing reads
//! `btrfs subvolume list` (IDs, UUIDs, paths) and `list -r` (the read-only
//! ones), and each subvolume's birth time, which btrfs keeps as its creation
//! time.
//!
//! [`LoopBtrfs`] makes such a pool for tests, benchmarks and the `rds-sim`
//! binary: a sparse file formatted with `mkfs.btrfs`, mounted with
//! `mount -o loop`, unmounted when dropped. Both need root.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// `statfs`' type of a btrfs filesystem.
const BTRFS_SUPER_MAGIC: u64 = 0x9123_683E;

/// The inode number of a subvolume's root directory (the top level's too).
const SUBVOLUME_ROOT_INODE: u64 = 256;

/// How long one `btrfs` command may take: generous for a loaded machine.
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `program` with `args`, returning its standard output, or what went
/// wrong (its standard error when it failed). Both outputs are read while it
/// runs, so that a long listing cannot fill a pipe and stall it.
pub(crate) fn run_tool(program: &str, args: &[&str], timeout: Duration) -> Result<String, String> {
    let command_line = || format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{} timed out after {timeout:?}", command_line()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("{}: {e}", command_line())),
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if status.success() {
        Ok(stdout)
    } else {
        Err(format!("{} failed: {}", command_line(), stderr.trim()))
    }
}

fn btrfs(args: &[&str]) -> Result<String, String> {
    run_tool("btrfs", args, TOOL_TIMEOUT)
}

fn text(path: &Path) -> Result<&str, String> {
    path.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))
}

/// Whether `path` is the top of a mounted btrfs filesystem.
pub(crate) fn is_btrfs_top(path: &Path) -> Result<bool, String> {
    use std::os::unix::fs::MetadataExt;
    let stat = rustix::fs::statfs(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let is_btrfs = u64::try_from(stat.f_type).ok() == Some(BTRFS_SUPER_MAGIC);
    let ino = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .ino();
    Ok(is_btrfs && ino == SUBVOLUME_ROOT_INODE)
}

/// Whether the folder `path` (inside a btrfs filesystem) is a subvolume's
/// root rather than a plain folder.
pub(crate) fn is_subvolume(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir() && m.ino() == SUBVOLUME_ROOT_INODE)
}

/// The filesystem's label.
pub(crate) fn label(mount: &Path) -> Result<String, String> {
    Ok(btrfs(&["filesystem", "label", text(mount)?])?
        .trim_end_matches('\n')
        .to_owned())
}

/// Size and free space of the filesystem at `mount`, in bytes, as `statvfs`
/// reports them.
pub(crate) fn space(mount: &Path) -> Result<(u64, u64), String> {
    let st = rustix::fs::statvfs(mount).map_err(|e| format!("{}: {e}", mount.display()))?;
    Ok((
        st.f_blocks.saturating_mul(st.f_frsize),
        st.f_bavail.saturating_mul(st.f_frsize),
    ))
}

/// Makes an empty subvolume at `path`.
pub(crate) fn create(path: &Path) -> Result<(), String> {
    btrfs(&["subvolume", "create", text(path)?]).map(drop)
}

/// Makes `path` a snapshot of the subvolume `source`.
pub(crate) fn snapshot(source: &Path, path: &Path, read_only: bool) -> Result<(), String> {
    let mut args = vec!["subvolume", "snapshot"];
    if read_only {
        args.push("-r");
    }
    args.push(text(source)?);
    args.push(text(path)?);
    btrfs(&args).map(drop)
}

/// Makes the subvolume at `path` read-only.
pub(crate) fn set_read_only(path: &Path) -> Result<(), String> {
    btrfs(&["property", "set", "-ts", text(path)?, "ro", "true"]).map(drop)
}

/// Deletes the subvolume at `path`, content and all. Waits for the commit,
/// so that the space is free when the command returns.
pub(crate) fn delete(path: &Path) -> Result<(), String> {
    btrfs(&["subvolume", "delete", "--commit-after", text(path)?]).map(drop)
}

/// One subvolume, as `btrfs subvolume list -u -q` and the filesystem show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    /// btrfs's subvolume ID.
    pub id: u64,
    /// The ID of the subvolume it sits in (5 for the top level).
    pub top_level: u64,
    /// The UUID of the subvolume it is a snapshot of.
    pub parent_uuid: Option<String>,
    /// Its UUID.
    pub uuid: String,
    /// Its path from the top of the filesystem.
    pub path: String,
    /// Read-only.
    pub read_only: bool,
    /// When it was made.
    pub created: Option<SystemTime>,
}

/// Reads `btrfs subvolume list -u -q` lines:
/// `ID 256 gen 7 top level 5 parent_uuid - uuid 1085… path volumes/pvc-a`.
/// The path is the rest of the line. Lines of another shape are skipped.
pub(crate) fn parse_list(output: &str) -> Vec<Listed> {
    let mut out = Vec::new();
    for line in output.lines() {
        let Some((head, path)) = line.split_once(" path ") else {
            continue;
        };
        let words: Vec<&str> = head.split_whitespace().collect();
        let after = |key: &[&str]| {
            words
                .windows(key.len() + 1)
                .find(|w| w[..key.len()] == *key)
                .map(|w| w[key.len()])
        };
        let (Some(id), Some(top_level), Some(uuid)) = (
            after(&["ID"]).and_then(|v| v.parse().ok()),
            after(&["top", "level"]).and_then(|v| v.parse().ok()),
            after(&["uuid"]),
        ) else {
            continue;
        };
        out.push(Listed {
            id,
            top_level,
            parent_uuid: after(&["parent_uuid"])
                .filter(|v| *v != "-")
                .map(str::to_owned),
            uuid: uuid.to_owned(),
            path: path.to_owned(),
            read_only: false,
            created: None,
        });
    }
    out
}

/// The IDs in `btrfs subvolume list` lines.
fn parse_ids(output: &str) -> BTreeSet<u64> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix("ID "))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Every subvolume of the filesystem at `mount`.
pub(crate) fn list(mount: &Path) -> Result<Vec<Listed>, String> {
    let mount_text = text(mount)?;
    let mut listed = parse_list(&btrfs(&["subvolume", "list", "-u", "-q", mount_text])?);
    let read_only = parse_ids(&btrfs(&["subvolume", "list", "-r", mount_text])?);
    for sub in &mut listed {
        sub.read_only = read_only.contains(&sub.id);
        sub.created = std::fs::metadata(mount.join(&sub.path))
            .and_then(|m| m.created())
            .ok();
    }
    Ok(listed)
}

/// Why a loop-mounted btrfs could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot make a loop-mounted btrfs at {mount_point}: {reason}")]
pub struct LoopBtrfsError {
    /// Where it was to be mounted.
    pub mount_point: PathBuf,
    /// What went wrong.
    pub reason: String,
}

/// A btrfs filesystem on a sparse file, mounted through a loop device; the
/// pool folder of a simulated btrfs pool. Needs root, `mkfs.btrfs` and
/// `mount`. Unmounted (and its loop device released) when dropped; the image
/// file stays, so the same pool can be mounted again.
#[derive(Debug)]
pub struct LoopBtrfs {
    mount_point: PathBuf,
    mounted: bool,
}

impl LoopBtrfs {
    /// Formats a new sparse `image` of `size` bytes with label `label` (an
    /// existing image is formatted anew) and mounts it at `mount_point`,
    /// which is created if needed.
    pub fn create(
        image: &Path,
        mount_point: &Path,
        size: u64,
        label: &str,
    ) -> Result<Self, LoopBtrfsError> {
        let fail = |reason: String| LoopBtrfsError {
            mount_point: mount_point.to_owned(),
            reason,
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(image)
            .map_err(|e| fail(format!("{}: {e}", image.display())))?;
        file.set_len(size)
            .map_err(|e| fail(format!("{}: {e}", image.display())))?;
        drop(file);
        run_tool(
            "mkfs.btrfs",
            &["-q", "-f", "-L", label, text(image).map_err(fail)?],
            TOOL_TIMEOUT,
        )
        .map_err(fail)?;
        Self::mount(image, mount_point)
    }

    /// Mounts an existing btrfs `image` at `mount_point`.
    pub fn mount(image: &Path, mount_point: &Path) -> Result<Self, LoopBtrfsError> {
        let fail = |reason: String| LoopBtrfsError {
            mount_point: mount_point.to_owned(),
            reason,
        };
        std::fs::create_dir_all(mount_point)
            .map_err(|e| fail(format!("{}: {e}", mount_point.display())))?;
        run_tool(
            "mount",
            &[
                "-o",
                "loop",
                "-t",
                "btrfs",
                text(image).map_err(fail)?,
                text(mount_point).map_err(fail)?,
            ],
            TOOL_TIMEOUT,
        )
        .map_err(fail)?;
        Ok(Self {
            mount_point: mount_point.to_owned(),
            mounted: true,
        })
    }

    /// Where it is mounted.
    pub fn mount_point(&self) -> &Path {
        &self.mount_point
    }

    /// Unmounts it now (a lazy unmount if a plain one fails, e.g. while a
    /// loop device of nvmet still holds an image in it).
    pub fn unmount(&mut self) -> Result<(), String> {
        if !self.mounted {
            return Ok(());
        }
        let target = text(&self.mount_point)?.to_owned();
        let result = run_tool("umount", &[&target], TOOL_TIMEOUT)
            .or_else(|_| run_tool("umount", &["-l", &target], TOOL_TIMEOUT))
            .map(drop);
        self.mounted = result.is_err();
        result
    }
}

impl Drop for LoopBtrfs {
    fn drop(&mut self) {
        if let Err(e) = self.unmount() {
            tracing::warn!(error = %e, mount_point = %self.mount_point.display(), "cannot unmount a loop-mounted btrfs");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_lines() {
        let output = concat!(
            "ID 256 gen 7 top level 5 parent_uuid -                                    uuid 10852921-615b-8a45-b37f-26f85fcb96b8 path volumes/pvc-a\n",
            "ID 257 gen 8 top level 5 parent_uuid 10852921-615b-8a45-b37f-26f85fcb96b8 uuid 83145bb5-39de-654d-9d8c-579b1c8fcfeb path volumes/snap 1\n",
            "garbage\n",
            "ID x gen 8 top level 5 uuid y path z\n",
        );
        let listed = parse_list(output);
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].id, 256);
        assert_eq!(listed[0].top_level, 5);
        assert_eq!(listed[0].parent_uuid, None);
        assert_eq!(listed[0].path, "volumes/pvc-a");
        assert_eq!(
            listed[1].parent_uuid.as_deref(),
            Some("10852921-615b-8a45-b37f-26f85fcb96b8")
        );
        assert_eq!(listed[1].uuid, "83145bb5-39de-654d-9d8c-579b1c8fcfeb");
        assert_eq!(listed[1].path, "volumes/snap 1");
        assert_eq!(
            parse_ids("ID 257 gen 8 top level 5 path volumes/snap-1\nnoise\n"),
            BTreeSet::from([257])
        );
    }

    #[test]
    fn tools_fail_with_their_message_and_time_out() {
        let err = run_tool("sh", &["-c", "echo bad >&2; exit 3"], TOOL_TIMEOUT).unwrap_err();
        assert!(err.contains("bad"), "{err}");
        let err = run_tool("sleep", &["5"], Duration::from_millis(50)).unwrap_err();
        assert!(err.contains("timed out"), "{err}");
        assert_eq!(
            run_tool("echo", &["hi"], TOOL_TIMEOUT).as_deref(),
            Ok("hi\n")
        );
        // More than a pipe holds, read while the tool runs.
        let long = run_tool("head", &["-c", "1000000", "/dev/zero"], TOOL_TIMEOUT).unwrap();
        assert_eq!(long.len(), 1_000_000);
    }
}
