//! `print detail` as a terminal shows it, read back: whatever disks the
//! simulator holds (any slot, path, comment, NQN and size, long or not, ASCII
//! or not), printed at any width from 40 to 200 columns, with or without
//! CRLF line ends, the parser reads exactly what the simulator holds.
//!
//! The simulator's printer and this crate's parser share no code: each is
//! written from the layout rules in `docs/routeros-cli.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a property that cannot set up stops there

use std::collections::HashSet;

use proptest::prelude::*;
use rds_sim::{DiskView, Engine, ExecOptions, SimConfig};
use routeros::{Disk, parse_print_detail};

/// `text` as a RouterOS string literal: the specials escaped, bytes outside
/// printable ASCII as `\XX` (the command builder refuses such text, so the
/// test writes its own literals).
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

/// Text of every kind: plain words, long runs with spaces, non-ASCII,
/// control characters and RouterOS's special characters.
fn text(max: usize) -> impl Strategy<Value = String> {
    let regex = |class: &str| {
        proptest::string::string_regex(&format!("[{class}]{{1,{max}}}")).expect("a valid regex")
    };
    prop_oneof![
        regex("a-z0-9-"),
        regex(" -~"),
        regex("a-z é€😀\\\\\"$?;=0-9"),
        proptest::collection::vec(any::<char>(), 1..max.max(2))
            .prop_map(|chars| chars.into_iter().collect()),
    ]
}

#[derive(Debug, Clone)]
struct NewDisk {
    slot: String,
    file: String,
    size: u64,
    nqn: String,
    port: u16,
    export: bool,
    disabled: bool,
    comment: Option<String>,
}

fn disk() -> impl Strategy<Value = NewDisk> {
    (
        // RouterOS 7.24 takes slots of at most 32 characters.
        proptest::collection::vec(any::<char>().prop_filter("no NUL", |c| *c != '\0'), 1..32)
            .prop_map(|chars| chars.into_iter().collect::<String>()),
        text(60).prop_filter("a file name", |s| {
            !s.contains(['/', '\\', '\0']) && s != "." && s != ".."
        }),
        1u64..=(1 << 40),
        text(120),
        any::<u16>(),
        any::<bool>(),
        any::<bool>(),
        // A comment's own leading and trailing spaces cannot be told from
        // the layout (docs/routeros-cli.md); the driver never writes them.
        proptest::option::of(text(300).prop_filter("no outer spaces", |s| {
            !s.starts_with(' ') && !s.ends_with(' ')
        })),
    )
        .prop_map(
            |(slot, file, size, nqn, port, export, disabled, comment)| NewDisk {
                slot,
                file,
                size,
                nqn,
                port,
                export,
                disabled,
                comment,
            },
        )
}

fn add(engine: &Engine, d: &NewDisk) {
    let mut script = format!(
        "/disk add type=file file-path={} file-size={} slot={} nvme-tcp-server-nqn={} \
         nvme-tcp-server-port={} nvme-tcp-export={} mount-filesystem=no disabled={}",
        literal(&format!("/raid10/volumes/{}", d.file)),
        d.size,
        literal(&d.slot),
        literal(&d.nqn),
        d.port,
        if d.export { "yes" } else { "no" },
        if d.disabled { "yes" } else { "no" },
    );
    if let Some(comment) = &d.comment {
        script.push_str(&format!(" comment={}", literal(comment)));
    }
    let run = engine.execute(&script, &ExecOptions::default());
    assert!(!run.failed, "{script}: {}", run.output);
}

fn check(held: &DiskView, read: &Disk) {
    assert_eq!(read.kind, "file");
    assert_eq!(read.file_path.as_deref(), Some(held.file_path.as_str()));
    assert_eq!(read.size, held.size);
    assert_eq!(
        read.nqn.as_deref(),
        Some(held.nqn.as_str()).filter(|n| !n.is_empty())
    );
    assert_eq!(read.nvme_tcp_port, Some(held.port));
    assert_eq!(read.nvme_tcp_export, held.export);
    assert_eq!(read.mount_filesystem, Some(held.mount_filesystem));
    assert_eq!(
        read.comment.as_deref(),
        held.comment.as_deref().filter(|c| !c.is_empty())
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn any_disks_at_any_width_read_back_equal(
        disks in proptest::collection::vec(disk(), 1..6),
        width in 40usize..=200,
        crlf in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(SimConfig::single_pool(dir.path(), "raid10", 1 << 50)).unwrap();
        let (mut slots, mut files) = (HashSet::new(), HashSet::new());
        for d in &disks {
            if slots.insert(d.slot.clone()) && files.insert(d.file.clone()) {
                add(&engine, d);
            }
        }
        let run = engine.execute("/disk print detail", &ExecOptions { width });
        prop_assert!(!run.failed, "{}", run.output);
        let output = if crlf { run.output.clone() } else { run.output.replace("\r\n", "\n") };
        let printed = parse_print_detail(&output)
            .unwrap_or_else(|e| panic!("{e}\n{output}"));
        prop_assert!(printed.messages.is_empty(), "{:?}\n{output}", printed.messages);
        let held = engine.disks();
        // The pool, then every disk.
        prop_assert_eq!(printed.records.len(), held.len() + 1, "{}", output);
        prop_assert_eq!(printed.records[0].get("mount-point"), Some("raid10"));
        for (record, view) in printed.records[1..].iter().zip(&held) {
            let read = Disk::from_record(record).unwrap();
            prop_assert_eq!(&read.slot, &view.slot, "{}", output);
            prop_assert_eq!(read.disabled, disks.iter().any(|d| d.slot == view.slot && d.disabled));
            check(view, &read);
        }
    }
}

/// The example the documentation shows, at the width it shows it at, with a
/// long comment that wraps and whose continuation starts with digits.
#[test]
fn a_wrapped_comment_starting_with_digits_is_part_of_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(SimConfig::single_pool(dir.path(), "raid10", 1 << 40)).unwrap();
    let d = NewDisk {
        slot: "pvc-1".into(),
        file: "pvc-1.img".into(),
        size: 1 << 30,
        nqn: "nqn.2000-02.com.mikrotik:pvc-1".into(),
        port: 4420,
        export: true,
        disabled: false,
        comment: Some(format!("rds-csi:{} 2 3 slot=\"evil\"", "x".repeat(60))),
    };
    add(&engine, &d);
    let run = engine.execute(
        "/disk print detail where slot=\"pvc-1\"",
        &ExecOptions { width: 80 },
    );
    let continuation = run.output.lines().nth(2).unwrap();
    assert!(
        continuation.trim_start().starts_with("2 3 slot="),
        "{}",
        run.output
    );
    let printed = parse_print_detail(&run.output).unwrap();
    assert_eq!(printed.records.len(), 1, "{}", run.output);
    let read = Disk::from_record(&printed.records[0]).unwrap();
    assert_eq!(read.slot, "pvc-1");
    assert_eq!(read.comment, d.comment);
}
