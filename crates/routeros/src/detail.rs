//! Parser for the output of `print detail`, as a terminal shows it.
//!
//! ```text
//! Flags: B - BLOCK-DEVICE; M - MOUNTED;
//! t - NVME-TCP-EXPORT
//!  0 B  t ;;; rds-csi:pvc-0b0e8b8e-3c43-4c2f-9d2e-53f0d3b1a7a1 pvc=default/da
//!             ta
//!         type=file slot="pvc-1" fs=- size=1 073 741 824
//!         model="/raid10/volumes/a-very-long-folder-name/and-a-very-long-im
//!         age-name.img" file-path=/raid10/volumes/pvc-1.img file-size=1024.0MiB
//! ```
//!
//! The layout rules are written down in `docs/routeros-cli.md` ("Output
//! formats"); in short:
//!
//! - An optional `Flags:` legend. A legend line that ends with `;` continues on
//!   the next line.
//! - Each record starts with its index, right-aligned, then flag letters, then
//!   either a `;;; comment` or `key=value` pairs. Every other line of the record
//!   is indented further than the index ends: that, and only that, makes a line
//!   a continuation, so a wrapped comment that starts with digits is never
//!   taken for a new record.
//! - A comment wraps onto lines indented to the column where its text began
//!   (deeper than the pairs); the first line indented less starts the pairs.
//! - Pairs wrap between pairs; a quoted value longer than a line wraps inside
//!   the quotes, and continues on the next line until its closing quote.
//! - Numbers are grouped in thousands with spaces (`size=1 073 741 824`).
//! - Strings show bytes outside printable ASCII as `\XX` escapes; a UTF-8
//!   character is several of them, decoded as bytes, then as UTF-8. Bytes that
//!   are not UTF-8 are read as U+FFFD, which no value the driver compares
//!   against contains, so such a value can never be mistaken for one of ours.
//! - Records are separated by blank lines (or a line holding one space); the
//!   output may end with blank lines.
//!
//! Any line at the left margin that belongs to no record is a message from
//! RouterOS (usually an error) and is returned as such, so that the caller
//! never mistakes an error for an empty result. Anything else that does not
//! fit these rules is refused with a [`ParseError`] naming its line: a record
//! is never guessed at, and a key never appears twice in one record.

/// One record of `print detail`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The index number RouterOS printed (only valid until the next print).
    pub index: u32,
    /// Flag letters, in the order printed (`B`, `M`, `t`, `X`, ...).
    pub flags: String,
    /// The `;;;` comment, if any, escapes decoded.
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

/// Why the output could not be read. Such output is never guessed at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A quoted value has no closing quote before its record ends.
    #[error("line {line}: unterminated quoted value for {key:?}")]
    UnterminatedQuote {
        /// 1-based line number in the output where the value starts.
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
    /// A key appears a second time in one record: a wrapped line was read as
    /// pairs it is not (a comment that looks like `slot=...`, say).
    #[error("line {line}: {key:?} appears twice in one record")]
    DuplicateKey {
        /// 1-based line number in the output.
        line: usize,
        /// The repeated key.
        key: String,
    },
    /// An indented line that continues nothing: not part of a record, and
    /// not a continuation of the `Flags:` legend.
    #[error("line {line}: indented line {text:?} belongs to no record")]
    StrayLine {
        /// 1-based line number in the output.
        line: usize,
        /// The line, trimmed.
        text: String,
    },
    /// The `Flags:` legend announced a continuation (its line ended with `;`)
    /// but the next line is not legend entries.
    #[error("line {line}: {text:?} does not continue the Flags: legend")]
    BadLegend {
        /// 1-based line number in the output.
        line: usize,
        /// The line, trimmed.
        text: String,
    },
}

/// Parses `print detail` output.
pub fn parse_print_detail(output: &str) -> Result<PrintOutput, ParseError> {
    let mut parser = Parser::default();
    for (n, raw) in output.lines().enumerate() {
        parser.line(n + 1, raw.trim_end_matches(['\r', ' ', '\t']))?;
    }
    parser.finish()
}

/// A quoted value whose closing quote is on a later line.
#[derive(Debug)]
struct OpenQuote {
    key: String,
    /// The value as printed so far (escapes not yet decoded).
    raw: String,
    /// Where the value started.
    line: usize,
}

/// A record being read.
#[derive(Debug)]
struct Building {
    record: Record,
    /// The column just after the index: continuation lines are indented
    /// further than this, new records are not.
    index_end: usize,
    /// The comment as printed so far, and the column its text starts at,
    /// while the comment may still continue (no pair seen yet).
    comment: Option<(String, usize)>,
    /// A quoted value that continues on the next line.
    open: Option<OpenQuote>,
    /// The field whose number may still continue with digit groups: its
    /// value so far is a 1–3 digit word or already grouped.
    grouping: Option<usize>,
}

#[derive(Debug, Default)]
struct Parser {
    out: PrintOutput,
    current: Option<Building>,
    /// The `Flags:` legend's last line ended with `;`: the next line
    /// continues it.
    legend_continues: bool,
}

/// The number of leading spaces (and tabs) of `line`.
fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches([' ', '\t']).len()
}

impl Parser {
    fn line(&mut self, line_no: usize, line: &str) -> Result<(), ParseError> {
        if line.is_empty() {
            self.legend_continues = false;
            return self.end_record();
        }
        if self.legend_continues && record_start(line, usize::MAX).is_none() {
            if !is_legend(line.trim()) {
                return Err(ParseError::BadLegend {
                    line: line_no,
                    text: line.trim().to_owned(),
                });
            }
            self.legend_continues = line.ends_with(';');
            return Ok(());
        }
        self.legend_continues = false;
        if let Some(building) = self.current.as_mut()
            && indent(line) > building.index_end
        {
            return continuation(building, line, line_no);
        }
        let limit = self.current.as_ref().map_or(usize::MAX, |b| b.index_end);
        if let Some((index, index_end, rest)) = record_start(line, limit) {
            self.end_record()?;
            let mut building = Building {
                record: Record {
                    index,
                    ..Record::default()
                },
                index_end,
                comment: None,
                open: None,
                grouping: None,
            };
            first_line(&mut building, rest, line.len() - rest.len(), line_no)?;
            self.current = Some(building);
            return Ok(());
        }
        if line.starts_with([' ', '\t']) {
            return Err(ParseError::StrayLine {
                line: line_no,
                text: line.trim().to_owned(),
            });
        }
        self.end_record()?;
        if self.out.records.is_empty() && line.starts_with("Flags:") {
            self.legend_continues = line.ends_with(';');
            return Ok(());
        }
        self.out.messages.push(line.trim().to_owned());
        Ok(())
    }

    /// Ends the record being read, if any.
    fn end_record(&mut self) -> Result<(), ParseError> {
        let Some(mut building) = self.current.take() else {
            return Ok(());
        };
        if let Some(open) = building.open {
            return Err(ParseError::UnterminatedQuote {
                line: open.line,
                key: open.key,
            });
        }
        if let Some((raw, _)) = building.comment.take() {
            building.record.comment = Some(decode_comment(&raw));
        }
        self.out.records.push(building.record);
        Ok(())
    }

    fn finish(mut self) -> Result<PrintOutput, ParseError> {
        self.end_record()?;
        Ok(self.out)
    }
}

/// Whether `text` reads as legend entries: `X - NAME` items separated by
/// `;` or `,`.
fn is_legend(text: &str) -> bool {
    let mut entries = text
        .split([';', ','])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .peekable();
    entries.peek().is_some()
        && entries.all(|entry| {
            let mut chars = entry.chars();
            chars.next().is_some_and(|c| !c.is_whitespace())
                && chars
                    .as_str()
                    .strip_prefix(" - ")
                    .is_some_and(|name| !name.trim().is_empty())
        })
}

/// Recognises a record's first line: at most `max_indent` spaces, an index,
/// then a space or the end. Returns the index, the column after it, and the
/// rest of the line.
fn record_start(line: &str, max_indent: usize) -> Option<(u32, usize, &str)> {
    let spaces = indent(line);
    if spaces > max_indent {
        return None;
    }
    let body = &line[spaces..];
    let digits = body.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let rest = &body[digits..];
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    let index = body[..digits].parse().ok()?;
    Some((index, spaces + digits, rest))
}

/// The rest of a record's first line (starting at column `column`): flags,
/// then a comment or pairs.
fn first_line(
    building: &mut Building,
    mut rest: &str,
    mut column: usize,
    line: usize,
) -> Result<(), ParseError> {
    loop {
        let trimmed = rest.trim_start();
        column += rest.len() - trimmed.len();
        rest = trimmed;
        if rest.is_empty() {
            return Ok(());
        }
        if let Some(comment) = rest.strip_prefix(";;;") {
            let text = comment.strip_prefix(' ').unwrap_or(comment);
            let text_column = column + rest.len() - text.len();
            building.comment = Some((text.to_owned(), text_column));
            return Ok(());
        }
        let word_end = rest.find(' ').unwrap_or(rest.len());
        let word = &rest[..word_end];
        if word.contains('=') || !word.bytes().all(|b| b.is_ascii_alphabetic()) {
            return parse_pairs(rest, building, line);
        }
        building.record.flags.push_str(word);
        rest = &rest[word_end..];
        column += word_end;
    }
}

/// A line indented past the record's index: the rest of an open quoted
/// value, of the comment, or more pairs.
fn continuation(building: &mut Building, line: &str, line_no: usize) -> Result<(), ParseError> {
    if let Some(mut open) = building.open.take() {
        // A value is only wrapped between two characters that are not spaces,
        // so the indentation is all layout.
        open.raw.push_str(line.trim_start());
        return match closing_quote(&open.raw) {
            Some(end) => {
                let rest = open.raw[end + 1..].to_owned();
                let value = decode_value(&open.raw[..end], &open.key, open.line)?;
                push_field(building, open.key, value, false, line_no)?;
                parse_pairs(&rest, building, line_no)
            }
            None => {
                building.open = Some(open);
                Ok(())
            }
        };
    }
    if let Some((raw, column)) = building.comment.as_mut() {
        if indent(line) >= *column {
            raw.push_str(&line[*column..]);
            return Ok(());
        }
        let (raw, _) = building.comment.take().unwrap_or_default();
        building.record.comment = Some(decode_comment(&raw));
    }
    parse_pairs(line.trim_start(), building, line_no)
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'
}

/// Adds a field, refusing a key the record already has.
fn push_field(
    building: &mut Building,
    key: String,
    value: String,
    groupable: bool,
    line: usize,
) -> Result<(), ParseError> {
    if building.record.get(&key).is_some() {
        return Err(ParseError::DuplicateKey { line, key });
    }
    building.record.fields.push((key, value));
    building.grouping = groupable.then(|| building.record.fields.len() - 1);
    Ok(())
}

/// Parses `key=value key="quoted value" size=1 073 741 824 ...`. A quoted
/// value left open at the end of `text` continues on the next line.
fn parse_pairs(text: &str, building: &mut Building, line: usize) -> Result<(), ParseError> {
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
                && let Some(index) = building.grouping
                && index + 1 == building.record.fields.len()
            {
                building.record.fields[index].1.push_str(word);
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
        if bytes.get(pos) == Some(&b'"') {
            let raw = &text[pos + 1..];
            let Some(end) = closing_quote(raw) else {
                if building.record.get(&key).is_some() {
                    return Err(ParseError::DuplicateKey { line, key });
                }
                building.open = Some(OpenQuote {
                    key,
                    raw: raw.to_owned(),
                    line,
                });
                return Ok(());
            };
            let value = decode_value(&raw[..end], &key, line)?;
            push_field(building, key, value, false, line)?;
            pos += 1 + end + 1;
            if pos < bytes.len() && bytes[pos] != b' ' {
                let word_end = text[pos..].find(' ').map_or(text.len(), |i| pos + i);
                return Err(ParseError::UnexpectedToken {
                    line,
                    token: text[pos..word_end].to_owned(),
                });
            }
        } else {
            let end = text[pos..].find(' ').map_or(text.len(), |i| pos + i);
            let value = text[pos..end].to_owned();
            let groupable =
                (1..=3).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit());
            push_field(building, key, value, groupable, line)?;
            pos = end;
        }
    }
    Ok(())
}

fn is_digit_group(word: &str) -> bool {
    word.len() == 3 && word.bytes().all(|b| b.is_ascii_digit())
}

/// The byte offset of the quote that closes a quoted value whose opening
/// quote is just before `raw`, skipping escaped characters.
fn closing_quote(raw: &str) -> Option<usize> {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return Some(i),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

/// Why escapes could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BadEscape;

/// Decodes RouterOS escapes: `\"`, `\\`, `\$`, `\?`, `\_` (space), the C
/// letters `\n` `\r` `\t` `\a` `\b` `\f` `\v`, and `\XX` for any byte (two hex
/// digits win over a letter, as in RouterOS's own reader). The bytes are then
/// read as UTF-8, each invalid sequence as U+FFFD.
fn decode(raw: &str) -> Result<String, BadEscape> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let esc = *bytes.get(i + 1).ok_or(BadEscape)?;
        let hex = |c: u8| char::from(c).to_digit(16);
        if let (Some(hi), Some(lo)) = (hex(esc), bytes.get(i + 2).and_then(|&c| hex(c))) {
            // Both digits are below 16, so this is one byte.
            out.push(u8::try_from(hi * 16 + lo).map_err(|_| BadEscape)?);
            i += 3;
            continue;
        }
        out.push(match esc {
            b'"' | b'\\' | b'$' | b'?' => esc,
            b'_' => b' ',
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'a' => 0x07,
            b'b' => 0x08,
            b'f' => 0x0C,
            b'v' => 0x0B,
            _ => return Err(BadEscape),
        });
        i += 2;
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn decode_value(raw: &str, key: &str, line: usize) -> Result<String, ParseError> {
    decode(raw).map_err(|BadEscape| ParseError::BadEscape {
        line,
        key: key.to_owned(),
    })
}

/// A comment's text with escapes decoded. A comment is free text typed by
/// whoever set it; a backslash that does not start a known escape is kept as
/// it is rather than refusing the whole print over someone else's disk.
fn decode_comment(raw: &str) -> String {
    decode(raw).unwrap_or_else(|BadEscape| raw.to_owned())
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

    fn one(text: &str) -> Record {
        let out = parse_print_detail(text).unwrap();
        assert!(out.messages.is_empty(), "{:?}", out.messages);
        assert_eq!(out.records.len(), 1, "{out:?}");
        out.records.into_iter().next().unwrap()
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
        let r = one(r#" 0   comment-like="a \"b\" c=d" model="x\\y\3Fz" empty="" name="a\_b""#);
        assert_eq!(r.get("comment-like"), Some(r#"a "b" c=d"#));
        assert_eq!(r.get("model"), Some(r"x\y?z"));
        assert_eq!(r.get("empty"), Some(""));
        assert_eq!(r.get("name"), Some("a b"));
    }

    #[test]
    fn byte_escapes_are_decoded_as_utf8() {
        // "é" is two bytes, "€" three, each printed as its own escape.
        let r = one(r#" 0 name="caf\C3\A9 \E2\82\AC" bell="\07\a" lower="\c3\a9""#);
        assert_eq!(r.get("name"), Some("café €"));
        assert_eq!(r.get("bell"), Some("\u{7}\u{7}"));
        assert_eq!(r.get("lower"), Some("é"));
        // A byte that is not UTF-8 cannot become an ASCII look-alike.
        assert_eq!(one(r#" 0 name="a\E9b""#).get("name"), Some("a\u{FFFD}b"));
        // So are escapes in a comment.
        assert_eq!(
            one(" 0 ;;; caf\\C3\\A9 \\\\o/\n   name=\"x\"\n")
                .comment
                .as_deref(),
            Some("café \\o/")
        );
    }

    #[test]
    fn comment_that_looks_like_pairs_stays_a_comment() {
        let r = one(" 0 ;;; slot=evil size=1\n   slot=\"real\"\n");
        assert_eq!(r.comment.as_deref(), Some("slot=evil size=1"));
        assert_eq!(fields(&r), [("slot", "real")]);
    }

    #[test]
    fn a_wrapped_comment_continues_at_its_own_column() {
        // The comment's text starts at column 7; its continuations are
        // indented that far, the pairs less.
        let r = one(concat!(
            " 0 ;;; a long comment th\n",
            "       at wrapped; 12 345 slot=\"x\"\n",
            "       42 and more\n",
            "    slot=\"real\"\n"
        ));
        assert_eq!(
            r.comment.as_deref(),
            Some("a long comment that wrapped; 12 345 slot=\"x\"42 and more")
        );
        assert_eq!(fields(&r), [("slot", "real")]);
        // Spaces at the start of a continuation are the comment's own.
        let r = one(" 0 ;;; a\n         b\n   k=v\n");
        assert_eq!(r.comment.as_deref(), Some("a  b"));
    }

    #[test]
    fn a_continuation_that_starts_with_digits_is_not_a_record() {
        let out = parse_print_detail(concat!(
            "Flags: B - BLOCK-DEVICE\r\n",
            " 0 B ;;; build 7\r\n",
            "         21 of the image\r\n",
            "       slot=\"a\" size=1\r\n",
            "       2 \r\n",
        ));
        assert!(matches!(
            out,
            Err(ParseError::UnexpectedToken { line: 5, .. })
        ));
        let r = one(" 0 B ;;; build 7\r\n         21 of the image\r\n       slot=\"a\" size=1\r\n");
        assert_eq!(r.comment.as_deref(), Some("build 721 of the image"));
        assert_eq!(r.get("slot"), Some("a"));
    }

    #[test]
    fn a_long_quoted_value_continues_until_its_closing_quote() {
        let r = one(concat!(
            " 0 B  t type=file\n",
            "        model=\"/raid10/volumes/a-very-long-fol\n",
            "        der/x\\C3\n",
            "        \\A9.img\" size=1 073\n",
            "        741 824 nqn=\"nqn.x\"\n",
        ));
        assert_eq!(
            r.get("model"),
            Some("/raid10/volumes/a-very-long-folder/xé.img")
        );
        assert_eq!(r.get("size"), Some("1073741824"));
        assert_eq!(r.get("nqn"), Some("nqn.x"));
        // A record that ends inside quotes is refused, naming where it began.
        assert_eq!(
            parse_print_detail(" 0 a=1\n   b=\"open\n\n 1 c=2\n"),
            Err(ParseError::UnterminatedQuote {
                line: 2,
                key: "b".into()
            })
        );
    }

    #[test]
    fn the_legend_may_wrap() {
        let out = parse_print_detail(concat!(
            "Flags: X - DISABLED; B - BLOCK-DEVICE;\r\n",
            "M - MOUNTED; t - NVME-TCP-EXPORT\r\n",
            " 0 B slot=\"a\"\r\n",
        ))
        .unwrap();
        assert!(out.messages.is_empty(), "{:?}", out.messages);
        assert_eq!(out.records[0].get("slot"), Some("a"));
        assert_eq!(
            parse_print_detail("Flags: B - BLOCK-DEVICE;\r\nsyntax error (line 1 column 2)\r\n"),
            Err(ParseError::BadLegend {
                line: 2,
                text: "syntax error (line 1 column 2)".into()
            })
        );
    }

    #[test]
    fn records_separated_by_a_single_space_line() {
        let out = parse_print_detail(" 0  slot=\"a\"\n \n 1  slot=\"b\"\n\n\n").unwrap();
        assert_eq!(out.records.len(), 2);
        assert_eq!(out.records[1].index, 1);
    }

    #[test]
    fn indexes_may_grow_wider() {
        let out = parse_print_detail(" 9 a=1\n      b=2\n\n10 a=3\n   b=4\n\n100 a=5\n").unwrap();
        let indexes: Vec<u32> = out.records.iter().map(|r| r.index).collect();
        assert_eq!(indexes, [9, 10, 100]);
        assert_eq!(out.records[1].get("b"), Some("4"));
    }

    #[test]
    fn unknown_fields_are_kept() {
        let r = one(" 3 X  future-thing=42 slot=\"a\"\n");
        assert_eq!(r.get("future-thing"), Some("42"));
        assert!(r.has_flag('X'));
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
        assert!(matches!(
            parse_print_detail(" 0 slot=\"a\"x\n"),
            Err(ParseError::UnexpectedToken { line: 1, .. })
        ));
        // A digit group after a non-number, or after a four-digit number
        // (which would have been grouped), is not a continuation.
        assert!(parse_print_detail(" 0 use=5% 123\n").is_err());
        assert!(parse_print_detail(" 0 port=4420 123\n").is_err());
        assert!(matches!(
            parse_print_detail(" 0 x=\"\\q\"\n"),
            Err(ParseError::BadEscape { .. })
        ));
        // A key twice: never read the first and ignore the second.
        assert_eq!(
            parse_print_detail(" 0 ;;; x\n   slot=\"evil\"\n   slot=\"real\"\n"),
            Err(ParseError::DuplicateKey {
                line: 3,
                key: "slot".into()
            })
        );
        // An indented line that continues nothing.
        assert!(matches!(
            parse_print_detail("Flags: B - X\n  NVME-TCP\n"),
            Err(ParseError::StrayLine { line: 2, .. })
        ));
    }
}
