//! The ownership rule is written twice: in Rust (`naming::is_ours`), for what
//! the driver reads, and as RouterOS conditions (`naming::owner_tests`), which
//! the RDS checks itself in the one script that deletes or grows a disk. Here
//! the two are run against each other on the simulator, with the real
//! scripts: the RDS never removes a disk the driver would not call its own,
//! and removes every disk of the current forms (and the Go driver's) in that
//! one exec. A disk from before digests were recorded is shown instead, and
//! removed by the second, exact step.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a property that cannot set up stops there

use csi_driver::naming::{comment_for, exact_owner, is_ours, owner_tests, slot_for};
use proptest::prelude::*;
use rds_sim::{Engine, ExecOptions, SimConfig};
use routeros::script::delete_disk;
use routeros::{Disk, Slot, parse_print_detail};

/// A RouterOS string literal for any text (the command builder refuses
/// most of what a person might have typed into a comment).
fn literal(text: &str) -> String {
    let mut out = String::from("\"");
    for b in text.bytes() {
        match b {
            b'"' | b'\\' | b'$' | b'?' => {
                out.push('\\');
                out.push(char::from(b));
            }
            b' '..=b'~' => out.push(char::from(b)),
            _ => out.push_str(&format!("\\{b:02X}")),
        }
    }
    out.push('"');
    out
}

/// A provisioner's name, `pvc-<uuid>`, in either case.
fn provisioner_name() -> impl Strategy<Value = String> {
    (any::<[u8; 16]>(), any::<bool>()).prop_map(|(b, upper)| {
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        let name = format!(
            "pvc-{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        );
        if upper {
            name.to_ascii_uppercase().replacen("PVC", "pvc", 1)
        } else {
            name
        }
    })
}

fn any_name() -> impl Strategy<Value = String> {
    prop_oneof![
        provisioner_name(),
        "[a-z0-9-]{1,40}",
        ".{0,40}",
        "[a-z]{100,128}",
    ]
}

/// A disk in some slot, with some comment and image.
#[derive(Debug, Clone)]
struct Case {
    slot: String,
    comment: Option<String>,
    image: String,
    /// Whether the RDS must remove it in the first exec.
    removed_at_once: bool,
}

fn case() -> impl Strategy<Value = Case> {
    let current = (
        any_name(),
        proptest::option::of(("[a-z]{1,10}", "[a-z]{1,20}")),
    )
        .prop_map(|(name, pvc)| {
            let slot = slot_for(&name).to_string();
            let pvc = pvc.as_ref().map(|(n, c)| (n.as_str(), c.as_str()));
            Case {
                comment: Some(comment_for(&name, pvc).to_string()),
                image: format!("{slot}.img"),
                slot,
                removed_at_once: true,
            }
        });
    // From before digests: `rds-csi:<name>` for any name the comment holds.
    let old = "[a-z0-9][a-z0-9._-]{0,40}".prop_map(|name| {
        let slot = slot_for(&name).to_string();
        Case {
            comment: Some(format!("rds-csi:{name}")),
            image: format!("{slot}.img"),
            removed_at_once: name.starts_with("pvc-") && slot.starts_with("pvc-"),
            slot,
        }
    });
    // Another volume's comment in this slot.
    let mixed_up = (any_name(), any_name()).prop_map(|(name, other)| {
        let slot = slot_for(&name).to_string();
        Case {
            comment: Some(comment_for(&other, None).to_string()),
            image: format!("{slot}.img"),
            removed_at_once: slot_for(&name) == slot_for(&other),
            slot,
        }
    });
    // The Go driver's: no comment, `pvc-<uuid>` slot, `<slot>.img`.
    let go = (provisioner_name(), any::<bool>()).prop_map(|(name, right_image)| {
        let slot = name.to_ascii_lowercase();
        Case {
            comment: None,
            image: if right_image {
                format!("{slot}.img")
            } else {
                "other.img".into()
            },
            slot,
            removed_at_once: right_image,
        }
    });
    // Made by hand, with a driver-shaped slot and any comment.
    let by_hand = (any_name(), proptest::option::of(".{0,60}")).prop_map(|(name, comment)| {
        let slot = slot_for(&name).to_string();
        Case {
            removed_at_once: false,
            comment: comment.filter(|c| !c.starts_with("rds-csi:")),
            image: format!("{slot}.img"),
            slot,
        }
    });
    // Near misses of the digest form.
    let near = (any_name(), 0usize..4).prop_map(|(name, how)| {
        let slot = slot_for(&name).to_string();
        let digest = comment_for(&format!("{name}x"), None).to_string();
        // The slot's 28 hex digits (after "pvc-" or "csi-").
        let hex = slot[4..].to_owned();
        // Upper case changes nothing when the digits hold no letter: then it
        // is the digest form exactly.
        let same_upper =
            how == 1 && slot.starts_with("csi-") && !hex.bytes().any(|b| b.is_ascii_alphabetic());
        let comment = match how {
            0 => format!("rds-csi:sha256:{hex}{}", "0".repeat(35)),
            1 => format!("rds-csi:sha256:{}{}", hex.to_uppercase(), "0".repeat(36)),
            2 => format!("rds-csi:sha256:{hex}{}x", "0".repeat(36)),
            _ => digest,
        };
        Case {
            comment: Some(comment),
            image: format!("{slot}.img"),
            slot,
            removed_at_once: same_upper,
        }
    });
    prop_oneof![current, old, mixed_up, go, by_hand, near]
}

fn read(engine: &Engine, slot: &str) -> Option<Disk> {
    let run = engine.execute(
        &format!("/disk print detail where slot={}", literal(slot)),
        &ExecOptions::default(),
    );
    let printed = parse_print_detail(&run.output).unwrap();
    assert!(printed.messages.is_empty(), "{}", run.output);
    printed
        .records
        .first()
        .map(|r| Disk::from_record(r).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_rds_removes_only_what_the_driver_calls_its_own(case in case()) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = SimConfig::single_pool(dir.path(), "raid10", 1 << 40);
        config.max_slot_len = 40;
        let engine = Engine::open(config).unwrap();
        let mut add = format!(
            "/disk add type=file file-path=/raid10/volumes/{} file-size=1M slot={}",
            case.image, case.slot
        );
        if let Some(comment) = &case.comment {
            add.push_str(&format!(" comment={}", literal(comment)));
        }
        let run = engine.execute(&add, &ExecOptions::default());
        prop_assert!(!run.failed, "{add}: {}", run.output);
        let before = read(&engine, &case.slot).unwrap();
        let ours = is_ours(&before);

        let slot = Slot::new(&case.slot).unwrap();
        let run = engine.execute(
            delete_disk(&slot, &owner_tests(&slot), true).as_str(),
            &ExecOptions::default(),
        );
        prop_assert!(!run.failed, "{}", run.output);
        let after = read(&engine, &case.slot);
        let removed = after.is_none();
        prop_assert!(!removed || ours, "removed a disk that is not ours: {before:?}");
        prop_assert_eq!(removed, case.removed_at_once, "{:?}", before);
        prop_assert_eq!(removed, engine.files().is_empty());
        if let Some(shown) = after {
            // The driver's second step: only for its own, on the exact comment.
            match exact_owner(&shown) {
                Some(exact) => {
                    prop_assert!(ours);
                    let run = engine.execute(
                        delete_disk(&slot, &exact, false).as_str(),
                        &ExecOptions::default(),
                    );
                    prop_assert!(!run.failed, "{}", run.output);
                    prop_assert!(read(&engine, &case.slot).is_none());
                    prop_assert!(engine.files().is_empty());
                }
                None => prop_assert!(!ours || shown.comment.is_none()),
            }
        }
    }
}
