//! The API in process: the router called with `oneshot`, no listener, no Temporal. Its
//! store is a fresh SQLite database; callers sign in with tokens of an OIDC issuer
//! stand-in; runs go to an [`InProcessEngine`].

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tempfile::TempDir;
use tower::ServiceExt;
use uuid::Uuid;
use windlass_api::oidc::{OidcVerifier, TrustedIssuer};
use windlass_api::{ApiConfig, AppState, Authentication};
use windlass_core::Store;
use windlass_core::crypto::LocalKeyFile;
use windlass_core::keys::KeyRing;
use windlass_core::live_logs::LiveLogs;
use windlass_standins::OidcIssuerStandIn;

use windlass_core::audit::Environment;
use windlass_core::rbac::Role;

use crate::InProcessEngine;
use crate::client::{OrganizationClient, Transport};
use crate::tenancy::{record_cluster, token_holding};

/// The application id of Windlass's multi-tenant Entra application in these tests.
pub const APPLICATION_ID: &str = "5c2a7e1d-8b3f-4d6a-9e0c-1f2a3b4c5d6e";

pub struct TestApi {
    router: Router,
    pub store: Store,
    /// What the API asked of the engine.
    pub engine: Arc<InProcessEngine>,
    /// Issues the callers' tokens.
    pub idp: OidcIssuerStandIn,
    /// The person running the tests: admin of every organisation they create.
    pub tester: String,
    _dir: TempDir,
}

impl TestApi {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("windlass.db").display());
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let kek = LocalKeyFile::load_or_create(&dir.path().join("kek")).unwrap();
        let keys = Arc::new(KeyRing::new(store.clone(), Arc::new(kek)));
        let idp = OidcIssuerStandIn::start(0, "windlass-tests").await.unwrap();
        let engine = Arc::new(InProcessEngine::new());
        let router = windlass_api::router(AppState {
            store: store.clone(),
            engine: engine.clone(),
            live_logs: LiveLogs::in_process(),
            config: Arc::new(ApiConfig {
                azure_application_id: APPLICATION_ID.into(),
                workload_identity_issuer: "http://127.0.0.1:9".into(),
                trusted_proxies: Default::default(),
                runs_in_flight_per_organization:
                    windlass_api::DEFAULT_RUNS_IN_FLIGHT_PER_ORGANIZATION,
            }),
            auth: Arc::new(Authentication {
                oidc: OidcVerifier::new(vec![TrustedIssuer {
                    issuer: idp.issuer.clone(),
                    audience: idp.audience.clone(),
                    jwks_uri: idp.jwks_uri.clone(),
                }]),
            }),
            keys,
        });
        let tester = idp.token("tester", &[], 3600);
        Self {
            router,
            store,
            engine,
            idp,
            tester,
            _dir: dir,
        }
    }

    /// One request through the router, as `token` (none: anonymous), with a raw body and
    /// any headers.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut request = request.body(Body::from(body)).unwrap();
        // As the listener's `into_make_service_with_connect_info` would.
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// A JSON request as the tester.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_as(&self.tester, method, path, body, &[]).await
    }

    /// A JSON request as `token`'s holder, with `headers`.
    pub async fn call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        self.raw(method, path, Some(token), &all, body).await
    }

    /// A new organisation, created through the API by the tester.
    pub async fn organization(&self) -> Uuid {
        let (status, org) = self
            .call(
                Method::POST,
                "/v1/organizations",
                Some(json!({"name": format!("acme-{}", Uuid::new_v4())})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{org}");
        org["id"].as_str().unwrap().parse().unwrap()
    }

    /// An organisation with one Azure subscription registered (unverified).
    pub async fn organization_with_azure_account(&self) -> (Uuid, Uuid) {
        let org = self.organization().await;
        let (status, account) = self
            .call(
                Method::POST,
                &format!("/v1/organizations/{org}/cloud-accounts"),
                Some(json!({
                    "provider": "azure",
                    "tenant_id": Uuid::new_v4(),
                    "external_id": Uuid::new_v4(),
                    "display_name": "production",
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{account}");
        (org, account["id"].as_str().unwrap().parse().unwrap())
    }

    /// Marks the account verified in the store, as a succeeded access setup would.
    pub async fn mark_verified(&self, org: Uuid, account: Uuid) {
        self.store
            .mark_cloud_account_verified(org, account)
            .await
            .unwrap();
    }

    /// A project of `org`, created through the API by the tester.
    pub async fn project(&self, org: Uuid, name: &str) -> Uuid {
        let (status, project) = self
            .call(
                Method::POST,
                &format!("/v1/organizations/{org}/projects"),
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{project:#}");
        project["id"].as_str().unwrap().parse().unwrap()
    }

    /// A cluster record of `org` hosting only `types` (recorded, not provisioned).
    pub async fn cluster_hosting(
        &self,
        org: Uuid,
        account: Uuid,
        name: &str,
        types: &[Environment],
    ) -> Uuid {
        record_cluster(&self.store, org, account, name, types).await
    }

    /// The API as `token`'s holder sees it.
    pub fn caller(&self, token: impl Into<String>) -> TestCaller<'_> {
        TestCaller {
            api: self,
            token: token.into(),
        }
    }

    /// A machine caller of `org` holding exactly `role` (an API token issued through the
    /// store, as an administrator would have issued it).
    pub async fn caller_holding(&self, org: Uuid, role: &Role) -> TestCaller<'_> {
        self.caller(token_holding(&self.store, org, role).await)
    }

    /// `org`'s part of the API, typed, as the tester.
    pub fn organization_client(&self, org: Uuid) -> OrganizationClient<'_, Self> {
        OrganizationClient::new(self, org)
    }
}

/// The tester's calls.
#[async_trait::async_trait]
impl Transport for TestApi {
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        self.call_as(&self.tester, method, path, body, headers)
            .await
    }
}

/// One caller of the in-process API: requests carry their token.
pub struct TestCaller<'a> {
    api: &'a TestApi,
    pub token: String,
}

impl TestCaller<'_> {
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.api
            .call_as(&self.token, Method::GET, path, None, &[])
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.api
            .call_as(&self.token, Method::POST, path, Some(body), &[])
            .await
    }

    /// Any method with a raw JSON body (empty: none).
    pub async fn send(&self, method: Method, path: &str, body: Vec<u8>) -> (StatusCode, Value) {
        self.api
            .raw(
                method,
                path,
                Some(&self.token),
                &[("content-type", "application/json")],
                body,
            )
            .await
    }
}

#[async_trait::async_trait]
impl Transport for TestCaller<'_> {
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        self.api
            .call_as(&self.token, method, path, body, headers)
            .await
    }
}
