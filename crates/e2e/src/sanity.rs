//! The community's conformance suite, csi-sanity (kubernetes-csi/csi-test),
//! run against the whole driver: the simulator over real SSH, the plugin in
//! `--mode all` as a process of its own, and csi-sanity talking to its socket
//! the way the sidecars and kubelet do.
//!
//! Two places, one runner:
//! - **guest**: the simulator exports through nvmet and every spec runs, the
//!   Node specs attaching real volumes over NVMe/TCP; nothing is skipped by us.
//! - **host**: a kernel without NVMe/TCP; the Identity and Controller specs
//!   and every Node spec that needs no attached volume run, and the few that
//!   stage a volume ([`NEEDS_KERNEL_INITIATOR`]) are skipped, by name.
//!
//! The pool is a real, loop-mounted btrfs (root, in both places), so that
//! volumes get subvolumes of their own and the snapshot and clone specs run
//! against real copy-on-write.
//!
//! The StorageClass parameters go in through `-csi.testvolumeparameters`, and
//! the VolumeSnapshotClass's through `-csi.testsnapshotparameters`, as the
//! external-provisioner and the external-snapshotter pass them (with
//! `--extra-create-metadata`). The result is read from Ginkgo's JSON report,
//! not from its console text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::csi::Cluster;
use crate::rds::{self, Export};
use crate::support::{Context, Outcome, ensure};

/// Where the suite runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// This machine, whose kernel has no NVMe/TCP initiator.
    Host,
    /// The test guest, with nvmet and the initiator.
    Guest,
}

impl Place {
    /// Its name on the command line and in the summary.
    pub fn name(self) -> &'static str {
        match self {
            Place::Host => "host",
            Place::Guest => "guest",
        }
    }

    /// The place named `name`.
    pub fn parse(name: &str) -> Option<Place> {
        match name {
            "host" => Some(Place::Host),
            "guest" => Some(Place::Guest),
            _ => None,
        }
    }
}

/// Node specs that stage a real volume, so need a kernel NVMe/TCP initiator:
/// skipped on the host (they run in the guest). Full Ginkgo spec texts.
pub const NEEDS_KERNEL_INITIATOR: &[&str] = &[
    "Node Service should work",
    "Node Service should be idempotent",
    "Node Service NodePublishVolume with single node multi writer capability should fail when volume with single node single writer access mode is already mounted at a different target path",
    "Node Service NodeUnpublishVolume should remove target path",
    "Node Service NodeGetVolumeStats should fail when volume does not exist on the specified path",
    "Node Service NodeExpandVolume should work if node-expand is called after node-publish",
];

/// The StorageClass parameters of the volumes csi-sanity makes, as a
/// StorageClass and the external-provisioner pass them.
pub fn storage_class_parameters() -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("volumePath", format!("/{}/volumes", rds::POOL)),
        ("nvmeAddress", "127.0.0.1".to_owned()),
        ("nvmePort", rds::PORT.to_string()),
        ("fsType", "ext4".to_owned()),
        ("csi.storage.k8s.io/pvc/name", "sanity-claim".to_owned()),
        ("csi.storage.k8s.io/pvc/namespace", "sanity".to_owned()),
        (
            "csi.storage.k8s.io/pv/name",
            "pvc-00000000-0000-0000-0000-000000000000".to_owned(),
        ),
    ])
}

/// The parameters of the snapshots csi-sanity takes, as the
/// external-snapshotter passes them (a VolumeSnapshotClass of this driver
/// has none of its own).
pub fn snapshot_class_parameters() -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        (
            "csi.storage.k8s.io/volumesnapshot/name",
            "sanity-snapshot".to_owned(),
        ),
        (
            "csi.storage.k8s.io/volumesnapshot/namespace",
            "sanity".to_owned(),
        ),
        (
            "csi.storage.k8s.io/volumesnapshotcontent/name",
            "snapcontent-00000000-0000-0000-0000-000000000000".to_owned(),
        ),
    ])
}

/// The size of the pool's btrfs: a sparse file, so only what is written
/// takes space, and larger than any volume csi-sanity asks for (the
/// simulator refuses a disk larger than the pool's free space).
pub const POOL_BYTES: u64 = 64 << 30;

/// One spec's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The full spec text (containers and the leaf).
    pub text: String,
    /// `passed`, `failed`, `skipped`, `pending`, `panicked`, ...
    pub state: String,
    /// The failure or skip message, if any.
    pub message: String,
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Every spec, in the order run.
    pub specs: Vec<Spec>,
    /// Specs we skipped by name (host only).
    pub skipped_by_us: Vec<String>,
}

impl Summary {
    fn count(&self, pick: impl Fn(&Spec) -> bool) -> usize {
        self.specs.iter().filter(|s| pick(s)).count()
    }

    /// Specs that passed.
    pub fn passed(&self) -> usize {
        self.count(|s| s.state == "passed")
    }

    /// Specs that did not pass and were not skipped (failed, panicked, timed
    /// out, interrupted).
    pub fn failed(&self) -> usize {
        self.count(|s| !matches!(s.state.as_str(), "passed" | "skipped" | "pending"))
    }

    /// Specs skipped, by us or by csi-sanity itself.
    pub fn skipped(&self) -> usize {
        self.count(|s| s.state == "skipped")
    }

    /// Specs csi-sanity skipped by itself (a capability not advertised), with
    /// its reason.
    pub fn skipped_by_suite(&self) -> Vec<&Spec> {
        self.specs
            .iter()
            .filter(|s| s.state == "skipped" && !self.skipped_by_us.contains(&s.text))
            .collect()
    }

    /// The report printed at the end: the counts, what was skipped and why,
    /// and every failure with its message.
    pub fn render(&self, place: Place) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "csi-sanity ({}): {} passed, {} failed, {} skipped",
            place.name(),
            self.passed(),
            self.failed(),
            self.skipped()
        );
        if !self.skipped_by_us.is_empty() {
            let _ = writeln!(
                out,
                "skipped by us ({}), because they attach a volume and this kernel has no NVMe/TCP initiator (they run in the guest):",
                self.skipped_by_us.len()
            );
            for text in &self.skipped_by_us {
                let _ = writeln!(out, "  - {text}");
            }
        }
        let by_suite = self.skipped_by_suite();
        if !by_suite.is_empty() {
            let _ = writeln!(
                out,
                "skipped by csi-sanity itself ({}), capabilities the driver does not advertise:",
                by_suite.len()
            );
            let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
            for spec in by_suite {
                *reasons.entry(spec.message.as_str()).or_default() += 1;
            }
            for (reason, n) in reasons {
                let _ = writeln!(
                    out,
                    "  - {reason} ({n} spec{})",
                    if n == 1 { "" } else { "s" }
                );
            }
        }
        for spec in self
            .specs
            .iter()
            .filter(|s| !matches!(s.state.as_str(), "passed" | "skipped" | "pending"))
        {
            let _ = writeln!(out, "FAILED: {}\n  {}", spec.text, spec.message.trim());
        }
        out
    }
}

/// Runs csi-sanity (the binary at `csi_sanity`) against the driver, in
/// `scratch`, and returns what it found. A run that could not start, or
/// whose report is missing, is an error; failed specs are in the summary.
pub async fn run(scratch: &Path, place: Place, csi_sanity: &Path) -> Outcome<Summary> {
    let export = match place {
        Place::Host => Export::None,
        Place::Guest => Export::Nvmet,
    };
    let cluster = Cluster::start_on_btrfs(scratch, POOL_BYTES, export).await?;
    let result = run_suite(&cluster, scratch, place, csi_sanity).await;
    let stopped = cluster.stop().await;
    let summary = result?;
    stopped?;
    Ok(summary)
}

async fn run_suite(
    cluster: &Cluster,
    scratch: &Path,
    place: Place,
    csi_sanity: &Path,
) -> Outcome<Summary> {
    let yaml = |map: BTreeMap<&str, String>| -> String {
        map.iter().map(|(k, v)| format!("{k}: \"{v}\"\n")).collect()
    };
    let parameters = scratch.join("parameters.yaml");
    std::fs::write(&parameters, yaml(storage_class_parameters()))
        .context("cannot write the parameters file")?;
    let snapshot_parameters = scratch.join("snapshot-parameters.yaml");
    std::fs::write(&snapshot_parameters, yaml(snapshot_class_parameters()))
        .context("cannot write the snapshot parameters file")?;
    let report = scratch.join("report.json");
    let log = scratch.join("csi-sanity.log");
    let skipped_by_us: Vec<String> = match place {
        Place::Host => NEEDS_KERNEL_INITIATOR
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        Place::Guest => Vec::new(),
    };

    let mut command = tokio::process::Command::new(csi_sanity);
    command
        .arg(format!(
            "-csi.endpoint=unix://{}",
            cluster.socket().display()
        ))
        .arg(format!(
            "-csi.mountdir={}",
            scratch.join("target").display()
        ))
        .arg(format!(
            "-csi.stagingdir={}",
            scratch.join("staging").display()
        ))
        .arg(format!(
            "-csi.testvolumeparameters={}",
            parameters.display()
        ))
        .arg(format!(
            "-csi.testsnapshotparameters={}",
            snapshot_parameters.display()
        ))
        // 1 GiB volumes: what a small PVC asks for, and quick to format under
        // emulation.
        .arg("-csi.testvolumesize=1073741824")
        .arg("-ginkgo.no-color")
        .arg(format!("-ginkgo.json-report={}", report.display()));
    if !skipped_by_us.is_empty() {
        command.arg(format!("-ginkgo.skip={}", exact_texts(&skipped_by_us)));
    }
    let log_file = std::fs::File::create(&log).context("cannot create csi-sanity's log")?;
    let log_err = log_file
        .try_clone()
        .context("cannot create csi-sanity's log")?;
    command
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err)
        .kill_on_drop(true);
    let started = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(3600), command.status())
        .await
        .map_err(|_| "csi-sanity did not finish within an hour".to_owned())?
        .context(format!("cannot run {}", csi_sanity.display()))?;
    tracing::info!(?status, took = ?started.elapsed(), "csi-sanity finished");

    let text = std::fs::read_to_string(&report).map_err(|e| {
        format!(
            "csi-sanity wrote no report ({status}, {e}); its output:\n{}",
            tail(&std::fs::read_to_string(&log).unwrap_or_default(), 60)
        )
    })?;
    let mut summary = parse_report(&text)?;
    summary.skipped_by_us = skipped_by_us;
    // Every name we skip must exist in this csi-sanity: a renamed spec would
    // otherwise silently run (and fail) or, worse, a typo hide nothing.
    for text in &summary.skipped_by_us {
        ensure(
            summary
                .specs
                .iter()
                .any(|s| &s.text == text && s.state == "skipped"),
            format!("csi-sanity has no spec {text:?} to skip: update NEEDS_KERNEL_INITIATOR"),
        )?;
    }
    // ... and nothing else: a spec skipped without csi-sanity's reason was
    // filtered out by our expression.
    let filtered: Vec<&Spec> = summary
        .specs
        .iter()
        .filter(|s| s.state == "skipped" && s.message.is_empty())
        .collect();
    ensure(
        filtered.len() == summary.skipped_by_us.len(),
        format!("the skip expression caught more than it names: {filtered:?}"),
    )?;
    if summary.failed() > 0 {
        eprintln!(
            "csi-sanity's output (last lines):\n{}",
            tail(&std::fs::read_to_string(&log).unwrap_or_default(), 80)
        );
        eprintln!("plugin log (last lines):\n{}", cluster.plugin_log_tail());
    }
    Ok(summary)
}

/// A Ginkgo `-skip` expression matching these spec texts. Ginkgo matches
/// it against a text with more in front (the suite's own containers), so
/// only the end is anchored; [`run_suite`] checks that exactly these specs
/// were skipped.
fn exact_texts(texts: &[String]) -> String {
    let alternatives: Vec<String> = texts.iter().map(|t| regex_escape(t)).collect();
    format!("(?:{})$", alternatives.join("|"))
}

/// Escapes the characters Go's regexp syntax gives meaning to.
fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        if r"\.+*?()|[]{}^$".contains(ch) {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SuiteReport {
    spec_reports: Vec<SpecReport>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SpecReport {
    #[serde(default)]
    container_hierarchy_texts: Option<Vec<String>>,
    #[serde(default)]
    leaf_node_text: String,
    leaf_node_type: String,
    state: String,
    #[serde(default)]
    failure: Option<Failure>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Failure {
    #[serde(default)]
    message: String,
}

/// Reads Ginkgo's JSON report: every `It`, with its state and message. A
/// failure in a suite-level node (BeforeSuite, ...) counts as a failed spec.
pub fn parse_report(json: &str) -> Outcome<Summary> {
    let suites: Vec<SuiteReport> =
        serde_json::from_str(json).context("csi-sanity's JSON report cannot be read")?;
    let mut summary = Summary::default();
    for report in suites.into_iter().flat_map(|s| s.spec_reports) {
        let is_spec = report.leaf_node_type == "It";
        if !is_spec && report.state == "passed" {
            continue;
        }
        let mut parts = report.container_hierarchy_texts.unwrap_or_default();
        parts.push(if is_spec {
            report.leaf_node_text
        } else {
            report.leaf_node_type
        });
        summary.specs.push(Spec {
            text: parts.join(" "),
            state: report.state,
            message: report.failure.map(|f| f.message).unwrap_or_default(),
        });
    }
    ensure(
        !summary.specs.is_empty(),
        "csi-sanity's report holds no spec",
    )?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = r#"[{"SuiteDescription":"CSI Driver Test Suite","SpecReports":[
      {"ContainerHierarchyTexts":null,"LeafNodeText":"","LeafNodeType":"BeforeSuite","State":"passed"},
      {"ContainerHierarchyTexts":["Node Service"],"LeafNodeText":"should work","LeafNodeType":"It","State":"skipped"},
      {"ContainerHierarchyTexts":["Controller Service [Controller Server]","ListVolumes"],"LeafNodeText":"should fail when an invalid starting_token is passed","LeafNodeType":"It","State":"failed","Failure":{"Message":"Expected Aborted"}},
      {"ContainerHierarchyTexts":["ListSnapshots [Controller Server]"],"LeafNodeText":"should return appropriate values","LeafNodeType":"It","State":"skipped","Failure":{"Message":"ListSnapshots not supported"}},
      {"ContainerHierarchyTexts":["Identity Service"],"LeafNodeText":"should work","LeafNodeType":"It","State":"passed"},
      {"ContainerHierarchyTexts":null,"LeafNodeText":"","LeafNodeType":"AfterSuite","State":"panicked","Failure":{"Message":"boom"}}
    ]}]"#;

    #[test]
    fn reports_are_counted_by_state() {
        let mut summary = parse_report(REPORT).unwrap();
        summary.skipped_by_us = vec!["Node Service should work".into()];
        assert_eq!(
            (summary.passed(), summary.failed(), summary.skipped()),
            (1, 2, 2)
        );
        let by_suite = summary.skipped_by_suite();
        assert_eq!(by_suite.len(), 1);
        assert_eq!(by_suite[0].message, "ListSnapshots not supported");
        let text = summary.render(Place::Host);
        assert!(
            text.starts_with("csi-sanity (host): 1 passed, 2 failed, 2 skipped\n"),
            "{text}"
        );
        assert!(text.contains("  - Node Service should work\n"), "{text}");
        assert!(
            text.contains("  - ListSnapshots not supported (1 spec)\n"),
            "{text}"
        );
        assert!(text.contains("FAILED: Controller Service [Controller Server] ListVolumes should fail when an invalid starting_token is passed\n  Expected Aborted"), "{text}");
        assert!(text.contains("FAILED: AfterSuite\n  boom"), "{text}");
    }

    #[test]
    fn an_empty_or_broken_report_is_an_error() {
        assert!(parse_report("[]").is_err());
        assert!(parse_report("not json").is_err());
    }

    #[test]
    fn skip_expressions_match_only_the_exact_texts() {
        let expr = exact_texts(&[
            "Controller Service [Controller Server] a.b".to_owned(),
            "x (y)".to_owned(),
        ]);
        assert_eq!(
            expr,
            r"(?:Controller Service \[Controller Server\] a\.b|x \(y\))$"
        );
    }
}
