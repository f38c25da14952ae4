//! Run-time values of the script language and their conversions.
//!
//! RouterOS values are typed: a bare `5` is a number, `"5"` a string,
//! `true` a boolean, `*1A` an internal id; `find` returns a list of ids and
//! `print as-value` a list of key/value maps. Equality is typed too (`5` is
//! not `"5"`), which is why the type of a literal is decided once, here.

use std::cmp::Ordering;

use crate::ast::CmpOp;
use crate::error::CmdError;

/// A value in a running script.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Value {
    /// No value (`:local x` without one, a `:put` result).
    #[default]
    Nothing,
    /// A string.
    Str(String),
    /// A number.
    Num(i64),
    /// A boolean.
    Bool(bool),
    /// An internal item id, written `*1A`.
    Id(u64),
    /// An array.
    List(Vec<Value>),
    /// An array with keys, as `print as-value` and `get` without a property
    /// return.
    Map(Vec<(String, Value)>),
}

/// Writes an internal id the RouterOS way: `*` and upper-case hex.
pub fn format_id(id: u64) -> String {
    format!("*{id:X}")
}

/// Reads `*1A` as an internal id.
pub fn parse_id(text: &str) -> Option<u64> {
    let hex = text.strip_prefix('*')?;
    if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Reads a decimal integer with an optional minus sign.
pub fn parse_num(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Compiles a pattern for `~`, with a size limit so that a hostile pattern
/// cannot make the simulator allocate without bound.
pub fn regex(pattern: &str) -> Result<regex::Regex, CmdError> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|_| CmdError::BadRegex)
}

impl Value {
    /// The value of a literal: quoted text is a string; a bare word is a
    /// number, boolean or id when it reads as one, else a string.
    pub fn from_literal(text: &str, quoted: bool) -> Value {
        if quoted {
            return Value::Str(text.to_string());
        }
        if let Some(n) = parse_num(text) {
            return Value::Num(n);
        }
        if let Some(id) = parse_id(text) {
            return Value::Id(id);
        }
        match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::Str(text.to_string()),
        }
    }

    /// The text `:put` and `:tostr` give.
    pub fn to_text(&self) -> String {
        match self {
            Value::Nothing => String::new(),
            Value::Str(s) => s.clone(),
            Value::Num(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Id(id) => format_id(*id),
            Value::List(items) => items
                .iter()
                .map(Value::to_text)
                .collect::<Vec<_>>()
                .join(";"),
            Value::Map(pairs) => pairs
                .iter()
                .map(|(k, v)| format!("{k}={}", v.to_text()))
                .collect::<Vec<_>>()
                .join(";"),
        }
    }

    /// The name `:typeof` gives.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nothing => "nothing",
            Value::Str(_) => "str",
            Value::Num(_) => "num",
            Value::Bool(_) => "bool",
            Value::Id(_) => "id",
            Value::List(_) | Value::Map(_) => "array",
        }
    }

    /// What `:len` gives: elements of an array, characters of anything else.
    pub fn len(&self) -> i64 {
        let n = match self {
            Value::List(items) => items.len(),
            Value::Map(pairs) => pairs.len(),
            Value::Nothing => 0,
            other => other.to_text().chars().count(),
        };
        i64::try_from(n).unwrap_or(i64::MAX)
    }

    /// The items of a list; a single value is a list of one, nothing is
    /// empty. Nested lists are flattened, as `find` results combine.
    pub fn items(&self) -> Vec<Value> {
        match self {
            Value::Nothing => Vec::new(),
            Value::List(items) => items.iter().flat_map(Value::items).collect(),
            other => vec![other.clone()],
        }
    }

    /// The value as a boolean, for conditions.
    pub fn truth(&self) -> Result<bool, CmdError> {
        match self {
            Value::Bool(b) => Ok(*b),
            _ => Err(CmdError::NotBoolean),
        }
    }

    /// `:tonum`: numbers stay, numeric strings convert, the rest is nothing.
    pub fn to_num(&self) -> Value {
        match self {
            Value::Num(n) => Value::Num(*n),
            Value::Str(s) => parse_num(s.trim()).map_or(Value::Nothing, Value::Num),
            Value::Bool(b) => Value::Num(i64::from(*b)),
            _ => Value::Nothing,
        }
    }

    /// `:pick`: characters `start..end` of a string, or elements of a list;
    /// without `end`, the single element at `start`. Bounds are clamped.
    pub fn pick(&self, start: i64, end: Option<i64>) -> Value {
        let clamp = |n: i64, len: usize| usize::try_from(n.max(0)).unwrap_or(usize::MAX).min(len);
        match self {
            Value::List(items) => {
                let from = clamp(start, items.len());
                match end {
                    None => items.get(from).cloned().unwrap_or(Value::Nothing),
                    Some(end) => {
                        let to = clamp(end, items.len()).max(from);
                        Value::List(items[from..to].to_vec())
                    }
                }
            }
            other => {
                let chars: Vec<char> = other.to_text().chars().collect();
                let from = clamp(start, chars.len());
                let to = clamp(end.unwrap_or(start.saturating_add(1)), chars.len()).max(from);
                Value::Str(chars[from..to].iter().collect())
            }
        }
    }

    /// Compares two values with `op`. Values of different types are never
    /// equal and never ordered; `~` matches the left side's text against the
    /// right side's pattern.
    pub fn compare(&self, op: CmpOp, other: &Value) -> Result<bool, CmdError> {
        if op == CmpOp::Match {
            return Ok(regex(&other.to_text())?.is_match(&self.to_text()));
        }
        let ordering = match (self, other) {
            (Value::Num(a), Value::Num(b)) => Some(a.cmp(b)),
            (Value::Str(a), Value::Str(b)) => Some(a.cmp(b)),
            (Value::Id(a), Value::Id(b)) => Some(a.cmp(b)),
            (a, b) if a == b => Some(Ordering::Equal),
            _ => None,
        };
        Ok(match op {
            CmpOp::Eq => self == other,
            CmpOp::Ne => self != other,
            CmpOp::Lt => ordering == Some(Ordering::Less),
            CmpOp::Gt => ordering == Some(Ordering::Greater),
            CmpOp::Le => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
            CmpOp::Ge => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
            CmpOp::Match => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_typed() {
        assert_eq!(Value::from_literal("42", false), Value::Num(42));
        assert_eq!(Value::from_literal("-3", false), Value::Num(-3));
        assert_eq!(Value::from_literal("42", true), Value::Str("42".into()));
        assert_eq!(Value::from_literal("*1A", false), Value::Id(0x1a));
        assert_eq!(Value::from_literal("true", false), Value::Bool(true));
        assert_eq!(Value::from_literal("yes", false), Value::Str("yes".into()));
        assert_eq!(Value::from_literal("10G", false), Value::Str("10G".into()));
    }

    #[test]
    fn text_forms() {
        let list = Value::List(vec![Value::Id(1), Value::Id(0x2b)]);
        assert_eq!(list.to_text(), "*1;*2B");
        let map = Value::Map(vec![
            ("a".into(), Value::Num(1)),
            ("b".into(), Value::Bool(false)),
        ]);
        assert_eq!(map.to_text(), "a=1;b=false");
        assert_eq!(Value::Nothing.to_text(), "");
    }

    #[test]
    fn len_pick_and_items() {
        assert_eq!(Value::List(vec![Value::Id(1); 3]).len(), 3);
        assert_eq!(Value::Str("héllo".into()).len(), 5);
        assert_eq!(Value::Nothing.len(), 0);
        let p = Value::Str("/raid10/x.img".into());
        assert_eq!(p.pick(1, Some(13)), Value::Str("raid10/x.img".into()));
        assert_eq!(p.pick(1, None), Value::Str("r".into()));
        assert_eq!(p.pick(20, Some(30)), Value::Str(String::new()));
        let l = Value::List(vec![Value::Num(1), Value::Num(2), Value::Num(3)]);
        assert_eq!(l.pick(1, None), Value::Num(2));
        assert_eq!(
            l.pick(1, Some(9)),
            Value::List(vec![Value::Num(2), Value::Num(3)])
        );
        let nested = Value::List(vec![Value::List(vec![Value::Id(1)]), Value::Id(2)]);
        assert_eq!(nested.items(), vec![Value::Id(1), Value::Id(2)]);
    }

    #[test]
    fn comparisons_are_typed() {
        let n = |x| Value::Num(x);
        assert!(n(1).compare(CmpOp::Lt, &n(2)).unwrap());
        assert!(n(2).compare(CmpOp::Ge, &n(2)).unwrap());
        assert!(!n(5).compare(CmpOp::Eq, &Value::Str("5".into())).unwrap());
        assert!(!n(5).compare(CmpOp::Lt, &Value::Str("9".into())).unwrap());
        assert!(
            Value::Str("abc".into())
                .compare(CmpOp::Match, &Value::Str("^a".into()))
                .unwrap()
        );
        assert_eq!(
            Value::Str("a".into()).compare(CmpOp::Match, &Value::Str("(".into())),
            Err(CmdError::BadRegex)
        );
        assert_eq!(Value::Num(1).truth(), Err(CmdError::NotBoolean));
        assert_eq!(Value::Str(" 12 ".into()).to_num(), Value::Num(12));
    }
}
