//! The volume operations the driver performs on the RDS.
//!
//! Each operation is one RouterOS script, sent in one exec request (see
//! `docs/routeros-cli.md`), and each is idempotent: repeating it after an unknown
//! outcome (a dropped connection) converges to the same state. The client
//! therefore retries a command whose connection broke under it, a few times.

use std::time::Duration;

use routeros::error::from_messages;
use routeros::{
    CliError, CliErrorKind, Disk, MAX_NEW_SLOT_LEN, NewDisk, Pool, PoolName, PrintOutput, Script,
    Slot, SlotPrefix, SystemResource, ValueError, parse_print_detail, parse_system_resource,
    script,
};
use tracing::{debug, info, instrument, warn};

use crate::config::SshConfig;
use crate::error::{Error, Result};
use crate::transport::{ExecOutput, SshTransport};

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

/// Client of one RDS.
pub struct RdsClient {
    transport: SshTransport,
    /// Extra attempts for a command whose connection broke under it.
    retries: u32,
}

impl RdsClient {
    /// A client that connects on first use.
    pub fn new(config: SshConfig) -> Self {
        Self {
            transport: SshTransport::new(config),
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

    /// Creates a file disk exported over NVMe/TCP, or returns the disk already in
    /// its slot. The size is rounded up to [`SIZE_GRANULARITY`].
    ///
    /// The returned disk is whatever the slot holds: the caller compares it with
    /// what it asked for (an existing disk of another size is not changed here).
    #[instrument(skip_all, fields(volume = %spec.slot))]
    pub async fn create_volume(&self, spec: &NewDisk) -> Result<Disk> {
        let size = round_up_size(spec.size).ok_or_else(|| Error::Conflict {
            slot: spec.slot.to_string(),
            reason: format!("cannot make a volume of {} bytes", spec.size),
        })?;
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
        let out = self.run(script::create_disk(&spec)).await?;
        let printed = parse_print(&out, "create")?;
        if let Some(err) = error_in(&printed, &out) {
            // Two creates raced: the other one added the disk first. Read it.
            if err.kind == CliErrorKind::AlreadyExists
                && let Some(disk) = self.get_volume(&spec.slot).await?
            {
                debug!("created concurrently by another request");
                return Ok(disk);
            }
            return Err(err.into());
        }
        let disk = single_disk(&printed, &spec.slot, &out, "create")?.ok_or_else(|| {
            Error::unexpected(
                "create",
                "the disk was not printed after creating it",
                &out.stdout,
            )
        })?;
        info!(size = disk.size, path = ?disk.file_path, "volume present");
        Ok(disk)
    }

    /// The disk in `slot`, if there is one.
    #[instrument(skip_all, fields(volume = %slot))]
    pub async fn get_volume(&self, slot: &Slot) -> Result<Option<Disk>> {
        let out = self.run(script::get_disk(slot)).await?;
        let printed = parse_print(&out, "get")?;
        if let Some(err) = error_in(&printed, &out) {
            return Err(err.into());
        }
        single_disk(&printed, slot, &out, "get")
    }

    /// Every file disk whose slot starts with `prefix`, in the RDS's order.
    #[instrument(skip_all, fields(prefix = %prefix.prefix()))]
    pub async fn list_volumes(&self, prefix: &SlotPrefix) -> Result<Vec<Disk>> {
        let out = self.run(script::list_disks(prefix)).await?;
        let printed = parse_print(&out, "list")?;
        if let Some(err) = error_in(&printed, &out) {
            return Err(err.into());
        }
        let mut disks = Vec::with_capacity(printed.records.len());
        for record in &printed.records {
            let disk =
                Disk::from_record(record).map_err(|e| Error::unexpected("list", e, &out.stdout))?;
            if disk.kind == "file" && disk.slot.starts_with(prefix.prefix()) {
                disks.push(disk);
            }
        }
        Ok(disks)
    }

    /// Grows the disk in `slot` to at least `size` bytes (rounded up); never
    /// shrinks. Returns the disk as it is afterwards.
    #[instrument(skip_all, fields(volume = %slot))]
    pub async fn grow_volume(&self, slot: &Slot, size: u64) -> Result<Disk> {
        let size = round_up_size(size).ok_or_else(|| Error::Conflict {
            slot: slot.to_string(),
            reason: format!("cannot grow to {size} bytes"),
        })?;
        let out = self.run(script::grow_disk(slot, size)).await?;
        let printed = parse_print(&out, "grow")?;
        if let Some(err) = error_in(&printed, &out) {
            return Err(err.into());
        }
        let disk =
            single_disk(&printed, slot, &out, "grow")?.ok_or_else(|| Error::VolumeNotFound {
                slot: slot.to_string(),
            })?;
        if disk.size < size {
            return Err(Error::Conflict {
                slot: slot.to_string(),
                reason: format!(
                    "asked to grow to {size} bytes, but the disk is {} bytes afterwards",
                    disk.size
                ),
            });
        }
        info!(size = disk.size, "volume grown");
        Ok(disk)
    }

    /// Removes the disk in `slot` and its image file; succeeds if neither exists.
    ///
    /// When the disk is already gone, any image named `<slot>.img` that no disk
    /// uses is removed too: what an earlier delete, cut off between the two
    /// removals, left behind.
    #[instrument(skip_all, fields(volume = %slot))]
    pub async fn delete_volume(&self, slot: &Slot) -> Result<()> {
        let out = self.run(script::delete_disk(slot)).await?;
        let messages: Vec<String> = output_lines(&out).map(str::to_owned).collect();
        if let Some(err) = from_messages(&messages) {
            return Err(err.into());
        }
        check_status(&out)?;
        info!("volume deleted");
        Ok(())
    }

    /// Size and free space of the pool mounted at `pool`.
    #[instrument(skip(self))]
    pub async fn pool(&self, pool: &PoolName) -> Result<Pool> {
        let out = self.run(script::pool(pool)).await?;
        let printed = parse_print(&out, "pool")?;
        if let Some(err) = error_in(&printed, &out) {
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
    }

    /// The RouterOS version and board.
    #[instrument(skip(self))]
    pub async fn system_resource(&self) -> Result<SystemResource> {
        let out = self.run(script::system_resource()).await?;
        match parse_system_resource(&out.stdout) {
            Ok(r) => Ok(r),
            Err(e) => {
                let messages: Vec<String> = output_lines(&out).map(str::to_owned).collect();
                match from_messages(&messages) {
                    Some(err) if err.kind != CliErrorKind::Other => Err(err.into()),
                    _ => Err(Error::unexpected("system resource", e, &out.stdout)),
                }
            }
        }
    }

    /// Sends a script, retrying when the connection broke under it.
    async fn run(&self, script: Script) -> Result<ExecOutput> {
        let text = script.into_text();
        let mut attempt = 0;
        loop {
            match self.transport.exec(&text).await {
                Err(Error::ConnectionLost {
                    outcome_unknown,
                    detail,
                }) if attempt < self.retries => {
                    attempt += 1;
                    warn!(%detail, outcome_unknown, attempt, "connection lost during a command; repeating it");
                    tokio::time::sleep(Duration::from_millis(50) * attempt).await;
                }
                result => return result,
            }
        }
    }
}

/// Non-blank lines of stdout and stderr.
fn output_lines(out: &ExecOutput) -> impl Iterator<Item = &str> {
    out.stdout
        .lines()
        .chain(out.stderr.lines())
        .map(str::trim)
        .filter(|l| !l.is_empty())
}

fn parse_print(out: &ExecOutput, what: &'static str) -> Result<PrintOutput> {
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
fn error_in(printed: &PrintOutput, out: &ExecOutput) -> Option<CliError> {
    from_messages(&printed.messages).or_else(|| check_status(out).err())
}

fn check_status(out: &ExecOutput) -> Result<(), CliError> {
    match out.exit_status {
        Some(status) if status != 0 => Err(CliError {
            kind: CliErrorKind::Other,
            text: format!("exit status {status} without an error message"),
        }),
        _ => Ok(()),
    }
}

/// The one disk printed for `slot`, if any.
fn single_disk(
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
    fn sizes_round_up_to_whole_mebibytes() {
        assert_eq!(round_up_size(1), Some(1 << 20));
        assert_eq!(round_up_size(1 << 20), Some(1 << 20));
        assert_eq!(round_up_size((1 << 20) + 1), Some(2 << 20));
        // 1.5 GiB stays 1.5 GiB (lesson 4 of FIELD-NOTES).
        assert_eq!(round_up_size(3 << 29), Some(3 << 29));
        assert_eq!(round_up_size(100_000_000), Some(96 << 20));
        assert_eq!(round_up_size(0), None);
        assert_eq!(round_up_size(u64::MAX), None);
    }
}
