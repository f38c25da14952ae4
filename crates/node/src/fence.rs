//! The host identities the node connects as, and which one a volume is
//! connected with.
//!
//! A node has two identities:
//!
//! - its **attach identity**, which follows from its node name and the NQN
//!   prefix alone (`<prefix>node:<node name>`, with a host ID computed from
//!   it: [`nvme_host::fence`]). Its host NQN is also the node ID the node
//!   plugin reports, so the controller knows it without asking the node,
//!   puts it in the volume's allow list on the RDS when it publishes the
//!   volume here, and hands it over in the `publish_context`;
//! - the host's **own identity** (`/etc/nvme/hostnqn` and `hostid`, or the
//!   one the plugin made once in its state folder), which every other
//!   NVMe-oF connection of the host uses.
//!
//! NodeStageVolume connects with exactly the identity the publish context
//! names ([`Identities::for_volume`]); it must be this node's attach
//! identity, since a volume published to another node is one the RDS lets
//! only that node in to. A publish context without an identity comes from a
//! controller older than attachment, or from none (the CSIDriver said
//! `attachRequired: false`): the volume's export is then open to any host,
//! and the node connects as the host itself, as it always did, and says so
//! in its log.
//!
//! The node touches only connections made as one of its two identities
//! ([`Identities::ours`]): one kernel may hold controllers of the same
//! volume for other identities (the fence check of `rds-csi-plugin doctor`,
//! or a test that plays two nodes on one kernel), and those are not this
//! node's to disconnect.

use std::collections::HashMap;

use nvme_host::HostIdentity;
use nvme_host::fence::{self, FenceError};
use tracing::warn;

use crate::error::{NodeError, Result};

/// Which identity a volume is connected with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chosen {
    /// The identity the publish context names: this node's attach identity.
    Published(HostIdentity),
    /// The host's own identity: the publish context names none.
    Own(HostIdentity),
}

impl Chosen {
    /// The identity to connect with.
    pub fn identity(&self) -> &HostIdentity {
        match self {
            Self::Published(identity) | Self::Own(identity) => identity,
        }
    }
}

/// The node's two host identities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identities {
    own: HostIdentity,
    attach: HostIdentity,
}

impl Identities {
    /// The identities of the node named `node_name` under `prefix`, whose
    /// host's own identity is `own`. Refused when the node name cannot make
    /// a host NQN (not a Kubernetes node name, or too long with this
    /// prefix), or when the two identities share a host NQN or a host ID but
    /// not both (the kernel refuses one host ID with two host NQNs).
    pub fn new(own: HostIdentity, prefix: &str, node_name: &str) -> Result<Identities> {
        let attach = fence::identity_of_node_name(prefix, node_name)
            .map_err(|e| NodeError::Config(format!("the node's host identity: {e}")))?;
        if (own.nqn == attach.nqn) != (own.id.eq_ignore_ascii_case(&attach.id)) {
            return Err(NodeError::Config(format!(
                "the host's own NVMe identity (hostnqn {}, hostid {}) shares a part with the identity this node attaches volumes as (hostnqn {}, hostid {}); the kernel cannot use both: fix /etc/nvme",
                own.nqn, own.id, attach.nqn, attach.id
            )));
        }
        Ok(Identities { own, attach })
    }

    /// The host's own identity.
    pub fn own(&self) -> &HostIdentity {
        &self.own
    }

    /// The identity published volumes are attached as; its host NQN is the
    /// node's CSI node ID.
    pub fn attach(&self) -> &HostIdentity {
        &self.attach
    }

    /// The host NQNs whose connections are this node's to judge and
    /// disconnect.
    pub fn ours(&self) -> Vec<String> {
        let mut ours = vec![self.attach.nqn.clone()];
        if self.own.nqn != self.attach.nqn {
            ours.push(self.own.nqn.clone());
        }
        ours
    }

    /// The identity to connect `volume` with, given the `publish_context`
    /// of its request: the one it names, which must be this node's attach
    /// identity (a context that breaks the rules of [`nvme_host::fence`] is
    /// a bad argument; one naming another node is refused); or, when it
    /// names none, the host's own (logged).
    pub fn for_volume(
        &self,
        volume: &str,
        publish_context: &HashMap<String, String>,
    ) -> Result<Chosen> {
        let named = fence::from_publish_context(publish_context).map_err(|e| match e {
            FenceError::Context(problem) => NodeError::BadArgument {
                what: "publish context",
                problem: format!("is unusable: {problem}"),
            },
            other => NodeError::BadArgument {
                what: "publish context",
                problem: format!("is unusable: {other}"),
            },
        })?;
        match named {
            Some(identity) if identity == self.attach => Ok(Chosen::Published(identity)),
            Some(identity) => Err(NodeError::PublishedToAnother {
                volume: volume.to_owned(),
                published: identity.nqn,
                this_node: self.attach.nqn.clone(),
            }),
            None => {
                warn!(
                    volume,
                    hostnqn = %self.own.nqn,
                    "the publish context names no host identity (the volume was published by a controller without attachment, or not at all): connecting as the host itself"
                );
                Ok(Chosen::Own(self.own.clone()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "nqn.2024-01.io.srvlab.csi.rds:";

    fn own() -> HostIdentity {
        HostIdentity {
            nqn: "nqn.2014-08.org.nvmexpress:uuid:6a1b2c3d-0000-4000-8000-0123456789ab".into(),
            id: "6a1b2c3d-0000-4000-8000-0123456789ab".into(),
        }
    }

    fn node(name: &str) -> Identities {
        Identities::new(own(), PREFIX, name).unwrap()
    }

    #[test]
    fn the_attach_identity_follows_from_the_node_name() {
        let ids = node("worker-1");
        assert_eq!(ids.attach().nqn, format!("{PREFIX}node:worker-1"));
        assert_eq!(ids.attach().id, fence::host_id(&ids.attach().nqn));
        assert_eq!(ids.ours(), [ids.attach().nqn.clone(), own().nqn]);
        for bad in ["Worker_1", ""] {
            assert!(
                matches!(
                    Identities::new(own(), PREFIX, bad),
                    Err(NodeError::Config(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn an_own_identity_sharing_half_of_the_attach_one_is_refused() {
        let attach = fence::identity_of_node_name(PREFIX, "worker-1").unwrap();
        let same_id = HostIdentity {
            id: attach.id.clone(),
            ..own()
        };
        assert!(Identities::new(same_id, PREFIX, "worker-1").is_err());
        let same_nqn = HostIdentity {
            nqn: attach.nqn.clone(),
            ..own()
        };
        assert!(Identities::new(same_nqn, PREFIX, "worker-1").is_err());
        // Both the same: one identity, used for everything.
        let ids = Identities::new(attach.clone(), PREFIX, "worker-1").unwrap();
        assert_eq!(ids.ours(), [attach.nqn]);
    }

    #[test]
    fn a_volume_is_connected_as_the_publish_context_says() {
        let ids = node("worker-1");
        let context = fence::to_publish_context(ids.attach());
        assert_eq!(
            ids.for_volume("pvc-1", &context).unwrap(),
            Chosen::Published(ids.attach().clone())
        );
        // Nothing named: the host's own identity.
        assert_eq!(
            ids.for_volume("pvc-1", &HashMap::new()).unwrap(),
            Chosen::Own(own())
        );
        // Another node's identity: refused, naming both.
        let other = fence::identity_of_node_name(PREFIX, "worker-2").unwrap();
        let e = ids
            .for_volume("pvc-1", &fence::to_publish_context(&other))
            .unwrap_err();
        assert!(
            matches!(&e, NodeError::PublishedToAnother { published, .. } if *published == other.nqn),
            "{e:?}"
        );
        assert!(e.to_string().contains("worker-2") && e.to_string().contains("worker-1"));
        // A context that breaks the rules: a bad argument.
        let mut forged = context.clone();
        forged.insert(fence::HOST_ID_KEY.into(), own().id);
        let e = ids.for_volume("pvc-1", &forged).unwrap_err();
        assert!(
            matches!(
                e,
                NodeError::BadArgument {
                    what: "publish context",
                    ..
                }
            ),
            "{e:?}"
        );
        let mut half = context;
        half.remove(fence::HOST_ID_KEY);
        assert!(matches!(
            ids.for_volume("pvc-1", &half),
            Err(NodeError::BadArgument { .. })
        ));
    }
}
