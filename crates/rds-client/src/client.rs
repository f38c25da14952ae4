//! The volume operations the driver performs on the RDS.
//!
//! Each operation is one RouterOS script, sent in one exec request (see
//! `docs/routeros-cli.md`), and each is idempotent: repeating it after an unknown
//! outcome (a dropped connection) converges to the same state. The client
//! therefore retries a command whose connection broke under it, a few times.
//!
//! Every command sent is recorded in [`RdsMetrics`]: its operation (`create`,
//! `get`, `list`, `grow`, `delete`, `export` (who may connect), `pool`,
//! `version`, and `file` and `pools` for set-up checks), its latency (one round
//! trip), and whether it came back without an error: an answer with a
//! RouterOS error message, or no answer at all (the connection broke, the
//! command timed out), is `error`. Commands refused before being sent (the
//! RDS is down, a connection could not be made) are not commands sent; they
//! show in the connection metrics.

use std::time::{Duration, Instant};

use routeros::error::from_messages;
use routeros::script::{NOT_A_FILE_ERROR, OwnerTest};
use routeros::{
    CliError, CliErrorKind, Disk, ExportState, FileType, MAX_NEW_SLOT_LEN, MAX_SIZE, MountedPool,
    NewDisk, Pool, PoolName, PrintOutput, RdsPath, Script, Slot, SlotPrefix, SystemResource,
    ValueError, parse_file_type, parse_print_detail, parse_system_resource, script,
};
use telemetry::RdsMetrics;
use tokio::sync::watch;
use tracing::{debug, info, instrument, warn};

use crate::config::SshConfig;
use crate::error::{Error, Result};
use crate::status::RdsStatus;
use crate::transport::{ExecOutput, SshTransport};

/// The operation names commands are recorded under.
mod op {
    pub const CREATE: &str = "create";
    pub const GET: &str = "get";
    pub const LIST: &str = "list";
    pub const GROW: &str = "grow";
    pub const DELETE: &str = "delete";
    pub const EXPORT: &str = "export";
    pub const POOL: &str = "pool";
    pub const VERSION: &str = "version";
    pub const FILE: &str = "file";
    pub const POOLS: &str = "pools";
}

/// Volumes are made in whole multiples of this many bytes (1 MiB): requests are
/// rounded up, never down, and the size made is what is reported.
pub const SIZE_GRANULARITY: u64 = 1 << 20;

/// Rounds a requested size up to [`SIZE_GRANULARITY`]. `None` for 0 or overflow.
pub fn round_up_size(bytes: u64) -> Option<u64> {
    if bytes == 0 {
        return None;
    }
    bytes.checked_next_multiple_of(SIZE_GRANULARITY)
}

/// The size to send for a request of `bytes`: rounded up to
/// [`SIZE_GRANULARITY`], and refused when that is 0 or more than
/// [`MAX_SIZE`], the largest size RouterOS's signed 64-bit numbers hold in
/// whole MiB. Nothing larger is ever sent: RouterOS could not compare it.
fn checked_size(slot: &Slot, bytes: u64) -> Result<u64> {
    match round_up_size(bytes) {
        Some(size) if size <= MAX_SIZE => Ok(size),
        _ => Err(Error::SizeOutOfRange {
            slot: slot.to_string(),
            size: bytes,
            max: MAX_SIZE,
        }),
    }
}

/// Client of one RDS.
pub struct RdsClient {
    transport: SshTransport,
    /// Extra attempts for a command whose connection broke under it.
    retries: u32,
}

impl RdsClient {
    /// A client that connects on first use, recording into metrics nobody
    /// reads.
    pub fn new(config: SshConfig) -> Self {
        Self::with_metrics(config, RdsMetrics::default())
    }

    /// A client that connects on first use and records its commands and
    /// connections into `metrics`.
    pub fn with_metrics(config: SshConfig, metrics: RdsMetrics) -> Self {
        Self {
            transport: SshTransport::with_metrics(config, metrics),
            retries: 2,
        }
    }

    /// Sets how many times a command whose connection broke under it is repeated
    /// (2 by default). With 0, the caller sees every unknown outcome.
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The transport, for its counters and connection state.
    pub fn transport(&self) -> &SshTransport {
        &self.transport
    }

    /// The RDS as last seen (reachability, last error, RouterOS version),
    /// without I/O.
    pub fn status(&self) -> RdsStatus {
        self.transport.status()
    }

    /// A receiver of [`RdsClient::status`], woken on every change.
    pub fn watch_status(&self) -> watch::Receiver<RdsStatus> {
        self.transport.watch_status()
    }

    /// Checks the RDS now with the cheapest command there is (the system
    /// resource, which also carries the RouterOS version), and records what
    /// it found in the status. A check that gets no answer marks the RDS down
    /// even on a connection that is still open; fails fast like any command
    /// while the RDS is down and the next attempt is not due.
    pub async fn check(&self) -> Result<SystemResource> {
        let result = self.system_resource().await;
        match &result {
            // Refused without trying: the status already says why.
            Err(Error::Unavailable { .. }) => {}
            Err(e) if e.is_transport() => self.transport.status_cell().unanswered(&e.to_string()),
            _ => {}
        }
        result
    }

    /// Creates a file disk exported over NVMe/TCP, or returns the disk already in
    /// its slot. The size is rounded up to [`SIZE_GRANULARITY`].
    ///
    /// The returned disk is whatever the slot holds: the caller compares it with
    /// what it asked for (an existing disk of another size is not changed here).
    ///
    /// A stray image at the path is replaced only if it is a regular file;
    /// anything else there (a folder) is left and reported as
    /// [`Error::NotAFile`].
    #[instrument(skip_all, fields(volume = %spec.slot))]
    pub async fn create_volume(&self, spec: &NewDisk) -> Result<Disk> {
        let size = checked_size(&spec.slot, spec.size)?;
        if spec.slot.as_str().len() > MAX_NEW_SLOT_LEN {
            return Err(Error::InvalidValue(ValueError::TooLong {
                what: "slot of a new disk",
                value: spec.slot.to_string(),
                len: spec.slot.as_str().len(),
                max: MAX_NEW_SLOT_LEN,
            }));
        }
        let spec = NewDisk {
            size,
            ..spec.clone()
        };
        let reply = self.run(op::CREATE, script::create_disk(&spec)).await?;
        let created = reply.read(|out| {
            let printed = parse_print(out, "create")?;
            if let Some(err) = error_in(&printed, out) {
                if let Some(path) = not_a_file(&printed.messages) {
                    return Err(Error::NotAFile { path });
                }
                return Err(err.into());
            }
            single_disk(&printed, &spec.slot, out, "create")?.ok_or_else(|| {
                Error::unexpected(
                    "create",
                    "the disk was not printed after creating it",
                    &out.stdout,
                )
            })
        });
        let disk = match created {
            // Two creates raced: the other one added the disk first. Read it.
            Err(Error::RouterOs(err)) if err.kind == CliErrorKind::AlreadyExists => {
                match self.get_volume(&spec.slot).await? {
                    Some(disk) => {
                        debug!("created concurrently by another request");
                        return Ok(disk);
                    }
                    None => return Err(err.into()),
                }
            }
            other => other?,
        };
        info!(size = disk.size, path = ?disk.file_path, "volume present");
        Ok(disk)
    }

    /// The disk in `slot`, if there is one.
    #[instrument(skip_all, fields(volume = %slot))]
    pub async fn get_volume(&self, slot: &Slot) -> Result<Option<Disk>> {
        let reply = self.run(op::GET, script::get_disk(slot)).await?;
        reply.read(|out| {
            let printed = parse_print(out, "get")?;
            if let Some(err) = error_in(&printed, out) {
                return Err(err.into());
            }
            single_disk(&printed, slot, out, "get")
        })
    }

    /// Every file disk whose slot starts with `prefix`, in the RDS's order.
    #[instrument(skip_all, fields(prefix = %prefix.prefix()))]
    pub async fn list_volumes(&self, prefix: &SlotPrefix) -> Result<Vec<Disk>> {
        let reply = self.run(op::LIST, script::list_disks(prefix)).await?;
        reply.read(|out| {
            let printed = parse_print(out, "list")?;
            if let Some(err) = error_in(&printed, out) {
                return Err(err.into());
            }
            let mut disks = Vec::with_capacity(printed.records.len());
            for record in &printed.records {
                let disk = Disk::from_record(record)
                    .map_err(|e| Error::unexpected("list", e, &out.stdout))?;
                if disk.kind == "file" && disk.slot.starts_with(prefix.prefix()) {
                    disks.push(disk);
                }
            }
            Ok(disks)
        })
    }

    /// Grows the disk in `slot` to at least `size` bytes (rounded up), if
    /// it passes one of `owner` (checked on the RDS, in the same exec);
    /// never shrinks. Returns the disk as it is afterwards, grown or not:
    /// the caller judges a disk that passed no test. One round trip.
    #[instrument(skip_all, fields(volume = %slot))]
    pub async fn grow_volume(&self, slot: &Slot, size: u64, owner: &[OwnerTest]) -> Result<Disk> {
        let size = checked_size(slot, size)?;
        let reply = self
            .run(op::GROW, script::grow_disk(slot, size, owner))
            .await?;
        let disk = reply.read(|out| {
            let printed = parse_print(out, "grow")?;
            if let Some(err) = error_in(&printed, out) {
                return Err(err.into());
            }
            single_disk(&printed, slot, out, "grow")?.ok_or_else(|| Error::VolumeNotFound {
                slot: slot.to_string(),
            })
        })?;
        if disk.size >= size {
            info!(size = disk.size, "volume grown");
        }
        Ok(disk)
    }

    /// Removes the disk in `slot` and its image file, if the disk passes one
    /// of `owner` (checked on the RDS, in the same exec). One round trip.
    ///
    /// `Ok(None)`: the disk is gone (removed now, or before). `Ok(Some)`: a
    /// disk is there but passes no test; it is left alone, for the caller to
    /// judge. With `sweep` and the disk gone, any regular file named
    /// `<slot>.img` that no disk uses is removed too: what an earlier delete,
    /// cut off between the two removals, left behind.
    #[instrument(skip_all, fields(volume = %slot))]
    pub async fn delete_volume(
        &self,
        slot: &Slot,
        owner: &[OwnerTest],
        sweep: bool,
    ) -> Result<Option<Disk>> {
        let reply = self
            .run(op::DELETE, script::delete_disk(slot, owner, sweep))
            .await?;
        let kept = reply.read(|out| {
            let printed = parse_print(out, "delete")?;
            if let Some(err) = error_in(&printed, out) {
                return Err(err.into());
            }
            single_disk(&printed, slot, out, "delete")
        })?;
        if kept.is_none() {
            info!("volume deleted");
        }
        Ok(kept)
    }

    /// Changes who may connect to the disk in `slot` from `expected` to
    /// `new`, if and only if the disk passes one of `owner` and is in the
    /// `expected` state when the script runs (see [`script::set_export`];
    /// `bounce` ends the live connections of hosts the change lets out). Returns the disk as it is
    /// afterwards, whether the change applied or not: the caller compares it
    /// with `new`, and decides again from it when they differ. `None` when
    /// there is no disk in `slot`.
    ///
    /// One round trip. Repeating it after an unknown outcome is safe: once
    /// applied, the condition no longer holds, and the disk is printed as it
    /// is.
    #[instrument(skip_all, fields(volume = %slot))]
    pub async fn set_export(
        &self,
        slot: &Slot,
        owner: &[OwnerTest],
        expected: &ExportState,
        new: &ExportState,
        bounce: bool,
    ) -> Result<Option<Disk>> {
        let reply = self
            .run(
                op::EXPORT,
                script::set_export(slot, owner, expected, new, bounce),
            )
            .await?;
        reply.read(|out| {
            let printed = parse_print(out, "export")?;
            if let Some(err) = error_in(&printed, out) {
                return Err(err.into());
            }
            single_disk(&printed, slot, out, "export")
        })
    }

    /// Size and free space of the pool mounted at `pool`.
    #[instrument(skip(self))]
    pub async fn pool(&self, pool: &PoolName) -> Result<Pool> {
        let reply = self.run(op::POOL, script::pool(pool)).await?;
        reply.read(|out| {
            let printed = parse_print(out, "pool")?;
            if let Some(err) = error_in(&printed, out) {
                return Err(err.into());
            }
            let record = printed
                .records
                .iter()
                .find(|r| r.get("mount-point") == Some(pool.as_str()))
                .ok_or_else(|| Error::PoolNotFound {
                    pool: pool.to_string(),
                })?;
            Pool::from_record(record).map_err(|e| Error::unexpected("pool", e, &out.stdout))
        })
    }

    /// Every pool (every `/disk` entry with a mount point), in the RDS's
    /// order, with its size and free space.
    #[instrument(skip(self))]
    pub async fn pools(&self) -> Result<Vec<MountedPool>> {
        let reply = self.run(op::POOLS, script::pools()).await?;
        reply.read(|out| {
            let printed = parse_print(out, "pools")?;
            if let Some(err) = error_in(&printed, out) {
                return Err(err.into());
            }
            printed
                .records
                .iter()
                .filter_map(MountedPool::from_record)
                .map(|pool| pool.map_err(|e| Error::unexpected("pools", e, &out.stdout)))
                .collect()
        })
    }

    /// What `/file` holds at `path`: nothing, a folder, a pool's mount
    /// point, or something else.
    #[instrument(skip(self))]
    pub async fn file_type(&self, path: &RdsPath) -> Result<FileType> {
        let reply = self.run(op::FILE, script::file_type(path)).await?;
        reply.read(|out| {
            let messages: Vec<String> = output_lines(out).map(str::to_owned).collect();
            match from_messages(&messages) {
                Some(err) if err.kind != CliErrorKind::Other => return Err(err.into()),
                _ => {}
            }
            match parse_file_type(&out.stdout) {
                Some(found) if out.stderr.trim().is_empty() => Ok(found),
                _ => Err(Error::unexpected(
                    "file type",
                    "expected one line: missing, or the entry's type",
                    &format!("{}{}", out.stdout, out.stderr),
                )),
            }
        })
    }

    /// The RouterOS version and board. Also records the version (and
    /// whether it is too old for this driver) in [`RdsClient::status`].
    #[instrument(skip(self))]
    pub async fn system_resource(&self) -> Result<SystemResource> {
        let reply = self.run(op::VERSION, script::system_resource()).await?;
        let resource = reply.read(|out| match parse_system_resource(&out.stdout) {
            Ok(r) => Ok(r),
            Err(e) => {
                let messages: Vec<String> = output_lines(out).map(str::to_owned).collect();
                match from_messages(&messages) {
                    Some(err) if err.kind != CliErrorKind::Other => Err(err.into()),
                    _ => Err(Error::unexpected("system resource", e, &out.stdout)),
                }
            }
        })?;
        self.transport.status_cell().version(
            &resource.version_text,
            resource.version < routeros::MINIMUM_VERSION,
        );
        Ok(resource)
    }

    /// Sends a script, retrying when the connection broke under it. Each
    /// attempt that was sent and got no answer is recorded as a failed
    /// `operation` here; the answer is recorded by [`Reply::read`].
    pub(crate) async fn run(&self, operation: &'static str, script: Script) -> Result<Reply<'_>> {
        let metrics = self.transport.metrics();
        let mut attempt = 0;
        loop {
            let started = Instant::now();
            let result = self.transport.exec(&script).await;
            let elapsed = started.elapsed();
            let error = match result {
                Ok(out) => {
                    return Ok(Reply {
                        out,
                        operation,
                        elapsed,
                        metrics,
                    });
                }
                Err(e) => e,
            };
            if was_sent(&error) {
                metrics.observe_command(operation, false, elapsed);
            }
            match error {
                Error::ConnectionLost {
                    outcome_unknown,
                    detail,
                } if attempt < self.retries => {
                    attempt += 1;
                    warn!(%detail, outcome_unknown, attempt, "connection lost during a command; repeating it");
                    tokio::time::sleep(Duration::from_millis(50) * attempt).await;
                }
                e => return Err(e),
            }
        }
    }
}

/// Whether a failed attempt sent its command: it may have run (the connection
/// broke after sending it, or it timed out). Refusals, failed connections and
/// channels that would not open sent nothing.
fn was_sent(e: &Error) -> bool {
    matches!(
        e,
        Error::ConnectionLost {
            outcome_unknown: true,
            ..
        } | Error::Timeout { .. }
    )
}

/// What the RDS answered to one command, to be read exactly once.
#[must_use = "a reply must be read, which records the command"]
pub(crate) struct Reply<'a> {
    out: ExecOutput,
    operation: &'static str,
    elapsed: Duration,
    metrics: &'a RdsMetrics,
}

impl Reply<'_> {
    /// Reads the answer with `read` and records the command: `ok` when the
    /// answer reads as a success, `error` when RouterOS reported an error or
    /// printed something unreadable.
    pub(crate) fn read<T>(self, read: impl FnOnce(&ExecOutput) -> Result<T>) -> Result<T> {
        self.read_as(read)
    }

    /// [`Reply::read`] for a reader with an error type of its own.
    pub(crate) fn read_as<T, E>(
        self,
        read: impl FnOnce(&ExecOutput) -> Result<T, E>,
    ) -> Result<T, E> {
        let result = read(&self.out);
        self.metrics
            .observe_command(self.operation, result.is_ok(), self.elapsed);
        result
    }
}

/// Non-blank lines of stdout and stderr.
pub(crate) fn output_lines(out: &ExecOutput) -> impl Iterator<Item = &str> {
    out.stdout
        .lines()
        .chain(out.stderr.lines())
        .map(str::trim)
        .filter(|l| !l.is_empty())
}

pub(crate) fn parse_print(out: &ExecOutput, what: &'static str) -> Result<PrintOutput> {
    let mut printed =
        parse_print_detail(&out.stdout).map_err(|e| Error::unexpected(what, e, &out.stdout))?;
    printed.messages.extend(
        out.stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned),
    );
    Ok(printed)
}

/// The error RouterOS reported, judged by the text first and the exit status
/// only when there is no text.
pub(crate) fn error_in(printed: &PrintOutput, out: &ExecOutput) -> Option<CliError> {
    from_messages(&printed.messages).or_else(|| check_status(out).err())
}

pub(crate) fn check_status(out: &ExecOutput) -> Result<(), CliError> {
    match out.exit_status {
        Some(status) if status != 0 => Err(CliError {
            kind: CliErrorKind::Other,
            text: format!("exit status {status} without an error message"),
        }),
        _ => Ok(()),
    }
}

/// The path named by a create's "not a regular file" error, if that is the
/// error printed.
pub(crate) fn not_a_file(messages: &[String]) -> Option<String> {
    messages
        .iter()
        .find_map(|m| m.split_once(NOT_A_FILE_ERROR))
        .map(|(_, path)| format!("/{}", path.trim()))
}

/// The one disk printed for `slot`, if any.
pub(crate) fn single_disk(
    printed: &PrintOutput,
    slot: &Slot,
    out: &ExecOutput,
    what: &'static str,
) -> Result<Option<Disk>> {
    let mut disks = printed
        .records
        .iter()
        .map(|r| Disk::from_record(r).map_err(|e| Error::unexpected(what, e, &out.stdout)));
    let Some(first) = disks.next() else {
        return Ok(None);
    };
    if disks.next().is_some() {
        return Err(Error::unexpected(
            what,
            "more than one disk printed",
            &out.stdout,
        ));
    }
    let disk = first?;
    if disk.slot != slot.as_str() {
        return Err(Error::unexpected(
            what,
            format!("asked for slot {slot}, got {}", disk.slot),
            &out.stdout,
        ));
    }
    Ok(Some(disk))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_commands_that_may_have_run_count_as_sent() {
        assert!(was_sent(&Error::Timeout {
            after: Duration::from_secs(1)
        }));
        assert!(was_sent(&Error::ConnectionLost {
            outcome_unknown: true,
            detail: "x".into()
        }));
        assert!(!was_sent(&Error::ConnectionLost {
            outcome_unknown: false,
            detail: "x".into()
        }));
        assert!(!was_sent(&Error::Unavailable {
            last_error: "x".into(),
            retry_in: Duration::ZERO
        }));
        assert!(!was_sent(&Error::Connect {
            address: "a:22".into(),
            reason: "refused".into()
        }));
    }

    #[test]
    fn sizes_above_what_routeros_holds_are_refused_before_sending() {
        let slot = Slot::new("pvc-1").unwrap();
        assert_eq!(checked_size(&slot, MAX_SIZE).unwrap(), MAX_SIZE);
        assert_eq!(checked_size(&slot, MAX_SIZE - 1).unwrap(), MAX_SIZE);
        for too_big in [MAX_SIZE + 1, i64::MAX as u64, 1 << 63, u64::MAX] {
            assert!(
                matches!(
                    checked_size(&slot, too_big),
                    Err(Error::SizeOutOfRange { max: MAX_SIZE, .. })
                ),
                "{too_big}"
            );
        }
        assert!(checked_size(&slot, 0).is_err());
    }

    #[test]
    fn the_not_a_file_error_names_the_path() {
        let messages = vec![format!("{NOT_A_FILE_ERROR}raid10/volumes/pvc-1.img")];
        assert_eq!(
            not_a_file(&messages).as_deref(),
            Some("/raid10/volumes/pvc-1.img")
        );
        assert_eq!(not_a_file(&["no such item".to_owned()]), None);
    }

    #[test]
    fn sizes_round_up_to_whole_mebibytes() {
        assert_eq!(round_up_size(1), Some(1 << 20));
        assert_eq!(round_up_size(1 << 20), Some(1 << 20));
        assert_eq!(round_up_size((1 << 20) + 1), Some(2 << 20));
        // 1.5 GiB stays 1.5 GiB: another driver rounded sizes down when it
        // formatted them for RouterOS and made 1 GiB of 1.5 GiB asked.
        assert_eq!(round_up_size(3 << 29), Some(3 << 29));
        assert_eq!(round_up_size(100_000_000), Some(96 << 20));
        assert_eq!(round_up_size(0), None);
        assert_eq!(round_up_size(u64::MAX), None);
    }
}
