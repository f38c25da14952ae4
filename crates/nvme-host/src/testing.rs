//! Test doubles for code that uses this crate: a sysfs tree in a directory and a
//! scripted `/dev/nvme-fabrics`. Neither needs root or an NVMe device.
//!
//! [`FakeSysfs`] builds the layout of Linux 6.1 as it really is: controller and
//! subsystem folders under `sys/devices/virtual/…`, reached through the
//! symbolic links in `sys/class/nvme`, `sys/class/nvme-subsystem` and
//! `sys/block`; with native multipath a head namespace in the subsystem folder
//! and a hidden per-path namespace in each controller folder, without it the
//! namespace in the controller folder. Device nodes are stood in for by empty
//! files under `dev/`. It keeps no state of its own: everything is read back
//! from the tree, so a clone can change it from another task.

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use crate::fabrics::Fabrics;
use crate::sysfs::{NvmeName, parse_nvme_name, parse_subsystem_name};

const CTL: &str = "sys/devices/virtual/nvme-fabrics/ctl";
const SUBSYS: &str = "sys/devices/virtual/nvme-subsystem";

/// A controller to add to a [`FakeSysfs`].
#[derive(Debug, Clone)]
pub struct FakeController {
    /// Its subsystem NQN.
    pub nqn: String,
    /// Its state text, e.g. `live`.
    pub state: String,
    /// The target address.
    pub traddr: String,
    /// The target port.
    pub trsvcid: u16,
    /// The host NQN it connected with.
    pub hostnqn: String,
}

impl FakeController {
    /// A live TCP controller of `nqn` at 10.0.0.5:4420.
    pub fn new(nqn: &str) -> FakeController {
        FakeController {
            nqn: nqn.to_owned(),
            state: "live".to_owned(),
            traddr: "10.0.0.5".to_owned(),
            trsvcid: 4420,
            hostnqn: "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000001"
                .to_owned(),
        }
    }
}

/// A fake sysfs (and `/dev`) under a root directory.
#[derive(Debug, Clone)]
pub struct FakeSysfs {
    root: PathBuf,
}

impl FakeSysfs {
    /// Creates the empty tree under `root`, with native multipath on or off.
    pub fn new(root: impl Into<PathBuf>, multipath: bool) -> io::Result<FakeSysfs> {
        let root = root.into();
        for dir in [
            "sys/class/nvme",
            "sys/class/nvme-subsystem",
            "sys/block",
            "dev",
            CTL,
            SUBSYS,
        ] {
            fs::create_dir_all(root.join(dir))?;
        }
        let param = root.join("sys/module/nvme_core/parameters");
        fs::create_dir_all(&param)?;
        fs::write(
            param.join("multipath"),
            if multipath { "Y\n" } else { "N\n" },
        )?;
        Ok(FakeSysfs { root })
    }

    /// The root to give [`crate::Host::new`].
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn multipath(&self) -> bool {
        fs::read_to_string(self.root.join("sys/module/nvme_core/parameters/multipath"))
            .is_ok_and(|v| v.trim() == "Y")
    }

    /// Adds a controller (and its subsystem, if new); returns its name (`nvme0`).
    pub fn add_controller(&self, c: &FakeController) -> io::Result<String> {
        let n = free_number(
            &self.root.join("sys/class/nvme"),
            |e| match parse_nvme_name(e) {
                Some(NvmeName::Controller(n)) => Some(n),
                _ => None,
            },
        )?;
        let name = format!("nvme{n}");
        let dir = self.root.join(CTL).join(&name);
        fs::create_dir_all(&dir)?;
        let address = format!(
            "traddr={},trsvcid={},src_addr=10.0.0.9\n",
            c.traddr, c.trsvcid
        );
        let attrs = [
            ("state", format!("{}\n", c.state)),
            ("transport", "tcp\n".to_owned()),
            ("subsysnqn", format!("{}\n", c.nqn)),
            ("hostnqn", format!("{}\n", c.hostnqn)),
            ("address", address),
            ("cntlid", format!("{}\n", n + 1)),
            ("delete_controller", String::new()),
            ("rescan_controller", String::new()),
            ("reset_controller", String::new()),
        ];
        for (attr, value) in attrs {
            fs::write(dir.join(attr), value)?;
        }
        symlink(
            format!("../../devices/virtual/nvme-fabrics/ctl/{name}"),
            self.root.join("sys/class/nvme").join(&name),
        )?;
        let subsys = match self.subsystem_of(&c.nqn)? {
            Some(s) => s,
            None => self.add_subsystem(&c.nqn)?,
        };
        symlink(
            format!("../../nvme-fabrics/ctl/{name}"),
            self.root.join(SUBSYS).join(&subsys).join(&name),
        )?;
        Ok(name)
    }

    fn add_subsystem(&self, nqn: &str) -> io::Result<String> {
        let n = free_number(
            &self.root.join("sys/class/nvme-subsystem"),
            parse_subsystem_name,
        )?;
        let name = format!("nvme-subsys{n}");
        let dir = self.root.join(SUBSYS).join(&name);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join("subsysnqn"), format!("{nqn}\n"))?;
        fs::write(dir.join("model"), "RDS\n")?;
        fs::write(dir.join("iopolicy"), "numa\n")?;
        symlink(
            format!("../../devices/virtual/nvme-subsystem/{name}"),
            self.root.join("sys/class/nvme-subsystem").join(&name),
        )?;
        Ok(name)
    }

    /// The folder name of the subsystem of `nqn`, if any.
    fn subsystem_of(&self, nqn: &str) -> io::Result<Option<String>> {
        for entry in fs::read_dir(self.root.join(SUBSYS))? {
            let entry = entry?;
            if fs::read_to_string(entry.path().join("subsysnqn"))?.trim() == nqn {
                return Ok(Some(entry.file_name().to_string_lossy().into_owned()));
            }
        }
        Ok(None)
    }

    /// Names of the controllers linked from a subsystem folder.
    fn controllers_in(&self, subsys: &str) -> io::Result<Vec<(u32, String)>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(self.root.join(SUBSYS).join(subsys))? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if let Some(NvmeName::Controller(n)) = parse_nvme_name(&name) {
                out.push((n, name));
            }
        }
        Ok(out)
    }

    /// Adds namespace `nsid` of `size_bytes` to the subsystem of `nqn`, seen
    /// through each of its controllers; returns the usable block device's name
    /// (with several controllers and no multipath, the first controller's).
    pub fn add_namespace(&self, nqn: &str, nsid: u32, size_bytes: u64) -> io::Result<String> {
        let subsys = self.subsystem_of(nqn)?.ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("no subsystem {nqn}"))
        })?;
        let s = parse_subsystem_name(&subsys).unwrap_or_default();
        let controllers = self.controllers_in(&subsys)?;
        // A namespace instance number that no block device uses yet; like the
        // kernel's, it is not the nsid.
        let block = self.root.join("sys/block");
        let used: Vec<u32> = fs::read_dir(&block)?
            .filter_map(|e| e.ok())
            .filter_map(
                |e| match parse_nvme_name(&e.file_name().to_string_lossy()) {
                    Some(NvmeName::Namespace(_, i) | NvmeName::PathNamespace(_, _, i)) => Some(i),
                    _ => None,
                },
            )
            .collect();
        let i = (1..).find(|i| !used.contains(i)).unwrap_or(1);
        let sectors = format!("{}\n", size_bytes / 512);
        // Like the kernel's, a disk sequence number is never reused.
        let seq_file = self.root.join("diskseq-counter");
        let seq: u64 = fs::read_to_string(&seq_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
            + 1;
        fs::write(&seq_file, seq.to_string())?;
        let make = |dir: &Path| -> io::Result<()> {
            fs::create_dir_all(dir)?;
            fs::write(dir.join("size"), &sectors)?;
            fs::write(dir.join("diskseq"), format!("{seq}\n"))?;
            fs::write(dir.join("nsid"), format!("{nsid}\n"))
        };
        let mut usable = Vec::new();
        if self.multipath() {
            let head = format!("nvme{s}n{i}");
            make(&self.root.join(SUBSYS).join(&subsys).join(&head))?;
            symlink(
                format!("../devices/virtual/nvme-subsystem/{subsys}/{head}"),
                block.join(&head),
            )?;
            usable.push(head);
            for (c, ctrl) in &controllers {
                let path = format!("nvme{s}c{c}n{i}");
                make(&self.root.join(CTL).join(ctrl).join(&path))?;
                symlink(
                    format!("../devices/virtual/nvme-fabrics/ctl/{ctrl}/{path}"),
                    block.join(&path),
                )?;
            }
        } else {
            for (c, ctrl) in &controllers {
                let ns = format!("nvme{c}n{i}");
                make(&self.root.join(CTL).join(ctrl).join(&ns))?;
                symlink(
                    format!("../devices/virtual/nvme-fabrics/ctl/{ctrl}/{ns}"),
                    block.join(&ns),
                )?;
                usable.push(ns);
            }
        }
        usable.sort();
        for name in &usable {
            fs::write(self.root.join("dev").join(name), "")?;
        }
        usable.into_iter().next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "the subsystem has no controller")
        })
    }

    /// Appends `text` to the fake kernel log, `<root>/dev/kmsg`, as one
    /// record in `/dev/kmsg`'s format.
    pub fn log_kernel(&self, text: &str) -> io::Result<()> {
        use std::io::Write;
        let mut log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("dev/kmsg"))?;
        writeln!(log, "6,0,0,-;{text}")
    }

    /// Sets a controller's state text.
    pub fn set_state(&self, ctrl: &str, state: &str) -> io::Result<()> {
        fs::write(
            self.root.join(CTL).join(ctrl).join("state"),
            format!("{state}\n"),
        )
    }

    /// Reads one of a controller's attributes as written.
    pub fn attr(&self, ctrl: &str, attr: &str) -> io::Result<String> {
        fs::read_to_string(self.root.join(CTL).join(ctrl).join(attr))
    }

    /// Removes a controller as the kernel does when it is deleted: its folder,
    /// links and namespaces; and its subsystem with its heads if it was the last.
    pub fn remove_controller(&self, ctrl: &str) -> io::Result<()> {
        let nqn = self.attr(ctrl, "subsysnqn")?.trim().to_owned();
        let inside = format!("/ctl/{ctrl}/");
        self.remove_block_devices(|target| target.contains(&inside))?;
        fs::remove_file(self.root.join("sys/class/nvme").join(ctrl))?;
        fs::remove_dir_all(self.root.join(CTL).join(ctrl))?;
        if let Some(subsys) = self.subsystem_of(&nqn)? {
            fs::remove_file(self.root.join(SUBSYS).join(&subsys).join(ctrl))?;
            if self.controllers_in(&subsys)?.is_empty() {
                let inside = format!("/{subsys}/");
                self.remove_block_devices(|target| target.contains(&inside))?;
                fs::remove_file(self.root.join("sys/class/nvme-subsystem").join(&subsys))?;
                fs::remove_dir_all(self.root.join(SUBSYS).join(&subsys))?;
            }
        }
        Ok(())
    }

    /// Removes the `sys/block` links whose target matches, and their device nodes.
    fn remove_block_devices(&self, matches: impl Fn(&str) -> bool) -> io::Result<()> {
        for entry in fs::read_dir(self.root.join("sys/block"))? {
            let entry = entry?;
            if matches(&fs::read_link(entry.path())?.to_string_lossy()) {
                fs::remove_file(entry.path())?;
                let node = self.root.join("dev").join(entry.file_name());
                if node.exists() {
                    fs::remove_file(node)?;
                }
            }
        }
        Ok(())
    }
}

/// The lowest number not taken by an entry of `dir`.
fn free_number(dir: &Path, number: impl Fn(&str) -> Option<u32>) -> io::Result<u32> {
    let mut taken = Vec::new();
    for entry in fs::read_dir(dir)? {
        if let Some(n) = number(&entry?.file_name().to_string_lossy()) {
            taken.push(n);
        }
    }
    Ok((0..).find(|n| !taken.contains(n)).unwrap_or(0))
}

/// One scripted answer of [`FakeFabrics`].
#[derive(Debug, Clone)]
enum Answer {
    Reply(String),
    Errno(i32),
    /// Blocks until the latch opens, then fails with the errno.
    Held(Latch, i32),
}

/// A gate a [`FakeFabrics`] answer waits at, as a connect waits in the
/// kernel, until the test opens it. Clones share the gate.
#[derive(Debug, Clone, Default)]
pub struct Latch(Arc<(Mutex<bool>, Condvar)>);

impl Latch {
    /// A closed latch.
    pub fn new() -> Latch {
        Latch::default()
    }

    /// Opens the latch: waiting answers go on, later ones do not wait.
    pub fn open(&self) {
        *lock(&self.0.0) = true;
        self.0.1.notify_all();
    }

    fn wait(&self) {
        let mut open = lock(&self.0.0);
        while !*open {
            open = self.0.1.wait(open).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// A scripted `/dev/nvme-fabrics`: answers each connect with the next scripted
/// reply or errno (or holds it until a [`Latch`] opens, as a slow kernel
/// would), and records the option strings it was given. When the script is
/// used up it fails without an errno. Nothing in it depends on the clock, so
/// tests run on tokio's paused one.
#[derive(Default)]
pub struct FakeFabrics {
    script: Mutex<VecDeque<Answer>>,
    calls: Mutex<Vec<String>>,
}

impl FakeFabrics {
    /// An empty script.
    pub fn new() -> FakeFabrics {
        FakeFabrics::default()
    }

    fn push(self, answer: Answer) -> Self {
        lock(&self.script).push_back(answer);
        self
    }

    /// Next, answer with `reply` (e.g. `instance=0,cntlid=1\n`).
    pub fn reply(self, reply: &str) -> Self {
        self.push(Answer::Reply(reply.to_owned()))
    }

    /// Next, fail with `errno`.
    pub fn errno(self, errno: i32) -> Self {
        self.push(Answer::Errno(errno))
    }

    /// Next, block until `latch` opens, then fail with `errno`.
    pub fn held_errno(self, latch: &Latch, errno: i32) -> Self {
        self.push(Answer::Held(latch.clone(), errno))
    }

    /// The option strings written so far, in order.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.calls).clone()
    }
}

impl Fabrics for FakeFabrics {
    fn submit(&self, options: &str) -> io::Result<String> {
        lock(&self.calls).push(options.to_owned());
        let next = lock(&self.script).pop_front();
        let Some(answer) = next else {
            return Err(io::Error::other("FakeFabrics: the script is used up"));
        };
        match answer {
            Answer::Reply(reply) => Ok(reply),
            Answer::Errno(errno) => Err(io::Error::from_raw_os_error(errno)),
            Answer::Held(latch, errno) => {
                latch.wait();
                Err(io::Error::from_raw_os_error(errno))
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
