//! [`parse_single_command`]: the strict reading of one command with literal
//! arguments, for property tests that check the client's command builder
//! against an independent parser.
//!
//! "Literal" means a bare word or a quoted string without `$variables`; a
//! substitution, variable, expression or a second statement is an error. The
//! values come back exactly as the device would receive them, escapes
//! decoded.
//!
//! A `where` condition (of `print` or `find`) is returned as the marker
//! `(None, "where")` followed by one pair per comparison, named by the
//! property plus the operator unless it is `=`: `slot="x"` gives
//! `(Some("slot"), "x")`, `slot~"^p"` gives `(Some("slot~"), "^p")`. Only
//! comparisons joined by `and` can be returned that way; `or`, `!` and bare
//! property names are errors.

use super::parse_counted;
use crate::ast::{Arg, CmpOp, Command, Cond, Expr};
use crate::error::ParseError;

/// One command as written: its menu, its verb and its arguments in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCommand {
    /// The absolute menu with slashes: `"/disk"`, `"/system/resource"`.
    pub menu: String,
    /// The command: `"add"`, `"print"`.
    pub verb: String,
    /// `(Some(name), value)` for `name=value`, `(None, value)` for unnamed
    /// values and `print` flags; see the module docs for conditions.
    pub args: Vec<(Option<String>, String)>,
}

/// Parses `text` as exactly one menu command whose argument values are all
/// literals, and returns it with escapes decoded.
pub fn parse_single_command(text: &str) -> Result<ParsedCommand, ParseError> {
    let (block, statements) = parse_counted(text)?;
    if statements != 1 {
        return Err(ParseError::NotSingleLiteral("not exactly one statement"));
    }
    let [Command::Menu(command)] = block.as_slice() else {
        return Err(ParseError::NotSingleLiteral("not a menu command"));
    };
    let mut args = Vec::new();
    for arg in &command.args {
        args.push(match arg {
            Arg::Positional(value) => (None, literal(value)?),
            Arg::Named { name, value } => (Some(name.clone()), literal(value)?),
            Arg::Flag(flag) => (None, flag.clone()),
        });
    }
    if let Some(cond) = &command.cond {
        args.push((None, "where".to_string()));
        flatten(cond, &mut args)?;
    }
    Ok(ParsedCommand {
        menu: command.menu.path().to_string(),
        verb: command.verb.name().to_string(),
        args,
    })
}

fn literal(value: &Expr) -> Result<String, ParseError> {
    match value {
        Expr::Lit { text, .. } => Ok(text.clone()),
        _ => Err(ParseError::NotSingleLiteral("an argument is not a literal")),
    }
}

fn flatten(cond: &Cond, out: &mut Vec<(Option<String>, String)>) -> Result<(), ParseError> {
    match cond {
        Cond::And(a, b) => {
            flatten(a, out)?;
            flatten(b, out)
        }
        Cond::Cmp { prop, op, value } => {
            let name = match op {
                CmpOp::Eq => prop.clone(),
                other => format!("{prop}{}", other.symbol()),
            };
            out.push((Some(name), literal(value)?));
            Ok(())
        }
        _ => Err(ParseError::NotSingleLiteral(
            "the condition is not comparisons joined by and",
        )),
    }
}
