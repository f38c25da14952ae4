//! The Helm chart's monitoring pieces against the plugin's real metrics:
//! every `rds_csi_*` series an alert or a dashboard panel queries is one the
//! plugin exports (a renamed metric would otherwise leave an alert that can
//! never fire), and the dashboard is valid JSON.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use telemetry::metrics::OutcomeLabels;

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charts/rds-csi")
}

/// Every sample name the plugin can export: from the `# TYPE` lines of an
/// encoded registry, with the suffixes each type's samples carry. A family
/// with labels is encoded only once it has a series, so each is given one
/// here (a new labelled family must be added, or the tests below say it
/// does not exist).
fn exported() -> BTreeSet<String> {
    let m = telemetry::Metrics::new();
    m.rpc
        .observe("CreateVolume", "OK", Duration::from_millis(1));
    m.rds
        .observe_command("create", true, Duration::from_millis(1));
    m.rds.set_pools(&[("storage-pool".into(), 1, 1)]);
    m.node
        .nvme_connects
        .get_or_create(&OutcomeLabels {
            outcome: "connected".into(),
        })
        .inc();
    let text = m.encode();
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').unwrap();
        match kind {
            "counter" => {
                names.insert(format!("{name}_total"));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

fn referenced(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("rds_csi_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        out.insert(text[start..end].to_owned());
        i = end;
    }
    out
}

#[test]
fn the_registry_is_read_as_expected() {
    let names = exported();
    for name in [
        "rds_csi_rpc_total",
        "rds_csi_rpc_duration_seconds_bucket",
        "rds_csi_rds_up",
        "rds_csi_pool_free_bytes",
        "rds_csi_abnormal_volumes",
    ] {
        assert!(names.contains(name), "{name} not in {names:?}");
    }
    assert_eq!(
        referenced("max(rds_csi_rds_up{job=\"x\"}) + rds_csi_rpc_total"),
        ["rds_csi_rds_up".to_owned(), "rds_csi_rpc_total".to_owned()].into()
    );
}

#[test]
fn alerts_query_only_metrics_the_plugin_exports() {
    let rules = std::fs::read_to_string(chart().join("templates/prometheusrule.yaml")).unwrap();
    let used = referenced(&rules);
    for needed in [
        "rds_csi_rds_up",
        "rds_csi_abnormal_volumes",
        "rds_csi_rpc_total",
        "rds_csi_pool_free_bytes",
        "rds_csi_pool_size_bytes",
    ] {
        assert!(used.contains(needed), "no alert uses {needed}");
    }
    let known = exported();
    let missing: Vec<_> = used.difference(&known).collect();
    assert!(
        missing.is_empty(),
        "alerts query metrics that do not exist: {missing:?}"
    );
}

#[test]
fn the_dashboard_is_json_and_queries_only_metrics_the_plugin_exports() {
    let text = std::fs::read_to_string(chart().join("files/dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(!panels.is_empty());
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "panel ids repeat");
        assert!(
            !p["targets"].as_array().unwrap().is_empty(),
            "{} has no query",
            p["title"]
        );
    }
    let used = referenced(&text);
    let known = exported();
    let missing: Vec<_> = used.difference(&known).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics that do not exist: {missing:?}"
    );
    // Every metric the plugin exports is on the dashboard somewhere.
    let bases: BTreeSet<String> = used
        .iter()
        .map(|n| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .fold(n.clone(), |n, s| {
                    n.strip_suffix(s).map(str::to_owned).unwrap_or(n)
                })
        })
        .collect();
    let unshown: Vec<_> = exported()
        .into_iter()
        .filter(|n| !n.ends_with("_sum") && !n.ends_with("_count"))
        .map(|n| n.strip_suffix("_bucket").map(str::to_owned).unwrap_or(n))
        .filter(|n| !bases.contains(n))
        .collect();
    assert!(unshown.is_empty(), "metrics no panel shows: {unshown:?}");
}
