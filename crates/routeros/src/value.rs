//! Typed values that may be placed in a RouterOS command.
//!
//! RouterOS's CLI is a small language: `$` starts a variable, `[` a command
//! substitution, `;` a new command, and unquoted spaces end a word. A value that
//! reaches a command unchecked can therefore change what the command does. Every
//! value in this module is validated when it is made, against an allow-list of
//! characters, and is written quoted (see [`quote`]). Anything else is refused with
//! an error that names the value, the offending character and its position.
//!
//! The allow-lists are deliberately small; they admit everything the driver
//! produces (Kubernetes names, `pvc-<uuid>` slots, NQNs, image paths).

use std::fmt;

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// The value is empty where something is required.
    #[error("{what} must not be empty")]
    Empty {
        /// What kind of value it was (`slot`, `image path`, ...).
        what: &'static str,
    },
    /// The value is longer than the appliance or the protocol allows.
    #[error("{what} {value:?} is {len} characters long; at most {max} are allowed")]
    TooLong {
        /// What kind of value it was.
        what: &'static str,
        /// The refused value.
        value: String,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A character outside the value's allow-list.
    #[error("{what} {value:?} contains {ch:?} at position {position}; {allowed}")]
    InvalidChar {
        /// What kind of value it was.
        what: &'static str,
        /// The refused value.
        value: String,
        /// The first character that is not allowed.
        ch: char,
        /// Its position, counted in characters from 0.
        position: usize,
        /// A sentence saying what is allowed.
        allowed: &'static str,
    },
    /// The value is made of allowed characters but has the wrong shape.
    #[error("{what} {value:?} is not valid: {reason}")]
    Malformed {
        /// What kind of value it was.
        what: &'static str,
        /// The refused value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Keeps [`CliValue`] implemented only in this module.
pub(crate) mod sealed {
    /// The supertrait of [`super::CliValue`], which no other crate can name
    /// and so no other crate can implement.
    pub trait Sealed {}
}

/// Something that can be written into a command as one value.
///
/// Implemented only by this module's types, whose every instance is safe to
/// send: the trait is sealed (its supertrait is private), so no other crate
/// can add an implementation, for `str` or anything else, and unchecked text
/// cannot reach a command:
///
/// ```compile_fail,E0277
/// struct Raw(&'static str);
/// impl routeros::CliValue for Raw {
///     fn write_cli(&self, out: &mut String) {
///         out.push_str(self.0);
///     }
/// }
/// ```
pub trait CliValue: sealed::Sealed {
    /// Appends the value, quoted as needed, to `out`.
    fn write_cli(&self, out: &mut String);
}

/// Quotes `text` as a RouterOS string literal.
///
/// Inside double quotes RouterOS gives `"`, `\`, `$` and `?` special meaning; they
/// are escaped with a backslash. Control characters and non-ASCII text are refused:
/// RouterOS would need `\XX` escapes whose byte-level meaning on the appliance is
/// not something we want to depend on.
pub fn quote(text: &str) -> Result<String, ValueError> {
    let mut out = String::with_capacity(text.len() + 2);
    for (position, ch) in text.chars().enumerate() {
        if !(' '..='~').contains(&ch) {
            return Err(ValueError::InvalidChar {
                what: "text",
                value: text.to_owned(),
                ch,
                position,
                allowed: "only printable ASCII characters can be sent to RouterOS",
            });
        }
    }
    push_quoted(&mut out, text);
    Ok(out)
}

/// Appends `text` in double quotes, escaping RouterOS's special characters.
/// Callers guarantee `text` is printable ASCII.
pub(crate) fn push_quoted(out: &mut String, text: &str) {
    out.push('"');
    for ch in text.chars() {
        if matches!(ch, '"' | '\\' | '$' | '?') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('"');
}

/// Checks `value` against an allow-list, returning the first offending character.
pub(crate) fn check_chars(
    what: &'static str,
    value: &str,
    allowed: &'static str,
    ok: impl Fn(char) -> bool,
) -> Result<(), ValueError> {
    match value.chars().enumerate().find(|&(_, ch)| !ok(ch)) {
        Some((position, ch)) => Err(ValueError::InvalidChar {
            what,
            value: value.to_owned(),
            ch,
            position,
            allowed,
        }),
        None => Ok(()),
    }
}

pub(crate) fn check_len(what: &'static str, value: &str, max: usize) -> Result<(), ValueError> {
    if value.is_empty() {
        return Err(ValueError::Empty { what });
    }
    if value.len() > max {
        return Err(ValueError::TooLong {
            what,
            value: value.to_owned(),
            len: value.len(),
            max,
        });
    }
    Ok(())
}

/// Declares a validated string newtype with `as_str`, `Display` and `CliValue`.
macro_rules! text_value {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The value as text, without quotes.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl $crate::value::sealed::Sealed for $name {}

        impl CliValue for $name {
            fn write_cli(&self, out: &mut String) {
                push_quoted(out, &self.0);
            }
        }

        impl std::str::FromStr for $name {
            type Err = ValueError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }
    };
}
// The subvolume module declares its values with the same macro.
pub(crate) use text_value;

/// The longest slot this driver gives a new disk: RouterOS 7.24 refuses longer
/// ones.
pub const MAX_NEW_SLOT_LEN: usize = 32;

/// The longest slot this driver refers to. Older RouterOS releases accepted
/// longer slots (the Go driver made 40-character `pvc-<uuid>` ones), and such
/// disks must stay manageable.
pub const MAX_SLOT_LEN: usize = 64;

text_value! {
    /// A `/disk` slot name: the disk's unique name on the appliance and, for this
    /// driver, the volume's identity. `[A-Za-z0-9_-]`, 1–64 characters (new disks:
    /// at most [`MAX_NEW_SLOT_LEN`]), starting with a letter or digit.
    Slot
}

impl Slot {
    /// Validates a slot name.
    pub fn new(value: &str) -> Result<Self, ValueError> {
        const WHAT: &str = "slot";
        check_len(WHAT, value, MAX_SLOT_LEN)?;
        check_chars(
            WHAT,
            value,
            "slots may contain only letters, digits, '-' and '_'",
            |c| c.is_ascii_alphanumeric() || c == '-' || c == '_',
        )?;
        if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(ValueError::Malformed {
                what: WHAT,
                value: value.to_owned(),
                reason: "it must start with a letter or a digit",
            });
        }
        Ok(Self(value.to_owned()))
    }
}

text_value! {
    /// The start of a slot name, used to list volumes (`where slot~"^prefix"`).
    /// Same alphabet as [`Slot`], so it holds no regular-expression metacharacters.
    /// Written as the quoted regex `"^prefix"`.
    SlotPrefix
}

impl SlotPrefix {
    /// Validates a prefix. An empty prefix matches every slot.
    pub fn new(value: &str) -> Result<Self, ValueError> {
        const WHAT: &str = "slot prefix";
        if value.len() > MAX_SLOT_LEN {
            return Err(ValueError::TooLong {
                what: WHAT,
                value: value.to_owned(),
                len: value.len(),
                max: MAX_SLOT_LEN,
            });
        }
        check_chars(
            WHAT,
            value,
            "slot prefixes may contain only letters, digits, '-' and '_'",
            |c| c.is_ascii_alphanumeric() || c == '-' || c == '_',
        )?;
        Ok(Self(format!("^{value}")))
    }

    /// The prefix without the leading `^`.
    pub fn prefix(&self) -> &str {
        &self.0[1..]
    }
}

/// The longest file path accepted for an image.
pub const MAX_PATH_LEN: usize = 255;

text_value! {
    /// An absolute path on the appliance, such as `/raid10/volumes/pvc-1.img`:
    /// segments of `[A-Za-z0-9._-]` separated by single slashes, no `.` or `..`
    /// segment, no trailing slash.
    RdsPath
}

impl RdsPath {
    /// Validates an absolute path.
    pub fn new(value: &str) -> Result<Self, ValueError> {
        const WHAT: &str = "path";
        check_len(WHAT, value, MAX_PATH_LEN)?;
        check_chars(
            WHAT,
            value,
            "paths may contain only letters, digits, '.', '-', '_' and '/'",
            |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'),
        )?;
        let malformed = |reason| ValueError::Malformed {
            what: WHAT,
            value: value.to_owned(),
            reason,
        };
        let Some(rest) = value.strip_prefix('/') else {
            return Err(malformed("it must be absolute, starting with '/'"));
        };
        for segment in rest.split('/') {
            match segment {
                "" => {
                    return Err(malformed(
                        "it has an empty segment ('//' or a trailing '/')",
                    ));
                }
                "." | ".." => return Err(malformed("it must not contain '.' or '..' segments")),
                _ => {}
            }
        }
        Ok(Self(value.to_owned()))
    }

    /// The first segment: on the RDS, the mount point of the pool holding the file.
    pub fn pool(&self) -> PoolName {
        let first = self.0[1..].split('/').next().unwrap_or_default();
        PoolName(first.to_owned())
    }

    /// The path as `/file` names it: without the leading slash.
    pub fn file_name(&self) -> FileName {
        FileName(self.0[1..].to_owned())
    }

    /// Appends a segment, validating the result.
    pub fn join(&self, segment: &str) -> Result<RdsPath, ValueError> {
        if segment.contains('/') {
            return Err(ValueError::InvalidChar {
                what: "path segment",
                value: segment.to_owned(),
                ch: '/',
                position: segment.find('/').unwrap_or_default(),
                allowed: "a segment must not contain '/'",
            });
        }
        RdsPath::new(&format!("{}/{segment}", self.0))
    }
}

text_value! {
    /// The regular expression that matches the image file of a slot in any
    /// folder: `/<slot>\.img$`. Slots hold no regex metacharacters.
    ImagePattern
}

impl ImagePattern {
    /// The pattern for `slot`'s image.
    pub fn of(slot: &Slot) -> Self {
        Self(format!("/{slot}\\.img$"))
    }

    // Only made from a slot; `FromStr` goes through here.
    fn new(value: &str) -> Result<Self, ValueError> {
        value
            .strip_prefix('/')
            .and_then(|v| v.strip_suffix("\\.img$"))
            .ok_or(ValueError::Malformed {
                what: "image pattern",
                value: value.to_owned(),
                reason: "it must be /<slot>\\.img$",
            })
            .and_then(Slot::new)
            .map(|slot| Self::of(&slot))
    }
}

text_value! {
    /// A file's name in RouterOS's `/file` menu: a path without the leading slash.
    /// Only made from an [`RdsPath`].
    FileName
}

impl FileName {
    fn new(value: &str) -> Result<Self, ValueError> {
        Ok(RdsPath::new(&format!("/{value}"))?.file_name())
    }
}

text_value! {
    /// A pool's mount point (`raid10`), the first segment of an [`RdsPath`].
    PoolName
}

impl PoolName {
    /// Validates a pool name: one path segment.
    pub fn new(value: &str) -> Result<Self, ValueError> {
        Ok(RdsPath::new(&format!("/{value}"))?.pool())
    }
}

/// The longest NQN the NVMe specification allows, in bytes.
pub const MAX_NQN_LEN: usize = 223;

text_value! {
    /// An NVMe Qualified Name, such as `nqn.2000-02.com.mikrotik:pvc-1`:
    /// `nqn.` followed by `[A-Za-z0-9._:-]`, at most 223 bytes.
    Nqn
}

impl Nqn {
    /// Validates an NQN.
    pub fn new(value: &str) -> Result<Self, ValueError> {
        const WHAT: &str = "NQN";
        check_len(WHAT, value, MAX_NQN_LEN)?;
        check_chars(
            WHAT,
            value,
            "NQNs may contain only letters, digits, '.', '-', '_' and ':'",
            |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'),
        )?;
        if !value.starts_with("nqn.") || value.len() == 4 {
            return Err(ValueError::Malformed {
                what: WHAT,
                value: value.to_owned(),
                reason: "it must start with \"nqn.\" followed by a name",
            });
        }
        Ok(Self(value.to_owned()))
    }
}

/// The longest comment the driver writes.
pub const MAX_COMMENT_LEN: usize = 128;

text_value! {
    /// A disk comment: printable ASCII without the characters that are special to
    /// RouterOS (`"` `\` `$` `?` `;` `[` `]` `{` `}` `` ` ``), at most 128 characters,
    /// not starting or ending with a space.
    Comment
}

impl Comment {
    /// Validates a comment.
    pub fn new(value: &str) -> Result<Self, ValueError> {
        const WHAT: &str = "comment";
        check_len(WHAT, value, MAX_COMMENT_LEN)?;
        check_chars(
            WHAT,
            value,
            "comments may contain printable ASCII except \" \\ $ ? ; [ ] { } `",
            |c| (' '..='~').contains(&c) && !"\"\\$?;[]{}`".contains(c),
        )?;
        // `print detail` shows a comment after `;;; `, where surrounding spaces
        // cannot be told apart from layout; refuse them so comments read back.
        if value.starts_with(' ') || value.ends_with(' ') {
            return Err(ValueError::Malformed {
                what: WHAT,
                value: value.to_owned(),
                reason: "it must not start or end with a space",
            });
        }
        Ok(Self(value.to_owned()))
    }
}

text_value! {
    /// A regular expression for a `~` condition on a comment, such as
    /// `^rds-csi:sha256:0b0e8b8e[0-9a-f]( |$)`: made of letters, digits and
    /// `^ $ ( ) [ ] | { } : . , _ -` and spaces only, so that it holds no
    /// RouterOS syntax and no backslash; written quoted, `$` escaped.
    CommentPattern
}

/// The longest comment pattern accepted.
pub const MAX_PATTERN_LEN: usize = 512;

impl CommentPattern {
    /// Validates a pattern.
    pub fn new(value: &str) -> Result<Self, ValueError> {
        const WHAT: &str = "comment pattern";
        check_len(WHAT, value, MAX_PATTERN_LEN)?;
        check_chars(
            WHAT,
            value,
            "patterns may contain only letters, digits, spaces and ^ $ ( ) [ ] | { } : . , _ -",
            |c| c.is_ascii_alphanumeric() || " ^$()[]|{}:.,_-".contains(c),
        )?;
        Ok(Self(value.to_owned()))
    }
}

/// The largest size in bytes this driver ever sends: RouterOS's numbers are
/// signed 64-bit (its scripting manual: "number - 64bit signed integer"), so
/// this is the largest whole MiB not above `i64::MAX`
/// (9 223 372 036 853 727 232 bytes, 8 EiB less 1 MiB). Anything larger
/// could not even be compared on the appliance, and is refused before it is
/// sent.
pub const MAX_SIZE: u64 = (i64::MAX as u64) / (1 << 20) * (1 << 20);

impl sealed::Sealed for u64 {}
impl sealed::Sealed for u16 {}
impl sealed::Sealed for bool {}

/// What separates the hosts of a `nvme-tcp-server-allow-host-name` list.
///
/// *Assumed*: RouterOS documents the property as "hostnames allowed to
/// connect" and shows it empty in every print seen; a list of two has not
/// been observed. A comma is how RouterOS writes every other list property.
/// `rds-csi-plugin doctor --check-fence` writes a list of two on the real
/// appliance and checks that it reads back and fences as assumed.
pub const HOST_LIST_SEPARATOR: char = ',';

/// The value of `nvme-tcp-server-allow-host-name`: host NQNs joined by
/// [`HOST_LIST_SEPARATOR`], in the order given. Empty means any host, as
/// RouterOS documents it, so a volume closed to every host is not exported
/// at all rather than given an empty list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct HostList(String);

impl HostList {
    /// The list of `hosts`, in this order.
    pub fn new<'a>(hosts: impl IntoIterator<Item = &'a Nqn>) -> Self {
        let mut text = String::new();
        for host in hosts {
            if !text.is_empty() {
                text.push(HOST_LIST_SEPARATOR);
            }
            text.push_str(host.as_str());
        }
        Self(text)
    }

    /// The empty list.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The list as RouterOS is given it, without quotes.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The entries of a value as printed: split at the separator, spaces
    /// around each entry dropped, empty entries left out. Entries are not
    /// judged here; whoever reads them decides what they mean.
    pub fn entries(printed: &str) -> Vec<String> {
        printed
            .split(HOST_LIST_SEPARATOR)
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

impl fmt::Display for HostList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl sealed::Sealed for HostList {}

impl CliValue for HostList {
    fn write_cli(&self, out: &mut String) {
        // Made of NQNs and the separator only: nothing to escape, but quoted
        // like every other text value.
        push_quoted(out, &self.0);
    }
}

impl CliValue for u64 {
    fn write_cli(&self, out: &mut String) {
        out.push_str(&self.to_string());
    }
}

impl CliValue for u16 {
    fn write_cli(&self, out: &mut String) {
        out.push_str(&self.to_string());
    }
}

impl CliValue for bool {
    fn write_cli(&self, out: &mut String) {
        out.push_str(if *self { "yes" } else { "no" });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(v: &impl CliValue) -> String {
        let mut s = String::new();
        v.write_cli(&mut s);
        s
    }

    #[test]
    fn quote_escapes_routeros_specials() {
        assert_eq!(quote(r#"a"b\c$d?e"#).unwrap(), r#""a\"b\\c\$d\?e""#);
        assert_eq!(quote("").unwrap(), r#""""#);
        assert!(matches!(
            quote("a\nb"),
            Err(ValueError::InvalidChar {
                ch: '\n',
                position: 1,
                ..
            })
        ));
        assert!(quote("é").is_err());
    }

    #[test]
    fn slots() {
        assert_eq!(
            cli(&Slot::new("pvc-0b0e8b8e-3c43-4c2f-9d2e").unwrap()),
            "\"pvc-0b0e8b8e-3c43-4c2f-9d2e\""
        );
        assert!(Slot::new(&"a".repeat(64)).is_ok());
        assert!(matches!(
            Slot::new(&"a".repeat(65)),
            Err(ValueError::TooLong {
                len: 65,
                max: 64,
                ..
            })
        ));
        assert!(matches!(Slot::new(""), Err(ValueError::Empty { .. })));
        assert!(matches!(Slot::new("-x"), Err(ValueError::Malformed { .. })));
        for bad in ["a b", "a;b", "a\"b", "a$b", "a.b", "a/b", "a[b", "ü"] {
            assert!(
                matches!(Slot::new(bad), Err(ValueError::InvalidChar { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn slot_error_names_the_character() {
        let err = Slot::new("pvc;reboot").unwrap_err().to_string();
        assert_eq!(
            err,
            "slot \"pvc;reboot\" contains ';' at position 3; slots may contain only letters, digits, '-' and '_'"
        );
    }

    #[test]
    fn image_patterns_escape_the_dot_and_anchor() {
        let p = ImagePattern::of(&Slot::new("pvc-1").unwrap());
        assert_eq!(p.as_str(), r"/pvc-1\.img$");
        assert_eq!(cli(&p), r#""/pvc-1\\.img\$""#);
        assert_eq!(r"/pvc-1\.img$".parse::<ImagePattern>().unwrap(), p);
        assert!("pvc-1.img".parse::<ImagePattern>().is_err());
    }

    #[test]
    fn prefixes_are_anchored() {
        let p = SlotPrefix::new("pvc-").unwrap();
        assert_eq!(cli(&p), "\"^pvc-\"");
        assert_eq!(p.prefix(), "pvc-");
        assert_eq!(cli(&SlotPrefix::new("").unwrap()), "\"^\"");
        assert!(SlotPrefix::new("pvc.").is_err());
        assert!(SlotPrefix::new("p*").is_err());
    }

    #[test]
    fn paths() {
        let p = RdsPath::new("/raid10/volumes/pvc-1.img").unwrap();
        assert_eq!(p.pool().as_str(), "raid10");
        assert_eq!(p.file_name().as_str(), "raid10/volumes/pvc-1.img");
        assert_eq!(cli(&p), "\"/raid10/volumes/pvc-1.img\"");
        let dir = RdsPath::new("/storage-pool/metal-csi").unwrap();
        assert_eq!(
            dir.join("pvc-2.img").unwrap().as_str(),
            "/storage-pool/metal-csi/pvc-2.img"
        );
        assert!(dir.join("a/b").is_err());
        for bad in ["relative/x", "/a//b", "/a/", "/a/../b", "/a/./b", "/", ""] {
            assert!(RdsPath::new(bad).is_err(), "{bad}");
        }
        assert!(RdsPath::new("/a b").is_err());
        assert!(RdsPath::new(&format!("/{}", "a".repeat(255))).is_err());
        assert_eq!(FileName::new("x/y").unwrap().as_str(), "x/y");
        assert_eq!(PoolName::new("raid10").unwrap().as_str(), "raid10");
        assert!(PoolName::new("a/b").is_ok_and(|p| p.as_str() == "a"));
        assert!(PoolName::new("").is_err());
    }

    #[test]
    fn nqns() {
        assert!(Nqn::new("nqn.2000-02.com.mikrotik:pvc-1").is_ok());
        assert!(Nqn::new("nqn.").is_err());
        assert!(Nqn::new("iqn.2000-02.com.x:y").is_err());
        assert!(Nqn::new("nqn.2000-02.com.x:a b").is_err());
        assert!(Nqn::new(&format!("nqn.{}", "a".repeat(220))).is_err());
    }

    #[test]
    fn comments() {
        assert_eq!(
            cli(&Comment::new("rds-csi: pvc-1 (ns/claim)").unwrap()),
            "\"rds-csi: pvc-1 (ns/claim)\""
        );
        for bad in [
            "a\"b", "a\\b", "$x", "a?", "a;b", "[x]", "{x}", "`x`", "\t", " a", "a ",
        ] {
            assert!(Comment::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn comment_patterns() {
        let p = CommentPattern::new("^rds-csi:pvc-0b0e[0-9a-fA-F]{4}( |$)").unwrap();
        assert_eq!(cli(&p), r#""^rds-csi:pvc-0b0e[0-9a-fA-F]{4}( |\$)""#);
        for bad in ["a\\.b", "a\"b", "a;b", "a?", "é", "a\tb", ""] {
            assert!(CommentPattern::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_lists_join_with_the_separator_and_read_back() {
        let a = Nqn::new("nqn.2024-01.x:node:a").unwrap();
        let b = Nqn::new("nqn.2024-01.x:node:b").unwrap();
        let list = HostList::new([&a, &b]);
        assert_eq!(list.as_str(), "nqn.2024-01.x:node:a,nqn.2024-01.x:node:b");
        assert_eq!(cli(&list), "\"nqn.2024-01.x:node:a,nqn.2024-01.x:node:b\"");
        assert_eq!(cli(&HostList::empty()), "\"\"");
        assert_eq!(
            HostList::entries(list.as_str()),
            ["nqn.2024-01.x:node:a", "nqn.2024-01.x:node:b"]
        );
        assert_eq!(HostList::entries(" a , b,,"), ["a", "b"]);
        assert!(HostList::entries("").is_empty());
    }

    #[test]
    fn numbers_and_booleans_are_bare() {
        assert_eq!(cli(&1_073_741_824_u64), "1073741824");
        assert_eq!(cli(&4420_u16), "4420");
        assert_eq!(cli(&true), "yes");
        assert_eq!(cli(&false), "no");
    }
}
