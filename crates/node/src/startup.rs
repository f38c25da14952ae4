//! What the node does once at start-up, before its socket takes calls:
//! learn what is staged, and disconnect this driver's orphaned NVMe/TCP
//! connections.
//!
//! A connected NQN is an orphan only if it carries this driver's NQN prefix
//! and either no staged volume refers to it, or it has no working block
//! device (see [`nvme_host::judge_orphan`]). A staged volume refers to
//! an NQN when its record names it and, for a filesystem volume, its staging
//! path is still a mount: a record whose mount is gone is what a plugin
//! killed in the middle of NodeUnstageVolume leaves, and its connection is an
//! orphan (kubelet's repeated unstage then finds nothing to disconnect). NQNs
//! without the prefix (a host's own NVMe-oF disks, another driver's volumes,
//! the Go driver's `nqn.2000-02.com.mikrotik:` ones) are never touched.
//!
//! A connection whose block device is mounted is never an orphan, record or
//! not: a plugin killed between the mount and the record of a stage leaves
//! one, and its filesystem must not lose its disk. The same holds when what
//! is mounted (or bound into a pod) is an encrypted mapping on the disk.
//!
//! Encrypted volumes: before an orphan is disconnected, the mappings of
//! this driver's on its disk are closed (a plugin killed between a stage's
//! open and its mount leaves one); a disk under a mapping that is not the
//! driver's is left alone with its connection. Then every mapping of the
//! driver's whose disk is gone (the connection went while it was open) is
//! closed, unless a staging record names it or it is mounted or bound: the
//! volume's stage or publish recovers those. A mapping is the driver's only
//! if its name has the prefix `rds-csi-` and `cryptsetup` made it for LUKS2;
//! no other device-mapper device is ever touched.
//!
//! Only connections made as one of this node's host identities are judged
//! ([`crate::fence`]); another identity's, on the same kernel, are not this
//! node's.
//!
//! A connection the target **refuses** is disconnected, record, mount or not:
//! the volume was unpublished from this node (a node that was force-detached
//! while it was away, coming back), the RDS lets another node in now, and
//! this one never serves again (see [`nvme_host::Host::refused`]). Keeping it
//! would only hold its I/O, and whatever waits on it (an unmount, a `sync`,
//! a process reading the volume), until `ctrlLossTmo` (30 minutes by
//! default) on kernels that keep asking; disconnected, the I/O fails at
//! once. A filesystem still mounted on it cannot be unmounted cleanly either
//! way, since its last writes can no longer reach the disk, which belongs to
//! another node now: it stays mounted, dead, for kubelet's unstage (which
//! unmounts it) or a repeated stage (which replaces it). Its record stays
//! for the same reason.
//!
//! Cleanup is best-effort: each orphan is disconnected and waited for within
//! what is left of the deadline; a failure is logged and counted, and
//! start-up goes on.

use std::collections::HashSet;
use std::time::Duration;

use node_fs::mountinfo::MountInfo;
use nvme_host::Orphan;
use telemetry::NodeMetrics;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::crypt::{Crypt, Mapping};
use crate::fs::Filesystems;
use crate::health::judge;
use crate::nvme::NvmeHost;
use crate::record::{RecordStore, StagingRecord};

/// What start-up found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StartupReport {
    /// Volumes with a staging record.
    pub staged: Vec<String>,
    /// Staged volumes whose health is not good now (they recover when the
    /// target comes back, or when kubelet stages or publishes them again).
    pub abnormal: Vec<String>,
    /// Orphaned NQNs disconnected.
    pub cleaned: Vec<String>,
    /// Orphaned NQNs that could not be disconnected in time.
    pub failed: Vec<String>,
    /// NQNs the target refuses this node, disconnected (also in `cleaned`)
    /// or not (also in `failed`).
    pub refused: Vec<String>,
    /// Connected NQNs without this driver's prefix, left alone.
    pub foreign: Vec<String>,
    /// Encrypted mappings of this driver's closed (on orphans, or on disks
    /// that are gone).
    pub closed_mappings: Vec<String>,
}

/// The NQNs that staged volumes refer to: every record's, except those of
/// filesystem volumes whose staging path is no longer mounted. Without a
/// mount table (`Err`), every record counts: keeping a connection is safe,
/// cutting one under a mounted filesystem is not.
pub fn referenced_nqns(
    records: &[StagingRecord],
    mounts: Result<&[MountInfo], &node_fs::FsError>,
) -> HashSet<String> {
    let mounts = mounts.unwrap_or_else(|e| {
        warn!(error = %e, "cannot read the mount table; every staged volume counts as in use");
        &[]
    });
    let mount_table_read = !mounts.is_empty();
    records
        .iter()
        .filter(|r| {
            r.fs_type.is_none()
                || !mount_table_read
                || node_fs::mountinfo::find(mounts, &r.staging_path).is_some()
        })
        .map(|r| r.nqn.clone())
        .collect()
}

/// Whether the block device of `nqn`, or a mapping on it, is mounted (or,
/// a mapping, bound into a pod) although no staging record names it: a
/// stage killed after its mount and before its record leaves that. Its
/// connection stays (a disconnect under a mounted filesystem is what must
/// never happen); the repeated stage records it.
fn mounted_unrecorded(
    host: &impl NvmeHost,
    nqn: &str,
    mappings: &[Mapping],
    mounts: &[MountInfo],
) -> bool {
    let Ok(Some(device)) = host.block_device(nqn) else {
        return false;
    };
    let held = std::iter::once(&device).chain(
        mappings
            .iter()
            .filter(|m| m.is_on(&device))
            .map(|m| &m.device),
    );
    for dev in held {
        if let Some(mount) = holder(mounts, dev) {
            warn!(%nqn, device = %dev.path.display(), mounted_at = %mount.mount_point.display(),
                "connection kept: its device is mounted though no staging record names it (a stage that stopped before its record)");
            return true;
        }
    }
    false
}

/// A mount of `device`: a filesystem on it, or a bind of its device node
/// (a block volume in a pod).
fn holder<'a>(mounts: &'a [MountInfo], device: &nvme_host::BlockDevice) -> Option<&'a MountInfo> {
    let node = std::path::Path::new("/").join(&device.name);
    mounts.iter().find(|m| {
        std::path::Path::new(&m.source) == device.path
            || (m.fs_type == "devtmpfs" && m.root == node)
    })
}

/// Whether the target refuses any of `ours` for `nqn`. A kernel log that
/// cannot be read says nothing: the connection is then judged like any
/// other.
fn refused_by_target(host: &impl NvmeHost, nqn: &str, ours: &[String]) -> bool {
    ours.iter().any(|hostnqn| match host.refused(nqn, hostnqn) {
        Ok(refused) => refused,
        Err(e) => {
            warn!(%nqn, %hostnqn, error = %e, "cannot tell whether the target refuses this connection; judged as any other");
            false
        }
    })
}

/// Reads the records, judges every staged volume, and disconnects orphans
/// of `our_prefix` connected as one of `ours` (host NQNs) within `budget`,
/// and connections the target refuses.
#[allow(clippy::too_many_arguments)] // the node's four seams and its settings
pub async fn start_up(
    host: &impl NvmeHost,
    fs: &impl Filesystems,
    records: &impl RecordStore,
    crypt: &impl Crypt,
    ours: &[String],
    our_prefix: &str,
    budget: Duration,
    metrics: &NodeMetrics,
) -> StartupReport {
    let deadline = Instant::now() + budget;
    let mut report = StartupReport::default();

    let mut staged = Vec::new();
    for record in records.all() {
        match record {
            Ok(r) => staged.push(r),
            Err(e) => {
                warn!(error = %e, "unreadable staging record: its volume is treated as not staged")
            }
        }
    }
    let mounts = fs.mounts();
    let readable: &[MountInfo] = mounts.as_deref().unwrap_or_default();
    for r in &staged {
        let health = judge(host, crypt, readable, r);
        let state = health.state_label();
        if health.is_healthy() {
            info!(volume = %r.volume_id, nqn = %r.nqn, state, staging = %r.staging_path.display(), "staged volume found");
        } else {
            warn!(volume = %r.volume_id, nqn = %r.nqn, state, problem = %health.describe(),
                "staged volume found, not healthy; it recovers when its target answers, or when it is staged or published again");
            report.abnormal.push(r.volume_id.clone());
        }
        report.staged.push(r.volume_id.clone());
    }

    let referenced = referenced_nqns(&staged, mounts.as_deref());
    let connected = match host.connected_subsystems(ours) {
        Ok(nqns) => nqns,
        Err(e) => {
            warn!(error = %e, "cannot list NVMe subsystems; no orphan cleanup this time");
            return report;
        }
    };
    // Without the mappings, a mounted one on a disk would go unseen.
    let mappings = match crypt.mappings() {
        Ok(m) => m,
        Err(e) => {
            warn!(error = %e, "cannot list device-mapper devices; no orphan cleanup this time");
            return report;
        }
    };
    for nqn in connected {
        let refused = nqn.starts_with(our_prefix) && refused_by_target(host, &nqn, ours);
        let reason = if refused {
            warn!(%nqn, "the target refuses this node for a volume (it was unpublished from here, and another node may own it now): disconnecting, so that its I/O fails instead of waiting forever");
            report.refused.push(nqn.clone());
            "the target refuses this node".to_owned()
        } else {
            let in_use = referenced.contains(&nqn)
                || (nqn.starts_with(our_prefix)
                    && mounted_unrecorded(host, &nqn, &mappings, readable));
            let verdict = match host.check_orphan(&nqn, our_prefix, in_use) {
                Ok(v) => v,
                Err(e) => {
                    warn!(%nqn, error = %e, "cannot judge a connected subsystem; left alone");
                    continue;
                }
            };
            match verdict {
                Orphan::NotOurs => {
                    info!(%nqn, "connected subsystem of someone else; left alone");
                    report.foreign.push(nqn);
                    continue;
                }
                Orphan::InUse => continue,
                Orphan::Orphan(reason) => reason.to_string(),
            }
        };
        if Instant::now() >= deadline {
            warn!(%nqn, %reason, "orphaned NVMe/TCP connection left: the start-up cleanup ran out of time");
            metrics.orphan_cleanup_failures.inc();
            report.failed.push(nqn);
            continue;
        }
        // An orphan's mappings are closed first, or its connection stays. A
        // refused connection goes whatever its mappings do: one under a
        // mount cannot close, and goes dead with the disk (kubelet's unstage
        // closes it), as a plain volume's filesystem does.
        if !close_mappings_on(host, crypt, &nqn, &mappings, deadline, &mut report).await && !refused
        {
            metrics.orphan_cleanup_failures.inc();
            report.failed.push(nqn);
            continue;
        }
        warn!(%nqn, %reason, "disconnecting an orphaned NVMe/TCP connection of this driver");
        match host.disconnect(&nqn, ours, deadline).await {
            Ok(()) => {
                info!(%nqn, "orphan disconnected");
                metrics.orphans_cleaned.inc();
                report.cleaned.push(nqn);
            }
            Err(e) => {
                warn!(%nqn, error = %e, "could not disconnect an orphan; going on");
                metrics.orphan_cleanup_failures.inc();
                report.failed.push(nqn);
            }
        }
    }
    close_dead_mappings(crypt, &staged, readable, deadline, &mut report).await;
    info!(
        staged = report.staged.len(),
        abnormal = report.abnormal.len(),
        orphans_cleaned = report.cleaned.len(),
        orphans_left = report.failed.len(),
        refused = report.refused.len(),
        foreign = report.foreign.len(),
        mappings_closed = report.closed_mappings.len(),
        "node start-up checks done"
    );
    report
}

/// Closes this driver's mappings on the disk of the orphan `nqn`; `false`
/// (the connection stays) when a mapping there is not the driver's or
/// cannot be closed.
async fn close_mappings_on(
    host: &impl NvmeHost,
    crypt: &impl Crypt,
    nqn: &str,
    mappings: &[Mapping],
    deadline: Instant,
    report: &mut StartupReport,
) -> bool {
    let Ok(Some(disk)) = host.block_device(nqn) else {
        return true;
    };
    for m in mappings.iter().filter(|m| m.is_on(&disk)) {
        if !m.is_ours() {
            warn!(%nqn, mapping = %m.name, "orphaned connection kept: a device-mapper device that is not this driver's sits on its disk");
            return false;
        }
        warn!(%nqn, mapping = %m.name, "closing the encrypted mapping on an orphaned connection");
        let timeout = deadline.saturating_duration_since(Instant::now());
        match crypt.close(&m.name, timeout).await {
            Ok(_) => report.closed_mappings.push(m.name.clone()),
            Err(e) => {
                warn!(%nqn, mapping = %m.name, error = %e, "could not close the mapping; its connection stays");
                return false;
            }
        }
    }
    true
}

/// Closes this driver's mappings whose disk is gone, unless a staging record
/// names one (its stage or publish recovers it) or it is mounted or bound.
async fn close_dead_mappings(
    crypt: &impl Crypt,
    staged: &[StagingRecord],
    mounts: &[MountInfo],
    deadline: Instant,
    report: &mut StartupReport,
) {
    let mappings = match crypt.mappings() {
        Ok(m) => m,
        Err(e) => {
            warn!(error = %e, "cannot list device-mapper devices; dead mappings are not closed this time");
            return;
        }
    };
    for m in mappings
        .iter()
        .filter(|m| m.is_ours() && m.backing.is_none())
    {
        if staged
            .iter()
            .any(|r| r.mapping.as_deref() == Some(m.name.as_str()))
        {
            info!(mapping = %m.name, "an encrypted mapping on a disk that is gone is staged; its volume recovers when staged or published again");
            continue;
        }
        if let Some(mount) = holder(mounts, &m.device) {
            warn!(mapping = %m.name, mounted_at = %mount.mount_point.display(), "an encrypted mapping on a disk that is gone is still mounted; left");
            continue;
        }
        let timeout = deadline.saturating_duration_since(Instant::now());
        match crypt.close(&m.name, timeout).await {
            Ok(_) => {
                info!(mapping = %m.name, "closed an encrypted mapping whose disk is gone");
                report.closed_mappings.push(m.name.clone());
            }
            Err(e) => {
                warn!(mapping = %m.name, error = %e, "could not close an encrypted mapping whose disk is gone");
                report.failed.push(m.name.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::LinuxFilesystems;
    use crate::record::Records;
    use nvme_host::Host;
    use nvme_host::testing::{FakeController, FakeSysfs};
    use std::path::Path;

    const PREFIX: &str = "nqn.2024-01.io.srvlab.csi.rds:";

    /// The host identity `FakeController`s connect as: the node's own.
    fn ours() -> Vec<String> {
        vec![FakeController::new("x").hostnqn]
    }

    struct Rig {
        dir: tempfile::TempDir,
        sys: FakeSysfs,
        records: Records,
    }

    impl Rig {
        fn new() -> Rig {
            let dir = tempfile::tempdir().unwrap();
            let sys = FakeSysfs::new(dir.path().join("root"), true).unwrap();
            let records = Records::new(dir.path().join("state"));
            std::fs::create_dir_all(dir.path().join("root/proc/self")).unwrap();
            let rig = Rig { dir, sys, records };
            rig.set_mounts(&[]);
            rig
        }

        fn fs(&self) -> LinuxFilesystems {
            LinuxFilesystems::new(&self.dir.path().join("root"))
        }

        fn proc_root(&self) -> std::path::PathBuf {
            self.dir.path().join("root/proc")
        }

        fn set_mounts(&self, staging_paths: &[&Path]) {
            let mut text = String::from("1 0 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n");
            for (i, p) in staging_paths.iter().enumerate() {
                text.push_str(&format!(
                    "{} 1 259:{i} / {} rw,relatime shared:{} - ext4 /dev/nvme{i}n1 rw\n",
                    i + 10,
                    p.display(),
                    i + 2
                ));
            }
            std::fs::write(self.proc_root().join("self/mountinfo"), text).unwrap();
        }

        /// A connected controller of `nqn` with a namespace (or none).
        fn connect(&self, nqn: &str, namespace: bool) -> String {
            let c = self.sys.add_controller(&FakeController::new(nqn)).unwrap();
            if namespace {
                self.sys.add_namespace(nqn, 1, 1 << 30).unwrap();
            }
            c
        }

        fn stage(&self, id: &str, fs: Option<&str>) -> StagingRecord {
            let r = StagingRecord {
                volume_id: id.into(),
                nqn: format!("{PREFIX}{id}"),
                device: "/dev/nvme0n1".into(),
                fs_type: fs.map(str::to_owned),
                staging_path: self.dir.path().join(format!("staging/{id}")),
                read_only: false,
                connection: None,
                diskseq: None,
                mapping: None,
                host: None,
            };
            self.records.save(&r).unwrap();
            r
        }

        async fn start_up(&self) -> (StartupReport, NodeMetrics) {
            let metrics = NodeMetrics::default();
            let report = start_up(
                &Host::new(self.sys.root()),
                &self.fs(),
                &self.records,
                &crate::crypt::LinuxCrypt::new(self.sys.root()),
                &ours(),
                PREFIX,
                Duration::from_secs(20),
                &metrics,
            )
            .await;
            (report, metrics)
        }

        /// Plays the kernel's part: a controller whose `delete_controller`
        /// was written goes away.
        fn reap_deleted_controllers(&self) -> tokio::task::JoinHandle<()> {
            let sys = self.sys.clone();
            tokio::spawn(async move {
                loop {
                    for c in Host::new(sys.root()).controllers().unwrap_or_default() {
                        let written = sys.attr(&c.name, "delete_controller").unwrap_or_default();
                        if written.trim() == "1" {
                            let _ = sys.remove_controller(&c.name);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        }
    }

    #[test]
    fn unmounted_filesystem_records_do_not_refer() {
        let rig = Rig::new();
        let mounted = rig.stage("pvc-a", Some("ext4"));
        let unmounted = rig.stage("pvc-b", Some("xfs"));
        let block = rig.stage("pvc-c", None);
        rig.set_mounts(&[&mounted.staging_path]);
        let records: Vec<_> = rig.records.all().into_iter().map(Result::unwrap).collect();
        let refs = referenced_nqns(&records, rig.fs().mounts().as_deref());
        assert!(refs.contains(&mounted.nqn));
        assert!(!refs.contains(&unmounted.nqn));
        assert!(refs.contains(&block.nqn));
    }

    #[test]
    fn without_a_mount_table_every_record_refers() {
        let rig = Rig::new();
        let r = rig.stage("pvc-a", Some("ext4"));
        std::fs::remove_file(rig.proc_root().join("self/mountinfo")).unwrap();
        let refs = referenced_nqns(std::slice::from_ref(&r), rig.fs().mounts().as_deref());
        assert!(refs.contains(&r.nqn));
    }

    #[tokio::test(start_paused = true)]
    async fn orphans_are_disconnected_and_foreign_subsystems_left_alone() {
        let rig = Rig::new();
        // In use: staged, mounted, with a device.
        let used = rig.stage("pvc-used", Some("ext4"));
        rig.connect(&used.nqn, true);
        // A staged block volume whose namespace is gone: an orphan.
        let broken = rig.stage("pvc-broken", None);
        rig.connect(&broken.nqn, false);
        // A filesystem volume whose staging mount is gone (a plugin killed
        // in the middle of an unstage): an orphan.
        let half_unstaged = rig.stage("pvc-half", Some("xfs"));
        rig.connect(&half_unstaged.nqn, true);
        // Ours, never staged (a plugin killed in the middle of a stage).
        let stray = format!("{PREFIX}pvc-stray");
        rig.connect(&stray, true);
        // Someone else's, even without a device or a record; and the Go
        // driver's.
        let foreign = "nqn.2014-08.org.example:boot-disk";
        rig.connect(foreign, false);
        let go_driver = "nqn.2000-02.com.mikrotik:pvc-0001";
        rig.connect(go_driver, true);
        rig.set_mounts(&[&used.staging_path]);

        let reaper = rig.reap_deleted_controllers();
        let (report, metrics) = rig.start_up().await;
        reaper.abort();

        let sorted = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v
        };
        assert_eq!(
            sorted(&report.staged),
            ["pvc-broken", "pvc-half", "pvc-used"]
        );
        assert_eq!(sorted(&report.abnormal), ["pvc-broken", "pvc-half"]);
        assert_eq!(sorted(&report.foreign), [go_driver, foreign]);
        assert_eq!(
            sorted(&report.cleaned),
            sorted(&[broken.nqn.clone(), half_unstaged.nqn.clone(), stray.clone()])
        );
        assert!(report.failed.is_empty(), "{report:?}");
        assert_eq!(metrics.orphans_cleaned.get(), 3);
        assert_eq!(metrics.orphan_cleanup_failures.get(), 0);
        let left = Host::new(rig.sys.root())
            .list_connected_subsystems()
            .unwrap();
        assert_eq!(
            sorted(&left),
            sorted(&[used.nqn.clone(), foreign.to_owned(), go_driver.to_owned()])
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_whose_device_is_mounted_is_kept_without_a_record() {
        let rig = Rig::new();
        // A stage killed after its mount, before its record.
        let nqn = format!("{PREFIX}pvc-unrecorded");
        rig.sys.add_controller(&FakeController::new(&nqn)).unwrap();
        let device = rig.sys.add_namespace(&nqn, 1, 1 << 30).unwrap();
        let staging = rig.dir.path().join("staging/pvc-unrecorded");
        let line = format!(
            "1 0 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
             10 1 259:0 / {} rw,relatime shared:2 - ext4 /dev/{device} rw\n",
            staging.display()
        );
        std::fs::write(rig.proc_root().join("self/mountinfo"), line).unwrap();
        let reaper = rig.reap_deleted_controllers();
        let (report, _) = rig.start_up().await;
        reaper.abort();
        assert!(report.cleaned.is_empty(), "{report:?}");
        assert_eq!(
            Host::new(rig.sys.root())
                .list_connected_subsystems()
                .unwrap(),
            [nqn]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cleanup_that_cannot_finish_does_not_block_start_up() {
        let rig = Rig::new();
        let stray = format!("{PREFIX}pvc-stray");
        rig.connect(&stray, true);
        // No kernel removes the controller: the wait ends at the deadline.
        let metrics = NodeMetrics::default();
        let report = start_up(
            &Host::new(rig.sys.root()),
            &rig.fs(),
            &rig.records,
            &crate::crypt::LinuxCrypt::new(rig.sys.root()),
            &ours(),
            PREFIX,
            Duration::from_millis(300),
            &metrics,
        )
        .await;
        assert_eq!(report.failed, [stray]);
        assert!(report.cleaned.is_empty());
        assert_eq!(metrics.orphan_cleanup_failures.get(), 1);
    }
}
