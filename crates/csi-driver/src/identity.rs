//! The CSI Identity service: who the plugin is, what it can do, whether it is
//! healthy.

use std::sync::Arc;

use csi_proto::v1::identity_server::Identity;
use csi_proto::v1::plugin_capability::{self, service, volume_expansion};
use csi_proto::v1::{
    GetPluginCapabilitiesRequest, GetPluginCapabilitiesResponse, GetPluginInfoRequest,
    GetPluginInfoResponse, PluginCapability, ProbeRequest, ProbeResponse,
};
use rds_client::RdsClient;
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
        if let Some(rds) = &self.rds {
            let resource = rds.system_resource().await.map_err(|e| {
                DriverError::FailedPrecondition(format!("the RDS is not usable: {e}"))
            })?;
            if resource.version < routeros::MINIMUM_VERSION {
                return Err(DriverError::FailedPrecondition(format!(
                    "the RDS runs RouterOS {}, but this driver needs {} or newer",
                    resource.version_text,
                    routeros::MINIMUM_VERSION
                )));
            }
        }
        Ok(ProbeResponse { ready: Some(true) })
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
