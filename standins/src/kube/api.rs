//! The Kubernetes REST surface: path routing, CRUD, list, watch and patch,
//! answering in the API's JSON shapes (`Status` for errors, `<Kind>List` for
//! lists, newline-delimited watch events).

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::{
    body::{Body, Bytes},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::Shared;
use super::managed::Writer;
use super::registry::{self, ResourceType};
use super::select::{FieldSelector, LabelSelector};
use super::store::{ApiError, Event, Ownership};
use super::{patch, proto};

/// What a request path addresses.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    Version,
    Health,
    CoreVersions,
    Groups,
    Group(&'a str),
    Resources(&'a str, &'a str),
    Object(ObjectPath<'a>),
    OpenApiRoot,
    /// `/openapi/v3/apis/apps/v1`: group and version.
    OpenApi(&'a str, &'a str),
    Unknown,
}

#[derive(Debug, PartialEq, Eq)]
struct ObjectPath<'a> {
    group: &'a str,
    version: &'a str,
    namespace: Option<&'a str>,
    resource: &'a str,
    name: Option<&'a str>,
    subresource: Option<&'a str>,
}

fn parse_path<'a>(path: &'a str) -> Target<'a> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let (group, version, rest) = match parts.as_slice() {
        ["version"] => return Target::Version,
        ["healthz" | "readyz" | "livez", ..] => return Target::Health,
        ["api"] => return Target::CoreVersions,
        ["apis"] => return Target::Groups,
        ["apis", group] => return Target::Group(group),
        ["api", version] => return Target::Resources("", version),
        ["apis", group, version] => return Target::Resources(group, version),
        ["openapi", "v3"] => return Target::OpenApiRoot,
        ["openapi", "v3", "api", version] => return Target::OpenApi("", version),
        ["openapi", "v3", "apis", group, version] => return Target::OpenApi(group, version),
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Target::Unknown,
    };
    let object = |namespace, rest: &[&'a str]| -> Target<'a> {
        object_path(group, version, namespace, rest)
    };
    match rest {
        // `namespaces/{ns}/status` is the namespace's own subresource, not a
        // resource type called "status" inside it.
        ["namespaces", ns, kind, ..] if !matches!(*kind, "status" | "finalize") => {
            object(Some(*ns), &rest[2..])
        }
        _ => object(None, rest),
    }
}

fn object_path<'a>(
    group: &'a str,
    version: &'a str,
    namespace: Option<&'a str>,
    rest: &[&'a str],
) -> Target<'a> {
    match rest {
        [resource] | [resource, _] | [resource, _, _] => Target::Object(ObjectPath {
            group,
            version,
            namespace,
            resource,
            name: rest.get(1).copied(),
            subresource: rest.get(2).copied(),
        }),
        _ => Target::Unknown,
    }
}

pub(crate) async fn handle(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    match parse_path(path) {
        Target::Version => json_reply(
            StatusCode::OK,
            &json!({
                "major": "1",
                "minor": "35",
                "gitVersion": "v1.35.0-windlass-standin",
                "gitCommit": "0000000000000000000000000000000000000000",
                "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z",
                "goVersion": "go1.25",
                "compiler": "gc",
                "platform": "linux/amd64",
            }),
        ),
        Target::Health => (StatusCode::OK, "ok").into_response(),
        Target::CoreVersions => json_reply(StatusCode::OK, &registry::core_versions()),
        Target::Groups => {
            let types = shared.with(|s| s.types().to_vec());
            json_reply(StatusCode::OK, &registry::group_list(&types))
        }
        Target::Group(group) => {
            let types = shared.with(|s| s.types().to_vec());
            let list = registry::group_list(&types);
            match list["groups"]
                .as_array()
                .and_then(|gs| gs.iter().find(|g| g["name"] == group))
            {
                Some(g) => {
                    let mut g = g.clone();
                    g["kind"] = json!("APIGroup");
                    g["apiVersion"] = json!("v1");
                    json_reply(StatusCode::OK, &g)
                }
                None => not_found(),
            }
        }
        Target::Resources(group, version) => {
            let types = shared.with(|s| s.types().to_vec());
            match registry::resource_list(&types, group, version) {
                Some(list) => json_reply(StatusCode::OK, &list),
                None => not_found(),
            }
        }
        Target::Object(p) => {
            let Some(rt) = shared.with(|s| s.find(p.group, p.version, p.resource)) else {
                return not_found();
            };
            if let Some(injected) = shared.with(|s| super::faults::injected(s, method, &rt)) {
                return error_reply(&injected);
            }
            match object(shared, method, &rt, &p, query, headers, body).await {
                Ok(response) => response,
                Err(e) => error_reply(&e),
            }
        }
        Target::OpenApiRoot => {
            let types = shared.with(|s| s.types().to_vec());
            json_reply(StatusCode::OK, &registry::openapi_root(&types))
        }
        Target::OpenApi(group, version) => {
            let types = shared.with(|s| s.types().to_vec());
            match registry::openapi_group_version(&types, group, version) {
                Some(doc) => json_reply(StatusCode::OK, &doc),
                None => not_found(),
            }
        }
        Target::Unknown => not_found(),
    }
}

async fn object(
    shared: &Shared,
    method: &Method,
    rt: &ResourceType,
    p: &ObjectPath<'_>,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if (p.namespace.is_some() && !rt.namespaced)
        || (p.namespace.is_none() && rt.namespaced && p.name.is_some())
    {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    let ns = p.namespace.unwrap_or("");
    let dry_run = query.get("dryRun").is_some_and(|v| v == "All");
    let status_only = match p.subresource {
        None => false,
        Some("status") if rt.has_status => true,
        Some(other) => {
            return Err(ApiError::new(
                404,
                "NotFound",
                format!(
                    "the stand-in does not serve the {other} subresource of {}",
                    rt.resource
                ),
            ));
        }
    };
    let writer = writer(query, headers);
    let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str))
        .map_err(ApiError::bad_request)?;

    match (method.clone(), p.name) {
        (Method::GET, None) if is_true(query.get("watch")) => {
            Ok(watch(shared, rt, p.namespace, labels, fields, query))
        }
        (Method::GET, None) => {
            let (items, rv) = shared.with(|s| {
                (
                    s.list(rt, p.namespace, &labels, &fields),
                    s.resource_version(),
                )
            });
            Ok(json_reply(StatusCode::OK, &list_body(rt, items, rv)))
        }
        (Method::GET, Some(name)) => shared
            .with(|s| s.get(rt, ns, name))
            .map(|o| json_reply(StatusCode::OK, &o))
            .ok_or_else(|| ApiError::not_found(rt, name)),
        (Method::POST, None) => {
            if rt.namespaced && p.namespace.is_none() {
                return Err(ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ));
            }
            let obj = parse_body(headers, &body)?;
            let (created, rollout) =
                shared.with(|s| s.create_as(rt, ns, obj, dry_run, Ownership::Update(&writer)))?;
            if let Some(r) = rollout {
                shared.schedule_rollout(r);
            }
            Ok(json_reply(StatusCode::CREATED, &created))
        }
        (Method::PUT, Some(name)) => {
            let obj = parse_body(headers, &body)?;
            let (updated, rollout) = shared.with(|s| {
                s.update_as(
                    rt,
                    ns,
                    name,
                    obj,
                    status_only,
                    dry_run,
                    Ownership::Update(&writer),
                )
            })?;
            if let Some(r) = rollout {
                shared.schedule_rollout(r);
            }
            Ok(json_reply(StatusCode::OK, &updated))
        }
        (Method::PATCH, Some(name)) => {
            let apply = content_type(headers) == "application/apply-patch+yaml";
            let mut errors = Vec::new();
            if apply && !query.contains_key("fieldManager") {
                errors.push("fieldManager: Required value: is required for apply patch");
            }
            if !apply && query.contains_key("force") {
                errors.push("force: Forbidden: may not be specified for non-apply patch");
            }
            if !errors.is_empty() {
                let mut e = ApiError::new(
                    422,
                    "Invalid",
                    format!(
                        "PatchOptions.meta.k8s.io \"\" is invalid: {}",
                        errors.join(", ")
                    ),
                );
                e.kind = "PatchOptions".into();
                e.group = "meta.k8s.io".into();
                return Err(e);
            }
            patch_object(
                shared,
                rt,
                ns,
                name,
                headers,
                &body,
                status_only,
                dry_run,
                &writer,
            )
        }
        (Method::DELETE, Some(name)) => {
            let deleted = shared.with(|s| s.delete(rt, ns, name, dry_run))?;
            if rt.group.is_empty()
                && rt.resource == "namespaces"
                && deleted["status"]["phase"] == "Terminating"
            {
                shared.schedule_namespace_finalization(name);
            }
            Ok(json_reply(StatusCode::OK, &deleted))
        }
        (Method::DELETE, None) => {
            let deleted = shared.with(|s| {
                let victims = s.list(rt, p.namespace, &labels, &fields);
                let mut gone = Vec::new();
                for v in victims {
                    let vns = v["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                    let vname = v["metadata"]["name"].as_str().unwrap_or("").to_string();
                    if let Ok(o) = s.delete(rt, &vns, &vname, dry_run) {
                        gone.push(o);
                    }
                }
                (gone, s.resource_version())
            });
            Ok(json_reply(
                StatusCode::OK,
                &list_body(rt, deleted.0, deleted.1),
            ))
        }
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported on this path"),
        )),
    }
}

#[allow(clippy::too_many_arguments)]
fn patch_object(
    shared: &Shared,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    headers: &HeaderMap,
    body: &Bytes,
    status_only: bool,
    dry_run: bool,
    writer: &Writer,
) -> Result<Response, ApiError> {
    let content_type = content_type(headers);
    let patch = parse_body(headers, body)?;
    if content_type == "application/apply-patch+yaml" {
        // Server-side apply. Clients (helm, kubectl, client-go) send the applied
        // configuration as JSON, which is YAML too; YAML proper is refused.
        let (obj, created, rollout) =
            shared.with(|s| s.apply(rt, ns, name, patch, dry_run, writer))?;
        if let Some(r) = rollout {
            shared.schedule_rollout(r);
        }
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        return Ok(json_reply(status, &obj));
    }
    let (updated, rollout) = shared.with(|s| {
        let mut obj = s.get(rt, ns, name).ok_or_else(|| ApiError::not_found(rt, name))?;
        match content_type.as_str() {
            "application/merge-patch+json" => patch::merge(&mut obj, &patch),
            "application/strategic-merge-patch+json" => patch::strategic(&mut obj, &patch),
            "application/json-patch+json" => patch::json_patch(&mut obj, &patch).map_err(|e| ApiError::new(422, "Invalid", e))?,
            other => {
                return Err(ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"),
                ));
            }
        }
        // A patch applies to whatever is current; it never conflicts unless it
        // names a resourceVersion itself.
        if patch["metadata"]["resourceVersion"].is_null() {
            obj["metadata"]["resourceVersion"] = Value::Null;
        }
        s.update_as(rt, ns, name, obj, status_only, dry_run, Ownership::Update(writer))
    })?;
    if let Some(r) = rollout {
        shared.schedule_rollout(r);
    }
    Ok(json_reply(StatusCode::OK, &updated))
}

fn watch(
    shared: &Shared,
    rt: &ResourceType,
    namespace: Option<&str>,
    labels: LabelSelector,
    fields: FieldSelector,
    query: &HashMap<String, String>,
) -> Response {
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let send_initial = is_true(query.get("sendInitialEvents"));
    let since = query
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && *v != "0")
        .and_then(|v| v.parse::<u64>().ok());
    let namespace = namespace.map(str::to_string);
    let rt = rt.clone();
    let (filter_rt, filter_ns) = (rt.clone(), namespace.clone());
    let matches = move |e: &Event| {
        e.group == filter_rt.group
            && e.resource == filter_rt.resource
            && filter_ns
                .as_ref()
                .is_none_or(|n| !filter_rt.namespaced || *n == e.namespace)
            && labels.matches(&e.object["metadata"]["labels"])
            && fields.matches(&e.object)
    };

    // Subscribe and read the starting point under one lock, so no event falls
    // between the snapshot and the live feed.
    let (rx, mut first, rv) = shared.with(|s| {
        let rx = s.subscribe();
        let rv = s.resource_version();
        let first: Option<Vec<Value>> = match since {
            Some(since) if !send_initial => s.events_since(since).map(|events| {
                events
                    .iter()
                    .filter(|e| matches(e))
                    .map(|e| event_json(e.kind, &e.object, &rt))
                    .collect()
            }),
            // No resourceVersion (or sendInitialEvents): the current objects
            // arrive as synthetic ADDED events first.
            _ => {
                let ns = namespace.as_deref();
                let items = s.list(
                    &rt,
                    ns,
                    &LabelSelector::default(),
                    &FieldSelector::default(),
                );
                Some(
                    items
                        .into_iter()
                        .filter(|o| {
                            matches(&Event {
                                rv,
                                group: rt.group.clone(),
                                resource: rt.resource.clone(),
                                namespace: o["metadata"]["namespace"].as_str().unwrap_or("").into(),
                                kind: "ADDED",
                                object: o.clone(),
                            })
                        })
                        .map(|o| event_json("ADDED", &o, &rt))
                        .collect(),
                )
            }
        };
        (rx, first, rv)
    });
    let Some(ref mut initial) = first else {
        let gone = ApiError::new(410, "Expired", "too old resource version");
        let line = json!({"type": "ERROR", "object": gone.to_status()});
        return stream_reply(vec![line], None, Duration::ZERO);
    };
    if send_initial {
        initial.push(json!({
            "type": "BOOKMARK",
            "object": {
                "kind": rt.kind,
                "apiVersion": rt.api_version(),
                "metadata": {
                    "resourceVersion": rv.to_string(),
                    "annotations": {"k8s.io/initial-events-end": "true"},
                },
            },
        }));
    }
    let follow = Follow {
        rx,
        rt: rt.clone(),
        matches: Box::new(matches),
        after: rv,
    };
    stream_reply(std::mem::take(initial), Some(follow), timeout)
}

struct Follow {
    rx: broadcast::Receiver<std::sync::Arc<Event>>,
    rt: ResourceType,
    matches: Box<dyn Fn(&Event) -> bool + Send>,
    /// Events at or before this were in the initial batch.
    after: u64,
}

/// A chunked `application/json` body: each event a JSON document on its own line.
fn stream_reply(initial: Vec<Value>, follow: Option<Follow>, timeout: Duration) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    tokio::spawn(async move {
        for e in initial {
            if tx.send(line(&e)).await.is_err() {
                return;
            }
        }
        let Some(mut follow) = follow else { return };
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = &mut deadline => return,
                () = tx.closed() => return,
                event = follow.rx.recv() => match event {
                    Ok(e) if e.rv > follow.after && (follow.matches)(&e) => {
                        if tx.send(line(&event_json(e.kind, &e.object, &follow.rt))).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    // Fell behind or the stand-in stopped: end the watch; the
                    // client lists again, as after any dropped watch.
                    Err(_) => return,
                },
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(chunk), rx))
    });
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn line(v: &Value) -> Bytes {
    let mut text = v.to_string();
    text.push('\n');
    Bytes::from(text)
}

fn event_json(kind: &str, object: &Value, rt: &ResourceType) -> Value {
    let mut object = object.clone();
    object["apiVersion"] = json!(rt.api_version());
    object["kind"] = json!(rt.kind);
    json!({"type": kind, "object": object})
}

fn list_body(rt: &ResourceType, items: Vec<Value>, rv: u64) -> Value {
    json!({
        "kind": format!("{}List", rt.kind),
        "apiVersion": rt.api_version(),
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items,
    })
}

fn parse_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    if content_type(headers) == "application/vnd.kubernetes.protobuf" {
        return proto::decode(body).map_err(|e| ApiError::new(415, "UnsupportedMediaType", e));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the stand-in reads JSON request bodies only: {e}"),
        )
    })
}

/// The media type of the body, without parameters.
fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The field manager of a write: `fieldManager`, else the client's name from its
/// User-Agent (`kubectl/v1.35.0 (linux/amd64)` → `kubectl`), as the API server does.
fn writer(query: &HashMap<String, String>, headers: &HeaderMap) -> Writer {
    let manager = query.get("fieldManager").cloned().unwrap_or_else(|| {
        headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|ua| ua.split('/').next())
            .filter(|m| !m.is_empty())
            .unwrap_or("unknown")
            .to_string()
    });
    Writer {
        manager,
        force: is_true(query.get("force")),
    }
}

fn is_true(v: Option<&String>) -> bool {
    v.is_some_and(|v| v == "true" || v == "1")
}

pub(crate) fn json_reply(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub(crate) fn error_reply(e: &ApiError) -> Response {
    let mut response = json_reply(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.to_status(),
    );
    if let Some(seconds) = e.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// What a real server answers for a path it does not serve.
fn not_found() -> Response {
    error_reply(&ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_group_version_namespace_resource_and_name() {
        assert_eq!(
            parse_path("/api/v1/namespaces/apps/secrets/sh.helm.release.v1.web.v1"),
            Target::Object(ObjectPath {
                group: "",
                version: "v1",
                namespace: Some("apps"),
                resource: "secrets",
                name: Some("sh.helm.release.v1.web.v1"),
                subresource: None,
            })
        );
        assert_eq!(
            parse_path("/apis/apps/v1/namespaces/apps/deployments/web/status"),
            Target::Object(ObjectPath {
                group: "apps",
                version: "v1",
                namespace: Some("apps"),
                resource: "deployments",
                name: Some("web"),
                subresource: Some("status"),
            })
        );
        assert_eq!(
            parse_path("/api/v1/namespaces/apps"),
            Target::Object(ObjectPath {
                group: "",
                version: "v1",
                namespace: None,
                resource: "namespaces",
                name: Some("apps"),
                subresource: None,
            })
        );
        assert_eq!(
            parse_path("/api/v1/namespaces/apps/status"),
            Target::Object(ObjectPath {
                group: "",
                version: "v1",
                namespace: None,
                resource: "namespaces",
                name: Some("apps"),
                subresource: Some("status"),
            })
        );
        assert_eq!(parse_path("/apis/apps/v1"), Target::Resources("apps", "v1"));
        assert_eq!(parse_path("/apis"), Target::Groups);
        assert_eq!(parse_path("/openapi/v3"), Target::OpenApiRoot);
        assert_eq!(
            parse_path("/openapi/v3/apis/apps/v1"),
            Target::OpenApi("apps", "v1")
        );
        assert_eq!(parse_path("/openapi/v2"), Target::Unknown);
    }
}
