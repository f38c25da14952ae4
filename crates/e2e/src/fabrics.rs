//! The kernel's NVMe/TCP initiator, driven directly: connect by writing an
//! option string to `/dev/nvme-fabrics`, find controllers and namespaces by
//! subsystem NQN in sysfs, rescan, disconnect, and block I/O that bypasses
//! the page cache.
//!
//! Written for the tests only and on purpose apart from the driver's
//! `nvme-host` crate, so that each checks the other.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{Mode, OFlags};

use crate::support::{Context, Outcome, wait_for};

/// What to connect to, and how persistently to reconnect.
#[derive(Debug, Clone)]
pub struct Connect {
    /// Target address.
    pub traddr: String,
    /// Target TCP port.
    pub trsvcid: u16,
    /// Subsystem NQN.
    pub nqn: String,
    /// This host's NQN.
    pub hostnqn: String,
    /// This host's id (a UUID).
    pub hostid: String,
    /// Seconds before a lost controller is given up (short in tests).
    pub ctrl_loss_tmo: u32,
    /// Seconds between reconnect attempts.
    pub reconnect_delay: u32,
}

impl Connect {
    /// The option string the kernel reads, e.g.
    /// `transport=tcp,traddr=127.0.0.1,trsvcid=4420,nqn=…,hostnqn=…,hostid=…,ctrl_loss_tmo=60,reconnect_delay=1`.
    pub fn options(&self) -> String {
        format!(
            "transport=tcp,traddr={},trsvcid={},nqn={},hostnqn={},hostid={},ctrl_loss_tmo={},reconnect_delay={}",
            self.traddr,
            self.trsvcid,
            self.nqn,
            self.hostnqn,
            self.hostid,
            self.ctrl_loss_tmo,
            self.reconnect_delay
        )
    }
}

/// A fresh host identity: `(hostnqn, hostid)`.
pub fn new_host_identity() -> Outcome<(String, String)> {
    let uuid = fs::read_to_string("/proc/sys/kernel/random/uuid").context("cannot make a UUID")?;
    let uuid = uuid.trim();
    Ok((
        format!("nqn.2014-08.org.nvmexpress:uuid:{uuid}"),
        uuid.to_owned(),
    ))
}

/// Connects; returns what the kernel answered (`instance=N,cntlid=M`).
/// Blocking: the kernel answers once the controller is set up.
pub async fn connect(request: &Connect) -> Outcome<String> {
    let options = request.options();
    tokio::task::spawn_blocking(move || {
        let mut dev = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/nvme-fabrics")
            .context("cannot open /dev/nvme-fabrics")?;
        dev.write_all(options.as_bytes())
            .context(format!("connect with {options}"))?;
        let mut answer = String::new();
        dev.read_to_string(&mut answer)
            .context("cannot read the connect answer")?;
        Ok(answer.trim().to_owned())
    })
    .await
    .context("the connect task failed")?
}

/// The sysfs folder of every controller (`/sys/class/nvme/nvmeN`) of
/// subsystem `nqn`.
pub fn controllers(nqn: &str) -> Vec<PathBuf> {
    entries(Path::new("/sys/class/nvme"))
        .into_iter()
        .filter(|c| read_attr(&c.join("subsysnqn")).as_deref() == Some(nqn))
        .collect()
}

/// The controllers of subsystem `nqn` connected as host `hostnqn`.
pub fn controllers_of_host(nqn: &str, hostnqn: &str) -> Vec<PathBuf> {
    controllers(nqn)
        .into_iter()
        .filter(|c| read_attr(&c.join("hostnqn")).as_deref() == Some(hostnqn))
        .collect()
}

/// The one controller of `nqn`.
pub fn controller(nqn: &str) -> Outcome<PathBuf> {
    let found = controllers(nqn);
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(format!("no controller for {nqn}")),
        many => Err(format!("{} controllers for {nqn}: {many:?}", many.len())),
    }
}

/// A controller's `state` (`live`, `connecting`, …).
pub fn state(controller: &Path) -> String {
    read_attr(&controller.join("state")).unwrap_or_else(|| "(gone)".to_owned())
}

/// The block device name (`nvme0n1`) of namespace `nsid`'s head for
/// subsystem `nqn`: what the node mounts. Found through the subsystem's
/// folder, as controller and namespace numbers are not stable.
pub fn namespace(nqn: &str, nsid: u32) -> Option<String> {
    for subsystem in entries(Path::new("/sys/class/nvme-subsystem")) {
        if read_attr(&subsystem.join("subsysnqn")).as_deref() != Some(nqn) {
            continue;
        }
        for entry in entries(&subsystem) {
            let name = entry.file_name()?.to_str()?.to_owned();
            // Heads are `nvmeXnY`; hidden per-path devices are `nvmeXcYnZ`.
            if let Some((_, n)) = name.strip_prefix("nvme").and_then(|r| r.split_once('n'))
                && !name.contains('c')
                && n == nsid.to_string()
            {
                return Some(name);
            }
        }
    }
    None
}

/// Waits until namespace `nsid` of subsystem `nqn` is a block device one
/// can use: its node in `/dev` and its size in `/sys/block`. The kernel makes
/// the `/dev` node while it registers the disk and links `/sys/block/<name>`
/// only after that, so the one can be there without the other for a moment.
pub async fn wait_for_namespace(nqn: &str, nsid: u32, within: Duration) -> Outcome<String> {
    wait_for(
        "the namespace's block device",
        within,
        Duration::from_millis(10),
        || async {
            namespace(nqn, nsid)
                .filter(|name| Path::new("/dev").join(name).exists() && size_bytes(name).is_some())
        },
        || format!("controllers: {:?}", controllers(nqn)),
    )
    .await
}

/// The size of block device `name`, in bytes.
pub fn size_bytes(name: &str) -> Option<u64> {
    let sectors: u64 = read_attr(&Path::new("/sys/block").join(name).join("size"))?
        .parse()
        .ok()?;
    Some(sectors * 512)
}

/// Asks a controller to rescan its namespaces (and their sizes).
pub fn rescan(controller: &Path) -> Outcome {
    fs::write(controller.join("rescan_controller"), "1")
        .context(format!("rescan {}", controller.display()))
}

/// Disconnects every controller of `nqn` and waits until none is left.
pub async fn disconnect(nqn: &str) -> Outcome {
    for controller in controllers(nqn) {
        // Gone meanwhile is fine: that is what we want.
        if let Err(e) = fs::write(controller.join("delete_controller"), "1")
            && controller.exists()
        {
            return Err(format!("delete {}: {e}", controller.display()));
        }
    }
    wait_for(
        &format!("the controllers of {nqn} to go"),
        Duration::from_secs(20),
        Duration::from_millis(100),
        || async { controllers(nqn).is_empty().then_some(()) },
        || format!("left: {:?}", controllers(nqn)),
    )
    .await
}

/// A block device opened for direct, synchronous I/O: reads and writes
/// reach the target, never only the page cache.
#[derive(Debug)]
pub struct DirectDevice {
    file: File,
    path: PathBuf,
}

/// The alignment direct I/O needs (covers 512 and 4096-byte sectors).
pub const ALIGN: usize = 4096;

impl DirectDevice {
    /// Opens `/dev/<name>`.
    pub fn open(name: &str) -> Outcome<DirectDevice> {
        Self::open_path(&Path::new("/dev").join(name))
    }

    /// Opens the block device at `path` (a device node, or a file a device
    /// node is bound onto, as a published block volume's target is).
    pub fn open_path(path: &Path) -> Outcome<DirectDevice> {
        let path = path.to_path_buf();
        let fd = rustix::fs::open(
            &path,
            OFlags::RDWR | OFlags::DIRECT | OFlags::SYNC | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .context(format!("cannot open {} with O_DIRECT", path.display()))?;
        Ok(DirectDevice {
            file: File::from(fd),
            path,
        })
    }

    /// Writes `data` (a multiple of [`ALIGN`]) at `offset`.
    pub fn write_at(&self, offset: u64, data: &[u8]) -> Outcome {
        let mut buf = AlignedBuf::new(data.len());
        buf.as_mut().copy_from_slice(data);
        self.file
            .write_all_at(buf.as_ref(), offset)
            .context(format!(
                "write {} bytes at {offset} to {}",
                data.len(),
                self.path.display()
            ))
    }

    /// Reads `len` bytes (a multiple of [`ALIGN`]) at `offset`.
    pub fn read_at(&self, offset: u64, len: usize) -> Outcome<Vec<u8>> {
        let mut buf = AlignedBuf::new(len);
        self.file
            .read_exact_at(buf.as_mut(), offset)
            .context(format!(
                "read {len} bytes at {offset} from {}",
                self.path.display()
            ))?;
        Ok(buf.as_ref().to_vec())
    }
}

/// A buffer whose start is aligned for direct I/O, carved out of a larger
/// vector (safe code cannot ask the allocator for alignment directly).
struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    fn new(len: usize) -> AlignedBuf {
        let storage = vec![0u8; len + ALIGN];
        let misalign = storage.as_ptr() as usize % ALIGN;
        let start = if misalign == 0 { 0 } else { ALIGN - misalign };
        AlignedBuf {
            storage,
            start,
            len,
        }
    }

    fn as_ref(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }

    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

/// A recognisable pattern of `len` bytes, different for each `seed`.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            // xorshift: cheap, and no two seeds or offsets look alike.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// The subsystem NQNs of every connected controller, once each.
pub fn connected_nqns() -> Vec<String> {
    let mut nqns: Vec<String> = entries(Path::new("/sys/class/nvme"))
        .iter()
        .filter_map(|c| read_attr(&c.join("subsysnqn")))
        .collect();
    nqns.sort();
    nqns.dedup();
    nqns
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    found.sort();
    found
}

fn read_attr(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_string() {
        let c = Connect {
            traddr: "127.0.0.1".into(),
            trsvcid: 4420,
            nqn: "nqn.x:a".into(),
            hostnqn: "nqn.h".into(),
            hostid: "u".into(),
            ctrl_loss_tmo: 60,
            reconnect_delay: 1,
        };
        assert_eq!(
            c.options(),
            "transport=tcp,traddr=127.0.0.1,trsvcid=4420,nqn=nqn.x:a,hostnqn=nqn.h,hostid=u,ctrl_loss_tmo=60,reconnect_delay=1"
        );
    }

    #[test]
    fn buffers_are_aligned_and_patterns_differ() {
        let mut b = AlignedBuf::new(8192);
        assert_eq!(b.as_mut().as_ptr() as usize % ALIGN, 0);
        assert_eq!(b.as_ref().len(), 8192);
        assert_ne!(pattern(1, 64), pattern(2, 64));
        assert_eq!(pattern(1, 64), pattern(1, 64));
    }
}
