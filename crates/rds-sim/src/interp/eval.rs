//! Evaluating expressions, `where` conditions and menu commands' arguments.
//!
//! Everything a menu command needs is evaluated *before* it is handed to the
//! runner, substitutions included, so that a command never runs script code
//! while it holds the state lock.

use super::{CommandRunner, Flow, Interp};
use crate::ast::{Arg, BinOp, Cond, Expr, MenuCommand};
use crate::commands::Invocation;
use crate::filter::Filter;
use crate::lexer::StrPart;
use crate::value::Value;

impl<R: CommandRunner> Interp<'_, R> {
    /// Evaluates an expression.
    pub(super) fn eval(&mut self, expr: &Expr) -> Result<Value, Flow> {
        Ok(match expr {
            Expr::Lit { text, quoted } => Value::from_literal(text, *quoted),
            Expr::Interp(parts) => {
                let mut text = String::new();
                for part in parts {
                    match part {
                        StrPart::Lit(s) => text.push_str(s),
                        StrPart::Var(name) => text.push_str(&self.lookup(name)?.to_text()),
                    }
                }
                Value::Str(text)
            }
            Expr::Var(name) => self.lookup(name)?,
            Expr::Sub(command) => self.command(command)?,
            // Code as a value only appears as `do=` and friends, which the
            // parser takes apart; anywhere else it has no value.
            Expr::Block(_) => Value::Nothing,
            Expr::Paren(inner) => self.eval(inner)?,
            Expr::Not(inner) => Value::Bool(!self.eval(inner)?.truth()?),
            Expr::Binary(BinOp::And, left, right) => {
                // Short-circuit, so the right side's commands may not run.
                Value::Bool(self.eval(left)?.truth()? && self.eval(right)?.truth()?)
            }
            Expr::Binary(BinOp::Or, left, right) => {
                Value::Bool(self.eval(left)?.truth()? || self.eval(right)?.truth()?)
            }
            Expr::Binary(BinOp::Concat, left, right) => {
                let left = self.eval(left)?.to_text();
                Value::Str(left + &self.eval(right)?.to_text())
            }
            Expr::Binary(BinOp::Cmp(op), left, right) => {
                let left = self.eval(left)?;
                let right = self.eval(right)?;
                Value::Bool(left.compare(*op, &right)?)
            }
        })
    }

    /// Evaluates the values in a condition.
    fn filter(&mut self, cond: &Cond) -> Result<Filter, Flow> {
        Ok(match cond {
            Cond::And(a, b) => Filter::And(Box::new(self.filter(a)?), Box::new(self.filter(b)?)),
            Cond::Or(a, b) => Filter::Or(Box::new(self.filter(a)?), Box::new(self.filter(b)?)),
            Cond::Not(a) => Filter::Not(Box::new(self.filter(a)?)),
            Cond::Truthy(prop) => Filter::Truthy(prop.clone()),
            Cond::Cmp { prop, op, value } => Filter::Cmp {
                prop: prop.clone(),
                op: *op,
                value: self.eval(value)?,
            },
        })
    }

    /// Evaluates a menu command's arguments and runs it.
    pub(super) fn menu(&mut self, command: &MenuCommand) -> Result<Value, Flow> {
        let mut inv = Invocation {
            menu: command.menu,
            verb: command.verb,
            positional: Vec::new(),
            named: Vec::new(),
            flags: Vec::new(),
            filter: None,
        };
        for arg in &command.args {
            match arg {
                Arg::Positional(value) => {
                    let value = self.eval(value)?;
                    inv.positional.push(value);
                }
                Arg::Named { name, value } => {
                    let value = self.eval(value)?;
                    inv.named.push((name.clone(), value));
                }
                Arg::Flag(flag) => inv.flags.push(flag.clone()),
            }
        }
        if let Some(cond) = &command.cond {
            inv.filter = Some(self.filter(cond)?);
        }
        let outcome = self.runner.run(&inv)?;
        self.lines.extend(outcome.lines);
        Ok(outcome.value)
    }
}
