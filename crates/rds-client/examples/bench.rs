//! Benchmark of the RDS client against the simulator over loopback SSH.
//!
//! ```text
//! cargo run --release -p rds-client --example bench -- --latency-ms 5 --ops 100
//! ```
//!
//! Prints p50/p99 latency, throughput and SSH round trips per operation for
//! create, get and delete, first one at a time and then all at once, and checks
//! the targets: create in at most 2 round trips, and 100 concurrent creates in
//! under a tenth of the time of 100 serial ones.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark stops at the first error

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use rds_client::RdsClient;
use rds_sim::SimConfig;
use rds_sim::testing::TestSim;
use routeros::{Comment, NewDisk, Nqn, RdsPath, Slot};

#[derive(Parser)]
struct Args {
    /// Latency the simulator adds to every command, in milliseconds.
    #[arg(long, default_value_t = 5)]
    latency_ms: u64,
    /// Operations per phase.
    #[arg(long, default_value_t = 100)]
    ops: usize,
    /// Size of each volume, in MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Create,
    Get,
    Delete,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Get => "get",
            Op::Delete => "delete",
        }
    }
}

struct Phase {
    wall: Duration,
    latencies: Vec<Duration>,
    round_trips: u64,
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
        Op::Delete => client.delete_volume(&s.slot).await.unwrap(),
    }
    start.elapsed()
}

async fn phase(client: &Arc<RdsClient>, op: Op, n: usize, size: u64, concurrent: bool) -> Phase {
    let before = client.transport().stats().snapshot().commands;
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
        round_trips: client.transport().stats().snapshot().commands - before,
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
    sim.engine
        .faults()
        .set_latency(Duration::from_millis(args.latency_ms));
    let mut config = test_support::sim::client_config(&sim);
    config.command_timeout = Duration::from_secs(120);
    let client = Arc::new(RdsClient::new(config));
    client.system_resource().await.unwrap(); // connect outside the measurements
    let size = args.size_mib << 20;
    let n = args.ops;

    println!(
        "rds-client against rds-sim over loopback SSH: {n} operations per phase, {} ms injected latency per command, {} concurrent channels at most",
        args.latency_ms,
        client.transport().config().max_concurrent_commands
    );
    println!(
        "{:<8} {:<10} {:>10} {:>10} {:>10} {:>12} {:>12}",
        "op", "mode", "wall ms", "p50 ms", "p99 ms", "ops/s", "trips/op"
    );
    let mut walls = Vec::new();
    let mut create_trips = 0.0f64;
    for concurrent in [false, true] {
        for op in [Op::Create, Op::Get, Op::Delete] {
            let p = phase(&client, op, n, size, concurrent).await;
            let trips = p.round_trips as f64 / n as f64;
            println!(
                "{:<8} {:<10} {:>10.1} {:>10.2} {:>10.2} {:>12.1} {:>12.2}",
                op.name(),
                if concurrent { "concurrent" } else { "serial" },
                ms(p.wall),
                ms(percentile(&p.latencies, 0.5)),
                ms(percentile(&p.latencies, 0.99)),
                n as f64 / p.wall.as_secs_f64(),
                trips,
            );
            if op == Op::Create {
                walls.push(p.wall);
                create_trips = create_trips.max(trips);
            }
        }
    }
    let ratio = walls[1].as_secs_f64() / walls[0].as_secs_f64();
    println!();
    println!(
        "target: create in <= 2 round trips: {create_trips:.2} -> {}",
        verdict(create_trips <= 2.0)
    );
    println!(
        "target: {n} concurrent creates < 1/10 of {n} serial: {:.1} ms vs {:.1} ms (ratio {ratio:.3}) -> {}",
        ms(walls[1]),
        ms(walls[0]),
        verdict(ratio < 0.1)
    );
    assert_eq!(sim.engine.disks().len(), 0, "every volume was deleted");
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT MET" }
}
