//! Output formatting: `print detail`, `print terse` and the key/value block
//! of `/system resource print`, as the device writes them.
//!
//! A detail record looks like this (flag columns B, M, X, t):
//!
//! ```text
//! Flags: B - BLOCK-DEVICE; M - MOUNTED; t - NVME-TCP-EXPORT
//!  0 B  t ;;; rds-csi:pvc-1
//!         type=file slot="pvc-1" slot-default="" parent="" fs=-
//!         …
//! ```
//!
//! The index is right-aligned, each flag has a column of its own (a space
//! when the flag is off), an optional `;;; comment` runs to the end of the
//! first line, and `key=value` pairs wrap at the terminal width, never
//! splitting a pair; continuation lines are indented to the first pair's
//! column. The flag columns are ordered B, M, X, t so that a record without
//! `X` reads exactly like the example in docs/routeros-cli.md; `X` (disabled)
//! is listed in the header only when a shown record has it.
//!
//! Lines are returned without line endings; the engine adds `\r\n`.

use crate::records::{Prop, Record, yes_no};
use crate::size::{group_thousands, human_size};
use crate::value::format_id;

/// A flag letter with its column in the flag area and its header name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagColumn {
    /// The letter.
    pub letter: char,
    /// Its name in the `Flags:` header.
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

/// `text` in double quotes with `"` and `\` escaped, and control or
/// non-ASCII bytes written as `\XX`.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
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
    out.push('"');
    out
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

/// A comment for the `;;;` line: kept as written, except that control
/// characters are escaped so that a comment can never start a line of its
/// own.
fn comment_text(comment: &str) -> String {
    comment
        .chars()
        .map(|c| match c {
            c if c.is_control() => format!("\\{:02X}", u32::from(c)),
            c => c.to_string(),
        })
        .collect()
}

/// The `Flags:` header for `records`, or none for a menu without flags.
pub fn flags_header(columns: &[FlagColumn], records: &[Record]) -> Option<String> {
    if columns.is_empty() {
        return None;
    }
    let listed: Vec<String> = columns
        .iter()
        .filter(|c| c.letter != 'X' || records.iter().any(|r| r.flags.contains('X')))
        .map(|c| format!("{} - {}", c.letter, c.name))
        .collect();
    Some(format!("Flags: {}", listed.join("; ")))
}

/// `print` output for `records`: the header, then each record.
pub fn print_records(
    records: &[Record],
    columns: &[FlagColumn],
    style: Style,
    width: usize,
) -> Vec<String> {
    let mut lines: Vec<String> = flags_header(columns, records).into_iter().collect();
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
                let indent = " ".repeat(prefix.len());
                let mut line = match &record.comment {
                    Some(comment) => {
                        lines.push(format!("{prefix};;; {}", comment_text(comment)));
                        indent.clone()
                    }
                    None => prefix,
                };
                let mut line_has_pair = false;
                for pair in pairs {
                    if line_has_pair && line.len() + 1 + pair.len() > width {
                        lines.push(std::mem::replace(&mut line, indent.clone()));
                        line_has_pair = false;
                    }
                    if line_has_pair {
                        line.push(' ');
                    }
                    line.push_str(&pair);
                    line_has_pair = true;
                }
                if line_has_pair {
                    lines.push(line);
                } else if record.comment.is_none() {
                    // A record with nothing to show still shows its index.
                    lines.push(line.trim_end().to_string());
                }
            }
        }
    }
    lines
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
        let lines = print_records(std::slice::from_ref(&record), DISK_FLAGS, Style::Detail, 31);
        assert_eq!(
            lines[1..],
            [
                " 0 B    aaaa=xxxxxx bbbb=xxxxxx".to_string(),
                "        cccc=xxxxxx".to_string()
            ]
        );
        let lines = print_records(&[record], DISK_FLAGS, Style::Detail, 30);
        assert_eq!(
            lines.len(),
            4,
            "one column less and each pair needs its own line"
        );
        let lines = print_records(&[doc_disk()], DISK_FLAGS, Style::Detail, 20);
        assert!(lines.iter().any(|l| l == "        nvme-tcp-server-nqn=\"nqn.2000-02.com.mikrotik:pvc-0b0e8b8e-3c43-4c2f-9d2e-53f0d3b1a7a1\""));
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
