//! CSI mount flags, split into `MS_*` flags and the filesystem's option string.
//!
//! `mount(2)` takes the generic options (`ro`, `nosuid`, `noatime`, …) as bits
//! and everything the filesystem itself understands (`discard`, `commit=17`,
//! `nouuid`, an SELinux `context=`) as one comma-separated string. Only what the
//! caller lists is applied: a driver that added `noexec` to every mount broke
//! workloads.
//!
//! Each CSI mount flag may itself be a comma-separated list, as kubelet joins
//! them that way; commas inside double quotes do not split, since SELinux
//! contexts hold them (`context="system_u:object_r:container_file_t:s0:c1,c2"`).
//! Options that only mean something to `mount(8)` or fstab (`defaults`,
//! `auto`, `noauto`, `nofail`, `_netdev`, `x-…`) are dropped, as `mount(8)` does.

pub use rustix::mount::MountFlags;

/// Options that are `MS_*` flags: the name, the flag, and whether the name sets
/// it (`true`) or clears it (`false`). Later options win, as with `mount(8)`.
const FLAG_OPTIONS: &[(&str, MountFlags, bool)] = &[
    ("ro", MountFlags::RDONLY, true),
    ("rw", MountFlags::RDONLY, false),
    ("nosuid", MountFlags::NOSUID, true),
    ("suid", MountFlags::NOSUID, false),
    ("nodev", MountFlags::NODEV, true),
    ("dev", MountFlags::NODEV, false),
    ("noexec", MountFlags::NOEXEC, true),
    ("exec", MountFlags::NOEXEC, false),
    ("noatime", MountFlags::NOATIME, true),
    ("atime", MountFlags::NOATIME, false),
    ("nodiratime", MountFlags::NODIRATIME, true),
    ("diratime", MountFlags::NODIRATIME, false),
    ("relatime", MountFlags::RELATIME, true),
    ("norelatime", MountFlags::RELATIME, false),
    ("strictatime", MountFlags::STRICTATIME, true),
    ("nostrictatime", MountFlags::STRICTATIME, false),
    ("lazytime", MountFlags::LAZYTIME, true),
    ("nolazytime", MountFlags::LAZYTIME, false),
    ("sync", MountFlags::SYNCHRONOUS, true),
    ("async", MountFlags::SYNCHRONOUS, false),
    ("dirsync", MountFlags::DIRSYNC, true),
    ("mand", MountFlags::PERMIT_MANDATORY_FILE_LOCKING, true),
    ("nomand", MountFlags::PERMIT_MANDATORY_FILE_LOCKING, false),
    ("silent", MountFlags::SILENT, true),
    ("loud", MountFlags::SILENT, false),
    ("nosymfollow", MountFlags::NOSYMFOLLOW, true),
    ("symfollow", MountFlags::NOSYMFOLLOW, false),
];

/// Options only `mount(8)` and fstab understand; the kernel would refuse them.
const USERSPACE_ONLY: &[&str] = &["defaults", "auto", "noauto", "nofail", "_netdev"];

/// Options that ask `mount(8)` for another kind of operation (a bind, a move,
/// a propagation change). As mount flags of a volume they are a mistake, and
/// passed on they would reach the filesystem as unknown options.
pub(crate) const OPERATIONS: &[&str] = &[
    "bind",
    "rbind",
    "remount",
    "move",
    "shared",
    "rshared",
    "private",
    "rprivate",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
];

/// Splits CSI mount flags into `MS_*` flags and the filesystem's option
/// string (comma-joined, in the order given). Pure; unknown options go to the
/// filesystem, which refuses what it does not know.
pub fn split_options(options: &[String]) -> (MountFlags, String) {
    let (flags, data) = split(options);
    (flags, data.join(","))
}

/// [`split_options`], keeping the filesystem's options apart.
pub(crate) fn split(options: &[String]) -> (MountFlags, Vec<&str>) {
    let mut flags = MountFlags::empty();
    let mut data = Vec::new();
    for option in options.iter().flat_map(|list| split_list(list)) {
        if let Some((_, flag, set)) = FLAG_OPTIONS.iter().find(|(name, ..)| *name == option) {
            flags.set(*flag, *set);
        } else if !USERSPACE_ONLY.contains(&option) && !option.starts_with("x-") {
            data.push(option);
        }
    }
    (flags, data)
}

/// The names of the flags, `|`-joined, or `none`: for messages.
pub fn flag_names(flags: MountFlags) -> String {
    let names: Vec<&str> = flags.iter_names().map(|(name, _)| name).collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join("|")
    }
}

/// Splits a comma-separated list on commas outside double quotes, trimming
/// each item and dropping empty ones.
fn split_list(list: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (index, c) in list.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                items.push(&list[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    items.push(&list[start..]);
    items
        .into_iter()
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn check(input: &[String], flags: MountFlags, data: &str) {
        let actual = split_options(input);
        assert_eq!(
            (flag_names(actual.0), actual.1.as_str()),
            (flag_names(flags), data),
            "{input:?}"
        );
    }

    /// Runs every case of `testdata/mount-options.txt`.
    #[test]
    fn fixture_cases() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/mount-options.txt");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut cases = 0;
        for line in text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            let parsed = line
                .split_once(" => ")
                .and_then(|(input, rest)| Some((input, rest.split_once(" ; ")?)));
            let Some((input, (flags, data))) = parsed else {
                panic!("malformed case {line:?}");
            };
            let input: Vec<String> = match input {
                "-" => Vec::new(),
                _ => input.split(" | ").map(str::to_owned).collect(),
            };
            let flags = flags
                .split('|')
                .filter(|name| *name != "-")
                .map(|name| MountFlags::from_name(name).unwrap_or_else(|| panic!("flag {name:?}")))
                .fold(MountFlags::empty(), |all, flag| all | flag);
            check(&input, flags, if data == "-" { "" } else { data });
            cases += 1;
        }
        assert!(cases >= 10, "only {cases} cases in {}", path.display());
    }

    #[test]
    fn whitespace_and_empty_items_are_dropped() {
        let input = [
            " noatime , ".to_owned(),
            ",,nouuid".to_owned(),
            String::new(),
        ];
        check(&input, MountFlags::NOATIME, "nouuid");
    }

    #[test]
    fn an_unclosed_quote_keeps_the_rest_together() {
        check(
            &["context=\"a,b".to_owned()],
            MountFlags::empty(),
            "context=\"a,b",
        );
    }

    #[test]
    fn flag_names_read_well() {
        assert_eq!(flag_names(MountFlags::empty()), "none");
        assert_eq!(
            flag_names(MountFlags::RDONLY | MountFlags::NOATIME),
            "NOATIME|RDONLY"
        );
    }
}
