//! `/disk add`, `set` and `remove`.
//!
//! Checks run in the order RouterOS would meet them: values are decoded
//! first (so a bad value fails before anything else), then required
//! arguments, then uniqueness of the slot, then the image path, then
//! space. Only then is anything touched on disk. Slot uniqueness is checked
//! before the path so that two racing creates of one volume see
//! `failure: already have such entry`, the error the client converges on.

use super::args::{Args, DiskSettings};
use super::{Ctx, Invocation, Outcome, items, records};
use crate::config::ExistingImage;
use crate::error::CmdError;
use crate::state::Disk;
use crate::state::storage::ImagePath;
use crate::value::Value;

/// `/disk add type=file file-path=… file-size=… slot=… …`: registers a file
/// disk, creating its sparse image. An existing file is reused as
/// [`crate::Behaviour::existing_image`] says: by default its data is kept and
/// it grows to a larger `file-size`, as RouterOS is assumed to do. Returns
/// the new id.
pub fn add(inv: &Invocation, ctx: &mut Ctx<'_>) -> Result<Outcome, CmdError> {
    let args = Args::new(&inv.named);
    let settings = DiskSettings::decode(&args, ctx.system.max_slot_len)?;
    match args.text("type").as_deref() {
        None => return Err(CmdError::MissingArgument("type")),
        Some("file") => {}
        // Other disk types exist on the device but are not simulated.
        Some(_) => return Err(CmdError::NoMatch("type")),
    }
    let slot = settings
        .slot
        .clone()
        .ok_or(CmdError::MissingArgument("slot"))?;
    let file_path = args
        .text("file-path")
        .ok_or(CmdError::MissingArgument("file-path"))?;
    if ctx.state.slot_taken(&slot, None) {
        return Err(CmdError::AlreadyExists);
    }
    let image = ctx.storage.resolve_image(&file_path)?;
    if ctx
        .state
        .saved
        .disks
        .iter()
        .any(|d| d.file_path == image.name)
    {
        return Err(CmdError::FileInUseByDisk);
    }
    let existing = ctx.storage.existing_len(&image)?;
    let behaviour = ctx.system.behaviour.existing_image;
    let size = match (settings.file_size, existing) {
        (Some(size), None) => size,
        (None, None) => return Err(CmdError::MissingArgument("file-size")),
        (requested, Some(len)) => match behaviour {
            ExistingImage::KeepAndGrow => requested.map_or(len, |size| size.max(len)),
            ExistingImage::Keep => len,
            ExistingImage::Refuse => return Err(CmdError::FileExists),
            ExistingImage::Replace | ExistingImage::Truncate => requested.unwrap_or(len),
        },
    };
    reserve(ctx, &image, size.saturating_sub(existing.unwrap_or(0)))?;
    match (existing, behaviour) {
        (Some(_), ExistingImage::Replace) => ctx.storage.replace(&image, size)?,
        (Some(_), ExistingImage::Truncate) => ctx.storage.set_len(&image, size)?,
        _ => ctx.storage.ensure_size(&image, size)?,
    }
    let id = ctx.state.next_disk_id();
    let mut disk = Disk::new(id, slot, image.name, size);
    settings.apply(&mut disk);
    ctx.state.saved.disks.push(disk);
    Ok(Outcome::value(Value::Id(id)))
}

/// Fails unless `pool` has `extra` more bytes free (and the disk-full fault
/// is off, when anything is to be taken).
fn reserve(ctx: &mut Ctx<'_>, image: &ImagePath, extra: u64) -> Result<(), CmdError> {
    if ctx.faults.disk_full() {
        return Err(CmdError::NotEnoughSpace);
    }
    let pool = ctx
        .storage
        .pool(&image.pool)
        .ok_or(CmdError::NotOnPool)?
        .clone();
    if extra > super::pool_free(ctx, &pool)? {
        return Err(CmdError::NotEnoughSpace);
    }
    Ok(())
}

/// `/disk set <items> …`. An empty item list changes nothing. Pools only
/// take a comment.
pub fn set(inv: &Invocation, ctx: &mut Ctx<'_>) -> Result<Outcome, CmdError> {
    let args = Args::new(&inv.named);
    let settings = DiskSettings::decode(&args, ctx.system.max_slot_len)?;
    let ids = resolve(inv, ctx)?;
    for id in ids {
        if ctx.state.pool_by_id(id).is_some() {
            set_pool(ctx, id, &args, &settings)?;
            continue;
        }
        if let Some(slot) = &settings.slot
            && ctx.state.slot_taken(slot, Some(id))
        {
            return Err(CmdError::AlreadyExists);
        }
        let disk = ctx.state.disk_mut(id).ok_or(CmdError::NoSuchItem)?.clone();
        if let Some(size) = settings.file_size {
            grow(ctx, &disk, size)?;
        }
        let disk = ctx.state.disk_mut(id).ok_or(CmdError::NoSuchItem)?;
        if let Some(slot) = &settings.slot {
            disk.slot = slot.clone();
        }
        if let Some(size) = settings.file_size {
            disk.file_size = size;
        }
        settings.apply(disk);
    }
    Ok(Outcome::value(Value::Nothing))
}

fn set_pool(
    ctx: &mut Ctx<'_>,
    id: u64,
    args: &Args<'_>,
    settings: &DiskSettings,
) -> Result<(), CmdError> {
    if args.names().any(|n| n != "comment" && n != "numbers") {
        return Err(CmdError::PoolChange);
    }
    if let Some(comment) = settings.comment()
        && let Some(meta) = ctx.state.saved.pools.values_mut().find(|m| m.id == id)
    {
        meta.comment = comment;
    }
    Ok(())
}

/// Grows `disk`'s image to `size`; the same size is no change, a smaller
/// one an error.
fn grow(ctx: &mut Ctx<'_>, disk: &Disk, size: u64) -> Result<(), CmdError> {
    if size < disk.file_size {
        return Err(CmdError::Shrink);
    }
    if size == disk.file_size {
        return Ok(());
    }
    let image = ctx.storage.resolve_image(&disk.file_path)?;
    let current = ctx.storage.existing_len(&image)?.unwrap_or(0);
    reserve(ctx, &image, size.saturating_sub(current))?;
    ctx.storage.ensure_size(&image, size)
}

/// `/disk remove <items>`: unregisters the disks and leaves their image
/// files, as the device does (which is why the driver removes the file too;
/// see docs/routeros-cli.md).
pub fn remove(inv: &Invocation, ctx: &mut Ctx<'_>) -> Result<Outcome, CmdError> {
    let ids = resolve(inv, ctx)?;
    if ids.iter().any(|id| ctx.state.pool_by_id(*id).is_some()) {
        return Err(CmdError::PoolRemove);
    }
    ctx.state.saved.disks.retain(|d| !ids.contains(&d.id));
    Ok(Outcome::value(Value::Nothing))
}

fn resolve(inv: &Invocation, ctx: &mut Ctx<'_>) -> Result<Vec<u64>, CmdError> {
    let item = inv.item("numbers").cloned().unwrap_or(Value::Nothing);
    let records = records(inv.menu, ctx)?;
    items::resolve(&item, inv.menu, &records, ctx.last_print.get(&inv.menu))
}
