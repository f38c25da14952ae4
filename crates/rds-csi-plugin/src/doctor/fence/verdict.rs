//! The fence check's judgements: what each observation of
//! [`super::run`] means, and what to do when RouterOS behaves otherwise than
//! the driver assumes. No I/O; unit-tested.

use crate::doctor::{Check, name};

/// What became of the scratch disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScratchSeen {
    /// Made, in this slot, with this image.
    Made {
        /// Its slot.
        slot: String,
        /// Its image on the RDS.
        path: String,
    },
    /// Not made.
    Failed(String),
}

/// (F1) The scratch disk was made.
pub fn scratch(seen: &ScratchSeen) -> Check {
    match seen {
        ScratchSeen::Made { slot, path } => Check::ok(
            name::FENCE_SCRATCH,
            format!("made disk {slot} ({path}) for the fence checks; it is removed at the end"),
        ),
        ScratchSeen::Failed(e) => Check::fail(
            name::FENCE_SCRATCH,
            format!("cannot make a scratch disk: {e}"),
            "the other checks above say why the RDS cannot be used; fix them first".into(),
        ),
    }
}

/// A connection attempt of one identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectSeen {
    /// The target took the host: a controller was made.
    Accepted,
    /// The connect failed (refused by the target, or not reached).
    Refused(String),
}

/// (F2) A host the list does not name is refused, and one it names is let
/// in: the fence works. Judged together, since a refusal alone could be a
/// target not reached.
pub fn listed_only(host: &str, other: &str, listed: &ConnectSeen, unlisted: &ConnectSeen) -> Check {
    match (listed, unlisted) {
        (ConnectSeen::Accepted, ConnectSeen::Refused(_)) => Check::ok(
            name::FENCE_LISTED_ONLY,
            format!(
                "with nvme-tcp-server-allow-host-name={host:?}, {host} may connect and {other} is refused"
            ),
        ),
        (_, ConnectSeen::Accepted) => Check::fail(
            name::FENCE_LISTED_ONLY,
            format!(
                "with nvme-tcp-server-allow-host-name={host:?}, {other} connected anyway: this \
                 RouterOS does not refuse hosts the list does not name"
            ),
            "the driver's fence does nothing on this RouterOS: any node could connect to any \
             volume it learns the NQN of. Until MikroTik confirms how the property is enforced, \
             keep ReadWriteOnce volumes safe by other means (never force-detach a node that \
             may still run: use the out-of-service taint only for nodes that are powered off), \
             and report the RouterOS version and this output to the rds-csi maintainers"
                .into(),
        ),
        (ConnectSeen::Refused(e), ConnectSeen::Refused(_)) => Check::fail(
            name::FENCE_LISTED_ONLY,
            format!("{host}, which the list names, was refused too: {e}"),
            "either this machine cannot reach the NVMe/TCP port (see the NVMe/TCP port \
             check, and `modprobe nvme-tcp`), or this RouterOS does not take host NQNs in \
             nvme-tcp-server-allow-host-name (perhaps host names): then no node could attach \
             a published volume; report the RouterOS version and this output to the rds-csi \
             maintainers"
                .into(),
        ),
    }
}

/// How a list of two came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListSeen {
    /// The value written.
    pub written: String,
    /// The entries read back from `print detail`, split at the separator.
    pub read_back: Vec<String>,
    /// The value as printed.
    pub printed: String,
    /// Whether a compare against the written value matched afterwards.
    pub compare_matched: bool,
    /// The second host's connect, once listed.
    pub second: ConnectSeen,
}

/// (F3) A list of two hosts is stored and read back as two entries, the
/// driver's compare matches it, and the second host is let in.
pub fn list_of_two(first: &str, second: &str, seen: &ListSeen) -> Check {
    let expected = [first.to_owned(), second.to_owned()];
    if seen.read_back != expected {
        return Check::fail(
            name::FENCE_LIST_OF_TWO,
            format!(
                "wrote {:?}, but RouterOS prints {:?}",
                seen.written, seen.printed
            ),
            "this RouterOS does not keep a list of two hosts joined by ',' as written, so a \
             block volume cannot be published to two nodes at once (live migration) and \
             ReadWriteOnce volumes of other modes may be misread: report the RouterOS version \
             and this output to the rds-csi maintainers; single-node read-write volumes are \
             not affected"
                .into(),
        );
    }
    if !seen.compare_matched {
        return Check::fail(
            name::FENCE_LIST_OF_TWO,
            format!(
                "RouterOS prints {:?} as written, but `find where nvme-tcp-server-allow-host-name=` \
                 with that value does not match it",
                seen.printed
            ),
            "publishing a volume to a second node, and unpublishing one of two, would fail \
             with INTERNAL: report the RouterOS version and this output to the rds-csi \
             maintainers"
                .into(),
        );
    }
    match &seen.second {
        ConnectSeen::Accepted => Check::ok(
            name::FENCE_LIST_OF_TWO,
            format!(
                "{:?} reads back as two hosts, and {second}, the second, may connect",
                seen.printed
            ),
        ),
        ConnectSeen::Refused(e) => Check::fail(
            name::FENCE_LIST_OF_TWO,
            format!(
                "{:?} reads back as written, but {second}, the second host, was refused: {e}",
                seen.printed
            ),
            "this RouterOS takes only the first host of a list: a block volume cannot be \
             published to two nodes at once (live migration fails); report the RouterOS \
             version and this output to the rds-csi maintainers"
                .into(),
        ),
    }
}

/// What a bounce (the export switched off and on, one host let out) did to
/// the two live connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BounceSeen {
    /// Whether the compare-and-set of the bounce applied.
    pub applied: bool,
    /// The host let out lost its connection within the wait.
    pub removed_cut: bool,
    /// The host let out was still not connected at the end of the wait.
    pub removed_stayed_out: bool,
    /// The remaining host was connected again within the wait.
    pub remaining_back: bool,
    /// Seconds waited for each.
    pub waited_secs: u64,
}

/// (F4) Unpublishing one of two hosts ends its connection and leaves the
/// other's.
pub fn unpublish_cuts(removed: &str, remaining: &str, seen: &BounceSeen) -> Check {
    if !seen.applied {
        return Check::fail(
            name::FENCE_UNPUBLISH_CUTS,
            "the compare-and-set of the unpublish did not match the list of two",
            "see the list of two check".into(),
        );
    }
    if !seen.removed_cut {
        return Check::fail(
            name::FENCE_UNPUBLISH_CUTS,
            format!(
                "{removed} was let out and the export switched off and on, but its connection \
                 was still live after {} s",
                seen.waited_secs
            ),
            "on this RouterOS an unpublished node keeps writing until its connection breaks \
             on its own: after a force-detach, power the old node off (or cut its network) \
             before the volume is used elsewhere; report the RouterOS version and this output \
             to the rds-csi maintainers"
                .into(),
        );
    }
    if !seen.removed_stayed_out {
        return Check::fail(
            name::FENCE_UNPUBLISH_CUTS,
            format!("{removed} was cut off, but connected again although no longer listed"),
            "this RouterOS does not check the list when a host reconnects: the fence does not \
             hold against a node that reconnects; report the RouterOS version and this output \
             to the rds-csi maintainers"
                .into(),
        );
    }
    if !seen.remaining_back {
        return Check::fail(
            name::FENCE_UNPUBLISH_CUTS,
            format!(
                "{removed} was cut off, but {remaining}, still listed, was not connected again \
                 within {} s",
                seen.waited_secs
            ),
            "switching the export off and on loses the other node of a multi-node block \
             volume: live migration would break the VM's disk on its new node; report the \
             RouterOS version and this output to the rds-csi maintainers"
                .into(),
        );
    }
    Check::ok(
        name::FENCE_UNPUBLISH_CUTS,
        format!(
            "with {removed} let out and the export switched off and on, {removed} lost its \
             connection and stayed out, and {remaining} connected again"
        ),
    )
}

/// What the clean-up left.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CleanupSeen {
    /// Controllers that would not go.
    pub disconnect: Option<String>,
    /// The disk or its image could not be removed.
    pub removal: Option<String>,
}

/// (F5) Everything the check made is gone.
pub fn cleanup(slot: &str, seen: &CleanupSeen) -> Check {
    let mut problems = Vec::new();
    if let Some(e) = &seen.disconnect {
        problems.push(format!("its connections on this machine: {e}"));
    }
    if let Some(e) = &seen.removal {
        problems.push(format!("the disk: {e}"));
    }
    if problems.is_empty() {
        Check::ok(
            name::FENCE_CLEANUP,
            format!("disconnected and removed disk {slot} and its image"),
        )
    } else {
        Check::fail(
            name::FENCE_CLEANUP,
            format!(
                "could not remove everything made for {slot}: {}",
                problems.join("; ")
            ),
            format!(
                "on this machine, `echo 1 > /sys/class/nvme/nvmeN/delete_controller` for \
                 controllers of {slot}; on the RDS, `/disk remove [find where slot=\"{slot}\"]` \
                 and remove its image file"
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    const A: &str = "nqn.x:node:a";
    const B: &str = "nqn.x:node:b";

    #[test]
    fn the_fence_holds_only_when_one_is_let_in_and_the_other_refused() {
        let refused = || ConnectSeen::Refused("Input/output error".into());
        assert_eq!(
            listed_only(A, B, &ConnectSeen::Accepted, &refused()).status,
            Status::Ok
        );
        let open = listed_only(A, B, &ConnectSeen::Accepted, &ConnectSeen::Accepted);
        assert_eq!(open.status, Status::Fail);
        assert!(open.detail.contains("connected anyway"), "{open:?}");
        let neither = listed_only(A, B, &refused(), &refused());
        assert_eq!(neither.status, Status::Fail);
        assert!(neither.fix.unwrap().contains("host names"));
    }

    fn list(read_back: &[&str], compare: bool, second: ConnectSeen) -> ListSeen {
        ListSeen {
            written: format!("{A},{B}"),
            read_back: read_back.iter().map(|s| (*s).to_owned()).collect(),
            printed: read_back.join(","),
            compare_matched: compare,
            second,
        }
    }

    #[test]
    fn a_list_of_two_must_read_back_compare_and_admit_both() {
        assert_eq!(
            list_of_two(A, B, &list(&[A, B], true, ConnectSeen::Accepted)).status,
            Status::Ok
        );
        let merged = list_of_two(A, B, &list(&[A], true, ConnectSeen::Accepted));
        assert!(merged.detail.contains("prints"), "{merged:?}");
        assert_eq!(merged.status, Status::Fail);
        let no_match = list_of_two(A, B, &list(&[A, B], false, ConnectSeen::Accepted));
        assert!(no_match.fix.unwrap().contains("INTERNAL"));
        let first_only = list_of_two(
            A,
            B,
            &list(&[A, B], true, ConnectSeen::Refused("EIO".into())),
        );
        assert!(first_only.fix.unwrap().contains("only the first host"));
    }

    fn bounce(applied: bool, cut: bool, out: bool, back: bool) -> BounceSeen {
        BounceSeen {
            applied,
            removed_cut: cut,
            removed_stayed_out: out,
            remaining_back: back,
            waited_secs: 30,
        }
    }

    #[test]
    fn unpublish_must_cut_the_removed_and_keep_the_remaining() {
        assert_eq!(
            unpublish_cuts(A, B, &bounce(true, true, true, true)).status,
            Status::Ok
        );
        for (seen, words) in [
            (bounce(false, true, true, true), "did not match"),
            (bounce(true, false, true, true), "still live"),
            (bounce(true, true, false, true), "connected again although"),
            (bounce(true, true, true, false), "was not connected again"),
        ] {
            let check = unpublish_cuts(A, B, &seen);
            assert_eq!(check.status, Status::Fail);
            assert!(check.detail.contains(words), "{check:?}");
        }
    }

    #[test]
    fn cleanup_names_what_is_left() {
        assert_eq!(
            cleanup("doctor-fence-1", &CleanupSeen::default()).status,
            Status::Ok
        );
        let left = cleanup(
            "doctor-fence-1",
            &CleanupSeen {
                disconnect: None,
                removal: Some("no such item".into()),
            },
        );
        assert_eq!(left.status, Status::Fail);
        assert!(left.fix.unwrap().contains("doctor-fence-1"));
    }

    #[test]
    fn a_scratch_disk_that_cannot_be_made_fails() {
        assert_eq!(
            scratch(&ScratchSeen::Failed("not enough space".into())).status,
            Status::Fail
        );
        assert_eq!(
            scratch(&ScratchSeen::Made {
                slot: "s".into(),
                path: "/p/s.img".into()
            })
            .status,
            Status::Ok
        );
    }
}
