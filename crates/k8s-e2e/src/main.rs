//! `k8s-e2e`: runs the flows against a real control plane and the real
//! sidecars (see the crate's README); `scripts/k8s-e2e` builds what it needs
//! and runs it.
//!
//! ```text
//! k8s-e2e --tools DIR --plugin PATH --external-snapshotter DIR
//!         --external-snapshotter-client DIR [--from kustomize|helm] [--keep] [FILTER]...
//! k8s-e2e compare KUSTOMIZE.yaml HELM.yaml
//! ```
//!
//! Prints `flow NAME ... ok (1.2s)` or `FAILED` with the reason for each
//! flow, ends with `N passed, M failed`, and exits non-zero if any failed.
//! Every process it started is stopped on any way out (Ctrl-C included).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use k8s_e2e::cluster::{Cluster, Options};
use k8s_e2e::flows;
use k8s_e2e::manifests::Source;
use k8s_e2e::snapshots::Modules;
use tokio::signal::unix::{SignalKind, signal};

/// Longest a flow may take before it counts as failed.
const FLOW_TIMEOUT: Duration = Duration::from_secs(600);

/// Real Kubernetes drives the driver.
#[derive(Debug, Parser)]
#[command(name = "k8s-e2e")]
struct Args {
    /// The folder of the Go tools (what `scripts/go-tools` prints).
    #[arg(long)]
    tools: Option<PathBuf>,
    /// The rds-csi-plugin binary.
    #[arg(long)]
    plugin: Option<PathBuf>,
    /// The module github.com/kubernetes-csi/external-snapshotter/v8 in Go's
    /// module cache (snapshot-controller's manifests).
    #[arg(long)]
    external_snapshotter: Option<PathBuf>,
    /// The module github.com/kubernetes-csi/external-snapshotter/client/v8
    /// in Go's module cache (the snapshot CRDs).
    #[arg(long)]
    external_snapshotter_client: Option<PathBuf>,
    /// The repository (deploy/, charts/).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))]
    repo: PathBuf,
    /// Install from the kustomize overlay or the Helm chart.
    #[arg(long = "from", value_enum, default_value = "kustomize")]
    source: Source,
    /// Keep the scratch folder (logs, kubeconfigs) and print where it is.
    #[arg(long)]
    keep: bool,
    /// List the flows and exit.
    #[arg(long)]
    list: bool,
    /// Run only the flows whose names contain one of these.
    filters: Vec<String>,
}

fn main() -> ExitCode {
    // `k8s-e2e compare KUSTOMIZE.yaml HELM.yaml`: the chart's objects against
    // the kustomize base's (scripts/check-manifests runs it).
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("compare") {
        return compare(&argv[2..]);
    }
    let args = Args::parse();
    if args.list {
        for flow in flows::ALL {
            println!("{}", flow.name);
        }
        return ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("k8s-e2e: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let (Some(tools), Some(plugin), Some(snapshotter), Some(client)) = (
        args.tools.clone(),
        args.plugin.clone(),
        args.external_snapshotter.clone(),
        args.external_snapshotter_client.clone(),
    ) else {
        eprintln!(
            "k8s-e2e: --tools, --plugin, --external-snapshotter and \
             --external-snapshotter-client are required (scripts/k8s-e2e passes them)"
        );
        return ExitCode::from(2);
    };
    let selected = flows::selected(&args.filters);
    if selected.is_empty() {
        eprintln!(
            "k8s-e2e: no flow matches {:?} (--list shows them)",
            args.filters
        );
        return ExitCode::from(2);
    }
    let scratch = match tempfile::Builder::new()
        .prefix("rds-csi-k8s-e2e-")
        .tempdir()
    {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("k8s-e2e: cannot make a scratch folder: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = Options {
        repo: args.repo.clone(),
        tools,
        plugin,
        source: args.source,
        snapshotter: Modules {
            snapshotter,
            client,
        },
        scratch: scratch.path().to_path_buf(),
    };
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        _ => {
            eprintln!("k8s-e2e: cannot handle signals");
            return ExitCode::FAILURE;
        }
    };
    let (passed, failed) = tokio::select! {
        counts = suite(options, &selected) => counts,
        _ = term.recv() => { eprintln!("k8s-e2e: terminated; stopping everything"); (0, 1) }
        _ = int.recv() => { eprintln!("k8s-e2e: interrupted; stopping everything"); (0, 1) }
    };
    // The suite's future is dropped by now, and with it every process.
    if args.keep {
        let kept = scratch.keep();
        println!("k8s-e2e: logs and state kept in {}", kept.display());
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Starts the cluster and runs the flows; returns how many passed and failed
/// (a failed start counts as one failure).
async fn suite(options: Options, selected: &[flows::Flow]) -> (usize, usize) {
    let from = match options.source {
        Source::Kustomize => "deploy/overlays/default (kustomize)",
        Source::Helm => "charts/rds-csi (helm)",
    };
    print_start(&format!(
        "setup: control plane, simulator, {from}, controller replicas"
    ));
    let started = Instant::now();
    let mut cluster = match Cluster::start(options).await {
        Ok(c) => c,
        Err(e) => {
            println!(
                "FAILED ({:.1}s)\n    {}",
                started.elapsed().as_secs_f64(),
                indent(&e)
            );
            return (0, 1);
        }
    };
    println!("ok ({:.1}s)", started.elapsed().as_secs_f64());
    if let Some(pod) = cluster.pods().next() {
        for (container, why) in &pod.not_run {
            println!("  container {container} is not run: {why}");
        }
    }
    let (mut passed, mut failed) = (0, 0);
    for flow in selected {
        print_start(&format!("flow {}", flow.name));
        let started = Instant::now();
        let outcome = match tokio::time::timeout(FLOW_TIMEOUT, (flow.run)(&mut cluster)).await {
            Ok(outcome) => outcome.and_then(|()| cluster.ensure_running()),
            Err(_) => Err(format!("took longer than {FLOW_TIMEOUT:?}")),
        };
        let secs = started.elapsed().as_secs_f64();
        match outcome {
            Ok(()) => {
                passed += 1;
                println!("ok ({secs:.1}s)");
            }
            Err(e) => {
                failed += 1;
                println!("FAILED ({secs:.1}s)\n    {}", indent(&e));
                println!(
                    "    the end of each container's log:\n{}",
                    indent(&cluster.log_tails(8))
                );
            }
        }
    }
    (passed, failed)
}

fn print_start(what: &str) {
    use std::io::Write;
    print!("{what} ... ");
    let _ = std::io::stdout().flush();
}

fn indent(text: &str) -> String {
    text.replace('\n', "\n    ")
}

fn compare(files: &[String]) -> ExitCode {
    let [kustomize, helm] = files else {
        eprintln!("usage: k8s-e2e compare KUSTOMIZE.yaml HELM.yaml");
        return ExitCode::from(2);
    };
    let read = |path: &String| {
        std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {path}: {e}"))
            .and_then(|text| k8s_e2e::manifests::parse_yaml_documents(&text))
    };
    match (read(kustomize), read(helm)) {
        (Ok(k), Ok(h)) => {
            let found = k8s_e2e::compare::differences(&k, &h);
            if found.is_empty() {
                println!(
                    "compare: the chart renders the same {} objects as the kustomize base",
                    h.len()
                );
                ExitCode::SUCCESS
            } else {
                for d in &found {
                    eprintln!("compare: {d}");
                }
                eprintln!(
                    "compare: the chart and the kustomize base differ ({} differences)",
                    found.len()
                );
                ExitCode::FAILURE
            }
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("compare: {e}");
            ExitCode::FAILURE
        }
    }
}
