//! The parsers against the output samples in `testdata/`.
#![allow(clippy::unwrap_used)] // a test that cannot read its fixture should stop right there

use routeros::{Disk, Pool, parse_print_detail, parse_system_resource};

fn fixture(name: &str) -> String {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Parses a `print detail` fixture into its records, requiring no messages.
fn records(name: &str) -> Vec<routeros::Record> {
    let out = parse_print_detail(&fixture(name)).unwrap();
    assert!(out.messages.is_empty(), "{name}: {:?}", out.messages);
    out.records
}

#[test]
fn file_disk_wrapped_over_many_lines() {
    let records = records("disk-file.txt");
    assert_eq!(records.len(), 1);
    let disk = Disk::from_record(&records[0]).unwrap();
    let slot = "pvc-0b0e8b8e-3c43-4c2f-9d2e-53f0d3b1a7a1";
    assert_eq!(disk.slot, slot);
    assert_eq!(disk.kind, "file");
    assert_eq!(disk.size, 50 << 30);
    assert_eq!(
        disk.file_path.as_deref(),
        Some(format!("/raid10/volumes/{slot}.img").as_str())
    );
    assert_eq!(
        disk.nqn.as_deref(),
        Some(format!("nqn.2000-02.com.mikrotik:{slot}").as_str())
    );
    assert_eq!(disk.nvme_tcp_port, Some(4420));
    assert!(disk.nvme_tcp_export);
    assert_eq!(disk.mount_filesystem, Some(false));
    assert_eq!(
        disk.comment.as_deref(),
        Some(format!("rds-csi:{slot}").as_str())
    );
    assert_eq!(records[0].get("file-size"), Some("50.0GiB"));
    assert_eq!(records[0].get("nvme-tcp-server-allow-host-name"), Some(""));
    assert_eq!(records[0].fields.len(), 25);
}

#[test]
fn mixed_list_with_pool_members_and_disabled_disk() {
    let records = records("disk-list.txt");
    let slots: Vec<_> = records.iter().map(|r| r.get("slot").unwrap()).collect();
    assert_eq!(slots, ["nvme1", "raid10", "pvc-a", "pvc-legacy"]);
    assert_eq!(records[0].get("model"), Some("Samsung SSD 990"));
    assert_eq!(records[0].flags, "Br");

    let pool = Pool::from_record(&records[1]).unwrap();
    assert_eq!(pool.size, 7_681_574_174_720);
    assert_eq!(pool.free, 7_301_927_047_168);

    let a = Disk::from_record(&records[2]).unwrap();
    assert_eq!(a.size, 1_610_612_736);
    assert_eq!(a.comment.as_deref(), Some("rds-csi:pvc-a"));

    let legacy = Disk::from_record(&records[3]).unwrap();
    assert!(legacy.disabled);
    assert!(!legacy.nvme_tcp_export);
    assert_eq!(legacy.nqn, None);
    assert_eq!(legacy.comment, None);
    assert_eq!(legacy.size, 10 << 30);
}

#[test]
fn header_only_means_nothing_matched() {
    assert!(records("disk-none.txt").is_empty());
}

#[test]
fn system_resource() {
    let r = parse_system_resource(&fixture("system-resource.txt")).unwrap();
    assert_eq!(r.version.to_string(), "7.21.1");
    assert_eq!(r.board_name.as_deref(), Some("RDS2216"));
    assert!(r.version >= routeros::MINIMUM_VERSION);
}

#[test]
fn subvolumes_with_the_drivers_snapshots_among_others() {
    use routeros::subvolume::{Snapshot, Subvolume, parse_subvolume_print};
    let out = parse_subvolume_print(&fixture("subvolume-list.txt")).unwrap();
    assert!(out.messages.is_empty(), "{:?}", out.messages);
    let subvolumes: Vec<Subvolume> = out
        .records
        .iter()
        .map(|r| Subvolume::from_record(r).unwrap())
        .collect();
    assert_eq!(subvolumes.len(), 5);
    let by_hand = &subvolumes[0];
    assert_eq!(
        (by_hand.name.as_str(), by_hand.snapshot, by_hand.read_only),
        ("Documents", false, false)
    );
    assert_eq!(
        by_hand.creation_time.unwrap().unix_seconds(),
        1_737_537_302,
        "jan/22/2025 09:15:02"
    );
    assert_eq!(subvolumes[4].parent.as_deref(), Some("Documents"));
    assert!(subvolumes[4].deleting);

    let snapshots: Vec<Snapshot> = subvolumes.into_iter().filter_map(Snapshot::of).collect();
    assert_eq!(
        snapshots.len(),
        2,
        "a volume and others' subvolumes are not snapshots"
    );
    let live = &snapshots[0];
    assert_eq!(live.name.id.as_str(), "snap-5c1f0e3b9a7d4c21b8e6f0a2d4c6");
    assert_eq!(
        live.name.source.as_str(),
        "pvc-0b0e8b8e3c434c2f9d2e53f0d3b1"
    );
    assert_eq!(live.name.size, 1 << 30);
    assert_eq!(
        live.subvolume.parent.as_deref(),
        Some("pvc-0b0e8b8e3c434c2f9d2e53f0d3b1")
    );
    assert!(live.ready_to_use());
    assert_eq!(
        live.subvolume.creation_time.unwrap().unix_seconds(),
        1_763_633_560
    );
    let orphan = &snapshots[1];
    assert_eq!(orphan.name.size, 50 << 30);
    assert_eq!(orphan.subvolume.parent, None, "its source was deleted");
    assert!(orphan.ready_to_use());
}
