//! Sizes: reading `10G`-style input and writing sizes the way RouterOS
//! prints them.

/// Binary unit names, from KiB up.
const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];

/// Reads a size: digits with an optional binary unit `K`, `M`, `G`, `T` or
/// `P` (either case, optionally followed by `iB`), as RouterOS accepts
/// `file-size=10G`. Fractions and overflowing sizes are refused.
pub fn parse_size(text: &str) -> Option<u64> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let unit = unit.strip_suffix("iB").unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" | "K" => 10,
        "m" | "M" => 20,
        "g" | "G" => 30,
        "t" | "T" => 40,
        "p" | "P" => 50,
        _ => return None,
    };
    number.checked_mul(1u64 << shift)
}

/// Writes `bytes` for humans, as RouterOS shows `file-size`: one decimal in
/// the largest binary unit the size *exceeds*, so 1 GiB is `1024.0MiB` and
/// 1.5 TiB is `1.5TiB`; up to 1 KiB it is plain bytes (`512B`, `1024B`).
pub fn human_size(bytes: u64) -> String {
    let mut unit = None;
    for (i, name) in UNITS.iter().enumerate() {
        if bytes > 1u64 << (10 * (i + 1)) {
            unit = Some((i, *name));
        }
    }
    match unit {
        None => format!("{bytes}B"),
        Some((i, name)) => {
            // f64 holds 53 bits exactly; one decimal is all that is shown.
            let value = bytes as f64 / (1u64 << (10 * (i + 1))) as f64;
            format!("{value:.1}{name}")
        }
    }
}

/// Groups a number of five or more digits in thousands with spaces:
/// `1 073 741 824`; shorter numbers stay as they are (`4420`).
pub fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    if digits.len() < 5 {
        return digits;
    }
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_size("1073741824"), Some(1 << 30));
        assert_eq!(parse_size("10G"), Some(10 << 30));
        assert_eq!(parse_size("1T"), Some(1 << 40));
        assert_eq!(parse_size("512k"), Some(512 << 10));
        assert_eq!(parse_size("3MiB"), Some(3 << 20));
        assert_eq!(parse_size("0"), Some(0));
        for bad in [
            "",
            "G",
            "1.5G",
            "10X",
            "-1",
            "1 G",
            "99999999999T",
            "18446744073709551616",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(1024), "1024B");
        assert_eq!(human_size(1025), "1.0KiB");
        assert_eq!(human_size(1 << 30), "1024.0MiB");
        assert_eq!(human_size(3 << 29), "1.5GiB");
        assert_eq!(human_size(50 << 30), "50.0GiB");
        assert_eq!(human_size(1 << 40), "1024.0GiB");
        assert_eq!(human_size(3 << 39), "1.5TiB");
        assert_eq!(human_size(0), "0B");
    }

    #[test]
    fn grouping() {
        assert_eq!(group_thousands(4420), "4420");
        assert_eq!(group_thousands(12345), "12 345");
        assert_eq!(group_thousands(1_073_741_824), "1 073 741 824");
        assert_eq!(group_thousands(7_681_574_174_720), "7 681 574 174 720");
        assert_eq!(group_thousands(100_000), "100 000");
    }
}
