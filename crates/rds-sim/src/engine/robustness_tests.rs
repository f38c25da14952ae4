//! Engine tests of what the client must survive: restarts, concurrent
//! scripts, a full pool and injected faults. No timing assertions: the
//! concurrency tests synchronise with barriers and check outcomes only.

use std::sync::{Arc, Barrier};
use std::thread;

use super::tests::{GIB, sim};
use super::*;
use crate::config::PoolConfig;

#[test]
fn state_survives_a_reopen() {
    let s = sim(100 * GIB);
    s.add("a", GIB);
    s.add("b", GIB);
    s.ok("/disk set a comment=kept nvme-tcp-export=yes; /disk remove b");
    let before = s.ok("/disk print detail");
    let path = s.dir.path().to_path_buf();
    drop(s.engine);
    assert!(path.join(".rds-sim/state.json").exists());
    assert!(!path.join(".rds-sim/state.json.tmp").exists());

    let engine = Engine::open(SimConfig::single_pool(&path, "raid10", 100 * GIB)).unwrap();
    let disks = engine.disks();
    assert_eq!(disks.len(), 1);
    assert_eq!(
        (disks[0].slot.as_str(), disks[0].comment.as_deref()),
        ("a", Some("kept"))
    );
    assert!(disks[0].export);
    let after = engine.execute("/disk print detail", &ExecOptions::default());
    assert_eq!(after.output, before, "same ids, same order, same output");
    // Ids keep counting from where they were: `b`'s id is not reused.
    let run = engine.execute(
        "/disk add type=file file-path=/raid10/volumes/c.img file-size=1M slot=c; :put [/disk find where slot=c]",
        &ExecOptions::default(),
    );
    assert_eq!(run.output, "*4\r\n");
}

#[test]
fn reopen_with_another_pool_keeps_the_old_ids() {
    let s = sim(GIB);
    let path = s.dir.path().to_path_buf();
    let id_before = s.ok(":put [/disk find where slot=raid10]");
    drop(s.engine);
    let mut config = SimConfig::single_pool(&path, "raid10", GIB);
    config.pools.push(PoolConfig {
        name: "nvme1".into(),
        fs: "ext4".into(),
        capacity: GIB,
        directories: vec!["a/b".into()],
    });
    let engine = Engine::open(config).unwrap();
    let run = engine.execute(
        ":put [/disk find where slot=raid10]; :put [/disk get nvme1 fs]",
        &ExecOptions::default(),
    );
    assert_eq!(run.output, format!("{id_before}ext4\r\n"));
    assert!(path.join("nvme1/a/b").is_dir());
}

#[test]
fn corrupt_state_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".rds-sim")).unwrap();
    std::fs::write(dir.path().join(".rds-sim/state.json"), "[").unwrap();
    let err = Engine::open(SimConfig::single_pool(dir.path(), "raid10", GIB)).unwrap_err();
    assert!(matches!(err, SimError::CorruptState { .. }), "{err}");
}

/// Runs `script` on `threads` threads at once, released together.
fn race(engine: &Engine, threads: usize, script: &str) -> Vec<Execution> {
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let engine = engine.clone();
            let barrier = Arc::clone(&barrier);
            let script = script.to_string();
            thread::spawn(move || {
                barrier.wait();
                engine.execute(&script, &ExecOptions::default())
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn concurrent_adds_of_one_slot_make_one_disk() {
    for round in 0..20 {
        let s = sim(100 * GIB);
        let script = "/disk add type=file file-path=/raid10/volumes/x.img file-size=1M slot=x";
        let runs = race(&s.engine, 4, script);
        let ok = runs.iter().filter(|r| !r.failed).count();
        assert_eq!(ok, 1, "round {round}: {runs:?}");
        for run in runs.iter().filter(|r| r.failed) {
            assert_eq!(run.output, "failure: already have such entry\r\n");
        }
        assert_eq!(s.engine.disks().len(), 1);
    }
}

#[test]
fn concurrent_check_and_create_scripts_make_one_disk() {
    let s = sim(100 * GIB);
    let create = r#":if ([:len [/disk find where slot="x"]] = 0) do={/disk add type=file file-path="/raid10/volumes/x.img" file-size=1048576 slot="x"}; /disk print detail where slot="x""#;
    for _ in 0..10 {
        for run in race(&s.engine, 4, create) {
            // Scripts interleave between commands: a loser of the race sees
            // "no such disk" and then fails its add, exactly as on the device.
            assert!(
                !run.failed || run.output.ends_with("failure: already have such entry\r\n"),
                "{}",
                run.output
            );
        }
        assert_eq!(s.engine.disks().len(), 1);
        s.ok(r#"/disk remove x; /file remove "raid10/volumes/x.img""#);
    }
}

#[test]
fn different_slots_proceed_in_parallel() {
    let s = sim(100 * GIB);
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let engine = s.engine.clone();
            thread::spawn(move || {
                engine.execute(
                    &format!("/disk add type=file file-path=/raid10/volumes/{i}.img file-size=1M slot=d{i}"),
                    &ExecOptions::default(),
                )
            })
        })
        .collect();
    for h in handles {
        assert!(!h.join().unwrap().failed);
    }
    assert_eq!(s.engine.disks().len(), 8);
    assert_eq!(s.engine.commands_executed(), 8);
}

#[test]
fn capacity_is_finite() {
    let s = sim(10 * GIB);
    assert_eq!(
        s.err("/disk add type=file file-path=/raid10/volumes/a.img file-size=11G slot=a"),
        "not enough space"
    );
    assert!(!s.host("raid10/volumes/a.img").exists());
    s.add("a", 6 * GIB);
    assert_eq!(
        s.err("/disk add type=file file-path=/raid10/volumes/b.img file-size=5G slot=b"),
        "not enough space"
    );
    s.add("b", 4 * GIB);
    assert_eq!(s.err("/disk set a file-size=7G"), "not enough space");
    assert!(
        s.ok("/disk print detail where slot=raid10")
            .contains("free=0 use=100%")
    );
    // Removing the disk frees nothing; removing the file does.
    s.ok("/disk remove b");
    assert_eq!(s.err("/disk set a file-size=7G"), "not enough space");
    s.ok(r#"/file remove "raid10/volumes/b.img"; /disk set a file-size=7G"#);
    // Files put there by anyone count too.
    std::fs::write(s.host("raid10/volumes/junk"), vec![0u8; 1 << 20]).unwrap();
    assert!(
        s.ok(":put [/disk get raid10 free]")
            .starts_with(&(3 * GIB - (1 << 20)).to_string())
    );
}

#[test]
fn drop_before_does_not_run_the_command() {
    let s = sim(100 * GIB);
    s.engine.faults().drop_before("/disk add");
    let run = s.run(":put before; /disk add type=file file-path=/raid10/volumes/a.img file-size=1M slot=a; :put after");
    assert!(run.drop_connection && !run.failed);
    assert!(!run.output.contains("after"));
    assert!(s.engine.disks().is_empty());
    assert_eq!(s.engine.commands_executed(), 0);
    // One-shot: the retry goes through.
    s.add("a", 1 << 20);
    assert_eq!(s.engine.disks().len(), 1);
}

#[test]
fn drop_after_runs_and_persists_the_command() {
    let s = sim(100 * GIB);
    s.add("a", 1 << 20);
    s.engine.faults().drop_after("/disk remove");
    let run = s.run(r#"/disk remove a; /file remove "raid10/volumes/a.img""#);
    assert!(run.drop_connection);
    assert!(s.engine.disks().is_empty());
    assert!(
        s.host("raid10/volumes/a.img").exists(),
        "the script stopped after the drop"
    );
    let reopened = Engine::open(SimConfig::single_pool(s.dir.path(), "raid10", 100 * GIB)).unwrap();
    assert!(reopened.disks().is_empty(), "the removal was saved");
    // Not caught by on-error either.
    s.engine.faults().drop_before("/file remove");
    let run = s.run(r#":do {/file remove "raid10/volumes/a.img"} on-error={:put caught}"#);
    assert!(run.drop_connection && run.output.is_empty());
}

#[test]
fn disk_full_fault() {
    let s = sim(100 * GIB);
    s.add("a", 1 << 20);
    let faults = s.engine.faults();
    faults.set_disk_full(true);
    assert_eq!(
        s.err("/disk add type=file file-path=/raid10/volumes/b.img file-size=1M slot=b"),
        "not enough space"
    );
    assert_eq!(s.err("/disk set a file-size=2M"), "not enough space");
    s.ok("/disk set a file-size=1M comment=same-size-is-fine");
    faults.set_disk_full(false);
    s.ok("/disk set a file-size=2M");
}

#[test]
fn fail_after_fails_every_command_until_cleared() {
    let s = sim(100 * GIB);
    let faults = s.engine.faults();
    faults.fail_after(1);
    let run = s.run(":put [/disk print count-only]; /disk print; :put unreachable");
    assert!(run.failed);
    assert!(
        run.output.ends_with("failure: simulated fault\r\n"),
        "{}",
        run.output
    );
    assert!(!run.output.contains("unreachable"));
    assert_eq!(
        s.err(":do {/disk print} on-error={:error \"still failing\"}"),
        "still failing"
    );
    faults.clear_fail_after();
    s.ok("/disk print");
    assert_eq!(s.engine.commands_executed(), 4);
    faults.fail_after(0);
    faults.clear();
    s.ok("/disk print");
}

#[test]
fn commands_in_substitutions_count() {
    let s = sim(GIB);
    s.ok(":if ([:len [/disk find]] > 0) do={:put [/disk get [find where slot=raid10] size]}");
    assert_eq!(s.engine.commands_executed(), 3);
}

#[test]
fn the_deepest_accepted_scripts_run_on_a_small_stack() {
    let s = sim(GIB);
    let engine = s.engine.clone();
    // Just inside the parser's nesting limit, each kind of recursion.
    let scripts = [
        format!(":put {}1{}", "(".repeat(95), ")".repeat(95)),
        format!(":put ({}true)", "!".repeat(95)),
        format!("{}:put x{}", "{".repeat(95), "}".repeat(95)),
        format!(":put (\"a\"{})", " . \"b\"".repeat(95)),
        format!(
            "/disk print count-only where slot=a{}",
            " or slot=b".repeat(95)
        ),
        format!(":put {}\"x\"{}", "[:len ".repeat(95), "]".repeat(95)),
    ];
    let handle = thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(move || {
            scripts
                .iter()
                .map(|script| engine.execute(script, &ExecOptions::default()))
                .collect::<Vec<_>>()
        })
        .unwrap();
    for run in handle.join().unwrap() {
        assert!(!run.failed, "{}", run.output);
    }
}
