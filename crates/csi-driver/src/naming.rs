//! How a volume's names on the RDS follow from its Kubernetes name, and how
//! the driver knows its own disks.
//!
//! - **Slot** (and volume ID): at most 32 characters, deterministic, so a
//!   retried CreateVolume finds the disk the first attempt made. The
//!   external-provisioner names volumes `pvc-<uuid>` (40 characters); the slot
//!   keeps `pvc-` and the first 28 hex digits of the UUID, so an operator can
//!   match disk and PV by eye. Any other name (any UTF-8, up to CSI's 128
//!   bytes) becomes `csi-` and 28 hex digits of its SHA-256. Either way about
//!   110 random bits remain, and the disk's comment records the whole name
//!   (or its whole digest), which CreateVolume checks, so even a collision is
//!   refused rather than mixed up.
//! - **NQN**: the configured prefix and the slot.
//! - **Image**: `<volume path>/<slot>.img`; on a btrfs pool, where each
//!   volume has a subvolume of its own, `<volume path>/<slot>/volume.img`
//!   ([`is_image_of`] accepts either).
//! - **Comment**: `rds-csi:<name>` for a provisioner's `pvc-<uuid>` name;
//!   `rds-csi:sha256:<64 hex digits>` for any other, because a comment holds
//!   only 128 printable ASCII characters and not all of them: the digest of
//!   the full name is recorded and compared instead. Either is followed by
//!   ` pvc=<namespace>/<claim>` when the provisioner passes them and it fits.
//!   Disks made before digests were recorded carry `rds-csi:<name>` for any
//!   name, and are still recognised.
//! - **Ownership**: a disk is the driver's to change if its comment records a
//!   name whose slot it is ([`is_ours`]), or it has the Go driver's shape.
//!   Deleting and growing check this on the RDS, in the script that does it
//!   ([`owner_tests`]): the comment must match a pattern made from the slot,
//!   which binds the recorded name (or digest) to the slot exactly as
//!   [`is_ours`] does, except for a full name on a `csi-` slot, whose hash the
//!   RDS cannot compute. Such a disk is shown instead of changed; the
//!   controller checks it with [`is_ours`] and repeats the operation on
//!   exactly the comment it read ([`exact_owner`]). `docs/routeros-cli.md`
//!   ("Ownership") writes the rule down.

use routeros::subvolume::NewVolume;
use routeros::{
    Comment, CommentPattern, Disk, MAX_NEW_SLOT_LEN, Nqn, OwnerTest, RdsPath, Slot, ValueError,
};
use sha2::{Digest, Sha256};

/// Prefix of the comment on every disk this driver makes.
pub const COMMENT_PREFIX: &str = "rds-csi:";

/// What follows [`COMMENT_PREFIX`] when the comment records a digest.
const DIGEST_MARK: &str = "sha256:";

/// Hex digits kept from the UUID or hash.
const SLOT_DIGITS: usize = MAX_NEW_SLOT_LEN - 4;

/// The lowercase hex SHA-256 of `name`.
fn sha256_hex(name: &str) -> String {
    Sha256::digest(name.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The slot for a volume named `name`.
pub fn slot_for(name: &str) -> Slot {
    let slot = match name.strip_prefix("pvc-").and_then(uuid_hex) {
        Some(hex) => format!("pvc-{}", &hex[..SLOT_DIGITS]),
        None => format!("csi-{}", &sha256_hex(name)[..SLOT_DIGITS]),
    };
    // Built from "pvc-"/"csi-" and lowercase hex only: always a valid slot.
    Slot::new(&slot).unwrap_or_else(|_| unreachable!("slot {slot:?} is made of valid characters"))
}

/// The 32 lowercase hex digits of a UUID in its 8-4-4-4-12 form.
fn uuid_hex(text: &str) -> Option<String> {
    let groups: Vec<&str> = text.split('-').collect();
    let shape_ok = groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()));
    shape_ok.then(|| groups.concat().to_ascii_lowercase())
}

/// Whether `name` is a provisioner's `pvc-<uuid>`.
fn is_provisioner_name(name: &str) -> bool {
    name.strip_prefix("pvc-").and_then(uuid_hex).is_some()
}

/// The 28 hex digits of a slot of this driver's shape (`pvc-`/`csi-` and 28
/// lowercase hex digits), with its prefix.
fn slot_digits(slot: &str) -> Option<(&str, &str)> {
    ["pvc-", "csi-"].iter().find_map(|p| {
        slot.strip_prefix(p)
            .filter(|hex| {
                hex.len() == SLOT_DIGITS
                    && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            })
            .map(|hex| (*p, hex))
    })
}

/// Whether `slot` has a shape this driver gives its disks: `pvc-`/`csi-` and 28
/// hex digits (this driver), or `pvc-<uuid>` (the Go driver before it). Only
/// such slots get stray images cleaned up when their disk is gone.
pub fn is_managed_slot(slot: &str) -> bool {
    slot_digits(slot).is_some() || is_go_slot(slot)
}

/// A slot as the Go driver made them: `pvc-<uuid>`.
fn is_go_slot(slot: &str) -> bool {
    is_provisioner_name(slot)
}

/// What a comment of this driver records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded<'a> {
    /// The volume's name, in full.
    Name(&'a str),
    /// The SHA-256 of the volume's name: 64 lowercase hex digits.
    Digest(&'a str),
}

/// What `comment` records, if it is one of this driver's.
pub fn recorded(comment: &str) -> Option<Recorded<'_>> {
    let rest = comment.strip_prefix(COMMENT_PREFIX)?;
    let word = rest.split(' ').next().unwrap_or(rest);
    match word.strip_prefix(DIGEST_MARK) {
        Some(hex)
            if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
        {
            Some(Recorded::Digest(hex))
        }
        // A name of the form "sha256:…" is always recorded as a digest, so a
        // malformed one is nobody's.
        Some(_) => None,
        None => Some(Recorded::Name(word)),
    }
}

/// Whether `comment` records the volume named `name`.
pub fn records(comment: Option<&str>, name: &str) -> bool {
    match comment.and_then(recorded) {
        Some(Recorded::Name(recorded)) => recorded == name,
        Some(Recorded::Digest(hex)) => hex == sha256_hex(name),
        None => false,
    }
}

/// Whether `disk` is a volume of this driver or of the Go driver it replaces,
/// and so may be deleted, grown and listed. Anything else on the RDS (pools,
/// drives, file disks made by hand) is never touched.
pub fn is_ours(disk: &Disk) -> bool {
    if disk.kind != "file" {
        return false;
    }
    let by_comment = match disk.comment.as_deref().and_then(recorded) {
        Some(Recorded::Name(name)) => slot_for(name).as_str() == disk.slot,
        Some(Recorded::Digest(hex)) => disk.slot == format!("csi-{}", &hex[..SLOT_DIGITS]),
        None => false,
    };
    // The Go driver left no comment; its disks are recognised by slot and image.
    let by_go_shape = disk.comment.is_none()
        && is_go_slot(&disk.slot)
        && disk
            .file_path
            .as_deref()
            .is_some_and(|p| p.ends_with(&format!("/{}.img", disk.slot)));
    by_comment || by_go_shape
}

/// `c` as a regex class matching it in either case (hex digits only).
fn either_case(hex: &str) -> String {
    hex.chars()
        .map(|c| {
            if c.is_ascii_digit() {
                c.to_string()
            } else {
                format!("[{c}{}]", c.to_ascii_uppercase())
            }
        })
        .collect()
}

/// The tests the RDS applies, in the script that deletes or grows the disk
/// in `slot`, to decide that it is this driver's: the same rule as
/// [`is_ours`], bound to the slot, as far as the RDS can check it.
///
/// - `pvc-<28 hex>`: the comment records a `pvc-<uuid>` name whose first 28
///   hex digits (either case) are the slot's.
/// - `csi-<28 hex>`: the comment records a digest whose first 28 digits are
///   the slot's. (A full name, from before digests were recorded, cannot be
///   hashed on the RDS: such a disk passes no test, and is shown instead.)
/// - `pvc-<uuid>` (the Go driver's): no comment, and the image `<slot>.img`.
/// - Anything else: no test, so nothing passes.
pub fn owner_tests(slot: &Slot) -> Vec<OwnerTest> {
    let pattern = match slot_digits(slot.as_str()) {
        Some(("pvc-", hex)) => format!(
            "^{COMMENT_PREFIX}pvc-{}-{}-{}-{}-{}[0-9a-fA-F]{{4}}( |$)",
            either_case(&hex[..8]),
            either_case(&hex[8..12]),
            either_case(&hex[12..16]),
            either_case(&hex[16..20]),
            either_case(&hex[20..28]),
        ),
        Some((_, hex)) => format!("^{COMMENT_PREFIX}{DIGEST_MARK}{hex}[0-9a-f]{{36}}( |$)"),
        None if is_go_slot(slot.as_str()) => return vec![OwnerTest::NoCommentImageOfSlot],
        None => return Vec::new(),
    };
    // Built from this module's constants and hex digits: always valid.
    let pattern = CommentPattern::new(&pattern)
        .unwrap_or_else(|e| unreachable!("owner pattern {pattern:?}: {e}"));
    vec![OwnerTest::CommentMatches(pattern)]
}

/// For a disk the RDS showed instead of changing (it passed no
/// [`owner_tests`]): if it is ours after all, the test to repeat the
/// operation with — its exact comment, so that nothing that changed in
/// between is touched. `None` if it is not ours (or has no comment to pin).
pub fn exact_owner(disk: &Disk) -> Option<Vec<OwnerTest>> {
    if !is_ours(disk) {
        return None;
    }
    let comment = Comment::new(disk.comment.as_deref()?).ok()?;
    Some(vec![OwnerTest::CommentIs(comment)])
}

/// The NQN of the export of `slot`.
pub fn nqn_for(prefix: &str, slot: &Slot) -> Result<Nqn, ValueError> {
    Nqn::new(&format!("{prefix}{slot}"))
}

/// The image path of `slot` under `volume_path`.
pub fn image_path(volume_path: &RdsPath, slot: &Slot) -> Result<RdsPath, ValueError> {
    volume_path.join(&format!("{slot}.img"))
}

/// Whether a disk's `file_path` is where `volume` is made: its flat image
/// (on a pool that is not btrfs, or from before snapshots), or its image in
/// a subvolume of its own (on btrfs).
pub fn is_image_of(file_path: Option<&str>, volume: &NewVolume) -> bool {
    file_path.is_some_and(|path| {
        path == volume.flat().file_path.as_str() || path == volume.subvolume().image().as_str()
    })
}

/// The comment recording the volume named `name` (any UTF-8), and the PVC
/// when known and it fits.
pub fn comment_for(name: &str, pvc: Option<(&str, &str)>) -> Comment {
    let base = if is_provisioner_name(name) {
        format!("{COMMENT_PREFIX}{name}")
    } else {
        format!("{COMMENT_PREFIX}{DIGEST_MARK}{}", sha256_hex(name))
    };
    // The PVC part is only a note; if it cannot be written, it is left out.
    pvc.and_then(|(namespace, claim)| Comment::new(&format!("{base} pvc={namespace}/{claim}")).ok())
        .or_else(|| Comment::new(&base).ok())
        // The base is "rds-csi:" and a UUID or 64 hex digits: always valid.
        .unwrap_or_else(|| unreachable!("comment {base:?} is made of valid characters"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provisioner_names_keep_their_uuid() {
        let slot = slot_for("pvc-0b0e8b8e-3c43-4c2f-9d2e-53f0d3b1a7a1");
        assert_eq!(slot.as_str(), "pvc-0b0e8b8e3c434c2f9d2e53f0d3b1");
        assert_eq!(slot.as_str().len(), 32);
        // Upper-case hex is the same UUID.
        assert_eq!(slot_for("pvc-0B0E8B8E-3C43-4C2F-9D2E-53F0D3B1A7A1"), slot);
    }

    #[test]
    fn other_names_are_hashed() {
        let slot = slot_for("my-volume");
        assert!(slot.as_str().starts_with("csi-"));
        assert_eq!(slot.as_str().len(), 32);
        assert_eq!(slot_for("my-volume"), slot, "deterministic");
        assert_ne!(slot_for("my-volume-2"), slot);
        // Not quite a UUID: hashed too.
        assert!(
            slot_for("pvc-0b0e8b8e-3c43-4c2f-9d2e")
                .as_str()
                .starts_with("csi-")
        );
        assert!(
            slot_for("pvc-0b0e8b8e-3c43-4c2f-9d2e-53f0d3b1a7ag")
                .as_str()
                .starts_with("csi-")
        );
        assert!(slot_for("").as_str().starts_with("csi-"));
        assert!(slot_for("ünïcode; $(rm -rf)").as_str().starts_with("csi-"));
    }

    fn disk(slot: &str, kind: &str, comment: Option<&str>, path: &str) -> Disk {
        Disk {
            slot: slot.into(),
            kind: kind.into(),
            file_path: Some(path.into()),
            size: 1 << 30,
            nvme_tcp_export: true,
            nvme_tcp_port: Some(4420),
            nqn: None,
            comment: comment.map(Into::into),
            mount_filesystem: Some(false),
            disabled: false,
            allowed_hosts: Vec::new(),
        }
    }

    #[test]
    fn ownership() {
        let name = "pvc-0b0e8b8e-3c43-4c2f-9d2e-53f0d3b1a7a1";
        let slot = slot_for(name);
        let ours = disk(
            slot.as_str(),
            "file",
            Some(&format!("rds-csi:{name} pvc=a/b")),
            "/r/x.img",
        );
        assert!(is_ours(&ours));
        // A comment naming another volume, or none: not ours.
        assert!(!is_ours(&disk(
            slot.as_str(),
            "file",
            Some("rds-csi:pvc-other"),
            "/r/x.img"
        )));
        assert!(!is_ours(&disk(slot.as_str(), "file", None, "/r/x.img")));
        assert!(!is_ours(&disk("raid10", "raid", None, "")));
        assert!(!is_ours(&disk(
            slot.as_str(),
            "raid",
            Some(&format!("rds-csi:{name}")),
            ""
        )));
        // The Go driver's volumes.
        let go = disk(
            name,
            "file",
            None,
            &format!("/storage-pool/metal-csi/{name}.img"),
        );
        assert!(is_ours(&go));
        assert!(!is_ours(&disk(
            name,
            "file",
            None,
            "/storage-pool/metal-csi/other.img"
        )));
        assert!(!is_ours(&disk(
            name,
            "file",
            Some("made by hand"),
            &format!("/p/{name}.img")
        )));

        assert!(is_managed_slot(slot.as_str()));
        assert!(is_managed_slot(slot_for("other").as_str()));
        assert!(is_managed_slot(name));
        for other in [
            "raid10",
            "nvme1",
            "pvc-1",
            "pvc-0B0E8B8E3C434C2F9D2E53F0D3B1",
            "csi-xyz",
        ] {
            assert!(!is_managed_slot(other), "{other}");
        }
    }

    #[test]
    fn nqn_and_path() {
        let slot = slot_for("pvc-0b0e8b8e-3c43-4c2f-9d2e-53f0d3b1a7a1");
        assert_eq!(
            nqn_for("nqn.2024-01.io.srvlab.csi.rds:", &slot)
                .unwrap()
                .as_str(),
            "nqn.2024-01.io.srvlab.csi.rds:pvc-0b0e8b8e3c434c2f9d2e53f0d3b1"
        );
        assert_eq!(
            image_path(&RdsPath::new("/raid10/k8s").unwrap(), &slot)
                .unwrap()
                .as_str(),
            "/raid10/k8s/pvc-0b0e8b8e3c434c2f9d2e53f0d3b1.img"
        );
    }

    #[test]
    fn provisioner_names_are_recorded_in_full_others_as_a_digest() {
        let uuid = "pvc-0b0e8b8e-3c43-4c2f-9d2e-53f0d3b1a7a1";
        let c = comment_for(uuid, Some(("default", "data")));
        assert_eq!(c.as_str(), format!("rds-csi:{uuid} pvc=default/data"));
        assert_eq!(recorded(c.as_str()), Some(Recorded::Name(uuid)));
        assert!(records(Some(c.as_str()), uuid));

        // CSI's longest name, ASCII or not, characters a comment refuses:
        // the digest of the whole name, which fits.
        let long = "x".repeat(128);
        let unicode = "é".repeat(64);
        for name in [
            long.as_str(),
            unicode.as_str(),
            "a b$c;d\\e",
            "my-volume",
            "",
        ] {
            let c = comment_for(name, None);
            let hex = sha256_hex(name);
            assert_eq!(c.as_str(), format!("rds-csi:sha256:{hex}"));
            assert!(c.as_str().len() <= 128);
            assert!(records(Some(c.as_str()), name), "{name}");
            assert_eq!(slot_for(name).as_str(), format!("csi-{}", &hex[..28]));
        }
        assert!(!records(
            Some(comment_for(&long, None).as_str()),
            &"x".repeat(127)
        ));
        // The note is kept when it fits, dropped when it does not.
        assert_eq!(
            comment_for(&long, Some(("ns", "claim"))).as_str(),
            format!("rds-csi:sha256:{} pvc=ns/claim", sha256_hex(&long))
        );
        assert_eq!(
            comment_for(uuid, Some(("ns", &"x".repeat(120)))).as_str(),
            format!("rds-csi:{uuid}")
        );
        assert_eq!(
            comment_for(uuid, Some(("ns", "a;b"))).as_str(),
            format!("rds-csi:{uuid}")
        );
    }

    #[test]
    fn comments_from_before_digests_are_still_read() {
        // `rds-csi:<name>` for any name, as this driver wrote them before.
        assert_eq!(
            recorded("rds-csi:my-volume"),
            Some(Recorded::Name("my-volume"))
        );
        assert!(records(Some("rds-csi:my-volume pvc=a/b"), "my-volume"));
        assert!(!records(Some("rds-csi:my-volume"), "my-volume-2"));
        let old = disk(
            slot_for("my-volume").as_str(),
            "file",
            Some("rds-csi:my-volume"),
            "/p/x.img",
        );
        assert!(is_ours(&old));
        assert_eq!(recorded("made by hand"), None);
        assert_eq!(recorded("rds-csi:sha256:abc"), None, "a malformed digest");
        assert!(!records(None, "x"));
    }

    #[test]
    fn owner_tests_follow_the_slot_shape() {
        let uuid = slot_for("pvc-0b0e8b8e-3c43-4c2f-9d2e-53f0d3b1a7a1");
        assert_eq!(
            owner_tests(&uuid),
            [OwnerTest::CommentMatches(
                CommentPattern::new(
                    "^rds-csi:pvc-0[bB]0[eE]8[bB]8[eE]-3[cC]43-4[cC]2[fF]-9[dD]2[eE]-53[fF]0[dD]3[bB]1[0-9a-fA-F]{4}( |$)"
                )
                .unwrap()
            )]
        );
        let digest = slot_for("my-volume");
        let hex = &sha256_hex("my-volume")[..28];
        assert_eq!(
            owner_tests(&digest),
            [OwnerTest::CommentMatches(
                CommentPattern::new(&format!("^rds-csi:sha256:{hex}[0-9a-f]{{36}}( |$)")).unwrap()
            )]
        );
        let go = Slot::new("pvc-0b0e8b8e-3c43-4c2f-9d2e-53f0d3b1a7a1").unwrap();
        assert_eq!(owner_tests(&go), [OwnerTest::NoCommentImageOfSlot]);
        assert!(owner_tests(&Slot::new("raid10").unwrap()).is_empty());
    }

    #[test]
    fn only_our_disks_get_an_exact_owner() {
        let name = "my-volume";
        let ours = disk(
            slot_for(name).as_str(),
            "file",
            Some("rds-csi:my-volume"),
            "/p/x.img",
        );
        assert_eq!(
            exact_owner(&ours),
            Some(vec![OwnerTest::CommentIs(
                Comment::new("rds-csi:my-volume").unwrap()
            )])
        );
        let other = disk(
            slot_for(name).as_str(),
            "file",
            Some("rds-csi:other"),
            "/p/x.img",
        );
        assert_eq!(exact_owner(&other), None);
    }

    #[test]
    fn a_volume_is_at_its_flat_image_or_in_its_subvolume() {
        let slot = Slot::new("pvc-0b0e8b8e3c434c2f9d2e53f0d3b1").unwrap();
        let volume = NewVolume::new(
            slot.clone(),
            &RdsPath::new("/raid10/volumes").unwrap(),
            1 << 30,
            4420,
            nqn_for("nqn.2024-01.io.srvlab.csi.rds:", &slot).unwrap(),
            comment_for("x", None),
        )
        .unwrap();
        for ours in [
            "/raid10/volumes/pvc-0b0e8b8e3c434c2f9d2e53f0d3b1.img",
            "/raid10/volumes/pvc-0b0e8b8e3c434c2f9d2e53f0d3b1/volume.img",
        ] {
            assert!(is_image_of(Some(ours), &volume), "{ours}");
        }
        for other in [
            None,
            Some("/raid10/other/pvc-0b0e8b8e3c434c2f9d2e53f0d3b1.img"),
            Some(
                "/raid10/volumes/pvc-0b0e8b8e3c434c2f9d2e53f0d3b1/pvc-0b0e8b8e3c434c2f9d2e53f0d3b1.img",
            ),
            Some("/raid10/volumes/snap-0123456789abcdef0123456789ab-pvc-1-1/volume.img"),
        ] {
            assert!(!is_image_of(other, &volume), "{other:?}");
        }
    }
}
