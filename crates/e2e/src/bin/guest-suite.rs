//! `guest-suite`: runs the end-to-end scenarios, inside the guest of
//! `guest/run` (it refuses to run anywhere without nvmet in configfs).
//!
//! ```text
//! guest/run /tmp/w -- target/debug/guest-suite [--list] [FILTER]...
//! ```
//!
//! Runs the scenarios whose names contain a filter (all without one), one
//! at a time, printing `scenario NAME ... ok (1.2s)` or `FAILED` with the
//! reason, and exits non-zero if any failed. `RUST_LOG` sets the log level
//! (default `warn`).

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use e2e::scenarios::{self, Ctx};

/// Longest a scenario may take before it counts as failed.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(180);

fn main() -> ExitCode {
    // `guest-suite plugin ARGS…` is the driver's plugin itself, so that
    // scenarios can run it as a process of their own and kill it.
    let mut raw = std::env::args_os();
    if std::env::args_os().nth(1).is_some_and(|a| a == "plugin") {
        let _self = raw.next();
        let _plugin = raw.next();
        return rds_csi_plugin::main(std::iter::once("rds-csi-plugin".into()).chain(raw));
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "usage: guest-suite [--list] [FILTER]...\n       guest-suite --bench-stage [RUNS]\n       guest-suite --bench-encryption [RUNS [MIB]]\n       guest-suite --demo [WHERE]\n       guest-suite --csi-sanity host|guest CSI_SANITY_BINARY"
        );
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "--list") {
        for scenario in scenarios::ALL {
            println!("{}", scenario.name);
        }
        return ExitCode::SUCCESS;
    }
    if args.first().is_some_and(|a| a == "--csi-sanity") {
        return csi_sanity(&args[1..]);
    }
    if !Path::new("/sys/kernel/config/nvmet").is_dir() {
        eprintln!(
            "guest-suite: /sys/kernel/config/nvmet does not exist, so this is not the test guest.\n\
             Run it there: guest/run WORKDIR -- {} [FILTER]...  (or: cargo test -p e2e)",
            std::env::args()
                .next()
                .unwrap_or_else(|| "guest-suite".into())
        );
        return ExitCode::from(2);
    }
    if args.first().is_some_and(|a| a == "--demo") {
        let place = args
            .get(1)
            .cloned()
            .unwrap_or_else(|| "this machine's kernel".into());
        return match demo(&place) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("guest-suite: the demo failed: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.first().is_some_and(|a| a == "--bench-stage") {
        let runs = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(5);
        return match bench(runs) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("guest-suite: benchmark failed: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.first().is_some_and(|a| a == "--bench-encryption") {
        let runs = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(5);
        let mib = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(256);
        return match in_scratch("bench-encryption-", |dir| async move {
            e2e::bench_encryption::encryption(&dir, runs.max(1), mib).await
        }) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("guest-suite: benchmark failed: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let selected = scenarios::select(&args);
    if selected.is_empty() {
        eprintln!("guest-suite: no scenario matches {args:?} (see --list)");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("guest-suite: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (mut passed, mut failed) = (0, 0);
    for scenario in selected {
        print!("scenario {} ... ", scenario.name);
        let started = Instant::now();
        let outcome = runtime.block_on(run_one(scenario));
        let took = started.elapsed();
        match outcome {
            Ok(()) => {
                passed += 1;
                println!("ok ({:.1}s)", took.as_secs_f64());
            }
            Err(reason) => {
                failed += 1;
                println!("FAILED ({:.1}s)", took.as_secs_f64());
                for line in reason.lines() {
                    println!("    {line}");
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs `work` on a fresh runtime in a fresh scratch folder under /tmp,
/// removed afterwards.
fn in_scratch<F, Fut>(prefix: &str, work: F) -> Result<(), String>
where
    F: FnOnce(std::path::PathBuf) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let scratch = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .map_err(|e| format!("cannot make a scratch folder: {e}"))?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start tokio: {e}"))?
        .block_on(work(scratch.path().to_path_buf()))
}

/// `--csi-sanity host|guest BINARY`: the community's conformance suite
/// against the whole driver; prints the summary, fails if a spec failed.
/// `guest` needs nvmet (the test guest); `host` runs anywhere as root.
fn csi_sanity(args: &[String]) -> ExitCode {
    let (Some(place), Some(binary)) = (
        args.first().and_then(|p| e2e::sanity::Place::parse(p)),
        args.get(1),
    ) else {
        eprintln!("usage: guest-suite --csi-sanity host|guest CSI_SANITY_BINARY");
        return ExitCode::from(2);
    };
    if place == e2e::sanity::Place::Guest && !Path::new("/sys/kernel/config/nvmet").is_dir() {
        eprintln!("guest-suite: --csi-sanity guest needs nvmet: run it inside guest/run");
        return ExitCode::from(2);
    }
    let binary = std::path::PathBuf::from(binary);
    let mut failed = None;
    let outcome = in_scratch("csi-sanity-", |dir| {
        let failed = &mut failed;
        async move {
            let summary = e2e::sanity::run(&dir, place, &binary).await?;
            print!("{}", summary.render(place));
            *failed = Some(summary.failed());
            Ok(())
        }
    });
    match (outcome, failed) {
        (Ok(()), Some(0)) => ExitCode::SUCCESS,
        (Ok(()), _) => ExitCode::FAILURE,
        (Err(e), _) => {
            eprintln!("guest-suite: csi-sanity could not run: {e}");
            ExitCode::FAILURE
        }
    }
}

fn demo(place: &str) -> Result<(), String> {
    in_scratch("rds-csi-demo-", |dir| async move {
        e2e::demo::run(&dir, place).await
    })
}

fn bench(runs: usize) -> Result<(), String> {
    in_scratch("bench-", |dir| async move {
        e2e::bench::node_stage(&dir, runs.max(1)).await
    })
}

async fn run_one(scenario: scenarios::Scenario) -> Result<(), String> {
    let scratch = tempfile::Builder::new()
        .prefix(&format!("{}-", scenario.name))
        .tempdir_in("/tmp")
        .map_err(|e| format!("cannot make a scratch folder: {e}"))?;
    let ctx = Ctx {
        scratch: scratch.path().to_path_buf(),
    };
    match tokio::time::timeout(SCENARIO_TIMEOUT, (scenario.run)(ctx)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("did not finish within {SCENARIO_TIMEOUT:?}")),
    }
}
