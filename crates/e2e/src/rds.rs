//! A simulated RDS whose disks are real nvmet exports, and a client for it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rds_client::RdsClient;
use rds_sim::testing::TestSim;
use rds_sim::{Behaviour, NvmetConfig, SimConfig};
use routeros::subvolume::NewVolume;
use routeros::{Comment, ExportState, HostList, NewDisk, Nqn, OwnerTest, RdsPath, Slot};

use crate::support::{Context, Outcome};

/// The pool every scenario's simulator has.
pub const POOL: &str = "raid10";
/// The NVMe/TCP port volumes are exported on.
pub const PORT: u16 = 4420;
/// Where nvmet lives in configfs.
pub const NVMET: &str = "/sys/kernel/config/nvmet";

/// Whether the simulator's disks are exported through the kernel's target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Export {
    /// Through nvmet (the guest): nodes can attach them over NVMe/TCP.
    Nvmet,
    /// Not at all (a host without nvmet): only the controller's side is real.
    None,
}

/// A running simulator exporting through nvmet, with a client logged in.
pub struct Rds {
    /// The simulator (its engine has the nvmet test controls).
    pub sim: TestSim,
    /// A client configured against it.
    pub client: Arc<RdsClient>,
    root: PathBuf,
}

impl Rds {
    /// Starts a simulator keeping its pool under `root` (on the guest's
    /// tmpfs), with a pool of `capacity` bytes.
    pub async fn start(root: &Path, capacity: u64) -> Outcome<Rds> {
        Self::start_with(root, capacity, Export::Nvmet).await
    }

    /// Starts a simulator as [`Rds::start`] does, exporting its disks as
    /// `export` says.
    pub async fn start_with(root: &Path, capacity: u64, export: Export) -> Outcome<Rds> {
        Self::start_config(SimConfig::single_pool(root, POOL, capacity), export).await
    }

    /// Starts a simulator exporting through nvmet whose pool is the btrfs
    /// filesystem mounted at `<root>/raid10` (see [`rds_sim::LoopBtrfs`]).
    pub async fn start_on_btrfs(root: &Path) -> Outcome<Rds> {
        Self::start_on_btrfs_with(root, Export::Nvmet).await
    }

    /// Starts a simulator as [`Rds::start_on_btrfs`] does, exporting its
    /// disks as `export` says.
    pub async fn start_on_btrfs_with(root: &Path, export: Export) -> Outcome<Rds> {
        Self::start_config(SimConfig::single_btrfs_pool(root, POOL, 0), export).await
    }

    /// [`Rds::start_on_btrfs`], with the simulator answering as
    /// `behaviour` says where RouterOS's answer is not known.
    pub async fn start_on_btrfs_behaving(root: &Path, behaviour: Behaviour) -> Outcome<Rds> {
        let mut config = SimConfig::single_btrfs_pool(root, POOL, 0);
        config.behaviour = behaviour;
        Self::start_config(config, Export::Nvmet).await
    }

    async fn start_config(mut config: SimConfig, export: Export) -> Outcome<Rds> {
        let root = config.root.clone();
        if export == Export::Nvmet {
            config.nvmet = Some(NvmetConfig::default());
        }
        let sim = TestSim::start(config)
            .await
            .context("cannot start the simulator")?;
        let client = Arc::new(RdsClient::new(test_support::sim::client_config(&sim)));
        Ok(Rds { sim, client, root })
    }

    /// The host file holding volume `name`'s image.
    pub fn image(&self, name: &str) -> PathBuf {
        self.root
            .join(POOL)
            .join("volumes")
            .join(format!("{name}.img"))
    }

    /// Opens volume `name`'s export to any host, as a volume made before
    /// attachment existed has it: new volumes are made closed, and these
    /// scenarios connect with host identities of their own. Checks that it
    /// is exported afterwards.
    pub async fn open_to_any_host(&self, name: &str) -> Outcome {
        let closed = ExportState::default();
        let open = ExportState {
            export: true,
            hosts: HostList::empty(),
        };
        let disk = self
            .client
            .set_export(&slot(name)?, &owner(name)?, &closed, &open, false)
            .await
            .context(format!("open the export of {name}"))?
            .context(format!("no disk {name}"))?;
        if !disk.nvme_tcp_export || !disk.allowed_hosts.is_empty() {
            return Err(format!(
                "{name} was not opened to any host (it was not closed, as a new volume is): export {}, hosts {:?}",
                disk.nvme_tcp_export, disk.allowed_hosts
            ));
        }
        Ok(())
    }

    /// Takes the NVMe/TCP port away, as a network outage would: connected
    /// hosts' controllers go `connecting` until it is back.
    pub fn port_down(&self) -> Outcome {
        self.sim
            .engine
            .nvmet_port_down(PORT)
            .context("take the port away")
    }

    /// Serves the NVMe/TCP port again.
    pub fn port_up(&self) -> Outcome {
        self.sim
            .engine
            .nvmet_port_up(PORT)
            .context("bring the port back")
    }

    /// Stops the simulator as a crash would: its exports stay in nvmet, for
    /// a simulator started later on the same root to reconcile.
    pub async fn stop_leaving_exports(mut self) {
        self.sim.stop().await;
    }

    /// Removes what the simulator made in nvmet and stops it.
    pub async fn stop(mut self) -> Outcome {
        let cleaned = self
            .sim
            .engine
            .nvmet_shutdown()
            .context("cannot remove the simulator's nvmet exports");
        self.sim.stop().await;
        cleaned
    }
}

/// A volume named `name` as the controller would ask for it: slot `name`,
/// image `/raid10/volumes/<name>.img`, NQN `nqn.2000-02.com.mikrotik:<name>`.
pub fn volume(name: &str, size: u64) -> Outcome<NewDisk> {
    Ok(NewDisk {
        slot: slot(name)?,
        file_path: RdsPath::new(&format!("/{POOL}/volumes/{name}.img")).context("image path")?,
        size,
        nvme_port: PORT,
        nqn: Nqn::new(&nqn(name)).context("NQN")?,
        comment: Comment::new(&format!("rds-csi:{name}")).context("comment")?,
    })
}

/// What the RDS checks before it deletes or grows volume `name`: its comment
/// is exactly the one [`volume`] gives it.
pub fn owner(name: &str) -> Outcome<Vec<OwnerTest>> {
    Ok(vec![OwnerTest::CommentIs(
        Comment::new(&format!("rds-csi:{name}")).context("comment")?,
    )])
}

/// Volume `name` as [`volume`], for
/// [`rds_client::RdsClient::provision_volume`] and the snapshot operations: a
/// subvolume `/raid10/volumes/<name>` with `volume.img` inside on btrfs.
pub fn new_volume(name: &str, size: u64) -> Outcome<NewVolume> {
    let flat = volume(name, size)?;
    NewVolume::new(
        flat.slot,
        &RdsPath::new(&format!("/{POOL}/volumes")).context("volume path")?,
        size,
        PORT,
        flat.nqn,
        flat.comment,
    )
    .context("new volume")
}

/// The slot of volume `name`.
pub fn slot(name: &str) -> Outcome<Slot> {
    Slot::new(name).context("slot")
}

/// The NQN of volume `name`.
pub fn nqn(name: &str) -> String {
    format!("nqn.2000-02.com.mikrotik:{name}")
}

/// nvmet's folder for subsystem `nqn`.
pub fn subsystem_dir(nqn: &str) -> PathBuf {
    Path::new(NVMET).join("subsystems").join(nqn)
}
