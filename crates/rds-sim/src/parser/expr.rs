//! Values, `(…)` expressions and `where` conditions.
//!
//! A *value* is one term of an argument: a bare word, a quoted string, a
//! `$variable`, a `[substitution]`, a `(expression)` or, for scripting
//! commands, a `{block}`. In argument position a bare value runs on across
//! adjacent `=`, `!`, `<`, `>` and `~` (so `comment=a=b` is the value `a=b`),
//! since outside expressions those characters carry no meaning of their own.
//!
//! Expression precedence, loosest first: `||`/`or`, `&&`/`and`, `!`/`not`,
//! comparisons (`=` `!=` `<` `>` `<=` `>=` `~`, not chained), `.`
//! (concatenation), then terms. Conditions have the same shape with property
//! names on the left of each comparison.

use super::Parser;
use crate::ast::{BinOp, CmpOp, Cond, Expr};
use crate::error::ParseError;
use crate::lexer::{StrPart, TokenKind};
use crate::menu::Menu;

/// The comparison a token stands for, if any.
fn cmp_op(kind: &TokenKind) -> Option<CmpOp> {
    Some(match kind {
        TokenKind::Eq => CmpOp::Eq,
        TokenKind::NotEq => CmpOp::Ne,
        TokenKind::Lt => CmpOp::Lt,
        TokenKind::Gt => CmpOp::Gt,
        TokenKind::Le => CmpOp::Le,
        TokenKind::Ge => CmpOp::Ge,
        TokenKind::Tilde => CmpOp::Match,
        _ => return None,
    })
}

/// The text of a token that may continue a bare value.
fn bare_continuation(kind: &TokenKind) -> Option<&str> {
    Some(match kind {
        TokenKind::Word(w) => w,
        TokenKind::Eq => "=",
        TokenKind::NotEq => "!=",
        TokenKind::Bang => "!",
        TokenKind::Lt => "<",
        TokenKind::Gt => ">",
        TokenKind::Le => "<=",
        TokenKind::Ge => ">=",
        TokenKind::Tilde => "~",
        _ => return None,
    })
}

/// A literal or interpolated string from the parts of a quoted token.
fn string_expr(parts: &[StrPart]) -> Expr {
    let mut text = String::new();
    for part in parts {
        match part {
            StrPart::Lit(s) => text.push_str(s),
            StrPart::Var(_) => return Expr::Interp(parts.to_vec()),
        }
    }
    Expr::Lit { text, quoted: true }
}

impl Parser {
    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(&self.peek().kind, TokenKind::Word(w) if w == keyword)
    }

    /// One value term in argument position. `allow_block` admits `{…}`.
    pub(super) fn value(&mut self, allow_block: bool) -> Result<Expr, ParseError> {
        let tok = self.peek().clone();
        match &tok.kind {
            TokenKind::Word(w) => {
                self.bump();
                let mut text = w.clone();
                while !self.peek().spaced {
                    let Some(more) = bare_continuation(&self.peek().kind) else {
                        break;
                    };
                    text.push_str(more);
                    self.bump();
                }
                Ok(Expr::Lit {
                    text,
                    quoted: false,
                })
            }
            TokenKind::LBrace if allow_block => Ok(Expr::Block(self.braced_block()?)),
            _ => self.term(),
        }
    }

    /// A term that is not a bare word: string, variable, substitution or
    /// parenthesised expression.
    fn term(&mut self) -> Result<Expr, ParseError> {
        let tok = self.bump();
        match &tok.kind {
            TokenKind::Str(parts) => Ok(string_expr(parts)),
            TokenKind::Var(name) => Ok(Expr::Var(name.clone())),
            TokenKind::LBracket => {
                self.enter(tok.pos)?;
                let command = self.sub_command()?;
                self.expect(&TokenKind::RBracket)?;
                self.leave();
                Ok(Expr::Sub(Box::new(command)))
            }
            TokenKind::LParen => {
                self.enter(tok.pos)?;
                let expr = self.expr()?;
                self.skip_newlines();
                self.expect(&TokenKind::RParen)?;
                self.leave();
                Ok(Expr::Paren(Box::new(expr)))
            }
            _ => Err(ParseError::Syntax { pos: tok.pos }),
        }
    }

    /// Inside parentheses line breaks carry no meaning.
    fn skip_newlines(&mut self) {
        while self.peek().kind == TokenKind::Newline {
            self.bump();
        }
    }

    /// A full expression (inside `(…)`).
    fn expr(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and_expr()?;
        let mut levels = 0;
        loop {
            self.skip_newlines();
            if self.peek().kind == TokenKind::OrOr || self.is_keyword("or") {
                let op = self.bump();
                self.enter(op.pos)?;
                levels += 1;
                let right = self.and_expr()?;
                left = Expr::Binary(BinOp::Or, Box::new(left), Box::new(right));
            } else {
                self.leave_n(levels);
                return Ok(left);
            }
        }
    }

    fn and_expr(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.not_expr()?;
        let mut levels = 0;
        loop {
            self.skip_newlines();
            if self.peek().kind == TokenKind::AndAnd || self.is_keyword("and") {
                let op = self.bump();
                self.enter(op.pos)?;
                levels += 1;
                let right = self.not_expr()?;
                left = Expr::Binary(BinOp::And, Box::new(left), Box::new(right));
            } else {
                self.leave_n(levels);
                return Ok(left);
            }
        }
    }

    fn not_expr(&mut self) -> Result<Expr, ParseError> {
        self.skip_newlines();
        if self.peek().kind == TokenKind::Bang || self.is_keyword("not") {
            let bang = self.bump();
            self.enter(bang.pos)?;
            let inner = self.not_expr()?;
            self.leave();
            return Ok(Expr::Not(Box::new(inner)));
        }
        let left = self.concat_expr()?;
        self.skip_newlines();
        match cmp_op(&self.peek().kind) {
            Some(op) => {
                self.bump();
                let right = self.concat_expr()?;
                Ok(Expr::Binary(
                    BinOp::Cmp(op),
                    Box::new(left),
                    Box::new(right),
                ))
            }
            None => Ok(left),
        }
    }

    fn concat_expr(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.primary()?;
        let mut levels = 0;
        loop {
            self.skip_newlines();
            if self.is_keyword(".") {
                let op = self.bump();
                self.enter(op.pos)?;
                levels += 1;
                let right = self.primary()?;
                left = Expr::Binary(BinOp::Concat, Box::new(left), Box::new(right));
            } else {
                self.leave_n(levels);
                return Ok(left);
            }
        }
    }

    /// A term inside an expression. Bare words stand alone here: `=` and
    /// friends are operators, not part of the word.
    fn primary(&mut self) -> Result<Expr, ParseError> {
        self.skip_newlines();
        let tok = self.peek().clone();
        match &tok.kind {
            TokenKind::Word(w) if !matches!(w.as_str(), "and" | "or" | "not" | ".") => {
                self.bump();
                Ok(Expr::Lit {
                    text: w.clone(),
                    quoted: false,
                })
            }
            TokenKind::Word(_) => Err(ParseError::Syntax { pos: tok.pos }),
            _ => self.term(),
        }
    }

    /// A `where` condition over the properties of `menu`'s records.
    pub(super) fn condition(&mut self, menu: Menu) -> Result<Cond, ParseError> {
        let mut left = self.and_condition(menu)?;
        let mut levels = 0;
        while self.peek().kind == TokenKind::OrOr || self.is_keyword("or") {
            let op = self.bump();
            self.enter(op.pos)?;
            levels += 1;
            let right = self.and_condition(menu)?;
            left = Cond::Or(Box::new(left), Box::new(right));
        }
        self.leave_n(levels);
        Ok(left)
    }

    fn and_condition(&mut self, menu: Menu) -> Result<Cond, ParseError> {
        let mut left = self.not_condition(menu)?;
        let mut levels = 0;
        while self.peek().kind == TokenKind::AndAnd || self.is_keyword("and") {
            let op = self.bump();
            self.enter(op.pos)?;
            levels += 1;
            let right = self.not_condition(menu)?;
            left = Cond::And(Box::new(left), Box::new(right));
        }
        self.leave_n(levels);
        Ok(left)
    }

    fn not_condition(&mut self, menu: Menu) -> Result<Cond, ParseError> {
        if self.peek().kind == TokenKind::Bang || self.is_keyword("not") {
            let bang = self.bump();
            self.enter(bang.pos)?;
            let inner = self.not_condition(menu)?;
            self.leave();
            return Ok(Cond::Not(Box::new(inner)));
        }
        let tok = self.peek().clone();
        match &tok.kind {
            TokenKind::LParen => {
                self.bump();
                self.enter(tok.pos)?;
                self.skip_newlines();
                let cond = self.condition(menu)?;
                self.skip_newlines();
                self.expect(&TokenKind::RParen)?;
                self.leave();
                Ok(cond)
            }
            TokenKind::Word(prop) => {
                // Assumed: RouterOS's text for an unknown property in a
                // condition is not recorded; this one matches unknown
                // arguments.
                if !menu.has_property(prop) {
                    return Err(ParseError::ExpectedEndOfCommand { pos: tok.pos });
                }
                self.bump();
                let Some(op) = cmp_op(&self.peek().kind) else {
                    return Ok(Cond::Truthy(prop.clone()));
                };
                self.bump();
                let tok = self.peek().clone();
                if self.at_command_end() || !super::starts_value(&tok.kind) {
                    return Err(ParseError::Syntax { pos: tok.pos });
                }
                let value = self.value(false)?;
                Ok(Cond::Cmp {
                    prop: prop.clone(),
                    op,
                    value,
                })
            }
            _ => Err(ParseError::Syntax { pos: tok.pos }),
        }
    }
}
