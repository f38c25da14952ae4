//! Child processes the tier starts (etcd, the API server, the controller
//! manager, the plugins, the sidecars), each logging to a file of its own and
//! stopped when its [`Process`] is dropped, so that no path out of the tier
//! (a failed step, a panic, Ctrl-C) leaves one running. `scripts/k8s-e2e`
//! kills the whole process group as well, for the paths Rust cannot see (a
//! SIGKILL of the tier itself).

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use crate::support::{Context, Outcome, tail};

/// How long a process gets to exit after SIGTERM before it is killed. The
/// plugin gives calls in flight `--shutdown-grace` (25 s by default), which a
/// test never needs; Kubernetes' components exit within 2-3 s.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// A running child process, stopped (SIGTERM, then SIGKILL) on drop.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Process {
    /// Starts `command` with stdin closed and stdout and stderr appended to
    /// `log` (created with its folder).
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Outcome<Process> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).context(format!("cannot create {}", dir.display()))?;
        }
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .context(format!("cannot open {}", log.display()))?;
        let err = out
            .try_clone()
            .context(format!("cannot open {}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .context(format!("cannot start {name} ({command:?})"))?;
        tracing::debug!(name, pid = child.id(), "started");
        Ok(Process {
            name: name.to_owned(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    /// Its name in reports.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        tail(&text, lines)
    }

    /// Its whole log, as far as it was written.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How it exited, if it has; `None` while it runs (or once stopped).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Fails, with the tail of its log, if it is no longer running.
    pub fn ensure_running(&mut self) -> Outcome {
        match self.exited() {
            None if self.child.is_some() => Ok(()),
            None => Err(format!("{} was stopped", self.name)),
            Some(status) => Err(format!(
                "{} exited ({status}); the end of {}:\n{}",
                self.name,
                self.log.display(),
                self.log_tail(20)
            )),
        }
    }

    /// Sends SIGTERM and waits (without blocking the runtime) up to
    /// [`STOP_GRACE`] for it to exit, then kills it.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal(&child, Signal::TERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::warn!(name = self.name, "did not exit on SIGTERM; killing it");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Like [`Process::stop`], blocking the thread (for `Drop`).
    fn stop_blocking(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal(&child, Signal::TERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn signal(child: &Child, signal: Signal) {
    let pid = i32::try_from(child.id()).ok().and_then(Pid::from_raw);
    if let Some(pid) = pid {
        // It may have exited already; then there is nothing to stop.
        let _ = kill_process(pid, signal);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop_blocking();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn logs_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("logs/sleeper.log");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo started; exec sleep 600"]);
        let mut p = Process::spawn("sleeper", cmd, &log).unwrap();
        let started = Instant::now();
        while !p.log().contains("started") && started.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(p.log_tail(1), "started");
        p.ensure_running().unwrap();
        p.stop().await;
        assert!(p.ensure_running().unwrap_err().contains("was stopped"));
    }

    #[tokio::test]
    async fn reports_an_exit_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo no config; exit 3"]);
        let mut p = Process::spawn("quitter", cmd, &dir.path().join("q.log")).unwrap();
        let started = Instant::now();
        while p.exited().is_none() && started.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let e = p.ensure_running().unwrap_err();
        assert!(
            e.contains("quitter exited") && e.contains("no config"),
            "{e}"
        );
    }

    #[test]
    fn drop_stops_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sleep");
        cmd.arg("600");
        let p = Process::spawn("sleeper", cmd, &dir.path().join("s.log")).unwrap();
        let pid = p.child.as_ref().unwrap().id();
        drop(p);
        // Reaped by the drop: /proc has no such process any more (or a new
        // one reused the number, which cannot be our sleep).
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(!cmdline.starts_with("sleep"), "{cmdline}");
    }
}
