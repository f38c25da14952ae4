//! Parser for the output of `print detail`.
//!
//! ```text
//! Flags: B - BLOCK-DEVICE; M - MOUNTED; t - NVME-TCP-EXPORT
//!  0 B  t ;;; rds-csi:pvc-1
//!         type=file slot="pvc-1" fs=- size=1 073 741 824
//!         file-path=/raid10/volumes/pvc-1.img file-size=1024.0MiB
//! ```
//!
//! The rules, from `docs/routeros-cli.md`: an optional `Flags:` header; each record
//! starts with its index, then flag letters, then an optional `;;; comment` to the
//! end of the line, then `key=value` pairs that may wrap onto indented continuation
//! lines; records are separated by blank lines. Numbers are grouped in thousands
//! with spaces (`size=1 073 741 824`). Any line that belongs to no record is a
//! message from RouterOS (usually an error) and is returned as such, so that the
//! caller never mistakes an error for an empty result.

/// One record of `print detail`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The index number RouterOS printed (only valid until the next print).
    pub index: u32,
    /// Flag letters, in the order printed (`B`, `M`, `t`, `X`, ...).
    pub flags: String,
    /// The `;;;` comment, if any.
    pub comment: Option<String>,
    /// Every `key=value` pair, in order, values unquoted and numbers ungrouped.
    /// Unknown keys are kept.
    pub fields: Vec<(String, String)>,
}

impl Record {
    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the record carries flag letter `flag`.
    pub fn has_flag(&self, flag: char) -> bool {
        self.flags.contains(flag)
    }
}

/// The parsed output: records, and any lines that were not part of a record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrintOutput {
    /// The records, in the order printed.
    pub records: Vec<Record>,
    /// Lines outside any record (trimmed): RouterOS messages, usually errors.
    pub messages: Vec<String>,
}

/// Why a record could not be read. Such output is never guessed at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A quoted value has no closing quote.
    #[error("line {line}: unterminated quoted value for {key:?}")]
    UnterminatedQuote {
        /// 1-based line number in the output.
        line: usize,
        /// The key whose value it was.
        key: String,
    },
    /// A bad backslash escape inside a quoted value.
    #[error("line {line}: invalid escape in value of {key:?}")]
    BadEscape {
        /// 1-based line number in the output.
        line: usize,
        /// The key whose value it was.
        key: String,
    },
    /// A word inside a record that is neither `key=value` nor part of a number.
    #[error("line {line}: unexpected {token:?} in a record")]
    UnexpectedToken {
        /// 1-based line number in the output.
        line: usize,
        /// The word.
        token: String,
    },
}

/// Parses `print detail` output.
pub fn parse_print_detail(output: &str) -> Result<PrintOutput, ParseError> {
    let mut out = PrintOutput::default();
    let mut current: Option<Record> = None;
    for (n, raw) in output.lines().enumerate() {
        let line_no = n + 1;
        let line = raw.trim_end_matches(['\r', ' ', '\t']);
        if line.is_empty() {
            out.records.extend(current.take());
            continue;
        }
        if current.is_none() && line.starts_with("Flags:") {
            continue;
        }
        if let Some((index, rest)) = record_start(line) {
            out.records.extend(current.take());
            let mut record = Record {
                index,
                ..Record::default()
            };
            parse_first_line(rest, &mut record, line_no)?;
            current = Some(record);
            continue;
        }
        match current.as_mut() {
            Some(record) if line.starts_with([' ', '\t']) => {
                parse_continuation(line.trim_start(), record, line_no)?;
            }
            _ => {
                out.records.extend(current.take());
                out.messages.push(line.trim().to_owned());
            }
        }
    }
    out.records.extend(current);
    Ok(out)
}

/// Recognises `  12 ...`: optional indentation, an index, then a space or the end.
fn record_start(line: &str) -> Option<(u32, &str)> {
    let body = line.trim_start();
    let digits = body.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let rest = &body[digits..];
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    let index = body[..digits].parse().ok()?;
    Some((index, rest))
}

/// The rest of a record's first line: flags, then a comment or pairs.
fn parse_first_line(rest: &str, record: &mut Record, line: usize) -> Result<(), ParseError> {
    let mut rest = rest.trim_start();
    loop {
        if rest.is_empty() {
            return Ok(());
        }
        if let Some(comment) = rest.strip_prefix(";;;") {
            record.comment = Some(comment.trim().to_owned());
            return Ok(());
        }
        let word_end = rest.find(' ').unwrap_or(rest.len());
        let word = &rest[..word_end];
        if word.contains('=') || !word.bytes().all(|b| b.is_ascii_alphabetic()) {
            return parse_pairs(rest, record, line);
        }
        record.flags.push_str(word);
        rest = rest[word_end..].trim_start();
    }
}

/// A continuation line. A wrapped comment continues the comment; anything else
/// must be pairs.
fn parse_continuation(text: &str, record: &mut Record, line: usize) -> Result<(), ParseError> {
    if record.fields.is_empty()
        && let Some(comment) = record.comment.as_mut()
        && !starts_with_key(text)
    {
        comment.push(' ');
        comment.push_str(text);
        return Ok(());
    }
    parse_pairs(text, record, line)
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'
}

fn starts_with_key(text: &str) -> bool {
    let key_len = text.bytes().take_while(|&b| is_key_byte(b)).count();
    key_len > 0 && text.as_bytes().get(key_len) == Some(&b'=')
}

/// Parses `key=value key="quoted value" size=1 073 741 824 ...`.
fn parse_pairs(text: &str, record: &mut Record, line: usize) -> Result<(), ParseError> {
    let bytes = text.as_bytes();
    let mut pos = 0;
    while pos < bytes.len() {
        if bytes[pos] == b' ' || bytes[pos] == b'\t' {
            pos += 1;
            continue;
        }
        let key_len = bytes[pos..].iter().take_while(|&&b| is_key_byte(b)).count();
        let word_end = text[pos..].find(' ').map_or(text.len(), |i| pos + i);
        if key_len == 0 || bytes.get(pos + key_len) != Some(&b'=') {
            let word = &text[pos..word_end];
            // A group of three digits continues the number before it.
            if is_digit_group(word)
                && let Some((_, last)) = record.fields.last_mut()
                && is_grouped_number(last)
            {
                last.push_str(word);
                pos = word_end;
                continue;
            }
            return Err(ParseError::UnexpectedToken {
                line,
                token: word.to_owned(),
            });
        }
        let key = text[pos..pos + key_len].to_owned();
        pos += key_len + 1;
        let value;
        if bytes.get(pos) == Some(&b'"') {
            let (v, end) = unquote(&text[pos + 1..]).map_err(|kind| match kind {
                Unquote::Unterminated => ParseError::UnterminatedQuote {
                    line,
                    key: key.clone(),
                },
                Unquote::BadEscape => ParseError::BadEscape {
                    line,
                    key: key.clone(),
                },
            })?;
            value = v;
            pos += 1 + end;
        } else {
            let end = text[pos..].find(' ').map_or(text.len(), |i| pos + i);
            value = text[pos..end].to_owned();
            pos = end;
        }
        record.fields.push((key, value));
    }
    Ok(())
}

fn is_digit_group(word: &str) -> bool {
    word.len() == 3 && word.bytes().all(|b| b.is_ascii_digit())
}

/// A value that a following digit group may extend: 1–3 leading digits, then
/// only complete groups (already joined).
fn is_grouped_number(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit())
}

enum Unquote {
    Unterminated,
    BadEscape,
}

/// Reads a quoted value whose opening quote has been consumed; returns the value
/// and the byte offset just past the closing quote.
fn unquote(text: &str) -> Result<(String, usize), Unquote> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, ch)) = chars.next() {
        match ch {
            '"' => return Ok((value, i + 1)),
            '\\' => {
                let (_, esc) = chars.next().ok_or(Unquote::Unterminated)?;
                match esc {
                    '"' | '\\' | '$' | '?' => value.push(esc),
                    'n' => value.push('\n'),
                    'r' => value.push('\r'),
                    't' => value.push('\t'),
                    '_' => value.push(' '),
                    hi if hi.is_ascii_hexdigit() => {
                        let (_, lo) = chars.next().ok_or(Unquote::Unterminated)?;
                        let byte = hi
                            .to_digit(16)
                            .zip(lo.to_digit(16))
                            .map(|(h, l)| h * 16 + l)
                            .ok_or(Unquote::BadEscape)?;
                        // RouterOS escapes non-ASCII bytes one by one; for the
                        // ASCII-only values this driver reads, one byte is one char.
                        value.push(char::from_u32(byte).ok_or(Unquote::BadEscape)?);
                    }
                    _ => return Err(Unquote::BadEscape),
                }
            }
            _ => value.push(ch),
        }
    }
    Err(Unquote::Unterminated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(r: &Record) -> Vec<(&str, &str)> {
        r.fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn empty_outputs() {
        assert_eq!(parse_print_detail("").unwrap(), PrintOutput::default());
        let header_only =
            parse_print_detail("Flags: B - BLOCK-DEVICE; t - NVME-TCP-EXPORT\r\n\r\n").unwrap();
        assert_eq!(header_only, PrintOutput::default());
        assert_eq!(
            parse_print_detail(" \r\n  \r\n").unwrap(),
            PrintOutput::default()
        );
    }

    #[test]
    fn flags_comment_and_wrapped_pairs() {
        let out = parse_print_detail(concat!(
            "Flags: B - BLOCK-DEVICE; M - MOUNTED; t - NVME-TCP-EXPORT\r\n",
            " 0 B  t ;;; rds-csi:pvc-1\r\n",
            "        type=file slot=\"pvc-1\" fs=- size=1 073 741 824\r\n",
            "        file-path=/raid10/volumes/pvc-1.img file-size=1024.0MiB\r\n",
            "\r\n",
            " 1 BM     type=raid slot=\"raid10\" free=7 301 927 047 168 use=5%\r\n",
        ))
        .unwrap();
        assert!(out.messages.is_empty());
        assert_eq!(out.records.len(), 2);
        let r = &out.records[0];
        assert_eq!((r.index, r.flags.as_str()), (0, "Bt"));
        assert_eq!(r.comment.as_deref(), Some("rds-csi:pvc-1"));
        assert_eq!(
            fields(r),
            [
                ("type", "file"),
                ("slot", "pvc-1"),
                ("fs", "-"),
                ("size", "1073741824"),
                ("file-path", "/raid10/volumes/pvc-1.img"),
                ("file-size", "1024.0MiB"),
            ]
        );
        let pool = &out.records[1];
        assert_eq!(pool.flags, "BM");
        assert_eq!(pool.get("free"), Some("7301927047168"));
        assert_eq!(pool.get("use"), Some("5%"));
        assert!(pool.has_flag('M') && !pool.has_flag('t'));
    }

    #[test]
    fn quoted_values_keep_spaces_and_escapes() {
        let out = parse_print_detail(
            r#" 0   comment-like="a \"b\" c=d" model="x\\y\3Fz" empty="" name="a\_b""#,
        )
        .unwrap();
        let r = &out.records[0];
        assert_eq!(r.get("comment-like"), Some(r#"a "b" c=d"#));
        assert_eq!(r.get("model"), Some(r"x\y?z"));
        assert_eq!(r.get("empty"), Some(""));
        assert_eq!(r.get("name"), Some("a b"));
    }

    #[test]
    fn comment_that_looks_like_pairs_stays_a_comment() {
        let out = parse_print_detail(" 0 ;;; slot=evil size=1\n   slot=\"real\"\n").unwrap();
        let r = &out.records[0];
        assert_eq!(r.comment.as_deref(), Some("slot=evil size=1"));
        assert_eq!(fields(r), [("slot", "real")]);
    }

    #[test]
    fn wrapped_comment_is_joined() {
        let out = parse_print_detail(" 0 ;;; a long comment\n     that wrapped\n     slot=\"x\"\n")
            .unwrap();
        assert_eq!(
            out.records[0].comment.as_deref(),
            Some("a long comment that wrapped")
        );
        assert_eq!(out.records[0].get("slot"), Some("x"));
    }

    #[test]
    fn records_separated_by_a_single_space_line() {
        let out = parse_print_detail(" 0  slot=\"a\"\n \n 1  slot=\"b\"\n").unwrap();
        assert_eq!(out.records.len(), 2);
        assert_eq!(out.records[1].index, 1);
    }

    #[test]
    fn unknown_fields_are_kept() {
        let out = parse_print_detail(" 3 X  future-thing=42 slot=\"a\"\n").unwrap();
        assert_eq!(out.records[0].get("future-thing"), Some("42"));
        assert!(out.records[0].has_flag('X'));
    }

    #[test]
    fn error_lines_are_messages() {
        let out = parse_print_detail("failure: already have such entry\r\n").unwrap();
        assert!(out.records.is_empty());
        assert_eq!(out.messages, ["failure: already have such entry"]);
        let out = parse_print_detail(
            "Flags: B - BLOCK-DEVICE\r\n 0 B slot=\"a\"\r\nsyntax error (line 1 column 4)\r\n",
        )
        .unwrap();
        assert_eq!(out.records.len(), 1);
        assert_eq!(out.messages, ["syntax error (line 1 column 4)"]);
    }

    #[test]
    fn malformed_records_are_errors_not_guesses() {
        assert_eq!(
            parse_print_detail(" 0 slot=\"a\n"),
            Err(ParseError::UnterminatedQuote {
                line: 1,
                key: "slot".into()
            })
        );
        assert!(matches!(
            parse_print_detail(" 0 slot=\"a\" stray\n"),
            Err(ParseError::UnexpectedToken { line: 1, .. })
        ));
        // A digit group after a non-number is not a continuation.
        assert!(parse_print_detail(" 0 use=5% 123\n").is_err());
        assert!(matches!(
            parse_print_detail(" 0 x=\"\\q\"\n"),
            Err(ParseError::BadEscape { .. })
        ));
    }
}
