//! Benchmark of the RDS client against the simulator over loopback SSH.
//!
//! ```text
//! cargo run --release -p rds-client --example bench -- --latency-ms 5 --ops 100
//! ```
//!
//! Runs create, get, expand and delete, first one at a time and then all at
//! once, and prints for each: wall time, p50/p99 latency, throughput, and the
//! SSH execs and RouterOS commands per operation as the simulator counted
//! them (its `execs_served` and `commands_executed`, the numbers `rds-sim
//! --stats-file` writes for any other client). Then it checks the targets:
//! create, expand and delete in one exec each, and 100 concurrent creates in
//! under a tenth of the time of 100 serial ones. The injected latency stands
//! in for a real appliance's round trip.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark stops at the first error

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use rds_client::RdsClient;
use rds_sim::SimConfig;
use rds_sim::testing::TestSim;
use routeros::{Comment, CommentPattern, NewDisk, Nqn, OwnerTest, RdsPath, Slot};

/// Benchmark of the RDS client against the simulator over loopback SSH.
#[derive(Parser)]
struct Args {
    /// Latency the simulator adds to every command, in milliseconds.
    #[arg(long, default_value_t = 5)]
    latency_ms: u64,
    /// Operations per phase.
    #[arg(long, default_value_t = 100)]
    ops: usize,
    /// Size of each volume, in MiB (expand doubles it).
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Create,
    Get,
    Expand,
    Delete,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Get => "get",
            Op::Expand => "expand",
            Op::Delete => "delete",
        }
    }
}

struct Phase {
    wall: Duration,
    latencies: Vec<Duration>,
    execs: u64,
    commands: u64,
}

fn spec(i: usize, size: u64) -> NewDisk {
    let name = format!("pvc-bench-{i}");
    NewDisk {
        slot: Slot::new(&name).unwrap(),
        file_path: RdsPath::new(&format!("/raid10/volumes/{name}.img")).unwrap(),
        size,
        nvme_port: 4420,
        nqn: Nqn::new(&format!("nqn.2000-02.com.mikrotik:{name}")).unwrap(),
        comment: Comment::new(&format!("rds-csi:{name}")).unwrap(),
    }
}

/// The owner test the driver would send: the comment names this volume.
fn owner(i: usize) -> Vec<OwnerTest> {
    vec![OwnerTest::CommentMatches(
        CommentPattern::new(&format!("^rds-csi:pvc-bench-{i}( |$)")).unwrap(),
    )]
}

async fn one(client: &RdsClient, op: Op, i: usize, size: u64) -> Duration {
    let s = spec(i, size);
    let start = Instant::now();
    match op {
        Op::Create => {
            client.create_volume(&s).await.unwrap();
        }
        Op::Get => {
            client.get_volume(&s.slot).await.unwrap().unwrap();
        }
        Op::Expand => {
            let disk = client
                .grow_volume(&s.slot, 2 * size, &owner(i))
                .await
                .unwrap();
            assert!(disk.size >= 2 * size);
        }
        Op::Delete => {
            let kept = client
                .delete_volume(&s.slot, &owner(i), true)
                .await
                .unwrap();
            assert!(kept.is_none());
        }
    }
    start.elapsed()
}

async fn phase(
    client: &Arc<RdsClient>,
    sim: &TestSim,
    op: Op,
    n: usize,
    size: u64,
    concurrent: bool,
) -> Phase {
    let (execs, commands) = (sim.engine.execs_served(), sim.engine.commands_executed());
    let start = Instant::now();
    let mut latencies = Vec::with_capacity(n);
    if concurrent {
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let client = Arc::clone(client);
                tokio::spawn(async move { one(&client, op, i, size).await })
            })
            .collect();
        for t in tasks {
            latencies.push(t.await.unwrap());
        }
    } else {
        for i in 0..n {
            latencies.push(one(client, op, i, size).await);
        }
    }
    let wall = start.elapsed();
    latencies.sort();
    Phase {
        wall,
        latencies,
        execs: sim.engine.execs_served() - execs,
        commands: sim.engine.commands_executed() - commands,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let dir = tempfile::tempdir().unwrap();
    let sim = TestSim::start(SimConfig::single_pool(dir.path(), "raid10", 1 << 50))
        .await
        .unwrap();
    let mut config = test_support::sim::client_config(&sim);
    config.command_timeout = Duration::from_secs(120);
    let client = Arc::new(RdsClient::new(config));
    client.system_resource().await.unwrap(); // connect outside the measurements
    sim.engine
        .faults()
        .set_latency(Duration::from_millis(args.latency_ms));
    let size = args.size_mib << 20;
    let n = args.ops;

    println!(
        "rds-client against rds-sim over loopback SSH: {n} operations per phase, {} ms injected latency per command, {} concurrent channels at most",
        args.latency_ms,
        client.transport().config().max_concurrent_commands
    );
    println!(
        "{:<8} {:<10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "op", "mode", "wall ms", "p50 ms", "p99 ms", "ops/s", "execs/op", "cmds/op"
    );
    let mut create_walls = Vec::new();
    let mut worst_execs = [0.0f64; 3];
    for concurrent in [false, true] {
        for op in [Op::Create, Op::Get, Op::Expand, Op::Delete] {
            let p = phase(&client, &sim, op, n, size, concurrent).await;
            let execs = p.execs as f64 / n as f64;
            println!(
                "{:<8} {:<10} {:>10.1} {:>9.2} {:>9.2} {:>9.1} {:>9.2} {:>9.2}",
                op.name(),
                if concurrent { "concurrent" } else { "serial" },
                ms(p.wall),
                ms(percentile(&p.latencies, 0.5)),
                ms(percentile(&p.latencies, 0.99)),
                n as f64 / p.wall.as_secs_f64(),
                execs,
                p.commands as f64 / n as f64,
            );
            let slot = match op {
                Op::Create => {
                    create_walls.push(p.wall);
                    0
                }
                Op::Expand => 1,
                Op::Delete => 2,
                Op::Get => continue,
            };
            worst_execs[slot] = worst_execs[slot].max(execs);
        }
    }
    let ratio = create_walls[1].as_secs_f64() / create_walls[0].as_secs_f64();
    println!();
    for (op, execs) in ["create", "expand", "delete"].iter().zip(worst_execs) {
        println!(
            "target: {op} in 1 exec: {execs:.2} -> {}",
            verdict(execs <= 1.0)
        );
    }
    println!(
        "target: {n} concurrent creates < 1/10 of {n} serial: {:.1} ms vs {:.1} ms (ratio {ratio:.3}) -> {}",
        ms(create_walls[1]),
        ms(create_walls[0]),
        verdict(ratio < 0.1)
    );
    assert_eq!(sim.engine.disks().len(), 0, "every volume was deleted");
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT MET" }
}
