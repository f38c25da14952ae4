//! Output formatting: `print detail`, `print terse` and the key/value block
//! of `/system resource print`, as the device writes them to a terminal of
//! a given width.
//!
//! A detail record looks like this (flag columns B, M, X, t):
//!
//! ```text
//! Flags: B - BLOCK-DEVICE; M - MOUNTED;
//! t - NVME-TCP-EXPORT
//!  0 B  t ;;; rds-csi:pvc-0b0e8b8e-3c43-4c2f-9d2e-53f0d3b1a7a1 pvc=default/da
//!             ta
//!         type=file slot="pvc-1" slot-default="" parent="" fs=-
//!         model="/raid10/volumes/a-very-long-folder-name/and-a-very-long-im
//!         age-name.img" size=1 073 741 824 …
//! ```
//!
//! The rules (`docs/routeros-cli.md`, "Output formats", says which of them are
//! observed on devices and which are assumed):
//!
//! - The `Flags:` legend wraps between entries; a line that continues ends
//!   with `;`, and the next one starts at the left margin.
//! - The index is right-aligned, each flag has a column of its own (a space
//!   when the flag is off), then either `;;; comment` or the pairs.
//! - A comment longer than the line wraps, continuing on lines indented to
//!   the column where its text began. It is cut anywhere except inside an
//!   escape and right after a space (a space at the end of a line would be
//!   lost as layout).
//! - `key=value` pairs wrap at the terminal width, never splitting a pair
//!   that fits on a line of its own; continuation lines are indented to the
//!   first pair's column. A pair longer than a whole line is cut inside its
//!   quotes (never next to a space, never inside an escape) if its value is
//!   quoted, and otherwise stands alone on a line that overflows.
//! - Strings (and comments) show `\` as `\\` and bytes outside printable
//!   ASCII as `\XX` (upper-case hex), one escape per byte of the UTF-8
//!   encoding, so every printed line is ASCII and its length is its width.
//!
//! The flag columns are ordered B, M, X, t so that a record without `X` reads
//! exactly like the example in docs/routeros-cli.md; `X` (disabled) is listed
//! in the legend only when a shown record has it.
//!
//! Lines are returned without line endings; the engine adds `\r\n`.

use crate::records::{Prop, Record, yes_no};
use crate::size::{group_thousands, human_size};
use crate::value::format_id;

/// A flag letter with its column in the flag area and its legend name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagColumn {
    /// The letter.
    pub letter: char,
    /// Its name in the `Flags:` legend.
    pub name: &'static str,
}

/// The flag columns of `/disk`.
pub const DISK_FLAGS: &[FlagColumn] = &[
    FlagColumn {
        letter: 'B',
        name: "BLOCK-DEVICE",
    },
    FlagColumn {
        letter: 'M',
        name: "MOUNTED",
    },
    FlagColumn {
        letter: 'X',
        name: "DISABLED",
    },
    FlagColumn {
        letter: 't',
        name: "NVME-TCP-EXPORT",
    },
];

/// The flag columns of `/disk/btrfs/subvolume` (*assumed* names and order).
pub const SUBVOLUME_FLAGS: &[FlagColumn] = &[
    FlagColumn {
        letter: 'D',
        name: "DELETING",
    },
    FlagColumn {
        letter: 'S',
        name: "SNAPSHOT",
    },
    FlagColumn {
        letter: 'r',
        name: "READ-ONLY",
    },
];

/// Width of the key column of `/system resource print`.
const KEY_WIDTH: usize = 25;

/// How `print` lays records out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Wrapped `key=value` records separated by blank lines (`detail`, and
    /// also plain `print`: the simulator has no table view, which clients
    /// must not parse anyway).
    Detail,
    /// One line per record, comment as `comment=`.
    Terse,
}

/// Whether a bare value must be quoted to read back as one word.
fn needs_quotes(text: &str) -> bool {
    text.is_empty()
        || !text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:/@%+,*^".contains(c))
}

/// `text` with `\` (and `"` when `quotes`) escaped by a backslash, and every
/// byte outside printable ASCII written as `\XX`.
fn escape(text: &str, quotes: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' if quotes => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            _ => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:02X}"));
                }
            }
        }
    }
    out
}

/// `text` in double quotes, escaped.
pub fn quote(text: &str) -> String {
    format!("\"{}\"", escape(text, true))
}

/// A property's value as printed.
pub fn prop_text(value: &Prop) -> String {
    match value {
        Prop::Str(s) => quote(s),
        Prop::Word(s) if needs_quotes(s) => quote(s),
        Prop::Word(s) => s.clone(),
        Prop::Bool(b) => yes_no(*b).to_string(),
        Prop::Int(n) => n.to_string(),
        Prop::Bytes(n) => group_thousands(*n),
        Prop::HumanBytes(n) => human_size(*n),
        Prop::Id(id) => format_id(*id),
        // RouterOS prints times bare, with the space between date and time.
        Prop::Time(s) if s.is_empty() => quote(s),
        Prop::Time(s) => s.clone(),
    }
}

/// A comment for the `;;;` line: escaped like a string, without quotes, so
/// that it is ASCII and can never start a line of its own.
fn comment_text(comment: &str) -> String {
    escape(comment, false)
}

/// The `Flags:` legend for `records`, wrapped at `width`; none for a menu
/// without flags.
pub fn flags_header(columns: &[FlagColumn], records: &[Record], width: usize) -> Vec<String> {
    let entries: Vec<String> = columns
        .iter()
        .filter(|c| c.letter != 'X' || records.iter().any(|r| r.flags.contains('X')))
        .map(|c| format!("{} - {}", c.letter, c.name))
        .collect();
    let mut lines = Vec::new();
    let mut line = String::from("Flags:");
    for (i, entry) in entries.iter().enumerate() {
        let last = i + 1 == entries.len();
        // "; " before the entry, and room for the ";" that would end the line
        // if another entry followed on the next one.
        let needed = 2 + entry.len() + usize::from(!last);
        if i > 0 && line.len() + needed > width {
            line.push(';');
            lines.push(std::mem::take(&mut line));
        } else if i > 0 {
            line.push_str("; ");
        } else {
            line.push(' ');
        }
        line.push_str(entry);
    }
    lines.push(line);
    lines
}

/// The positions where `text` (ASCII, escaped) may be cut: not inside an
/// escape, not right after a space, and with `strict`, not right before one
/// either. Index `i` allows a cut between `text[i - 1]` and `text[i]`.
fn cut_points(text: &str, strict: bool) -> Vec<bool> {
    let bytes = text.as_bytes();
    let mut ok = vec![true; bytes.len() + 1];
    ok[0] = false;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
            let len = if hex(i + 1) && hex(i + 2) { 3 } else { 2 };
            for inside in ok.iter_mut().skip(i + 1).take(len - 1) {
                *inside = false;
            }
            i += len;
            continue;
        }
        if bytes[i] == b' ' {
            ok[i + 1] = false;
            if strict {
                ok[i] = false;
            }
        }
        i += 1;
    }
    ok[bytes.len()] = false;
    ok
}

/// Cuts `text` into pieces: the first at most `first_room` long and at least
/// `min_first`, the others at most `room`, each cut at an allowed point. When
/// no allowed point lies within the room, the piece runs on to the next one
/// (the line overflows rather than breaking a rule).
fn cut<'t>(
    text: &'t str,
    ok: &[bool],
    first_room: usize,
    room: usize,
    min_first: usize,
) -> Vec<&'t str> {
    let mut pieces = Vec::new();
    let (mut start, mut avail, mut min) = (0, first_room, min_first.max(1));
    while text.len() - start > avail {
        let lo = start + min;
        let hi = start + avail;
        let Some(at) = (lo..=hi.min(text.len()))
            .rev()
            .find(|&p| ok[p])
            .or_else(|| (lo.max(hi + 1)..text.len()).find(|&p| ok[p]))
        else {
            break;
        };
        pieces.push(&text[start..at]);
        start = at;
        avail = room;
        min = 1;
    }
    pieces.push(&text[start..]);
    pieces
}

/// `print` output for `records`: the legend, then each record.
pub fn print_records(
    records: &[Record],
    columns: &[FlagColumn],
    style: Style,
    width: usize,
) -> Vec<String> {
    let mut lines = if columns.is_empty() {
        Vec::new()
    } else {
        flags_header(columns, records, width)
    };
    let index_width = records.len().saturating_sub(1).to_string().len().max(2);
    for (index, record) in records.iter().enumerate() {
        let mut prefix = format!("{index:>index_width$} ");
        if !columns.is_empty() {
            prefix.extend(columns.iter().map(|c| {
                if record.flags.contains(c.letter) {
                    c.letter
                } else {
                    ' '
                }
            }));
            prefix.push(' ');
        }
        let pairs = record
            .fields
            .iter()
            .filter(|f| f.shown)
            .map(|f| format!("{}={}", f.name, prop_text(&f.value)));
        match style {
            Style::Terse => {
                let comment = record
                    .comment
                    .iter()
                    .map(|c| format!("comment={}", quote(c)));
                let body: Vec<String> = comment.chain(pairs).collect();
                lines.push(format!("{prefix}{}", body.join(" ")).trim_end().to_string());
            }
            Style::Detail => {
                if index > 0 {
                    lines.push(String::new());
                }
                detail_record(&mut lines, record, &prefix, pairs, width);
            }
        }
    }
    lines
}

/// One record of `print detail`, wrapped at `width`.
fn detail_record(
    lines: &mut Vec<String>,
    record: &Record,
    prefix: &str,
    pairs: impl Iterator<Item = String>,
    width: usize,
) {
    let indent = " ".repeat(prefix.len());
    let mut line = prefix.to_string();
    if let Some(comment) = &record.comment {
        line.push_str(";;; ");
        let column = line.len();
        let text = comment_text(comment);
        let ok = cut_points(&text, false);
        let room = width.saturating_sub(column);
        for (i, piece) in cut(&text, &ok, room, room, 1).into_iter().enumerate() {
            if i > 0 {
                lines.push(std::mem::replace(&mut line, " ".repeat(column)));
            }
            line.push_str(piece);
        }
        lines.push(std::mem::replace(&mut line, indent.clone()));
    }
    let mut line_has_pair = false;
    for pair in pairs {
        let sep = usize::from(line_has_pair);
        if line.len() + sep + pair.len() <= width {
            if line_has_pair {
                line.push(' ');
            }
            line.push_str(&pair);
            line_has_pair = true;
            continue;
        }
        if line_has_pair {
            lines.push(std::mem::replace(&mut line, indent.clone()));
        }
        line_has_pair = true;
        let open_quote = pair.find('"').filter(|_| pair.ends_with('"'));
        let (Some(open_quote), false) = (open_quote, line.len() + pair.len() <= width) else {
            line.push_str(&pair);
            continue;
        };
        // A quoted value longer than a line: cut inside the quotes, never
        // next to a space, so the reader can take indentation as layout.
        let mut ok = vec![false; open_quote + 2];
        ok.extend_from_slice(&cut_points(&pair[open_quote + 1..], true)[1..]);
        let room = width.saturating_sub(indent.len());
        let first_room = width.saturating_sub(line.len());
        for (i, piece) in cut(&pair, &ok, first_room, room, open_quote + 2)
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                lines.push(std::mem::replace(&mut line, indent.clone()));
            }
            line.push_str(piece);
        }
    }
    if line_has_pair {
        lines.push(line);
    } else if record.comment.is_none() {
        // A record with nothing to show still shows its index.
        lines.push(line.trim_end().to_string());
    }
}

/// The `key: value` block of `/system resource print`.
pub fn key_value_block(pairs: &[(&str, String)]) -> Vec<String> {
    pairs
        .iter()
        .map(|(key, value)| format!("{key:>KEY_WIDTH$}: {value}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Field, disk_record};
    use crate::state::Disk;

    fn doc_disk() -> Record {
        let slot = "pvc-0b0e8b8e-3c43-4c2f-9d2e-53f0d3b1a7a1";
        let mut d = Disk::new(
            1,
            slot.into(),
            format!("/raid10/volumes/{slot}.img"),
            1 << 30,
        );
        d.nvme_tcp_export = true;
        d.mount_filesystem = false;
        d.nvme_tcp_server_nqn = format!("nqn.2000-02.com.mikrotik:{slot}");
        d.comment = Some(format!("rds-csi:{slot}"));
        disk_record(&d)
    }

    #[test]
    fn detail_matches_the_documented_layout() {
        let lines = print_records(&[doc_disk()], DISK_FLAGS, Style::Detail, 80);
        assert_eq!(
            lines[0],
            "Flags: B - BLOCK-DEVICE; M - MOUNTED; t - NVME-TCP-EXPORT"
        );
        assert_eq!(
            lines[1],
            " 0 B  t ;;; rds-csi:pvc-0b0e8b8e-3c43-4c2f-9d2e-53f0d3b1a7a1"
        );
        assert_eq!(
            lines[2],
            "        type=file slot=\"pvc-0b0e8b8e-3c43-4c2f-9d2e-53f0d3b1a7a1\""
        );
        assert!(
            lines
                .iter()
                .all(|l| l.len() <= 80 || !l.trim().contains(' ')),
            "{lines:#?}"
        );
        assert!(lines.iter().skip(2).all(|l| l.starts_with("        ")));
        let text = lines.join("\n");
        for pair in [
            "fs=-",
            "size=1 073 741 824",
            "file-size=1024.0MiB",
            "mount-filesystem=no",
            "nvme-tcp-server-port=4420",
            "file-path=/raid10/volumes/pvc-0b0e8b8e-3c43-4c2f-9d2e-53f0d3b1a7a1.img",
            "nvme-tcp-server-allow-host-name=\"\"",
        ] {
            assert!(text.contains(pair), "{pair} in {text}");
        }
    }

    #[test]
    fn wrapping_never_splits_pairs_and_long_pairs_stand_alone() {
        let record = Record {
            id: 1,
            flags: "B".into(),
            comment: None,
            fields: ["aaaa", "bbbb", "cccc"]
                .iter()
                .map(|name| Field {
                    name,
                    value: Prop::Word("x".repeat(6)),
                    shown: true,
                })
                .collect(),
        };
        // The legend takes the first three lines at this width.
        let lines = print_records(std::slice::from_ref(&record), DISK_FLAGS, Style::Detail, 31);
        assert_eq!(
            lines[3..],
            [
                " 0 B    aaaa=xxxxxx bbbb=xxxxxx".to_string(),
                "        cccc=xxxxxx".to_string()
            ]
        );
        let lines = print_records(&[record], DISK_FLAGS, Style::Detail, 30);
        assert_eq!(
            lines.len(),
            6,
            "one column less and each pair needs its own line"
        );
        // An unquoted value longer than a line stands alone and overflows.
        let lines = print_records(&[doc_disk()], DISK_FLAGS, Style::Detail, 20);
        assert!(lines.iter().any(|l| l
            == "        file-path=/raid10/volumes/pvc-0b0e8b8e-3c43-4c2f-9d2e-53f0d3b1a7a1.img"));
    }

    #[test]
    fn long_quoted_values_are_cut_inside_the_quotes() {
        let lines = print_records(&[doc_disk()], DISK_FLAGS, Style::Detail, 40);
        let at = lines
            .iter()
            .position(|l| l.trim_start().starts_with("nvme-tcp-server-nqn="))
            .unwrap();
        assert_eq!(
            lines[at..at + 3],
            [
                "        nvme-tcp-server-nqn=\"nqn.2000-02",
                "        .com.mikrotik:pvc-0b0e8b8e-3c43-",
                "        4c2f-9d2e-53f0d3b1a7a1\"",
            ]
        );
        // Never next to a space, never inside an escape, and the pieces
        // joined are the pair.
        let model = format!("{} é {}", "a".repeat(12), "b".repeat(30));
        let record = Record {
            id: 1,
            flags: String::new(),
            comment: None,
            fields: vec![Field {
                name: "model",
                value: Prop::Str(model.clone()),
                shown: true,
            }],
        };
        for width in 20..70 {
            let lines = print_records(std::slice::from_ref(&record), &[], Style::Detail, width);
            let joined: String = lines.iter().map(|l| l.trim_start()).collect();
            assert_eq!(joined, format!("0 model={}", quote(&model)), "{lines:?}");
            for pair in lines.windows(2) {
                assert!(!pair[0].ends_with(' '), "{lines:?}");
                assert!(!pair[1].trim_start().starts_with(' '), "{lines:?}");
                for inside in ["\\", "\\C", "\\A"] {
                    assert!(!pair[0].ends_with(inside), "{lines:?}");
                }
            }
        }
    }

    #[test]
    fn the_legend_wraps_between_entries() {
        let lines = print_records(&[doc_disk()], DISK_FLAGS, Style::Detail, 40);
        assert_eq!(
            lines[..2],
            [
                "Flags: B - BLOCK-DEVICE; M - MOUNTED;",
                "t - NVME-TCP-EXPORT"
            ]
        );
        assert!(lines[2].starts_with(" 0 B  t ;;; "));
    }

    #[test]
    fn long_comments_continue_at_their_own_column() {
        let mut r = doc_disk();
        r.comment = Some(format!("{} 7 é{}", "x".repeat(26), "y".repeat(30)));
        let lines = print_records(&[r], DISK_FLAGS, Style::Detail, 40);
        let column = " ".repeat(12);
        // After the two lines of the legend:
        assert_eq!(lines[2], format!(" 0 B  t ;;; {} 7", "x".repeat(26)));
        // A cut may fall before a space (kept, after the indentation), but
        // not after one, nor inside the two escapes of "é".
        assert_eq!(lines[3], format!("{column} \\C3\\A9{}", "y".repeat(21)));
        assert_eq!(lines[4], format!("{column}{}", "y".repeat(9)));
        assert_eq!(lines[5], "        type=file");
    }

    #[test]
    fn records_are_separated_and_indexes_aligned() {
        let records: Vec<Record> = (0..11)
            .map(|i| Record {
                id: i,
                flags: String::new(),
                comment: None,
                fields: vec![],
            })
            .collect();
        let lines = print_records(&records[..2], &[], Style::Detail, 80);
        assert_eq!(
            lines,
            [" 0", "", " 1"],
            "records without pairs keep their index"
        );
        let mut r = records[0].clone();
        r.fields.push(Field {
            name: "n",
            value: Prop::Int(1),
            shown: true,
        });
        let lines = print_records(&vec![r; 11], &[], Style::Detail, 80);
        assert_eq!(lines[0], " 0 n=1");
        assert_eq!(lines[1], "");
        assert_eq!(lines[20], "10 n=1");
    }

    #[test]
    fn disabled_adds_x_to_header_and_column() {
        let mut r = doc_disk();
        r.flags.push('X');
        r.comment = None;
        let lines = print_records(&[r], DISK_FLAGS, Style::Detail, 80);
        assert_eq!(
            lines[0],
            "Flags: B - BLOCK-DEVICE; M - MOUNTED; X - DISABLED; t - NVME-TCP-EXPORT"
        );
        assert!(lines[1].starts_with(" 0 B Xt type=file"), "{}", lines[1]);
    }

    #[test]
    fn terse_is_one_line() {
        let lines = print_records(&[doc_disk()], DISK_FLAGS, Style::Terse, 80);
        assert_eq!(lines.len(), 2);
        assert!(lines[1].starts_with(" 0 B  t comment=\"rds-csi:pvc-"));
    }

    #[test]
    fn quoting_rules() {
        assert_eq!(prop_text(&Prop::Str("a b".into())), "\"a b\"");
        assert_eq!(prop_text(&Prop::Str("q\"\\".into())), "\"q\\\"\\\\\"");
        assert_eq!(prop_text(&Prop::Str("é\n".into())), "\"\\C3\\A9\\0A\"");
        assert_eq!(
            prop_text(&Prop::Word("/raid10/x.img".into())),
            "/raid10/x.img"
        );
        assert_eq!(prop_text(&Prop::Word("a b".into())), "\"a b\"");
        assert_eq!(prop_text(&Prop::Word("".into())), "\"\"");
        assert_eq!(prop_text(&Prop::Word("-".into())), "-");
        assert_eq!(prop_text(&Prop::Bytes(123_456)), "123 456");
        assert_eq!(prop_text(&Prop::HumanBytes(512)), "512B");
        assert_eq!(comment_text("a\r\nb"), "a\\0D\\0Ab");
    }

    #[test]
    fn resource_block_right_aligns_keys() {
        let lines = key_value_block(&[
            ("uptime", "1s".into()),
            ("architecture-name", "arm64".into()),
        ]);
        assert_eq!(lines[0], "                   uptime: 1s");
        assert_eq!(lines[1], "        architecture-name: arm64");
    }
}
