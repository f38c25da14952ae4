//! The interpreter: runs a parsed script, statement by statement.
//!
//! Menu commands are handed, with their arguments evaluated, to a
//! [`CommandRunner`] (the engine), which runs each under its own lock. The
//! interpreter itself never holds the lock, so two scripts interleave
//! between commands exactly as on the device.
//!
//! Errors travel as [`Flow`]: a command error or `:error` can be caught by
//! `:do … on-error=`; a dropped connection cannot, it ends the script at
//! once. [`eval`] evaluates expressions and conditions.

mod eval;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use crate::ast::{Block, Command};
use crate::commands::{Invocation, Outcome};
use crate::error::CmdError;
use crate::value::Value;

/// Why a script stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    /// An error; printed unless a `:do … on-error=` catches it.
    Error(CmdError),
    /// A drop fault fired: stop without a reply.
    Drop,
}

impl From<CmdError> for Flow {
    fn from(e: CmdError) -> Self {
        Flow::Error(e)
    }
}

/// Runs menu commands for the interpreter.
pub trait CommandRunner {
    /// Runs one menu command.
    fn run(&mut self, inv: &Invocation) -> Result<Outcome, Flow>;
}

/// How a script ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// Lines printed, without line endings.
    pub lines: Vec<String>,
    /// An uncaught error was printed.
    pub failed: bool,
    /// A drop fault fired.
    pub dropped: bool,
}

/// A running script: variables and printed lines.
pub struct Interp<'r, R: CommandRunner> {
    runner: &'r mut R,
    /// Innermost scope last; the first is the script's own.
    scopes: Vec<HashMap<String, Value>>,
    lines: Vec<String>,
}

impl<'r, R: CommandRunner> Interp<'r, R> {
    /// An interpreter sending menu commands to `runner`.
    pub fn new(runner: &'r mut R) -> Self {
        Interp {
            runner,
            scopes: vec![HashMap::new()],
            lines: Vec::new(),
        }
    }

    /// Runs `script` to its end or its first uncaught error.
    pub fn run(mut self, script: &Block) -> Finished {
        let result = self.statements(script);
        let mut finished = Finished {
            lines: self.lines,
            failed: false,
            dropped: false,
        };
        match result {
            Ok(()) => {}
            Err(Flow::Error(e)) => {
                finished.lines.push(e.to_string());
                finished.failed = true;
            }
            Err(Flow::Drop) => finished.dropped = true,
        }
        finished
    }

    /// Runs statements in the current scope.
    fn statements(&mut self, block: &Block) -> Result<(), Flow> {
        for command in block {
            self.command(command)?;
        }
        Ok(())
    }

    /// Runs `block` in a new scope, with `bind` declared in it.
    fn scoped(&mut self, block: &Block, bind: Option<(&str, Value)>) -> Result<(), Flow> {
        let mut scope = HashMap::new();
        if let Some((name, value)) = bind {
            scope.insert(name.to_string(), value);
        }
        self.scopes.push(scope);
        let result = self.statements(block);
        self.scopes.pop();
        result
    }

    fn lookup(&self, name: &str) -> Result<Value, CmdError> {
        self.scopes
            .iter()
            .rev()
            .find_map(|s| s.get(name))
            .cloned()
            .ok_or_else(|| CmdError::UndefinedVariable(name.to_string()))
    }

    fn assign(&mut self, name: &str, value: Value) -> Result<(), CmdError> {
        let scope = self
            .scopes
            .iter_mut()
            .rev()
            .find(|s| s.contains_key(name))
            .ok_or_else(|| CmdError::UndefinedVariable(name.to_string()))?;
        scope.insert(name.to_string(), value);
        Ok(())
    }

    fn declare(&mut self, name: &str, value: Value, global: bool) {
        let scope = if global {
            self.scopes.first_mut()
        } else {
            self.scopes.last_mut()
        };
        if let Some(scope) = scope {
            scope.insert(name.to_string(), value);
        }
    }

    /// Runs one command and returns its value.
    fn command(&mut self, command: &Command) -> Result<Value, Flow> {
        match command {
            Command::Menu(m) => self.menu(m),
            Command::Local {
                name,
                value,
                global,
            } => {
                let value = self.optional(value.as_ref())?;
                self.declare(name, value, *global);
                Ok(Value::Nothing)
            }
            Command::Set { name, value } => {
                let value = self.optional(value.as_ref())?;
                self.assign(name, value)?;
                Ok(Value::Nothing)
            }
            Command::Put(value) => {
                let text = self.optional(value.as_ref())?.to_text();
                self.lines.push(text);
                Ok(Value::Nothing)
            }
            Command::If {
                cond,
                then,
                otherwise,
            } => {
                if self.eval(cond)?.truth()? {
                    self.scoped(then, None)?;
                } else if let Some(otherwise) = otherwise {
                    self.scoped(otherwise, None)?;
                }
                Ok(Value::Nothing)
            }
            Command::Do { body, on_error } => {
                match (self.scoped(body, None), on_error) {
                    (Err(Flow::Error(_)), Some(handler)) => self.scoped(handler, None)?,
                    (result, _) => result?,
                }
                Ok(Value::Nothing)
            }
            Command::Error(value) => {
                Err(Flow::Error(CmdError::Script(self.eval(value)?.to_text())))
            }
            Command::Foreach { var, list, body } => {
                for item in self.eval(list)?.items() {
                    self.scoped(body, Some((var, item)))?;
                }
                Ok(Value::Nothing)
            }
            Command::Len(value) => Ok(Value::Num(self.eval(value)?.len())),
            Command::Pick { value, start, end } => {
                let value = self.eval(value)?;
                let start = self.number(start)?;
                let end = match end {
                    Some(end) => Some(self.number(end)?),
                    None => None,
                };
                Ok(value.pick(start, end))
            }
            Command::ToStr(value) => Ok(Value::Str(self.eval(value)?.to_text())),
            Command::ToNum(value) => Ok(self.eval(value)?.to_num()),
            Command::TypeOf(value) => Ok(Value::Str(self.eval(value)?.type_name().to_string())),
            Command::Block(block) => {
                self.scoped(block, None)?;
                Ok(Value::Nothing)
            }
            Command::Eval(value) => self.eval(value),
        }
    }

    fn optional(&mut self, value: Option<&crate::ast::Expr>) -> Result<Value, Flow> {
        match value {
            Some(value) => self.eval(value),
            None => Ok(Value::Nothing),
        }
    }

    /// A number argument of `:pick`; anything that is not a number counts
    /// as 0.
    fn number(&mut self, value: &crate::ast::Expr) -> Result<i64, Flow> {
        Ok(match self.eval(value)?.to_num() {
            Value::Num(n) => n,
            _ => 0,
        })
    }
}
