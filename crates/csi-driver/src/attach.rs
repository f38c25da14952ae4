//! Which nodes a volume is published to, as recorded on the RDS, and the
//! decisions of ControllerPublishVolume and ControllerUnpublishVolume: pure
//! functions of that record and the request.
//!
//! The record is the disk's export itself, so that the fence and the record
//! cannot disagree and one command writes both:
//!
//! - `nvme-tcp-export=no`: published nowhere. New disks are made so; no host
//!   can connect, whatever the list says.
//! - `nvme-tcp-export=yes` and `nvme-tcp-server-allow-host-name` listing
//!   host NQNs: published to exactly the nodes whose host NQN
//!   ([`nvme_host::fence`]) is listed, and the node ID of each is that NQN.
//!   A volume published in any other way than to one node read-write also
//!   lists one marker, `<NQN prefix>mode:<mode>` ([`Mode`]), which no node
//!   connects as, so that a later publish can be judged against it.
//! - `nvme-tcp-export=yes` and an empty list: RouterOS lets any host in. The
//!   driver never writes this; volumes made before attachment existed (by
//!   this driver or the Go driver) are left so until their first publish,
//!   which closes them to all but the node published to.
//!
//! Entries the driver did not write (another prefix, another tool, an
//! operator) are kept as they are and count as hosts published to that the
//! driver does not know: a single-node publish elsewhere is refused while
//! they are there, and only an unpublish from all nodes removes them.
//!
//! A decision says what the export must become ([`Target`]), or why the
//! request is refused. The controller writes the target with a
//! compare-and-set against the state it decided from, and decides again from
//! what it then reads if someone changed the disk meanwhile. RouterOS runs
//! the commands of two scripts interleaved, so the compare and the set are
//! not one step: two controllers that both believe they lead (the per-volume
//! lock serialises one controller's calls, leader election the replicas')
//! can both pass the compare, and the later set wins. Even then only one
//! node is let in, because the export is the fence and the record at once:
//! the node whose publish was overwritten is refused when it connects, and
//! the next publish or ListVolumes reads the truth.

use std::collections::BTreeSet;
use std::fmt;

use csi_proto::v1::volume_capability::access_mode::Mode as AccessMode;
use nvme_host::fence;
use routeros::{Disk, ExportState, HostList, Nqn, ValueError};

use crate::capability::Capability;

/// What separates the NQN prefix from a mode in a marker entry.
pub const MODE_INFIX: &str = "mode:";

/// How a volume is published: to one node or to several at once, and
/// whether the nodes may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mode {
    /// Several nodes at once (MULTI_NODE access modes, block volumes only).
    pub multi_node: bool,
    /// Read-only: a reader-only access mode, or `readonly` in the request.
    pub read_only: bool,
}

impl Mode {
    /// The only mode a publish of a ReadWriteOnce volume has; recorded
    /// without a marker.
    pub const SINGLE_WRITER: Mode = Mode {
        multi_node: false,
        read_only: false,
    };

    /// The mode a publish with capability `cap` and `readonly` asks for.
    pub fn of(cap: &Capability, readonly: bool) -> Mode {
        Mode {
            multi_node: matches!(
                cap.mode,
                AccessMode::MultiNodeReaderOnly
                    | AccessMode::MultiNodeMultiWriter
                    | AccessMode::MultiNodeSingleWriter
            ),
            read_only: readonly || cap.read_only(),
        }
    }

    /// The word recorded in the marker; `None` for [`Mode::SINGLE_WRITER`].
    fn word(self) -> Option<&'static str> {
        match (self.multi_node, self.read_only) {
            (false, false) => None,
            (false, true) => Some("single-reader"),
            (true, false) => Some("multi-writer"),
            (true, true) => Some("multi-reader"),
        }
    }

    fn from_word(word: &str) -> Option<Mode> {
        let (multi_node, read_only) = match word {
            "single-reader" => (false, true),
            "multi-writer" => (true, false),
            "multi-reader" => (true, true),
            _ => return None,
        };
        Some(Mode {
            multi_node,
            read_only,
        })
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word().unwrap_or("single-writer"))
    }
}

/// The published state of a volume, read from its disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The export exactly as the RDS holds it: what a compare-and-set must
    /// expect.
    pub state: ExportState,
    /// Who the export admits.
    pub target: Target,
}

/// What a volume's export admits: the meaning of an [`ExportState`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Whether the disk is exported.
    pub exported: bool,
    /// The node IDs (host NQNs) of this driver's nodes listed.
    pub nodes: BTreeSet<String>,
    /// The mode they are published in ([`Mode::SINGLE_WRITER`] when no
    /// marker is listed).
    pub mode: Mode,
    /// Listed entries this driver did not write, in the order listed.
    pub foreign: Vec<String>,
}

impl Target {
    /// Not exported, nobody listed: published nowhere.
    pub fn closed() -> Target {
        Target {
            exported: false,
            nodes: BTreeSet::new(),
            mode: Mode::SINGLE_WRITER,
            foreign: Vec::new(),
        }
    }

    /// Exported with an empty list: any host may connect. Only volumes made
    /// before attachment existed are in this state.
    pub fn is_open(&self) -> bool {
        self.exported && self.nodes.is_empty() && self.foreign.is_empty()
    }

    /// The node IDs the volume is published to, as ListVolumes and
    /// ControllerGetVolume report them: the listed nodes, if exported.
    pub fn published_nodes(&self) -> Vec<String> {
        if self.exported {
            self.nodes.iter().cloned().collect()
        } else {
            Vec::new()
        }
    }

    /// The same, with the export switched on when nodes are listed. A disk
    /// listing nodes with its export off was left half-way by a bounce whose
    /// second command never ran.
    fn repaired(&self) -> Target {
        let mut target = self.clone();
        if !target.nodes.is_empty() {
            target.exported = true;
        }
        target
    }
}

/// What must happen to a volume's export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing: the export already admits what was asked.
    Unchanged,
    /// Write `to` in place of the recorded state. With `bounce`, hosts that
    /// `to` lets out are connected now and must be cut off: the export is
    /// switched off and on in the same script.
    Change {
        /// The new state.
        to: Target,
        /// Whether live connections must be ended.
        bounce: bool,
    },
}

/// Why a publish is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A volume one node at a time is published to another node.
    #[error(
        "volume {volume} is published to {}; as {mode}, it can be published to one node only{}",
        others.join(", "),
        if others.len() == 1 { "; unpublish it there first" } else { "" }
    )]
    PublishedElsewhere {
        /// The volume.
        volume: String,
        /// The nodes it is published to (node IDs, or foreign entries).
        others: Vec<String>,
        /// The mode it is published in there.
        mode: Mode,
    },
    /// Several nodes at once, but not in the mode asked for.
    #[error(
        "volume {volume} is published to {} as {recorded}; it cannot also be published as {asked}",
        others.join(", ")
    )]
    OtherMode {
        /// The volume.
        volume: String,
        /// The nodes it is published to.
        others: Vec<String>,
        /// The mode recorded.
        recorded: Mode,
        /// The mode asked for.
        asked: Mode,
    },
    /// Published to this node already, in another mode.
    #[error(
        "volume {volume} is already published to {node} as {recorded}, not as {asked}; unpublish it first"
    )]
    Incompatible {
        /// The volume.
        volume: String,
        /// The node.
        node: String,
        /// The mode recorded.
        recorded: Mode,
        /// The mode asked for.
        asked: Mode,
    },
    /// The list holds entries this driver did not write.
    #[error(
        "volume {volume} admits hosts this driver did not record ({}); publishing it elsewhere could let two hosts write it. Unpublish it from all nodes, or remove them from nvme-tcp-server-allow-host-name on the RDS",
        entries.join(", ")
    )]
    Foreign {
        /// The volume.
        volume: String,
        /// The entries.
        entries: Vec<String>,
    },
}

/// Reads and writes the record of one driver installation: its NQN prefix
/// makes its node IDs and markers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    prefix: String,
}

/// A record the driver cannot write back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// An entry cannot be sent back to RouterOS as it is.
    #[error(
        "the allow list of volume {volume} holds {entry:?}, which this driver cannot send back to RouterOS ({reason}); fix nvme-tcp-server-allow-host-name on the RDS by hand"
    )]
    Unwritable {
        /// The volume.
        volume: String,
        /// The entry.
        entry: String,
        /// Why.
        reason: ValueError,
    },
}

impl Fence {
    /// The record of the driver whose NQN prefix is `prefix`.
    pub fn new(prefix: impl Into<String>) -> Fence {
        Fence {
            prefix: prefix.into(),
        }
    }

    /// The NQN prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The marker entry of `mode`, if it has one.
    fn marker(&self, mode: Mode) -> Option<String> {
        mode.word()
            .map(|word| format!("{}{MODE_INFIX}{word}", self.prefix))
    }

    /// Reads the published state of `disk`.
    pub fn read(&self, disk: &Disk) -> Result<Recorded, RecordError> {
        let mut nodes = BTreeSet::new();
        let mut modes = Vec::new();
        let mut foreign = Vec::new();
        for entry in &disk.allowed_hosts {
            if fence::node_name_of(&self.prefix, entry).is_ok() {
                nodes.insert(entry.clone());
            } else if let Some(mode) = entry
                .strip_prefix(&self.prefix)
                .and_then(|rest| rest.strip_prefix(MODE_INFIX))
                .and_then(Mode::from_word)
            {
                modes.push((entry.clone(), mode));
            } else {
                foreign.push(entry.clone());
            }
        }
        // One marker is a mode; two are nothing this driver writes.
        let mode = match modes.as_slice() {
            [] => Mode::SINGLE_WRITER,
            [(_, mode)] => *mode,
            _ => {
                foreign.extend(modes.iter().map(|(entry, _)| entry.clone()));
                Mode::SINGLE_WRITER
            }
        };
        let state = ExportState {
            export: disk.nvme_tcp_export,
            hosts: self.list(&disk.slot, disk.allowed_hosts.iter().map(String::as_str))?,
        };
        Ok(Recorded {
            state,
            target: Target {
                exported: disk.nvme_tcp_export,
                nodes,
                mode,
                foreign,
            },
        })
    }

    /// The node IDs `disk` is published to, sorted: the listed nodes of
    /// this driver, if the disk is exported. Entries it did not write are
    /// not node IDs and are left out.
    pub fn published_nodes(&self, disk: &Disk) -> Vec<String> {
        if !disk.nvme_tcp_export {
            return Vec::new();
        }
        let nodes: BTreeSet<&String> = disk
            .allowed_hosts
            .iter()
            .filter(|e| fence::node_name_of(&self.prefix, e).is_ok())
            .collect();
        nodes.into_iter().cloned().collect()
    }

    /// The export that records `target`: its nodes in order, then the
    /// foreign entries as they were, then the marker of its mode, if any.
    pub fn write(&self, volume: &str, target: &Target) -> Result<ExportState, RecordError> {
        let marker = if target.nodes.is_empty() {
            None
        } else {
            self.marker(target.mode)
        };
        let entries = target
            .nodes
            .iter()
            .map(String::as_str)
            .chain(target.foreign.iter().map(String::as_str))
            .chain(marker.as_deref());
        Ok(ExportState {
            export: target.exported,
            hosts: self.list(volume, entries)?,
        })
    }

    fn list<'a>(
        &self,
        volume: &str,
        entries: impl Iterator<Item = &'a str>,
    ) -> Result<HostList, RecordError> {
        let nqns = entries
            .map(|entry| {
                Nqn::new(entry).map_err(|reason| RecordError::Unwritable {
                    volume: volume.to_owned(),
                    entry: entry.to_owned(),
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HostList::new(nqns.iter()))
    }
}

/// ControllerPublishVolume of `volume` to `node` (a node ID of this driver)
/// in `mode`, given what the disk records.
pub fn decide_publish(
    volume: &str,
    recorded: &Target,
    node: &str,
    mode: Mode,
) -> Result<Decision, Refusal> {
    let to = if recorded.nodes.contains(node) {
        if recorded.mode != mode {
            return Err(Refusal::Incompatible {
                volume: volume.to_owned(),
                node: node.to_owned(),
                recorded: recorded.mode,
                asked: mode,
            });
        }
        recorded.repaired()
    } else if !recorded.foreign.is_empty() {
        return Err(Refusal::Foreign {
            volume: volume.to_owned(),
            entries: recorded.foreign.clone(),
        });
    } else if recorded.nodes.is_empty() {
        // Closed, or open to any host (made before attachment existed):
        // from now on, this node only.
        Target {
            exported: true,
            nodes: BTreeSet::from([node.to_owned()]),
            mode,
            foreign: Vec::new(),
        }
    } else {
        let others: Vec<String> = recorded.nodes.iter().cloned().collect();
        if !mode.multi_node || !recorded.mode.multi_node {
            return Err(Refusal::PublishedElsewhere {
                volume: volume.to_owned(),
                others,
                mode: if recorded.mode.multi_node {
                    mode
                } else {
                    recorded.mode
                },
            });
        }
        if recorded.mode != mode {
            return Err(Refusal::OtherMode {
                volume: volume.to_owned(),
                others,
                recorded: recorded.mode,
                asked: mode,
            });
        }
        let mut to = recorded.repaired();
        to.nodes.insert(node.to_owned());
        to
    };
    Ok(change(recorded, to, false))
}

/// ControllerUnpublishVolume of a volume from `node`, or from every node
/// when `None`, given what the disk records. Never refused: a volume not
/// published to the node is already as asked.
pub fn decide_unpublish(recorded: &Target, node: Option<&str>) -> Decision {
    let Some(node) = node else {
        return change(recorded, Target::closed(), false);
    };
    if !recorded.nodes.contains(node) {
        // Not published there. Only a bounce cut off half-way is finished,
        // so the nodes still listed get their export back.
        return change(recorded, recorded.repaired(), false);
    }
    let mut to = recorded.clone();
    to.nodes.remove(node);
    if to.nodes.is_empty() && to.foreign.is_empty() {
        // The last one: closing the export also ends its connection.
        return change(recorded, Target::closed(), false);
    }
    to.exported = true;
    if to.nodes.is_empty() {
        to.mode = Mode::SINGLE_WRITER;
    }
    // The node let out may be connected: the export must go away under it.
    change(recorded, to, true)
}

fn change(recorded: &Target, to: Target, bounce: bool) -> Decision {
    if *recorded == to {
        Decision::Unchanged
    } else {
        Decision::Change { to, bounce }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::{check, tests as caps};

    const PREFIX: &str = "nqn.2024-01.io.srvlab.csi.rds:";
    const VOLUME: &str = "pvc-1";

    fn node(name: &str) -> String {
        fence::node_host_nqn(PREFIX, name).unwrap()
    }

    fn fence_() -> Fence {
        Fence::new(PREFIX)
    }

    fn disk(export: bool, hosts: &[&str]) -> Disk {
        Disk {
            slot: VOLUME.into(),
            kind: "file".into(),
            file_path: Some("/p/pvc-1.img".into()),
            size: 1 << 30,
            nvme_tcp_export: export,
            nvme_tcp_port: Some(4420),
            nqn: Some(format!("{PREFIX}{VOLUME}")),
            comment: Some("rds-csi:pvc-1".into()),
            mount_filesystem: Some(false),
            disabled: false,
            allowed_hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
        }
    }

    fn target(exported: bool, nodes: &[&str], mode: Mode) -> Target {
        Target {
            exported,
            nodes: nodes.iter().map(|n| node(n)).collect(),
            mode,
            foreign: Vec::new(),
        }
    }

    const RWO: Mode = Mode::SINGLE_WRITER;
    const MULTI: Mode = Mode {
        multi_node: true,
        read_only: false,
    };
    const MULTI_RO: Mode = Mode {
        multi_node: true,
        read_only: true,
    };
    const RO: Mode = Mode {
        multi_node: false,
        read_only: true,
    };

    /// What the RDS does with a compare-and-set: applies `to` only if the
    /// disk is in `expected`.
    fn cas(current: &mut Target, expected: &Target, to: &Target) -> bool {
        if current == expected {
            *current = to.clone();
            true
        } else {
            false
        }
    }

    fn publish(recorded: &Target, name: &str, mode: Mode) -> Result<Decision, Refusal> {
        decide_publish(VOLUME, recorded, &node(name), mode)
    }

    fn changed_to(d: Decision) -> Target {
        match d {
            Decision::Change { to, .. } => to,
            Decision::Unchanged => panic!("expected a change"),
        }
    }

    #[test]
    fn modes_follow_the_capability_and_readonly() {
        use csi_proto::v1::volume_capability::access_mode::Mode as M;
        let of = |c, ro| Mode::of(&check(&c).unwrap(), ro);
        assert_eq!(of(caps::mount("ext4", M::SingleNodeWriter), false), RWO);
        assert_eq!(
            of(caps::mount("ext4", M::SingleNodeMultiWriter), false),
            RWO
        );
        assert_eq!(of(caps::mount("ext4", M::SingleNodeWriter), true), RO);
        assert_eq!(of(caps::mount("", M::SingleNodeReaderOnly), false), RO);
        assert_eq!(of(caps::block(M::MultiNodeMultiWriter), false), MULTI);
        assert_eq!(of(caps::block(M::MultiNodeReaderOnly), false), MULTI_RO);
        assert_eq!(of(caps::block(M::SingleNodeWriter), false), RWO);
    }

    #[test]
    fn the_record_reads_back_what_was_written() {
        let f = fence_();
        for t in [
            Target::closed(),
            target(true, &["a"], RWO),
            target(true, &["a"], RO),
            target(true, &["a", "b"], MULTI),
            target(true, &["b", "a"], MULTI_RO),
            target(false, &["a"], MULTI),
        ] {
            let state = f.write(VOLUME, &t).unwrap();
            let entries = routeros::HostList::entries(state.hosts.as_str());
            let refs: Vec<&str> = entries.iter().map(String::as_str).collect();
            let read = f.read(&disk(state.export, &refs)).unwrap();
            assert_eq!(read.target, t);
            assert_eq!(read.state, state);
        }
        // One read-write node is just its NQN: nothing but the fence itself.
        assert_eq!(
            f.write(VOLUME, &target(true, &["a"], RWO))
                .unwrap()
                .hosts
                .as_str(),
            "nqn.2024-01.io.srvlab.csi.rds:node:a"
        );
        assert_eq!(
            f.write(VOLUME, &target(true, &["a", "b"], MULTI))
                .unwrap()
                .hosts
                .as_str(),
            "nqn.2024-01.io.srvlab.csi.rds:node:a,nqn.2024-01.io.srvlab.csi.rds:node:b,\
             nqn.2024-01.io.srvlab.csi.rds:mode:multi-writer"
        );
    }

    #[test]
    fn entries_of_others_are_foreign_and_kept() {
        let f = fence_();
        let read = f
            .read(&disk(
                true,
                &[
                    &node("a"),
                    "nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427",
                    "nqn.2000-02.com.other:node:a",
                    &format!("{PREFIX}mode:no-such-mode"),
                ],
            ))
            .unwrap();
        assert_eq!(read.target.nodes, BTreeSet::from([node("a")]));
        assert_eq!(read.target.foreign.len(), 3);
        let two_markers = f
            .read(&disk(
                true,
                &[
                    &format!("{PREFIX}mode:multi-writer"),
                    &format!("{PREFIX}mode:multi-reader"),
                ],
            ))
            .unwrap();
        assert_eq!(two_markers.target.foreign.len(), 2);
        // Printed text this driver could not send back is an error, not a guess.
        let err = f.read(&disk(true, &["bad host"])).unwrap_err();
        assert!(err.to_string().contains("by hand"), "{err}");
    }

    #[test]
    fn publish_opens_a_closed_volume_to_that_node_alone() {
        let d = publish(&Target::closed(), "a", RWO).unwrap();
        assert_eq!(
            d,
            Decision::Change {
                to: target(true, &["a"], RWO),
                bounce: false
            }
        );
    }

    #[test]
    fn the_first_publish_of_an_open_volume_closes_it_to_others() {
        let open = Target {
            exported: true,
            ..Target::closed()
        };
        assert!(open.is_open());
        assert_eq!(
            changed_to(publish(&open, "a", RWO).unwrap()),
            target(true, &["a"], RWO)
        );
    }

    #[test]
    fn repeats_converge() {
        let published = target(true, &["a"], RWO);
        assert_eq!(publish(&published, "a", RWO), Ok(Decision::Unchanged));
        let both = target(true, &["a", "b"], MULTI);
        assert_eq!(publish(&both, "b", MULTI), Ok(Decision::Unchanged));
        assert_eq!(
            decide_unpublish(&Target::closed(), Some(&node("a"))),
            Decision::Unchanged
        );
        assert_eq!(
            decide_unpublish(&Target::closed(), None),
            Decision::Unchanged
        );
    }

    #[test]
    fn a_single_node_volume_published_elsewhere_is_refused_naming_the_node() {
        let published = target(true, &["a"], RWO);
        let err = publish(&published, "b", RWO).unwrap_err();
        assert!(matches!(err, Refusal::PublishedElsewhere { .. }));
        assert_eq!(
            err.to_string(),
            "volume pvc-1 is published to nqn.2024-01.io.srvlab.csi.rds:node:a; as single-writer, \
             it can be published to one node only; unpublish it there first"
        );
        // Asking for several nodes does not help while it is published to one.
        assert!(matches!(
            publish(&published, "b", MULTI),
            Err(Refusal::PublishedElsewhere { .. })
        ));
        // Nor does a volume published to several admit one that wants it alone.
        let both = target(true, &["a", "b"], MULTI);
        let err = publish(&both, "c", RWO).unwrap_err();
        assert!(matches!(err, Refusal::PublishedElsewhere { .. }));
        assert!(err.to_string().contains("node:a, nqn"), "{err}");
    }

    #[test]
    fn an_incompatible_republish_to_the_same_node_is_refused() {
        let published = target(true, &["a"], RWO);
        let err = publish(&published, "a", RO).unwrap_err();
        assert!(matches!(err, Refusal::Incompatible { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("as single-writer, not as single-reader"),
            "{err}"
        );
        let both = target(true, &["a", "b"], MULTI);
        assert!(matches!(
            publish(&both, "a", MULTI_RO),
            Err(Refusal::Incompatible { .. })
        ));
        assert!(matches!(
            publish(&both, "c", MULTI_RO),
            Err(Refusal::OtherMode { .. })
        ));
    }

    #[test]
    fn multi_node_block_volumes_take_a_second_node() {
        let a = target(true, &["a"], MULTI);
        assert_eq!(
            publish(&a, "b", MULTI),
            Ok(Decision::Change {
                to: target(true, &["a", "b"], MULTI),
                bounce: false
            })
        );
    }

    #[test]
    fn foreign_entries_block_publishing_elsewhere() {
        let mut t = target(true, &[], RWO);
        t.foreign = vec!["nqn.2000-02.com.other:host".into()];
        assert!(matches!(
            publish(&t, "a", RWO),
            Err(Refusal::Foreign { .. })
        ));
        // Unpublish from all removes them.
        assert_eq!(changed_to(decide_unpublish(&t, None)), Target::closed());
        // Published there already: kept as they are.
        t.nodes.insert(node("a"));
        assert_eq!(publish(&t, "a", RWO), Ok(Decision::Unchanged));
    }

    #[test]
    fn unpublishing_the_last_node_closes_the_export() {
        let a = target(true, &["a"], RWO);
        assert_eq!(
            decide_unpublish(&a, Some(&node("a"))),
            Decision::Change {
                to: Target::closed(),
                bounce: false
            }
        );
        // Another node's unpublish changes nothing.
        assert_eq!(decide_unpublish(&a, Some(&node("b"))), Decision::Unchanged);
    }

    #[test]
    fn unpublishing_one_of_two_bounces_the_export() {
        let both = target(true, &["a", "b"], MULTI);
        assert_eq!(
            decide_unpublish(&both, Some(&node("a"))),
            Decision::Change {
                to: target(true, &["b"], MULTI),
                bounce: true
            }
        );
    }

    #[test]
    fn unpublish_from_all_closes_whatever_the_record() {
        for t in [
            target(true, &["a", "b"], MULTI),
            target(true, &[], RWO), // open to any host
            target(false, &["a"], RWO),
        ] {
            assert_eq!(
                decide_unpublish(&t, None),
                Decision::Change {
                    to: Target::closed(),
                    bounce: false
                }
            );
        }
    }

    #[test]
    fn a_bounce_cut_off_half_way_is_finished() {
        // The first command of the bounce ran (a let out, export off), the
        // second did not.
        let half = target(false, &["b"], MULTI);
        assert_eq!(
            decide_unpublish(&half, Some(&node("a"))),
            Decision::Change {
                to: target(true, &["b"], MULTI),
                bounce: false
            }
        );
        assert_eq!(
            changed_to(publish(&half, "b", MULTI).unwrap()),
            target(true, &["b"], MULTI)
        );
    }

    #[test]
    fn published_nodes_of_a_disk_are_its_node_entries_while_exported() {
        let f = fence_();
        let listed = [node("b"), "nqn.2000-02.com.other:x".to_owned(), node("a")];
        let refs: Vec<&str> = listed.iter().map(String::as_str).collect();
        assert_eq!(
            f.published_nodes(&disk(true, &refs)),
            vec![node("a"), node("b")]
        );
        assert!(f.published_nodes(&disk(false, &refs)).is_empty());
    }

    #[test]
    fn published_nodes_are_reported_only_while_exported() {
        assert_eq!(
            target(true, &["b", "a"], MULTI).published_nodes(),
            vec![node("a"), node("b")]
        );
        assert!(target(false, &["a"], RWO).published_nodes().is_empty());
        assert!(Target::closed().published_nodes().is_empty());
    }

    /// Two publishes of one volume decided from the same record, as two
    /// controllers (or a retry racing its first attempt) would: the RDS
    /// applies the first compare-and-set; the second finds the disk changed,
    /// decides again from what it reads, and is refused, naming the winner.
    #[test]
    fn racing_publishes_to_two_nodes_never_both_win() {
        let mut rds = Target::closed();
        let seen = rds.clone();
        let to_a = changed_to(publish(&seen, "a", RWO).unwrap());
        let to_b = changed_to(publish(&seen, "b", RWO).unwrap());
        assert!(cas(&mut rds, &seen, &to_a));
        assert!(!cas(&mut rds, &seen, &to_b), "B's expected state is gone");
        let err = publish(&rds, "b", RWO).unwrap_err();
        assert!(err.to_string().contains(&node("a")), "{err}");
        assert_eq!(rds, target(true, &["a"], RWO));
    }

    /// For a multi-node volume the loser of the race is added on its second
    /// decision, not lost.
    #[test]
    fn racing_multi_node_publishes_both_end_up_listed() {
        let mut rds = Target::closed();
        let seen = rds.clone();
        let to_a = changed_to(publish(&seen, "a", MULTI).unwrap());
        let to_b = changed_to(publish(&seen, "b", MULTI).unwrap());
        assert!(cas(&mut rds, &seen, &to_a));
        assert!(!cas(&mut rds, &seen, &to_b));
        let seen = rds.clone();
        let to_b = changed_to(publish(&seen, "b", MULTI).unwrap());
        assert!(cas(&mut rds, &seen, &to_b));
        assert_eq!(rds, target(true, &["a", "b"], MULTI));
    }

    /// A publish racing an unpublish of the same node: whichever lands
    /// second decides from the other's result, so the end state is one of
    /// the two orders, never a mix.
    #[test]
    fn a_publish_racing_an_unpublish_ends_in_one_order_or_the_other() {
        let start = target(true, &["a"], RWO);
        let unpub = match decide_unpublish(&start, Some(&node("a"))) {
            Decision::Change { to, .. } => to,
            Decision::Unchanged => panic!(),
        };
        let mut rds = start.clone();
        assert!(cas(&mut rds, &start, &unpub));
        // B's publish decided from `start` was refused; decided again from
        // what the RDS now holds, it goes through.
        assert!(publish(&start, "b", RWO).is_err());
        let to_b = changed_to(publish(&rds, "b", RWO).unwrap());
        let seen = rds.clone();
        assert!(cas(&mut rds, &seen, &to_b));
        assert_eq!(rds, target(true, &["b"], RWO));
    }
}
