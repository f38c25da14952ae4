//! The host identity a node attaches this driver's volumes with, derived from
//! the node's name, so that the target can let in exactly the nodes a volume
//! is published to.
//!
//! A node's identity for attached volumes is not its own `/etc/nvme/hostnqn`
//! (a mutable file on the node, which the controller cannot see) but follows
//! from the Kubernetes node name alone, by rules both sides compute without
//! I/O:
//!
//! - **host NQN**: `<NQN prefix>node:<node name>`, e.g.
//!   `nqn.2024-01.io.srvlab.csi.rds:node:worker-1`. The prefix is the driver's
//!   `--nqn-prefix`; slots never hold `:`, so a host NQN never equals a
//!   volume's subsystem NQN. Kubernetes node names are DNS subdomains
//!   (lowercase letters, digits, `-` and `.`), all of which an NQN may hold.
//!   A name whose NQN would exceed the 223 bytes NVMe allows is refused, not
//!   shortened: the node plugin refuses to start with it, and says to
//!   shorten `--nqn-prefix`. (With the default prefix, names of up to 188
//!   bytes fit.)
//! - **node ID**: the host NQN itself is the CSI node ID the node plugin
//!   reports in NodeGetInfo. The controller never sees the cluster's nodes,
//!   so it cannot tell a node that exists from one that does not; what it
//!   can tell is whether an ID is one this driver's node plugins report.
//!   Any other text (a bare node name, an ID made up by a test) names no
//!   node of ours and is NOT_FOUND. The allow list on the RDS holds these
//!   same NQNs, so which nodes a volume is published to reads back as node
//!   IDs without a table.
//! - **host ID**: a UUID computed from the host NQN: version 8 (RFC 9562,
//!   "custom"), its bits the first 16 bytes of SHA-256 over
//!   `rds-csi host id:` and the NQN. The kernel refuses one host ID with two
//!   host NQNs, so the ID must follow from the NQN alone; a version-8 UUID is
//!   never what `nvme gen-hostnqn` or the plugin's own state folder makes
//!   (version 4), so it cannot collide with the host's own identity, and the
//!   node checks that it does not before connecting.
//!
//! The controller hands the identity to the node in the ControllerPublish
//! `publish_context` ([`to_publish_context`]); the node reads it back with
//! [`from_publish_context`], which refuses a pair that does not follow these
//! rules. The node's other NVMe-oF connections (an NVMe-oF root disk, other
//! drivers' volumes, volumes staged before attachment existed) keep the
//! host's own identity.
//!
//! The fence stops this driver's nodes, and any honest initiator; it does
//! not stop an initiator that forges a host NQN, which only in-band
//! authentication (DH-HMAC-CHAP) could, and which the RDS is not known to
//! offer.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::identity::{HostIdentity, is_uuid};
use crate::options::{MAX_NQN_LEN, check_nqn};

/// What separates the NQN prefix from the node name in a node's host NQN.
pub const NODE_INFIX: &str = "node:";

/// The longest Kubernetes node name (a DNS subdomain).
pub const MAX_NODE_NAME_LEN: usize = 253;

/// The `publish_context` key of the host NQN to connect with.
pub const HOST_NQN_KEY: &str = "hostNqn";

/// The `publish_context` key of the host ID to connect with.
pub const HOST_ID_KEY: &str = "hostId";

/// What the host ID's hash starts with, so it is not a plain hash of the NQN.
const HOST_ID_DOMAIN: &str = "rds-csi host id:";

/// Why a node name, node ID or publish context was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FenceError {
    /// The node name is not a Kubernetes node name.
    #[error("{name:?} is not a Kubernetes node name: {reason}")]
    NodeName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The node's host NQN would be longer than NVMe allows.
    #[error(
        "the host NQN of node {name:?} would be {nqn:?}, {len} bytes, more than the {MAX_NQN_LEN} NVMe allows; shorten --nqn-prefix {prefix:?}"
    )]
    TooLong {
        /// The node name.
        name: String,
        /// The NQN prefix.
        prefix: String,
        /// The NQN that would result.
        nqn: String,
        /// Its length.
        len: usize,
    },
    /// The NQN prefix cannot start a host NQN.
    #[error("NQN prefix {prefix:?} cannot start a host NQN: {reason}")]
    Prefix {
        /// The prefix.
        prefix: String,
        /// What the NQN check said.
        reason: String,
    },
    /// A node ID that no node plugin of this driver reports.
    #[error(
        "node ID {id:?} names no node of this driver, whose node plugins report IDs of the form {prefix}{NODE_INFIX}<node name>: {reason}"
    )]
    NotANode {
        /// The node ID.
        id: String,
        /// The NQN prefix expected.
        prefix: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The publish context carries an identity that breaks the rules.
    #[error("publish context: {0}")]
    Context(String),
}

/// Checks that `name` is a Kubernetes node name: a DNS subdomain (RFC 1123)
/// of at most 253 characters, lowercase letters, digits, `-` and `.`, each
/// dot-separated part starting and ending with a letter or digit.
pub fn check_node_name(name: &str) -> Result<(), FenceError> {
    let refuse = |reason| {
        Err(FenceError::NodeName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return refuse("it is empty");
    }
    if name.len() > MAX_NODE_NAME_LEN {
        return refuse("it is longer than 253 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return refuse("only lowercase letters, digits, '-' and '.' are allowed");
    }
    let alnum = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    for part in name.split('.') {
        if !alnum(part.bytes().next()) || !alnum(part.bytes().last()) {
            return refuse("each dot-separated part must start and end with a letter or a digit");
        }
    }
    Ok(())
}

/// The host NQN of node `node` for a driver whose NQN prefix is `prefix`;
/// also the node ID its node plugin reports.
pub fn node_host_nqn(prefix: &str, node: &str) -> Result<String, FenceError> {
    check_node_name(node)?;
    let nqn = format!("{prefix}{NODE_INFIX}{node}");
    if nqn.len() > MAX_NQN_LEN {
        return Err(FenceError::TooLong {
            name: node.to_owned(),
            prefix: prefix.to_owned(),
            len: nqn.len(),
            nqn,
        });
    }
    check_nqn("hostnqn", &nqn).map_err(|e| FenceError::Prefix {
        prefix: prefix.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(nqn)
}

/// The node name a node ID (a host NQN) stands for, if it is one this
/// driver's node plugins report under `prefix`.
pub fn node_name_of<'a>(prefix: &str, node_id: &'a str) -> Result<&'a str, FenceError> {
    let not_a_node = |reason: String| FenceError::NotANode {
        id: node_id.to_owned(),
        prefix: prefix.to_owned(),
        reason,
    };
    let name = node_id
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix(NODE_INFIX))
        .ok_or_else(|| not_a_node(format!("it does not start with {prefix}{NODE_INFIX}")))?;
    node_host_nqn(prefix, name).map_err(|e| not_a_node(e.to_string()))?;
    Ok(name)
}

/// The host ID that goes with `host_nqn`: a version 8 UUID from SHA-256 (see
/// the module documentation).
pub fn host_id(host_nqn: &str) -> String {
    let digest = Sha256::digest(format!("{HOST_ID_DOMAIN}{host_nqn}").as_bytes());
    let mut b = [0_u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The identity the node with ID `node_id` attaches volumes with, if the ID
/// is one of this driver's (see [`node_name_of`]).
pub fn identity_of_node(prefix: &str, node_id: &str) -> Result<HostIdentity, FenceError> {
    node_name_of(prefix, node_id)?;
    Ok(HostIdentity {
        nqn: node_id.to_owned(),
        id: host_id(node_id),
    })
}

/// The identity of the node named `node` (what [`identity_of_node`] gives
/// for the ID that node reports).
pub fn identity_of_node_name(prefix: &str, node: &str) -> Result<HostIdentity, FenceError> {
    let nqn = node_host_nqn(prefix, node)?;
    Ok(HostIdentity {
        id: host_id(&nqn),
        nqn,
    })
}

/// The `publish_context` entries that tell a node which identity to connect
/// with.
pub fn to_publish_context(identity: &HostIdentity) -> HashMap<String, String> {
    HashMap::from([
        (HOST_NQN_KEY.to_owned(), identity.nqn.clone()),
        (HOST_ID_KEY.to_owned(), identity.id.clone()),
    ])
}

/// The identity a `publish_context` asks the node to connect with; `None`
/// when it names none (a volume published by no controller of this kind, or
/// staged without attachment). A context with one key and not the other, a
/// malformed NQN or UUID, or a host ID that does not follow from the host
/// NQN is refused. Other keys are ignored.
pub fn from_publish_context(
    context: &HashMap<String, String>,
) -> Result<Option<HostIdentity>, FenceError> {
    let (nqn, id) = match (context.get(HOST_NQN_KEY), context.get(HOST_ID_KEY)) {
        (None, None) => return Ok(None),
        (Some(nqn), Some(id)) => (nqn, id),
        (Some(_), None) => {
            return Err(FenceError::Context(format!(
                "{HOST_NQN_KEY} without {HOST_ID_KEY}"
            )));
        }
        (None, Some(_)) => {
            return Err(FenceError::Context(format!(
                "{HOST_ID_KEY} without {HOST_NQN_KEY}"
            )));
        }
    };
    check_nqn("hostnqn", nqn).map_err(|e| FenceError::Context(e.to_string()))?;
    if !is_uuid(id) {
        return Err(FenceError::Context(format!(
            "{HOST_ID_KEY} {id:?} is not a UUID"
        )));
    }
    if !id.eq_ignore_ascii_case(&host_id(nqn)) {
        return Err(FenceError::Context(format!(
            "{HOST_ID_KEY} {id:?} does not belong to {HOST_NQN_KEY} {nqn:?}"
        )));
    }
    Ok(Some(HostIdentity {
        nqn: nqn.clone(),
        id: id.to_ascii_lowercase(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "nqn.2024-01.io.srvlab.csi.rds:";

    #[test]
    fn node_names_follow_kubernetes() {
        for good in ["worker-1", "a", "node1.example.com", "10-0-0-1", "x.y-z"] {
            assert_eq!(check_node_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "Worker-1",
            "-a",
            "a-",
            "a..b",
            ".a",
            "a.",
            "a_b",
            "a b",
            "a:b",
            "ü",
            &"a".repeat(254),
        ] {
            assert!(check_node_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_node_name(&"a".repeat(253)).is_ok());
        assert!(matches!(
            node_host_nqn("nqn.x,y:", "a"),
            Err(FenceError::Prefix { .. })
        ));
    }

    #[test]
    fn host_nqn_is_prefix_infix_and_name() {
        assert_eq!(
            node_host_nqn(PREFIX, "worker-1").unwrap(),
            "nqn.2024-01.io.srvlab.csi.rds:node:worker-1"
        );
        assert_eq!(
            node_name_of(PREFIX, "nqn.2024-01.io.srvlab.csi.rds:node:worker-1"),
            Ok("worker-1")
        );
    }

    #[test]
    fn names_too_long_for_an_nqn_are_refused_not_shortened() {
        let fits = "a".repeat(MAX_NQN_LEN - PREFIX.len() - NODE_INFIX.len());
        assert_eq!(fits.len(), 188);
        assert_eq!(node_host_nqn(PREFIX, &fits).unwrap().len(), MAX_NQN_LEN);
        let over = format!("{fits}b");
        let err = node_host_nqn(PREFIX, &over).unwrap_err();
        assert!(matches!(err, FenceError::TooLong { len: 224, .. }), "{err}");
        assert!(err.to_string().contains("shorten --nqn-prefix"), "{err}");
    }

    #[test]
    fn ids_that_are_not_ours_name_no_node() {
        for bad in [
            "worker-1",
            "fake-node-id-0123456789",
            "nqn.2024-01.io.srvlab.csi.rds:worker-1",
            "nqn.2024-01.io.srvlab.csi.rds:node:",
            "nqn.2024-01.io.srvlab.csi.rds:node:Worker",
            "nqn.2024-01.io.srvlab.csi.rds:node:a,b",
            "nqn.2000-02.com.mikrotik:node:worker-1",
            "",
        ] {
            let err = node_name_of(PREFIX, bad).unwrap_err();
            assert!(matches!(err, FenceError::NotANode { .. }), "{bad}: {err}");
        }
        let err = identity_of_node(PREFIX, "fake-node-id-0123456789").unwrap_err();
        assert!(
            err.to_string()
                .contains("nqn.2024-01.io.srvlab.csi.rds:node:<node name>"),
            "{err}"
        );
    }

    #[test]
    fn host_ids_are_version_8_uuids_of_the_nqn_alone() {
        let a = host_id("nqn.2024-01.io.srvlab.csi.rds:node:worker-1");
        assert!(is_uuid(&a), "{a}");
        assert_eq!(&a[14..15], "8", "version 8: {a}");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "variant: {a}");
        assert_eq!(a, host_id("nqn.2024-01.io.srvlab.csi.rds:node:worker-1"));
        assert_ne!(a, host_id("nqn.2024-01.io.srvlab.csi.rds:node:worker-2"));
        // Never the form the host's own identity takes (version 4).
        assert_ne!(&crate::identity::new_uuid_v4()[14..15], "8");
    }

    #[test]
    fn identities_of_a_node_agree() {
        let by_id = identity_of_node(PREFIX, "nqn.2024-01.io.srvlab.csi.rds:node:w").unwrap();
        let by_name = identity_of_node_name(PREFIX, "w").unwrap();
        assert_eq!(by_id, by_name);
        assert_eq!(by_id.id, host_id(&by_id.nqn));
    }

    #[test]
    fn publish_context_round_trips_and_refuses_what_breaks_the_rules() {
        let identity = identity_of_node_name(PREFIX, "worker-1").unwrap();
        let mut context = to_publish_context(&identity);
        assert_eq!(from_publish_context(&context), Ok(Some(identity.clone())));
        context.insert("other".into(), "ignored".into());
        assert_eq!(from_publish_context(&context), Ok(Some(identity.clone())));
        assert_eq!(from_publish_context(&HashMap::new()), Ok(None));

        let mut upper = to_publish_context(&identity);
        upper.insert(HOST_ID_KEY.into(), identity.id.to_ascii_uppercase());
        assert_eq!(from_publish_context(&upper), Ok(Some(identity.clone())));

        let refused = |edit: &dyn Fn(&mut HashMap<String, String>)| {
            let mut c = to_publish_context(&identity);
            edit(&mut c);
            from_publish_context(&c).unwrap_err()
        };
        refused(&|c| {
            c.remove(HOST_ID_KEY);
        });
        refused(&|c| {
            c.remove(HOST_NQN_KEY);
        });
        refused(&|c| {
            c.insert(HOST_ID_KEY.into(), "not-a-uuid".into());
        });
        refused(&|c| {
            c.insert(HOST_NQN_KEY.into(), "nqn.x:a,hostnqn=evil".into());
        });
        let other = refused(&|c| {
            c.insert(HOST_ID_KEY.into(), host_id("nqn.2024-01.x:node:other"));
        });
        assert!(other.to_string().contains("does not belong"), "{other}");
    }
}
