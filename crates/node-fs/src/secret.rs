//! [`Passphrase`]: a volume's encryption key as it travels from the CSI
//! request to `cryptsetup`'s standard input, and nowhere else.
//!
//! The bytes live in one heap buffer that is overwritten with zeros when the
//! value is dropped (the `zeroize` crate), and the type prints as
//! `Passphrase(…)` in `Debug` output and has no `Display`, so neither a log
//! line nor an error message that formats a request can show the key. The
//! only way to the bytes is [`Passphrase::expose`], which the code that
//! writes them into a pipe calls.

use std::fmt;

use zeroize::Zeroizing;

/// A secret passphrase: zeroed on drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Passphrase(Zeroizing<Vec<u8>>);

impl Passphrase {
    /// Takes ownership of `bytes` (no copy is made).
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Takes ownership of `text`'s bytes (no copy is made). The exact bytes
    /// are the key: a trailing newline is part of it.
    pub fn from_string(text: String) -> Self {
        Self::new(text.into_bytes())
    }

    /// The secret bytes, for writing into `cryptsetup`'s standard input.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// How many bytes the key has (cryptsetup reads two keys from one pipe
    /// by their lengths).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the key is empty (an empty key is refused by the node).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_key() {
        let key = Passphrase::from_string("correct horse battery staple".into());
        let shown = format!("{key:?} {:?}", Some(&key));
        assert_eq!(shown, "Passphrase(…) Some(Passphrase(…))");
        assert!(!shown.contains("horse"));
        assert_eq!(key.expose(), b"correct horse battery staple");
        assert_eq!(key.len(), 28);
    }
}
