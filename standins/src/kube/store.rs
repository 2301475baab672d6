//! The object store: every object as JSON, with the bookkeeping the API server
//! does on each write (uid, creationTimestamp, resourceVersion, generation,
//! defaulting, status-subresource semantics) and the event log that watches
//! are served from.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use super::managed::{self, Writer};
use super::registry::{self, ResourceType};
use super::select::{FieldSelector, LabelSelector};
use super::validate;

/// How many past events a watch can resume from; older resourceVersions get
/// `410 Gone`, as from a real server after compaction.
const HISTORY: usize = 20_000;
const REQUEST_LOG: usize = 5_000;

/// A change, as a watch reports it.
#[derive(Debug, Clone)]
pub struct Event {
    pub rv: u64,
    pub group: String,
    pub resource: String,
    pub namespace: String,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    pub object: Value,
}

/// Knobs tests turn at run time (also through `/_standin/settings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// How long after a spec change a workload reports ready.
    pub rollout_delay_ms: u64,
    /// A workload whose pod template has an image containing this text never
    /// becomes ready (its pods would sit in `ImagePullBackOff`). `None`: every
    /// workload becomes ready.
    pub fail_image_marker: Option<String>,
    /// Per-workload rollout times: a workload with an image containing `marker` takes
    /// `delay_ms` instead of `rollout_delay_ms` (the first rule that matches).
    #[serde(default)]
    pub image_delays: Vec<ImageDelay>,
    /// A Job whose pod template has an image containing this text fails (its pods exit
    /// non-zero until the backoff limit): `FailureTarget`, then `Failed`. `None`: off.
    pub job_failure_marker: Option<String>,
    /// How long a deleted namespace stays `Terminating` (0: it goes at once).
    pub namespace_termination_ms: u64,
    /// The next this many API requests (not discovery) are answered `429 TooManyRequests`
    /// with `Retry-After: retry_after_seconds`, as API Priority and Fairness does.
    pub throttle_next: u32,
    pub retry_after_seconds: u64,
    /// The next this many API requests are answered `500 InternalError`, as an API
    /// server answers while etcd is briefly unavailable.
    pub fail_next: u32,
    /// For this long after an admission webhook configuration is created, writes of
    /// the resources its rules cover answer `500 failed calling webhook` (the webhook's
    /// pods are not serving yet, as right after cert-manager installs). 0: off.
    pub webhook_not_ready_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageDelay {
    pub marker: String,
    pub delay_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            rollout_delay_ms: 200,
            fail_image_marker: Some("fail".into()),
            image_delays: Vec::new(),
            job_failure_marker: None,
            namespace_termination_ms: 0,
            throttle_next: 0,
            retry_after_seconds: 1,
            fail_next: 0,
            webhook_not_ready_ms: 0,
        }
    }
}

impl Settings {
    /// How long the workload `obj` takes to roll out.
    pub fn rollout_delay(&self, obj: &serde_json::Value) -> std::time::Duration {
        let delay = self
            .image_delays
            .iter()
            .find(|rule| super::rollout::has_image_containing(obj, Some(&rule.marker)))
            .map_or(self.rollout_delay_ms, |rule| rule.delay_ms);
        std::time::Duration::from_millis(delay)
    }
}

/// One request the stand-in answered (no headers: they carry the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub status: u16,
}

/// An error in the API's `Status` shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub kind: String,
    pub group: String,
    pub name: String,
    /// `details.causes`: one per invalid field or conflicting manager.
    pub causes: Vec<Value>,
    /// Seconds a client should wait (`Retry-After`, `details.retryAfterSeconds`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            kind: String::new(),
            group: String::new(),
            name: String::new(),
            causes: Vec::new(),
            retry_after: None,
        }
    }

    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        let mut e = Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(rt)),
        );
        e.kind = rt.resource.clone();
        e.name = name.into();
        e
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn invalid(rt: &ResourceType, name: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {}", rt.kind, message.into()),
        );
        e.kind = rt.kind.clone();
        e.name = name.into();
        e
    }

    pub fn to_status(&self) -> Value {
        let mut details = json!({"name": self.name, "kind": self.kind});
        if !self.group.is_empty() {
            details["group"] = json!(self.group);
        }
        if !self.causes.is_empty() {
            details["causes"] = json!(self.causes);
        }
        if let Some(seconds) = self.retry_after {
            details["retryAfterSeconds"] = json!(seconds);
        }
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": details,
            "code": self.code,
        })
    }
}

/// A write naming a resourceVersion that is no longer current.
fn stale(rt: &ResourceType, name: &str) -> ApiError {
    let mut e = ApiError::new(
        409,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
             please apply your changes to the latest version and try again",
            qualified(rt)
        ),
    );
    e.kind = rt.resource.clone();
    e.name = name.into();
    e
}

/// Server-side apply's 409, in the API server's words: each conflicting field with the
/// manager that owns it.
fn apply_conflict(rt: &ResourceType, name: &str, conflicts: &[managed::Conflict]) -> ApiError {
    let mut by_manager: Vec<(String, String, Vec<String>)> = Vec::new();
    for c in conflicts {
        let field = managed::describe(&c.path);
        match by_manager
            .iter_mut()
            .find(|(m, v, _)| *m == c.manager && *v == c.api_version)
        {
            Some((_, _, fields)) => fields.push(field),
            None => by_manager.push((c.manager.clone(), c.api_version.clone(), vec![field])),
        }
    }
    let count = conflicts.len();
    let mut message = format!(
        "Apply failed with {count} conflict{}: ",
        if count == 1 { "" } else { "s" }
    );
    let parts: Vec<String> = by_manager
        .iter()
        .map(|(manager, version, fields)| {
            if fields.len() == 1 && count == 1 {
                format!("conflict with \"{manager}\" using {version}: {}", fields[0])
            } else {
                let listed: Vec<String> = fields.iter().map(|f| format!("- {f}")).collect();
                format!(
                    "conflicts with \"{manager}\" using {version}:\n{}",
                    listed.join("\n")
                )
            }
        })
        .collect();
    message.push_str(&parts.join("\n"));
    let mut e = ApiError::new(409, "Conflict", message);
    e.kind = rt.resource.clone();
    e.group = rt.group.clone();
    e.name = name.into();
    e.causes = conflicts
        .iter()
        .map(|c| {
            json!({
                "reason": "FieldManagerConflict",
                "message": format!("conflict with \"{}\" using {}", c.manager, c.api_version),
                "field": managed::describe(&c.path),
            })
        })
        .collect();
    e
}

/// `deployments.apps`, or `secrets` for the core group: how errors name a type.
fn qualified(rt: &ResourceType) -> String {
    if rt.group.is_empty() {
        rt.resource.clone()
    } else {
        format!("{}.{}", rt.resource, rt.group)
    }
}

type TypeKey = (String, String);
type ObjKey = (String, String);

pub struct Store {
    pub settings: Settings,
    types: Vec<ResourceType>,
    objects: BTreeMap<TypeKey, BTreeMap<ObjKey, Value>>,
    rv: u64,
    history: VecDeque<Arc<Event>>,
    events: broadcast::Sender<Arc<Event>>,
    pub requests: VecDeque<RequestRecord>,
    next_cluster_ip: u32,
    /// Admission webhooks not serving yet (see `faults`).
    pub pending_webhooks: Vec<super::faults::PendingWebhook>,
}

/// A workload whose pods a rollout should settle: `(type, namespace, name, generation)`.
pub type Rollout = (ResourceType, String, String, i64);

/// How a write records field ownership (`metadata.managedFields`).
#[derive(Debug, Clone, Copy)]
pub enum Ownership<'a> {
    /// The server's own write (seed objects, controllers): ownership stays as it is.
    Server,
    /// A client's create, update or non-apply patch (`operation: Update`).
    Update(&'a Writer),
    /// Server-side apply creating the object: the applier owns what it applied.
    Apply(&'a Writer),
    /// Already worked out by server-side apply (in the object's `managedFields`).
    Computed,
}

fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl Store {
    pub fn new(settings: Settings) -> Self {
        let (events, _) = broadcast::channel(4096);
        let mut store = Self {
            settings,
            types: registry::builtins(),
            objects: BTreeMap::new(),
            rv: 1,
            history: VecDeque::new(),
            events,
            requests: VecDeque::new(),
            next_cluster_ip: 10,
            pending_webhooks: Vec::new(),
        };
        let ns = store
            .find("", "v1", "namespaces")
            .expect("namespaces are built in");
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            store
                .create(&ns, "", obj, false)
                .expect("seed namespaces are valid");
        }
        store
    }

    pub fn types(&self) -> &[ResourceType] {
        &self.types
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    pub fn record(&mut self, record: RequestRecord) {
        if self.requests.len() == REQUEST_LOG {
            self.requests.pop_front();
        }
        self.requests.push_back(record);
    }

    pub fn find(&self, group: &str, version: &str, resource: &str) -> Option<ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.resource == resource)
            .cloned()
    }

    /// By kind (`Deployment`) or plural (`deployments`), case-insensitive: for
    /// tests and the control API, which do not care about versions.
    pub fn find_by_name(&self, name: &str) -> Option<ResourceType> {
        self.types
            .iter()
            .find(|t| t.kind.eq_ignore_ascii_case(name) || t.resource.eq_ignore_ascii_case(name))
            .cloned()
    }

    pub fn get(&self, rt: &ResourceType, namespace: &str, name: &str) -> Option<Value> {
        self.objects
            .get(&type_key(rt))?
            .get(&(scope_ns(rt, namespace), name.to_string()))
            .map(|o| with_version(o, rt))
    }

    /// Objects of a type (all namespaces when `namespace` is `None`), and the
    /// list's resourceVersion.
    pub fn list(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Vec<Value> {
        let Some(objects) = self.objects.get(&type_key(rt)) else {
            return Vec::new();
        };
        objects
            .iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|want| !rt.namespaced || ns == want))
            .map(|(_, o)| o)
            .filter(|o| labels.matches(&o["metadata"]["labels"]) && fields.matches(o))
            .map(|o| with_version(o, rt))
            .collect()
    }

    /// Events after `rv` for a type, oldest first; `None` if the history no
    /// longer reaches back that far.
    pub fn events_since(&self, rv: u64) -> Option<Vec<Arc<Event>>> {
        if let Some(oldest) = self.history.front()
            && oldest.rv > rv + 1
            && self.history.len() == HISTORY
        {
            return None;
        }
        Some(self.history.iter().filter(|e| e.rv > rv).cloned().collect())
    }

    pub fn create(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        obj: Value,
        dry_run: bool,
    ) -> Result<(Value, Option<Rollout>), ApiError> {
        self.create_as(rt, namespace, obj, dry_run, Ownership::Server)
    }

    pub fn create_as(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        mut obj: Value,
        dry_run: bool,
        ownership: Ownership<'_>,
    ) -> Result<(Value, Option<Rollout>), ApiError> {
        check_identity(rt, &mut obj)?;
        let applied_fields = managed::fields_of(&obj);
        let name = match obj["metadata"]["name"].as_str() {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => match obj["metadata"]["generateName"].as_str() {
                Some(prefix) => {
                    let suffix: String = uuid::Uuid::new_v4().simple().to_string()[..5].into();
                    format!("{prefix}{suffix}")
                }
                None => return Err(ApiError::invalid(rt, "", "metadata.name: Required value")),
            },
        };
        let ns = self.check_namespace(rt, namespace, &obj)?;
        if rt.namespaced && self.terminating(&ns) {
            let mut e = ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    qualified(rt)
                ),
            );
            e.kind = rt.resource.clone();
            e.name = name;
            e.causes = vec![
                json!({"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}),
            ];
            return Err(e);
        }
        if self.get(rt, &ns, &name).is_some() {
            let mut e = ApiError::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", qualified(rt)),
            );
            e.kind = rt.resource.clone();
            e.name = name;
            return Err(e);
        }
        let meta = metadata_mut(&mut obj);
        meta.insert("name".into(), json!(name));
        if rt.namespaced {
            meta.insert("namespace".into(), json!(ns));
        } else {
            meta.remove("namespace");
        }
        meta.remove("generateName");
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert(
            "creationTimestamp".into(),
            json!(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        );
        meta.remove("resourceVersion");
        meta.remove("managedFields");
        meta.remove("deletionTimestamp");
        if has_spec(rt) {
            meta.insert("generation".into(), json!(1));
        }
        if rt.has_status {
            // Status belongs to controllers; a client cannot create it.
            obj.as_object_mut().expect("checked").remove("status");
        }
        self.default(rt, &mut obj, None);
        validate::check(rt, &obj, None)?;
        match ownership {
            Ownership::Update(writer) => {
                managed::record_update(None, &mut obj, writer, &rt.api_version(), &now_rfc3339())
            }
            Ownership::Apply(writer) => {
                metadata_mut(&mut obj).insert(
                    "managedFields".into(),
                    managed::render(&[managed::Entry {
                        manager: writer.manager.clone(),
                        operation: "Apply".into(),
                        api_version: rt.api_version(),
                        time: now_rfc3339(),
                        fields: applied_fields,
                    }]),
                );
            }
            Ownership::Server | Ownership::Computed => {}
        }
        if dry_run {
            return Ok((obj, None));
        }
        let rollout = rollout_of(rt, &ns, &name, &obj);
        let stored = self.store(rt, &ns, &name, obj, "ADDED");
        Ok((stored, rollout))
    }

    /// `PUT` (and the result of a patch): replaces the object. `status_only`
    /// writes the `/status` subresource instead.
    pub fn update(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        obj: Value,
        status_only: bool,
        dry_run: bool,
    ) -> Result<(Value, Option<Rollout>), ApiError> {
        self.update_as(
            rt,
            namespace,
            name,
            obj,
            status_only,
            dry_run,
            Ownership::Server,
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub fn update_as(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        mut obj: Value,
        status_only: bool,
        dry_run: bool,
        ownership: Ownership<'_>,
    ) -> Result<(Value, Option<Rollout>), ApiError> {
        check_identity(rt, &mut obj)?;
        let computed_fields = obj["metadata"]["managedFields"].clone();
        let ns = scope_ns(rt, namespace);
        let current = self
            .get(rt, &ns, name)
            .ok_or_else(|| ApiError::not_found(rt, name))?;
        if let Some(sent) = obj["metadata"]["resourceVersion"].as_str()
            && !sent.is_empty()
            && Some(sent) != current["metadata"]["resourceVersion"].as_str()
        {
            return Err(stale(rt, name));
        }
        if obj["metadata"]["name"].as_str().is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        let mut next = if status_only {
            let mut next = current.clone();
            next["status"] = obj["status"].take();
            next
        } else {
            if rt.has_status {
                match current.get("status") {
                    Some(status) => obj["status"] = status.clone(),
                    None => {
                        obj.as_object_mut().expect("checked").remove("status");
                    }
                }
            }
            obj
        };
        let meta = metadata_mut(&mut next);
        meta.insert("name".into(), json!(name));
        if rt.namespaced {
            meta.insert("namespace".into(), json!(ns));
        }
        for keep in ["uid", "creationTimestamp", "generation"] {
            match current["metadata"].get(keep) {
                Some(v) => meta.insert(keep.into(), v.clone()),
                None => meta.remove(keep),
            };
        }
        // Clients do not write ownership: the server keeps it, or works it out below.
        let managed_fields = match ownership {
            Ownership::Computed => computed_fields,
            _ => current["metadata"]["managedFields"].clone(),
        };
        if managed_fields.is_null() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), managed_fields);
        }
        // Once set, only the server clears it (by removing the object).
        if let Some(v) = current["metadata"].get("deletionTimestamp") {
            meta.insert("deletionTimestamp".into(), v.clone());
        }
        meta.insert(
            "resourceVersion".into(),
            current["metadata"]["resourceVersion"].clone(),
        );
        self.default(rt, &mut next, Some(&current));
        validate::check(rt, &next, Some(&current))?;
        if let Ownership::Update(writer) = ownership
            && !status_only
        {
            managed::record_update(
                Some(&current),
                &mut next,
                writer,
                &rt.api_version(),
                &now_rfc3339(),
            );
        }
        let spec_changed =
            has_spec(rt) && without_bookkeeping(&next) != without_bookkeeping(&current);
        if spec_changed {
            let generation = current["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            metadata_mut(&mut next).insert("generation".into(), json!(generation));
        }
        if dry_run {
            return Ok((next, None));
        }
        if next == current {
            // A no-op write does not bump resourceVersion, as on a real server.
            return Ok((current, None));
        }
        let rollout = spec_changed
            .then(|| rollout_of(rt, &ns, name, &next))
            .flatten();
        let stored = self.store(rt, &ns, name, next, "MODIFIED");
        Ok((stored, rollout))
    }

    /// Server-side apply for a single field manager: the applied configuration
    /// becomes the object (fields it no longer mentions are dropped, as SSA drops
    /// fields only that manager owned); server-owned parts (status, bookkeeping,
    /// allocated cluster IPs) are kept.
    pub fn apply(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        mut obj: Value,
        dry_run: bool,
        writer: &Writer,
    ) -> Result<(Value, bool, Option<Rollout>), ApiError> {
        if obj["metadata"]["name"].as_str() != Some(name) {
            return Err(ApiError::bad_request(
                "metadata.name in the applied configuration must match the name on the URL",
            ));
        }
        check_identity(rt, &mut obj)?;
        let ns = scope_ns(rt, namespace);
        match self.get(rt, &ns, name) {
            None => {
                let (o, r) =
                    self.create_as(rt, namespace, obj, dry_run, Ownership::Apply(writer))?;
                Ok((o, true, r))
            }
            Some(current) => {
                if let Some(sent) = obj["metadata"]["resourceVersion"].as_str()
                    && !sent.is_empty()
                    && Some(sent) != current["metadata"]["resourceVersion"].as_str()
                {
                    return Err(stale(rt, name));
                }
                let mut next =
                    managed::apply(&current, &obj, writer, &rt.api_version(), &now_rfc3339())
                        .map_err(|conflicts| apply_conflict(rt, name, &conflicts))?;
                metadata_mut(&mut next).insert(
                    "resourceVersion".into(),
                    current["metadata"]["resourceVersion"].clone(),
                );
                let (o, r) = self.update_as(
                    rt,
                    namespace,
                    name,
                    next,
                    false,
                    dry_run,
                    Ownership::Computed,
                )?;
                Ok((o, false, r))
            }
        }
    }

    pub fn delete(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let ns = scope_ns(rt, namespace);
        let current = self
            .get(rt, &ns, name)
            .ok_or_else(|| ApiError::not_found(rt, name))?;
        if dry_run {
            return Ok(current);
        }
        let is_namespace = rt.group.is_empty() && rt.resource == "namespaces";
        if is_namespace && current["status"]["phase"] == "Terminating" {
            return Ok(current);
        }
        if is_namespace && self.settings.namespace_termination_ms > 0 {
            // The namespace controller empties it, then the `kubernetes` finalizer goes
            // and the namespace with it (see `finalize_namespace`); meanwhile it is
            // `Terminating` and takes no new objects.
            self.remove_contents(name);
            let mut obj = current;
            metadata_mut(&mut obj).insert("deletionTimestamp".into(), json!(now_rfc3339()));
            obj["status"] = json!({"phase": "Terminating", "conditions": [{
                "type": "NamespaceDeletionContentFailure", "status": "False",
                "reason": "ContentDeleted", "message": "All content successfully deleted, may be waiting on finalization",
                "lastTransitionTime": now_rfc3339()}]});
            return Ok(self.store(rt, "", name, obj, "MODIFIED"));
        }
        if is_namespace {
            self.remove_contents(name);
        }
        if rt.group == "apiextensions.k8s.io" && rt.resource == "customresourcedefinitions" {
            let gone = registry::from_crd(&current);
            self.types.retain(|t| !gone.contains(t));
        }
        Ok(self.remove(rt, &ns, name).unwrap_or(current))
    }

    /// What the namespace controller does first: removes every object in `namespace`.
    fn remove_contents(&mut self, namespace: &str) {
        let namespaced: Vec<(TypeKey, Vec<ObjKey>)> = self
            .objects
            .iter()
            .map(|(t, objs)| {
                (
                    t.clone(),
                    objs.keys()
                        .filter(|(n, _)| n == namespace)
                        .cloned()
                        .collect(),
                )
            })
            .collect();
        for ((group, resource), keys) in namespaced {
            let Some(t) = self
                .types
                .iter()
                .find(|t| t.group == group && t.resource == resource)
                .cloned()
            else {
                continue;
            };
            for (n, o) in keys {
                self.remove(&t, &n, &o);
            }
        }
    }

    /// Whether `namespace` is being deleted.
    pub fn terminating(&self, namespace: &str) -> bool {
        let ns_type = self.find("", "v1", "namespaces").expect("built in");
        self.get(&ns_type, "", namespace)
            .is_some_and(|n| n["status"]["phase"] == "Terminating")
    }

    /// The end of a namespace's deletion: its finalizer is done, it goes.
    pub fn finalize_namespace(&mut self, namespace: &str) {
        if !self.terminating(namespace) {
            return;
        }
        self.remove_contents(namespace);
        let ns_type = self.find("", "v1", "namespaces").expect("built in");
        self.remove(&ns_type, "", namespace);
    }

    fn remove(&mut self, rt: &ResourceType, ns: &str, name: &str) -> Option<Value> {
        let mut obj = self
            .objects
            .get_mut(&type_key(rt))?
            .remove(&(ns.to_string(), name.to_string()))?;
        self.rv += 1;
        metadata_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        self.emit(rt, ns, "DELETED", &obj);
        Some(with_version(&obj, rt))
    }

    /// Sets a workload's status (the simulated controllers' write).
    pub fn set_status(&mut self, rt: &ResourceType, ns: &str, name: &str, status: Value) {
        let Some(mut obj) = self.get(rt, ns, name) else {
            return;
        };
        if obj["status"] == status {
            return;
        }
        obj["status"] = status;
        self.store(rt, ns, name, obj, "MODIFIED");
    }

    fn store(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        mut obj: Value,
        kind: &'static str,
    ) -> Value {
        self.rv += 1;
        metadata_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        if rt.group == "apiextensions.k8s.io" && rt.resource == "customresourcedefinitions" {
            for t in registry::from_crd(&obj) {
                if !self.types.contains(&t) {
                    self.types.push(t);
                }
            }
        }
        if kind == "ADDED" {
            super::faults::webhook_created(self, rt, &obj);
        }
        self.objects
            .entry(type_key(rt))
            .or_default()
            .insert((ns.to_string(), name.to_string()), obj.clone());
        self.emit(rt, ns, kind, &obj);
        obj
    }

    fn emit(&mut self, rt: &ResourceType, ns: &str, kind: &'static str, obj: &Value) {
        let event = Arc::new(Event {
            rv: self.rv,
            group: rt.group.clone(),
            resource: rt.resource.clone(),
            namespace: ns.to_string(),
            kind,
            object: obj.clone(),
        });
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(event.clone());
        // No receiver is fine: nobody is watching.
        let _ = self.events.send(event);
    }

    /// The namespace an object lands in; namespaced objects need an existing one.
    fn check_namespace(
        &self,
        rt: &ResourceType,
        namespace: &str,
        obj: &Value,
    ) -> Result<String, ApiError> {
        if !rt.namespaced {
            return Ok(String::new());
        }
        if let Some(sent) = obj["metadata"]["namespace"].as_str()
            && !sent.is_empty()
            && sent != namespace
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let ns_type = self.find("", "v1", "namespaces").expect("built in");
        if self.get(&ns_type, "", namespace).is_none() {
            let mut e = ApiError::new(
                404,
                "NotFound",
                format!("namespaces \"{namespace}\" not found"),
            );
            e.kind = "namespaces".into();
            e.name = namespace.into();
            return Err(e);
        }
        Ok(namespace.to_string())
    }

    /// What the API server's defaulting and the core controllers would fill in.
    fn default(&mut self, rt: &ResourceType, obj: &mut Value, current: Option<&Value>) {
        match (rt.group.as_str(), rt.kind.as_str()) {
            ("", "Namespace") => {
                let name = obj["metadata"]["name"].clone();
                let meta = metadata_mut(obj);
                let labels = meta.entry("labels").or_insert_with(|| json!({}));
                labels["kubernetes.io/metadata.name"] = name;
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
                obj["status"] = json!({"phase": "Active"});
            }
            ("", "Secret") => {
                if obj["type"].is_null() {
                    obj["type"] = json!("Opaque");
                }
                if let Some(Value::Object(string_data)) =
                    obj.as_object_mut().and_then(|o| o.remove("stringData"))
                {
                    for (k, v) in string_data {
                        let text = v.as_str().unwrap_or_default().to_string();
                        obj["data"][k] =
                            json!(base64::engine::general_purpose::STANDARD.encode(text));
                    }
                }
            }
            ("", "Service") => {
                let spec = &mut obj["spec"];
                if spec["type"].is_null() {
                    spec["type"] = json!("ClusterIP");
                }
                if spec["clusterIP"].is_null() {
                    let ip = current
                        .and_then(|c| c["spec"]["clusterIP"].as_str().map(String::from))
                        .unwrap_or_else(|| {
                            self.next_cluster_ip += 1;
                            let n = self.next_cluster_ip;
                            format!("10.96.{}.{}", (n >> 8) & 0xff, n & 0xff)
                        });
                    spec["clusterIPs"] = json!([ip]);
                    spec["clusterIP"] = json!(ip);
                }
                if let Some(ports) = spec["ports"].as_array_mut() {
                    for p in ports {
                        if p["protocol"].is_null() {
                            p["protocol"] = json!("TCP");
                        }
                        if p["targetPort"].is_null() {
                            p["targetPort"] = p["port"].clone();
                        }
                    }
                }
                if obj["status"].is_null() {
                    obj["status"] = json!({"loadBalancer": {}});
                }
            }
            ("apps", "Deployment") => {
                let spec = &mut obj["spec"];
                default_field(spec, "replicas", json!(1));
                default_field(spec, "progressDeadlineSeconds", json!(600));
                default_field(spec, "revisionHistoryLimit", json!(10));
                default_field(
                    spec,
                    "strategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
                );
            }
            ("apps", "StatefulSet") => {
                let spec = &mut obj["spec"];
                default_field(spec, "replicas", json!(1));
                default_field(spec, "podManagementPolicy", json!("OrderedReady"));
                default_field(
                    spec,
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
                );
            }
            ("apps", "DaemonSet") => {
                default_field(
                    &mut obj["spec"],
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}),
                );
            }
            ("apiextensions.k8s.io", "CustomResourceDefinition") => {
                let names = obj["spec"]["names"].clone();
                obj["status"] = json!({
                    "acceptedNames": names,
                    "storedVersions": obj["spec"]["versions"].as_array().into_iter().flatten()
                        .filter(|v| v["storage"].as_bool() == Some(true))
                        .map(|v| v["name"].clone()).collect::<Vec<_>>(),
                    "conditions": [
                        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found"},
                        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
                    ],
                });
            }
            _ => {}
        }
    }
}

fn default_field(parent: &mut Value, key: &str, value: Value) {
    if parent[key].is_null() {
        parent[key] = value;
    }
}

fn type_key(rt: &ResourceType) -> TypeKey {
    (rt.group.clone(), rt.resource.clone())
}

fn scope_ns(rt: &ResourceType, namespace: &str) -> String {
    if rt.namespaced {
        namespace.to_string()
    } else {
        String::new()
    }
}

/// Objects are stored in the version they were written in; a read names the
/// version it was asked through.
fn with_version(obj: &Value, rt: &ResourceType) -> Value {
    let mut obj = obj.clone();
    obj["apiVersion"] = json!(rt.api_version());
    obj["kind"] = json!(rt.kind);
    obj
}

fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("made an object above")
}

/// Kinds whose spec changes bump `metadata.generation`.
fn has_spec(rt: &ResourceType) -> bool {
    !(rt.group.is_empty()
        && matches!(
            rt.kind.as_str(),
            "Secret" | "ConfigMap" | "ServiceAccount" | "Event" | "Endpoints"
        ))
        && rt.group != "rbac.authorization.k8s.io"
}

/// The object without what the server maintains, to tell a real change apart.
fn without_bookkeeping(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(o) = obj.as_object_mut() {
        o.remove("status");
        o.remove("metadata");
    }
    obj
}

fn check_identity(rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the request body is not a JSON object",
        ));
    }
    if let Some(kind) = obj["kind"].as_str()
        && kind != rt.kind
    {
        return Err(ApiError::bad_request(format!(
            "kind {kind} does not match the resource {} ({})",
            rt.resource, rt.kind
        )));
    }
    obj["kind"] = json!(rt.kind);
    obj["apiVersion"] = json!(rt.api_version());
    Ok(())
}

/// Workloads a simulated controller rolls out after a spec change.
fn rollout_of(rt: &ResourceType, ns: &str, name: &str, obj: &Value) -> Option<Rollout> {
    let simulated = matches!(
        (rt.group.as_str(), rt.kind.as_str()),
        (
            "apps",
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet"
        ) | ("batch", "Job")
    );
    simulated.then(|| {
        (
            rt.clone(),
            ns.to_string(),
            name.to_string(),
            obj["metadata"]["generation"].as_i64().unwrap_or(1),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (Store, ResourceType, ResourceType) {
        let s = Store::new(Settings::default());
        let deploy = s.find("apps", "v1", "deployments").unwrap();
        let secret = s.find("", "v1", "secrets").unwrap();
        (s, deploy, secret)
    }

    fn deployment(image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}})
    }

    #[test]
    fn create_fills_bookkeeping_and_defaults() {
        let (mut s, deploy, _) = store();
        let (obj, rollout) = s
            .create(&deploy, "default", deployment("web:1"), false)
            .unwrap();
        assert_eq!(obj["metadata"]["generation"], 1);
        assert_eq!(obj["metadata"]["namespace"], "default");
        assert_eq!(obj["spec"]["replicas"], 1);
        assert!(
            obj["metadata"]["uid"]
                .as_str()
                .is_some_and(|u| u.len() == 36)
        );
        assert!(rollout.is_some());
        let again = s
            .create(&deploy, "default", deployment("web:1"), false)
            .unwrap_err();
        assert_eq!((again.code, again.reason), (409, "AlreadyExists"));
        let missing = s
            .create(&deploy, "nowhere", deployment("web:1"), false)
            .unwrap_err();
        assert_eq!(missing.code, 404);
    }

    #[test]
    fn spec_changes_bump_generation_and_stale_writes_conflict() {
        let (mut s, deploy, _) = store();
        let (v1, _) = s
            .create(&deploy, "default", deployment("web:1"), false)
            .unwrap();
        let mut changed = v1.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("web:2");
        let (v2, rollout) = s
            .update(&deploy, "default", "web", changed.clone(), false, false)
            .unwrap();
        assert_eq!(v2["metadata"]["generation"], 2);
        assert!(rollout.is_some());
        assert_ne!(
            v1["metadata"]["resourceVersion"],
            v2["metadata"]["resourceVersion"]
        );
        let stale = s
            .update(&deploy, "default", "web", changed, false, false)
            .unwrap_err();
        assert_eq!(stale.reason, "Conflict");
        let mut labelled = v2.clone();
        labelled["metadata"]["labels"] = json!({"a": "b"});
        let (v3, rollout) = s
            .update(&deploy, "default", "web", labelled, false, false)
            .unwrap();
        assert_eq!(
            v3["metadata"]["generation"], 2,
            "metadata changes keep the generation"
        );
        assert!(rollout.is_none());
    }

    #[test]
    fn client_writes_keep_the_servers_status() {
        let (mut s, deploy, _) = store();
        s.create(&deploy, "default", deployment("web:1"), false)
            .unwrap();
        s.set_status(&deploy, "default", "web", json!({"readyReplicas": 1}));
        let mut obj = s.get(&deploy, "default", "web").unwrap();
        obj["status"] = json!({"readyReplicas": 99});
        let (after, _) = s
            .update(&deploy, "default", "web", obj, false, false)
            .unwrap();
        assert_eq!(after["status"]["readyReplicas"], 1);
    }

    #[test]
    fn secrets_list_by_label_and_string_data_is_encoded() {
        let (mut s, _, secret) = store();
        for (name, owner) in [("a", "helm"), ("b", "someone")] {
            let obj = json!({"metadata": {"name": name, "labels": {"owner": owner}}, "stringData": {"k": "v"}});
            s.create(&secret, "default", obj, false).unwrap();
        }
        let helm = s.list(
            &secret,
            Some("default"),
            &LabelSelector::parse("owner=helm").unwrap(),
            &FieldSelector::default(),
        );
        assert_eq!(helm.len(), 1);
        assert_eq!(helm[0]["data"]["k"], "dg==");
        assert_eq!(helm[0]["type"], "Opaque");
    }

    #[test]
    fn deleting_a_namespace_deletes_its_objects() {
        let (mut s, deploy, _) = store();
        let ns = s.find("", "v1", "namespaces").unwrap();
        s.create(&ns, "", json!({"metadata": {"name": "apps"}}), false)
            .unwrap();
        s.create(&deploy, "apps", deployment("web:1"), false)
            .unwrap();
        s.delete(&ns, "", "apps", false).unwrap();
        assert!(s.get(&deploy, "apps", "web").is_none());
        let events = s.events_since(0).unwrap();
        assert!(
            events
                .iter()
                .any(|e| e.kind == "DELETED" && e.resource == "deployments")
        );
    }

    #[test]
    fn a_crd_makes_its_kind_servable_until_deleted() {
        let mut s = Store::new(Settings::default());
        let crd_type = s
            .find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            .unwrap();
        let crd = json!({"metadata": {"name": "widgets.example.com"}, "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true}]}});
        let (stored, _) = s.create(&crd_type, "", crd, false).unwrap();
        assert_eq!(stored["status"]["conditions"][1]["type"], "Established");
        assert!(s.find("example.com", "v1", "widgets").is_some());
        s.delete(&crd_type, "", "widgets.example.com", false)
            .unwrap();
        assert!(s.find("example.com", "v1", "widgets").is_none());
    }
}
