//! The exact scripts of docs/routeros-cli.md, taken from the document itself
//! (so a change there is tested here), with their placeholders filled in,
//! run against the engine: each must have the documented effect and print
//! the documented format.

use super::tests::{GIB, Sim, sim};

const DOC: &str = include_str!("../../../../docs/routeros-cli.md");

/// The doc's example slot cut to the 32 characters slots may have (the
/// doc's own example, 40 characters long, is over the limit it states).
const SLOT: &str = "pvc-0b0e8b8e-3c43-4c2f-9d2e-53f0";

/// The first code block after the heading that starts with `heading`.
fn doc_script(heading: &str) -> String {
    let start = DOC
        .find(&format!("\n### {heading}"))
        .unwrap_or_else(|| panic!("no section {heading}"));
    let rest = &DOC[start..];
    let open = rest
        .find("```\n")
        .unwrap_or_else(|| panic!("no code in {heading}"))
        + 4;
    let close = rest[open..]
        .find("\n```")
        .unwrap_or_else(|| panic!("unclosed code in {heading}"));
    rest[open..open + close].to_string()
}

/// Fills in the placeholders: `S` slot, `P` path, `F` path without the
/// leading slash, `N` size, `Q` NQN, `C` comment, `PREFIX`, `POOL`, `D` the
/// folder `raid10/volumes`, and `OWNER` an ownership condition that the
/// comments `C` gives pass.
fn fill(script: &str, slot: &str, size: u64) -> String {
    let path = format!("/raid10/volumes/{slot}.img");
    script
        .replace("(OWNER)", "(comment~\"^rds-csi:\")")
        .replace("\"S\"", &format!("\"{slot}\""))
        .replace("\"/S\\\\.img", &format!("\"/{slot}\\\\.img"))
        .replace("\"P\"", &format!("\"{path}\""))
        .replace("\"F\"", &format!("\"{}\"", &path[1..]))
        .replace("\"Q\"", &format!("\"nqn.2000-02.com.mikrotik:{slot}\""))
        .replace("\"C\"", &format!("\"rds-csi:{slot}\""))
        .replace("\"^PREFIX\"", "\"^pvc-\"")
        .replace("\"POOL\"", "\"raid10\"")
        .replace("\"D\"", "\"raid10/volumes\"")
        .replace("\"H\"", &format!("\"{HOST_A},{HOST_B}\""))
        .replace("\"H2\"", &format!("\"{HOST_B}\""))
        .replace("=N ", &format!("={size} "))
        .replace("=N}", &format!("={size}}}"))
        .replace("< N)", &format!("< {size})"))
}

fn create(s: &Sim, slot: &str, size: u64) -> String {
    s.ok(&fill(&doc_script("Create"), slot, size))
}

/// Two host NQNs of the driver's form, for the allow list.
const HOST_A: &str = "nqn.2024-01.io.srvlab.csi.rds:node:a";
const HOST_B: &str = "nqn.2024-01.io.srvlab.csi.rds:node:b";

const HEADER: &str = "Flags: B - BLOCK-DEVICE; M - MOUNTED; t - NVME-TCP-EXPORT\r\n";

#[test]
fn the_doc_scripts_are_found_and_filled_completely() {
    for section in [
        "Create",
        "Get",
        "List",
        "Grow",
        "Delete",
        "Pool capacity",
        "Version",
        "Pools",
        "File type",
        "Who may connect",
    ] {
        let script = fill(&doc_script(section), SLOT, GIB);
        for placeholder in [
            "\"S\"", "\"P\"", "\"F\"", "\"Q\"", "\"C\"", "\"D\"", "\"H\"", "\"H2\"", "PREFIX",
            "POOL", "=N", "< N", "OWNER",
        ] {
            assert!(!script.contains(placeholder), "{section}: {script}");
        }
        crate::parser::parse_script(&script).unwrap_or_else(|e| panic!("{section}: {e}"));
    }
}

#[test]
fn create_makes_the_disk_and_prints_it_like_the_doc() {
    let s = sim(100 * GIB);
    let out = create(&s, SLOT, GIB);
    let lines: Vec<&str> = out.split("\r\n").collect();
    assert_eq!(lines[0], HEADER.trim_end());
    // Made closed: no `t` flag until a publish exports it.
    assert_eq!(lines[1], format!(" 0 B    ;;; rds-csi:{SLOT}"));
    assert_eq!(
        lines[2],
        format!("        type=file slot=\"{SLOT}\" slot-default=\"\"")
    );
    // The doc's example runs this line to 91 characters; at width 80 the
    // model moves to a line of its own.
    assert_eq!(lines[3], "        parent=\"\" fs=-");
    assert_eq!(
        lines[4],
        format!("        model=\"/raid10/volumes/{SLOT}.img\"")
    );
    for pair in [
        "slot-default=\"\"",
        "parent=\"\"",
        "fs=-",
        &format!("model=\"/raid10/volumes/{SLOT}.img\""),
        "size=1 073 741 824",
        "mount-filesystem=no",
        "mount-read-only=no",
        "compress=no",
        "sector-size=512",
        "raid-master=none",
        "nvme-tcp-export=no",
        "nvme-tcp-server-port=4420",
        "nvme-tcp-server-allow-host-name=\"\"",
        "iscsi-export=no",
        "nfs-sharing=no",
        "smb-sharing=no",
        "media-sharing=no",
        "media-interface=none",
        "swap=no",
        &format!("file-path=/raid10/volumes/{SLOT}.img"),
        "file-size=1024.0MiB",
        "file-offset=0",
    ] {
        assert!(out.contains(pair), "{pair} in\n{out}");
    }
    // The NQN pair is longer than a line: it is cut inside its quotes and
    // continues, indented, on the next line.
    let nqn = lines
        .iter()
        .position(|l| l.contains("nvme-tcp-server-nqn="))
        .unwrap();
    assert_eq!(
        format!("{}{}", lines[nqn].trim_start(), lines[nqn + 1].trim_start()),
        format!(
            "nvme-tcp-server-nqn=\"nqn.2000-02.com.mikrotik:{SLOT}\" nvme-tcp-server-allow-host-name=\"\" iscsi-export=no"
        ),
    );
    assert!(lines.iter().all(|l| l.len() <= 80), "{out}");
    let disk = &s.engine.disks()[0];
    assert_eq!(
        (
            disk.slot.as_str(),
            disk.size,
            disk.export,
            disk.mount_filesystem
        ),
        (SLOT, GIB, false, false)
    );
    let image = s.host(&format!("raid10/volumes/{SLOT}.img"));
    assert_eq!(std::fs::metadata(image).unwrap().len(), GIB);

    // Idempotent: a second run changes nothing and prints the same.
    assert_eq!(create(&s, SLOT, 2 * GIB), out);
    assert_eq!(s.engine.disks().len(), 1);
}

#[test]
fn create_replaces_a_stray_image() {
    let s = sim(100 * GIB);
    let image = s.host("raid10/volumes/pvc-1.img");
    std::fs::write(&image, b"old filesystem").unwrap();
    create(&s, "pvc-1", 1 << 20);
    let data = std::fs::read(&image).unwrap();
    assert_eq!(data.len(), 1 << 20);
    assert!(
        data.iter().all(|b| *b == 0),
        "a new volume must not carry old data"
    );
}

#[test]
fn create_refuses_a_path_used_by_another_disk() {
    let s = sim(100 * GIB);
    create(&s, "pvc-1", GIB);
    let script = fill(&doc_script("Create"), "pvc-2", GIB).replace("pvc-2.img", "pvc-1.img");
    assert_eq!(s.err(&script), "file-path already in use by another disk");
    assert_eq!(s.engine.disks().len(), 1);
}

#[test]
fn create_out_of_space_leaves_nothing() {
    let s = sim(10 * GIB);
    let run = s.run(&fill(&doc_script("Create"), "pvc-1", 20 * GIB));
    assert!(run.failed);
    assert_eq!(run.output, "not enough space\r\n");
    assert!(s.engine.disks().is_empty() && s.engine.files().is_empty());
}

#[test]
fn get_prints_the_disk_or_only_the_header() {
    let s = sim(100 * GIB);
    create(&s, "pvc-1", GIB);
    let out = s.ok(&fill(&doc_script("Get"), "pvc-1", 0));
    assert!(
        out.starts_with(HEADER) && out.contains("slot=\"pvc-1\""),
        "{out}"
    );
    assert_eq!(s.ok(&fill(&doc_script("Get"), "pvc-none", 0)), HEADER);
}

#[test]
fn list_by_prefix() {
    let s = sim(100 * GIB);
    for slot in ["pvc-1", "pvc-2", "other-1"] {
        create(&s, slot, GIB);
    }
    let out = s.ok(&fill(&doc_script("List"), "", 0));
    assert!(
        out.contains(" 0 B    ;;; rds-csi:pvc-1\r\n")
            && out.contains("\r\n\r\n 1 B    ;;; rds-csi:pvc-2\r\n"),
        "{out}"
    );
    assert!(!out.contains("other-1"));
}

#[test]
fn grow_grows_and_never_shrinks() {
    let s = sim(100 * GIB);
    create(&s, "pvc-1", GIB);
    let grow = |size| fill(&doc_script("Grow"), "pvc-1", size);
    let out = s.ok(&grow(2 * GIB));
    assert!(
        out.contains("size=2 147 483 648") && out.contains("file-size=2.0GiB"),
        "{out}"
    );
    assert_eq!(
        std::fs::metadata(s.host("raid10/volumes/pvc-1.img"))
            .unwrap()
            .len(),
        2 * GIB
    );
    let out = s.ok(&grow(GIB));
    assert!(out.contains("size=2 147 483 648"), "{out}");
    assert_eq!(s.ok(&fill(&doc_script("Grow"), "pvc-none", GIB)), HEADER);
    assert_eq!(s.err(&grow(200 * GIB)), "not enough space");
    // A disk that passes no ownership condition is printed, not grown.
    s.ok("/disk set pvc-1 comment=\"by hand\"");
    let out = s.ok(&grow(4 * GIB));
    assert!(out.contains("size=2 147 483 648"), "{out}");
}

#[test]
fn delete_removes_disk_and_image_and_is_idempotent() {
    let s = sim(100 * GIB);
    create(&s, "pvc-1", GIB);
    create(&s, "pvc-2", GIB);
    let delete = fill(&doc_script("Delete"), "pvc-1", 0);
    assert_eq!(s.ok(&delete), "");
    assert_eq!(s.engine.disks().len(), 1);
    assert_eq!(s.engine.files().len(), 1);
    assert_eq!(s.ok(&delete), "");

    // Cut off between the two removals: the retry finds the stray image
    // by its name.
    s.engine.faults().drop_after("/disk remove");
    let delete = fill(&doc_script("Delete"), "pvc-2", 0);
    assert!(s.run(&delete).drop_connection);
    assert_eq!(s.engine.files().len(), 1);
    assert_eq!(s.ok(&delete), "");
    assert!(s.engine.files().is_empty() && s.engine.disks().is_empty());

    // A disk that passes no ownership condition is shown, not removed; a
    // folder named like an image is not swept.
    s.ok("/disk add type=file file-path=/raid10/volumes/pvc-3.img file-size=1G slot=pvc-3 comment=\"by hand\"");
    let out = s.ok(&fill(&doc_script("Delete"), "pvc-3", 0));
    assert!(
        out.starts_with(HEADER) && out.contains(";;; by hand"),
        "{out}"
    );
    assert_eq!(s.engine.disks().len(), 1);
    std::fs::create_dir(s.host("raid10/volumes/pvc-4.img")).unwrap();
    assert_eq!(s.ok(&fill(&doc_script("Delete"), "pvc-4", 0)), "");
    assert!(s.host("raid10/volumes/pvc-4.img").is_dir());
}

#[test]
fn create_leaves_a_folder_at_the_image_path_and_names_it() {
    let s = sim(100 * GIB);
    std::fs::create_dir(s.host("raid10/volumes/pvc-1.img")).unwrap();
    assert_eq!(
        s.err(&fill(&doc_script("Create"), "pvc-1", GIB)),
        "rds-csi: not a regular file, left in place: raid10/volumes/pvc-1.img"
    );
    assert!(s.host("raid10/volumes/pvc-1.img").is_dir());
    assert!(s.engine.disks().is_empty());
}

#[test]
fn pool_capacity() {
    let s = sim(100 * GIB);
    create(&s, "pvc-1", 10 * GIB);
    let out = s.ok(&fill(&doc_script("Pool capacity"), "", 0));
    assert!(out.starts_with(HEADER), "{out}");
    assert!(out.contains(" 0 BM   type=raid slot=\"raid10\""), "{out}");
    assert!(
        out.contains("mount-point=\"raid10\" size=107 374 182 400 free=96 636 764 160 use=10%"),
        "{out}"
    );
}

#[test]
fn version() {
    let s = sim(GIB);
    let out = s.ok(&doc_script("Version"));
    let keys: Vec<&str> = out
        .lines()
        .map(|l| l.split(':').next().unwrap_or("").trim())
        .collect();
    assert_eq!(keys, crate::menu::RESOURCE_KEYS);
    assert!(
        out.contains("\r\n                  version: 7.21.1 (stable)\r\n"),
        "{out}"
    );
    assert!(
        out.contains("               board-name: RDS2216\r\n"),
        "{out}"
    );
}

#[test]
fn pools_lists_the_mounted_entries_only() {
    let s = sim(100 * GIB);
    create(&s, "pvc-1", 10 * GIB);
    let out = s.ok(&doc_script("Pools"));
    assert!(out.starts_with(HEADER), "{out}");
    assert!(
        out.contains("mount-point=\"raid10\" size=107 374 182 400 free=96 636 764 160"),
        "{out}"
    );
    assert!(!out.contains("pvc-1"), "a file disk is no pool:\n{out}");
}

#[test]
fn file_type_puts_missing_or_the_type() {
    let s = sim(100 * GIB);
    create(&s, "pvc-1", GIB);
    let file_type =
        |name: &str| s.ok(&doc_script("File type").replace("\"D\"", &format!("\"{name}\"")));
    assert_eq!(file_type("raid10/volumes"), "directory\r\n");
    assert_eq!(file_type("raid10"), "disk\r\n");
    assert_eq!(file_type("raid10/volumes/pvc-1.img"), "file\r\n");
    assert_eq!(file_type("raid10/nothing"), "missing\r\n");
    assert_eq!(file_type("nvme9/volumes"), "missing\r\n");
    // Filled in the usual way, it names the pool's folder.
    assert_eq!(
        s.ok(&fill(&doc_script("File type"), "", 0)),
        "directory\r\n"
    );
}

#[test]
fn who_may_connect_changes_only_from_the_expected_state() {
    let s = sim(100 * GIB);
    create(&s, SLOT, GIB);
    let script = fill(&doc_script("Who may connect"), SLOT, GIB);
    // Not in the expected state (closed, as made): nothing changes, and the
    // disk is printed as it is.
    let out = s.ok(&script);
    assert!(
        out.contains("nvme-tcp-export=no") && out.contains("nvme-tcp-server-allow-host-name=\"\""),
        "{out}"
    );
    s.ok(&format!(
        "/disk set {SLOT} nvme-tcp-export=yes nvme-tcp-server-allow-host-name=\"{HOST_A},{HOST_B}\""
    ));
    let out = s.ok(&script);
    assert!(
        out.contains(&format!("nvme-tcp-server-allow-host-name=\"{HOST_B}\"")),
        "{out}"
    );
    assert!(
        out.contains("nvme-tcp-export=yes"),
        "switched on again: {out}"
    );
    let disk = &s.engine.disks()[0];
    assert_eq!((disk.export, disk.allow_host_name.as_str()), (true, HOST_B));
    // Run again: the condition no longer holds.
    let out = s.ok(&script);
    assert!(
        out.contains(&format!("nvme-tcp-server-allow-host-name=\"{HOST_B}\"")),
        "{out}"
    );
}
