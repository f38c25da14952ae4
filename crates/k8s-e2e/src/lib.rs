//! Real Kubernetes drives the driver: a control plane on loopback (etcd,
//! kube-apiserver with RBAC, kube-controller-manager), our manifests applied
//! as a user applies them, and the controller Deployment's containers (our
//! plugin and the real CSI sidecars) run as processes with the Deployment's
//! own arguments and its ServiceAccount's own token. Flows then make PVCs
//! and check what happens on the API objects and on the simulator.
//!
//! - [`cluster`]: everything started, and the helpers flows use.
//! - [`flows`]: the flows, by name.
//! - [`control_plane`], [`pki`]: etcd, the API server, the controller
//!   manager, and their certificates.
//! - [`snapshots`]: the snapshot CRDs and snapshot-controller, from the
//!   external-snapshotter's modules; [`btrfs`]: the simulator's btrfs pool
//!   as btrfs lists it.
//! - [`manifests`]: rendering the kustomize overlay or the Helm chart;
//!   [`compare`]: the chart against the kustomize base; [`versions`]: the
//!   sidecar tags against the tools module.
//! - [`template`], [`pod`]: a pod template read as kubelet reads it, and
//!   its containers run as processes.
//! - [`kubectl`], [`http`], [`process`], [`ports`], [`support`]: the API
//!   through kubectl, plain HTTP, child processes, free ports, waiting.

pub mod btrfs;
pub mod cluster;
pub mod compare;
pub mod control_plane;
pub mod flows;
pub mod http;
pub mod kubectl;
pub mod manifests;
pub mod pki;
pub mod pod;
pub mod ports;
pub mod process;
pub mod snapshots;
pub mod support;
pub mod template;
pub mod versions;
