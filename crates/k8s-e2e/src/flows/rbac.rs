//! Our RBAC, as the sidecars lived it: every sidecar ran with its
//! ServiceAccount's own token, so a rule our ClusterRoles lack shows up in
//! its log as `forbidden` (client-go logs the API server's refusal), even
//! when the flow it broke happened to pass (an event that was never
//! recorded, a watch that never started). snapshot-controller's log is read
//! the same way: it runs under the upstream RBAC docs/deploy.md has users
//! install, which must be enough for it too.

use std::path::PathBuf;

use crate::cluster::Cluster;
use crate::support::{Outcome, ensure};
use crate::template::{self, Role};

/// No sidecar of any replica was ever refused by the API server.
pub async fn never_forbidden(c: &mut Cluster) -> Outcome {
    let mut logs: Vec<PathBuf> = Vec::new();
    for i in 0..c.replicas.len() {
        let dir = c
            .options
            .scratch
            .join("pods")
            .join(Cluster::replica_name(i));
        for container in &c.template.containers {
            if matches!(template::role_of(&container.image)?, Role::Sidecar(_)) {
                logs.push(dir.join("logs").join(format!("{}.log", container.name)));
            }
        }
    }
    ensure(!logs.is_empty(), "no sidecar ran")?;
    let controller = Cluster::snapshot_controller_name();
    for container in &c.snapshot_template.containers {
        logs.push(
            c.options
                .scratch
                .join("pods")
                .join(&controller)
                .join("logs")
                .join(format!("{}.log", container.name)),
        );
    }
    let mut refusals = Vec::new();
    for log in &logs {
        let text = std::fs::read_to_string(log)
            .map_err(|e| format!("cannot read {}: {e}", log.display()))?;
        refusals.extend(
            text.lines()
                .filter(|l| l.contains("forbidden") || l.contains("Forbidden"))
                .take(3)
                .map(|l| format!("{}: {l}", log.display())),
        );
    }
    ensure(
        refusals.is_empty(),
        format!(
            "the API server refused a ServiceAccount (a rule is missing from our RBAC, or from \
             snapshot-controller's):\n{}",
            refusals.join("\n")
        ),
    )
}
