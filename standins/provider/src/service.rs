//! The gRPC services Terraform calls: tfplugin6.Provider and go-plugin's controller.

use std::sync::{Arc, Mutex};

use hyper_util::rt::{TokioExecutor, TokioIo};
use tonic::codegen::Service;
use tonic::{Request, Response, Status};

use crate::aws::AwsCloud;
use crate::azure::AzureCloud;
use crate::cloud::{Cloud, CloudError};
use crate::handshake::{self, Handshake};
use crate::plan;
use crate::proto::plugin;
use crate::proto::tfplugin6 as pb;
use crate::schema::{Block, ProviderSchema};
use crate::validate;
use crate::value::{self, Value};

pub async fn serve(handshake: Handshake, schema: ProviderSchema) -> anyhow::Result<()> {
    let (tls, cert_field) = handshake.tls()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let (shutdown_tx, mut shutdown_rx) = tokio::sync::watch::channel(false);
    let provider = pb::provider_server::ProviderServer::new(ProviderService {
        schema: Arc::new(schema),
        cloud: Mutex::new(None),
    })
    .max_decoding_message_size(256 << 20);
    let controller = plugin::grpc_controller_server::GrpcControllerServer::new(Controller {
        shutdown: shutdown_tx,
    });
    handshake::announce(listener.local_addr()?, &cert_field)?;
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = shutdown_rx.changed() => return Ok(()),
        };
        let tls = tls.clone();
        let provider = provider.clone();
        let controller = controller.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                let mut provider = provider.clone();
                let mut controller = controller.clone();
                async move {
                    if req.uri().path().starts_with("/plugin.GRPCController/") {
                        controller.call(req).await
                    } else {
                        provider.call(req).await
                    }
                }
            });
            let http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            let served = match tls {
                Some(config) => match tokio_rustls::TlsAcceptor::from(config).accept(tcp).await {
                    Ok(stream) => http2.serve_connection(TokioIo::new(stream), service).await,
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS handshake with terraform failed");
                        return;
                    }
                },
                None => http2.serve_connection(TokioIo::new(tcp), service).await,
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
}

struct Controller {
    shutdown: tokio::sync::watch::Sender<bool>,
}

#[tonic::async_trait]
impl plugin::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(
        &self,
        _request: Request<plugin::Empty>,
    ) -> Result<Response<plugin::Empty>, Status> {
        let _ = self.shutdown.send(true);
        Ok(Response::new(plugin::Empty {}))
    }
}

struct ProviderService {
    schema: Arc<ProviderSchema>,
    /// Set by ConfigureProvider.
    cloud: Mutex<Option<Result<Arc<dyn Cloud>, String>>>,
}

impl ProviderService {
    fn cloud(&self) -> Result<Arc<dyn Cloud>, String> {
        self.cloud
            .lock()
            .expect("not poisoned")
            .clone()
            .unwrap_or_else(|| Err("the provider was not configured".to_owned()))
    }

    fn resource_block(&self, type_name: &str) -> Result<&Block, Status> {
        self.schema.resources.get(type_name).ok_or_else(|| {
            Status::invalid_argument(format!(
                "{} {} has no resource type {type_name}",
                self.schema.identity.name, self.schema.identity.version
            ))
        })
    }
}

/// A value Terraform sent (always MessagePack; JSON only in raw states).
fn decode_dynamic(value: Option<&pb::DynamicValue>) -> Result<Value, Status> {
    match value {
        None => Ok(Value::Null),
        Some(v) if !v.msgpack.is_empty() => value::decode(&v.msgpack)
            .map_err(|e| Status::invalid_argument(format!("a DynamicValue: {e}"))),
        Some(v) if !v.json.is_empty() => serde_json::from_slice(&v.json)
            .map(|json| Value::from_json(&json))
            .map_err(|e| Status::invalid_argument(format!("a DynamicValue: {e}"))),
        Some(_) => Ok(Value::Null),
    }
}

fn dynamic(value: &Value) -> pb::DynamicValue {
    pb::DynamicValue {
        msgpack: value::encode(value),
        json: vec![],
    }
}

fn error(summary: &str, detail: impl Into<String>) -> pb::Diagnostic {
    pb::Diagnostic {
        severity: pb::diagnostic::Severity::Error as i32,
        summary: summary.to_owned(),
        detail: detail.into(),
        attribute: None,
    }
}

fn apply_response(
    state: &Value,
    diagnostics: Vec<pb::Diagnostic>,
) -> pb::apply_resource_change::Response {
    pb::apply_resource_change::Response {
        new_state: Some(dynamic(state)),
        private: vec![],
        diagnostics,
        legacy_type_system: true,
    }
}

#[tonic::async_trait]
impl pb::provider_server::Provider for ProviderService {
    async fn get_provider_schema(
        &self,
        _request: Request<pb::get_provider_schema::Request>,
    ) -> Result<Response<pb::get_provider_schema::Response>, Status> {
        Ok(Response::new(self.schema.response.clone()))
    }

    async fn validate_provider_config(
        &self,
        _request: Request<pb::validate_provider_config::Request>,
    ) -> Result<Response<pb::validate_provider_config::Response>, Status> {
        // Terraform itself checks the configuration against the schema; the provider's
        // own checks (value ranges, conflicts) are not simulated.
        Ok(Response::new(Default::default()))
    }

    async fn validate_resource_config(
        &self,
        request: Request<pb::validate_resource_config::Request>,
    ) -> Result<Response<pb::validate_resource_config::Response>, Status> {
        let request = request.into_inner();
        let block = self.resource_block(&request.type_name)?;
        let config = decode_dynamic(request.config.as_ref())?;
        Ok(Response::new(pb::validate_resource_config::Response {
            diagnostics: validate::read_only_violations(block, &config),
        }))
    }

    async fn validate_data_resource_config(
        &self,
        _request: Request<pb::validate_data_resource_config::Request>,
    ) -> Result<Response<pb::validate_data_resource_config::Response>, Status> {
        Ok(Response::new(Default::default()))
    }

    async fn upgrade_resource_state(
        &self,
        request: Request<pb::upgrade_resource_state::Request>,
    ) -> Result<Response<pb::upgrade_resource_state::Response>, Status> {
        let request = request.into_inner();
        let block = self.resource_block(&request.type_name)?;
        let raw = request.raw_state.map(|r| r.json).unwrap_or_default();
        let json: serde_json::Value = serde_json::from_slice(&raw)
            .map_err(|e| Status::invalid_argument(format!("the raw state is no JSON: {e}")))?;
        let state = plan::conform(block, &Value::from_json(&json));
        Ok(Response::new(pb::upgrade_resource_state::Response {
            upgraded_state: Some(dynamic(&state)),
            diagnostics: vec![],
        }))
    }

    async fn configure_provider(
        &self,
        request: Request<pb::configure_provider::Request>,
    ) -> Result<Response<pb::configure_provider::Response>, Status> {
        let config = decode_dynamic(request.get_ref().config.as_ref())?;
        let cloud: Result<Arc<dyn Cloud>, CloudError> = match self.schema.identity.name.as_str() {
            "azurerm" => AzureCloud::configure(&config)
                .await
                .map(|c| Arc::new(c) as Arc<dyn Cloud>),
            "aws" => AwsCloud::configure(&config)
                .await
                .map(|c| Arc::new(c) as Arc<dyn Cloud>),
            other => Err(CloudError::Unsupported(format!("{other} resources"))),
        };
        // A provider that cannot reach its cloud still validates and plans creates; the
        // reason is reported when a resource needs the cloud. A cloud that answers but
        // refuses (an account the configuration does not allow) fails the configuration,
        // as the real provider fails it.
        let mut response = pb::configure_provider::Response::default();
        if let Err(CloudError::Refused(reason)) = &cloud {
            response
                .diagnostics
                .push(error("Invalid provider configuration", reason.clone()));
        }
        *self.cloud.lock().expect("not poisoned") = Some(cloud.map_err(|e| e.to_string()));
        Ok(Response::new(response))
    }

    async fn read_resource(
        &self,
        request: Request<pb::read_resource::Request>,
    ) -> Result<Response<pb::read_resource::Response>, Status> {
        let request = request.into_inner();
        let block = self.resource_block(&request.type_name)?;
        let current = plan::conform(block, &decode_dynamic(request.current_state.as_ref())?);
        let mut response = pb::read_resource::Response {
            new_state: Some(dynamic(&current)),
            diagnostics: vec![],
            private: request.private,
        };
        match self.cloud() {
            Err(e) => response
                .diagnostics
                .push(error("Provider not configured", e)),
            Ok(cloud) => match cloud.exists(&request.type_name, &current).await {
                // Gone from the cloud: Terraform drops it from the state and plans it anew.
                Ok(false) => response.new_state = Some(dynamic(&Value::Null)),
                Ok(true) => {}
                Err(e) => response.diagnostics.push(error(
                    &format!("reading {}", request.type_name),
                    e.to_string(),
                )),
            },
        }
        Ok(Response::new(response))
    }

    async fn plan_resource_change(
        &self,
        request: Request<pb::plan_resource_change::Request>,
    ) -> Result<Response<pb::plan_resource_change::Response>, Status> {
        let request = request.into_inner();
        let block = self.resource_block(&request.type_name)?;
        let prior = decode_dynamic(request.prior_state.as_ref())?;
        let proposed = decode_dynamic(request.proposed_new_state.as_ref())?;
        let (mut planned, requires_replace) = match (&prior, &proposed) {
            (_, Value::Null) => (Value::Null, vec![]),
            (Value::Null, _) => (plan::plan_create(block, &proposed), vec![]),
            _ => plan::plan_update(block, &prior, &proposed),
        };
        if let (false, Ok(cloud)) = (planned.is_null(), self.cloud()) {
            let config = decode_dynamic(request.config.as_ref())?;
            planned = cloud.plan(&request.type_name, &prior, &config, planned);
        }
        Ok(Response::new(pb::plan_resource_change::Response {
            planned_state: Some(dynamic(&planned)),
            requires_replace,
            planned_private: request.prior_private,
            diagnostics: vec![],
            legacy_type_system: true,
        }))
    }

    async fn apply_resource_change(
        &self,
        request: Request<pb::apply_resource_change::Request>,
    ) -> Result<Response<pb::apply_resource_change::Response>, Status> {
        let request = request.into_inner();
        let type_name = request.type_name.as_str();
        let block = self.resource_block(type_name)?;
        let prior = decode_dynamic(request.prior_state.as_ref())?;
        let planned = decode_dynamic(request.planned_state.as_ref())?;
        let cloud = match self.cloud() {
            Ok(cloud) => cloud,
            Err(e) => {
                return Ok(Response::new(apply_response(
                    &prior,
                    vec![error("Provider not configured", e)],
                )));
            }
        };
        let outcome = match (&prior, &planned) {
            (_, Value::Null) => cloud.delete(type_name, &prior).await.map(|()| Value::Null),
            (Value::Null, _) => cloud
                .create(type_name, &planned)
                .await
                .map(|observed| plan::settle(block, &planned, &observed)),
            _ => cloud
                .update(type_name, &planned)
                .await
                .map(|observed| plan::settle(block, &planned, &observed)),
        };
        Ok(Response::new(match outcome {
            Ok(state) => apply_response(&state, vec![]),
            // What the cloud refused did not happen: the state stays what it was.
            Err(e) => apply_response(
                &prior,
                vec![error(&format!("applying {type_name}"), e.to_string())],
            ),
        }))
    }

    async fn import_resource_state(
        &self,
        request: Request<pb::import_resource_state::Request>,
    ) -> Result<Response<pb::import_resource_state::Response>, Status> {
        let request = request.into_inner();
        let block = self.resource_block(&request.type_name)?;
        let imported = match self.cloud() {
            Err(e) => Err(e),
            Ok(cloud) => cloud
                .import(&request.type_name, &request.id)
                .await
                .map_err(|e| e.to_string()),
        };
        Ok(Response::new(match imported {
            Ok(attrs) => pb::import_resource_state::Response {
                imported_resources: vec![pb::import_resource_state::ImportedResource {
                    type_name: request.type_name.clone(),
                    state: Some(dynamic(&plan::conform(block, &attrs))),
                    private: vec![],
                }],
                diagnostics: vec![],
            },
            Err(e) => pb::import_resource_state::Response {
                imported_resources: vec![],
                diagnostics: vec![error(&format!("importing {}", request.type_name), e)],
            },
        }))
    }

    async fn read_data_source(
        &self,
        request: Request<pb::read_data_source::Request>,
    ) -> Result<Response<pb::read_data_source::Response>, Status> {
        Err(Status::unimplemented(format!(
            "the provider stand-in reads no data source ({})",
            request.get_ref().type_name
        )))
    }

    async fn stop_provider(
        &self,
        _request: Request<pb::stop_provider::Request>,
    ) -> Result<Response<pb::stop_provider::Response>, Status> {
        Ok(Response::new(Default::default()))
    }
}
