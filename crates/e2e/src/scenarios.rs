//! The scenarios, by name. To add one: write `async fn run(ctx: Ctx) ->
//! Outcome` in a module under `scenarios/`, and list it in [`ALL`].

mod csi_snapshots;
mod doctor_fence;
mod doctor_snapshots;
mod fence;
mod node_block;
mod node_condition;
pub(crate) mod node_encrypted;
mod node_expand;
pub(crate) mod node_lifecycle;
mod node_orphans;
mod node_outage;
mod node_recovery;
mod node_restart;
mod sim_btrfs;
mod sim_exports;
mod sim_restart;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use crate::support::Outcome;

/// What every scenario gets.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// A fresh folder on the guest's tmpfs, removed afterwards.
    pub scratch: PathBuf,
}

/// A scenario's future.
pub type Run = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// One named scenario.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Its name, which filters match against.
    pub name: &'static str,
    /// Starts it.
    pub run: fn(Ctx) -> Run,
}

/// Every scenario, in the order they run.
pub const ALL: &[Scenario] = &[
    Scenario {
        name: "sim_exports_over_nvme_tcp",
        run: |ctx| Box::pin(sim_exports::run(ctx)),
    },
    Scenario {
        name: "sim_restart_reconciles_nvmet",
        run: |ctx| Box::pin(sim_restart::run(ctx)),
    },
    Scenario {
        name: "sim_btrfs_snapshots_over_nvme_tcp",
        run: |ctx| Box::pin(sim_btrfs::run(ctx)),
    },
    Scenario {
        name: "csi_snapshots_restores_and_clones",
        run: |ctx| Box::pin(csi_snapshots::run(ctx)),
    },
    Scenario {
        name: "doctor_check_snapshots",
        run: |ctx| Box::pin(doctor_snapshots::run(ctx)),
    },
    Scenario {
        name: "node_lifecycle_ext4",
        run: |ctx| Box::pin(node_lifecycle::ext4(ctx)),
    },
    Scenario {
        name: "node_lifecycle_xfs",
        run: |ctx| Box::pin(node_lifecycle::xfs(ctx)),
    },
    Scenario {
        name: "node_block_and_read_only",
        run: |ctx| Box::pin(node_block::run(ctx)),
    },
    Scenario {
        name: "node_encrypted_filesystem",
        run: |ctx| Box::pin(node_encrypted::filesystem(ctx)),
    },
    Scenario {
        name: "node_encrypted_block",
        run: |ctx| Box::pin(node_encrypted::block_volume(ctx)),
    },
    Scenario {
        name: "node_encrypted_plugin_killed_between_open_and_mount",
        run: |ctx| Box::pin(node_encrypted::killed_between_open_and_mount(ctx)),
    },
    Scenario {
        name: "node_expand_ext4",
        run: |ctx| Box::pin(node_expand::ext4(ctx)),
    },
    Scenario {
        name: "node_expand_xfs",
        run: |ctx| Box::pin(node_expand::xfs(ctx)),
    },
    Scenario {
        name: "node_outage_shorter_than_ctrl_loss_tmo",
        run: |ctx| Box::pin(node_outage::shorter(ctx)),
    },
    Scenario {
        name: "node_outage_past_ctrl_loss_tmo",
        run: |ctx| Box::pin(node_outage::longer(ctx)),
    },
    Scenario {
        name: "node_volume_condition",
        run: |ctx| Box::pin(node_condition::run(ctx)),
    },
    Scenario {
        name: "node_plugin_killed_between_rpcs",
        run: |ctx| Box::pin(node_restart::run(ctx)),
    },
    Scenario {
        name: "node_orphans_cleaned_at_start_up",
        run: |ctx| Box::pin(node_orphans::run(ctx)),
    },
    Scenario {
        name: "node_reconnect_on_publish_after_ctrl_loss",
        run: |ctx| Box::pin(node_recovery::run(ctx)),
    },
    Scenario {
        name: "fence_two_nodes",
        run: |ctx| Box::pin(fence::two_nodes(ctx)),
    },
    Scenario {
        name: "fence_migration",
        run: |ctx| Box::pin(fence::migration(ctx)),
    },
    Scenario {
        name: "doctor_check_fence",
        run: |ctx| Box::pin(doctor_fence::run(ctx)),
    },
    Scenario {
        name: "demo_walkthrough",
        run: |ctx| Box::pin(async move { crate::demo::run(&ctx.scratch, "the test guest").await }),
    },
];

/// The scenarios whose names contain any of `filters` (all without any).
pub fn select(filters: &[String]) -> Vec<Scenario> {
    ALL.iter()
        .filter(|s| filters.is_empty() || filters.iter().any(|f| s.name.contains(f.as_str())))
        .copied()
        .collect()
}
