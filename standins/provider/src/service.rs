//! The gRPC services Terraform calls: tfplugin6.Provider and go-plugin's controller.

use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use tonic::codegen::Service;
use tonic::{Request, Response, Status};

use crate::handshake::{self, Handshake};
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
}

impl ProviderService {
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

fn unimplemented_resource(type_name: &str) -> Status {
    Status::unimplemented(format!(
        "the provider stand-in serves {type_name}'s schema but does not manage it"
    ))
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
        Err(unimplemented_resource(&request.get_ref().type_name))
    }

    async fn configure_provider(
        &self,
        _request: Request<pb::configure_provider::Request>,
    ) -> Result<Response<pb::configure_provider::Response>, Status> {
        Ok(Response::new(Default::default()))
    }

    async fn read_resource(
        &self,
        request: Request<pb::read_resource::Request>,
    ) -> Result<Response<pb::read_resource::Response>, Status> {
        Err(unimplemented_resource(&request.get_ref().type_name))
    }

    async fn plan_resource_change(
        &self,
        request: Request<pb::plan_resource_change::Request>,
    ) -> Result<Response<pb::plan_resource_change::Response>, Status> {
        Err(unimplemented_resource(&request.get_ref().type_name))
    }

    async fn apply_resource_change(
        &self,
        request: Request<pb::apply_resource_change::Request>,
    ) -> Result<Response<pb::apply_resource_change::Response>, Status> {
        Err(unimplemented_resource(&request.get_ref().type_name))
    }

    async fn import_resource_state(
        &self,
        request: Request<pb::import_resource_state::Request>,
    ) -> Result<Response<pb::import_resource_state::Response>, Status> {
        Err(unimplemented_resource(&request.get_ref().type_name))
    }

    async fn read_data_source(
        &self,
        request: Request<pb::read_data_source::Request>,
    ) -> Result<Response<pb::read_data_source::Response>, Status> {
        Err(unimplemented_resource(&request.get_ref().type_name))
    }

    async fn stop_provider(
        &self,
        _request: Request<pb::stop_provider::Request>,
    ) -> Result<Response<pb::stop_provider::Response>, Status> {
        Ok(Response::new(Default::default()))
    }
}
