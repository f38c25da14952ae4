//! `rds-csi-plugin doctor --check-fence`: whether this RouterOS fences
//! volumes the way the driver assumes (docs/routeros-cli.md, "Attachment"),
//! tried on a scratch disk with this machine's NVMe/TCP initiator.
//!
//! It needs both sides: SSH to the RDS (the controller's flags) and a kernel
//! with `nvme-tcp` (the node's), so it runs with `--mode all`, on a node or
//! any Linux machine that reaches the RDS's NVMe/TCP port. Unlike the other
//! checks it changes things, and only its own: it makes a small disk
//! `doctor-fence-<random>` in `--volume-path`, and two host identities of
//! the driver's form for made-up nodes, and removes all of it at the end,
//! also when a check fails.
//!
//! 1. The disk is opened to identity A alone: B's connect must be refused
//!    and A's accepted.
//! 2. The list becomes A and B: it must read back as the two entries
//!    written, and B may now connect.
//! 3. A is let out with the export switched off and on (what an unpublish
//!    of one of two nodes sends), both connected: A's connection must end
//!    and stay ended, B's must come back.
//! 4. Everything is disconnected and removed.

pub mod verdict;

use std::time::Duration;

use csi_driver::NodeConfig;
use nvme_host::{ConnectionConfig, CtrlState, Host, HostIdentity, fence};
use rds_client::RdsClient;
use routeros::{Comment, ExportState, HostList, NewDisk, Nqn, OwnerTest, Slot};
use tokio::time::Instant;
use verdict::{BounceSeen, CleanupSeen, ConnectSeen, ListSeen, ScratchSeen};

use super::{Check, Report, name};
use crate::config::ControllerConfig;

/// The scratch disk's size: small, but more than any minimum a filesystem
/// or RouterOS may have.
const SCRATCH_BYTES: u64 = 64 << 20;

/// The scratch disk's comment, by which it is removed.
const SCRATCH_COMMENT: &str = "rds-csi doctor --check-fence scratch disk, safe to remove";

/// How long a connection may take to end, or to come back, after a bounce:
/// several reconnect delays of the connections made here (1 s each).
const BOUNCE_WAIT: Duration = Duration::from_secs(30);

/// How long a host let out is watched after being cut off, to see that it
/// stays out (several of its reconnect attempts).
const STAY_OUT: Duration = Duration::from_secs(5);

/// The fence checks, in order.
pub const CHECKS: [&str; 5] = [
    name::FENCE_SCRATCH,
    name::FENCE_LISTED_ONLY,
    name::FENCE_LIST_OF_TWO,
    name::FENCE_UNPUBLISH_CUTS,
    name::FENCE_CLEANUP,
];

/// What the scratch run works with.
struct Scratch {
    slot: Slot,
    /// Its comment: what the RDS checks before it changes or removes the
    /// scratch disk.
    comment: Comment,
    nqn: Nqn,
    a: HostIdentity,
    b: HostIdentity,
    traddr: String,
    port: u16,
}

impl Scratch {
    /// The test the RDS applies before it changes or removes the disk.
    fn owner(&self) -> Vec<OwnerTest> {
        vec![OwnerTest::CommentIs(self.comment.clone())]
    }

    fn connection(&self, who: &HostIdentity) -> ConnectionConfig {
        let mut cfg = ConnectionConfig::new(
            self.traddr.clone(),
            self.port,
            self.nqn.as_str(),
            who.clone(),
        );
        // Short, so that a host let out gives up soon, and one let back in
        // is back soon.
        cfg.ctrl_loss_tmo = Some(60);
        cfg.reconnect_delay = Some(1);
        cfg.keep_alive_tmo = Some(5);
        cfg
    }
}

/// Runs the fence checks against the RDS `client` reaches, from this
/// machine's initiator under the node's host root.
pub async fn run(c: &ControllerConfig, n: &NodeConfig, client: &RdsClient, report: &mut Report) {
    let suffix: String = nvme_host::identity::new_uuid_v4()
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(8)
        .collect();
    let prepared = (|| {
        let slot = Slot::new(&format!("doctor-fence-{suffix}")).map_err(|e| e.to_string())?;
        let comment = Comment::new(SCRATCH_COMMENT).map_err(|e| e.to_string())?;
        let nqn = Nqn::new(&format!("{}{slot}", c.nqn_prefix)).map_err(|e| e.to_string())?;
        let a = fence::identity_of_node_name(&c.nqn_prefix, &format!("doctor-{suffix}-a"))
            .map_err(|e| e.to_string())?;
        let b = fence::identity_of_node_name(&c.nqn_prefix, &format!("doctor-{suffix}-b"))
            .map_err(|e| e.to_string())?;
        let path = c
            .defaults
            .volume_path
            .join(&format!("{slot}.img"))
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((
            Scratch {
                slot,
                comment,
                nqn,
                a,
                b,
                traddr: c.defaults.nvme_address.clone(),
                port: c.defaults.nvme_port,
            },
            path,
        ))
    })();
    let (scratch, path) = match prepared {
        Ok(p) => p,
        Err(e) => {
            report.push(verdict::scratch(&ScratchSeen::Failed(e)));
            report.skip_all(&CHECKS[1..], "needs the scratch disk");
            return;
        }
    };
    // The scratch disk is changed and removed only while it carries exactly
    // its comment: the RDS checks it in the same script.
    let owner = scratch.owner();
    let comment = scratch.comment.clone();
    let made = client
        .create_volume(&NewDisk {
            slot: scratch.slot.clone(),
            file_path: path.clone(),
            size: SCRATCH_BYTES,
            nvme_port: scratch.port,
            nqn: scratch.nqn.clone(),
            comment,
        })
        .await
        .map_err(|e| e.to_string());
    let disk = match made {
        Ok(disk) => {
            report.push(verdict::scratch(&ScratchSeen::Made {
                slot: scratch.slot.to_string(),
                path: path.to_string(),
            }));
            disk
        }
        Err(e) => {
            report.push(verdict::scratch(&ScratchSeen::Failed(e)));
            report.skip_all(&CHECKS[1..], "needs the scratch disk");
            // A create cut off half-way may have left it.
            let _ = client.delete_volume(&scratch.slot, &owner, true).await;
            return;
        }
    };
    let host = Host::new(&n.host_root);
    let state = ExportState {
        export: disk.nvme_tcp_export,
        hosts: printed_list(&disk.allowed_hosts),
    };
    checks(&scratch, state, client, &host, report).await;

    let mut seen = CleanupSeen::default();
    let deadline = Instant::now() + BOUNCE_WAIT;
    if let Err(e) = host
        .disconnect_and_wait(scratch.nqn.as_str(), deadline)
        .await
    {
        seen.disconnect = Some(e.to_string());
    }
    match client.delete_volume(&scratch.slot, &owner, true).await {
        Ok(None) => {}
        Ok(Some(_)) => {
            seen.removal = Some(format!(
                "the disk no longer carries the comment {SCRATCH_COMMENT:?}, so it was left"
            ));
        }
        Err(e) => seen.removal = Some(e.to_string()),
    }
    report.push(verdict::cleanup(scratch.slot.as_str(), &seen));
}

/// Checks F2 to F4, from the disk in `state`.
async fn checks(
    scratch: &Scratch,
    state: ExportState,
    client: &RdsClient,
    host: &Host,
    report: &mut Report,
) {
    let (a, b) = (&scratch.a, &scratch.b);
    let only_a = ExportState {
        export: true,
        hosts: list(&[a]),
    };
    match set(client, scratch, &state, &only_a, false).await {
        Ok(true) => {}
        Ok(false) => {
            report.push(Check::fail(
                name::FENCE_LISTED_ONLY,
                format!(
                    "could not set nvme-tcp-server-allow-host-name={:?} on the scratch disk",
                    a.nqn
                ),
                "the disk changed under the check; run it again".into(),
            ));
            report.skip_all(&CHECKS[2..4], "needs the first list");
            return;
        }
        Err(e) => {
            report.push(Check::fail(
                name::FENCE_LISTED_ONLY,
                format!("cannot set the allow list: {e}"),
                "RouterOS refused nvme-tcp-server-allow-host-name with a host NQN; report the \
                 RouterOS version and this output to the rds-csi maintainers"
                    .into(),
            ));
            report.skip_all(&CHECKS[2..4], "needs the first list");
            return;
        }
    }
    // B first: a refusal counts only if A, right after, is let in.
    let unlisted = connect(host, scratch.connection(b)).await;
    let listed = connect(host, scratch.connection(a)).await;
    report.push(verdict::listed_only(&a.nqn, &b.nqn, &listed, &unlisted));
    if listed != ConnectSeen::Accepted || unlisted == ConnectSeen::Accepted {
        report.skip_all(&CHECKS[2..4], "needs a fence that holds for one host");
        return;
    }

    let both = ExportState {
        export: true,
        hosts: list(&[a, b]),
    };
    let read_back = match client
        .set_export(&scratch.slot, &scratch.owner(), &only_a, &both, false)
        .await
    {
        Ok(Some(disk)) => disk.allowed_hosts,
        Ok(None) => Vec::new(),
        Err(e) => vec![format!("(error: {e})")],
    };
    let second = if read_back.len() == 2 {
        connect(host, scratch.connection(b)).await
    } else {
        ConnectSeen::Refused("not tried: the list did not read back".into())
    };
    // The unpublish of A, as the controller sends it: expected A and B.
    let only_b = ExportState {
        export: true,
        hosts: list(&[b]),
    };
    let started = Instant::now();
    let bounced = set(client, scratch, &both, &only_b, true).await;
    let applied = matches!(bounced, Ok(true));
    report.push(verdict::list_of_two(
        &a.nqn,
        &b.nqn,
        &ListSeen {
            written: both.hosts.to_string(),
            printed: read_back.join(","),
            read_back,
            compare_matched: applied,
            second: second.clone(),
        },
    ));
    if second != ConnectSeen::Accepted {
        report.skip_all(&CHECKS[3..4], "needs both hosts connected");
        return;
    }
    let seen = watch_bounce(host, scratch, applied, started).await;
    report.push(verdict::unpublish_cuts(&a.nqn, &b.nqn, &seen));
}

/// Watches the controllers of A and B after the bounce: A must leave the
/// live state and not return, B must be live again.
async fn watch_bounce(
    host: &Host,
    scratch: &Scratch,
    applied: bool,
    started: Instant,
) -> BounceSeen {
    let live = |who: &HostIdentity| -> bool {
        host.controllers_of(scratch.nqn.as_str())
            .unwrap_or_default()
            .iter()
            .any(|c| c.hostnqn == who.nqn && c.state == CtrlState::Live)
    };
    let mut seen = BounceSeen {
        applied,
        removed_cut: false,
        removed_stayed_out: false,
        remaining_back: false,
        waited_secs: BOUNCE_WAIT.as_secs(),
    };
    if !applied {
        return seen;
    }
    let deadline = started + BOUNCE_WAIT;
    while Instant::now() < deadline {
        if !live(&scratch.a) {
            seen.removed_cut = true;
        }
        if seen.removed_cut && live(&scratch.b) {
            seen.remaining_back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if seen.removed_cut {
        let until = Instant::now() + STAY_OUT;
        seen.removed_stayed_out = true;
        while Instant::now() < until {
            if live(&scratch.a) {
                seen.removed_stayed_out = false;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    seen
}

/// A compare-and-set of the scratch disk's export: whether it applied.
async fn set(
    client: &RdsClient,
    scratch: &Scratch,
    expected: &ExportState,
    new: &ExportState,
    bounce: bool,
) -> Result<bool, rds_client::Error> {
    let disk = client
        .set_export(&scratch.slot, &scratch.owner(), expected, new, bounce)
        .await?;
    Ok(disk.is_some_and(|d| {
        d.nvme_tcp_export == new.export && d.allowed_hosts == HostList::entries(new.hosts.as_str())
    }))
}

/// One connect of `cfg`'s identity, off the async threads (it blocks).
async fn connect(host: &Host, cfg: ConnectionConfig) -> ConnectSeen {
    let host = host.clone();
    match tokio::task::spawn_blocking(move || host.connect(&cfg)).await {
        Ok(Ok(_)) => ConnectSeen::Accepted,
        Ok(Err(e)) => ConnectSeen::Refused(e.to_string()),
        Err(e) => ConnectSeen::Refused(format!("the connect did not finish: {e}")),
    }
}

fn list(who: &[&HostIdentity]) -> HostList {
    let nqns: Vec<Nqn> = who.iter().filter_map(|h| Nqn::new(&h.nqn).ok()).collect();
    HostList::new(nqns.iter())
}

/// The list as printed, for the first compare. A new disk's is empty; one
/// that holds something this driver cannot send back makes the compare
/// fail, which the check reports.
fn printed_list(entries: &[String]) -> HostList {
    let nqns: Vec<Nqn> = entries.iter().filter_map(|e| Nqn::new(e).ok()).collect();
    HostList::new(nqns.iter())
}
