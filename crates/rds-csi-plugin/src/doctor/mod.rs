//! `rds-csi-plugin doctor`: checks a set-up against a real RDS (or the
//! simulator) and this machine, and prints a checklist, one line per check,
//! each failure followed by the fix.
//!
//! ```text
//! [ok]   SSH reachable: 10.0.0.1:22 accepts TCP connections
//! [FAIL] host key: the RDS at 10.0.0.1:22 presented SHA256:…, but SHA256:… is pinned
//!        fix: if the RDS's key changed on purpose (or the pin is wrong), pin the one it presents: …
//! [skip] key accepted: needs an RDS whose host key is trusted (the host key check failed)
//! ```
//!
//! It takes the plugin's own flags (and environment variables), checked the
//! same way, so it judges exactly the configuration the plugin would run
//! with. The controller's checks (1–6) run in `--mode controller` and `all`,
//! the node's (7–10) in `--mode node` and `all`; a check that needs one that
//! failed is skipped, with the reason. Exit status 0 when nothing failed, 1
//! when something did, 2 for bad flags. Nothing is changed anywhere: only
//! reads, on the RDS and on this machine, unless `--check-fence` asks for
//! the [`fence`] checks, which make (and remove) a scratch disk, or
//! `--check-snapshots` for the [`snapshots`] checks, which make (and remove)
//! scratch volumes and a snapshot.
//!
//! [`verdict`] judges (no I/O, unit-tested); `probe` observes.

pub mod fence;
mod probe;
pub mod snapshots;
pub mod verdict;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use csi_driver::NodeConfig;
use rds_client::{ClientKey, RdsClient, SshConfig};

use crate::config::{Args, ControllerConfig, Mode, PluginConfig};

/// The checks' names, as printed.
pub mod name {
    /// (1) TCP to the RDS's SSH port.
    pub const SSH_REACHABLE: &str = "SSH reachable";
    /// (2) The RDS's host key is the pinned one.
    pub const HOST_KEY: &str = "host key";
    /// (3) The RDS accepts the driver's key.
    pub const KEY_ACCEPTED: &str = "key accepted";
    /// (4) RouterOS is new enough.
    pub const ROUTEROS_VERSION: &str = "RouterOS version";
    /// (5) The volume path is a folder on a pool.
    pub const VOLUME_PATH: &str = "volume path";
    /// (6) TCP to the NVMe/TCP port.
    pub const NVME_PORT: &str = "NVMe/TCP port";
    /// (7) The kernel's NVMe/TCP initiator.
    pub const KERNEL: &str = "kernel NVMe/TCP";
    /// (8) The host NQN.
    pub const HOST_NQN: &str = "host NQN";
    /// (9) The programs the node runs.
    pub const TOOLS: &str = "node tools";
    /// (10) What encrypted volumes need: cryptsetup and dm-crypt.
    pub const ENCRYPTION: &str = "encryption";
    /// (F1) `--check-fence`: a scratch disk to try the fence on.
    pub const FENCE_SCRATCH: &str = "fence: scratch disk";
    /// (F2) Only the listed host may connect.
    pub const FENCE_LISTED_ONLY: &str = "fence: listed host only";
    /// (F3) A list of two hosts.
    pub const FENCE_LIST_OF_TWO: &str = "fence: list of two";
    /// (F4) Unpublishing one host ends its connection, not the other's.
    pub const FENCE_UNPUBLISH_CUTS: &str = "fence: unpublish cuts off";
    /// (F5) Everything made for the checks is removed.
    pub const FENCE_CLEANUP: &str = "fence: clean-up";
    /// (S1) `--check-snapshots`: a scratch volume in a subvolume of its own.
    pub const SNAPSHOT_SCRATCH: &str = "snapshots: scratch volume";
    /// (S2) A marker written over NVMe/TCP.
    pub const SNAPSHOT_MARKER: &str = "snapshots: marker written";
    /// (S3) A snapshot as the driver takes it.
    pub const SNAPSHOT_TAKEN: &str = "snapshots: snapshot";
    /// (S4) A restore, larger, holds the marker.
    pub const SNAPSHOT_RESTORE: &str = "snapshots: restore";
    /// (S5) A clone holds the marker.
    pub const SNAPSHOT_CLONE: &str = "snapshots: clone";
    /// (S6) The snapshot outlives its source.
    pub const SNAPSHOT_OUTLIVES: &str = "snapshots: outlives its volume";
    /// (S7) Everything made for the checks is removed.
    pub const SNAPSHOT_CLEANUP: &str = "snapshots: clean-up";

    /// The controller's checks, in order.
    pub const CONTROLLER: [&str; 6] = [
        SSH_REACHABLE,
        HOST_KEY,
        KEY_ACCEPTED,
        ROUTEROS_VERSION,
        VOLUME_PATH,
        NVME_PORT,
    ];
    /// The node's checks, in order.
    pub const NODE: [&str; 4] = [KERNEL, HOST_NQN, TOOLS, ENCRYPTION];
}

/// Limit for each TCP connection test.
pub const TCP_TIMEOUT: Duration = Duration::from_secs(5);

/// Limit for the SSH connection: TCP, handshake and login together.
pub const SSH_TIMEOUT: Duration = Duration::from_secs(15);

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Passed.
    Ok,
    /// Failed: something to fix.
    Fail,
    /// Not run: not needed in this mode, or needs a check that failed.
    Skip,
}

impl Status {
    /// The tag printed at the start of the line.
    pub fn tag(self) -> &'static str {
        match self {
            Self::Ok => "[ok]",
            Self::Fail => "[FAIL]",
            Self::Skip => "[skip]",
        }
    }
}

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Which check (one of [`name`]).
    pub name: &'static str,
    /// How it came out.
    pub status: Status,
    /// What was found, or why it was skipped.
    pub detail: String,
    /// What to do: the fix of a failure, or a hint for another outcome.
    pub fix: Option<String>,
}

impl Check {
    /// A check that passed.
    pub fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    /// A check that failed, with its fix.
    pub fn fail(name: &'static str, detail: impl Into<String>, fix: String) -> Self {
        Self {
            name,
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix),
        }
    }

    /// A check not run, with the reason.
    pub fn skip(name: &'static str, reason: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Skip,
            detail: reason.into(),
            fix: None,
        }
    }

    /// Adds a hint (printed under the line like a fix).
    pub fn with_hint(mut self, hint: String) -> Self {
        self.fix = Some(hint);
        self
    }

    /// The check as printed: its line, and under a failure the fix (under
    /// another outcome, a hint), indented.
    pub fn render(&self) -> String {
        let mut text = format!("{:<6} {}: {}\n", self.status.tag(), self.name, self.detail);
        if let Some(fix) = &self.fix {
            let label = if self.status == Status::Fail {
                "fix"
            } else {
                "hint"
            };
            text.push_str(&format!("{:7}{label}: {fix}\n", ""));
        }
        text
    }
}

/// The checks made, in order; printed as they are made when `live`.
#[derive(Debug, Default)]
pub struct Report {
    /// Every check, in order.
    pub checks: Vec<Check>,
    live: bool,
}

impl Report {
    /// A report that prints each check to standard output as it is added.
    pub fn live() -> Self {
        Self {
            checks: Vec::new(),
            live: true,
        }
    }

    fn push(&mut self, check: Check) {
        if self.live {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(check.render().as_bytes());
            let _ = out.flush();
        }
        self.checks.push(check);
    }

    fn skip_all(&mut self, names: &[&'static str], reason: &str) {
        for name in names {
            self.push(Check::skip(name, reason));
        }
    }

    /// Whether any check failed.
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Fail)
    }

    /// The last line: how many checks passed, failed and were skipped.
    pub fn summary(&self) -> String {
        let count = |s| self.checks.iter().filter(|c| c.status == s).count();
        format!(
            "doctor: {} failed, {} ok, {} skipped",
            count(Status::Fail),
            count(Status::Ok),
            count(Status::Skip)
        )
    }
}

/// The checks that change things, asked for by flags of the doctor's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OptIn {
    /// `--check-snapshots`: the [`snapshots`] checks.
    pub snapshots: bool,
    /// `--check-fence`: the [`fence`] checks.
    pub fence: bool,
}

/// Makes every check the configuration calls for, in order; then the
/// checks `opt_in` asks for.
pub async fn run(config: &PluginConfig, opt_in: OptIn, report: &mut Report) {
    match &config.controller {
        Some(c) => controller(c, report).await,
        None => report.skip_all(
            &name::CONTROLLER,
            &format!("{}: the controller is not run here", mode_flag(config.mode)),
        ),
    }
    match &config.node {
        Some(n) => node(n, report).await,
        None => report.skip_all(
            &name::NODE,
            &format!(
                "{}: the node service is not run here",
                mode_flag(config.mode)
            ),
        ),
    }
    if opt_in.snapshots {
        snapshot_checks(config, report).await;
    }
    if opt_in.fence {
        fence_checks(config, report).await;
    }
}

/// The `--check-fence` checks, when everything they need is there.
async fn fence_checks(config: &PluginConfig, report: &mut Report) {
    let Some((c, n, client)) = opt_in_client(config, &fence::CHECKS, "--check-fence", report)
    else {
        return;
    };
    fence::run(c, n, &client, report).await;
    client.transport().close().await;
}

/// The `--check-snapshots` checks, when everything they need is there.
async fn snapshot_checks(config: &PluginConfig, report: &mut Report) {
    let Some((c, n, client)) =
        opt_in_client(config, &snapshots::CHECKS, "--check-snapshots", report)
    else {
        return;
    };
    snapshots::run(c, n, &client, report).await;
    client.transport().close().await;
}

/// What the opt-in checks `checks` (asked for by `flag`) need: both
/// configurations, the checks they rest on passed, and a client of the RDS;
/// `None` once they are skipped, saying why.
fn opt_in_client<'a>(
    config: &'a PluginConfig,
    checks: &[&'static str],
    flag: &str,
    report: &mut Report,
) -> Option<(&'a ControllerConfig, &'a NodeConfig, RdsClient)> {
    let (Some(c), Some(n)) = (&config.controller, &config.node) else {
        report.skip_all(
            checks,
            &format!(
                "{flag} needs --mode all: SSH to the RDS (the controller's flags) and \
                 this machine's NVMe/TCP initiator (the node's)"
            ),
        );
        return None;
    };
    // The NVMe/TCP port may only listen while a disk is exported, which
    // the scratch disk or volume will be: its check is not needed here.
    let needed = [
        name::KEY_ACCEPTED,
        name::ROUTEROS_VERSION,
        name::VOLUME_PATH,
        name::KERNEL,
    ];
    let passed = |n: &str| {
        report
            .checks
            .iter()
            .any(|c| c.name == n && c.status == Status::Ok)
    };
    if let Some(missing) = needed.iter().find(|n| !passed(n)) {
        report.skip_all(checks, &format!("needs the {missing} check to pass"));
        return None;
    }
    let Ok(key) = ClientKey::load(&c.rds.private_key) else {
        report.skip_all(checks, "needs a usable key (--rds-private-key)");
        return None;
    };
    let mut ssh = SshConfig::new(
        c.rds.address.clone(),
        c.rds.port,
        c.rds.user.clone(),
        key,
        c.rds.host_key.clone(),
    );
    ssh.connect_timeout = SSH_TIMEOUT;
    ssh.command_timeout = c.rds.command_timeout;
    let client = RdsClient::new(ssh);
    Some((c, n, client))
}

fn mode_flag(mode: Mode) -> &'static str {
    match mode {
        Mode::Controller => "--mode controller",
        Mode::Node => "--mode node",
        Mode::All => "--mode all",
    }
}

async fn controller(c: &ControllerConfig, report: &mut Report) {
    let rds = &c.rds;
    let reach = probe::tcp(&rds.address, rds.port, TCP_TIMEOUT).await;
    let reachable = reach.is_ok();
    report.push(verdict::ssh_reachable(&rds.address, rds.port, &reach));
    if reachable {
        over_ssh(c, report).await;
    } else {
        report.skip_all(
            &name::CONTROLLER[1..5],
            "needs the RDS's SSH port to answer (SSH reachable failed)",
        );
    }
    let defaults = &c.defaults;
    let nvme = probe::tcp(&defaults.nvme_address, defaults.nvme_port, TCP_TIMEOUT).await;
    report.push(verdict::nvme_port(
        &defaults.nvme_address,
        defaults.nvme_port,
        &nvme,
    ));
}

/// Checks 2 to 5, which need SSH.
async fn over_ssh(c: &ControllerConfig, report: &mut Report) {
    let rds = &c.rds;
    let after_login = [name::ROUTEROS_VERSION, name::VOLUME_PATH];
    let key = match ClientKey::load(&rds.private_key) {
        Ok(key) => key,
        Err(e) => {
            report.push(Check::skip(
                name::HOST_KEY,
                "needs a usable key (--rds-private-key) to connect",
            ));
            report.push(verdict::key_unusable(&rds.private_key, &e));
            report.skip_all(
                &after_login,
                "needs a login to the RDS (key accepted failed)",
            );
            return;
        }
    };
    let public_key = key.public_openssh();
    let mut ssh = SshConfig::new(
        rds.address.clone(),
        rds.port,
        rds.user.clone(),
        key,
        rds.host_key.clone(),
    );
    ssh.connect_timeout = SSH_TIMEOUT;
    ssh.command_timeout = rds.command_timeout;
    let client = RdsClient::new(ssh);
    let seen = probe::ssh(&client).await;
    let host_key = verdict::host_key(&rds.host_key, &seen);
    let key_accepted = verdict::key_accepted(&rds.user, &public_key, &seen);
    let reason = if host_key.status == Status::Fail {
        "needs a trusted SSH connection (host key failed)"
    } else {
        "needs a login to the RDS (key accepted failed)"
    };
    report.push(host_key);
    report.push(key_accepted);
    if seen.result.is_err() {
        report.skip_all(&after_login, reason);
        return;
    }
    report.push(verdict::routeros_version(&client.system_resource().await));
    let path = &c.defaults.volume_path;
    report.push(verdict::volume_path(
        path,
        &probe::volume_path(&client, path).await,
    ));
    client.transport().close().await;
}

/// Checks 7 to 10.
async fn node(n: &NodeConfig, report: &mut Report) {
    report.push(verdict::kernel(&probe::kernel(&n.host_root)));
    report.push(verdict::host_nqn(&nvme_host::find_host_nqn(
        &n.etc_nvme,
        &n.state_dir,
    )));
    let path = std::env::var_os("PATH");
    report.push(verdict::tools(&probe::tools(path.as_deref()).await));
    report.push(verdict::encryption(
        &probe::encryption(&n.host_root, path.as_deref()).await,
    ));
}

/// The id of the doctor's own flag `--check-fence`.
const CHECK_FENCE: &str = "check_fence";
/// The id of the doctor's own flag `--check-snapshots`.
const CHECK_SNAPSHOTS: &str = "check_snapshots";

/// The `doctor` subcommand: `args` are the program name and then the
/// plugin's flags (without the word `doctor`). Exit status 0 when nothing
/// failed, 1 when a check failed, 2 for bad flags.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let mut command = Args::command()
        .arg(
            clap::Arg::new(CHECK_SNAPSHOTS)
                .long("check-snapshots")
                .action(clap::ArgAction::SetTrue)
                .help(
                    "Also check that the RDS makes snapshots, restores and clones as the \
                     driver assumes: makes a small scratch volume in --volume-path, writes a \
                     marker over NVMe/TCP, snapshots, restores and clones it, reads the \
                     marker back, and removes everything again. Needs --mode all (SSH and \
                     this machine's NVMe/TCP initiator)",
                ),
        )
        .arg(
            clap::Arg::new(CHECK_FENCE)
                .long("check-fence")
                .action(clap::ArgAction::SetTrue)
                .help(
                    "Also check that the RDS fences volumes as the driver assumes: makes a \
                     small scratch disk, connects to it as two host identities, and removes \
                     it again. Needs --mode all (SSH and this machine's NVMe/TCP initiator)",
                ),
        )
        .name("rds-csi-plugin doctor")
        .bin_name("rds-csi-plugin doctor")
        .about(
            "Checks the set-up against the RDS and this machine, and prints a checklist with \
             the fix of each failure. Takes the plugin's flags (and environment variables); \
             changes nothing, unless --check-fence or --check-snapshots is given.",
        )
        .after_help(
            "Exit status: 0 when nothing failed, 1 when a check failed, 2 for bad flags. \
             --mode controller checks only the controller's side, --mode node only the node's.",
        );
    let matches = match command.try_get_matches_from_mut(args) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let args = match Args::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(2);
        }
    };
    // The checklist is the output; logs (on standard error) only when asked.
    let level = match matches.value_source("log_level") {
        Some(ValueSource::DefaultValue) | None => "error",
        Some(_) => args.log_level.as_str(),
    };
    if let Err(e) = crate::init_logging(&args, level) {
        eprintln!("rds-csi-plugin doctor: {e}");
        return ExitCode::from(2);
    }
    let config = match PluginConfig::from_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rds-csi-plugin doctor: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rds-csi-plugin doctor: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "rds-csi-plugin {} doctor, {}",
        crate::VERSION,
        mode_flag(config.mode)
    );
    drop(out);
    let opt_in = OptIn {
        snapshots: matches.get_flag(CHECK_SNAPSHOTS),
        fence: matches.get_flag(CHECK_FENCE),
    };
    let mut report = Report::live();
    runtime.block_on(run(&config, opt_in, &mut report));
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", report.summary());
    let _ = out.flush();
    if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_tagged_and_fixes_indented() {
        assert_eq!(
            Check::ok(name::SSH_REACHABLE, "10.0.0.1:22 accepts TCP connections").render(),
            "[ok]   SSH reachable: 10.0.0.1:22 accepts TCP connections\n"
        );
        assert_eq!(
            Check::fail(name::NVME_PORT, "nothing listens", "open it".into()).render(),
            "[FAIL] NVMe/TCP port: nothing listens\n       fix: open it\n"
        );
        assert_eq!(
            Check::skip(name::HOST_KEY, "not checked")
                .with_hint("pin it".into())
                .render(),
            "[skip] host key: not checked\n       hint: pin it\n"
        );
    }

    #[test]
    fn the_summary_counts_and_any_failure_fails() {
        let mut report = Report::default();
        report.push(Check::ok(name::KERNEL, "fine"));
        report.push(Check::skip(name::HOST_NQN, "later"));
        assert!(!report.failed());
        report.push(Check::fail(name::TOOLS, "missing", "install".into()));
        assert!(report.failed());
        assert_eq!(report.summary(), "doctor: 1 failed, 1 ok, 1 skipped");
    }
}
