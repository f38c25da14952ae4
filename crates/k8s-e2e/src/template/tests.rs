//! The template rules on a controller Deployment shaped like ours.

use super::*;
use serde_json::json;

fn deployment() -> Value {
    json!({
        "kind": "Deployment",
        "metadata": {"name": "rds-csi-controller", "namespace": "rds-csi"},
        "spec": {
            "replicas": 2,
            "template": {"spec": {
                "serviceAccountName": "rds-csi-controller",
                "containers": [
                    {
                        "name": "rds-csi-plugin",
                        "image": "rds-csi-plugin:0.1.0",
                        "args": ["--mode=controller", "--endpoint=unix:///csi/csi.sock",
                                 "--rds-private-key=/etc/rds-csi/ssh/id", "--http-endpoint=:9810"],
                        "envFrom": [{"configMapRef": {"name": "rds-csi-config"}}],
                        "env": [{"name": "RDS_HOST_KEY", "valueFrom": {"secretKeyRef":
                                 {"name": "rds-csi-ssh", "key": "host-key"}}}],
                        "volumeMounts": [{"name": "socket-dir", "mountPath": "/csi"},
                                         {"name": "ssh", "mountPath": "/etc/rds-csi/ssh", "readOnly": true}]
                    },
                    {
                        "name": "csi-provisioner",
                        "image": "registry.k8s.io/sig-storage/csi-provisioner:v6.3.0",
                        "args": ["--csi-address=/csi/csi.sock", "--leader-election-namespace=$(NAMESPACE)"],
                        "env": [{"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
                        "volumeMounts": [{"name": "socket-dir", "mountPath": "/csi"}]
                    }
                ],
                "volumes": [
                    {"name": "socket-dir", "emptyDir": {}},
                    {"name": "ssh", "secret": {"secretName": "rds-csi-ssh",
                        "items": [{"key": "id", "path": "id"}], "defaultMode": 288}},
                    {"name": "dev", "hostPath": {"path": "/dev"}}
                ]
            }}
        }
    })
}

#[test]
fn a_deployment_is_read_as_kubelet_reads_it() {
    let t = parse_workload(&deployment()).unwrap();
    assert_eq!(t.namespace, "rds-csi");
    assert_eq!(t.service_account, "rds-csi-controller");
    assert!(t.automount_token);
    assert_eq!(t.replicas, 2);
    assert_eq!(t.containers.len(), 2);
    let plugin = &t.containers[0];
    assert_eq!(
        plugin.env_from,
        [EnvFrom::ConfigMap("rds-csi-config".into())]
    );
    assert_eq!(
        plugin.env,
        [(
            "RDS_HOST_KEY".to_owned(),
            EnvSource::SecretKey {
                name: "rds-csi-ssh".into(),
                key: "host-key".into()
            }
        )]
    );
    assert_eq!(
        plugin.mounts[1],
        Mount {
            volume: "ssh".into(),
            path: "/etc/rds-csi/ssh".into()
        }
    );
    assert_eq!(
        t.containers[1].env,
        [(
            "NAMESPACE".to_owned(),
            EnvSource::Field("metadata.namespace".into())
        )]
    );
    assert_eq!(t.volumes["socket-dir"], Volume::EmptyDir);
    assert_eq!(
        t.volumes["ssh"],
        Volume::Secret {
            name: "rds-csi-ssh".into(),
            items: vec![("id".into(), "id".into())],
            mode: 0o440
        }
    );
    assert_eq!(t.volumes["dev"], Volume::Other("hostPath".into()));
}

#[test]
fn unknown_env_sources_are_refused_not_dropped() {
    let mut d = deployment();
    d["spec"]["template"]["spec"]["containers"][1]["env"][0]["valueFrom"] =
        json!({"resourceFieldRef": {"resource": "limits.cpu"}});
    let e = parse_workload(&d).unwrap_err();
    assert!(
        e.contains("env NAMESPACE has a source the tier does not know"),
        "{e}"
    );
    let mut d = deployment();
    d["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["prefix"] = json!("X_");
    assert!(parse_workload(&d).is_err());
}

#[test]
fn images_name_their_binary() {
    assert_eq!(
        image_name("registry.k8s.io/sig-storage/csi-provisioner:v6.3.0"),
        "csi-provisioner"
    );
    assert_eq!(image_name("rds-csi-plugin:0.1.0"), "rds-csi-plugin");
    assert_eq!(
        image_name("r.example:5000/a/rds-csi-plugin@sha256:ab"),
        "rds-csi-plugin"
    );
    assert_eq!(
        image_tag("registry.k8s.io/sig-storage/csi-resizer:v2.2.0"),
        Some("v2.2.0")
    );
    assert_eq!(image_tag("r.example:5000/rds-csi-plugin"), None);
    assert_eq!(
        role_of("registry.example.com/storage/rds-csi-plugin:0.1.0"),
        Ok(Role::Plugin)
    );
    assert_eq!(
        role_of("registry.k8s.io/sig-storage/csi-resizer:v2.2.0"),
        Ok(Role::Sidecar("csi-resizer".into()))
    );
    assert!(matches!(
        role_of("registry.k8s.io/sig-storage/livenessprobe:v2.20.0"),
        Ok(Role::NotRun(_))
    ));
    let e = role_of("example.com/mystery:1").unwrap_err();
    assert!(e.contains("no binary for the image"), "{e}");
}

#[test]
fn variables_expand_as_kubelet_expands_them() {
    let env: BTreeMap<String, String> = [("NAMESPACE".to_owned(), "rds-csi".to_owned())].into();
    assert_eq!(expand("--ns=$(NAMESPACE)", &env), "--ns=rds-csi");
    assert_eq!(expand("$(NAMESPACE)/$(NAMESPACE)", &env), "rds-csi/rds-csi");
    assert_eq!(expand("$$(NAMESPACE)", &env), "$(NAMESPACE)");
    assert_eq!(expand("$(UNKNOWN) $x $(", &env), "$(UNKNOWN) $x $(");
    assert_eq!(expand("plain", &env), "plain");
}

#[test]
fn paths_under_mounts_move_to_their_folders() {
    let mounts = vec![
        ("/csi".to_owned(), PathBuf::from("/t/pod/socket-dir")),
        ("/etc/rds-csi/ssh".to_owned(), PathBuf::from("/t/pod/ssh")),
        ("/etc/rds-csi".to_owned(), PathBuf::from("/t/pod/etc")),
    ];
    assert_eq!(
        rewrite_path("unix:///csi/csi.sock", &mounts),
        "unix:///t/pod/socket-dir/csi.sock"
    );
    assert_eq!(
        rewrite_path("/csi/csi.sock", &mounts),
        "/t/pod/socket-dir/csi.sock"
    );
    assert_eq!(rewrite_path("/csi", &mounts), "/t/pod/socket-dir");
    // The longest mount path wins.
    assert_eq!(
        rewrite_path("/etc/rds-csi/ssh/id", &mounts),
        "/t/pod/ssh/id"
    );
    // Not a prefix at a path boundary: unchanged.
    assert_eq!(rewrite_path("/csix/a", &mounts), "/csix/a");
    assert_eq!(rewrite_path("controller", &mounts), "controller");
}

#[test]
fn arguments_keep_their_flags_and_listen_on_fresh_ports() {
    let mounts = vec![("/csi".to_owned(), PathBuf::from("/t/s"))];
    let mut next = 40000;
    let mut port = || {
        next += 1;
        Ok(next)
    };
    assert_eq!(
        rewrite_arg("--csi-address=/csi/csi.sock", &mounts, &mut port).unwrap(),
        ("--csi-address=/t/s/csi.sock".to_owned(), None)
    );
    assert_eq!(
        rewrite_arg("--http-endpoint=:9810", &mounts, &mut port).unwrap(),
        ("--http-endpoint=127.0.0.1:40001".to_owned(), Some(40001))
    );
    assert_eq!(
        rewrite_arg("--metrics-address=0.0.0.0:8080", &mounts, &mut port).unwrap(),
        ("--metrics-address=127.0.0.1:40002".to_owned(), Some(40002))
    );
    // An empty listen address means "off": left alone.
    assert_eq!(
        rewrite_arg("--http-endpoint=", &mounts, &mut port).unwrap(),
        ("--http-endpoint=".to_owned(), None)
    );
    assert_eq!(
        rewrite_arg("--leader-election", &mounts, &mut port).unwrap(),
        ("--leader-election".to_owned(), None)
    );
}

#[test]
fn the_downward_api_gives_what_a_pod_would_see() {
    let t = parse_workload(&deployment()).unwrap();
    assert_eq!(
        field("metadata.namespace", "p-0", &t, "node-1").unwrap(),
        "rds-csi"
    );
    assert_eq!(field("metadata.name", "p-0", &t, "node-1").unwrap(), "p-0");
    assert_eq!(
        field("spec.nodeName", "p-0", &t, "node-1").unwrap(),
        "node-1"
    );
    assert!(field("metadata.uid", "p-0", &t, "node-1").is_err());
}

#[test]
fn leader_election_gets_the_pods_namespace_a_pod_would_find() {
    let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let want = ["--leader-election-namespace=kube-system".to_owned()];
    for on in [
        &["--v=5", "--leader-election=true"][..],
        &["--leader-election"],
        &["-leader-election=1"],
    ] {
        assert_eq!(in_cluster_args(&args(on), "kube-system"), want, "{on:?}");
    }
    for off in [
        &["--v=5"][..],
        &["--leader-election=false"],
        &[
            "--leader-election",
            "--leader-election-namespace=$(NAMESPACE)",
        ],
        &["--leader-election=true", "-leader-election-namespace=x"],
    ] {
        assert!(
            in_cluster_args(&args(off), "kube-system").is_empty(),
            "{off:?}"
        );
    }
}

#[test]
fn mounts_need_volumes_and_secret_items_stay_inside() {
    let t = parse_workload(&deployment()).unwrap();
    let volumes: BTreeMap<String, PathBuf> =
        [("socket-dir".to_owned(), PathBuf::from("/t/s"))].into();
    let m = mount_folders(&t.containers[1], &volumes).unwrap();
    assert_eq!(m, [("/csi".to_owned(), PathBuf::from("/t/s"))]);
    let e = mount_folders(&t.containers[0], &volumes).unwrap_err();
    assert!(e.contains("mounts ssh"), "{e}");
    assert_eq!(
        secret_file(Path::new("/v"), "a/id").unwrap(),
        PathBuf::from("/v/a/id")
    );
    assert!(secret_file(Path::new("/v"), "../id").is_err());
    assert!(secret_file(Path::new("/v"), "/id").is_err());
}
