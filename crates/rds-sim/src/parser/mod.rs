//! Recursive-descent parser: tokens to the syntax tree of [`crate::ast`].
//!
//! Like RouterOS, the whole script is parsed before anything runs, and names
//! are checked while parsing: an unknown menu or command is a
//! `bad command name`, an unknown argument or property an
//! `expected end of command`, with the line and column of the offending word.
//!
//! The parser keeps a *current menu*: a statement that is only a menu path
//! (`/disk`) moves into that menu for the statements after it, and the
//! arguments of a menu command are parsed with that command's menu current,
//! so that `[find where …]` inside `/disk remove` means `/disk find`.
//!
//! Submodules: [`expr`] parses values, `(…)` expressions and `where`
//! conditions; [`script`] the `:`-commands; [`single`] the strict one-command
//! entry point used by property tests.

mod expr;
mod script;
mod single;
#[cfg(test)]
mod tests;

pub use single::{ParsedCommand, parse_single_command};

use crate::ast::{Arg, Block, Command, Expr, MenuCommand};
use crate::error::{ParseError, Pos};
use crate::lexer::{Token, TokenKind, tokenize};
use crate::menu::{Menu, PRINT_FLAGS, Verb};

/// How deeply blocks, brackets, parentheses, negations and operator chains
/// may nest.
const MAX_NESTING: usize = 100;

/// Parses a whole script.
pub fn parse_script(text: &str) -> Result<Block, ParseError> {
    Ok(parse_counted(text)?.0)
}

/// Parses a whole script and also counts its top-level statements (menu
/// changes such as a lone `/disk` included).
fn parse_counted(text: &str) -> Result<(Block, usize), ParseError> {
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        tokens,
        idx: 0,
        menu: Menu::Root,
        depth: 0,
        nesting: 0,
        top_level_statements: 0,
    };
    let block = parser.block()?;
    match &parser.peek().kind {
        TokenKind::Eof => Ok((block, parser.top_level_statements)),
        _ => Err(ParseError::Syntax {
            pos: parser.peek().pos,
        }),
    }
}

/// Parser state: the tokens, a cursor and the current menu.
struct Parser {
    tokens: Vec<Token>,
    idx: usize,
    /// The menu relative command names are resolved in.
    menu: Menu,
    /// Nesting depth of `{…}` blocks and `[…]` substitutions.
    depth: usize,
    /// Nesting of everything recursive (blocks, brackets, parentheses,
    /// negations, and each operator of a chain, which nests in the tree),
    /// bounded so that hostile input cannot exhaust the stack when the
    /// script is parsed, run or dropped.
    nesting: usize,
    top_level_statements: usize,
}

impl Parser {
    /// Enters one level of nesting; too deep is a syntax error at `pos`.
    fn enter(&mut self, pos: Pos) -> Result<(), ParseError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(ParseError::Syntax { pos });
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.leave_n(1);
    }

    fn leave_n(&mut self, levels: usize) {
        self.nesting -= levels;
    }

    fn peek(&self) -> &Token {
        // The token list always ends with Eof and the cursor never passes it.
        let last = self.tokens.len().saturating_sub(1);
        &self.tokens[self.idx.min(last)]
    }

    fn peek_at(&self, ahead: usize) -> &Token {
        let last = self.tokens.len().saturating_sub(1);
        &self.tokens[(self.idx + ahead).min(last)]
    }

    fn bump(&mut self) -> Token {
        let tok = self.peek().clone();
        if !matches!(tok.kind, TokenKind::Eof) {
            self.idx += 1;
        }
        tok
    }

    fn expect(&mut self, kind: &TokenKind) -> Result<Token, ParseError> {
        if &self.peek().kind == kind {
            Ok(self.bump())
        } else {
            Err(ParseError::Syntax {
                pos: self.peek().pos,
            })
        }
    }

    /// Whether the current command ends here.
    fn at_command_end(&self) -> bool {
        matches!(
            self.peek().kind,
            TokenKind::Semi
                | TokenKind::Newline
                | TokenKind::Eof
                | TokenKind::RBracket
                | TokenKind::RBrace
        )
    }

    /// Statements up to `}` or the end of the script (not consumed). The
    /// current menu is restored afterwards: a menu change inside a block
    /// does not leak out of it.
    fn block(&mut self) -> Result<Block, ParseError> {
        let saved = self.menu;
        let mut block = Vec::new();
        loop {
            while matches!(self.peek().kind, TokenKind::Semi | TokenKind::Newline) {
                self.bump();
            }
            if matches!(self.peek().kind, TokenKind::Eof | TokenKind::RBrace) {
                break;
            }
            if self.depth == 0 {
                self.top_level_statements += 1;
            }
            if let Some(command) = self.statement()? {
                block.push(command);
            }
            if !matches!(
                self.peek().kind,
                TokenKind::Semi | TokenKind::Newline | TokenKind::Eof | TokenKind::RBrace
            ) {
                return Err(ParseError::ExpectedEndOfCommand {
                    pos: self.peek().pos,
                });
            }
        }
        self.menu = saved;
        Ok(block)
    }

    /// `{ … }` with the cursor on the `{`.
    fn braced_block(&mut self) -> Result<Block, ParseError> {
        let open = self.expect(&TokenKind::LBrace)?;
        self.enter(open.pos)?;
        self.depth += 1;
        let block = self.block()?;
        self.depth -= 1;
        self.expect(&TokenKind::RBrace)?;
        self.leave();
        Ok(block)
    }

    /// One statement; `None` for a lone menu path, which only changes the
    /// current menu.
    fn statement(&mut self) -> Result<Option<Command>, ParseError> {
        let tok = self.peek().clone();
        match &tok.kind {
            TokenKind::Word(w) if w.starts_with(':') => self.script_command().map(Some),
            TokenKind::Word(_) => self.menu_statement(),
            TokenKind::LBrace => Ok(Some(Command::Block(self.braced_block()?))),
            TokenKind::LBracket => Ok(Some(Command::Eval(self.value(false)?))),
            _ => Err(ParseError::Syntax { pos: tok.pos }),
        }
    }

    /// The command inside `[…]`, with the cursor after the `[`.
    fn sub_command(&mut self) -> Result<Command, ParseError> {
        let tok = self.peek().clone();
        self.depth += 1;
        let command = match &tok.kind {
            TokenKind::Word(w) if w.starts_with(':') => self.script_command()?,
            TokenKind::Word(_) => {
                let saved = self.menu;
                let parsed = self.menu_statement();
                self.menu = saved;
                parsed?.ok_or(ParseError::Syntax {
                    pos: self.peek().pos,
                })?
            }
            _ => return Err(ParseError::Syntax { pos: tok.pos }),
        };
        self.depth -= 1;
        Ok(command)
    }

    /// A menu path, optionally followed by a command and its arguments.
    fn menu_statement(&mut self) -> Result<Option<Command>, ParseError> {
        let first = self.bump();
        let TokenKind::Word(word) = &first.kind else {
            return Err(ParseError::Syntax { pos: first.pos });
        };
        let (mut menu, rest, offset) = match word.strip_prefix('/') {
            Some(rest) => (Menu::Root, rest, 1),
            None => (self.menu, word.as_str(), 0),
        };
        let mut verb = None;
        let mut column = first.pos.column + offset;
        for segment in rest.split('/') {
            let pos = Pos {
                line: first.pos.line,
                column,
            };
            column += segment.chars().count() as u32 + 1;
            if segment.is_empty() {
                continue;
            }
            (menu, verb) = resolve_word(menu, verb, segment, pos)?;
        }
        while verb.is_none() {
            if self.at_command_end() {
                self.menu = menu;
                return Ok(None);
            }
            let tok = self.bump();
            match &tok.kind {
                TokenKind::Word(w) if tok.spaced => {
                    (menu, verb) = resolve_word(menu, verb, w, tok.pos)?;
                }
                _ => return Err(ParseError::ExpectedEndOfCommand { pos: tok.pos }),
            }
        }
        let Some(verb) = verb else {
            return Err(ParseError::Syntax { pos: first.pos });
        };
        let saved = self.menu;
        self.menu = menu;
        let parsed = self.menu_arguments(menu, verb, first.pos);
        self.menu = saved;
        parsed.map(|c| Some(Command::Menu(c)))
    }

    /// The arguments of `menu verb`, up to the end of the command.
    fn menu_arguments(
        &mut self,
        menu: Menu,
        verb: Verb,
        pos: Pos,
    ) -> Result<MenuCommand, ParseError> {
        let mut command = MenuCommand {
            menu,
            verb,
            pos,
            args: Vec::new(),
            cond: None,
        };
        let mut positional = 0;
        while !self.at_command_end() {
            let tok = self.peek().clone();
            if !tok.spaced || command.cond.is_some() {
                return Err(ParseError::ExpectedEndOfCommand { pos: tok.pos });
            }
            let word = match &tok.kind {
                TokenKind::Word(w) => Some(w.as_str()),
                _ => None,
            };
            let named =
                word.is_some() && self.peek_at(1).kind == TokenKind::Eq && !self.peek_at(1).spaced;
            let searching = matches!(verb, Verb::Print | Verb::Find);
            if searching && word == Some("where") {
                self.bump();
                command.cond = Some(self.condition(menu)?);
            } else if verb == Verb::Find {
                command.cond = Some(self.condition(menu)?);
            } else if let (true, Some(name)) = (named, word) {
                if !menu.takes_argument(verb, name) {
                    return Err(ParseError::ExpectedEndOfCommand { pos: tok.pos });
                }
                let name = name.to_string();
                self.bump();
                self.bump();
                let value = if self.at_command_end() || self.peek().spaced {
                    Expr::Lit {
                        text: String::new(),
                        quoted: false,
                    }
                } else {
                    self.value(false)?
                };
                command.args.push(Arg::Named { name, value });
            } else if let Some(flag) =
                word.filter(|w| verb == Verb::Print && PRINT_FLAGS.contains(w))
            {
                command.args.push(Arg::Flag(flag.to_string()));
                self.bump();
            } else if positional < menu.positional_arity(verb) && starts_value(&tok.kind) {
                positional += 1;
                let value = self.value(false)?;
                command.args.push(Arg::Positional(value));
            } else {
                return Err(ParseError::ExpectedEndOfCommand { pos: tok.pos });
            }
        }
        Ok(command)
    }
}

/// Resolves one word of a command path: a submenu of `menu` or its command.
fn resolve_word(
    menu: Menu,
    verb: Option<Verb>,
    word: &str,
    pos: Pos,
) -> Result<(Menu, Option<Verb>), ParseError> {
    let bad = || ParseError::BadCommandName {
        name: word.to_string(),
        pos,
    };
    if verb.is_some() {
        return Err(bad());
    }
    if let Some(v) = menu.verb(word) {
        return Ok((menu, Some(v)));
    }
    menu.child(word).map(|m| (m, None)).ok_or_else(bad)
}

/// Whether a token can start a value.
fn starts_value(kind: &TokenKind) -> bool {
    matches!(
        kind,
        TokenKind::Word(_)
            | TokenKind::Str(_)
            | TokenKind::Var(_)
            | TokenKind::LBracket
            | TokenKind::LParen
    )
}
