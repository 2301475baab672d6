//! Field ownership, as the API server tracks it in `metadata.managedFields`
//! (server-side apply, kubernetes.io/docs/reference/using-api/server-side-apply).
//!
//! Every write records which manager set which fields: an apply (`operation: Apply`)
//! owns exactly the fields of its applied configuration; any other write (`Update`)
//! takes over the fields it changed. An apply that would change a field another manager
//! owns, to a different value, is a conflict (409) unless forced, which moves the field
//! to the applier. Fields an applier stops applying are removed only if no other manager
//! owns them.
//!
//! Paths use the `FieldsV1` keys: `f:<field>` for an object field, `k:<json>` for an item
//! of a list keyed by its merge key, and `.` for the item itself. Lists without a merge
//! key are atomic: owned and replaced whole. The merge keys come from the real schemas,
//! reduced to what charts use: `mountPath` (volume mounts), `containerPort` and `port`
//! (ports), `name` (containers, env, volumes and most others).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

/// One path into an object, in `FieldsV1` keys.
pub type FieldPath = Vec<String>;
pub type FieldSet = BTreeSet<FieldPath>;

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub fields: FieldSet,
}

/// Who writes, and how (from the request's `fieldManager` and `force`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writer {
    pub manager: String,
    pub force: bool,
}

impl Writer {
    pub fn new(manager: impl Into<String>) -> Self {
        Self {
            manager: manager.into(),
            force: false,
        }
    }
}

/// A field another manager owns with a different value than the apply's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    pub api_version: String,
    pub path: FieldPath,
}

/// Metadata the server maintains: nobody owns it.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "generateName",
    "selfLink",
];

/// The fields an object (an applied configuration, a created object) sets.
pub fn fields_of(obj: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    let Value::Object(map) = obj else {
        return out;
    };
    for (key, value) in map {
        match key.as_str() {
            "apiVersion" | "kind" | "status" => {}
            "metadata" => {
                if let Value::Object(meta) = value {
                    for (k, v) in meta {
                        if !SERVER_METADATA.contains(&k.as_str()) {
                            collect(
                                v,
                                &mut vec!["f:metadata".into(), format!("f:{k}")],
                                &mut out,
                            );
                        }
                    }
                }
            }
            _ => collect(value, &mut vec![format!("f:{key}")], &mut out),
        }
    }
    out
}

fn collect(value: &Value, at: &mut FieldPath, out: &mut FieldSet) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                at.push(format!("f:{k}"));
                collect(v, at, out);
                at.pop();
            }
        }
        Value::Array(items) if list_key(items).is_some() => {
            let key = list_key(items).expect("checked");
            for item in items {
                at.push(item_key(item, key));
                at.push(".".into());
                out.insert(at.clone());
                at.pop();
                collect(item, at, out);
                at.pop();
            }
        }
        _ => {
            out.insert(at.clone());
        }
    }
}

/// The merge key of a list of objects, if it has one.
fn list_key(items: &[Value]) -> Option<&'static str> {
    if items.is_empty() || !items.iter().all(Value::is_object) {
        return None;
    }
    ["mountPath", "containerPort", "port", "name"]
        .into_iter()
        .find(|key| items.iter().all(|i| !i[*key].is_null()))
}

fn item_key(item: &Value, key: &str) -> String {
    format!("k:{}", json!({ key: item[key] }))
}

/// The value at `path`, if the object has it.
pub fn get<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut at = obj;
    for seg in path {
        at = step(at, seg)?;
    }
    Some(at)
}

fn step<'a>(at: &'a Value, seg: &str) -> Option<&'a Value> {
    if seg == "." {
        return Some(at);
    }
    if let Some(field) = seg.strip_prefix("f:") {
        return at.as_object()?.get(field);
    }
    let key: Map<String, Value> = serde_json::from_str(seg.strip_prefix("k:")?).ok()?;
    at.as_array()?
        .iter()
        .find(|item| key.iter().all(|(k, v)| &item[k] == v))
}

/// Removes the field (or, for a `.` path, the list item) at `path`.
pub fn remove(obj: &mut Value, path: &[String]) {
    let (last, parent) = match path.split_last() {
        Some((last, parent)) if last == "." => match parent.split_last() {
            Some((item, list)) => (item, list),
            None => return,
        },
        Some(split) => split,
        None => return,
    };
    let mut at = obj;
    for seg in parent {
        let next = if let Some(field) = seg.strip_prefix("f:") {
            at.as_object_mut().and_then(|m| m.get_mut(field))
        } else {
            let Some(key) = seg
                .strip_prefix("k:")
                .and_then(|k| serde_json::from_str::<Map<String, Value>>(k).ok())
            else {
                return;
            };
            at.as_array_mut().and_then(|items| {
                items
                    .iter_mut()
                    .find(|item| key.iter().all(|(k, v)| &item[k] == v))
            })
        };
        match next {
            Some(next) => at = next,
            None => return,
        }
    }
    if let Some(field) = last.strip_prefix("f:") {
        if let Some(map) = at.as_object_mut() {
            map.remove(field);
        }
    } else if let Some(key) = last
        .strip_prefix("k:")
        .and_then(|k| serde_json::from_str::<Map<String, Value>>(k).ok())
        && let Some(items) = at.as_array_mut()
    {
        items.retain(|item| !key.iter().all(|(k, v)| &item[k] == v));
    }
}

/// Merges an applied configuration into the live object: objects field by field, keyed
/// lists item by item, everything else replaced.
pub fn merge(live: &mut Value, applied: &Value) {
    match (live, applied) {
        (Value::Object(live), Value::Object(applied)) => {
            for (k, v) in applied {
                match live.get_mut(k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        live.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(live), Value::Array(applied)) if list_key(applied).is_some() => {
            let key = list_key(applied).expect("checked");
            if list_key(live).is_none() && !live.is_empty() {
                *live = applied.clone();
                return;
            }
            for item in applied {
                match live.iter_mut().find(|l| l[key] == item[key]) {
                    Some(existing) => merge(existing, item),
                    None => live.push(item.clone()),
                }
            }
        }
        (live, applied) => *live = applied.clone(),
    }
}

/// The `managedFields` entries of a stored object.
pub fn read(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let mut fields = FieldSet::new();
            unflatten(&e["fieldsV1"], &mut Vec::new(), &mut fields);
            Entry {
                manager: e["manager"].as_str().unwrap_or_default().to_string(),
                operation: e["operation"].as_str().unwrap_or("Update").to_string(),
                api_version: e["apiVersion"].as_str().unwrap_or_default().to_string(),
                time: e["time"].as_str().unwrap_or_default().to_string(),
                fields,
            }
        })
        .collect()
}

fn unflatten(tree: &Value, at: &mut FieldPath, out: &mut FieldSet) {
    match tree {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                at.push(k.clone());
                unflatten(v, at, out);
                at.pop();
            }
        }
        _ if !at.is_empty() => {
            out.insert(at.clone());
        }
        _ => {}
    }
}

/// `managedFields` as the API serves it.
pub fn render(entries: &[Entry]) -> Value {
    Value::Array(
        entries
            .iter()
            .filter(|e| !e.fields.is_empty())
            .map(|e| {
                let mut tree = Value::Object(Map::new());
                for path in &e.fields {
                    let mut at = &mut tree;
                    for seg in path {
                        at = at
                            .as_object_mut()
                            .expect("every node is an object")
                            .entry(seg.clone())
                            .or_insert_with(|| json!({}));
                    }
                }
                json!({
                    "manager": e.manager,
                    "operation": e.operation,
                    "apiVersion": e.api_version,
                    "time": e.time,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": tree,
                })
            })
            .collect(),
    )
}

/// `.spec.template.spec.containers[name="app"].image`: how conflicts name a field.
pub fn describe(path: &[String]) -> String {
    let mut out = String::new();
    for seg in path {
        if let Some(field) = seg.strip_prefix("f:") {
            out.push('.');
            out.push_str(field);
        } else if let Some(key) = seg
            .strip_prefix("k:")
            .and_then(|k| serde_json::from_str::<Map<String, Value>>(k).ok())
        {
            let keys: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", keys.join(",")));
        }
    }
    out
}

/// Whether `path` or anything under it is in `owned`.
fn owns_any_of(owned: &FieldSet, path: &[String]) -> bool {
    let prefix = match path.split_last() {
        Some((last, parent)) if last == "." => parent,
        _ => path,
    };
    owned.iter().any(|o| o.starts_with(prefix))
}

/// The result of an apply: the object to store (with its `managedFields`) or conflicts.
pub fn apply(
    live: &Value,
    applied: &Value,
    writer: &Writer,
    api_version: &str,
    now: &str,
) -> Result<Value, Vec<Conflict>> {
    let applied_fields = fields_of(applied);
    let mut entries = read(live);
    let mut conflicts = Vec::new();
    for entry in entries
        .iter_mut()
        .filter(|e| !(e.manager == writer.manager && e.operation == "Apply"))
    {
        let clashing: Vec<FieldPath> = entry
            .fields
            .intersection(&applied_fields)
            .filter(|p| p.last().is_some_and(|l| l != "."))
            .filter(|p| get(applied, p) != get(live, p))
            .cloned()
            .collect();
        if writer.force {
            for p in &clashing {
                entry.fields.remove(p);
            }
        } else {
            conflicts.extend(clashing.into_iter().map(|path| Conflict {
                manager: entry.manager.clone(),
                api_version: entry.api_version.clone(),
                path,
            }));
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    let previous = entries
        .iter()
        .find(|e| e.manager == writer.manager && e.operation == "Apply")
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let others: FieldSet = entries
        .iter()
        .filter(|e| !(e.manager == writer.manager && e.operation == "Apply"))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let mut next = live.clone();
    let mut body = applied.clone();
    if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in SERVER_METADATA {
            meta.remove(*k);
        }
    }
    if let Some(o) = body.as_object_mut() {
        o.remove("status");
    }
    merge(&mut next, &body);
    for gone in previous.difference(&applied_fields) {
        if !owns_any_of(&others, gone) && !owns_any_of(&applied_fields, gone) {
            remove(&mut next, gone);
        }
    }
    let changed = without_managed(&next) != without_managed(live);
    match entries
        .iter_mut()
        .find(|e| e.manager == writer.manager && e.operation == "Apply")
    {
        Some(mine) if mine.fields == applied_fields && !changed => {}
        Some(mine) => {
            mine.fields = applied_fields;
            mine.time = now.into();
            mine.api_version = api_version.into();
        }
        None => entries.push(Entry {
            manager: writer.manager.clone(),
            operation: "Apply".into(),
            api_version: api_version.into(),
            time: now.into(),
            fields: applied_fields,
        }),
    }
    next["metadata"]["managedFields"] = render(&entries);
    Ok(next)
}

/// Ownership after a write that is not an apply: the writer takes the fields it set or
/// changed; fields the write removed leave every manager.
pub fn record_update(
    live: Option<&Value>,
    next: &mut Value,
    writer: &Writer,
    api_version: &str,
    now: &str,
) {
    let mut entries = live.map(read).unwrap_or_default();
    let after = fields_of(next);
    let changed: FieldSet = match live {
        None => after.clone(),
        Some(live) => after
            .iter()
            .filter(|p| get(live, p) != get(next, p))
            .cloned()
            .collect(),
    };
    for entry in &mut entries {
        entry.fields.retain(|p| after.contains(p));
        if entry.manager != writer.manager || entry.operation != "Update" {
            for p in &changed {
                entry.fields.remove(p);
            }
        }
    }
    if !changed.is_empty() {
        match entries
            .iter_mut()
            .find(|e| e.manager == writer.manager && e.operation == "Update")
        {
            Some(mine) => {
                mine.fields.extend(changed);
                mine.time = now.into();
            }
            None => entries.push(Entry {
                manager: writer.manager.clone(),
                operation: "Update".into(),
                api_version: api_version.into(),
                time: now.into(),
                fields: changed,
            }),
        }
    }
    next["metadata"]["managedFields"] = render(&entries);
}

fn without_managed(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-12-06T00:00:00Z";

    fn deployment(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "app", "image": image}]}}}})
    }

    #[test]
    fn fields_use_fields_v1_keys_and_round_trip() {
        let fields = fields_of(&deployment(2, "web:1"));
        assert!(fields.contains(&vec!["f:spec".to_string(), "f:replicas".into()]));
        let item = vec![
            "f:spec".to_string(),
            "f:template".into(),
            "f:spec".into(),
            "f:containers".into(),
            "k:{\"name\":\"app\"}".into(),
        ];
        let mut image = item.clone();
        image.push("f:image".into());
        let mut dot = item;
        dot.push(".".into());
        assert!(fields.contains(&image) && fields.contains(&dot));
        let entries = vec![Entry {
            manager: "helm".into(),
            operation: "Apply".into(),
            api_version: "apps/v1".into(),
            time: NOW.into(),
            fields: fields.clone(),
        }];
        let obj = json!({"metadata": {"managedFields": render(&entries)}});
        assert_eq!(read(&obj), entries);
        assert_eq!(
            describe(&image),
            ".spec.template.spec.containers[name=\"app\"].image"
        );
    }

    #[test]
    fn another_managers_field_with_a_different_value_conflicts_unless_forced() {
        let helm = Writer::new("helm");
        let live = apply(&json!({}), &deployment(2, "web:1"), &helm, "apps/v1", NOW).unwrap();
        // Someone scales it with an ordinary update.
        let mut scaled = live.clone();
        scaled["spec"]["replicas"] = json!(5);
        record_update(
            Some(&live),
            &mut scaled,
            &Writer::new("kubectl-scale"),
            "apps/v1",
            NOW,
        );
        let conflicts = apply(&scaled, &deployment(2, "web:2"), &helm, "apps/v1", NOW).unwrap_err();
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].manager, "kubectl-scale");
        assert_eq!(describe(&conflicts[0].path), ".spec.replicas");
        // The same value is shared ownership, not a conflict.
        let shared = apply(&scaled, &deployment(5, "web:2"), &helm, "apps/v1", NOW).unwrap();
        assert_eq!(shared["spec"]["replicas"], 5);
        let forced = Writer {
            manager: "helm".into(),
            force: true,
        };
        let taken = apply(&scaled, &deployment(2, "web:2"), &forced, "apps/v1", NOW).unwrap();
        assert_eq!(taken["spec"]["replicas"], 2);
        let owners = read(&taken);
        let scale = owners.iter().find(|e| e.manager == "kubectl-scale");
        assert!(
            scale.is_none(),
            "the forced field moved to helm: {owners:?}"
        );
    }

    #[test]
    fn fields_other_managers_own_are_kept_and_own_dropped_ones_go() {
        let helm = Writer::new("helm");
        let mut first = deployment(1, "web:1");
        first["metadata"]["labels"] = json!({"team": "a"});
        let live = apply(&json!({}), &first, &helm, "apps/v1", NOW).unwrap();
        // A policy add-on adds an annotation and a sidecar.
        let mut mutated = live.clone();
        mutated["metadata"]["annotations"] = json!({"policy/checked": "yes"});
        mutated["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "proxy", "image": "proxy:1"}));
        record_update(
            Some(&live),
            &mut mutated,
            &Writer::new("policy"),
            "apps/v1",
            NOW,
        );
        // helm's next apply no longer sets the label.
        let next = apply(&mutated, &deployment(1, "web:2"), &helm, "apps/v1", NOW).unwrap();
        assert!(next["metadata"]["labels"].get("team").is_none());
        assert_eq!(next["metadata"]["annotations"]["policy/checked"], "yes");
        let containers = next["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap();
        assert_eq!(containers.len(), 2, "{next:#}");
        assert_eq!(containers[0]["image"], "web:2");
    }
}
