//! Lexer: RouterOS script text to tokens with line and column positions.
//!
//! RouterOS scripting is whitespace-sensitive in a few places: `name=value`
//! must be written without spaces, and an argument must be separated from the
//! previous one by whitespace. The lexer therefore records, for every token,
//! whether whitespace preceded it (`spaced`), and leaves such decisions to the
//! parser.
//!
//! Bare words run until whitespace or one of `; [ ] ( ) { } " $ = ! < > ~`, or a
//! doubled `&&`/`||`. Slashes, colons, dots, dashes and stars are word
//! characters, so `/disk/add`, `:if`, `*1A`, `10G` and
//! `nqn.2000-02.com.mikrotik:x` are single words. Quoted strings decode the
//! RouterOS escapes and keep unescaped `$name` references apart, because
//! RouterOS interpolates variables inside double quotes.

use crate::error::{ParseError, Pos};

/// One piece of a quoted string: literal text or an interpolated variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StrPart {
    /// Literal text, escapes already decoded.
    Lit(String),
    /// `$name` inside the quotes: replaced by the variable's value.
    Var(String),
}

/// The kinds of token the script language has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    /// A bare word: `add`, `/disk`, `file-path`, `4420`, `:if`.
    Word(String),
    /// A double-quoted string.
    Str(Vec<StrPart>),
    /// `$name` or `$"name"` outside quotes.
    Var(String),
    /// `[`
    LBracket,
    /// `]`
    RBracket,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `{`
    LBrace,
    /// `}`
    RBrace,
    /// `;`
    Semi,
    /// A line break (statements end there, like at `;`).
    Newline,
    /// `=`
    Eq,
    /// `!=`
    NotEq,
    /// `!`
    Bang,
    /// `<`
    Lt,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `>=`
    Ge,
    /// `~`
    Tilde,
    /// `&&`
    AndAnd,
    /// `||`
    OrOr,
    /// End of the script.
    Eof,
}

/// A token with the position of its first character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// What the token is.
    pub kind: TokenKind,
    /// Line and column (1-based) of its first character.
    pub pos: Pos,
    /// Whether whitespace (or a line continuation) came right before it.
    pub spaced: bool,
}

/// Characters that end a bare word.
fn ends_word(c: char) -> bool {
    c.is_whitespace()
        || matches!(c, ';' | '[' | ']' | '(' | ')' | '{' | '}' | '"' | '$')
        || matches!(c, '=' | '!' | '<' | '>' | '~')
}

/// Characters allowed in a variable name written as `$name`.
fn is_var_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Turns `text` into tokens, ending with [`TokenKind::Eof`].
pub fn tokenize(text: &str) -> Result<Vec<Token>, ParseError> {
    Lexer::new(text).run()
}

struct Lexer {
    chars: Vec<char>,
    idx: usize,
    line: u32,
    column: u32,
    /// True while only whitespace has been seen on the current line, which
    /// is where RouterOS treats `#` as the start of a comment.
    line_start: bool,
    tokens: Vec<Token>,
}

impl Lexer {
    fn new(text: &str) -> Self {
        Lexer {
            chars: text.chars().collect(),
            idx: 0,
            line: 1,
            column: 1,
            line_start: true,
            tokens: Vec::new(),
        }
    }

    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.column,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.idx).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.idx + ahead).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.get(self.idx).copied()?;
        self.idx += 1;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    /// Whether the input at the cursor is a backslash line continuation
    /// (`\` then `\n` or `\r\n`); returns its length in characters.
    fn continuation_len(&self) -> Option<usize> {
        if self.peek() != Some('\\') {
            return None;
        }
        match (self.peek_at(1), self.peek_at(2)) {
            (Some('\n'), _) => Some(2),
            (Some('\r'), Some('\n')) => Some(3),
            _ => None,
        }
    }

    fn push(&mut self, kind: TokenKind, pos: Pos, spaced: bool) {
        self.line_start = matches!(kind, TokenKind::Newline);
        self.tokens.push(Token { kind, pos, spaced });
    }

    fn run(mut self) -> Result<Vec<Token>, ParseError> {
        let mut spaced = true;
        loop {
            if let Some(len) = self.continuation_len() {
                for _ in 0..len {
                    self.bump();
                }
                spaced = true;
                continue;
            }
            let Some(c) = self.peek() else { break };
            let pos = self.pos();
            if c == '\n' {
                self.bump();
                self.push(TokenKind::Newline, pos, spaced);
                spaced = true;
                continue;
            }
            if c.is_whitespace() {
                self.bump();
                spaced = true;
                continue;
            }
            if c == '#' && self.line_start {
                while self.peek().is_some_and(|c| c != '\n') {
                    self.bump();
                }
                continue;
            }
            let kind = self.token(c, pos)?;
            self.push(kind, pos, spaced);
            spaced = false;
        }
        let pos = self.pos();
        self.tokens.push(Token {
            kind: TokenKind::Eof,
            pos,
            spaced,
        });
        Ok(self.tokens)
    }

    /// Reads one token starting with `c` (not whitespace) at `pos`.
    fn token(&mut self, c: char, pos: Pos) -> Result<TokenKind, ParseError> {
        let next = self.peek_at(1);
        let (kind, len) = match (c, next) {
            ('[', _) => (TokenKind::LBracket, 1),
            (']', _) => (TokenKind::RBracket, 1),
            ('(', _) => (TokenKind::LParen, 1),
            (')', _) => (TokenKind::RParen, 1),
            ('{', _) => (TokenKind::LBrace, 1),
            ('}', _) => (TokenKind::RBrace, 1),
            (';', _) => (TokenKind::Semi, 1),
            ('=', _) => (TokenKind::Eq, 1),
            ('~', _) => (TokenKind::Tilde, 1),
            ('!', Some('=')) => (TokenKind::NotEq, 2),
            ('!', _) => (TokenKind::Bang, 1),
            ('<', Some('=')) => (TokenKind::Le, 2),
            ('<', _) => (TokenKind::Lt, 1),
            ('>', Some('=')) => (TokenKind::Ge, 2),
            ('>', _) => (TokenKind::Gt, 1),
            ('&', Some('&')) => (TokenKind::AndAnd, 2),
            ('|', Some('|')) => (TokenKind::OrOr, 2),
            ('"', _) => return self.string(pos).map(TokenKind::Str),
            ('$', _) => return self.variable(pos).map(TokenKind::Var),
            ('\\', _) => return Err(ParseError::Syntax { pos }),
            _ => return Ok(TokenKind::Word(self.word())),
        };
        for _ in 0..len {
            self.bump();
        }
        Ok(kind)
    }

    fn word(&mut self) -> String {
        let mut word = String::new();
        while let Some(c) = self.peek() {
            let doubled = matches!(c, '&' | '|') && self.peek_at(1) == Some(c);
            if ends_word(c) || doubled || c == '\\' {
                break;
            }
            word.push(c);
            self.bump();
        }
        word
    }

    /// `$name` or `$"name"`; the cursor is on the `$`.
    fn variable(&mut self, pos: Pos) -> Result<String, ParseError> {
        self.bump();
        if self.peek() == Some('"') {
            let quote = self.pos();
            let parts = self.string(quote)?;
            return match parts.as_slice() {
                [] => Err(ParseError::Syntax { pos }),
                [StrPart::Lit(name)] => Ok(name.clone()),
                _ => Err(ParseError::Syntax { pos }),
            };
        }
        let mut name = String::new();
        while let Some(c) = self.peek().filter(|c| is_var_char(*c)) {
            name.push(c);
            self.bump();
        }
        if name.is_empty() {
            return Err(ParseError::Syntax { pos });
        }
        Ok(name)
    }

    /// A quoted string; the cursor is on the opening quote at `start`.
    fn string(&mut self, start: Pos) -> Result<Vec<StrPart>, ParseError> {
        self.bump();
        let mut parts = Vec::new();
        // Bytes, not chars: `\XX` escapes may spell out UTF-8 sequences.
        let mut lit: Vec<u8> = Vec::new();
        loop {
            if let Some(len) = self.continuation_len() {
                for _ in 0..len {
                    self.bump();
                }
                continue;
            }
            let pos = self.pos();
            let Some(c) = self.bump() else {
                return Err(ParseError::Syntax { pos: start });
            };
            match c {
                '"' => break,
                '\\' => self.escape(pos, &mut lit)?,
                '$' => {
                    let mut name = String::new();
                    while let Some(c) = self.peek().filter(|c| is_var_char(*c)) {
                        name.push(c);
                        self.bump();
                    }
                    // `$(…)` and `$[…]` inside strings are not part of the
                    // simulated subset: reject them rather than guess.
                    if name.is_empty() {
                        return Err(ParseError::Syntax { pos });
                    }
                    flush(&mut lit, &mut parts);
                    parts.push(StrPart::Var(name));
                }
                c => {
                    let mut buf = [0u8; 4];
                    lit.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        flush(&mut lit, &mut parts);
        Ok(parts)
    }

    /// Decodes the escape after a backslash at `pos` into `lit`.
    fn escape(&mut self, pos: Pos, lit: &mut Vec<u8>) -> Result<(), ParseError> {
        let c = self.bump().ok_or(ParseError::Syntax { pos })?;
        // Two hex digits win over the letter escapes, so `\a9` is the byte
        // 0xA9 rather than a bell followed by `9`.
        if c.is_ascii_hexdigit() && self.peek().is_some_and(|n| n.is_ascii_hexdigit()) {
            return self.hex_escape(c, pos, lit);
        }
        let byte = match c {
            '"' | '\\' | '$' | '?' => c as u8,
            'n' => b'\n',
            'r' => b'\r',
            't' => b'\t',
            '_' => b' ',
            'a' => 0x07,
            'b' => 0x08,
            'f' => 0x0c,
            'v' => 0x0b,
            _ => return Err(ParseError::Syntax { pos }),
        };
        lit.push(byte);
        Ok(())
    }

    /// `\XX`: `hi` is already consumed, the second digit is next.
    fn hex_escape(&mut self, hi: char, pos: Pos, lit: &mut Vec<u8>) -> Result<(), ParseError> {
        let lo = self.bump().ok_or(ParseError::Syntax { pos })?;
        let value = hi
            .to_digit(16)
            .zip(lo.to_digit(16))
            .map(|(h, l)| h * 16 + l)
            .ok_or(ParseError::Syntax { pos })?;
        lit.push(u8::try_from(value).map_err(|_| ParseError::Syntax { pos })?);
        Ok(())
    }
}

/// Moves accumulated literal bytes into `parts`. Bytes that are not UTF-8
/// (only possible through `\XX` escapes) are replaced, since the simulator
/// keeps all values as Rust strings.
fn flush(lit: &mut Vec<u8>, parts: &mut Vec<StrPart>) {
    if lit.is_empty() && !parts.is_empty() {
        return;
    }
    let text = String::from_utf8_lossy(lit).into_owned();
    lit.clear();
    match parts.last_mut() {
        Some(StrPart::Lit(prev)) => prev.push_str(&text),
        _ => parts.push(StrPart::Lit(text)),
    }
}

#[cfg(test)]
mod tests;
