//! Sizes as RouterOS prints them.
//!
//! Exact byte counts are grouped in thousands with spaces (`53 687 091 200`).
//! `file-size` is printed rounded for humans (`50.0GiB`): it is only ever used for
//! display and sanity checks, never as a volume's size.

/// Parses an exact byte count, with or without thousands grouping.
pub fn parse_grouped(text: &str) -> Option<u64> {
    let mut digits = 0usize;
    let mut value: u64 = 0;
    for b in text.bytes() {
        match b {
            b'0'..=b'9' => {
                digits += 1;
                value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
            }
            b' ' => {}
            _ => return None,
        }
    }
    (digits > 0).then_some(value)
}

/// Parses a human-readable size (`1024.0MiB`, `50.0GiB`, `512B`, `10G`) into an
/// approximate byte count. Binary multiples throughout, as RouterOS uses them.
pub fn parse_human(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "K" | "KiB" | "k" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        "T" | "TiB" => 40,
        "P" | "PiB" => 50,
        _ => return None,
    };
    let bytes = number * (1u64 << shift) as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then(|| bytes.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped() {
        assert_eq!(parse_grouped("53 687 091 200"), Some(53_687_091_200));
        assert_eq!(parse_grouped("53687091200"), Some(53_687_091_200));
        assert_eq!(parse_grouped("0"), Some(0));
        assert_eq!(parse_grouped(""), None);
        assert_eq!(parse_grouped("1.5"), None);
        assert_eq!(parse_grouped("99999999999999999999"), None);
    }

    #[test]
    fn human() {
        assert_eq!(parse_human("1024.0MiB"), Some(1 << 30));
        assert_eq!(parse_human("50.0GiB"), Some(50 << 30));
        assert_eq!(parse_human("1.5TiB"), Some(3 << 39));
        assert_eq!(parse_human("512B"), Some(512));
        assert_eq!(parse_human("10G"), Some(10 << 30));
        assert_eq!(parse_human("7"), Some(7));
        assert_eq!(parse_human("1.0XiB"), None);
        assert_eq!(parse_human("GiB"), None);
    }
}
