//! Menu commands run against the state, one at a time under the engine's
//! lock.
//!
//! `print`, `find` and `get` work the same way in every menu, on the
//! menu's [`Record`]s; `add`, `set` and `remove` are specific to a menu
//! ([`disk`], [`file`]); `/system resource` has its own module ([`system`]).
//!
//! Commands receive their arguments already evaluated ([`Invocation`]); a
//! command never runs script code, so it can never need the lock it runs
//! under.

mod args;
mod btrfs;
mod disk;
mod file;
mod items;
mod system;

use std::collections::HashMap;
use std::sync::Arc;

pub use system::SystemInfo;

use crate::error::CmdError;
use crate::faults::Faults;
use crate::filter::Filter;
use crate::format::{DISK_FLAGS, SUBVOLUME_FLAGS, Style, print_records};
use crate::menu::{Menu, Verb};
use crate::records::{Record, disk_record, file_record, pool_record};
use crate::state::State;
use crate::state::storage::Storage;
use crate::value::Value;

/// A menu command with its arguments evaluated.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// The menu.
    pub menu: Menu,
    /// The command.
    pub verb: Verb,
    /// Unnamed arguments in order.
    pub positional: Vec<Value>,
    /// `name=value` arguments in order.
    pub named: Vec<(String, Value)>,
    /// `print` flags.
    pub flags: Vec<String>,
    /// The `where` condition.
    pub filter: Option<Filter>,
}

impl Invocation {
    fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// The item argument: the first unnamed value, or `name=` (`numbers`,
    /// `number`).
    fn item(&self, name: &str) -> Option<&Value> {
        self.positional.first().or_else(|| {
            self.named
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v)
        })
    }
}

/// What a command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Its value in a script (`[…]`).
    pub value: Value,
    /// Lines it printed.
    pub lines: Vec<String>,
}

impl Outcome {
    fn value(value: Value) -> Outcome {
        Outcome {
            value,
            lines: Vec::new(),
        }
    }
}

/// Everything a command may use.
pub struct Ctx<'a> {
    /// The state, locked.
    pub state: &'a mut State,
    /// The pools' folders.
    pub storage: &'a Storage,
    /// The fault plan (for the disk-full fault).
    pub faults: &'a Faults,
    /// Fixed facts for `/system resource`.
    pub system: &'a SystemInfo,
    /// Terminal width for `print`.
    pub width: usize,
    /// Ids listed by the session's last `print` in each menu, which print
    /// numbers refer to.
    pub last_print: &'a mut HashMap<Menu, Vec<u64>>,
}

/// Runs one command.
pub fn run(inv: &Invocation, ctx: &mut Ctx<'_>) -> Result<Outcome, CmdError> {
    match (inv.menu, inv.verb) {
        (Menu::SystemResource, verb) => system::run(inv, verb, ctx.system),
        (_, Verb::Print) => print(inv, ctx),
        (_, Verb::Find) => find(inv, ctx),
        (_, Verb::Get) => get(inv, ctx),
        (Menu::Disk, Verb::Add) => disk::add(inv, ctx),
        (Menu::Disk, Verb::Set) => disk::set(inv, ctx),
        (Menu::Disk, Verb::Remove) => disk::remove(inv, ctx),
        (Menu::File, Verb::Remove) => file::remove(inv, ctx),
        (Menu::BtrfsSubvolume, Verb::Add) => btrfs::add(inv, ctx),
        (Menu::BtrfsSubvolume, Verb::Remove) => btrfs::remove(inv, ctx),
        // The parser only builds commands the menu tree has.
        (menu, verb) => Err(CmdError::Io(format!(
            "{} {} is not simulated",
            menu.path(),
            verb.name()
        ))),
    }
}

/// Size, free bytes and label of `pool`, measured once between changes.
fn pool_space(
    ctx: &mut Ctx<'_>,
    pool: &crate::config::PoolConfig,
) -> Result<crate::records::PoolSpace, CmdError> {
    if let Some(space) = ctx.state.pool_space.get(&pool.name) {
        return Ok(space.clone());
    }
    let space = ctx.storage.space(pool)?;
    ctx.state
        .pool_space
        .insert(pool.name.clone(), space.clone());
    Ok(space)
}

/// Free bytes in `pool`, measured once between changes.
fn pool_free(ctx: &mut Ctx<'_>, pool: &crate::config::PoolConfig) -> Result<u64, CmdError> {
    pool_space(ctx, pool).map(|space| space.free)
}

/// The records of `menu` in listing order (by id).
fn records(menu: Menu, ctx: &mut Ctx<'_>) -> Result<Arc<Vec<Record>>, CmdError> {
    match menu {
        Menu::Disk => {
            if let Some(cached) = &ctx.state.disk_records {
                return Ok(Arc::clone(cached));
            }
            let mut records = Vec::new();
            for pool in ctx.storage.pools() {
                let space = pool_space(ctx, pool)?;
                if let Some(meta) = ctx.state.saved.pools.get(&pool.name) {
                    records.push(pool_record(pool, meta, &space));
                }
            }
            records.extend(ctx.state.saved.disks.iter().map(disk_record));
            records.sort_by_key(|r| r.id);
            let records = Arc::new(records);
            ctx.state.disk_records = Some(Arc::clone(&records));
            Ok(records)
        }
        Menu::File => {
            let entries = ctx.storage.entries()?;
            ctx.state
                .sync_file_ids(entries.iter().map(|e| e.name.as_str()));
            let mut records: Vec<Record> = entries
                .iter()
                .filter_map(|e| {
                    ctx.state
                        .file_ids
                        .get(&e.name)
                        .map(|id| file_record(*id, e))
                })
                .collect();
            records.sort_by_key(|r| r.id);
            Ok(Arc::new(records))
        }
        Menu::BtrfsSubvolume => btrfs::records(ctx),
        Menu::SystemResource => Ok(Arc::new(vec![ctx.system.record()])),
        Menu::Root | Menu::System | Menu::Btrfs => Ok(Arc::new(Vec::new())),
    }
}

/// The records of `inv.menu` that satisfy its condition.
fn matching(inv: &Invocation, ctx: &mut Ctx<'_>) -> Result<Vec<Record>, CmdError> {
    // `/file find where name="…"` looks one file up instead of walking every
    // pool: the client does this in each create and delete.
    // (Names without a slash are pool mount points, found by the walk.)
    if inv.menu == Menu::File
        && let Some(filter) = &inv.filter
        && let Some(name) = filter.required_text("name")
        && name.contains('/')
    {
        let Some(entry) = ctx.storage.entry(name)? else {
            return Ok(Vec::new());
        };
        let record = file_record(ctx.state.file_id(&entry.name), &entry);
        return Ok(if filter.matches(&record)? {
            vec![record]
        } else {
            Vec::new()
        });
    }
    let mut out = Vec::new();
    for record in records(inv.menu, ctx)?.iter() {
        let keep = match &inv.filter {
            Some(filter) => filter.matches(record)?,
            None => true,
        };
        if keep {
            out.push(record.clone());
        }
    }
    Ok(out)
}

/// `find`: the ids of the matching records.
fn find(inv: &Invocation, ctx: &mut Ctx<'_>) -> Result<Outcome, CmdError> {
    let ids = matching(inv, ctx)?
        .iter()
        .map(|r| Value::Id(r.id))
        .collect();
    Ok(Outcome::value(Value::List(ids)))
}

/// `print`: lists the matching records and remembers their numbers.
fn print(inv: &Invocation, ctx: &mut Ctx<'_>) -> Result<Outcome, CmdError> {
    let records = matching(inv, ctx)?;
    ctx.last_print
        .insert(inv.menu, records.iter().map(|r| r.id).collect());
    if inv.has_flag("as-value") {
        return Ok(Outcome::value(Value::List(
            records.iter().map(Record::to_map).collect(),
        )));
    }
    if inv.has_flag("count-only") {
        let count = i64::try_from(records.len()).unwrap_or(i64::MAX);
        return Ok(Outcome {
            value: Value::Num(count),
            lines: vec![count.to_string()],
        });
    }
    let style = if inv.has_flag("terse") {
        Style::Terse
    } else {
        Style::Detail
    };
    let columns = match inv.menu {
        Menu::Disk => DISK_FLAGS,
        Menu::BtrfsSubvolume => SUBVOLUME_FLAGS,
        _ => &[],
    };
    Ok(Outcome {
        value: Value::Nothing,
        lines: print_records(&records, columns, style, ctx.width),
    })
}

/// `get`: one property of one item, or all of them as a map.
fn get(inv: &Invocation, ctx: &mut Ctx<'_>) -> Result<Outcome, CmdError> {
    let item = inv.item("number").cloned().unwrap_or(Value::Nothing);
    let records = records(inv.menu, ctx)?;
    let ids = items::resolve(&item, inv.menu, &records, ctx.last_print.get(&inv.menu))?;
    let id = match ids.as_slice() {
        [] => return Err(CmdError::NoSuchItem),
        [id] => *id,
        _ => return Err(CmdError::NotOneItem),
    };
    let record = records
        .iter()
        .find(|r| r.id == id)
        .ok_or(CmdError::NoSuchItem)?;
    let name = inv.positional.get(1).or_else(|| {
        inv.named
            .iter()
            .rev()
            .find(|(n, _)| n == "value-name")
            .map(|(_, v)| v)
    });
    match name {
        None => Ok(Outcome::value(record.to_map())),
        Some(name) => property(record, inv.menu, &name.to_text()).map(Outcome::value),
    }
}

/// The value of property `name` of `record`: nothing when the menu knows
/// the property but this record lacks it (a pool's `file-path`).
fn property(record: &Record, menu: Menu, name: &str) -> Result<Value, CmdError> {
    match record.get(name) {
        Some(prop) => Ok(prop.to_value()),
        None if menu.has_property(name) => Ok(Value::Nothing),
        None => Err(CmdError::NoMatch("value-name")),
    }
}
