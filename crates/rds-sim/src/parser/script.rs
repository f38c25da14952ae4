//! The `:`-commands of RouterOS scripting: `:local`, `:global`, `:set`,
//! `:put`, `:if`, `:do`, `:error`, `:foreach`, `:len`, `:pick`, `:tostr`,
//! `:tonum`, `:typeof`.
//!
//! Their arguments are read generically (unnamed values and `name=value`
//! pairs, where values may be `{blocks}`) and then bound to the command's
//! shape, so every command reports leftovers and omissions the same way.

use super::Parser;
use crate::ast::{Block, Command, Expr};
use crate::error::{ParseError, Pos};
use crate::lexer::TokenKind;

/// The arguments of a scripting command, before binding.
struct ScriptArgs {
    /// Where the command word starts, for errors about missing arguments.
    pos: Pos,
    positional: Vec<(Expr, Pos)>,
    named: Vec<(String, Expr, Pos)>,
}

impl ScriptArgs {
    /// Takes the next unnamed argument.
    fn positional(&mut self) -> Option<Expr> {
        if self.positional.is_empty() {
            None
        } else {
            Some(self.positional.remove(0).0)
        }
    }

    fn required(&mut self) -> Result<Expr, ParseError> {
        self.positional()
            .ok_or(ParseError::Syntax { pos: self.pos })
    }

    /// Takes the named argument `name`.
    fn named(&mut self, name: &str) -> Option<Expr> {
        let idx = self.named.iter().position(|(n, _, _)| n == name)?;
        Some(self.named.remove(idx).1)
    }

    /// A `{block}` argument: named when `name` is given, else unnamed.
    fn block(&mut self, name: Option<&str>) -> Result<Option<Block>, ParseError> {
        let value = match name {
            Some(name) => self.named(name),
            None => self.positional(),
        };
        match value {
            None => Ok(None),
            Some(Expr::Block(block)) => Ok(Some(block)),
            Some(_) => Err(ParseError::Syntax { pos: self.pos }),
        }
    }

    /// A variable name written as a bare word.
    fn var_name(&mut self) -> Result<String, ParseError> {
        match self.positional() {
            Some(Expr::Lit {
                text,
                quoted: false,
            }) if !text.is_empty() => Ok(text),
            _ => Err(ParseError::Syntax { pos: self.pos }),
        }
    }

    /// Fails on anything not bound, at the first leftover's position.
    fn finish(self) -> Result<(), ParseError> {
        let first = self
            .positional
            .iter()
            .map(|(_, pos)| *pos)
            .chain(self.named.iter().map(|(_, _, pos)| *pos))
            .min();
        match first {
            Some(pos) => Err(ParseError::ExpectedEndOfCommand { pos }),
            None => Ok(()),
        }
    }
}

impl Parser {
    /// A `:command` with the cursor on its word.
    pub(super) fn script_command(&mut self) -> Result<Command, ParseError> {
        let tok = self.bump();
        let TokenKind::Word(word) = &tok.kind else {
            return Err(ParseError::Syntax { pos: tok.pos });
        };
        let name = word.trim_start_matches(':').to_string();
        let known = [
            "local", "global", "set", "put", "if", "do", "error", "foreach", "len", "pick",
            "tostr", "tonum", "typeof",
        ];
        if !known.contains(&name.as_str()) {
            return Err(ParseError::BadCommandName {
                name,
                pos: Pos {
                    line: tok.pos.line,
                    column: tok.pos.column + 1,
                },
            });
        }
        let mut args = self.script_args(tok.pos)?;
        let command = match name.as_str() {
            // `:global` is kept in the script's outermost scope; globals do
            // not outlive a script in the simulator.
            "local" | "global" | "set" => {
                let var = args.var_name()?;
                let value = args.positional();
                match name.as_str() {
                    "set" => Command::Set { name: var, value },
                    global => Command::Local {
                        name: var,
                        value,
                        global: global == "global",
                    },
                }
            }
            "put" => Command::Put(args.positional()),
            "error" => Command::Error(args.required()?),
            "len" => Command::Len(args.required()?),
            "tostr" => Command::ToStr(args.required()?),
            "tonum" => Command::ToNum(args.required()?),
            "typeof" => Command::TypeOf(args.required()?),
            "pick" => Command::Pick {
                value: args.required()?,
                start: args.required()?,
                end: args.positional(),
            },
            "if" => Command::If {
                cond: args.required()?,
                then: args
                    .block(Some("do"))?
                    .ok_or(ParseError::Syntax { pos: tok.pos })?,
                otherwise: args.block(Some("else"))?,
            },
            "do" => Command::Do {
                body: args
                    .block(None)?
                    .ok_or(ParseError::Syntax { pos: tok.pos })?,
                on_error: args.block(Some("on-error"))?,
            },
            _ => Command::Foreach {
                var: args.var_name()?,
                list: args
                    .named("in")
                    .ok_or(ParseError::Syntax { pos: tok.pos })?,
                body: args
                    .block(Some("do"))?
                    .ok_or(ParseError::Syntax { pos: tok.pos })?,
            },
        };
        args.finish()?;
        Ok(command)
    }

    /// Reads unnamed values and `name=value` pairs up to the end of the
    /// command.
    fn script_args(&mut self, pos: Pos) -> Result<ScriptArgs, ParseError> {
        let mut args = ScriptArgs {
            pos,
            positional: Vec::new(),
            named: Vec::new(),
        };
        while !self.at_command_end() {
            let tok = self.peek().clone();
            if !tok.spaced {
                return Err(ParseError::ExpectedEndOfCommand { pos: tok.pos });
            }
            let next = self.peek_at(1);
            match &tok.kind {
                TokenKind::Word(name) if next.kind == TokenKind::Eq && !next.spaced => {
                    self.bump();
                    self.bump();
                    let value = if self.at_command_end() || self.peek().spaced {
                        Expr::Lit {
                            text: String::new(),
                            quoted: false,
                        }
                    } else {
                        self.value(true)?
                    };
                    args.named.push((name.clone(), value, tok.pos));
                }
                kind if super::starts_value(kind) || *kind == TokenKind::LBrace => {
                    let value = self.value(true)?;
                    args.positional.push((value, tok.pos));
                }
                _ => return Err(ParseError::ExpectedEndOfCommand { pos: tok.pos }),
            }
        }
        Ok(args)
    }
}
