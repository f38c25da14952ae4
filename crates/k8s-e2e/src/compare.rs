//! The Helm chart against the kustomize base: rendered with their defaults
//! (and the same RDS address), both must give the same objects, field for
//! field, so that a user gets the same driver whichever way they install,
//! and can move from one to the other. The differences allowed are few and
//! named here:
//!
//! - Helm's own labels ([`HELM_LABELS`]) and the chart's `checksum/*` pod
//!   annotations (which roll the controller when its configuration changes);
//! - the Namespace, which the kustomize base makes and a chart does not
//!   (Helm needs the namespace before it installs; docs/deploy.md says how
//!   to make it).

use std::collections::BTreeMap;

use serde_json::Value;

/// Labels Helm charts carry by convention, which the kustomize base has not.
pub const HELM_LABELS: &[&str] = &[
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
];

/// Kinds only one side makes, on purpose.
pub const ONE_SIDED_KINDS: &[&str] = &["Namespace"];

/// An object's identity: kind, namespace, name.
pub type Key = (String, String, String);

fn key(o: &Value) -> Key {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (
        s(&o["kind"]),
        s(&o["metadata"]["namespace"]),
        s(&o["metadata"]["name"]),
    )
}

/// `o` without what may differ: Helm's labels and checksum annotations,
/// anywhere in the object (pod templates included); maps emptied by that
/// are dropped.
pub fn normalize(o: &Value) -> Value {
    let mut o = o.clone();
    strip(&mut o);
    o
}

fn strip(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Object(meta)) = map.get_mut("metadata") {
                for field in ["labels", "annotations"] {
                    let empty = match meta.get_mut(field) {
                        Some(Value::Object(m)) => {
                            m.retain(|k, _| {
                                !HELM_LABELS.contains(&k.as_str()) && !k.starts_with("checksum/")
                            });
                            m.is_empty()
                        }
                        _ => false,
                    };
                    if empty {
                        meta.remove(field);
                    }
                }
            }
            map.values_mut().for_each(strip);
        }
        Value::Array(items) => items.iter_mut().for_each(strip),
        _ => {}
    }
}

/// Every difference between the kustomize objects and the chart's, as
/// sentences; empty when they agree.
pub fn differences(kustomize: &[Value], helm: &[Value]) -> Vec<String> {
    let index = |objects: &[Value]| -> BTreeMap<Key, Value> {
        objects
            .iter()
            .filter(|o| !ONE_SIDED_KINDS.contains(&o["kind"].as_str().unwrap_or_default()))
            .map(|o| (key(o), normalize(o)))
            .collect()
    };
    let (k, h) = (index(kustomize), index(helm));
    let mut out = Vec::new();
    for id in k.keys().filter(|id| !h.contains_key(*id)) {
        out.push(format!(
            "{} {}/{} is only in the kustomize base",
            id.0, id.1, id.2
        ));
    }
    for id in h.keys().filter(|id| !k.contains_key(*id)) {
        out.push(format!("{} {}/{} is only in the chart", id.0, id.1, id.2));
    }
    for (id, a) in &k {
        if let Some(b) = h.get(id) {
            let mut paths = Vec::new();
            diff(a, b, String::new(), &mut paths);
            for p in paths {
                out.push(format!("{} {}/{}: {p}", id.0, id.1, id.2));
            }
        }
    }
    out
}

/// The paths where `a` (kustomize) and `b` (chart) differ, with both values.
fn diff(a: &Value, b: &Value, at: String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let null = Value::Null;
                diff(
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    format!("{at}.{k}"),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff(p, q, format!("{at}[{i}]"), out);
            }
        }
        _ if a == b => {}
        _ => out.push(format!("{at}: kustomize has {a}, the chart has {b}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(labels: Value, annotations: Value, image: &str) -> Value {
        json!({
            "kind": "Deployment",
            "metadata": {"name": "c", "namespace": "rds-csi", "labels": labels},
            "spec": {"template": {
                "metadata": {"labels": {"a": "b"}, "annotations": annotations},
                "spec": {"containers": [{"name": "p", "image": image}]},
            }},
        })
    }

    #[test]
    fn helm_labels_and_checksums_are_not_differences() {
        let k = vec![
            json!({"kind": "Namespace", "metadata": {"name": "rds-csi"}}),
            deployment(
                json!({"app.kubernetes.io/part-of": "rds-csi"}),
                json!({}),
                "p:1",
            ),
        ];
        let h = vec![deployment(
            json!({"app.kubernetes.io/part-of": "rds-csi", "helm.sh/chart": "rds-csi-0.1.0",
                   "app.kubernetes.io/managed-by": "Helm"}),
            json!({"checksum/config": "abc"}),
            "p:1",
        )];
        assert_eq!(differences(&k, &h), Vec::<String>::new());
    }

    #[test]
    fn a_field_that_differs_is_named_with_both_values() {
        let k = vec![deployment(json!({}), json!({}), "p:1")];
        let h = vec![deployment(json!({}), json!({}), "p:2")];
        assert_eq!(
            differences(&k, &h),
            [
                r#"Deployment rds-csi/c: .spec.template.spec.containers[0].image: kustomize has "p:1", the chart has "p:2""#
            ]
        );
        // A label the chart lacks is a difference too.
        let h = vec![deployment(json!({"x": "y"}), json!({}), "p:1")];
        assert_eq!(differences(&k, &h).len(), 1);
    }

    #[test]
    fn objects_on_one_side_only_are_named() {
        let k = vec![json!({"kind": "StorageClass", "metadata": {"name": "rds-ext4"}})];
        let h = vec![json!({"kind": "StorageClass", "metadata": {"name": "rds-xfs"}})];
        let d = differences(&k, &h);
        assert!(
            d.iter()
                .any(|l| l.contains("rds-ext4 is only in the kustomize base")),
            "{d:?}"
        );
        assert!(
            d.iter().any(|l| l.contains("rds-xfs is only in the chart")),
            "{d:?}"
        );
    }
}
