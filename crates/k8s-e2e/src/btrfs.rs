//! The simulator's btrfs pool as btrfs itself sees it: the subvolumes of the
//! mounted filesystem, listed with `btrfs subvolume list`, so that the
//! snapshot flows check what really exists on the pool (a volume in a
//! subvolume of its own, a read-only snapshot, a restore that is a snapshot
//! of the snapshot) rather than what the simulator prints about it.

use std::path::Path;

use crate::support::{Context, Outcome};

/// One subvolume of the filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subvolume {
    /// Its path from the top of the filesystem (`volumes/pvc-…`).
    pub path: String,
    /// Its UUID.
    pub uuid: String,
    /// The UUID of the subvolume it is a snapshot of, if it is one (btrfs
    /// keeps it after that subvolume is deleted).
    pub parent_uuid: Option<String>,
    /// Read-only.
    pub read_only: bool,
}

/// The subvolumes in `btrfs subvolume list -q -u` output, all marked as
/// `read_only` (the caller knows which listing it ran). Lines that are not
/// of the shape `ID … parent_uuid P uuid U path PATH` are left out.
pub fn parse_list(text: &str, read_only: bool) -> Vec<Subvolume> {
    text.lines()
        .filter_map(|line| {
            let (head, path) = line.split_once(" path ")?;
            let words: Vec<&str> = head.split_whitespace().collect();
            let after = |key: &str| {
                words
                    .iter()
                    .position(|w| *w == key)
                    .and_then(|i| words.get(i + 1))
                    .copied()
            };
            if words.first() != Some(&"ID") {
                return None;
            }
            let uuid = after("uuid")?.to_owned();
            let parent_uuid = after("parent_uuid")
                .filter(|p| *p != "-")
                .map(str::to_owned);
            Some(Subvolume {
                path: path.to_owned(),
                uuid,
                parent_uuid,
                read_only,
            })
        })
        .collect()
}

async fn btrfs(args: &[&str]) -> Outcome<String> {
    let out = tokio::process::Command::new("btrfs")
        .args(args)
        .output()
        .await
        .context("cannot run btrfs (install btrfs-progs)")?;
    if !out.status.success() {
        return Err(format!(
            "btrfs {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8(out.stdout).context(format!("btrfs {} printed no UTF-8", args.join(" ")))
}

/// Every subvolume of the btrfs filesystem mounted at `mount`.
pub async fn subvolumes(mount: &Path) -> Outcome<Vec<Subvolume>> {
    let at = mount.to_str().context("the pool's path is not UTF-8")?;
    let all = parse_list(&btrfs(&["subvolume", "list", "-q", "-u", at]).await?, false);
    let read_only = parse_list(
        &btrfs(&["subvolume", "list", "-q", "-u", "-r", at]).await?,
        true,
    );
    Ok(all
        .into_iter()
        .map(|s| Subvolume {
            read_only: read_only.iter().any(|r| r.uuid == s.uuid),
            ..s
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_lines_are_read() {
        let text = concat!(
            "ID 256 gen 7 top level 5 parent_uuid -                                    uuid b287600b-4111-5e4c-8ac7-33a7fb6ab501 path volumes/pvc-a\n",
            "ID 257 gen 8 top level 5 parent_uuid b287600b-4111-5e4c-8ac7-33a7fb6ab501 uuid 10689725-e548-b349-91b4-03e8efa1521e path volumes/snap 1\n",
            "noise\n",
            "ID 258 gen 8 top level 5 path volumes/no-uuid\n",
        );
        let listed = parse_list(text, false);
        assert_eq!(
            listed,
            [
                Subvolume {
                    path: "volumes/pvc-a".into(),
                    uuid: "b287600b-4111-5e4c-8ac7-33a7fb6ab501".into(),
                    parent_uuid: None,
                    read_only: false,
                },
                Subvolume {
                    path: "volumes/snap 1".into(),
                    uuid: "10689725-e548-b349-91b4-03e8efa1521e".into(),
                    parent_uuid: Some("b287600b-4111-5e4c-8ac7-33a7fb6ab501".into()),
                    read_only: false,
                },
            ]
        );
        assert!(parse_list(text, true).iter().all(|s| s.read_only));
    }
}
