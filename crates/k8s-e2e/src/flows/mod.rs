//! The flows, by name, in the order they run. Each is an `async fn(&mut
//! Cluster) -> Outcome` in a module of its own; to add one, write it and
//! list it in [`ALL`] (the crate's README says more).
//!
//! Every flow checks what it claims on the API objects and on the
//! simulator, and removes what it made, so the next flow starts from the
//! installation alone.

mod attach;
mod expand;
mod leader;
mod outage;
mod provision;
mod rbac;
mod reclaim;
mod snapshot;

use std::future::Future;
use std::pin::Pin;

use crate::cluster::Cluster;
use crate::support::Outcome;

/// A flow's future.
pub type Run<'a> = Pin<Box<dyn Future<Output = Outcome> + 'a>>;

/// One named flow.
#[derive(Clone, Copy)]
pub struct Flow {
    /// Its name, which filters match against.
    pub name: &'static str,
    /// Runs it.
    pub run: for<'a> fn(&'a mut Cluster) -> Run<'a>,
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Every flow, in the order they run. The RBAC check comes last, so that it
/// sees everything the sidecars did.
pub const ALL: &[Flow] = &[
    Flow {
        name: "provision_and_bind",
        run: |c| Box::pin(provision::provision_and_bind(c)),
    },
    Flow {
        name: "class_parameters_reach_the_disk",
        run: |c| Box::pin(provision::class_parameters_reach_the_disk(c)),
    },
    Flow {
        name: "bad_parameter_is_an_event_on_the_pvc",
        run: |c| Box::pin(provision::bad_parameter_is_an_event(c)),
    },
    Flow {
        name: "expansion_grows_the_disk",
        run: |c| Box::pin(expand::expansion_grows_the_disk(c)),
    },
    Flow {
        name: "delete_policy_removes_disk_and_image",
        run: |c| Box::pin(reclaim::delete_removes(c)),
    },
    Flow {
        name: "retain_policy_keeps_disk_and_image",
        run: |c| Box::pin(reclaim::retain_keeps(c)),
    },
    Flow {
        name: "snapshot_class_and_controllers_in_place",
        run: |c| Box::pin(snapshot::class_and_controllers_in_place(c)),
    },
    Flow {
        name: "snapshot_restore_clone",
        run: |c| Box::pin(snapshot::snapshot_restore_clone(c)),
    },
    Flow {
        name: "snapshot_off_btrfs_is_refused",
        run: |c| Box::pin(snapshot::snapshot_off_btrfs_is_refused(c)),
    },
    Flow {
        name: "rds_outage_waits_then_completes",
        run: |c| Box::pin(outage::waits_then_completes(c)),
    },
    Flow {
        name: "leader_election_hands_over",
        run: |c| Box::pin(leader::hands_over(c)),
    },
    Flow {
        name: "attach_opens_the_volume_to_its_node_alone",
        run: |c| Box::pin(attach::attach_and_detach(c)),
    },
    Flow {
        name: "sidecars_were_never_forbidden",
        run: |c| Box::pin(rbac::never_forbidden(c)),
    },
];

/// The flows whose names contain one of `filters` (all without filters).
pub fn selected(filters: &[String]) -> Vec<Flow> {
    ALL.iter()
        .filter(|f| filters.is_empty() || filters.iter().any(|x| f.name.contains(x.as_str())))
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_filters_select() {
        let mut names: Vec<&str> = ALL.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        assert_eq!(selected(&[]).len(), ALL.len());
        let some = selected(&["policy".to_owned()]);
        assert_eq!(some.len(), 2);
        assert!(selected(&["no such flow".to_owned()]).is_empty());
    }
}
