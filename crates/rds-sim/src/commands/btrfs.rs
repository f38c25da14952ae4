//! `/disk/btrfs/subvolume`: `add` (a subvolume, or a snapshot of one with
//! `parent=`), `remove`, and the records `print`, `find` and `get` read.
//!
//! Each maps to a real `btrfs subvolume` operation on the pool's mounted
//! filesystem ([`crate::btrfs`]); the records are read back from btrfs, so
//! what is printed is what the filesystem holds. Checks run before anything
//! is touched, in the order of `/disk add`: values, required arguments, the
//! filesystem, the place, then uniqueness.
//!
//! Behaviour not known from a real RDS follows RouterOS's manual where it
//! says something, the simulator's [`crate::Behaviour`] switches where it is
//! decisive, and Linux's btrfs otherwise; each *assumed* error text is on its
//! [`CmdError`] variant.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::args::Args;
use super::{Ctx, Invocation, Outcome, items};
use crate::btrfs;
use crate::config::{SubvolumeInFolder, is_segment};
use crate::error::CmdError;
use crate::menu::Menu;
use crate::records::{Prop, Record, SubvolumeView, subvolume_record};
use crate::value::Value;

/// The records of every btrfs pool's subvolumes, built once between changes.
pub fn records(ctx: &mut Ctx<'_>) -> Result<Arc<Vec<Record>>, CmdError> {
    if let Some(cached) = &ctx.state.subvolume_records {
        return Ok(Arc::clone(cached));
    }
    let records = Arc::new(list(ctx)?);
    ctx.state.subvolume_records = Some(Arc::clone(&records));
    Ok(records)
}

/// Reads every btrfs pool's subvolumes from the filesystems.
fn list(ctx: &mut Ctx<'_>) -> Result<Vec<Record>, CmdError> {
    let mut records = Vec::new();
    for pool in ctx.storage.pools() {
        if !ctx.storage.is_btrfs(&pool.name) {
            continue;
        }
        let listed = btrfs::list(&ctx.storage.pool_root(&pool.name)).map_err(CmdError::Io)?;
        let names: BTreeMap<&str, &str> = listed
            .iter()
            .map(|l| (l.uuid.as_str(), leaf(&l.path)))
            .collect();
        for l in &listed {
            let id = ctx.state.subvolume_id(&pool.name, l.id);
            records.push(subvolume_record(&SubvolumeView {
                id,
                name: leaf(&l.path).to_owned(),
                fullname: l.path.clone(),
                fs: ctx.storage.label(&pool.name).to_owned(),
                top_level: l.top_level,
                // RouterOS shows "" once the source is gone, as btrfs keeps
                // only its UUID.
                parent: l
                    .parent_uuid
                    .as_deref()
                    .and_then(|uuid| names.get(uuid))
                    .map_or_else(String::new, |name| (*name).to_owned()),
                snapshot: l.parent_uuid.is_some(),
                uuid: l.uuid.clone(),
                created: l.created,
                read_only: l.read_only,
            }));
        }
    }
    records.sort_by_key(|r| r.id);
    Ok(records)
}

fn leaf(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// A listed subvolume: its pool, and its path from the pool's top.
fn place(ctx: &Ctx<'_>, record: &Record) -> Option<(String, String)> {
    let text = |name| match record.get(name) {
        Some(Prop::Str(s)) => Some(s.clone()),
        _ => None,
    };
    let pool = ctx.storage.btrfs_pool_by_label(&text("fs")?)?.name.clone();
    Some((pool, text("fullname")?))
}

/// `/disk/btrfs/subvolume add fs=<label> name=<path> [parent=<subvolume>]
/// [read-only=yes]`: a new empty subvolume, or with `parent=` a snapshot of
/// that subvolume, at `<path>` from the top of the filesystem labelled
/// `<label>`.
pub fn add(inv: &Invocation, ctx: &mut Ctx<'_>) -> Result<Outcome, CmdError> {
    let args = Args::new(&inv.named);
    let read_only = args.flag("read-only")?.unwrap_or(false);
    for unsupported in ["copy-from", "mount", "mountpoint"] {
        if args.text(unsupported).is_some() {
            return Err(CmdError::Io(format!(
                "{unsupported} is not simulated in /disk/btrfs/subvolume add"
            )));
        }
    }
    let fs = args.text("fs").ok_or(CmdError::MissingArgument("fs"))?;
    let name = args.text("name").ok_or(CmdError::MissingArgument("name"))?;
    let pool = ctx
        .storage
        .btrfs_pool_by_label(&fs)
        .ok_or(CmdError::NoMatch("fs"))?
        .name
        .clone();
    let name = name.strip_prefix('/').unwrap_or(&name);
    if !name.split('/').all(is_segment) {
        return Err(CmdError::InvalidValue("name"));
    }
    let root = ctx.storage.pool_root(&pool);
    let path = root.join(name);
    let folder = path
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.clone());
    match std::fs::symlink_metadata(&folder) {
        Ok(meta) if meta.is_dir() => {}
        _ => return Err(CmdError::NoSuchDirectory),
    }
    if ctx.system.behaviour.subvolume_in_folder == SubvolumeInFolder::Refuse
        && !btrfs::is_subvolume(&folder)
    {
        return Err(CmdError::ParentNotSubvolume);
    }
    if std::fs::symlink_metadata(&path).is_ok() {
        return Err(CmdError::AlreadyExists);
    }
    let parent = match inv.named.iter().rev().find(|(n, _)| n == "parent") {
        None => None,
        Some((_, item)) => {
            let listed = records(ctx)?;
            let ids = items::resolve(
                item,
                Menu::BtrfsSubvolume,
                &listed,
                ctx.last_print.get(&Menu::BtrfsSubvolume),
            )?;
            let [id] = ids.as_slice() else {
                return Err(CmdError::NoSuchItem);
            };
            let record = listed
                .iter()
                .find(|r| r.id == *id)
                .ok_or(CmdError::NoSuchItem)?;
            let (parent_pool, fullname) = place(ctx, record).ok_or(CmdError::NoSuchItem)?;
            if parent_pool != pool {
                return Err(CmdError::OtherFilesystem);
            }
            Some(root.join(fullname))
        }
    };
    match parent {
        Some(source) => btrfs::snapshot(&source, &path, read_only),
        None if read_only => btrfs::create(&path).and_then(|()| btrfs::set_read_only(&path)),
        None => btrfs::create(&path),
    }
    .map_err(CmdError::Io)?;
    // The new subvolume's id, from a fresh listing.
    let fresh = list(ctx)?;
    let id = fresh
        .iter()
        .find(|r| {
            matches!(r.get("fullname"), Some(Prop::Str(f)) if f == name)
                && place(ctx, r).is_some_and(|(p, _)| p == pool)
        })
        .map(|r| r.id)
        .ok_or_else(|| CmdError::Io(format!("subvolume {name} not listed after adding it")))?;
    Ok(Outcome::value(Value::Id(id)))
}

/// `/disk/btrfs/subvolume remove <items>`: deletes the subvolumes, content
/// and all. All are checked first: one that holds another subvolume, or a
/// file a disk uses, is refused and nothing is removed.
pub fn remove(inv: &Invocation, ctx: &mut Ctx<'_>) -> Result<Outcome, CmdError> {
    let item = inv.item("numbers").cloned().unwrap_or(Value::Nothing);
    let listed = records(ctx)?;
    let ids = items::resolve(
        &item,
        Menu::BtrfsSubvolume,
        &listed,
        ctx.last_print.get(&Menu::BtrfsSubvolume),
    )?;
    let places: Vec<(String, String)> = listed.iter().filter_map(|r| place(ctx, r)).collect();
    let mut doomed = Vec::new();
    for id in &ids {
        let record = listed
            .iter()
            .find(|r| r.id == *id)
            .ok_or(CmdError::NoSuchItem)?;
        let (pool, fullname) = place(ctx, record).ok_or(CmdError::NoSuchItem)?;
        let inside = format!("{fullname}/");
        if places
            .iter()
            .any(|(p, f)| *p == pool && f.starts_with(&inside))
        {
            return Err(CmdError::NestedSubvolume);
        }
        let disk_prefix = format!("/{pool}/{inside}");
        if ctx
            .state
            .saved
            .disks
            .iter()
            .any(|d| d.file_path.starts_with(&disk_prefix))
        {
            return Err(CmdError::SubvolumeInUse);
        }
        doomed.push(ctx.storage.pool_root(&pool).join(fullname));
    }
    for path in doomed {
        btrfs::delete(&path).map_err(CmdError::Io)?;
    }
    Ok(Outcome::value(Value::Nothing))
}
