//! The command builder against the simulator's independent parser: for any
//! input, the builder either refuses it or produces exactly one command whose
//! value reads back unchanged. Never a second command, never a changed value.

use proptest::prelude::*;
use rds_sim::{Engine, ExecOptions, SimConfig, parse_single_command};
use routeros::script::{self, Script};
use routeros::value::quote;
use routeros::{CliValue, Comment, HostList, NewDisk, Nqn, RdsPath, Slot, SlotPrefix};

/// Strings that stress RouterOS syntax: its special characters, spaces,
/// control characters and non-ASCII, beside arbitrary Unicode.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,40}",
        "[a-z0-9\"\\\\$?;\\[\\]{}()/ .:=~`'\t\n\r-]{0,40}",
        "(pvc-|nqn\\.|/raid10/)[a-z0-9$;\"\\[ -]{0,30}",
    ]
}

/// Builds `/disk set x <key>=<value>` and parses it back with the simulator.
fn read_back(value: &dyn CliValue) -> Vec<(Option<String>, String)> {
    let text = Script::new()
        .syntax("/disk set x comment=")
        .value(value)
        .into_text();
    let parsed = parse_single_command(&text)
        .unwrap_or_else(|e| panic!("built {text:?}, which does not parse as one command: {e}"));
    assert_eq!(
        (parsed.menu.as_str(), parsed.verb.as_str()),
        ("/disk", "set"),
        "{text}"
    );
    parsed.args
}

fn expect_exact(value: &dyn CliValue, expected: &str) {
    let args = read_back(value);
    assert_eq!(
        args,
        [
            (None, "x".to_owned()),
            (Some("comment".to_owned()), expected.to_owned())
        ]
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn quoted_text_reads_back_or_is_refused(s in hostile()) {
        if let Ok(quoted) = quote(&s) {
            let text = format!("/disk set x comment={quoted}");
            let parsed = parse_single_command(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            prop_assert_eq!(parsed.args, vec![(None, "x".to_owned()), (Some("comment".to_owned()), s)]);
        }
    }

    #[test]
    fn typed_values_read_back_or_are_refused(s in hostile()) {
        if let Ok(v) = Slot::new(&s) { expect_exact(&v, &s); }
        if let Ok(v) = Comment::new(&s) { expect_exact(&v, &s); }
        if let Ok(v) = Nqn::new(&s) {
            expect_exact(&v, &s);
            expect_exact(&HostList::new([&v, &v]), &format!("{s},{s}"));
        }
        if let Ok(v) = RdsPath::new(&s) {
            expect_exact(&v, &s);
            expect_exact(&v.file_name(), &s[1..]);
        }
        if let Ok(v) = SlotPrefix::new(&s) { expect_exact(&v, &format!("^{s}")); }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whole scripts, run by the simulator's engine: the disk made has exactly
    /// the slot and comment given, and nothing else happened.
    #[test]
    fn create_script_makes_exactly_the_disk_asked_for(name in "[a-zA-Z0-9][a-zA-Z0-9_-]{0,31}", note in hostile()) {
        let Ok(comment) = Comment::new(&note) else { return Ok(()); };
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(SimConfig::single_pool(dir.path(), "raid10", 1 << 40)).unwrap();
        let disk = NewDisk {
            slot: Slot::new(&name).unwrap(),
            file_path: RdsPath::new(&format!("/raid10/volumes/{name}.img")).unwrap(),
            size: 1 << 20,
            nvme_port: 4420,
            nqn: Nqn::new(&format!("nqn.2000-02.com.mikrotik:{name}")).unwrap(),
            comment,
        };
        let run = engine.execute(&script::create_disk(&disk).into_text(), &ExecOptions { width: 80 });
        prop_assert!(!run.failed, "{}", run.output);
        let disks = engine.disks();
        prop_assert_eq!(disks.len(), 1);
        prop_assert_eq!(&disks[0].slot, &name);
        prop_assert_eq!(disks[0].comment.as_deref(), Some(note.as_str()));
        let printed = routeros::parse_print_detail(&run.output).unwrap();
        prop_assert!(printed.messages.is_empty(), "{:?}", printed.messages);
        let read = routeros::Disk::from_record(&printed.records[0]).unwrap();
        prop_assert_eq!(read.slot, name);
        prop_assert_eq!(read.comment.as_deref(), Some(note.as_str()));
    }
}
