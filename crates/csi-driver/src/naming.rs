//! How a volume's names on the RDS follow from its Kubernetes name.
//!
//! - **Slot** (and volume ID): at most 32 characters, deterministic, so a
//!   retried CreateVolume finds the disk the first attempt made. The
//!   external-provisioner names volumes `pvc-<uuid>` (40 characters); the slot
//!   keeps `pvc-` and the first 28 hex digits of the UUID, so an operator can
//!   match disk and PV by eye. Any other name becomes `csi-` and 28 hex digits
//!   of its SHA-256. Either way about 110 random bits remain, and the full name
//!   is kept in the disk's comment, which CreateVolume checks, so even a
//!   collision is refused rather than mixed up.
//! - **NQN**: the configured prefix and the slot.
//! - **Image**: `<volume path>/<slot>.img`.
//! - **Comment**: `rds-csi:<name>`, plus the PVC's namespace and name when the
//!   provisioner passes them.

use routeros::{Comment, Disk, MAX_NEW_SLOT_LEN, Nqn, RdsPath, Slot, ValueError};
use sha2::{Digest, Sha256};

/// Prefix of the comment on every disk this driver makes.
pub const COMMENT_PREFIX: &str = "rds-csi:";

/// Hex digits kept from the UUID or hash.
const SLOT_DIGITS: usize = MAX_NEW_SLOT_LEN - 4;

/// The slot for a volume named `name`.
pub fn slot_for(name: &str) -> Slot {
    let slot = match name.strip_prefix("pvc-").and_then(uuid_hex) {
        Some(hex) => format!("pvc-{}", &hex[..SLOT_DIGITS]),
        None => {
            let digest = Sha256::digest(name.as_bytes());
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            format!("csi-{}", &hex[..SLOT_DIGITS])
        }
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

/// Whether `slot` has a shape this driver gives its disks: `pvc-`/`csi-` and 28
/// hex digits (this driver), or `pvc-<uuid>` (the Go driver before it). Only
/// such slots get stray images cleaned up when their disk is gone.
pub fn is_managed_slot(slot: &str) -> bool {
    let ours = ["pvc-", "csi-"].iter().any(|p| {
        slot.strip_prefix(p).is_some_and(|hex| {
            hex.len() == SLOT_DIGITS && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
    });
    ours || is_go_slot(slot)
}

/// A slot as the Go driver made them: `pvc-<uuid>`.
fn is_go_slot(slot: &str) -> bool {
    slot.strip_prefix("pvc-").and_then(uuid_hex).is_some()
}

/// Whether `disk` is a volume of this driver or of the Go driver it replaces,
/// and so may be deleted, grown and listed. Anything else on the RDS (pools,
/// drives, file disks made by hand) is never touched.
pub fn is_ours(disk: &Disk) -> bool {
    if disk.kind != "file" {
        return false;
    }
    let by_comment = disk
        .comment
        .as_deref()
        .and_then(name_in_comment)
        .is_some_and(|name| slot_for(name).as_str() == disk.slot);
    // The Go driver left no comment; its disks are recognised by slot and image.
    let by_go_shape = disk.comment.is_none()
        && is_go_slot(&disk.slot)
        && disk
            .file_path
            .as_deref()
            .is_some_and(|p| p.ends_with(&format!("/{}.img", disk.slot)));
    by_comment || by_go_shape
}

/// The NQN of the export of `slot`.
pub fn nqn_for(prefix: &str, slot: &Slot) -> Result<Nqn, ValueError> {
    Nqn::new(&format!("{prefix}{slot}"))
}

/// The image path of `slot` under `volume_path`.
pub fn image_path(volume_path: &RdsPath, slot: &Slot) -> Result<RdsPath, ValueError> {
    volume_path.join(&format!("{slot}.img"))
}

/// The comment recording the volume's name, and the PVC when known.
pub fn comment_for(name: &str, pvc: Option<(&str, &str)>) -> Result<Comment, ValueError> {
    let text = match pvc {
        Some((namespace, claim)) => format!("{COMMENT_PREFIX}{name} pvc={namespace}/{claim}"),
        None => format!("{COMMENT_PREFIX}{name}"),
    };
    // The PVC part is only a note; if it does not fit, the name alone must.
    Comment::new(&text).or_else(|_| Comment::new(&format!("{COMMENT_PREFIX}{name}")))
}

/// The volume name a comment records, if it is one of this driver's.
pub fn name_in_comment(comment: &str) -> Option<&str> {
    let rest = comment.strip_prefix(COMMENT_PREFIX)?;
    Some(rest.split(' ').next().unwrap_or(rest))
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
    fn nqn_path_and_comment() {
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
        let c = comment_for("pvc-1", Some(("default", "data"))).unwrap();
        assert_eq!(c.as_str(), "rds-csi:pvc-1 pvc=default/data");
        assert_eq!(name_in_comment(c.as_str()), Some("pvc-1"));
        assert_eq!(
            comment_for("pvc-1", None).unwrap().as_str(),
            "rds-csi:pvc-1"
        );
        assert_eq!(name_in_comment("rds-csi:pvc-1"), Some("pvc-1"));
        assert_eq!(name_in_comment("made by hand"), None);
        // A PVC part that cannot be written is dropped; the name is kept.
        let long = "x".repeat(120);
        assert_eq!(
            comment_for("pvc-1", Some(("ns", &long))).unwrap().as_str(),
            "rds-csi:pvc-1"
        );
        assert!(comment_for("bad$name", None).is_err());
    }
}
