//! The PATCH flavours the API accepts: JSON merge patch (RFC 7386), a reduced
//! strategic merge patch, and JSON patch (RFC 6902). Server-side apply is
//! handled by the caller (it replaces the applied fields, see `api.rs`).

use serde_json::{Map, Value};

/// RFC 7386: objects merge recursively, `null` removes, anything else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target = target.as_object_mut().expect("made an object above");
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// Strategic merge patch without the per-field schema: lists of objects that
/// carry a `name` (containers, env, volumes, ports) merge by that key, other
/// lists are replaced, and directives (`$patch`, `$setElementOrder/...`,
/// `$retainKeys`, `$deleteFromPrimitiveList/...`) are honoured only as far as
/// charts need (`$patch: delete` on list items and maps). Good enough for what
/// kubectl and helm's client-side apply send; a real server uses the schema.
pub fn strategic(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replacement = patch.clone();
        replacement.remove("$patch");
        *target = Value::Object(replacement);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target = target.as_object_mut().expect("made an object above");
    for (key, value) in patch {
        if key.starts_with('$') {
            continue;
        }
        if value.is_null() || value.get("$patch").and_then(Value::as_str) == Some("delete") {
            target.remove(key);
            continue;
        }
        match (target.get_mut(key), value) {
            (Some(Value::Array(current)), Value::Array(items)) if keyed_by_name(items) => {
                merge_named_list(current, items);
            }
            (Some(existing), Value::Object(_)) if existing.is_object() => {
                strategic(existing, value)
            }
            _ => {
                target.insert(key.clone(), strip_directives(value));
            }
        }
    }
}

fn keyed_by_name(items: &[Value]) -> bool {
    !items.is_empty()
        && items
            .iter()
            .all(|i| i.get("name").and_then(Value::as_str).is_some())
}

fn merge_named_list(current: &mut Vec<Value>, items: &[Value]) {
    for item in items {
        let name = item["name"].as_str().unwrap_or_default();
        let position = current
            .iter()
            .position(|c| c.get("name").and_then(Value::as_str) == Some(name));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(i), true) => {
                current.remove(i);
            }
            (Some(i), false) => strategic(&mut current[i], item),
            (None, false) => current.push(strip_directives(item)),
            (None, true) => {}
        }
    }
}

fn strip_directives(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

/// RFC 6902 (`add`, `remove`, `replace`, `test`; `move`/`copy` are not needed by
/// the clients this stand-in serves and are refused).
pub fn json_patch(target: &mut Value, operations: &Value) -> Result<(), String> {
    let ops = operations
        .as_array()
        .ok_or("a JSON patch is an array of operations")?;
    for op in ops {
        let path = op["path"].as_str().ok_or("operation without a path")?;
        let pointer: Vec<String> = path
            .split('/')
            .skip(1)
            .map(|p| p.replace("~1", "/").replace("~0", "~"))
            .collect();
        match op["op"].as_str() {
            Some("add") | Some("replace") => {
                let (last, parent) = pointer.split_last().ok_or("cannot replace the root")?;
                let parent = walk(target, parent)?;
                match parent {
                    Value::Object(m) => {
                        m.insert(last.clone(), op["value"].clone());
                    }
                    Value::Array(a) if last == "-" => a.push(op["value"].clone()),
                    Value::Array(a) => {
                        let i: usize = last.parse().map_err(|_| format!("bad index {last}"))?;
                        if op["op"] == "add" && i <= a.len() {
                            a.insert(i, op["value"].clone());
                        } else if i < a.len() {
                            a[i] = op["value"].clone();
                        } else {
                            return Err(format!("index {i} out of range"));
                        }
                    }
                    _ => return Err(format!("{path}: parent is not a container")),
                }
            }
            Some("remove") => {
                let (last, parent) = pointer.split_last().ok_or("cannot remove the root")?;
                let parent = walk(target, parent)?;
                let removed = match parent {
                    Value::Object(m) => m.remove(last).is_some(),
                    Value::Array(a) => match last.parse::<usize>() {
                        Ok(i) if i < a.len() => {
                            a.remove(i);
                            true
                        }
                        _ => false,
                    },
                    _ => false,
                };
                if !removed {
                    return Err(format!("{path}: nothing to remove"));
                }
            }
            Some("test") => {
                if target.pointer(path) != Some(&op["value"]) {
                    return Err(format!("test of {path} failed"));
                }
            }
            other => return Err(format!("unsupported JSON patch operation {other:?}")),
        }
    }
    Ok(())
}

fn walk<'a>(mut at: &'a mut Value, pointer: &[String]) -> Result<&'a mut Value, String> {
    for part in pointer {
        at = match at {
            Value::Object(m) => m.get_mut(part).ok_or(format!("no such field {part}"))?,
            Value::Array(a) => {
                let i: usize = part.parse().map_err(|_| format!("bad index {part}"))?;
                a.get_mut(i).ok_or(format!("index {i} out of range"))?
            }
            _ => return Err(format!("{part}: not a container")),
        };
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}, "list": [1, 2]});
        merge(&mut doc, &json!({"a": "z", "c": {"f": null}, "list": [3]}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}, "list": [3]}));
    }

    #[test]
    fn strategic_patch_merges_containers_by_name() {
        let mut doc = json!({"spec": {"containers": [
            {"name": "app", "image": "web:1", "ports": [{"containerPort": 80}]},
            {"name": "sidecar", "image": "proxy:1"},
        ]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
            "containers": [{"name": "app", "image": "web:2"}, {"name": "sidecar", "$patch": "delete"}],
        }});
        strategic(&mut doc, &patch);
        assert_eq!(
            doc,
            json!({"spec": {"containers": [
                {"name": "app", "image": "web:2", "ports": [{"containerPort": 80}]},
            ]}})
        );
    }

    #[test]
    fn json_patch_adds_replaces_and_removes() {
        let mut doc = json!({"metadata": {"labels": {"a": "1"}}, "items": [1, 2]});
        json_patch(
            &mut doc,
            &json!([
                {"op": "add", "path": "/metadata/labels/b~1c", "value": "2"},
                {"op": "replace", "path": "/items/0", "value": 9},
                {"op": "remove", "path": "/metadata/labels/a"},
                {"op": "add", "path": "/items/-", "value": 3},
            ]),
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({"metadata": {"labels": {"b/c": "2"}}, "items": [9, 2, 3]})
        );
        assert!(json_patch(&mut doc, &json!([{"op": "remove", "path": "/nope"}])).is_err());
    }
}
