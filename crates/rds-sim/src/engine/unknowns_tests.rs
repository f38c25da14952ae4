//! The switches for what RouterOS is not known to do
//! ([`crate::Behaviour`]), and the btrfs menu on a simulator without btrfs.
//! The btrfs operations themselves need root and a loop-mounted btrfs:
//! `tests/btrfs.rs`.

use std::fs;

use super::tests::{GIB, Sim};
use super::*;
use crate::config::{Behaviour, ExistingImage};

fn sim_with(existing_image: ExistingImage) -> Sim {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SimConfig::single_pool(dir.path(), "raid10", 100 * GIB);
    config.behaviour = Behaviour {
        existing_image,
        ..Behaviour::default()
    };
    let engine = Engine::open(config).unwrap();
    Sim { dir, engine }
}

/// An 8 KiB image full of 7s.
fn image(s: &Sim) -> std::path::PathBuf {
    let path = s.host("raid10/volumes/a.img");
    fs::write(&path, vec![7u8; 8192]).unwrap();
    path
}

const ADD: &str = "/disk add type=file file-path=/raid10/volumes/a.img slot=a file-size=";

#[test]
fn keep_and_grow_keeps_the_data_and_grows_never_shrinks() {
    let s = sim_with(ExistingImage::KeepAndGrow);
    let path = image(&s);
    s.ok(&format!("{ADD}4096"));
    assert_eq!(
        s.engine.disks()[0].size,
        8192,
        "never smaller than the file"
    );
    assert_eq!(fs::read(&path).unwrap(), vec![7u8; 8192]);
    s.ok("/disk remove a");
    s.ok(&format!("{ADD}16384"));
    assert_eq!(s.engine.disks()[0].size, 16384);
    let data = fs::read(&path).unwrap();
    assert_eq!((data.len(), &data[..8192]), (16384, &[7u8; 8192][..]));
}

#[test]
fn keep_ignores_file_size() {
    let s = sim_with(ExistingImage::Keep);
    let path = image(&s);
    s.ok(&format!("{ADD}16384"));
    assert_eq!(s.engine.disks()[0].size, 8192);
    assert_eq!(fs::read(&path).unwrap(), vec![7u8; 8192]);
}

#[test]
fn refuse_adds_nothing() {
    let s = sim_with(ExistingImage::Refuse);
    let path = image(&s);
    assert_eq!(s.err(&format!("{ADD}8192")), "failure: file already exists");
    assert!(s.engine.disks().is_empty());
    assert_eq!(fs::read(&path).unwrap(), vec![7u8; 8192]);
    // A new file is made as always.
    s.ok("/disk add type=file file-path=/raid10/volumes/b.img slot=b file-size=4096");
}

#[test]
fn replace_loses_the_data() {
    let s = sim_with(ExistingImage::Replace);
    let path = image(&s);
    s.ok(&format!("{ADD}4096"));
    assert_eq!(s.engine.disks()[0].size, 4096);
    assert_eq!(fs::read(&path).unwrap(), vec![0u8; 4096]);
}

#[test]
fn truncate_cuts_the_file_to_file_size() {
    let s = sim_with(ExistingImage::Truncate);
    let path = image(&s);
    s.ok(&format!("{ADD}4096"));
    assert_eq!(s.engine.disks()[0].size, 4096);
    assert_eq!(fs::read(&path).unwrap(), vec![7u8; 4096]);
}

#[test]
fn a_btrfs_pool_must_be_a_mounted_btrfs() {
    let dir = tempfile::tempdir().unwrap();
    let err = Engine::open(SimConfig::single_btrfs_pool(dir.path(), "raid10", GIB)).unwrap_err();
    assert!(
        err.to_string().contains("is configured as btrfs, but")
            && err.to_string().contains("not the top of a mounted btrfs"),
        "{err}"
    );
}

#[test]
fn without_btrfs_the_subvolume_menu_is_empty() {
    let s = super::tests::sim(GIB);
    assert_eq!(
        s.ok("/disk/btrfs/subvolume print detail"),
        "Flags: D - DELETING; S - SNAPSHOT; r - READ-ONLY\r\n"
    );
    assert_eq!(s.ok(":put [:len [/disk/btrfs/subvolume find]]"), "0\r\n");
    assert_eq!(
        s.err("/disk/btrfs/subvolume add fs=raid10 name=x"),
        "input does not match any value of fs"
    );
    assert_eq!(
        s.err("/disk/btrfs/subvolume add name=x"),
        "failure: fs must be set"
    );
    assert!(
        s.run("/disk/btrfs/subvolume set x name=y")
            .output
            .starts_with("bad command name set")
    );
    assert!(
        s.run("/disk/btrfs/subvolume add fs=x name=y comment=z")
            .output
            .starts_with("expected end of command")
    );
}
