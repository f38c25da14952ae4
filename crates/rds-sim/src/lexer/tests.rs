//! Lexer tests: token shapes, escapes, spacing, positions and errors.

use super::*;

fn kinds(text: &str) -> Vec<TokenKind> {
    tokenize(text)
        .unwrap()
        .into_iter()
        .map(|t| t.kind)
        .collect()
}

fn word(s: &str) -> TokenKind {
    TokenKind::Word(s.to_string())
}

fn lit(s: &str) -> TokenKind {
    TokenKind::Str(vec![StrPart::Lit(s.to_string())])
}

#[test]
fn words_keep_paths_ids_and_nqns_whole() {
    assert_eq!(
        kinds("/disk/add file-path=/raid10/v/x.img nqn.2000-02.com.mikrotik:x *1A"),
        vec![
            word("/disk/add"),
            word("file-path"),
            TokenKind::Eq,
            word("/raid10/v/x.img"),
            word("nqn.2000-02.com.mikrotik:x"),
            word("*1A"),
            TokenKind::Eof
        ]
    );
}

#[test]
fn operators_and_brackets() {
    use TokenKind::*;
    assert_eq!(
        kinds("([a]!=b<=c>=d<e>f~g&&h||!i){x};"),
        vec![
            LParen,
            LBracket,
            word("a"),
            RBracket,
            NotEq,
            word("b"),
            Le,
            word("c"),
            Ge,
            word("d"),
            Lt,
            word("e"),
            Gt,
            word("f"),
            Tilde,
            word("g"),
            AndAnd,
            word("h"),
            OrOr,
            Bang,
            word("i"),
            RParen,
            LBrace,
            word("x"),
            RBrace,
            Semi,
            Eof
        ]
    );
}

#[test]
fn string_escapes_are_decoded() {
    assert_eq!(
        kinds(r#""a\"b\\c\$d\?e\nf\rg\th\_i\41\c3\a9""#),
        vec![lit("a\"b\\c$d?e\nf\rg\th iAé"), TokenKind::Eof]
    );
    assert_eq!(kinds(r#""""#), vec![lit(""), TokenKind::Eof]);
}

#[test]
fn strings_interpolate_variables() {
    assert_eq!(
        kinds(r#""a$xb.c""#),
        vec![
            TokenKind::Str(vec![
                StrPart::Lit("a".into()),
                StrPart::Var("xb".into()),
                StrPart::Lit(".c".into())
            ]),
            TokenKind::Eof
        ]
    );
}

#[test]
fn variables() {
    assert_eq!(
        kinds(r#"$d $"my-var""#),
        vec![
            TokenKind::Var("d".into()),
            TokenKind::Var("my-var".into()),
            TokenKind::Eof
        ]
    );
}

#[test]
fn spacing_is_recorded() {
    let toks = tokenize("a=b c").unwrap();
    let spaced: Vec<bool> = toks.iter().map(|t| t.spaced).collect();
    assert_eq!(spaced, vec![true, false, false, true, false]);
}

#[test]
fn positions_count_lines_and_columns() {
    let toks = tokenize("ab cd\n  ef").unwrap();
    let pos: Vec<(u32, u32)> = toks.iter().map(|t| (t.pos.line, t.pos.column)).collect();
    assert_eq!(pos, vec![(1, 1), (1, 4), (1, 6), (2, 3), (2, 5)]);
}

#[test]
fn comments_only_at_line_start() {
    assert_eq!(
        kinds("# note\n  # more\na#b"),
        vec![
            TokenKind::Newline,
            TokenKind::Newline,
            word("a#b"),
            TokenKind::Eof
        ]
    );
}

#[test]
fn line_continuation_joins_lines() {
    assert_eq!(
        kinds("a \\\n b"),
        vec![word("a"), word("b"), TokenKind::Eof]
    );
    assert_eq!(kinds("\"a\\\r\nb\""), vec![lit("ab"), TokenKind::Eof]);
}

fn err(text: &str) -> (u32, u32) {
    match tokenize(text).unwrap_err() {
        ParseError::Syntax { pos } => (pos.line, pos.column),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn errors_carry_positions() {
    assert_eq!(err("ab \"unterminated"), (1, 4));
    assert_eq!(err("x \"bad \\q\""), (1, 8));
    assert_eq!(err("x \"bad \\4\""), (1, 8));
    assert_eq!(err("\n  $ x"), (2, 3));
    assert_eq!(err("a\\b"), (1, 2));
    assert_eq!(err("\"$(x)\""), (1, 2));
}
