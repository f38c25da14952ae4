//! `rds-sim`: runs the RDS simulator as an SSH server.
//!
//! ```text
//! rds-sim --root /tmp/rds --authorized-keys ~/.ssh/id_ed25519.pub --listen 127.0.0.1:2222
//! ```
//!
//! For benchmarks of any client: `--latency-ms 5` adds a delay like a real
//! appliance's before every exec request, and `--stats-file stats.json` keeps
//! `{"commands":M,"execs":N}` up to date after every exec (the same counts
//! are printed on stderr when the simulator exits). `--width` sets the
//! terminal width output wraps at, for logins that do not set one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use rds_sim::server::{ServerConfig, serve};
use rds_sim::{
    BTRFS, Behaviour, Engine, ExistingImage, LoopBtrfs, NvmetConfig, PoolConfig, SimConfig,
    SubvolumeInFolder,
};
use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, HashAlg, PrivateKey, PublicKey};
use tracing::info;

/// A simulator of the MikroTik RDS's RouterOS CLI over SSH.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "RDS_SIM_LISTEN", default_value = "127.0.0.1:2222")]
    listen: SocketAddr,
    /// Folder holding the pools' image files and the simulator's state.
    #[arg(long, env = "RDS_SIM_ROOT")]
    root: PathBuf,
    /// Name (slot and mount point) of the storage pool.
    #[arg(long, env = "RDS_SIM_POOL", default_value = "raid10")]
    pool: String,
    /// Capacity of the pool, in bytes or with a binary unit (K, M, G, T).
    #[arg(long, env = "RDS_SIM_CAPACITY", default_value = "1T", value_parser = parse_capacity)]
    capacity: u64,
    /// The pool's filesystem: `btrfs` makes `/disk/btrfs/subvolume` work on
    /// it, and then the pool's folder (`<root>/<pool>`) must be a mounted
    /// btrfs filesystem, or `--btrfs-loop-size` makes one.
    #[arg(long = "pool-fs", env = "RDS_SIM_POOL_FS", default_value = "xfs", value_parser = ["xfs", "ext4", "btrfs"])]
    pool_fs: String,
    /// With `--pool-fs btrfs`: make the pool a btrfs filesystem of this size
    /// (bytes or with K, M, G, T) on a sparse file,
    /// `<root>/.rds-sim/<pool>.btrfs`, loop-mounted at the pool's folder
    /// while the simulator runs (needs root). An existing file is mounted as
    /// it is.
    #[arg(long = "btrfs-loop-size", env = "RDS_SIM_BTRFS_LOOP_SIZE", value_parser = parse_capacity)]
    btrfs_loop_size: Option<u64>,
    /// What `/disk add` does with an image file that exists already, where
    /// RouterOS's answer is not known.
    #[arg(long = "existing-image", env = "RDS_SIM_EXISTING_IMAGE", value_enum, default_value_t = ExistingImage::KeepAndGrow)]
    existing_image: ExistingImage,
    /// Whether a btrfs subvolume may be made inside a plain folder, where
    /// RouterOS's answer is not known.
    #[arg(long = "subvolume-in-folder", env = "RDS_SIM_SUBVOLUME_IN_FOLDER", value_enum, default_value_t = SubvolumeInFolder::Allow)]
    subvolume_in_folder: SubvolumeInFolder,
    /// Folders created inside the pool (repeatable).
    #[arg(
        long = "directory",
        env = "RDS_SIM_DIRECTORIES",
        value_delimiter = ',',
        default_value = "volumes"
    )]
    directories: Vec<String>,
    /// Host key file; generated (ed25519) if it does not exist.
    #[arg(long, env = "RDS_SIM_HOST_KEY")]
    host_key: PathBuf,
    /// File of public keys allowed to log in, one OpenSSH key per line.
    #[arg(long, env = "RDS_SIM_AUTHORIZED_KEYS")]
    authorized_keys: PathBuf,
    /// RouterOS user name.
    #[arg(long, env = "RDS_SIM_USER", default_value = "admin")]
    user: String,
    /// RouterOS version the simulator reports.
    #[arg(
        long = "routeros-version",
        env = "RDS_SIM_ROUTEROS_VERSION",
        default_value = "7.21.1 (stable)"
    )]
    routeros_version: String,
    /// Export the disks through the kernel's NVMe/TCP target (nvmet), at
    /// this address; needs configfs and the nvmet modules (e.g. in guest/run).
    #[arg(long = "nvmet-traddr", env = "RDS_SIM_NVMET_TRADDR")]
    nvmet_traddr: Option<String>,
    /// Delay added before the script of every exec request runs, in
    /// milliseconds, like a real appliance's round trip.
    #[arg(long = "latency-ms", env = "RDS_SIM_LATENCY_MS", default_value_t = 0)]
    latency_ms: u64,
    /// Keep a JSON file with the execs and commands served so far,
    /// rewritten after every exec.
    #[arg(long = "stats-file", env = "RDS_SIM_STATS_FILE")]
    stats_file: Option<PathBuf>,
    /// Terminal width output wraps at, for logins that do not set one
    /// (`admin+ct`; `admin+cet120w` sets 120).
    #[arg(long, env = "RDS_SIM_WIDTH", default_value_t = rds_sim::DEFAULT_WIDTH, value_parser = parse_width)]
    width: usize,
}

fn parse_capacity(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, shift) = match text.char_indices().last() {
        Some((i, 'K' | 'k')) => (&text[..i], 10),
        Some((i, 'M')) => (&text[..i], 20),
        Some((i, 'G')) => (&text[..i], 30),
        Some((i, 'T')) => (&text[..i], 40),
        _ => (text, 0),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{text:?} is not a size such as 1099511627776 or 1T"))
}

fn parse_width(text: &str) -> Result<usize, String> {
    text.parse::<usize>()
        .ok()
        .filter(|w| rds_sim::WIDTH_RANGE.contains(w))
        .ok_or_else(|| {
            format!(
                "{text:?} is not a terminal width from {} to {}",
                rds_sim::WIDTH_RANGE.start(),
                rds_sim::WIDTH_RANGE.end()
            )
        })
}

fn load_or_create_host_key(path: &Path) -> Result<PrivateKey, String> {
    if path.exists() {
        return russh::keys::load_secret_key(path, None)
            .map_err(|e| format!("cannot load host key {}: {e}", path.display()));
    }
    let key =
        PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).map_err(|e| e.to_string())?;
    let text = key.to_openssh(LineEnding::LF).map_err(|e| e.to_string())?;
    write_private(path, text.as_bytes())
        .map_err(|e| format!("cannot write host key {}: {e}", path.display()))?;
    Ok(key)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

fn load_authorized_keys(path: &Path) -> Result<Vec<PublicKey>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read authorized keys {}: {e}", path.display()))?;
    let keys: Vec<PublicKey> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            PublicKey::from_openssh(l)
                .map_err(|e| format!("{}: bad key line {l:?}: {e}", path.display()))
        })
        .collect::<Result<_, _>>()?;
    if keys.is_empty() {
        return Err(format!("{} holds no keys", path.display()));
    }
    Ok(keys)
}

/// With `--btrfs-loop-size`, mounts the pool's btrfs (making it first if
/// needed); it is unmounted when the returned value drops.
fn loop_btrfs(args: &Args) -> Result<Option<LoopBtrfs>, String> {
    let Some(size) = args.btrfs_loop_size else {
        return Ok(None);
    };
    if args.pool_fs != BTRFS {
        return Err("--btrfs-loop-size needs --pool-fs btrfs".to_owned());
    }
    let state_dir = args.root.join(".rds-sim");
    std::fs::create_dir_all(&state_dir)
        .map_err(|e| format!("cannot create {}: {e}", state_dir.display()))?;
    let image = state_dir.join(format!("{}.btrfs", args.pool));
    let mount_point = args.root.join(&args.pool);
    let mounted = if image.exists() {
        LoopBtrfs::mount(&image, &mount_point)
    } else {
        LoopBtrfs::create(&image, &mount_point, size, &args.pool)
    };
    mounted.map(Some).map_err(|e| e.to_string())
}

async fn run(args: Args) -> Result<(), String> {
    let host_key = load_or_create_host_key(&args.host_key)?;
    let authorized_keys = load_authorized_keys(&args.authorized_keys)?;
    // Kept until the server stops, then unmounted.
    let _btrfs = loop_btrfs(&args)?;
    let engine = Engine::open(SimConfig {
        root: args.root.clone(),
        pools: vec![PoolConfig {
            name: args.pool.clone(),
            fs: args.pool_fs.clone(),
            capacity: args.capacity,
            directories: args.directories.clone(),
        }],
        version: args.routeros_version.clone(),
        max_slot_len: rds_sim::DEFAULT_MAX_SLOT_LEN,
        nvmet: args.nvmet_traddr.clone().map(|traddr| NvmetConfig {
            traddr,
            ..NvmetConfig::default()
        }),
        behaviour: Behaviour {
            existing_image: args.existing_image,
            subvolume_in_folder: args.subvolume_in_folder,
        },
    })
    .map_err(|e| e.to_string())?;
    engine
        .faults()
        .set_latency(std::time::Duration::from_millis(args.latency_ms));
    engine.set_terminal_width(args.width);
    if let Some(path) = &args.stats_file {
        engine
            .set_stats_file(path.clone())
            .map_err(|e| format!("cannot write the stats file {}: {e}", path.display()))?;
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    info!(
        listen = %args.listen,
        root = %args.root.display(),
        host_key = %host_key.public_key().fingerprint(HashAlg::Sha256),
        "rds-sim ready"
    );
    let config = ServerConfig {
        host_key,
        authorized_keys,
        user: args.user,
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    let shutdown = async move {
        tokio::select! {
            () = shutdown => {}
            _ = term.recv() => {}
        }
    };
    let served = engine.clone();
    let result = serve(listener, engine, config, shutdown)
        .await
        .map_err(|e| e.to_string());
    // One plain line, for anyone who ran the simulator by hand.
    eprintln!(
        "rds-sim: served {} execs ({} commands)",
        served.execs_served(),
        served.commands_executed()
    );
    result
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RDS_SIM_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rds-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rds-sim: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacities() {
        assert_eq!(parse_capacity("1T"), Ok(1 << 40));
        assert_eq!(parse_capacity("512M"), Ok(512 << 20));
        assert_eq!(parse_capacity("4096"), Ok(4096));
        assert!(parse_capacity("0").is_err());
        assert!(parse_capacity("1.5G").is_err());
        assert!(parse_capacity("G").is_err());
    }

    #[test]
    fn widths() {
        assert_eq!(parse_width("40"), Ok(40));
        assert!(parse_width("19").is_err());
        assert!(parse_width("4097").is_err());
        assert!(parse_width("wide").is_err());
    }
}
