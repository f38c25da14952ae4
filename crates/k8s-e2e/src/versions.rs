//! The sidecar versions we ship are the ones the tier runs: each sidecar
//! image's tag in the manifests must be the version of its Go module in
//! `tools/k8s/go.mod`, from which `scripts/go-tools` builds the binary the
//! tier runs. Otherwise the tier would prove one release and users would
//! run another.

use serde_json::Value;

use crate::support::Outcome;
use crate::template::{image_name, image_tag};

/// The Go module each sidecar image is built from.
pub fn module_of(image: &str) -> Option<&'static str> {
    Some(match image_name(image) {
        "csi-provisioner" => "github.com/kubernetes-csi/external-provisioner/v6",
        "csi-resizer" => "github.com/kubernetes-csi/external-resizer/v2",
        "csi-attacher" => "github.com/kubernetes-csi/external-attacher/v4",
        "csi-snapshotter" | "snapshot-controller" => {
            "github.com/kubernetes-csi/external-snapshotter/v8"
        }
        _ => return None,
    })
}

/// The version `go.mod` requires of `module`.
pub fn required_version(go_mod: &str, module: &str) -> Option<String> {
    go_mod.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let first = words.next()?;
        let (name, version) = if first == "require" {
            (words.next()?, words.next()?)
        } else {
            (first, words.next()?)
        };
        (name == module && version.starts_with('v')).then(|| version.to_owned())
    })
}

/// Every container image of `objects` whose tag differs from its module's
/// version in `go_mod`, as sentences.
pub fn mismatches(objects: &[Value], go_mod: &str) -> Vec<String> {
    let mut out = Vec::new();
    for object in objects {
        let spec = &object["spec"]["template"]["spec"];
        for c in spec["containers"].as_array().into_iter().flatten() {
            let Some(image) = c["image"].as_str() else {
                continue;
            };
            let Some(module) = module_of(image) else {
                continue;
            };
            let tag = image_tag(image).unwrap_or("(none)");
            match required_version(go_mod, module) {
                Some(v) if v == tag => {}
                Some(v) => out.push(format!(
                    "{} runs {image}, but the tier builds {module} {v} (tools/k8s/go.mod): \
                     pin the same version in both",
                    object["metadata"]["name"].as_str().unwrap_or("?")
                )),
                None => out.push(format!(
                    "{image}: tools/k8s/go.mod has no {module}, so the tier cannot run it"
                )),
            }
        }
    }
    out
}

/// Fails with every mismatch.
pub fn check(objects: &[Value], go_mod: &str) -> Outcome {
    let found = mismatches(objects, go_mod);
    if found.is_empty() {
        Ok(())
    } else {
        Err(found.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const GO_MOD: &str = "module x\n\nrequire (\n\
        \tgithub.com/kubernetes-csi/external-provisioner/v6 v6.3.0 // indirect\n\
        \tgithub.com/kubernetes-csi/external-resizer/v2 v2.2.0 // indirect\n)\n\
        require github.com/kubernetes-csi/external-attacher/v4 v4.12.0\n";

    fn deployment(images: &[&str]) -> Value {
        let containers: Vec<Value> = images.iter().map(|i| json!({"image": i})).collect();
        json!({"metadata": {"name": "ctl"}, "spec": {"template": {"spec": {"containers": containers}}}})
    }

    #[test]
    fn go_mod_versions_are_read() {
        let v = |m| required_version(GO_MOD, m);
        assert_eq!(
            v("github.com/kubernetes-csi/external-resizer/v2").as_deref(),
            Some("v2.2.0")
        );
        assert_eq!(
            v("github.com/kubernetes-csi/external-attacher/v4").as_deref(),
            Some("v4.12.0")
        );
        assert_eq!(v("github.com/kubernetes-csi/external-snapshotter/v8"), None);
    }

    #[test]
    fn a_tag_other_than_the_module_is_found() {
        let ok = deployment(&[
            "rds-csi-plugin:0.1.0",
            "registry.k8s.io/sig-storage/csi-provisioner:v6.3.0",
            "registry.k8s.io/sig-storage/livenessprobe:v2.20.0",
        ]);
        assert!(check(&[ok], GO_MOD).is_ok());
        let off = deployment(&["registry.k8s.io/sig-storage/csi-resizer:v2.2.1"]);
        let e = check(&[off], GO_MOD).unwrap_err();
        assert!(e.contains("external-resizer/v2 v2.2.0"), "{e}");
        let missing = deployment(&["registry.k8s.io/sig-storage/csi-snapshotter:v8.6.0"]);
        assert!(check(&[missing], GO_MOD).is_err());
    }

    /// What the repository ships: the base's Deployment against the tools
    /// module.
    #[test]
    fn the_shipped_sidecars_are_the_ones_the_tier_runs() {
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let go_mod = std::fs::read_to_string(repo.join("tools/k8s/go.mod")).unwrap();
        for file in ["deploy/base/controller.yaml", "deploy/base/node.yaml"] {
            let text = std::fs::read_to_string(repo.join(file)).unwrap();
            let objects = crate::manifests::parse_yaml_documents(&text).unwrap();
            check(&objects, &go_mod).unwrap_or_else(|e| panic!("{file}: {e}"));
        }
    }
}
