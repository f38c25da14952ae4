//! Classification of RouterOS error text.
//!
//! RouterOS's SSH exit status cannot be trusted (some errors come back with status
//! 0), so errors are recognised from what the appliance printed. The patterns are
//! the texts listed in `docs/routeros-cli.md`; anything unrecognised is kept as
//! [`CliErrorKind::Other`] rather than guessed.

use std::fmt;

/// What kind of failure RouterOS reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CliErrorKind {
    /// The item does not exist (`no such item`).
    NotFound,
    /// The item exists already (`failure: already have such entry`).
    AlreadyExists,
    /// The pool is full (`not enough space`).
    OutOfSpace,
    /// A value was refused (`invalid value for argument …`).
    InvalidArgument,
    /// The command was not understood (`bad command name`, `syntax error`,
    /// `expected end of command`): a bug in this driver or an unsupported
    /// RouterOS version.
    Syntax,
    /// The SSH user may not do this.
    Permission,
    /// Text this driver does not recognise.
    Other,
}

impl fmt::Display for CliErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotFound => "not found",
            Self::AlreadyExists => "already exists",
            Self::OutOfSpace => "out of space",
            Self::InvalidArgument => "invalid argument",
            Self::Syntax => "command not understood",
            Self::Permission => "permission denied",
            Self::Other => "failed",
        })
    }
}

/// An error RouterOS printed, with its text kept for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("RouterOS: {kind}: {text}")]
pub struct CliError {
    /// The classification.
    pub kind: CliErrorKind,
    /// What RouterOS printed, lines joined with `; `.
    pub text: String,
}

/// Patterns, checked in order against the lower-cased text.
const PATTERNS: &[(&str, CliErrorKind)] = &[
    ("not enough permissions", CliErrorKind::Permission),
    ("permission denied", CliErrorKind::Permission),
    ("access denied", CliErrorKind::Permission),
    ("not enough space", CliErrorKind::OutOfSpace),
    ("no space left", CliErrorKind::OutOfSpace),
    ("already have", CliErrorKind::AlreadyExists),
    ("already exists", CliErrorKind::AlreadyExists),
    ("already in use", CliErrorKind::AlreadyExists),
    ("no such item", CliErrorKind::NotFound),
    ("no such file", CliErrorKind::NotFound),
    ("not found", CliErrorKind::NotFound),
    ("bad command name", CliErrorKind::Syntax),
    ("expected end of command", CliErrorKind::Syntax),
    ("expected command name", CliErrorKind::Syntax),
    ("syntax error", CliErrorKind::Syntax),
    ("unknown parameter", CliErrorKind::Syntax),
    ("invalid value", CliErrorKind::InvalidArgument),
    ("input does not match", CliErrorKind::InvalidArgument),
    ("value of", CliErrorKind::InvalidArgument),
    ("out of range", CliErrorKind::InvalidArgument),
];

/// Classifies one or more message lines RouterOS printed.
pub fn classify(text: &str) -> CliErrorKind {
    let lower = text.to_ascii_lowercase();
    PATTERNS
        .iter()
        .find(|(pattern, _)| lower.contains(pattern))
        .map_or(CliErrorKind::Other, |&(_, kind)| kind)
}

/// Builds a [`CliError`] from message lines, or `None` if there are none.
pub fn from_messages(messages: &[String]) -> Option<CliError> {
    if messages.is_empty() {
        return None;
    }
    let text = messages.join("; ");
    Some(CliError {
        kind: classify(&text),
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use CliErrorKind::*;

    #[test]
    fn documented_texts() {
        let cases = [
            ("no such item", NotFound),
            ("failure: already have such entry", AlreadyExists),
            ("not enough space", OutOfSpace),
            ("invalid value for argument file-size", InvalidArgument),
            (
                "input does not match any value of nvme-tcp-export",
                InvalidArgument,
            ),
            ("bad command name frob (line 1 column 7)", Syntax),
            ("expected end of command (line 1 column 12)", Syntax),
            ("syntax error (line 1 column 4)", Syntax),
            ("not enough permissions (9)", Permission),
            ("file-path already in use by another disk", AlreadyExists),
            ("failure: simulated fault", Other),
            ("FAILURE: NOT ENOUGH SPACE", OutOfSpace),
        ];
        for (text, kind) in cases {
            assert_eq!(classify(text), kind, "{text}");
        }
    }

    #[test]
    fn messages_are_joined_and_kept() {
        assert_eq!(from_messages(&[]), None);
        let e = from_messages(&["no such item".into(), "extra".into()]).unwrap();
        assert_eq!(e.kind, NotFound);
        assert_eq!(e.text, "no such item; extra");
        assert_eq!(e.to_string(), "RouterOS: not found: no such item; extra");
    }
}
