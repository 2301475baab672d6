//! The run backplane over HTTP: a placed worker's activities reach the store through the
//! API's placement routes, authenticated with the placement credential. The API answers
//! only for runs of the placement's organisation whose cluster routes to the placement.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;
use windlass_core::placement_wire::{
    GrantedSecret, PayloadKeysResponse, RunSecretRequest, StepFinished, StepJournalled,
    StepLogAppend, StepStarted,
};
use windlass_core::step_logs::LogLine;
use windlass_core::{Error, Result};
use windlass_workflows::deployment_contracts::{
    BeginDeployment, DeploymentStart, DropQueued, FinishDeployment,
};
use windlass_workflows::run_contracts::RunOutcome;
use zeroize::Zeroizing;

use crate::backplane::RunBackplane;

pub struct ApiBackplane {
    http: reqwest::Client,
    base: String,
    credential: Zeroizing<String>,
}

impl std::fmt::Debug for ApiBackplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiBackplane")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl ApiBackplane {
    pub fn new(base: &str, credential: Zeroizing<String>) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::BackplaneUnavailable(e.to_string()))?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            credential,
        })
    }

    async fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.credential.as_str());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Error::BackplaneUnavailable(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_success() {
            let bytes = response
                .bytes()
                .await
                .map_err(|e| Error::BackplaneUnavailable(e.without_url().to_string()))?;
            // Routes that answer 204 decode as unit.
            let bytes = if bytes.is_empty() {
                &b"null"[..]
            } else {
                &bytes
            };
            return serde_json::from_slice(bytes)
                .map_err(|e| Error::InvalidInput(format!("placement route {path}: {e}")));
        }
        let detail = response
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_owned))
            .unwrap_or_else(|| status.to_string());
        Err(match status {
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => Error::Forbidden(detail),
            StatusCode::NOT_FOUND => Error::NotFound {
                entity: "placement route target",
                id: detail,
            },
            StatusCode::CONFLICT => Error::Conflict(detail),
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => {
                Error::InvalidInput(detail)
            }
            _ => Error::BackplaneUnavailable(detail),
        })
    }

    async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// The organisation's payload keys, for the placed worker's codec.
    pub async fn payload_keys(&self) -> Result<PayloadKeysResponse> {
        self.call::<(), _>(reqwest::Method::GET, "/v1/placement/payload-keys", None)
            .await
    }
}

#[async_trait]
impl RunBackplane for ApiBackplane {
    async fn step_started(
        &self,
        run_id: Uuid,
        step: StepStarted,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        // An API older than the answer replies 204: no first start known.
        let journalled: Option<StepJournalled> = self
            .post(&format!("/v1/placement/runs/{run_id}/steps/started"), &step)
            .await?;
        Ok(journalled.map(|j| j.first_started_at))
    }

    async fn step_finished(&self, run_id: Uuid, step: StepFinished) -> Result<()> {
        self.post(
            &format!("/v1/placement/runs/{run_id}/steps/finished"),
            &step,
        )
        .await
    }

    async fn append_step_log(&self, run_id: Uuid, step_key: &str, lines: &[LogLine]) -> Result<()> {
        let body = StepLogAppend {
            step_key: step_key.to_owned(),
            lines: lines.to_vec(),
        };
        self.post(&format!("/v1/placement/runs/{run_id}/steps/log"), &body)
            .await
    }

    async fn run_secret(
        &self,
        run_id: Uuid,
        _organization_id: Uuid,
        name: &str,
    ) -> Result<GrantedSecret> {
        // The organisation is the placement's: the API does not take it from the worker.
        let body = RunSecretRequest {
            name: name.to_owned(),
        };
        self.post(&format!("/v1/placement/runs/{run_id}/secret"), &body)
            .await
    }

    async fn begin_deployment(&self, request: &BeginDeployment) -> Result<DeploymentStart> {
        self.post(
            &format!("/v1/placement/runs/{}/deployment/begin", request.run_id),
            request,
        )
        .await
    }

    async fn finish_deployment(&self, request: &FinishDeployment) -> Result<()> {
        self.post(
            &format!("/v1/placement/runs/{}/deployment/finish", request.run_id),
            request,
        )
        .await
    }

    async fn drop_queued(&self, request: &DropQueued) -> Result<()> {
        self.post(
            &format!("/v1/placement/runs/{}/deployment/drop", request.run_id),
            request,
        )
        .await
    }

    async fn record_outcome(&self, outcome: &RunOutcome) -> Result<()> {
        let Some(run_id) = windlass_core::runs::Run::id_from_workflow_id(&outcome.workflow_id)
        else {
            return Ok(());
        };
        self.post(&format!("/v1/placement/runs/{run_id}/outcome"), outcome)
            .await
    }
}
