//! The CSI Identity service: who the plugin is, what it can do, whether it is
//! healthy.
//!
//! Probe comes every few seconds from every sidecar. In the controller it
//! answers from what the RDS client already knows (its status, kept true by
//! the connection monitor), without a round trip: an RDS known to be down
//! or too old is FAILED_PRECONDITION at once, naming why. Only while nothing
//! is known yet (before the first check) does it ask the RDS itself.

use std::sync::Arc;

use csi_proto::v1::identity_server::Identity;
use csi_proto::v1::plugin_capability::{self, service, volume_expansion};
use csi_proto::v1::{
    GetPluginCapabilitiesRequest, GetPluginCapabilitiesResponse, GetPluginInfoRequest,
    GetPluginInfoResponse, PluginCapability, ProbeRequest, ProbeResponse,
};
use rds_client::{RdsClient, RdsStatus, Reachability};
use tonic::{Request, Response, Status};

use crate::error::DriverError;
use crate::rpc::call;

/// The Identity service.
pub struct IdentityService {
    name: String,
    version: String,
    /// Set when the plugin runs the controller: Probe then checks the RDS.
    rds: Option<Arc<RdsClient>>,
}

impl IdentityService {
    /// An Identity service for driver `name`; `rds` when serving the controller.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        rds: Option<Arc<RdsClient>>,
    ) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            rds,
        }
    }

    async fn probe(&self) -> Result<ProbeResponse, DriverError> {
        let Some(rds) = &self.rds else {
            return Ok(ProbeResponse { ready: Some(true) });
        };
        let mut status = rds.status();
        if !is_known(&status) {
            rds.check().await.map_err(|e| {
                DriverError::FailedPrecondition(format!(
                    "the RDS at {} is not usable: {e}",
                    status.address
                ))
            })?;
            status = rds.status();
        }
        probe_answer(&status)
    }
}

/// Whether the status says enough to answer Probe without asking the RDS:
/// it is down, or it is up and its RouterOS version has been read.
fn is_known(status: &RdsStatus) -> bool {
    match status.reachability {
        Reachability::Unknown => false,
        Reachability::Down => true,
        Reachability::Up => status.version.is_some(),
    }
}

/// Probe's answer for a known status: ready, or FAILED_PRECONDITION saying
/// why not (the address, and the last error or the version).
fn probe_answer(status: &RdsStatus) -> Result<ProbeResponse, DriverError> {
    match status.problem() {
        None => Ok(ProbeResponse { ready: Some(true) }),
        Some(problem) => Err(DriverError::FailedPrecondition(problem)),
    }
}

#[tonic::async_trait]
impl Identity for IdentityService {
    async fn get_plugin_info(
        &self,
        _request: Request<GetPluginInfoRequest>,
    ) -> Result<Response<GetPluginInfoResponse>, Status> {
        call("GetPluginInfo", "", async {
            Ok(GetPluginInfoResponse {
                name: self.name.clone(),
                vendor_version: self.version.clone(),
                manifest: Default::default(),
            })
        })
        .await
    }

    async fn get_plugin_capabilities(
        &self,
        _request: Request<GetPluginCapabilitiesRequest>,
    ) -> Result<Response<GetPluginCapabilitiesResponse>, Status> {
        call("GetPluginCapabilities", "", async {
            let mut capabilities = vec![PluginCapability {
                r#type: Some(plugin_capability::Type::VolumeExpansion(
                    plugin_capability::VolumeExpansion {
                        r#type: volume_expansion::Type::Online as i32,
                    },
                )),
            }];
            if self.rds.is_some() {
                capabilities.push(PluginCapability {
                    r#type: Some(plugin_capability::Type::Service(
                        plugin_capability::Service {
                            r#type: service::Type::ControllerService as i32,
                        },
                    )),
                });
            }
            Ok(GetPluginCapabilitiesResponse { capabilities })
        })
        .await
    }

    async fn probe(
        &self,
        _request: Request<ProbeRequest>,
    ) -> Result<Response<ProbeResponse>, Status> {
        call("Probe", "", self.probe()).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tonic::Code;

    use super::*;

    fn status(reachability: Reachability, version: Option<&str>, too_old: bool) -> RdsStatus {
        RdsStatus {
            address: "10.0.0.1:22".into(),
            reachability,
            since: Instant::now(),
            last_error: Some("cannot connect to the RDS at 10.0.0.1:22: refused".into()),
            version: version.map(str::to_owned),
            too_old,
        }
    }

    #[test]
    fn probe_asks_the_rds_only_while_nothing_is_known() {
        assert!(!is_known(&status(Reachability::Unknown, None, false)));
        assert!(!is_known(&status(Reachability::Up, None, false)));
        assert!(is_known(&status(Reachability::Up, Some("7.21.1"), false)));
        assert!(is_known(&status(Reachability::Down, None, false)));
    }

    #[test]
    fn probe_answers_from_a_known_status() {
        let ready = probe_answer(&status(Reachability::Up, Some("7.21.1"), false)).unwrap();
        assert_eq!(ready.ready, Some(true));

        let down =
            Status::from(probe_answer(&status(Reachability::Down, None, false)).unwrap_err());
        assert_eq!(down.code(), Code::FailedPrecondition);
        assert!(
            down.message().contains("10.0.0.1:22") && down.message().contains("refused"),
            "{}",
            down.message()
        );

        let old = Status::from(
            probe_answer(&status(Reachability::Up, Some("7.20.2"), true)).unwrap_err(),
        );
        assert_eq!(old.code(), Code::FailedPrecondition);
        assert!(old.message().contains("7.20.2"), "{}", old.message());
    }
}
