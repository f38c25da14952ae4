//! `/file remove`: deletes files (and empty folders) in the pools.
//!
//! An image still registered as a disk is refused (*assumed*: deleting a
//! live volume's backing file is exactly the bug a test should catch, and
//! RouterOS is not known to allow it). All items are checked before any is
//! deleted, so a refused item leaves the others in place.

use super::{Ctx, Invocation, Outcome, items, records};
use crate::error::CmdError;
use crate::state::storage::EntryKind;
use crate::value::Value;

/// `/file remove <items>`.
pub fn remove(inv: &Invocation, ctx: &mut Ctx<'_>) -> Result<Outcome, CmdError> {
    let item = inv.item("numbers").cloned().unwrap_or(Value::Nothing);
    let listed = records(inv.menu, ctx)?;
    let ids = items::resolve(&item, inv.menu, &listed, ctx.last_print.get(&inv.menu))?;
    if ids.is_empty() {
        return Ok(Outcome::value(Value::Nothing));
    }
    let entries = ctx.storage.entries()?;
    let mut doomed = Vec::new();
    for id in &ids {
        let entry = entries
            .iter()
            .find(|e| ctx.state.file_ids.get(&e.name) == Some(id))
            .ok_or(CmdError::NoSuchItem)?;
        let as_disk_path = format!("/{}", entry.name);
        if entry.kind == EntryKind::File
            && ctx
                .state
                .saved
                .disks
                .iter()
                .any(|d| d.file_path == as_disk_path)
        {
            return Err(CmdError::FileBusy);
        }
        if entry.kind == EntryKind::Disk {
            return Err(CmdError::MountPointRemove);
        }
        doomed.push(entry.clone());
    }
    // Files before folders, deepest first, so a folder removed together with
    // its content is empty by its turn.
    doomed.sort_by_key(|e| std::cmp::Reverse(e.name.len()));
    for entry in &doomed {
        ctx.storage.remove(entry)?;
    }
    Ok(Outcome::value(Value::Nothing))
}
