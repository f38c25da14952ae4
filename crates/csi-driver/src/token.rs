//! Pagination tokens: the `next_token` of a List call and the `starting_token`
//! of the next one.
//!
//! A token names a position, not a page: the last ID of the page it ends, so
//! the next page starts after it even if that entry (or any other) was deleted
//! in between. The CSI spec asks for ABORTED when a `starting_token` is not
//! valid, and csi-sanity checks it with a made-up token; a bare ID cannot be
//! told from a made-up word, so every token carries a check: `<kind>:<position>`
//! followed by `.` and eight hex digits of a SHA-256 over both. A token of one
//! list is refused by another (`kind`), and text this driver did not issue is
//! refused, not read as a position.

use sha2::{Digest, Sha256};

/// Which list a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// ListVolumes.
    Volumes,
    /// ListSnapshots.
    Snapshots,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Volumes => "volumes",
            Kind::Snapshots => "snapshots",
        }
    }
}

/// The token that resumes a `kind` list after `position`.
pub fn issue(kind: Kind, position: &str) -> String {
    format!("{}.{}", body(kind, position), check(kind, position))
}

/// The position a token issued by [`issue`] for `kind` resumes after, or
/// `None` if this driver did not issue it (for this list).
pub fn read(kind: Kind, token: &str) -> Option<&str> {
    let (body_text, sum) = token.rsplit_once('.')?;
    let position = body_text.strip_prefix(kind.tag())?.strip_prefix(':')?;
    (sum == check(kind, position)).then_some(position)
}

fn body(kind: Kind, position: &str) -> String {
    format!("{}:{position}", kind.tag())
}

fn check(kind: Kind, position: &str) -> String {
    let digest = Sha256::digest(body(kind, position).as_bytes());
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_read_back() {
        for position in ["pvc-0b0e8b8e3c434c2f9d2e53f0d3b1", "csi-1", "a.b", ""] {
            let token = issue(Kind::Volumes, position);
            assert_eq!(read(Kind::Volumes, &token), Some(position), "{token}");
        }
    }

    #[test]
    fn tokens_not_issued_are_refused() {
        let good = issue(Kind::Volumes, "pvc-1");
        for bad in [
            "",
            "invalid-token",
            "pvc-1",
            "volumes:pvc-1",
            "volumes:pvc-1.00000000",
            &good[..good.len() - 1],
            &good.replace("pvc-1", "pvc-2"),
            &format!("{good}x"),
        ] {
            assert_eq!(read(Kind::Volumes, bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_token_of_one_list_is_refused_by_the_other() {
        let volumes = issue(Kind::Volumes, "pvc-1");
        let snapshots = issue(Kind::Snapshots, "snap-1");
        assert_eq!(read(Kind::Snapshots, &snapshots), Some("snap-1"));
        assert_eq!(read(Kind::Snapshots, &volumes), None);
        assert_eq!(read(Kind::Volumes, &snapshots), None);
    }
}
