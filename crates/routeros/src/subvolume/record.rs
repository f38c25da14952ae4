//! Reading `/disk/btrfs/subvolume print detail`.
//!
//! ```text
//! Flags: S - SNAPSHOT; r - READ-ONLY; D - DELETING
//!  0 S r name="snap-5c1f…-pvc-0b0e…-1073741824"
//!        fullname="volumes/snap-5c1f…-pvc-0b0e…-1073741824" fs="pool1"
//!        top-level=5 parent="pvc-0b0e…" uuid=83145bb5-39de-654d-9d8c-579b1c8fcfeb
//!        creation-time=2025-01-22 10:11:12
//! ```
//!
//! The layout is `print detail`'s, read by [`crate::detail`], with one
//! difference: RouterOS prints a date and time unquoted, with a space inside
//! (`creation-time=2025-01-22 10:11:12`), which no record parser can read as
//! one value. [`parse_subvolume_print`] first quotes the value of each
//! time-valued key, and only when it is exactly a date and a time; any other
//! text is left for the record parser to accept or refuse.

use crate::detail::{ParseError, PrintOutput, Record, parse_print_detail};
use crate::disk::RecordError;
use crate::subvolume::names::SnapshotName;

/// Keys whose values are a date and a time.
const TIME_KEYS: &[&str] = &["creation-time"];

/// A date and time as RouterOS prints it. RouterOS prints the appliance's
/// local time without a zone; the driver assumes the RDS's clock is set to
/// UTC (RouterOS's default time zone), as the CSI `creation_time` only needs
/// to be the same every time it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouterOsTime {
    /// Year, e.g. 2025.
    pub year: i32,
    /// Month, 1–12.
    pub month: u32,
    /// Day of the month, 1–31.
    pub day: u32,
    /// Hour, 0–23.
    pub hour: u32,
    /// Minute, 0–59.
    pub minute: u32,
    /// Second, 0–60.
    pub second: u32,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

impl RouterOsTime {
    /// Reads `2025-01-22 10:11:12` (RouterOS 7.10 and later) or
    /// `jan/22/2025 10:11:12` (earlier releases).
    pub fn parse(text: &str) -> Option<Self> {
        let (date, time) = text.trim().split_once(' ')?;
        let (year, month, day) = parse_date(date)?;
        let (hour, minute, second) = parse_clock(time)?;
        Some(Self {
            year,
            month,
            day,
            hour,
            minute,
            second,
        })
    }

    /// Seconds since 1970-01-01 00:00:00 UTC, reading the time as UTC.
    pub fn unix_seconds(&self) -> i64 {
        // Days from the civil date (Howard Hinnant's algorithm).
        let year = i64::from(self.year) - i64::from(self.month <= 2);
        let era = year.div_euclid(400);
        let yoe = year.rem_euclid(400);
        let month = i64::from(self.month);
        let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5
            + i64::from(self.day)
            - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }
}

fn digits<T: std::str::FromStr>(text: &str, len: usize) -> Option<T> {
    (text.len() == len && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

fn parse_date(date: &str) -> Option<(i32, u32, u32)> {
    let (year, month, day) = if let Some((y, rest)) = date.split_once('-') {
        let (m, d) = rest.split_once('-')?;
        (digits(y, 4)?, digits(m, 2)?, digits(d, 2)?)
    } else {
        let mut parts = date.split('/');
        let name = parts.next()?;
        let month = MONTHS.iter().position(|m| *m == name)? as u32 + 1;
        let day = digits(parts.next()?, 2)?;
        let year = digits(parts.next()?, 4)?;
        if parts.next().is_some() {
            return None;
        }
        (year, month, day)
    };
    ((1..=12).contains(&month) && (1..=31).contains(&day)).then_some((year, month, day))
}

fn parse_clock(time: &str) -> Option<(u32, u32, u32)> {
    let mut parts = time.split(':');
    let hour: u32 = digits(parts.next()?, 2)?;
    let minute: u32 = digits(parts.next()?, 2)?;
    let second: u32 = digits(parts.next()?, 2)?;
    if parts.next().is_some() || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some((hour, minute, second))
}

/// Parses `/disk/btrfs/subvolume print detail` output (see the module's
/// documentation). Lines outside any record are messages, as for any print.
pub fn parse_subvolume_print(output: &str) -> Result<PrintOutput, ParseError> {
    parse_print_detail(&quote_times(output))
}

/// Puts the unquoted date and time of each time-valued key in quotes, outside
/// quoted values only.
fn quote_times(output: &str) -> String {
    output
        .split_inclusive('\n')
        .map(quote_times_in_line)
        .collect()
}

fn quote_times_in_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 4);
    let mut in_quotes = false;
    let mut escaped = false;
    let mut pos = 0;
    while pos < line.len() {
        let rest = &line[pos..];
        let at_word_start = pos == 0 || line.as_bytes()[pos - 1] == b' ';
        if !in_quotes
            && at_word_start
            && let Some(key) = TIME_KEYS.iter().find(|k| {
                rest.strip_prefix(**k)
                    .is_some_and(|after| after.starts_with('='))
            })
        {
            let value_at = key.len() + 1;
            out.push_str(&rest[..value_at]);
            pos += value_at;
            if let Some((date_time, len)) = date_time_at(&line[pos..]) {
                out.push('"');
                out.push_str(date_time);
                out.push('"');
                pos += len;
            }
            continue;
        }
        let Some(ch) = rest.chars().next() else {
            break;
        };
        if in_quotes && escaped {
            escaped = false;
        } else if in_quotes && ch == '\\' {
            escaped = true;
        } else if ch == '"' {
            in_quotes = !in_quotes;
        }
        out.push(ch);
        pos += ch.len_utf8();
    }
    out
}

/// `2025-01-22 10:11:12…` at the start of `text`: the date and time, and
/// their length, when the time is followed by a space or the line's end.
fn date_time_at(text: &str) -> Option<(&str, usize)> {
    let date_len = text.find(' ')?;
    let after_date = &text[date_len + 1..];
    let time_len = after_date
        .find([' ', '\r', '\n'])
        .unwrap_or(after_date.len());
    let len = date_len + 1 + time_len;
    let candidate = &text[..len];
    RouterOsTime::parse(candidate).map(|_| (candidate, len))
}

/// A subvolume as `print detail` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subvolume {
    /// Its name: the last segment of its path.
    pub name: String,
    /// Its path from the top of its filesystem, when printed.
    pub fullname: Option<String>,
    /// The label of its btrfs filesystem, when printed.
    pub fs: Option<String>,
    /// The name of the subvolume it is a snapshot of; none when it is not a
    /// snapshot or that subvolume is gone.
    pub parent: Option<String>,
    /// Its btrfs UUID, when printed.
    pub uuid: Option<String>,
    /// When it was made, when printed and readable.
    pub creation_time: Option<RouterOsTime>,
    /// Read-only (flag `r`, or `read-only=yes`).
    pub read_only: bool,
    /// A snapshot (flag `S`).
    pub snapshot: bool,
    /// Being removed (flag `D`).
    pub deleting: bool,
}

impl Subvolume {
    /// Reads a record. Only `name` is required; a `creation-time` that is
    /// not a date and time is an error rather than a missing value.
    pub fn from_record(record: &Record) -> Result<Self, RecordError> {
        let name = record.get("name").unwrap_or_default().to_owned();
        if name.is_empty() {
            return Err(RecordError::Missing {
                what: "subvolume",
                slot: name,
                field: "name",
            });
        }
        let invalid = |field, value: &str, expected| RecordError::Invalid {
            what: "subvolume",
            slot: name.clone(),
            field,
            value: value.to_owned(),
            expected,
        };
        let creation_time = match record.get("creation-time") {
            None | Some("") => None,
            Some(text) => Some(
                RouterOsTime::parse(text)
                    .ok_or_else(|| invalid("creation-time", text, "a date and time"))?,
            ),
        };
        let read_only = match record.get("read-only") {
            None => record.has_flag('r'),
            Some("yes" | "true") => true,
            Some("no" | "false") => false,
            Some(other) => return Err(invalid("read-only", other, "yes or no")),
        };
        let text = |field| {
            record
                .get(field)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        Ok(Self {
            fullname: text("fullname"),
            fs: text("fs"),
            parent: text("parent"),
            uuid: text("uuid"),
            creation_time,
            read_only,
            snapshot: record.has_flag('S'),
            deleting: record.has_flag('D'),
            name,
        })
    }
}

/// One of the driver's snapshots: a subvolume whose name has the snapshot
/// shape ([`SnapshotName`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// What its name says: ID, source volume, size.
    pub name: SnapshotName,
    /// The subvolume.
    pub subvolume: Subvolume,
}

impl Snapshot {
    /// The snapshot a subvolume is, if its name is of the driver's shape.
    pub fn of(subvolume: Subvolume) -> Option<Self> {
        SnapshotName::parse(&subvolume.name).map(|name| Self { name, subvolume })
    }

    /// Ready to restore from: read-only (a snapshot is made read-only in
    /// the same command that makes it) and not being removed.
    pub fn ready_to_use(&self) -> bool {
        self.subvolume.read_only && !self.subvolume.deleting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_both_formats() {
        let t = RouterOsTime::parse("2025-11-20 10:11:12").unwrap();
        assert_eq!(t.unix_seconds(), 1_763_633_472);
        assert_eq!(RouterOsTime::parse("nov/20/2025 10:11:12"), Some(t));
        assert_eq!(
            RouterOsTime::parse("1970-01-01 00:00:00")
                .unwrap()
                .unix_seconds(),
            0
        );
        assert_eq!(
            RouterOsTime::parse("2000-02-29 00:00:00")
                .unwrap()
                .unix_seconds(),
            951_782_400
        );
        for bad in [
            "",
            "2025-11-20",
            "2025-11-20 10:11",
            "2025-13-20 10:11:12",
            "2025-11-20 24:11:12",
            "xyz/20/2025 10:11:12",
            "2025-1-20 10:11:12",
            "20251120 101112",
        ] {
            assert_eq!(RouterOsTime::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn unquoted_times_are_quoted_outside_quotes_only() {
        let line = " 0 S r name=\"x creation-time=2020-01-01 00:00:00\" creation-time=2025-11-20 10:11:12 uuid=a\r\n";
        assert_eq!(
            quote_times(line),
            " 0 S r name=\"x creation-time=2020-01-01 00:00:00\" creation-time=\"2025-11-20 10:11:12\" uuid=a\r\n"
        );
        // At the end of a line, quoted already, or not a time: unchanged.
        assert_eq!(
            quote_times("   creation-time=jan/02/2025 03:04:05\n"),
            "   creation-time=\"jan/02/2025 03:04:05\"\n"
        );
        for same in [
            "   creation-time=\"2025-11-20 10:11:12\"\n",
            "   creation-time=2025-11-20 soon\n",
            "   xcreation-time=2025-11-20 10:11:12\n",
        ] {
            assert_eq!(quote_times(same), same);
        }
    }

    #[test]
    fn a_snapshot_record() {
        let out = parse_subvolume_print(concat!(
            "Flags: S - SNAPSHOT; r - READ-ONLY; D - DELETING\r\n",
            " 0 S r name=\"snap-0123456789abcdef0123456789ab-pvc-1-1073741824\"\r\n",
            "       fullname=\"volumes/snap-0123456789abcdef0123456789ab-pvc-1-1073741824\"\r\n",
            "       fs=\"pool1\" top-level=5 parent=\"\" uuid=83145bb5-39de-654d-9d8c-579b1c8fcfeb\r\n",
            "       creation-time=2025-11-20 10:11:12\r\n",
        ))
        .unwrap();
        assert!(out.messages.is_empty());
        let sub = Subvolume::from_record(&out.records[0]).unwrap();
        assert!(sub.read_only && sub.snapshot && !sub.deleting);
        assert_eq!(sub.parent, None, "the source is gone");
        assert_eq!(sub.fs.as_deref(), Some("pool1"));
        assert_eq!(
            sub.creation_time.map(|t| t.unix_seconds()),
            Some(1_763_633_472)
        );
        let snap = Snapshot::of(sub).unwrap();
        assert_eq!(snap.name.source.as_str(), "pvc-1");
        assert_eq!(snap.name.size, 1 << 30);
        assert!(snap.ready_to_use());
    }

    #[test]
    fn readiness_and_shapes() {
        let record = |text: &str| parse_subvolume_print(text).unwrap().records.remove(0);
        let writable = Subvolume::from_record(&record(
            " 0 S name=\"snap-0123456789abcdef0123456789ab-pvc-1-1\"\n",
        ))
        .unwrap();
        assert!(!Snapshot::of(writable).unwrap().ready_to_use());
        let going = Subvolume::from_record(&record(
            " 0 S rD name=\"snap-0123456789abcdef0123456789ab-pvc-1-1\"\n",
        ))
        .unwrap();
        assert!(!Snapshot::of(going).unwrap().ready_to_use());
        let explicit = Subvolume::from_record(&record(
            " 0 name=\"snap-0123456789abcdef0123456789ab-pvc-1-1\" read-only=yes\n",
        ))
        .unwrap();
        assert!(Snapshot::of(explicit).unwrap().ready_to_use());
        let volume = Subvolume::from_record(&record(" 0 name=\"pvc-1\"\n")).unwrap();
        assert_eq!(Snapshot::of(volume), None);
        assert!(Subvolume::from_record(&record(" 0 fullname=\"x\"\n")).is_err());
        assert!(Subvolume::from_record(&record(" 0 name=\"a\" creation-time=\"soon\"\n")).is_err());
        assert!(Subvolume::from_record(&record(" 0 name=\"a\" read-only=maybe\n")).is_err());
    }
}
