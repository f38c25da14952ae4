//! Unit tests of the probe: `blkid` answers from `testdata/blkid`, and the
//! checks that need no root (paths that are not block devices).

use std::path::Path;

use super::*;

/// Reads `testdata/blkid/<fixture>` (or nothing, for `""`) as `blkid`'s
/// standard output with exit status `exit`, and compares the answer with
/// `expected`; an expected error is given as a part of its message.
fn check(exit: Option<i32>, fixture: &str, expected: Result<Probe, &str>) {
    let stdout = if fixture.is_empty() {
        String::new()
    } else {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/blkid")
            .join(fixture);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let actual = interpret(exit, &stdout, "");
    match (&actual, &expected) {
        (Ok(probe), Ok(want)) => assert_eq!(probe, want, "{fixture}"),
        (Err(reason), Err(part)) => assert!(reason.contains(part), "{reason:?} lacks {part:?}"),
        _ => panic!("{fixture} with exit {exit:?}: got {actual:?}, expected {expected:?}"),
    }
}

fn filesystem(fs_type: &str) -> Result<Probe, &'static str> {
    Ok(Probe::Filesystem(fs_type.to_owned()))
}

fn other(what: &str) -> Result<Probe, &'static str> {
    Ok(Probe::Other(what.to_owned()))
}

#[test]
fn filesystems_are_recognised() {
    check(Some(0), "ext4.txt", filesystem("ext4"));
    check(Some(0), "ext4-label.txt", filesystem("ext4"));
    check(Some(0), "xfs.txt", filesystem("xfs"));
}

#[test]
fn partition_tables_and_other_signatures_are_not_filesystems() {
    check(Some(0), "gpt.txt", other("PTTYPE=gpt"));
    check(Some(0), "dos.txt", other("PTTYPE=dos"));
    check(Some(0), "lvm.txt", other("TYPE=LVM2_member USAGE=raid"));
    check(Some(0), "swap.txt", other("TYPE=swap USAGE=other"));
    check(
        Some(0),
        "magic-only.txt",
        other("a signature with SBMAGIC, SBMAGIC_OFFSET"),
    );
}

#[test]
fn luks_headers_are_recognised_with_their_label() {
    check(Some(0), "luks.txt", Ok(Probe::Luks { label: None }));
    check(
        Some(0),
        "luks-label.txt",
        Ok(Probe::Luks {
            label: Some("rds-csi:new".into()),
        }),
    );
}

#[test]
fn only_exit_2_with_no_output_means_no_signature() {
    check(Some(2), "", Ok(Probe::Empty));
    check(
        Some(2),
        "ext4.txt",
        Err("found nothing but printed something"),
    );
    assert!(interpret(Some(2), "", "blkid: cannot open\n").is_err());
    assert!(interpret(Some(2), "\n", " \n") == Ok(Probe::Empty));
}

#[test]
fn every_other_exit_is_an_error_not_empty() {
    check(Some(4), "", Err("exit status 4"));
    check(Some(8), "", Err("more than one signature"));
    check(Some(1), "", Err("unexpected status 1"));
    check(Some(3), "", Err("unexpected status 3"));
    check(None, "", Err("killed by a signal"));
}

#[test]
fn success_without_a_signature_is_an_error() {
    check(Some(0), "", Err("reported nothing"));
    check(Some(0), "devname-only.txt", Err("reported nothing"));
    check(Some(0), "garbage.txt", Err("not KEY=value: \"not a pair\""));
}

#[test]
fn errors_keep_blkid_output() {
    let reason = interpret(
        Some(4),
        "",
        "blkid: error: /dev/nvme1n1: Input/output error\n",
    );
    assert_eq!(
        reason,
        Err(
            "blkid failed (exit status 4, usage or I/O error): error output \
             \"blkid: error: /dev/nvme1n1: Input/output error\""
                .to_owned()
        )
    );
}

#[test]
fn escaped_values_are_unescaped() -> Result<(), String> {
    let fields = parse_export("LABEL=my\\ disk\\$\nTYPE=ext4\n")?;
    assert_eq!(fields[0], ("LABEL".to_owned(), "my disk$".to_owned()));
    Ok(())
}

#[test]
fn probe_results_read_well_in_messages() {
    assert_eq!(
        Probe::Filesystem("xfs".into()).to_string(),
        "a filesystem of type xfs"
    );
    assert_eq!(
        Probe::Other("PTTYPE=gpt".into()).to_string(),
        "something other than a filesystem (PTTYPE=gpt)"
    );
}

#[tokio::test]
async fn a_missing_device_is_an_error_not_empty() {
    // blkid itself answers "nothing found" (exit 2, no output) here.
    let result = probe(
        Path::new("/dev/rds-csi-no-such-device"),
        Duration::from_secs(30),
    )
    .await;
    let Err(FsError::Io {
        op: "opening",
        source,
        ..
    }) = result
    else {
        panic!("expected an error opening the device, got {result:?}");
    };
    assert_eq!(source.kind(), io::ErrorKind::NotFound);
}

#[tokio::test]
async fn a_regular_file_is_not_a_block_device() -> Result<(), io::Error> {
    let file = tempfile::NamedTempFile::new()?;
    let result = probe(file.path(), Duration::from_secs(30)).await;
    assert!(
        matches!(result, Err(FsError::NotBlockDevice { .. })),
        "{result:?}"
    );
    Ok(())
}

#[test]
fn zeros_are_checked_at_both_ends() -> Result<(), io::Error> {
    let file = tempfile::tempfile()?;
    let size = 3 * ZERO_CHECK_BYTES;
    file.set_len(size)?;
    assert_eq!(first_non_zero(&file)?, None);

    // A byte in the middle is not looked at; one at either end is.
    file.write_all_at(&[1], size / 2)?;
    assert_eq!(first_non_zero(&file)?, None);
    file.write_all_at(&[1], size - 1)?;
    assert_eq!(first_non_zero(&file)?, Some(size - 1));
    file.write_all_at(&[7], 4096)?;
    assert_eq!(first_non_zero(&file)?, Some(4096));

    // A device smaller than the checked area is read once, whole.
    let small = tempfile::tempfile()?;
    small.set_len(1000)?;
    assert_eq!(first_non_zero(&small)?, None);
    small.write_all_at(&[1], 999)?;
    assert_eq!(first_non_zero(&small)?, Some(999));
    Ok(())
}
