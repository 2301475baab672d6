use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Windlass API",
        description = "Starts durable workflows (cloud access, clusters, deployments) and reads their state. Errors are application/problem+json."
    ),
    tags(
        (name = "runs", description = "Workflow runs and their steps"),
        (name = "organizations"),
        (name = "cloud accounts"),
        (name = "audit", description = "The append-only, hash-chained audit trail"),
        (name = "access", description = "Role bindings, IdP group mappings, API tokens"),
        (name = "health")
    )
)]
pub(crate) struct ApiDoc;

pub(crate) fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document served at `/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    crate::api_routes().into_openapi()
}
