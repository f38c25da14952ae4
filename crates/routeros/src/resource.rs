//! `/system resource print` and RouterOS versions.
//!
//! ```text
//!                   version: 7.21.1 (stable)
//!                board-name: RDS2216
//! ```

use std::fmt;

/// The RouterOS release that introduced `nvme-tcp-server-nqn`, the newest
/// property the driver sets (`file-path`/`file-size` arrived in 7.17).
pub const MINIMUM_VERSION: Version = Version {
    major: 7,
    minor: 21,
    patch: 0,
};

/// The properties the driver sets that not every RouterOS 7 release has,
/// each with the release that introduced it. [`MINIMUM_VERSION`] is the
/// newest of them.
pub const VERSIONED_PROPERTIES: &[(&str, Version)] = &[
    (
        "file-path and file-size (file-backed disks)",
        Version {
            major: 7,
            minor: 17,
            patch: 0,
        },
    ),
    (
        "nvme-tcp-server-nqn (the export's NQN)",
        Version {
            major: 7,
            minor: 21,
            patch: 0,
        },
    ),
];

/// The properties of [`VERSIONED_PROPERTIES`] that `version` does not have
/// yet, each with the release that brings it.
pub fn missing_properties(version: Version) -> Vec<(&'static str, Version)> {
    VERSIONED_PROPERTIES
        .iter()
        .filter(|(_, since)| version < *since)
        .copied()
        .collect()
}

/// A RouterOS version, such as `7.21.1`. Pre-release suffixes (`rc2`, `beta3`)
/// are dropped: a release candidate of 7.21 is treated as 7.21.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major number (7).
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// Patch number, 0 when absent.
    pub patch: u32,
}

impl Version {
    /// Parses `7.21.1`, `7.21`, `7.16rc2` or `7.21.1 (stable)`.
    pub fn parse(text: &str) -> Option<Self> {
        let word = text.split_whitespace().next()?;
        let numeric_end = word
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(word.len());
        let mut parts = word[..numeric_end].split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = match parts.next() {
            None | Some("") => 0,
            Some(p) => p.parse().ok()?,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Self {
            major,
            minor,
            patch,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// What the driver reads from `/system resource print`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemResource {
    /// The version as printed (`7.21.1 (stable)`).
    pub version_text: String,
    /// The parsed version.
    pub version: Version,
    /// The board (`RDS2216`), if printed.
    pub board_name: Option<String>,
    /// Every `key: value` line, in order.
    pub fields: Vec<(String, String)>,
}

/// Why `/system resource print` output could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// No `version:` line.
    #[error("no version in /system resource output")]
    NoVersion,
    /// A version that is not `major.minor[.patch]`.
    #[error("cannot read RouterOS version {0:?}")]
    BadVersion(String),
}

/// Parses `/system resource print`. Lines that are not `key: value` are ignored;
/// callers check for error messages before calling this.
pub fn parse_system_resource(output: &str) -> Result<SystemResource, ResourceError> {
    let fields: Vec<(String, String)> = output
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(':')?;
            let key = key.trim();
            let valid_key =
                !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            valid_key.then(|| (key.to_owned(), value.trim().to_owned()))
        })
        .collect();
    let get = |k: &str| {
        fields
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let version_text = get("version").ok_or(ResourceError::NoVersion)?;
    let version = Version::parse(&version_text)
        .ok_or_else(|| ResourceError::BadVersion(version_text.clone()))?;
    Ok(SystemResource {
        board_name: get("board-name"),
        version_text,
        version,
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let v = |t| Version::parse(t).unwrap();
        assert_eq!(
            v("7.21.1 (stable)"),
            Version {
                major: 7,
                minor: 21,
                patch: 1
            }
        );
        assert_eq!(
            v("7.21"),
            Version {
                major: 7,
                minor: 21,
                patch: 0
            }
        );
        assert_eq!(
            v("7.16rc2"),
            Version {
                major: 7,
                minor: 16,
                patch: 0
            }
        );
        assert!(v("7.20.9") < MINIMUM_VERSION);
        assert!(v("7.21") >= MINIMUM_VERSION);
        assert!(v("7.100") > v("7.21.5"));
        assert_eq!(Version::parse("seven"), None);
        assert_eq!(Version::parse("7"), None);
        assert_eq!(Version::parse("7.1.2.3"), None);
        assert_eq!(v("7.21.1").to_string(), "7.21.1");
    }

    #[test]
    fn properties_by_version() {
        let newest = VERSIONED_PROPERTIES.iter().map(|(_, v)| *v).max();
        assert_eq!(newest, Some(MINIMUM_VERSION));
        let names = |t| {
            missing_properties(Version::parse(t).unwrap())
                .iter()
                .map(|(name, _)| name.split(' ').next().unwrap_or_default())
                .collect::<Vec<_>>()
        };
        assert_eq!(names("7.21.1"), Vec::<&str>::new());
        assert_eq!(names("7.20.3"), ["nvme-tcp-server-nqn"]);
        assert_eq!(names("7.16"), ["file-path", "nvme-tcp-server-nqn"]);
        assert_eq!(missing_properties(MINIMUM_VERSION), []);
    }

    #[test]
    fn resource_block() {
        let r = parse_system_resource(concat!(
            "                   uptime: 3d4h12m9s\r\n",
            "                  version: 7.21.1 (stable)\r\n",
            "               build-time: 2025-11-20 10:11:12\r\n",
            "               board-name: RDS2216\r\n",
        ))
        .unwrap();
        assert_eq!(r.version_text, "7.21.1 (stable)");
        assert_eq!(
            r.version,
            Version {
                major: 7,
                minor: 21,
                patch: 1
            }
        );
        assert_eq!(r.board_name.as_deref(), Some("RDS2216"));
        assert_eq!(
            r.fields[2],
            ("build-time".into(), "2025-11-20 10:11:12".into())
        );
        assert_eq!(
            parse_system_resource("uptime: 1s\n"),
            Err(ResourceError::NoVersion)
        );
        assert!(matches!(
            parse_system_resource("version: x\n"),
            Err(ResourceError::BadVersion(_))
        ));
    }
}
