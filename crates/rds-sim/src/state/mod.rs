//! The simulated appliance's state: registered disks, pool entries and the
//! ids of files.
//!
//! The disks and pool entries are what RouterOS keeps in its configuration;
//! they are saved to `<root>/.rds-sim/state.json` ([`persist`]). Image files
//! are real (sparse) files under the root; [`storage`] reads and changes
//! them. File ids are handed out as files are seen and live only in memory:
//! like print numbers, they only need to be stable while scripts run.

pub mod persist;
pub mod storage;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::SimConfig;

/// Version of the saved state's layout.
pub const FORMAT: u32 = 1;

/// A file-backed disk, with every property `/disk add` and `set` accept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Disk {
    /// Internal id (`*N`).
    pub id: u64,
    /// Unique name of the disk.
    pub slot: String,
    /// Absolute RouterOS path of the image: `/raid10/volumes/x.img`.
    pub file_path: String,
    /// Size of the image in bytes.
    pub file_size: u64,
    /// `;;;` comment; none when empty.
    pub comment: Option<String>,
    /// Shown with flag `X`.
    pub disabled: bool,
    /// Whether RouterOS would mount a filesystem found in the image.
    pub mount_filesystem: bool,
    /// `mount-read-only`.
    pub mount_read_only: bool,
    /// `compress`.
    pub compress: bool,
    /// Exported over NVMe/TCP (flag `t`).
    pub nvme_tcp_export: bool,
    /// TCP port of the export.
    pub nvme_tcp_server_port: u16,
    /// Subsystem NQN of the export.
    pub nvme_tcp_server_nqn: String,
    /// Hosts allowed to connect.
    pub nvme_tcp_server_allow_host_name: String,
    /// Not printed; readable with `get`.
    pub nvme_tcp_server_password: String,
    /// `iscsi-export`.
    pub iscsi_export: bool,
    /// `nfs-sharing`.
    pub nfs_sharing: bool,
    /// `smb-sharing`.
    pub smb_sharing: bool,
    /// `swap`.
    pub swap: bool,
    /// `file-offset`.
    pub file_offset: u64,
}

impl Disk {
    /// A disk with RouterOS's defaults for the properties not given.
    /// `mount-filesystem` defaults to yes, which is why the driver sets it to
    /// no on every volume: RouterOS would otherwise mount the filesystem a
    /// node writes inside the image.
    pub fn new(id: u64, slot: String, file_path: String, file_size: u64) -> Disk {
        Disk {
            id,
            slot,
            file_path,
            file_size,
            comment: None,
            disabled: false,
            mount_filesystem: true,
            mount_read_only: false,
            compress: false,
            nvme_tcp_export: false,
            nvme_tcp_server_port: 4420,
            nvme_tcp_server_nqn: String::new(),
            nvme_tcp_server_allow_host_name: String::new(),
            nvme_tcp_server_password: String::new(),
            iscsi_export: false,
            nfs_sharing: false,
            smb_sharing: false,
            swap: false,
            file_offset: 0,
        }
    }
}

/// What is kept of a pool entry besides its configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolMeta {
    /// Internal id in `/disk`.
    pub id: u64,
    /// `;;;` comment.
    pub comment: Option<String>,
}

/// The part of the state saved across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Saved {
    /// Layout version, [`FORMAT`].
    pub format: u32,
    /// The next id `/disk` hands out.
    pub next_disk_id: u64,
    /// Pool entries by name.
    pub pools: BTreeMap<String, PoolMeta>,
    /// File disks in the order they were added.
    pub disks: Vec<Disk>,
}

impl Default for Saved {
    fn default() -> Self {
        Saved {
            format: FORMAT,
            next_disk_id: 1,
            pools: BTreeMap::new(),
            disks: Vec::new(),
        }
    }
}

/// The whole state behind the engine's lock.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// Saved part.
    pub saved: Saved,
    /// Ids of the entries of `/file`, by RouterOS name.
    pub file_ids: BTreeMap<String, u64>,
    /// The next id `/file` hands out.
    pub next_file_id: u64,
    /// The `/disk` records as last built, until a command changes something.
    /// Building them costs a walk of every pool (for `free`) and a record per
    /// disk; reads far outnumber changes, and every command holds the one
    /// lock, so without this the simulator's cost would hide the client's
    /// concurrency. Files placed in a pool by hand count toward `free` from
    /// the next change the simulator makes.
    pub disk_records: Option<std::sync::Arc<Vec<crate::records::Record>>>,
    /// Size and free bytes per pool as last measured, under the same rule
    /// as `disk_records`: measuring walks the pool's files.
    pub pool_space: BTreeMap<String, crate::records::PoolSpace>,
    /// The `/disk/btrfs/subvolume` records as last built, under the same
    /// rule: building them runs `btrfs subvolume list` on every btrfs pool.
    pub subvolume_records: Option<std::sync::Arc<Vec<crate::records::Record>>>,
    /// Ids of subvolumes in `/disk/btrfs/subvolume`, by pool and btrfs's
    /// subvolume ID. Like file ids, they live in memory only.
    pub subvolume_ids: BTreeMap<(String, u64), u64>,
    /// The next id `/disk/btrfs/subvolume` hands out.
    pub next_subvolume_id: u64,
}

impl State {
    /// A state from what was saved, with an id for every configured pool.
    /// Pools no longer configured are forgotten; disks are kept whatever
    /// pool they are on, as RouterOS keeps a disk whose file went missing.
    pub fn new(mut saved: Saved, config: &SimConfig) -> State {
        saved
            .pools
            .retain(|name, _| config.pools.iter().any(|p| &p.name == name));
        for pool in &config.pools {
            if !saved.pools.contains_key(&pool.name) {
                let id = saved.next_disk_id;
                saved.next_disk_id += 1;
                saved
                    .pools
                    .insert(pool.name.clone(), PoolMeta { id, comment: None });
            }
        }
        State {
            saved,
            file_ids: BTreeMap::new(),
            next_file_id: 1,
            disk_records: None,
            pool_space: BTreeMap::new(),
            subvolume_records: None,
            subvolume_ids: BTreeMap::new(),
            next_subvolume_id: 1,
        }
    }

    /// The id of subvolume `btrfs_id` of `pool`, handing out a new one if it
    /// has none.
    pub fn subvolume_id(&mut self, pool: &str, btrfs_id: u64) -> u64 {
        let key = (pool.to_owned(), btrfs_id);
        if let Some(id) = self.subvolume_ids.get(&key) {
            return *id;
        }
        let id = self.next_subvolume_id;
        self.next_subvolume_id += 1;
        self.subvolume_ids.insert(key, id);
        id
    }

    /// Hands out the next `/disk` id.
    pub fn next_disk_id(&mut self) -> u64 {
        let id = self.saved.next_disk_id;
        self.saved.next_disk_id += 1;
        id
    }

    /// The disk with id `id`.
    pub fn disk_mut(&mut self, id: u64) -> Option<&mut Disk> {
        self.saved.disks.iter_mut().find(|d| d.id == id)
    }

    /// The name of the pool whose entry has id `id`.
    pub fn pool_by_id(&self, id: u64) -> Option<&str> {
        self.saved
            .pools
            .iter()
            .find(|(_, meta)| meta.id == id)
            .map(|(name, _)| name.as_str())
    }

    /// Whether any disk or pool entry uses `slot`, other than `except`.
    pub fn slot_taken(&self, slot: &str, except: Option<u64>) -> bool {
        let disk = self
            .saved
            .disks
            .iter()
            .any(|d| d.slot == slot && Some(d.id) != except);
        let pool = self
            .saved
            .pools
            .iter()
            .any(|(name, meta)| name == slot && Some(meta.id) != except);
        disk || pool
    }

    /// Forgets what was measured or built from the files and disks, after a
    /// command changed something.
    pub fn invalidate_caches(&mut self) {
        self.disk_records = None;
        self.pool_space.clear();
        self.subvolume_records = None;
    }

    /// The id of `/file` entry `name`, handing out a new one if it has none
    /// (without forgetting the others, unlike [`State::sync_file_ids`]).
    pub fn file_id(&mut self, name: &str) -> u64 {
        if let Some(id) = self.file_ids.get(name) {
            return *id;
        }
        let id = self.next_file_id;
        self.next_file_id += 1;
        self.file_ids.insert(name.to_owned(), id);
        id
    }

    /// Gives ids to names not seen before and forgets names that are gone,
    /// so `/file` ids stay stable while a file exists.
    pub fn sync_file_ids<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        let mut seen = BTreeMap::new();
        for name in names {
            let id = match self.file_ids.get(name) {
                Some(id) => *id,
                None => {
                    let id = self.next_file_id;
                    self.next_file_id += 1;
                    id
                }
            };
            seen.insert(name.to_string(), id);
        }
        self.file_ids = seen;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_get_stable_ids() {
        let mut config = SimConfig::single_pool("/x", "raid10", 1);
        let state = State::new(Saved::default(), &config);
        let id = state.saved.pools["raid10"].id;
        assert_eq!(state.pool_by_id(id), Some("raid10"));
        config.pools.push(crate::config::PoolConfig {
            name: "nvme1".into(),
            ..config.pools[0].clone()
        });
        let again = State::new(state.saved.clone(), &config);
        assert_eq!(again.saved.pools["raid10"].id, id);
        assert_ne!(again.saved.pools["nvme1"].id, id);
        assert!(again.slot_taken("nvme1", None));
    }

    #[test]
    fn file_ids_are_stable_while_the_file_exists() {
        let mut state = State::default();
        state.sync_file_ids(["a", "b"]);
        let b = state.file_ids["b"];
        state.sync_file_ids(["b", "c"]);
        assert_eq!(state.file_ids["b"], b);
        assert!(!state.file_ids.contains_key("a"));
        assert!(state.file_ids["c"] > b);
    }
}
