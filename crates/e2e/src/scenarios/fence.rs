//! The fence on a real kernel: two nodes, each a node plugin with its own
//! host identity on the guest's one kernel (see [`crate::nodes`]), a
//! controller of their own, and the simulator's nvmet admitting only the
//! hosts a volume is published to.
//!
//! - `fence_two_nodes`: a ReadWriteOnce filesystem volume. Published to A,
//!   A stages and writes; B's connect is refused by the target, and a
//!   publish to B is FAILED_PRECONDITION. The negative control: taking A
//!   out of the allow list alone leaves A's I/O running, so a test of the
//!   unpublish below would see an unpublish that forgot to cut the
//!   connection. Unpublished from A (as a force-detach does, with A still
//!   using it), A's I/O fails and A never gets back in; published to B, A's
//!   kernel is refused at every try, and A's node plugin, coming back,
//!   removes that connection at start-up. B then stages the volume and reads
//!   what A wrote; a restarted controller decides the same.
//! - `fence_migration`: a block volume with MULTI_NODE_MULTI_WRITER, as
//!   KubeVirt's live migration has it: published to A and B, both write and
//!   read the raw device; A releases it and is unpublished, which bounces
//!   the export to cut A off; B's I/O runs on across the bounce without an
//!   error, and A can no longer connect.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use csi_proto::v1::volume_capability::access_mode::Mode;
use csi_proto::v1::{self as csi, VolumeCapability};
use nvme_host::HostIdentity;
use routeros::{Comment, ExportState, HostList, Nqn, OwnerTest, Slot};
use tonic::Code;

use super::Ctx;
use super::node_lifecycle::write_synced;
use crate::csi::{Cluster, DRIVER_NQN_PREFIX, Volume, block, mount, with_mode};
use crate::fabrics::{self, Connect, DirectDevice};
use crate::kmsg::KmsgWatch;
use crate::nodes::NodePlugin;
use crate::rds;
use crate::support::{Context, Outcome, ensure, wait_for};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// The HTTP ports of the two node plugins (the controller has 9810).
const PORT_A: u16 = 9811;
const PORT_B: u16 = 9812;

/// Connection timers for these volumes: a reconnect every second, so that
/// what follows a cut (a refusal, a reconnect) shows at once.
const QUICK_RECONNECT: (&str, &str) = ("reconnectDelay", "1");

pub async fn two_nodes(ctx: Ctx) -> Outcome {
    Cluster::run_controller_only(&ctx.scratch, 8 * GIB, async |cluster| {
        let mut a = NodePlugin::start(&cluster.scratch, "node-a", PORT_A).await?;
        let mut b = NodePlugin::start(&cluster.scratch, "node-b", PORT_B).await?;
        two_nodes_steps(cluster, &mut a, &mut b).await
    })
    .await
}

pub async fn migration(ctx: Ctx) -> Outcome {
    Cluster::run_controller_only(&ctx.scratch, 8 * GIB, async |cluster| {
        let mut a = NodePlugin::start(&cluster.scratch, "node-a", PORT_A).await?;
        let mut b = NodePlugin::start(&cluster.scratch, "node-b", PORT_B).await?;
        migration_steps(cluster, &mut a, &mut b).await
    })
    .await
}

/// The kernel log since the scenario began, kept as it is read.
struct Log {
    watch: KmsgWatch,
    seen: Vec<String>,
}

impl Log {
    fn start() -> Outcome<Log> {
        Ok(Log {
            watch: KmsgWatch::start()?,
            seen: Vec::new(),
        })
    }

    /// Waits until a message containing `text` has been logged.
    async fn wait_for(&mut self, what: &str, text: &str) -> Outcome {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            self.seen.extend(self.watch.read_new()?);
            if self.seen.iter().any(|m| m.contains(text)) {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                let tail = self.seen.len().saturating_sub(20);
                return Err(format!(
                    "the kernel did not log {what} ({text:?}) within 60 s; it logged:\n  {}",
                    self.seen[tail..].join("\n  ")
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// What the kernel logs when the target refuses `host` for `volume`.
fn refusal(volume: &Volume, host: &HostIdentity) -> String {
    format!(
        "Connect for subsystem {} is not allowed, hostnqn: {}",
        volume.nqn, host.nqn
    )
}

/// One connect to `volume` as `host`, by hand: what the kernel answered.
async fn connect_as(volume: &Volume, host: &HostIdentity) -> Outcome<String> {
    fabrics::connect(&Connect {
        traddr: "127.0.0.1".into(),
        trsvcid: rds::PORT,
        nqn: volume.nqn.clone(),
        hostnqn: host.nqn.clone(),
        hostid: host.id.clone(),
        ctrl_loss_tmo: 5,
        reconnect_delay: 1,
    })
    .await
}

/// Whether `host` has a live controller of `volume`.
fn live_as(volume: &Volume, host: &HostIdentity) -> bool {
    fabrics::controllers_of_host(&volume.nqn, &host.nqn)
        .iter()
        .any(|c| fabrics::state(c) == "live")
}

/// The export of `volume` as the RDS holds it.
async fn export_of(cluster: &Cluster, volume: &Volume) -> Outcome<ExportState> {
    let disk = cluster
        .rds
        .client
        .get_volume(&Slot::new(&volume.id).context("slot")?)
        .await
        .context("read the disk")?
        .context("no disk")?;
    let hosts: Vec<Nqn> = disk
        .allowed_hosts
        .iter()
        .map(|h| Nqn::new(h).context("a listed host"))
        .collect::<Outcome<_>>()?;
    Ok(ExportState {
        export: disk.nvme_tcp_export,
        hosts: HostList::new(hosts.iter()),
    })
}

/// ControllerPublishVolume, which must fail: its status.
async fn publish_refused(
    cluster: &mut Cluster,
    volume: &Volume,
    node: &str,
    cap: VolumeCapability,
) -> Outcome<tonic::Status> {
    match cluster
        .controller
        .controller_publish_volume(csi::ControllerPublishVolumeRequest {
            volume_id: volume.id.clone(),
            node_id: node.into(),
            volume_capability: Some(cap),
            ..Default::default()
        })
        .await
    {
        Ok(_) => Err(format!("ControllerPublishVolume to {node} succeeded")),
        Err(status) => Ok(status),
    }
}

/// Writes `data` to `file` and syncs it, off the async threads, for at
/// most a minute: the outcome, or an error saying it hung.
async fn write_within_a_minute(file: &Path, data: Vec<u8>) -> Outcome<Outcome> {
    let file = file.to_path_buf();
    let write = tokio::task::spawn_blocking(move || write_synced(&file, &data));
    match tokio::time::timeout(Duration::from_secs(60), write).await {
        Ok(joined) => joined.context("the writer failed"),
        Err(_) => Err("a write and fsync still hung after a minute".into()),
    }
}

async fn two_nodes_steps(cluster: &mut Cluster, a: &mut NodePlugin, b: &mut NodePlugin) -> Outcome {
    let cap = mount("ext4");
    // I/O fails 2 s after a connection is lost rather than at
    // ctrlLossTmo: a volume closed to every host refuses nobody (it is not
    // there to refuse), so nothing else ends a cut-off node's I/O before
    // the volume is published elsewhere.
    let parameters = [QUICK_RECONNECT, ("fastIoFailTmo", "2")];
    let volume = cluster
        .create_unpublished(
            "pvc-fe1c-aaaa-bbbb-cccc-dddd00000001",
            GIB,
            cap.clone(),
            &parameters,
        )
        .await?;
    ensure(
        export_of(cluster, &volume).await? == ExportState::default(),
        "the new volume is not closed to every host",
    )?;
    let (id_a, id_b) = (a.identity()?, b.identity()?);
    let mut log = Log::start()?;

    // Published to A: A stages it and writes.
    let to_a = cluster
        .controller_publish(&volume, &a.node_id, cap.clone())
        .await?;
    ensure(
        nvme_host::fence::from_publish_context(&to_a) == Ok(Some(id_a.clone())),
        format!("the publish context names {to_a:?}, not A's identity"),
    )?;
    a.stage(&volume, &to_a, cap.clone()).await?;
    a.publish(&volume, &to_a, cap.clone()).await?;
    ensure(
        live_as(&volume, &id_a),
        "A is not connected as its identity",
    )?;
    let (_, pod_a) = a.paths(&volume);
    let first = fabrics::pattern(71, 256 << 10);
    write_synced(&pod_a.join("first"), &first)?;

    // B cannot connect: the target refuses it.
    let answer = connect_as(&volume, &id_b).await;
    ensure(
        answer.is_err(),
        format!("B connected to a volume published to A: {answer:?}"),
    )?;
    log.wait_for("B's refusal", &refusal(&volume, &id_b))
        .await?;
    ensure(
        fabrics::controllers_of_host(&volume.nqn, &id_b.nqn).is_empty(),
        "a controller of B was left",
    )?;
    // And the controller will not publish it there.
    let status = publish_refused(cluster, &volume, &b.node_id, cap.clone()).await?;
    ensure(
        status.code() == Code::FailedPrecondition && status.message().contains(&a.node_id),
        format!("publish to B: {status:?}"),
    )?;

    // The negative control: A out of the allow list, nothing else done. A's
    // live connection is not checked again, so its I/O runs on.
    let slot = Slot::new(&volume.id).context("slot")?;
    let disk = cluster
        .rds
        .client
        .get_volume(&slot)
        .await
        .context("read the disk")?
        .context("no disk")?;
    let ours = [OwnerTest::CommentIs(
        Comment::new(disk.comment.as_deref().context("no comment")?).context("comment")?,
    )];
    let with_a = export_of(cluster, &volume).await?;
    let nobody = Nqn::new(&format!("{DRIVER_NQN_PREFIX}node:nobody")).context("NQN")?;
    let without_a = ExportState {
        export: true,
        hosts: HostList::new([&nobody]),
    };
    let changed = cluster
        .rds
        .client
        .set_export(&slot, &ours, &with_a, &without_a, false)
        .await
        .context("take A out of the list")?
        .context("no disk")?;
    ensure(
        changed.allowed_hosts == [nobody.to_string()],
        format!("the list is {:?}", changed.allowed_hosts),
    )?;
    let second = fabrics::pattern(72, 256 << 10);
    write_within_a_minute(&pod_a.join("second"), second.clone())
        .await?
        .context("A's write with A out of the list alone")?;
    ensure(
        live_as(&volume, &id_a),
        "A lost its connection to a list change alone",
    )?;
    cluster
        .rds
        .client
        .set_export(&slot, &ours, &without_a, &with_a, false)
        .await
        .context("put A back in the list")?;

    // Unpublished from A while A still uses it (a force-detach): A's I/O
    // fails, and A never gets back in.
    cluster.controller_unpublish(&volume, &a.node_id).await?;
    let third =
        write_within_a_minute(&pod_a.join("third"), fabrics::pattern(73, 256 << 10)).await?;
    ensure(
        third.is_err(),
        "A's write and fsync succeeded after the volume was unpublished from A",
    )?;
    ensure(
        !live_as(&volume, &id_a),
        "A is connected after the unpublish",
    )?;

    // A is away; the volume is published to B. A's kernel keeps asking,
    // and is refused now.
    a.kill()?;
    let to_b = cluster
        .controller_publish(&volume, &b.node_id, cap.clone())
        .await?;
    log.wait_for("A's refusal", &refusal(&volume, &id_a))
        .await?;
    ensure(!live_as(&volume, &id_a), "A got back in")?;

    // A comes back: its start-up removes the refused connection, under the
    // dead mount, which kubelet's unstage on A then takes away.
    a.start_again().await?;
    ensure(
        fabrics::controllers_of_host(&volume.nqn, &id_a.nqn).is_empty(),
        format!(
            "A's refused connection is still there after its start-up\n{}",
            a.log_tail()
        ),
    )?;
    ensure(
        a.log_text().contains("the target refuses this node"),
        format!(
            "A's start-up did not say why it disconnected\n{}",
            a.log_tail()
        ),
    )?;
    a.release(&volume).await?;

    // B stages the volume and reads what A wrote while it was A's.
    b.stage(&volume, &to_b, cap.clone()).await?;
    b.publish(&volume, &to_b, cap.clone()).await?;
    ensure(
        live_as(&volume, &id_b),
        "B is not connected as its identity",
    )?;
    let (_, pod_b) = b.paths(&volume);
    for (name, data) in [("first", &first), ("second", &second)] {
        let read = std::fs::read(pod_b.join(name)).context(format!("B reads {name}"))?;
        ensure(read == *data, format!("B read other data in {name}"))?;
    }

    // A restarted controller decides the same, from the RDS alone.
    cluster.kill_plugin()?;
    cluster.start_plugin().await?;
    let status = publish_refused(cluster, &volume, &a.node_id, cap.clone()).await?;
    ensure(
        status.code() == Code::FailedPrecondition && status.message().contains(&b.node_id),
        format!("publish to A after the restart: {status:?}"),
    )?;
    let got = cluster
        .controller
        .controller_get_volume(csi::ControllerGetVolumeRequest {
            volume_id: volume.id.clone(),
        })
        .await
        .context("ControllerGetVolume")?
        .into_inner();
    let published = got.status.map(|s| s.published_node_ids).unwrap_or_default();
    ensure(
        published == [b.node_id.clone()],
        format!("published to {published:?}, not B alone"),
    )?;

    b.release(&volume).await?;
    cluster.controller_unpublish(&volume, &b.node_id).await?;
    cluster.delete(&volume).await
}

async fn migration_steps(cluster: &mut Cluster, a: &mut NodePlugin, b: &mut NodePlugin) -> Outcome {
    let cap = with_mode(block(), Mode::MultiNodeMultiWriter);
    let volume = cluster
        .create_unpublished(
            "pvc-fe1c-aaaa-bbbb-cccc-dddd00000002",
            GIB,
            cap.clone(),
            &[QUICK_RECONNECT],
        )
        .await?;
    let (id_a, id_b) = (a.identity()?, b.identity()?);
    let mut log = Log::start()?;

    // Published to both, as the migration's source and target are.
    let to_a = cluster
        .controller_publish(&volume, &a.node_id, cap.clone())
        .await?;
    let to_b = cluster
        .controller_publish(&volume, &b.node_id, cap.clone())
        .await?;
    for (node, context) in [(&*a, &to_a), (&*b, &to_b)] {
        ensure(
            nvme_host::fence::from_publish_context(context) == Ok(Some(node.identity()?)),
            format!("the publish context of {} is {context:?}", node.name),
        )?;
    }
    a.stage(&volume, &to_a, cap.clone()).await?;
    a.publish(&volume, &to_a, cap.clone()).await?;
    b.stage(&volume, &to_b, cap.clone()).await?;
    b.publish(&volume, &to_b, cap.clone()).await?;
    ensure(
        live_as(&volume, &id_a) && live_as(&volume, &id_b),
        "A and B are not both connected as themselves",
    )?;

    // Both write and read the raw device.
    let (_, dev_a) = a.paths(&volume);
    let (_, dev_b) = b.paths(&volume);
    let (from_a, from_b) = (
        fabrics::pattern(81, MIB as usize),
        fabrics::pattern(82, MIB as usize),
    );
    {
        let (da, db) = (
            DirectDevice::open_path(&dev_a)?,
            DirectDevice::open_path(&dev_b)?,
        );
        da.write_at(0, &from_a)?;
        db.write_at(MIB, &from_b)?;
        ensure(
            db.read_at(0, MIB as usize)? == from_a,
            "B does not read A's write",
        )?;
        ensure(
            da.read_at(MIB, MIB as usize)? == from_b,
            "A does not read B's write",
        )?;
    }

    // B keeps writing and reading while A leaves.
    let stop = Arc::new(AtomicBool::new(false));
    let io = {
        let (stop, dev_b) = (Arc::clone(&stop), dev_b.clone());
        tokio::task::spawn_blocking(move || -> Outcome<u64> {
            let device = DirectDevice::open_path(&dev_b)?;
            let mut done = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let data = fabrics::pattern(100 + done, 64 << 10);
                device
                    .write_at(2 * MIB, &data)
                    .context(format!("B's write #{done}"))?;
                ensure(
                    device.read_at(2 * MIB, data.len())? == data,
                    format!("B read back other data at #{done}"),
                )?;
                done += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(done)
        })
    };

    // A is done: kubelet releases the volume there (only A's controller
    // goes), then the attacher unpublishes it from A, which bounces the
    // export so that A, were it still connected, would be cut off.
    a.release(&volume).await?;
    ensure(
        fabrics::controllers_of_host(&volume.nqn, &id_a.nqn).is_empty(),
        "A's unstage left a controller of A",
    )?;
    ensure(live_as(&volume, &id_b), "A's unstage took B's connection")?;
    cluster.controller_unpublish(&volume, &a.node_id).await?;
    // B's connection went with the bounce and came back.
    log.wait_for("B's reconnect after the bounce", "Successfully reconnected")
        .await?;
    wait_for(
        "B's controller to be live again",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async { live_as(&volume, &id_b).then_some(()) },
        || {
            format!(
                "B: {:?}",
                fabrics::controllers_of_host(&volume.nqn, &id_b.nqn)
            )
        },
    )
    .await?;
    // A few more rounds after it, then stop.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let rounds = io
        .await
        .context("B's I/O task failed")?
        .context("B's I/O failed across the unpublish of A")?;
    ensure(rounds > 10, format!("B did only {rounds} rounds of I/O"))?;

    // The export now admits B alone: A is refused.
    let list = export_of(cluster, &volume).await?;
    ensure(
        list.export
            && list.hosts.as_str().contains(&id_b.nqn)
            && !list.hosts.as_str().contains(&id_a.nqn),
        format!("the export after unpublishing A: {list:?}"),
    )?;
    let answer = connect_as(&volume, &id_a).await;
    ensure(
        answer.is_err(),
        format!("A connected after its unpublish: {answer:?}"),
    )?;
    log.wait_for("A's refusal", &refusal(&volume, &id_a))
        .await?;

    b.release(&volume).await?;
    cluster.controller_unpublish(&volume, &b.node_id).await?;
    ensure(
        export_of(cluster, &volume).await? == ExportState::default(),
        "the last unpublish did not close the volume",
    )?;
    cluster.delete(&volume).await
}
