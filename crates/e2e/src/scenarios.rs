//! The scenarios, by name. To add one: write `async fn run(ctx: Ctx) ->
//! Outcome` in a module under `scenarios/`, and list it in [`ALL`].

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
];

/// The scenarios whose names contain any of `filters` (all without any).
pub fn select(filters: &[String]) -> Vec<Scenario> {
    ALL.iter()
        .filter(|s| filters.is_empty() || filters.iter().any(|f| s.name.contains(f.as_str())))
        .copied()
        .collect()
}
