//! What sysfs says about NVMe, as types, and the pure rules to read it.
//!
//! Nothing here touches the file system: these functions take the text of one
//! attribute or a list of directory entries, so the layout rules are tested
//! without a kernel. `scan` does the reading.
//!
//! Names, on Linux 6.1: controllers are `nvme<ctrl>`, subsystems
//! `nvme-subsys<subsys>`. With native multipath a namespace has a head block
//! device `nvme<subsys>n<ns>` (in the subsystem's folder) and one hidden
//! per-path device `nvme<subsys>c<ctrl>n<ns>` per controller, which has no
//! device node and must never be used. Without multipath the namespace is
//! `nvme<ctrl>n<ns>` in the controller's folder. None of these numbers is
//! stable, so everything is looked up by NQN.

use std::fmt;
use std::path::PathBuf;

/// A controller's `state` attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CtrlState {
    /// `new`: being set up.
    New,
    /// `live`: connected and serving I/O.
    Live,
    /// `resetting`: being reset.
    Resetting,
    /// `connecting`: (re)connecting after a loss.
    Connecting,
    /// `deleting`: being removed.
    Deleting,
    /// `deleting (no IO)`: being removed, I/O already failed.
    DeletingNoIo,
    /// `dead`: failed for good.
    Dead,
    /// Text this library does not know, kept as read.
    Unknown(String),
}

impl CtrlState {
    /// Reads the text of a `state` attribute (surrounding whitespace ignored).
    pub fn from_sysfs(text: &str) -> CtrlState {
        match text.trim() {
            "new" => Self::New,
            "live" => Self::Live,
            "resetting" => Self::Resetting,
            "connecting" => Self::Connecting,
            "deleting" => Self::Deleting,
            "deleting (no IO)" => Self::DeletingNoIo,
            "dead" => Self::Dead,
            other => Self::Unknown(other.to_owned()),
        }
    }

    /// How good the state is for choosing among a subsystem's controllers:
    /// live, then connecting or resetting (it may come back), then the rest.
    pub fn rank(&self) -> u8 {
        match self {
            Self::Live => 3,
            Self::Connecting | Self::Resetting => 2,
            Self::New | Self::Unknown(_) => 1,
            Self::Deleting | Self::DeletingNoIo | Self::Dead => 0,
        }
    }

    /// Whether the controller is going away (`deleting`, `deleting (no IO)`).
    pub fn is_deleting(&self) -> bool {
        matches!(self, Self::Deleting | Self::DeletingNoIo)
    }
}

impl fmt::Display for CtrlState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::New => "new",
            Self::Live => "live",
            Self::Resetting => "resetting",
            Self::Connecting => "connecting",
            Self::Deleting => "deleting",
            Self::DeletingNoIo => "deleting (no IO)",
            Self::Dead => "dead",
            Self::Unknown(s) => s,
        })
    }
}

/// A controller's `address` attribute.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Address {
    /// The target address (for PCIe controllers, the whole attribute: a PCI address).
    pub traddr: String,
    /// The target port, when present and numeric.
    pub trsvcid: Option<u16>,
    /// The local address of the connection; present only while connected.
    pub src_addr: Option<String>,
}

/// Parses an `address` attribute: `traddr=…,trsvcid=…[,src_addr=…]` with
/// possibly other keys (`host_traddr`, `host_iface`), which are ignored. Text
/// without `=` (a PCIe controller) is taken whole as `traddr`.
pub fn parse_address(text: &str) -> Address {
    let text = text.trim();
    if !text.contains('=') {
        return Address {
            traddr: text.to_owned(),
            ..Address::default()
        };
    }
    let mut address = Address::default();
    for (key, value) in text.split(',').filter_map(|p| p.split_once('=')) {
        match key.trim() {
            "traddr" => address.traddr = value.trim().to_owned(),
            "trsvcid" => address.trsvcid = value.trim().parse().ok(),
            "src_addr" => address.src_addr = Some(value.trim().to_owned()),
            _ => {}
        }
    }
    address
}

/// What an entry name under `/sys/class/nvme*` or `/sys/block` denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NvmeName {
    /// `nvme<N>`: a controller.
    Controller(u32),
    /// `nvme<A>n<B>`: a usable namespace block device (a multipath head, or a
    /// namespace of a controller without multipath).
    Namespace(u32, u32),
    /// `nvme<S>c<C>n<N>`: a hidden per-path device; never to be used.
    PathNamespace(u32, u32, u32),
}

/// Classifies an entry name; `None` for anything else (`nvme-subsys0`,
/// `state`, `nvme0n1p1`, …).
pub fn parse_nvme_name(name: &str) -> Option<NvmeName> {
    let rest = name.strip_prefix("nvme")?;
    let (first, rest) = split_number(rest)?;
    if rest.is_empty() {
        return Some(NvmeName::Controller(first));
    }
    if let Some(rest) = rest.strip_prefix('c') {
        let (ctrl, rest) = split_number(rest)?;
        let (ns, rest) = split_number(rest.strip_prefix('n')?)?;
        return rest
            .is_empty()
            .then_some(NvmeName::PathNamespace(first, ctrl, ns));
    }
    let (ns, rest) = split_number(rest.strip_prefix('n')?)?;
    rest.is_empty().then_some(NvmeName::Namespace(first, ns))
}

/// The number of a subsystem entry, `nvme-subsys<N>`.
pub fn parse_subsystem_name(name: &str) -> Option<u32> {
    let (n, rest) = split_number(name.strip_prefix("nvme-subsys")?)?;
    rest.is_empty().then_some(n)
}

/// A leading decimal number and the rest; `None` without digits or on overflow.
fn split_number(s: &str) -> Option<(u32, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n = s.get(..end)?.parse().ok()?;
    Some((n, &s[end..]))
}

/// Sort key for names with numbers: `nvme2` before `nvme10`.
pub(crate) fn name_order(name: &str) -> (Vec<u32>, String) {
    let numbers = match parse_nvme_name(name) {
        Some(NvmeName::Controller(a)) => vec![a],
        Some(NvmeName::Namespace(a, b)) => vec![a, b],
        Some(NvmeName::PathNamespace(a, b, c)) => vec![a, b, c],
        None => parse_subsystem_name(name).into_iter().collect(),
    };
    (numbers, name.to_owned())
}

/// A namespace block device that could serve an NQN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its name in `/sys/block`.
    pub name: String,
    /// Its namespace id, from the `nsid` attribute, when readable.
    pub nsid: Option<u32>,
}

/// Chooses the block device of a subsystem among its namespaces: namespace id 1
/// when present (the RDS exports one namespace per volume, as 1), otherwise the
/// lowest namespace id, otherwise the lowest name. Hidden per-path names are
/// never chosen, whatever the caller passed.
pub fn choose_namespace(candidates: &[Candidate]) -> Option<&Candidate> {
    candidates
        .iter()
        .filter(|c| matches!(parse_nvme_name(&c.name), Some(NvmeName::Namespace(..))))
        .min_by_key(|c| {
            (
                c.nsid != Some(1),
                c.nsid.is_none(),
                c.nsid,
                name_order(&c.name),
            )
        })
}

/// A controller, as `/sys/class/nvme/<name>` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controller {
    /// Its name, e.g. `nvme0`.
    pub name: String,
    /// Its state.
    pub state: CtrlState,
    /// Its transport (`tcp`, `rdma`, `pcie`, …).
    pub transport: String,
    /// The NQN of the subsystem it belongs to.
    pub subsysnqn: String,
    /// The host NQN it connected with (empty for PCIe controllers).
    pub hostnqn: String,
    /// Where it is connected.
    pub address: Address,
}

/// A subsystem, as `/sys/class/nvme-subsystem/<name>` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subsystem {
    /// Its name, e.g. `nvme-subsys0`.
    pub name: String,
    /// Its NQN.
    pub nqn: String,
    /// Its controllers' names, e.g. `nvme0`.
    pub controllers: Vec<String>,
    /// Its head namespaces under native multipath, e.g. `nvme0n1`; empty without it.
    pub namespaces: Vec<String>,
}

/// A block device that serves a subsystem's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDevice {
    /// Its name, e.g. `nvme0n1`.
    pub name: String,
    /// Its device node on the host, e.g. `/dev/nvme0n1` (not under the injected root).
    pub path: PathBuf,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// The kernel's disk sequence number (`diskseq`, Linux 5.15+): unlike the
    /// name and the device number, never reused, so it tells a disk from a
    /// later one of the same name. `None` on older kernels.
    pub diskseq: Option<u64>,
}

/// What [`crate::Host::check_orphan`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Orphan {
    /// The NQN lacks this driver's prefix: never to be touched.
    NotOurs,
    /// The driver's, with a working block device, and a staged volume refers to it.
    InUse,
    /// The driver's, and it may be disconnected, for this reason.
    Orphan(OrphanReason),
}

/// Why a connected NQN of this driver is an orphan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrphanReason {
    /// No staged volume refers to it.
    NotReferenced,
    /// A staged volume refers to it, but it has no block device with a size;
    /// the best controller state seen, if any controller remains.
    NoBlockDevice(Option<CtrlState>),
}

impl fmt::Display for OrphanReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotReferenced => f.write_str("no staged volume refers to it"),
            Self::NoBlockDevice(Some(state)) => {
                write!(f, "it has no usable block device (controller {state})")
            }
            Self::NoBlockDevice(None) => f.write_str("it has no block device and no controller"),
        }
    }
}

#[cfg(test)]
#[path = "sysfs_tests.rs"]
mod tests;
