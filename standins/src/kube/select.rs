//! `labelSelector` and `fieldSelector` query parameters, in the string syntax
//! clients send (`owner=helm,name=web`, `env in (a,b)`, `!legacy`,
//! `metadata.name=web`).

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for term in split_top_level(text) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            out.push(parse_term(term)?);
        }
        Ok(Self(out))
    }

    pub fn matches(&self, labels: &Value) -> bool {
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|l| vs.iter().all(|v| v != l)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
        })
    }
}

/// Splits on commas that are not inside `( )`.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_term(term: &str) -> Result<Requirement, String> {
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(key.trim().into()));
    }
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(Requirement::NotEquals(k.trim().into(), v.trim().into()));
    }
    if let Some((k, v)) = term.split_once("==") {
        return Ok(Requirement::Equals(k.trim().into(), v.trim().into()));
    }
    if let Some((k, v)) = term.split_once('=') {
        return Ok(Requirement::Equals(k.trim().into(), v.trim().into()));
    }
    let words: Vec<&str> = term.splitn(3, ' ').collect();
    if words.len() == 3 && (words[1] == "in" || words[1] == "notin") {
        let set = words[2]
            .trim()
            .strip_prefix('(')
            .and_then(|s| s.strip_suffix(')'))
            .ok_or_else(|| format!("invalid selector term {term:?}: expected a (set)"))?;
        let values = set.split(',').map(|v| v.trim().to_string()).collect();
        let key = words[0].to_string();
        return Ok(if words[1] == "in" {
            Requirement::In(key, values)
        } else {
            Requirement::NotIn(key, values)
        });
    }
    if term.contains(' ') {
        return Err(format!("invalid selector term {term:?}"));
    }
    Ok(Requirement::Exists(term.into()))
}

/// A parsed field selector: `path=value` and `path!=value` on dotted paths of
/// the object (`metadata.name`, `metadata.namespace`, `type`, `status.phase`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (path, equal, value) = if let Some((p, v)) = term.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = term.split_once("==") {
                (p, true, v)
            } else if let Some((p, v)) = term.split_once('=') {
                (p, true, v)
            } else {
                return Err(format!("invalid field selector term {term:?}"));
            };
            out.push((path.trim().into(), equal, value.trim().into()));
        }
        Ok(Self(out))
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(path, equal, value)| {
            let mut at = object;
            for part in path.split('.') {
                at = &at[part];
            }
            let actual = match at {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (actual == *value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn helm_release_selector_matches_only_that_release() {
        let sel = LabelSelector::parse("name=web,owner=helm").unwrap();
        assert!(sel.matches(&json!({"name": "web", "owner": "helm", "status": "deployed"})));
        assert!(!sel.matches(&json!({"name": "api", "owner": "helm"})));
        assert!(!sel.matches(&json!({"name": "web"})));
    }

    #[test]
    fn set_and_existence_terms() {
        let sel = LabelSelector::parse("env in (prod, staging),!legacy,tier notin (db)").unwrap();
        assert!(sel.matches(&json!({"env": "prod", "tier": "web"})));
        assert!(sel.matches(&json!({"env": "staging"})));
        assert!(!sel.matches(&json!({"env": "dev"})));
        assert!(!sel.matches(&json!({"env": "prod", "legacy": "true"})));
        assert!(!sel.matches(&json!({"env": "prod", "tier": "db"})));
        assert!(LabelSelector::parse("").unwrap().matches(&json!({})));
        assert!(LabelSelector::parse("a b c").is_err());
    }

    #[test]
    fn field_selector_on_dotted_paths() {
        let obj =
            json!({"metadata": {"name": "web", "namespace": "apps"}, "type": "helm.sh/release.v1"});
        assert!(
            FieldSelector::parse("metadata.name=web")
                .unwrap()
                .matches(&obj)
        );
        assert!(
            FieldSelector::parse("type==helm.sh/release.v1,metadata.namespace!=default")
                .unwrap()
                .matches(&obj)
        );
        assert!(
            !FieldSelector::parse("metadata.name=api")
                .unwrap()
                .matches(&obj)
        );
        assert!(FieldSelector::parse("nonsense").is_err());
    }
}
