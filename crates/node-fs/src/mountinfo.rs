//! Reading the mount table from `/proc/self/mountinfo`.
//!
//! One line per mount (proc(5)), for example:
//!
//! ```text
//! 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//! ```
//!
//! mount id, parent id, `major:minor` of the filesystem, root of the mount
//! within the filesystem, mount point, per-mount options, zero or more optional
//! fields (`shared:N`, `master:N`, `propagate_from:N`, `unbindable`) ended by a
//! lone `-`, filesystem type, source, and the superblock's options. The kernel
//! escapes space, tab, newline and backslash in paths as octal (`\040`, `\011`,
//! `\012`, `\134`). Paths are bytes, not necessarily UTF-8, so [`parse_bytes`]
//! is the real parser and [`read`] uses it.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use crate::FsError;

/// One mount, one line of `mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// The mount's id (may be reused after it is unmounted).
    pub mount_id: u32,
    /// The id of the parent mount.
    pub parent_id: u32,
    /// Major device number of the filesystem (`st_dev`).
    pub major: u32,
    /// Minor device number of the filesystem.
    pub minor: u32,
    /// The directory of the filesystem mounted here (`/` unless a bind mount of
    /// a subdirectory).
    pub root: PathBuf,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Per-mount options (`rw`, `ro`, `nosuid`, `noatime`, …).
    pub options: Vec<String>,
    /// The filesystem type, e.g. `ext4`.
    pub fs_type: String,
    /// The source, e.g. `/dev/nvme1n1`; for a bind mount, the source of the
    /// filesystem it was bound from.
    pub source: String,
    /// The superblock's options, shared by every mount of the filesystem.
    pub super_options: Vec<String>,
}

impl MountInfo {
    /// Whether the mount is read-only, either this mount (`ro` in its options)
    /// or the whole filesystem (`ro` in the superblock's).
    pub fn read_only(&self) -> bool {
        self.options
            .iter()
            .chain(&self.super_options)
            .any(|o| o == "ro")
    }
}

/// Parses the text of `/proc/self/mountinfo`.
pub fn parse(text: &str) -> Result<Vec<MountInfo>, FsError> {
    parse_bytes(text.as_bytes())
}

/// Parses the bytes of `/proc/self/mountinfo`, paths need not be UTF-8.
pub fn parse_bytes(text: &[u8]) -> Result<Vec<MountInfo>, FsError> {
    text.split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
        .map(|(index, line)| {
            parse_line(line).map_err(|reason| FsError::MountInfo {
                line: index + 1,
                reason: format!("{reason}: {:?}", String::from_utf8_lossy(line)),
            })
        })
        .collect()
}

/// Reads and parses `<proc_root>/self/mountinfo`.
pub fn read(proc_root: &Path) -> Result<Vec<MountInfo>, FsError> {
    let path = proc_root.join("self/mountinfo");
    let text = std::fs::read(&path).map_err(|source| FsError::Io {
        op: "reading",
        path,
        source,
    })?;
    parse_bytes(&text)
}

/// The mount whose mount point is exactly `path`: the top one, if several are
/// stacked there. Paths are compared as given, component by component (a
/// trailing `/` does not matter, symbolic links are not resolved).
pub fn find<'a>(mounts: &'a [MountInfo], path: &Path) -> Option<&'a MountInfo> {
    mounts.iter().rev().find(|m| m.mount_point == path)
}

/// Fields before the optional ones: id, parent, dev, root, mount point, options.
const FIXED_FIELDS: usize = 6;

fn parse_line(line: &[u8]) -> Result<MountInfo, String> {
    let fields: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
    let separator = fields
        .iter()
        .skip(FIXED_FIELDS)
        .position(|field| *field == b"-")
        .map(|position| position + FIXED_FIELDS)
        .ok_or("no \" - \" separator after six fields")?;
    let [fs_type, source, super_options] = fields[separator + 1..] else {
        return Err(format!(
            "expected 3 fields after \" - \", found {}",
            fields.len() - separator - 1
        ));
    };
    let mut device = fields[2].splitn(2, |b| *b == b':');
    let (Some(major), Some(minor)) = (device.next(), device.next()) else {
        return Err("device is not major:minor".to_owned());
    };
    Ok(MountInfo {
        mount_id: number(fields[0], "mount id")?,
        parent_id: number(fields[1], "parent id")?,
        major: number(major, "major")?,
        minor: number(minor, "minor")?,
        root: path(fields[3]),
        mount_point: path(fields[4]),
        options: list(fields[5]),
        fs_type: text(fs_type),
        source: text(source),
        super_options: list(super_options),
    })
}

fn number(field: &[u8], what: &str) -> Result<u32, String> {
    std::str::from_utf8(field)
        .ok()
        .and_then(|digits| digits.parse().ok())
        .ok_or_else(|| format!("{what} is not a number"))
}

fn path(field: &[u8]) -> PathBuf {
    PathBuf::from(OsString::from_vec(unescape(field)))
}

fn text(field: &[u8]) -> String {
    String::from_utf8_lossy(&unescape(field)).into_owned()
}

fn list(field: &[u8]) -> Vec<String> {
    text(field)
        .split(',')
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Decodes the kernel's `\ooo` octal escapes; any other backslash is kept.
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut rest = field;
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'\\'
            && let [a @ b'0'..=b'3', b @ b'0'..=b'7', c @ b'0'..=b'7', ..] = *tail
        {
            out.push((a - b'0') * 64 + (b - b'0') * 8 + (c - b'0'));
            rest = &tail[3..];
        } else {
            out.push(first);
            rest = tail;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStrExt;

    use super::*;

    /// One line per mount, every field shown, paths quoted so spaces show.
    fn render(m: &MountInfo) -> String {
        format!(
            "{} {} {}:{} {:?} {:?} {} | {} {:?} {}",
            m.mount_id,
            m.parent_id,
            m.major,
            m.minor,
            m.root,
            m.mount_point,
            m.options.join(","),
            m.fs_type,
            m.source,
            m.super_options.join(","),
        )
    }

    /// Parses `testdata/mountinfo/<fixture>` and compares every mount with
    /// `expected`, one rendered line each.
    fn check(fixture: &str, expected: &[&str]) -> Vec<MountInfo> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/mountinfo")
            .join(fixture);
        let mounts = match std::fs::read(&path).map(|bytes| parse_bytes(&bytes)) {
            Ok(Ok(mounts)) => mounts,
            other => panic!("{}: {other:?}", path.display()),
        };
        let actual: Vec<String> = mounts.iter().map(render).collect();
        assert_eq!(actual, expected, "{fixture}");
        mounts
    }

    /// Parses one line that must be refused, and returns the message.
    fn check_error(line: &str, expected: &str) {
        match parse(line) {
            Err(err) => assert!(
                err.to_string().contains(expected),
                "{err} lacks {expected:?}"
            ),
            Ok(mounts) => panic!("{line:?} parsed as {mounts:?}"),
        }
    }

    #[test]
    fn node_with_kubelet_mounts() {
        let mounts = check(
            "node.txt",
            &[
                r#"22 27 0:21 "/" "/proc" rw,relatime | proc "proc" rw"#,
                r#"27 1 254:0 "/" "/" rw,relatime | ext4 "/dev/vda" rw,discard"#,
                r#"28 27 0:25 "/" "/var/lib/kubelet" rw,nosuid,nodev | tmpfs "tmpfs" rw,size=4k,mode=755"#,
                r#"612 28 259:3 "/" "/var/lib/kubelet/plugins/kubernetes.io/csi/rds.csi.srvlab.io/5c1f/globalmount" rw,noatime | xfs "/dev/nvme1n1" rw,attr2,inode64,noquota"#,
                r#"640 28 259:3 "/" "/var/lib/kubelet/pods/a7e1/volumes/kubernetes.io~csi/pvc-1/mount" ro,noatime | xfs "/dev/nvme1n1" rw,attr2,inode64,noquota"#,
                r#"655 28 0:6 "/nvme2n1" "/var/lib/kubelet/pods/b2/volumeDevices/kubernetes.io~csi/pvc-2" rw,nosuid,relatime | devtmpfs "udev" rw,size=8156952k,mode=755"#,
            ],
        );
        let publish =
            Path::new("/var/lib/kubelet/pods/a7e1/volumes/kubernetes.io~csi/pvc-1/mount/");
        let found = find(&mounts, publish).map(|m| (m.mount_id, m.read_only()));
        assert_eq!(found, Some((640, true)));
        assert_eq!(
            find(&mounts, Path::new("/")).map(|m| m.read_only()),
            Some(false)
        );
        assert!(find(&mounts, Path::new("/var/lib")).is_none());
    }

    #[test]
    fn optional_fields_are_skipped() {
        check(
            "optional-fields.txt",
            &[
                r#"1 0 8:1 "/" "/" rw | ext4 "/dev/sda1" rw"#,
                r#"2 1 8:2 "/" "/a" rw | ext4 "/dev/sda2" rw"#,
                r#"3 1 8:3 "/" "/b" rw | xfs "/dev/sda3" ro"#,
            ],
        );
    }

    #[test]
    fn octal_escapes_are_decoded() {
        let mounts = check(
            "escapes.txt",
            &[
                r#"40 27 7:0 "/" "/mnt/with space" rw | ext4 "/dev/loop0" rw"#,
                r#"41 27 7:1 "/sub\\dir" "/mnt/tab\there" rw | ext4 "/dev/loop1" rw"#,
                r#"42 27 7:2 "/" "/mnt/new\nline" rw | ext4 "/dev/loop2" rw"#,
                r#"43 27 0:50 "/" "/mnt/not\\x" rw | fuse.sshfs "user@host:/a b" rw,user_id=0"#,
            ],
        );
        assert!(find(&mounts, Path::new("/mnt/with space")).is_some());
    }

    #[test]
    fn the_top_of_stacked_mounts_is_found() {
        let mounts = check(
            "stacked.txt",
            &[
                r#"50 27 7:0 "/" "/mnt/x" rw | ext4 "/dev/loop0" rw"#,
                r#"51 50 7:1 "/" "/mnt/x" ro | ext4 "/dev/loop1" ro"#,
            ],
        );
        assert_eq!(
            find(&mounts, Path::new("/mnt/x")).map(|m| m.mount_id),
            Some(51)
        );
    }

    #[test]
    fn paths_need_not_be_utf8() -> Result<(), FsError> {
        let mounts = parse_bytes(b"7 1 7:0 / /mnt/\xff\\040x rw - ext4 /dev/loop0 rw\n")?;
        assert_eq!(mounts[0].mount_point.as_os_str().as_bytes(), b"/mnt/\xff x");
        Ok(())
    }

    #[test]
    fn superblock_ro_makes_the_mount_read_only() -> Result<(), FsError> {
        let mounts = parse("7 1 7:0 / /m rw - ext4 /dev/loop0 ro\n")?;
        assert!(mounts[0].read_only());
        Ok(())
    }

    #[test]
    fn malformed_lines_are_refused_with_their_number() {
        check_error("1 0 8:1 / / rw ext4 /dev/sda1 rw", "no \" - \" separator");
        check_error("1 0 8:1 / / rw - ext4 /dev/sda1", "expected 3 fields");
        check_error("1 0 8:1 / / rw - ext4 /dev/sda1 rw extra", "found 4");
        check_error(
            "x 0 8:1 / / rw - ext4 /dev/sda1 rw",
            "mount id is not a number",
        );
        check_error("1 0 81 / / rw - ext4 /dev/sda1 rw", "not major:minor");
        check_error("1 0 8:1 / - - ext4 /dev/sda1 rw", "no \" - \" separator");
        check_error("\n\n1 0 8:1 / / rw\n", "mountinfo line 3:");
    }

    #[test]
    fn this_process_mount_table_parses() -> Result<(), FsError> {
        let mounts = read(Path::new("/proc"))?;
        assert!(find(&mounts, Path::new("/")).is_some());
        Ok(())
    }
}
