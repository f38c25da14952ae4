//! `where` conditions with their values already evaluated, applied to
//! records.
//!
//! A comparison follows the property's type: numbers compare numerically
//! (and accept sizes with units, `size>=10G`), booleans accept
//! `yes`/`no`/`true`/`false`, everything else compares as text. A property
//! the record does not have (e.g. `mount-point` on a file disk) equals
//! nothing, so `=` is false and `!=` true.

use std::cmp::Ordering;

use crate::ast::CmpOp;
use crate::error::CmdError;
use crate::records::{Prop, Record};
use crate::size::parse_size;
use crate::value::{Value, parse_id};

/// A condition ready to test records with.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Both hold.
    And(Box<Filter>, Box<Filter>),
    /// Either holds.
    Or(Box<Filter>, Box<Filter>),
    /// Does not hold.
    Not(Box<Filter>),
    /// `prop OP value`.
    Cmp {
        /// Property name.
        prop: String,
        /// Operator.
        op: CmpOp,
        /// Evaluated right-hand side.
        value: Value,
    },
    /// The property is `yes`.
    Truthy(String),
}

impl Filter {
    /// The value `prop` must equal for the whole condition to hold, when the
    /// condition requires `prop="value"` (alone or within `and`). Lets a menu
    /// look one item up instead of listing them all.
    pub fn required_text(&self, prop: &str) -> Option<&str> {
        match self {
            Filter::And(a, b) => a.required_text(prop).or_else(|| b.required_text(prop)),
            Filter::Cmp {
                prop: p,
                op: CmpOp::Eq,
                value: Value::Str(v),
            } if p == prop => Some(v),
            _ => None,
        }
    }

    /// Whether `record` satisfies the condition.
    pub fn matches(&self, record: &Record) -> Result<bool, CmdError> {
        Ok(match self {
            Filter::And(a, b) => a.matches(record)? && b.matches(record)?,
            Filter::Or(a, b) => a.matches(record)? || b.matches(record)?,
            Filter::Not(a) => !a.matches(record)?,
            Filter::Truthy(prop) => record.get(prop) == Some(&Prop::Bool(true)),
            Filter::Cmp { prop, op, value } => match record.get(prop) {
                None => *op == CmpOp::Ne,
                Some(field) => compare(field, *op, value)?,
            },
        })
    }
}

/// Reads a condition value as a boolean.
fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Str(s) => match s.as_str() {
            "yes" | "true" => Some(true),
            "no" | "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Reads a condition value as a number of bytes or a count.
fn as_number(value: &Value) -> Option<u64> {
    match value {
        Value::Num(n) => u64::try_from(*n).ok(),
        Value::Str(s) => parse_size(s),
        _ => None,
    }
}

fn compare(field: &Prop, op: CmpOp, value: &Value) -> Result<bool, CmdError> {
    if op == CmpOp::Match {
        return Ok(crate::value::regex(&value.to_text())?.is_match(&field.text()));
    }
    let ordering = match field {
        Prop::Bool(b) => as_bool(value).map(|v| b.cmp(&v)).filter(|o| o.is_eq()),
        Prop::Id(id) => match value {
            Value::Id(v) => Some(id.cmp(v)),
            Value::Str(s) => parse_id(s).map(|v| id.cmp(&v)),
            _ => None,
        },
        other => match other.number() {
            Some(n) => as_number(value).map(|v| n.cmp(&v)),
            None => Some(other.text().as_str().cmp(value.to_text().as_str())),
        },
    };
    Ok(match op {
        CmpOp::Eq => ordering == Some(Ordering::Equal),
        CmpOp::Ne => ordering != Some(Ordering::Equal),
        CmpOp::Lt => ordering == Some(Ordering::Less),
        CmpOp::Gt => ordering == Some(Ordering::Greater),
        CmpOp::Le => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
        CmpOp::Ge => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
        CmpOp::Match => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::disk_record;
    use crate::state::Disk;

    fn record() -> Record {
        let mut d = Disk::new(7, "pvc-1".into(), "/raid10/v/pvc-1.img".into(), 10 << 30);
        d.nvme_tcp_export = true;
        disk_record(&d)
    }

    fn cmp(prop: &str, op: CmpOp, value: Value) -> Filter {
        Filter::Cmp {
            prop: prop.into(),
            op,
            value,
        }
    }

    fn test(f: Filter) -> bool {
        f.matches(&record()).unwrap()
    }

    fn str(s: &str) -> Value {
        Value::Str(s.into())
    }

    #[test]
    fn strings_and_regex() {
        assert!(test(cmp("slot", CmpOp::Eq, str("pvc-1"))));
        assert!(!test(cmp("slot", CmpOp::Eq, str("pvc-"))));
        assert!(test(cmp("slot", CmpOp::Ne, str("pvc-2"))));
        assert!(test(cmp("slot", CmpOp::Match, str("^pvc-"))));
        assert!(!test(cmp("slot", CmpOp::Match, str("^other"))));
        assert!(test(cmp("slot", CmpOp::Lt, str("pvc-2"))));
        assert!(test(cmp(
            "file-path",
            CmpOp::Eq,
            str("/raid10/v/pvc-1.img")
        )));
        assert!(!test(cmp("slot", CmpOp::Eq, Value::Num(5))));
    }

    #[test]
    fn numbers_compare_numerically_with_units() {
        assert!(test(cmp("size", CmpOp::Eq, Value::Num(10 << 30))));
        assert!(test(cmp("size", CmpOp::Ge, str("10G"))));
        assert!(test(cmp("size", CmpOp::Gt, Value::Num(9))));
        assert!(!test(cmp("size", CmpOp::Lt, Value::Num(9))));
        assert!(test(cmp("size", CmpOp::Le, str("10737418240"))));
        assert!(!test(cmp("size", CmpOp::Eq, str("big"))));
        assert!(test(cmp("size", CmpOp::Ne, str("big"))));
        assert!(test(cmp(
            "nvme-tcp-server-port",
            CmpOp::Eq,
            Value::Num(4420)
        )));
    }

    #[test]
    fn booleans_ids_and_missing_properties() {
        assert!(test(cmp("nvme-tcp-export", CmpOp::Eq, str("yes"))));
        assert!(test(cmp("nvme-tcp-export", CmpOp::Eq, Value::Bool(true))));
        assert!(test(cmp("mount-filesystem", CmpOp::Ne, str("no"))));
        assert!(test(Filter::Truthy("nvme-tcp-export".into())));
        assert!(!test(Filter::Truthy("disabled".into())));
        assert!(test(cmp(".id", CmpOp::Eq, Value::Id(7))));
        assert!(test(cmp(".id", CmpOp::Eq, str("*7"))));
        assert!(!test(cmp("mount-point", CmpOp::Eq, str("raid10"))));
        assert!(test(cmp("mount-point", CmpOp::Ne, str("raid10"))));
    }

    #[test]
    fn logic() {
        let yes = || cmp("slot", CmpOp::Eq, str("pvc-1"));
        let no = || cmp("slot", CmpOp::Eq, str("x"));
        assert!(test(Filter::Or(Box::new(no()), Box::new(yes()))));
        assert!(!test(Filter::And(Box::new(no()), Box::new(yes()))));
        assert!(test(Filter::Not(Box::new(no()))));
        let bad = cmp("slot", CmpOp::Match, str("("));
        assert_eq!(bad.matches(&record()), Err(CmdError::BadRegex));
    }
}
