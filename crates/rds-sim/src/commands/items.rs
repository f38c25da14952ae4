//! Resolving the item argument of `set`, `remove` and `get` to ids.
//!
//! An item may be given as internal ids (a `find` result, `*1A`), as print
//! numbers (`0`, or `0,2`), or by name: a disk's slot, a file's name. Print
//! numbers refer to the session's last `print` in the menu, as on the
//! console, or to the full listing when there was none. Every item must
//! exist; an empty list resolves to nothing (and the command does nothing).

use crate::error::CmdError;
use crate::menu::Menu;
use crate::records::{Prop, Record};
use crate::value::{Value, parse_id, parse_num};

/// The ids `item` names among `records`, in order, without repeats.
pub fn resolve(
    item: &Value,
    menu: Menu,
    records: &[Record],
    last_print: Option<&Vec<u64>>,
) -> Result<Vec<u64>, CmdError> {
    let numbering: Vec<u64> = match last_print {
        Some(ids) => ids.clone(),
        None => records.iter().map(|r| r.id).collect(),
    };
    let exists = |id: u64| records.iter().any(|r| r.id == id);
    let by_index = |n: i64| {
        usize::try_from(n)
            .ok()
            .and_then(|i| numbering.get(i).copied())
            .filter(|id| exists(*id))
            .ok_or(CmdError::NoSuchItem)
    };
    let name_key = match menu {
        Menu::Disk => "slot",
        _ => "name",
    };
    let by_name = |name: &str| {
        records
            .iter()
            .find(|r| matches!(r.get(name_key), Some(Prop::Str(s)) if s == name))
            .map(|r| r.id)
            .ok_or(CmdError::NoSuchItem)
    };
    let mut ids = Vec::new();
    for value in item.items() {
        match value {
            Value::Id(id) if exists(id) => ids.push(id),
            Value::Num(n) => ids.push(by_index(n)?),
            Value::Str(text) => {
                // A whole name first: slots and file names may hold commas.
                if let Ok(id) = by_name(&text) {
                    ids.push(id);
                    continue;
                }
                for part in text.split(',') {
                    let id = match (parse_id(part), parse_num(part)) {
                        (Some(id), _) if exists(id) => id,
                        (Some(_), _) => return Err(CmdError::NoSuchItem),
                        (None, Some(n)) => by_index(n)?,
                        (None, None) => by_name(part)?,
                    };
                    ids.push(id);
                }
            }
            _ => return Err(CmdError::NoSuchItem),
        }
    }
    let mut unique = Vec::with_capacity(ids.len());
    for id in ids {
        if !unique.contains(&id) {
            unique.push(id);
        }
    }
    Ok(unique)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::disk_record;
    use crate::state::Disk;

    fn records() -> Vec<Record> {
        ["a", "b", "c"]
            .iter()
            .enumerate()
            .map(|(i, slot)| {
                disk_record(&Disk::new(
                    i as u64 + 10,
                    slot.to_string(),
                    format!("/p/{slot}"),
                    1,
                ))
            })
            .collect()
    }

    fn ids(item: Value, last: Option<&Vec<u64>>) -> Result<Vec<u64>, CmdError> {
        resolve(&item, Menu::Disk, &records(), last)
    }

    #[test]
    fn ids_numbers_and_names() {
        assert_eq!(
            ids(Value::List(vec![Value::Id(11), Value::Id(10)]), None),
            Ok(vec![11, 10])
        );
        assert_eq!(ids(Value::Str("*C".into()), None), Ok(vec![12]));
        assert_eq!(ids(Value::Num(1), None), Ok(vec![11]));
        assert_eq!(ids(Value::Str("0,2".into()), None), Ok(vec![10, 12]));
        assert_eq!(ids(Value::Str("b".into()), None), Ok(vec![11]));
        assert_eq!(ids(Value::List(vec![]), None), Ok(vec![]));
        assert_eq!(ids(Value::Nothing, None), Ok(vec![]));
        assert_eq!(
            ids(Value::List(vec![Value::Id(10), Value::Id(10)]), None),
            Ok(vec![10])
        );
    }

    #[test]
    fn numbers_follow_the_last_print() {
        let last = vec![12, 10];
        assert_eq!(ids(Value::Num(0), Some(&last)), Ok(vec![12]));
        assert_eq!(ids(Value::Num(2), Some(&last)), Err(CmdError::NoSuchItem));
    }

    #[test]
    fn missing_items_are_errors() {
        assert_eq!(ids(Value::Id(99), None), Err(CmdError::NoSuchItem));
        assert_eq!(
            ids(Value::Str("*99".into()), None),
            Err(CmdError::NoSuchItem)
        );
        assert_eq!(
            ids(Value::Str("zz".into()), None),
            Err(CmdError::NoSuchItem)
        );
        assert_eq!(ids(Value::Num(7), None), Err(CmdError::NoSuchItem));
        assert_eq!(ids(Value::Bool(true), None), Err(CmdError::NoSuchItem));
    }
}
