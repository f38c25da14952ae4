//! Engine tests: commands against real files, persistence, concurrency,
//! capacity and faults.

use std::fs;

use super::*;

pub(super) const GIB: u64 = 1 << 30;

pub(super) struct Sim {
    pub dir: tempfile::TempDir,
    pub engine: Engine,
}

pub(super) fn sim(capacity: u64) -> Sim {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(SimConfig::single_pool(dir.path(), "raid10", capacity)).unwrap();
    Sim { dir, engine }
}

impl Sim {
    pub fn run(&self, script: &str) -> Execution {
        self.engine.execute(script, &ExecOptions::default())
    }

    /// Runs a script that must succeed; returns its output.
    pub fn ok(&self, script: &str) -> String {
        let run = self.run(script);
        assert!(
            !run.failed && !run.drop_connection,
            "{script}\n{}",
            run.output
        );
        run.output
    }

    /// Runs a script that must fail; returns its last line.
    pub fn err(&self, script: &str) -> String {
        let run = self.run(script);
        assert!(run.failed, "{script} should fail:\n{}", run.output);
        run.output
            .trim_end()
            .lines()
            .last()
            .unwrap_or("")
            .to_string()
    }

    pub fn host(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    pub fn add(&self, slot: &str, size: u64) {
        self.ok(&format!(
            "/disk add type=file file-path=/raid10/volumes/{slot}.img file-size={size} slot={slot}"
        ));
    }
}

#[test]
fn add_creates_a_sparse_image_with_defaults() {
    let s = sim(100 * GIB);
    s.ok("/disk add type=file file-path=/raid10/volumes/a.img file-size=10G slot=a");
    let meta = fs::metadata(s.host("raid10/volumes/a.img")).unwrap();
    assert_eq!(meta.len(), 10 * GIB);
    let disks = s.engine.disks();
    assert_eq!(disks.len(), 1);
    assert_eq!(disks[0].file_path, "/raid10/volumes/a.img");
    assert!(disks[0].mount_filesystem, "RouterOS mounts by default");
    assert!(!disks[0].export);
    assert_eq!((disks[0].port, disks[0].comment.as_deref()), (4420, None));
    let out = s.ok(r#"/disk print detail where slot="a""#);
    for pair in [
        "type=file",
        "fs=-",
        "nvme-tcp-export=no",
        "nvme-tcp-server-nqn=\"\"",
        "file-size=10.0GiB",
        "size=10 737 418 240",
        "model=\"/raid10/volumes/a.img\"",
    ] {
        assert!(out.contains(pair), "{pair} in\n{out}");
    }
    assert!(
        out.lines().nth(1).unwrap().starts_with(" 0 B    type=file"),
        "{out}"
    );
    assert_eq!(
        s.engine.files(),
        [FileView {
            name: "raid10/volumes/a.img".into(),
            size: 10 * GIB
        }]
    );
}

#[test]
fn add_sets_every_accepted_property() {
    let s = sim(100 * GIB);
    s.ok(concat!(
        "/disk add type=file file-path=raid10/volumes/a.img file-size=1M slot=a comment=\"c d\" disabled=yes ",
        "mount-filesystem=no mount-read-only=yes compress=yes nvme-tcp-export=yes nvme-tcp-server-port=4421 ",
        "nvme-tcp-server-nqn=nqn.x nvme-tcp-server-allow-host-name=h nvme-tcp-server-password=pw ",
        "iscsi-export=yes nfs-sharing=yes smb-sharing=yes swap=yes file-offset=512"
    ));
    let out = s.ok(":put [/disk get a nvme-tcp-server-password]; /disk print detail where slot=a");
    assert!(out.starts_with("pw\r\n"), "{out}");
    assert!(out.contains(" 0 B Xt ;;; c d\r\n"), "{out}");
    for pair in [
        "mount-read-only=yes",
        "compress=yes",
        "nvme-tcp-server-port=4421",
        "nvme-tcp-server-nqn=\"nqn.x\"",
        "nvme-tcp-server-allow-host-name=\"h\"",
        "iscsi-export=yes",
        "nfs-sharing=yes",
        "smb-sharing=yes",
        "swap=yes",
        "file-offset=512",
        "file-path=/raid10/volumes/a.img",
    ] {
        assert!(out.contains(pair), "{pair} in\n{out}");
    }
    assert!(out.contains("X - DISABLED"));
}

#[test]
fn add_errors() {
    let s = sim(100 * GIB);
    s.add("a", GIB);
    let long = "s".repeat(33);
    for (script, error) in [
        (
            "/disk add type=file file-path=/raid10/volumes/b.img file-size=1G",
            "failure: slot must be set",
        ),
        (
            "/disk add type=file file-path=/raid10/volumes/b.img file-size=1G slot=a",
            "failure: already have such entry",
        ),
        (
            "/disk add type=file file-path=/raid10/volumes/b.img file-size=1G slot=raid10",
            "failure: already have such entry",
        ),
        (
            &format!(
                "/disk add type=file file-path=/raid10/volumes/b.img file-size=1G slot={long}"
            ),
            "invalid value for argument slot",
        ),
        (
            "/disk add type=file file-path=/nvme1/b.img file-size=1G slot=b",
            "failure: file-path must be on a mounted disk",
        ),
        (
            "/disk add type=file file-path=/raid10/none/b.img file-size=1G slot=b",
            "failure: no such directory",
        ),
        (
            "/disk add type=file file-path=/raid10/../b.img file-size=1G slot=b",
            "invalid value for argument file-path",
        ),
        (
            "/disk add type=file file-path=/raid10/volumes file-size=1G slot=b",
            "failure: file-path is not a file",
        ),
        (
            "/disk add type=file file-path=/raid10/volumes/b.img file-size=1.5G slot=b",
            "invalid value for argument file-size",
        ),
        (
            "/disk add type=file file-path=/raid10/volumes/b.img file-size=big slot=b",
            "invalid value for argument file-size",
        ),
        (
            "/disk add type=file file-path=/raid10/volumes/b.img slot=b",
            "failure: file-size must be set",
        ),
        (
            "/disk add type=file file-path=/raid10/volumes/a.img file-size=1G slot=b",
            "failure: file-path already used by another disk",
        ),
        (
            "/disk add file-path=/raid10/volumes/b.img file-size=1G slot=b",
            "failure: type must be set",
        ),
        (
            "/disk add type=raid file-path=/raid10/volumes/b.img file-size=1G slot=b",
            "input does not match any value of type",
        ),
        (
            "/disk add type=file file-path=/raid10/volumes/b.img file-size=1G slot=b nvme-tcp-export=maybe",
            "input does not match any value of nvme-tcp-export",
        ),
        (
            "/disk add type=file file-path=/raid10/volumes/b.img file-size=1G slot=b nvme-tcp-server-port=70000",
            "invalid value for argument nvme-tcp-server-port",
        ),
    ] {
        assert_eq!(s.err(script), error, "{script}");
    }
    assert_eq!(s.engine.disks().len(), 1);
    assert!(!s.host("raid10/volumes/b.img").exists());
}

#[test]
fn add_reuses_and_grows_an_existing_file() {
    let s = sim(100 * GIB);
    fs::write(s.host("raid10/volumes/a.img"), b"data").unwrap();
    s.ok("/disk add type=file file-path=/raid10/volumes/a.img file-size=1M slot=a");
    assert_eq!(
        fs::read(s.host("raid10/volumes/a.img")).unwrap()[..4],
        *b"data"
    );
    assert_eq!(s.engine.disks()[0].size, 1 << 20);
    fs::write(s.host("raid10/volumes/b.img"), vec![1u8; 4096]).unwrap();
    s.ok("/disk add type=file file-path=/raid10/volumes/b.img slot=b");
    assert_eq!(s.engine.disks()[1].size, 4096);
}

#[test]
fn set_grows_never_shrinks_and_renames() {
    let s = sim(100 * GIB);
    s.add("a", GIB);
    s.ok("/disk set a file-size=2G comment=hello");
    assert_eq!(
        fs::metadata(s.host("raid10/volumes/a.img")).unwrap().len(),
        2 * GIB
    );
    assert_eq!(s.engine.disks()[0].comment.as_deref(), Some("hello"));
    assert_eq!(
        s.err("/disk set a file-size=1G"),
        "failure: file-size can not be reduced"
    );
    s.ok("/disk set a file-size=2G");
    s.ok("/disk set [find where slot=a] comment=\"\" slot=b");
    assert_eq!(s.engine.disks()[0].slot, "b");
    assert_eq!(s.engine.disks()[0].comment, None);
    s.ok("/disk set [find where slot=nothing] file-size=1");
    assert_eq!(s.err("/disk set zz comment=x"), "no such item");
    assert_eq!(
        s.err("/disk set raid10 file-size=1"),
        "failure: can not change pool disk"
    );
    s.ok("/disk set raid10 comment=pool");
    assert!(
        s.ok("/disk print detail where slot=raid10")
            .contains(";;; pool")
    );
    s.add("c", GIB);
    assert_eq!(
        s.err("/disk set c slot=b"),
        "failure: already have such entry"
    );
}

#[test]
fn remove_leaves_the_file_and_file_remove_deletes_it() {
    let s = sim(100 * GIB);
    s.add("a", GIB);
    assert_eq!(
        s.err(r#"/file remove "raid10/volumes/a.img""#),
        "failure: file already in use by a disk"
    );
    s.ok("/disk remove a");
    assert!(s.engine.disks().is_empty());
    assert!(s.host("raid10/volumes/a.img").exists());
    assert_eq!(s.err("/disk remove a"), "no such item");
    s.ok("/disk remove [find where slot=a]");
    assert_eq!(
        s.err("/disk remove raid10"),
        "failure: can not remove pool disk"
    );
    assert_eq!(
        s.err("/file remove raid10"),
        "failure: can not remove mount point"
    );
    s.ok(r#"/file remove [find where name="raid10/volumes/a.img"]"#);
    assert!(!s.host("raid10/volumes/a.img").exists());
    assert_eq!(
        s.err(r#"/file remove "raid10/volumes/a.img""#),
        "no such item"
    );
}

#[test]
fn print_find_get_and_numbers() {
    let s = sim(100 * GIB);
    s.add("a", GIB);
    s.add("b", 2 * GIB);
    assert_eq!(s.ok("/disk print count-only"), "3\r\n");
    assert_eq!(s.ok("/disk print detail as-value"), "");
    assert_eq!(s.ok(":put [:len [/disk print as-value]]"), "3\r\n");
    assert_eq!(
        s.ok(":put [/disk find where size>=2G and type=file]"),
        "*3\r\n"
    );
    assert_eq!(s.ok(":put [/disk get b size]"), "2147483648\r\n");
    assert_eq!(
        s.ok(":put [/disk get [find slot=b] file-size]"),
        "2147483648\r\n"
    );
    assert_eq!(s.ok(":put [/disk get raid10 file-path]"), "\r\n");
    assert_eq!(
        s.err(":put [/disk get b frob]"),
        "input does not match any value of value-name"
    );
    assert_eq!(
        s.err(":put [/disk get [find] size]"),
        "invalid internal item number"
    );
    assert_eq!(
        s.err(":put [/disk get [find slot=zz] size]"),
        "no such item"
    );
    assert!(
        s.ok(":put [/disk get a]")
            .starts_with(".id=*2;type=file;slot=a;")
    );
    // Numbers refer to the last print of the session.
    let out = s.ok("/disk print where slot~\"^b\"; /disk set 0 comment=via-number");
    assert!(out.starts_with("Flags:"), "{out}");
    assert_eq!(s.engine.disks()[1].comment.as_deref(), Some("via-number"));
    s.ok("/disk set 1 comment=full-list");
    assert_eq!(s.engine.disks()[0].comment.as_deref(), Some("full-list"));
    assert!(
        s.ok("/disk print terse where slot=a")
            .contains(" 0 B    comment=\"full-list\" type=file")
    );
    assert_eq!(
        s.ok("/disk print where slot=nothing"),
        "Flags: B - BLOCK-DEVICE; M - MOUNTED; t - NVME-TCP-EXPORT\r\n"
    );
}

#[test]
fn pool_record_and_files_listing() {
    let s = sim(100 * GIB);
    s.add("a", 10 * GIB);
    let out = s.ok(r#"/disk print detail where mount-point="raid10""#);
    let expected = concat!(
        "Flags: B - BLOCK-DEVICE; M - MOUNTED; t - NVME-TCP-EXPORT\r\n",
        " 0 BM   type=raid slot=\"raid10\" slot-default=\"\" parent=\"\" fs=xfs fs-label=\"\"\r\n",
        "        mount-point=\"raid10\" size=107 374 182 400 free=96 636 764 160 use=10%\r\n",
        "        raid-type=raid10\r\n"
    );
    assert_eq!(out, expected);
    let out = s.ok("/file print detail");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with(" 0 name=\"raid10\" type=disk creation-time=\"20"),
        "{out}"
    );
    assert!(
        lines[2].starts_with(" 1 name=\"raid10/volumes\" type=directory creation-time="),
        "{out}"
    );
    assert_eq!(
        lines[4], " 2 name=\"raid10/volumes/a.img\" type=file size=10 737 418 240",
        "{out}"
    );
    assert!(lines[5].starts_with("   creation-time=\""), "{out}");
    assert_eq!(
        s.ok(r#":put [/file get [find where name~"a.img\$"] size]"#),
        "10737418240\r\n"
    );
}

#[test]
fn width_option_changes_wrapping() {
    let s = sim(100 * GIB);
    s.add("a", GIB);
    let narrow = s.engine.execute(
        "/disk print detail where slot=a",
        &ExecOptions { width: 40 },
    );
    assert!(
        narrow
            .output
            .lines()
            .skip(1)
            .all(|l| l.len() <= 40 || !l.trim().contains(' ')),
        "{}",
        narrow.output
    );
    let wide = s.engine.execute(
        "/disk print detail where slot=a",
        &ExecOptions { width: 1000 },
    );
    assert_eq!(wide.output.lines().count(), 2);
}

#[test]
fn output_lines_end_in_crlf() {
    let s = sim(GIB);
    let out = s.ok("/system resource print; :put x");
    assert!(out.ends_with("\r\n"));
    assert_eq!(out.matches("\r\n").count(), out.matches('\n').count());
}

#[test]
fn parse_errors_run_nothing() {
    let s = sim(100 * GIB);
    let script =
        "/disk add type=file file-path=/raid10/volumes/a.img file-size=1G slot=a; /disk frob";
    let run = s.run(script);
    assert!(run.failed);
    let column = script.find("frob").unwrap() + 1;
    assert_eq!(
        run.output,
        format!("bad command name frob (line 1 column {column})\r\n")
    );
    assert!(s.engine.disks().is_empty());
    assert_eq!(s.engine.commands_executed(), 0);
}

#[test]
fn finding_a_file_by_name_agrees_with_listing_them_all() {
    let s = sim(100 * GIB);
    s.add("a", GIB);
    fs::write(s.host("raid10/volumes/stray.img"), b"x").unwrap();
    let count = |cond: &str| s.ok(&format!(":put [:len [/file find where {cond}]]"));
    // The looked-up forms...
    assert_eq!(count(r#"name="raid10/volumes/a.img""#), "1\r\n");
    assert_eq!(count(r#"name="raid10/volumes/stray.img""#), "1\r\n");
    assert_eq!(count(r#"name="raid10/volumes/none.img""#), "0\r\n");
    assert_eq!(
        count(r#"name="raid10/volumes/a.img" and size>2000000000"#),
        "0\r\n"
    );
    assert_eq!(
        count(r#"name="raid10/volumes/a.img" and type="file""#),
        "1\r\n"
    );
    assert_eq!(count(r#"name="raid10/volumes""#), "1\r\n");
    assert_eq!(count(r#"name="../etc/passwd""#), "0\r\n");
    // ...and the walked ones: a pool's mount point, and a regex.
    assert_eq!(count(r#"name="raid10""#), "1\r\n");
    assert_eq!(count(r#"name~"img\$""#), "2\r\n");
    // The ids agree whichever way a file was found.
    let by_name = s.ok(r#":put [/file find where name="raid10/volumes/a.img"]"#);
    let by_regex = s.ok(r#":put [/file find where name~"a.img\$"]"#);
    assert_eq!(by_name, by_regex);
}

#[test]
fn pool_free_space_follows_every_change() {
    let s = sim(10 * GIB);
    let free = || {
        let out = s.ok(r#":put [/disk get [find where slot="raid10"] free]"#);
        out.trim().parse::<u64>().unwrap()
    };
    assert_eq!(free(), 10 * GIB);
    s.add("a", 2 * GIB);
    assert_eq!(free(), 8 * GIB);
    s.ok(r#"/disk set [find where slot="a"] file-size=3G"#);
    assert_eq!(free(), 7 * GIB);
    s.ok(r#"/disk remove [find where slot="a"]; /file remove [/file find where name="raid10/volumes/a.img"]"#);
    assert_eq!(free(), 10 * GIB);
    // A file placed by hand counts from the simulator's next change on.
    fs::write(s.host("raid10/volumes/by-hand.img"), vec![0u8; 1 << 20]).unwrap();
    s.add("b", GIB);
    assert_eq!(free(), 9 * GIB - (1 << 20));
}

#[test]
fn a_path_below_a_regular_file_is_not_a_directory() {
    let s = sim(10 * GIB);
    s.add("a", GIB);
    assert_eq!(
        s.err("/disk add type=file file-path=/raid10/volumes/a.img/b.img file-size=1G slot=b"),
        "failure: not a directory"
    );
    // Looking a name up below a file finds nothing, and says nothing more.
    assert_eq!(
        s.ok(":put [:len [/file find where name=\"raid10/volumes/a.img/b.img\"]]"),
        "0\r\n"
    );
    assert_eq!(s.engine.disks().len(), 1);
}

#[test]
fn execs_and_commands_are_counted_and_written_to_the_stats_file() {
    let s = sim(10 * GIB);
    let file = s.dir.path().join("stats.json");
    s.engine.set_stats_file(file.clone()).unwrap();
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        "{\"commands\":0,\"execs\":0}\n"
    );
    // One exec, three commands (two finds and the add).
    s.ok(":if ([:len [/disk find where slot=a]] = 0) do={/disk add type=file file-path=/raid10/volumes/a.img file-size=1G slot=a}; :put [:len [/disk find]]");
    s.err("/disk frob");
    assert_eq!(
        (s.engine.execs_served(), s.engine.commands_executed()),
        (2, 3)
    );
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        "{\"commands\":3,\"execs\":2}\n"
    );
}
