//! Benchmark of ControllerPublishVolume and ControllerUnpublishVolume: the
//! controller service in-process, against the simulator over loopback SSH.
//!
//! ```text
//! cargo run --release -p rds-csi-plugin --example bench_attach -- --latency-ms 5 --volumes 100
//! ```
//!
//! Prints, for publish and unpublish, one volume at a time and all at once,
//! the wall time, p50/p99 latency and SSH round trips per call; then the
//! round trips of the first publish after a restart (when the controller
//! has not seen the volume yet); and checks the targets: one round trip per
//! publish and per unpublish, and 100 concurrent publishes of different
//! volumes in under a tenth of the time of 100 serial ones.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark stops at the first error

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use csi_driver::{ControllerService, Defaults, FsType};
use csi_proto::v1::controller_server::Controller;
use csi_proto::v1::volume_capability::access_mode::Mode;
use csi_proto::v1::volume_capability::{AccessMode, AccessType, MountVolume};
use csi_proto::v1::{
    CapacityRange, ControllerPublishVolumeRequest, ControllerUnpublishVolumeRequest,
    CreateVolumeRequest, VolumeCapability,
};
use rds_client::RdsClient;
use rds_sim::SimConfig;
use rds_sim::testing::TestSim;
use routeros::RdsPath;
use tonic::Request;

const PREFIX: &str = "nqn.2024-01.io.srvlab.csi.rds:";

#[derive(Parser)]
struct Args {
    /// Latency the simulator adds to every command, in milliseconds.
    #[arg(long, default_value_t = 5)]
    latency_ms: u64,
    /// Volumes published per phase.
    #[arg(long, default_value_t = 100)]
    volumes: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Publish,
    Unpublish,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Publish => "publish",
            Op::Unpublish => "unpublish",
        }
    }
}

struct Phase {
    wall: Duration,
    latencies: Vec<Duration>,
    round_trips: u64,
}

fn rwo() -> VolumeCapability {
    VolumeCapability {
        access_mode: Some(AccessMode {
            mode: Mode::SingleNodeWriter as i32,
        }),
        access_type: Some(AccessType::Mount(MountVolume::default())),
    }
}

fn node() -> String {
    nvme_host::fence::node_host_nqn(PREFIX, "bench-node").unwrap()
}

async fn one(controller: &ControllerService, op: Op, id: &str) -> Duration {
    let start = Instant::now();
    match op {
        Op::Publish => {
            controller
                .controller_publish_volume(Request::new(ControllerPublishVolumeRequest {
                    volume_id: id.to_owned(),
                    node_id: node(),
                    volume_capability: Some(rwo()),
                    ..Default::default()
                }))
                .await
                .unwrap();
        }
        Op::Unpublish => {
            controller
                .controller_unpublish_volume(Request::new(ControllerUnpublishVolumeRequest {
                    volume_id: id.to_owned(),
                    node_id: node(),
                    ..Default::default()
                }))
                .await
                .unwrap();
        }
    }
    start.elapsed()
}

async fn phase(
    controller: &Arc<ControllerService>,
    sim: &TestSim,
    op: Op,
    ids: &[String],
    concurrent: bool,
) -> Phase {
    // Every script is one SSH exec: the simulator counts the round trips.
    let before = sim.engine.execs_served();
    let start = Instant::now();
    let mut latencies = Vec::with_capacity(ids.len());
    if concurrent {
        let tasks: Vec<_> = ids
            .iter()
            .map(|id| {
                let controller = Arc::clone(controller);
                let id = id.clone();
                tokio::spawn(async move { one(&controller, op, &id).await })
            })
            .collect();
        for t in tasks {
            latencies.push(t.await.unwrap());
        }
    } else {
        for id in ids {
            latencies.push(one(controller, op, id).await);
        }
    }
    let wall = start.elapsed();
    latencies.sort();
    Phase {
        wall,
        latencies,
        round_trips: sim.engine.execs_served() - before,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn controller_on(client: &Arc<RdsClient>) -> Arc<ControllerService> {
    Arc::new(ControllerService::new(
        Arc::clone(client),
        Defaults {
            volume_path: RdsPath::new("/raid10/volumes").unwrap(),
            nvme_address: "127.0.0.1".into(),
            nvme_port: 4420,
            fs_type: FsType::Ext4,
        },
        PREFIX,
    ))
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
    let controller = controller_on(&client);

    // The volumes, made before any latency is injected.
    let n = args.volumes;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let volume = controller
            .create_volume(Request::new(CreateVolumeRequest {
                name: format!("pvc-{i:08x}-0000-4000-8000-000000000000"),
                capacity_range: Some(CapacityRange {
                    required_bytes: 1 << 30,
                    limit_bytes: 0,
                }),
                volume_capabilities: vec![rwo()],
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner()
            .volume
            .unwrap();
        ids.push(volume.volume_id);
    }
    sim.engine
        .faults()
        .set_latency(Duration::from_millis(args.latency_ms));

    println!(
        "controller publish/unpublish against rds-sim over loopback SSH: {n} volumes per phase, {} ms injected latency per command, {} concurrent channels at most",
        args.latency_ms,
        client.transport().config().max_concurrent_commands
    );
    println!(
        "{:<10} {:<10} {:>10} {:>10} {:>10} {:>12} {:>12}",
        "call", "mode", "wall ms", "p50 ms", "p99 ms", "calls/s", "trips/call"
    );
    let mut publish_walls = Vec::new();
    let mut worst_trips = 0.0f64;
    for concurrent in [false, true] {
        for op in [Op::Publish, Op::Unpublish] {
            let p = phase(&controller, &sim, op, &ids, concurrent).await;
            let trips = p.round_trips as f64 / n as f64;
            println!(
                "{:<10} {:<10} {:>10.1} {:>10.2} {:>10.2} {:>12.1} {:>12.2}",
                op.name(),
                if concurrent { "concurrent" } else { "serial" },
                ms(p.wall),
                ms(percentile(&p.latencies, 0.5)),
                ms(percentile(&p.latencies, 0.99)),
                n as f64 / p.wall.as_secs_f64(),
                trips,
            );
            worst_trips = worst_trips.max(trips);
            if op == Op::Publish {
                publish_walls.push(p.wall);
            }
        }
    }

    // A restarted controller has seen none of the volumes: its first
    // publish of each reads the disk first.
    let restarted = controller_on(&client);
    let p = phase(&restarted, &sim, Op::Publish, &ids, true).await;
    let restart_trips = p.round_trips as f64 / n as f64;
    println!(
        "{:<10} {:<10} {:>10.1} {:>10.2} {:>10.2} {:>12.1} {:>12.2}",
        "publish",
        "restarted",
        ms(p.wall),
        ms(percentile(&p.latencies, 0.5)),
        ms(percentile(&p.latencies, 0.99)),
        n as f64 / p.wall.as_secs_f64(),
        restart_trips,
    );
    let published = sim
        .engine
        .disks()
        .iter()
        .filter(|d| d.export && d.allow_host_name == node())
        .count();
    assert_eq!(published, n, "every volume is published to the node");

    let ratio = publish_walls[1].as_secs_f64() / publish_walls[0].as_secs_f64();
    println!();
    println!(
        "target: 1 round trip per publish and per unpublish: {worst_trips:.2} -> {}",
        verdict(worst_trips <= 1.0)
    );
    println!(
        "target: {n} concurrent publishes < 1/10 of {n} serial: {:.1} ms vs {:.1} ms (ratio {ratio:.3}) -> {}",
        ms(publish_walls[1]),
        ms(publish_walls[0]),
        verdict(ratio < 0.1)
    );
    println!(
        "(first publish after a restart: {restart_trips:.2} round trips, a read and the write)"
    );
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT MET" }
}
