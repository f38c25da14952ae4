//! The engine: the simulated appliance that scripts run against.
//!
//! [`Engine::execute`] parses a script, then interprets it; each menu
//! command takes the state lock for itself alone, so concurrent scripts
//! interleave between commands as they do on the device. A command that
//! changes the state works on a copy, which replaces the state only once it
//! has been saved to disk: what a client was told happened has been
//! persisted, and a failed save changes nothing.

#[cfg(test)]
mod contract_tests;
#[cfg(test)]
mod robustness_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod unknowns_tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::commands::{self, Ctx, Invocation, Outcome, SystemInfo};
use crate::config::SimConfig;
use crate::error::{CmdError, SimError};
use crate::faults::{Faults, Verdict};
use crate::interp::{CommandRunner, Flow, Interp};
use crate::menu::{Menu, canonical_name};
use crate::nvmet::layout::{ConfigFs, RealConfigFs};
use crate::nvmet::loopdev::{Backing, LoopDevices};
use crate::nvmet::{self, Exporter, NvmetError};
use crate::parser::parse_script;
use crate::state::storage::{EntryKind, Storage};
use crate::state::{State, persist};

/// The terminal width RouterOS assumes when the login does not set one.
pub const DEFAULT_WIDTH: usize = 80;

/// The narrowest and widest terminal the simulator accepts.
pub const WIDTH_RANGE: std::ops::RangeInclusive<usize> = 20..=4096;

/// Options of one execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecOptions {
    /// Terminal width `print` wraps at.
    pub width: usize,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            width: DEFAULT_WIDTH,
        }
    }
}

/// The result of one script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    /// What the device printed; every line ends in `\r\n`.
    pub output: String,
    /// An error was printed.
    pub failed: bool,
    /// A drop fault fired: the server must close the connection without
    /// replying.
    pub drop_connection: bool,
}

/// A file disk, as tests see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskView {
    /// Slot.
    pub slot: String,
    /// Absolute RouterOS path of the image.
    pub file_path: String,
    /// Size in bytes.
    pub size: u64,
    /// `nvme-tcp-server-nqn`.
    pub nqn: String,
    /// `nvme-tcp-server-port`.
    pub port: u16,
    /// `nvme-tcp-export`.
    pub export: bool,
    /// Comment, if any.
    pub comment: Option<String>,
    /// `mount-filesystem`.
    pub mount_filesystem: bool,
    /// `nvme-tcp-server-allow-host-name`, as set.
    pub allow_host_name: String,
}

/// A regular file in a pool, as tests see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileView {
    /// RouterOS name: `raid10/volumes/x.img`.
    pub name: String,
    /// Logical size in bytes.
    pub size: u64,
}

struct Inner {
    root: std::path::PathBuf,
    storage: Storage,
    state: Mutex<State>,
    faults: Faults,
    system: SystemInfo,
    commands: AtomicU64,
    /// Scripts run (one per exec request).
    execs: AtomicU64,
    /// Where the counters are written after every script, if anywhere.
    stats_file: Mutex<Option<std::path::PathBuf>>,
    /// Exec requests being handled now, and the most there ever were.
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// The terminal width of a login that does not ask for one.
    terminal_width: AtomicUsize,
    /// The nvmet exporter, when configured. Locked after `state`, never
    /// before.
    nvmet: Option<Mutex<Exporter>>,
}

/// A simulated RDS. Cheap to clone; clones share the appliance.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("root", &self.inner.root)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Opens the appliance: creates the pool folders, and loads the saved
    /// state if there is one, so a restarted simulator keeps its disks.
    ///
    /// With [`SimConfig::nvmet`], the disks are also reconciled with nvmet's
    /// configfs (see [`Engine::nvmet_exports`]); a foreign subsystem in the
    /// way, or no nvmet at all, is an error.
    pub fn open(config: SimConfig) -> Result<Engine, SimError> {
        let backend: Option<(Box<dyn ConfigFs>, Box<dyn Backing>)> = match config.nvmet {
            Some(_) => Some((Box::new(RealConfigFs), Box::new(LoopDevices::default()))),
            None => None,
        };
        Self::open_with(config, backend)
    }

    /// [`Engine::open`] with the given configfs and block-device backends
    /// for nvmet (tests substitute fakes).
    pub(crate) fn open_with(
        config: SimConfig,
        backend: Option<(Box<dyn ConfigFs>, Box<dyn Backing>)>,
    ) -> Result<Engine, SimError> {
        config.validate()?;
        let mut storage = Storage::new(&config);
        storage.prepare()?;
        storage.open_filesystems()?;
        let state = State::new(persist::load(&config.root)?, &config);
        // New pools got ids; save them so they stay the same next time.
        persist::compact(&config.root, &state.saved)?;
        let nvmet = match (&config.nvmet, backend) {
            (Some(nvmet_config), Some((fs, backing))) => {
                let desired = exports(&storage, &state, &Faults::default());
                let state_dir = config.root.join(persist::STATE_DIR);
                Some(Mutex::new(Exporter::open(
                    nvmet_config.clone(),
                    &state_dir,
                    &desired,
                    fs,
                    backing,
                )?))
            }
            _ => None,
        };
        Ok(Engine {
            inner: Arc::new(Inner {
                root: config.root.clone(),
                storage,
                state: Mutex::new(state),
                faults: Faults::default(),
                system: SystemInfo {
                    version: config.version.clone(),
                    started: Instant::now(),
                    max_slot_len: config.max_slot_len,
                    behaviour: config.behaviour,
                },
                commands: AtomicU64::new(0),
                execs: AtomicU64::new(0),
                stats_file: Mutex::new(None),
                in_flight: AtomicUsize::new(0),
                max_in_flight: AtomicUsize::new(0),
                terminal_width: AtomicUsize::new(DEFAULT_WIDTH),
                nvmet,
            }),
        })
    }

    /// Runs a script and returns what the device would print.
    ///
    /// Counted in [`Engine::execs_served`] (and written to the stats file)
    /// before it returns, so that a client that has its reply finds it
    /// counted.
    pub fn execute(&self, script: &str, opts: &ExecOptions) -> Execution {
        self.inner.execs.fetch_add(1, Ordering::Relaxed);
        let execution = self.run_script(script, opts);
        self.write_stats();
        execution
    }

    fn run_script(&self, script: &str, opts: &ExecOptions) -> Execution {
        let block = match parse_script(script) {
            Ok(block) => block,
            Err(e) => {
                tracing::debug!(error = %e, "script does not parse");
                return Execution {
                    output: format!("{e}\r\n"),
                    failed: true,
                    drop_connection: false,
                };
            }
        };
        let mut session = Session {
            inner: &self.inner,
            last_print: HashMap::new(),
            width: opts.width,
        };
        let finished = Interp::new(&mut session).run(&block);
        let mut output = String::new();
        for line in &finished.lines {
            output.push_str(line);
            output.push_str("\r\n");
        }
        Execution {
            output,
            failed: finished.failed,
            drop_connection: finished.dropped,
        }
    }

    /// The terminal width `print` wraps at for a login that does not ask
    /// for one (`admin+ct`); a login such as `admin+cet120w` sets its own.
    pub fn terminal_width(&self) -> usize {
        self.inner.terminal_width.load(Ordering::Relaxed)
    }

    /// Sets [`Engine::terminal_width`], clamped to [`WIDTH_RANGE`], for
    /// the commands that start from now on; tests choose the width their
    /// output wraps at.
    pub fn set_terminal_width(&self, width: usize) {
        let width = width.clamp(*WIDTH_RANGE.start(), *WIDTH_RANGE.end());
        self.inner.terminal_width.store(width, Ordering::Relaxed);
    }

    /// The shared fault plan.
    pub fn faults(&self) -> Faults {
        self.inner.faults.clone()
    }

    /// The file disks, in the order they were added.
    pub fn disks(&self) -> Vec<DiskView> {
        self.inner
            .lock()
            .saved
            .disks
            .iter()
            .map(|d| DiskView {
                slot: d.slot.clone(),
                file_path: d.file_path.clone(),
                size: d.file_size,
                nqn: d.nvme_tcp_server_nqn.clone(),
                port: d.nvme_tcp_server_port,
                export: d.nvme_tcp_export,
                comment: d.comment.clone(),
                mount_filesystem: d.mount_filesystem,
                allow_host_name: d.nvme_tcp_server_allow_host_name.clone(),
            })
            .collect()
    }

    /// Every regular file under the pools, sorted by name. A pool that
    /// cannot be read lists nothing (and is logged).
    pub fn files(&self) -> Vec<FileView> {
        match self.inner.storage.entries() {
            Ok(entries) => entries
                .into_iter()
                .filter(|e| e.kind == EntryKind::File)
                .map(|e| FileView {
                    name: e.name,
                    size: e.size,
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the pools");
                Vec::new()
            }
        }
    }

    /// Counts an exec request as in flight until the guard is dropped. The SSH
    /// server holds one per request, from its arrival (before any injected
    /// latency) to its reply.
    pub fn track_exec(&self) -> ExecGuard {
        let now = self.inner.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.inner.max_in_flight.fetch_max(now, Ordering::Relaxed);
        ExecGuard {
            engine: self.clone(),
        }
    }

    /// The most exec requests that were in flight at once: how much a client
    /// overlapped its commands.
    pub fn max_execs_in_flight(&self) -> usize {
        self.inner.max_in_flight.load(Ordering::Relaxed)
    }

    /// The NQNs exported through nvmet now, sorted; none without
    /// [`SimConfig::nvmet`].
    pub fn nvmet_exports(&self) -> Vec<String> {
        self.inner
            .exporter()
            .map(|e| e.exported())
            .unwrap_or_default()
    }

    /// Takes nvmet's TCP port `port` away, as when the appliance's target
    /// goes away for a while: connected initiators lose their controllers
    /// and new connections are refused, until [`Engine::nvmet_port_up`].
    /// Disks added meanwhile are exported, but not served on that port.
    pub fn nvmet_port_down(&self, port: u16) -> Result<(), NvmetError> {
        self.inner
            .exporter()
            .ok_or(NvmetError::Disabled)?
            .port_down(port)
    }

    /// Serves `port` again after [`Engine::nvmet_port_down`].
    pub fn nvmet_port_up(&self, port: u16) -> Result<(), NvmetError> {
        self.inner
            .exporter()
            .ok_or(NvmetError::Disabled)?
            .port_up(port)
    }

    /// Removes every subsystem and port this simulator made in nvmet, and
    /// stops exporting (later commands leave nvmet alone). For the end of a
    /// test, so the next one finds configfs clean; dropping the engine
    /// leaves the exports in place, as a restarted appliance keeps them.
    pub fn nvmet_shutdown(&self) -> Result<(), NvmetError> {
        match self.inner.exporter() {
            Some(mut exporter) => exporter.shutdown(),
            None => Ok(()),
        }
    }

    /// How many menu commands have run (including failed ones; not those a
    /// drop-before stopped). Scripting commands such as `:if` do not count.
    pub fn commands_executed(&self) -> u64 {
        self.inner.commands.load(Ordering::Relaxed)
    }

    /// How many scripts have run: one per exec request served (including
    /// scripts that failed, or whose connection a fault dropped).
    pub fn execs_served(&self) -> u64 {
        self.inner.execs.load(Ordering::Relaxed)
    }

    /// The counters, as the stats file holds them: one JSON object,
    /// `{"execs":N,"commands":M}`.
    pub fn stats_json(&self) -> String {
        serde_json::json!({
            "execs": self.execs_served(),
            "commands": self.commands_executed(),
        })
        .to_string()
    }

    /// Writes [`Engine::stats_json`] to `path` now and after every script
    /// from now on (replacing the file whole, so a reader never sees half
    /// of it), for clients that count what they cost without writing code.
    pub fn set_stats_file(&self, path: std::path::PathBuf) -> std::io::Result<()> {
        write_atomically(&path, &self.stats_json())?;
        *self
            .inner
            .stats_file
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(path);
        Ok(())
    }

    fn write_stats(&self) {
        let file = self
            .inner
            .stats_file
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(path) = file.as_ref()
            && let Err(e) = write_atomically(path, &self.stats_json())
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the stats file");
        }
    }
}

/// Replaces `path` with `text` through a temporary sibling and a rename.
fn write_atomically(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, format!("{text}\n"))?;
    std::fs::rename(&tmp, path)
}

/// See [`Engine::track_exec`].
#[derive(Debug)]
pub struct ExecGuard {
    engine: Engine,
}

impl Drop for ExecGuard {
    fn drop(&mut self) {
        self.engine.inner.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The nvmet exports `state` calls for (open to any host while `faults`
/// say the allow list is ignored).
fn exports(storage: &Storage, state: &State, faults: &Faults) -> Vec<nvmet::Export> {
    let mut exports = nvmet::exports(&state.saved.disks, |path| {
        storage.resolve_image(path).ok().map(|image| image.path)
    });
    if faults.ignore_allow_list() {
        for export in &mut exports {
            export.hosts = None;
        }
    }
    exports
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Commands change a copy and swap it in whole, so a state left by a
        // panicking holder is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn exporter(&self) -> Option<MutexGuard<'_, Exporter>> {
        // The exporter puts configfs back itself when a change fails, so
        // one left by a panicking holder is as consistent as it can be.
        self.nvmet
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Runs one command under the lock, saving the state if it changed.
    fn run_locked(
        &self,
        inv: &Invocation,
        last_print: &mut HashMap<Menu, Vec<u64>>,
        width: usize,
    ) -> Result<Outcome, CmdError> {
        let mut state = self.lock();
        let mutates = inv.verb.mutates();
        let mut copy = if mutates { Some(state.clone()) } else { None };
        let target = match copy.as_mut() {
            Some(copy) => copy,
            None => &mut *state,
        };
        let outcome = match commands::run(
            inv,
            &mut Ctx {
                state: target,
                storage: &self.storage,
                faults: &self.faults,
                system: &self.system,
                width,
                last_print,
            },
        ) {
            Ok(outcome) => outcome,
            Err(e) => {
                // A failed change may still have changed files (a subvolume
                // made before a later step failed): listings are rebuilt.
                if mutates {
                    state.invalidate_caches();
                }
                return Err(e);
            }
        };
        if let Some(mut next) = copy {
            // Whatever changed (a file, a size), listings are rebuilt.
            next.invalidate_caches();
            if next.saved != state.saved {
                // nvmet first: a change it refuses fails the command before
                // anything is saved, and it has put itself back.
                let mut exporter = self.exporter();
                if let Some(exporter) = exporter.as_mut() {
                    exporter
                        .sync(&exports(&self.storage, &next, &self.faults))
                        .map_err(|e| CmdError::Io(format!("nvmet: {e}")))?;
                }
                if let Err(e) = persist::save(&self.root, &next.saved) {
                    tracing::error!(error = %e, "cannot save the simulator state");
                    if let Some(exporter) = exporter.as_mut()
                        && let Err(e) = exporter.sync(&exports(&self.storage, &state, &self.faults))
                    {
                        tracing::error!(error = %e, "cannot put the nvmet exports back");
                    }
                    return Err(CmdError::Io(format!("could not save state: {e}")));
                }
            }
            *state = next;
        }
        Ok(outcome)
    }
}

/// One execution's view of the engine: print numbers and terminal width.
struct Session<'e> {
    inner: &'e Inner,
    last_print: HashMap<Menu, Vec<u64>>,
    width: usize,
}

impl CommandRunner for Session<'_> {
    fn run(&mut self, inv: &Invocation) -> Result<Outcome, Flow> {
        let name = canonical_name(inv.menu, inv.verb);
        match self.inner.faults.before_command(&name) {
            Verdict::Drop => {
                tracing::debug!(command = %name, "dropping the connection before the command");
                return Err(Flow::Drop);
            }
            Verdict::Fail => {
                self.inner.commands.fetch_add(1, Ordering::Relaxed);
                return Err(Flow::Error(CmdError::SimulatedFault));
            }
            Verdict::Proceed => {}
        }
        self.inner.commands.fetch_add(1, Ordering::Relaxed);
        let result = self.inner.run_locked(inv, &mut self.last_print, self.width);
        if let Err(e) = &result {
            tracing::debug!(command = %name, error = %e, "command failed");
        }
        if self.inner.faults.after_command(&name) {
            tracing::debug!(command = %name, "dropping the connection after the command");
            return Err(Flow::Drop);
        }
        result.map_err(Flow::Error)
    }
}
