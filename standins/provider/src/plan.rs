//! Planning and settling values against a resource's schema, as the SDK the real
//! providers are built on does it:
//!
//! - a create plans every computed attribute the configuration leaves null as unknown
//!   ("known after apply"), and an optional block it leaves out whose content is all
//!   computed (`kubelet_identity`) as an unknown list;
//! - an update keeps what Terraform proposed (configuration over prior state), and the
//!   prior value of a left-out all-computed block, and asks for replacement when an
//!   attribute the cloud cannot change in place changed;
//! - after apply, every unknown takes what the cloud reported, or null.

use std::collections::BTreeMap;

use crate::proto::tfplugin6 as pb;
use crate::schema::{Block, Nesting};
use crate::value::Value;

/// Attributes the real providers mark ForceNew on every resource Windlass uses: a
/// change replaces the resource.
const REPLACING: &[&str] = &[
    "name",
    "location",
    "resource_group_name",
    "virtual_network_name",
    "storage_account_id",
    "storage_account_name",
    "kubernetes_cluster_id",
    "parent_id",
    "scope",
    "principal_id",
    "role_definition_name",
    "dns_prefix",
    "subnet_id",
    "nat_gateway_id",
    "public_ip_address_id",
    "cidr_block",
    "vpc_id",
    "bucket",
    // aws's, beyond those shared above.
    "availability_zone",
    "allocation_id",
    "connectivity_type",
    "domain",
    "route_table_id",
    "role",
    "policy_arn",
    "url",
    "role_arn",
    "cluster_name",
    "node_group_name",
    "node_role_arn",
    "subnet_ids",
    "instance_types",
];

/// `value` with every attribute and block of `block` present (nulls and empty lists for
/// what it lacks), which is how Terraform decodes an object of the schema's type.
pub fn conform(block: &Block, value: &Value) -> Value {
    if value.is_null() {
        return Value::Null;
    }
    if matches!(value, Value::Unknown) {
        return Value::Unknown;
    }
    let mut out = BTreeMap::new();
    for attribute in &block.attributes {
        out.insert(attribute.name.clone(), value.get(&attribute.name).clone());
    }
    for nested in &block.block_types {
        let inner = value.get(&nested.type_name);
        let conformed = match (nested.nesting, inner) {
            (_, Value::Unknown) => Value::Unknown,
            (Nesting::Single, v) => conform(&nested.block, v),
            (Nesting::List | Nesting::Set, Value::List(items)) => Value::List(
                items
                    .iter()
                    .map(|item| conform(&nested.block, item))
                    .collect(),
            ),
            (Nesting::List | Nesting::Set, _) => Value::List(vec![]),
        };
        out.insert(nested.type_name.clone(), conformed);
    }
    Value::Map(out)
}

pub fn plan_create(block: &Block, proposed: &Value) -> Value {
    let Value::Map(fields) = conform(block, proposed) else {
        return Value::Null;
    };
    let mut out = fields;
    for attribute in &block.attributes {
        if attribute.computed && out[&attribute.name].is_null() {
            out.insert(attribute.name.clone(), Value::Unknown);
        }
    }
    for nested in &block.block_types {
        let planned = match &out[&nested.type_name] {
            Value::List(items) if items.is_empty() && all_computed(&nested.block) => Value::Unknown,
            Value::List(items) => Value::List(
                items
                    .iter()
                    .map(|item| plan_create(&nested.block, item))
                    .collect(),
            ),
            Value::Map(_) => plan_create(&nested.block, &out[&nested.type_name]),
            other => other.clone(),
        };
        out.insert(nested.type_name.clone(), planned);
    }
    Value::Map(out)
}

fn all_computed(block: &Block) -> bool {
    !block.attributes.is_empty()
        && block.attributes.iter().all(|a| a.computed)
        && block.block_types.iter().all(|b| all_computed(&b.block))
}

/// The planned state of an update, and the attributes whose change replaces it.
pub fn plan_update(
    block: &Block,
    prior: &Value,
    proposed: &Value,
) -> (Value, Vec<pb::AttributePath>) {
    let mut planned = conform(block, proposed);
    // A block the configuration leaves out whose content the cloud computes
    // (`kubelet_identity`) keeps what the cloud reported, as the SDK keeps it.
    if let Value::Map(fields) = &mut planned {
        for nested in &block.block_types {
            let left_out = matches!(fields.get(&nested.type_name), Some(Value::List(items)) if items.is_empty());
            if left_out && all_computed(&nested.block) {
                fields.insert(
                    nested.type_name.clone(),
                    prior.get(&nested.type_name).clone(),
                );
            }
        }
    }
    let replace = block
        .attributes
        .iter()
        .filter(|a| REPLACING.contains(&a.name.as_str()))
        .filter(|a| {
            let new = planned.get(&a.name);
            !matches!(new, Value::Unknown) && !new.is_null() && new != prior.get(&a.name)
        })
        .map(|a| pb::AttributePath {
            steps: vec![pb::attribute_path::Step {
                selector: Some(pb::attribute_path::step::Selector::AttributeName(
                    a.name.clone(),
                )),
            }],
        })
        .collect();
    (planned, replace)
}

/// The state after apply: `planned` with each unknown replaced by what the cloud
/// reported at the same place (`observed`), or null (an empty list for blocks).
pub fn settle(block: &Block, planned: &Value, observed: &Value) -> Value {
    let Value::Map(fields) = planned else {
        return planned.clone();
    };
    let mut out = fields.clone();
    for attribute in &block.attributes {
        if let Some(value) = out.get_mut(&attribute.name)
            && value.has_unknown()
        {
            let seen = observed.get(&attribute.name);
            *value = if seen.has_unknown() {
                Value::Null
            } else {
                seen.clone()
            };
        }
    }
    for nested in &block.block_types {
        let Some(value) = out.get_mut(&nested.type_name) else {
            continue;
        };
        let seen = observed.get(&nested.type_name);
        *value = match (&*value, seen) {
            (Value::Unknown, Value::List(_) | Value::Map(_)) => conform_nested(nested, seen),
            (Value::Unknown, _) => match nested.nesting {
                Nesting::Single => Value::Null,
                _ => Value::List(vec![]),
            },
            (Value::List(items), _) => Value::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let seen_item = match seen {
                            Value::List(s) => s.get(i).cloned().unwrap_or(Value::Null),
                            _ => Value::Null,
                        };
                        settle(&nested.block, item, &seen_item)
                    })
                    .collect(),
            ),
            (v @ Value::Map(_), _) => settle(&nested.block, v, seen),
            (other, _) => other.clone(),
        };
    }
    Value::Map(out)
}

fn conform_nested(nested: &crate::schema::NestedBlock, value: &Value) -> Value {
    match (nested.nesting, value) {
        (Nesting::Single, v) => conform(&nested.block, v),
        (_, Value::List(items)) => Value::List(
            items
                .iter()
                .map(|item| conform(&nested.block, item))
                .collect(),
        ),
        _ => Value::List(vec![]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Attribute, NestedBlock};

    fn attribute(name: &str, optional: bool, computed: bool) -> Attribute {
        Attribute {
            name: name.into(),
            ty: serde_json::json!("string"),
            required: !optional && !computed,
            optional,
            computed,
        }
    }

    fn schema() -> Block {
        Block {
            attributes: vec![
                attribute("id", true, true),
                attribute("name", false, false),
                attribute("tags", true, false),
            ],
            block_types: vec![NestedBlock {
                type_name: "kubelet_identity".into(),
                nesting: Nesting::List,
                min_items: 0,
                max_items: 1,
                block: Block {
                    attributes: vec![attribute("object_id", true, true)],
                    block_types: vec![],
                },
            }],
        }
    }

    fn object(fields: &[(&str, Value)]) -> Value {
        Value::Map(
            fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn a_create_leaves_what_the_cloud_computes_unknown_and_apply_settles_it() {
        let proposed = object(&[("name", Value::String("a".into()))]);
        let planned = plan_create(&schema(), &proposed);
        assert_eq!(planned.get("id"), &Value::Unknown);
        assert_eq!(
            planned.get("tags"),
            &Value::Null,
            "not computed: stays null"
        );
        assert_eq!(planned.get("kubelet_identity"), &Value::Unknown);

        let observed = object(&[
            ("id", Value::String("/x/a".into())),
            (
                "kubelet_identity",
                Value::List(vec![object(&[("object_id", Value::String("o".into()))])]),
            ),
        ]);
        let state = settle(&schema(), &planned, &observed);
        assert_eq!(state.str_attr("id"), Some("/x/a"));
        assert_eq!(
            state.get("kubelet_identity"),
            &Value::List(vec![object(&[("object_id", Value::String("o".into()))])])
        );
        assert!(!state.has_unknown());
    }

    #[test]
    fn a_renamed_resource_is_replaced() {
        let prior = conform(
            &schema(),
            &object(&[
                ("id", Value::String("/x/a".into())),
                ("name", Value::String("a".into())),
            ]),
        );
        let proposed = object(&[
            ("id", Value::String("/x/a".into())),
            ("name", Value::String("b".into())),
        ]);
        let (_, replace) = plan_update(&schema(), &prior, &proposed);
        assert_eq!(replace.len(), 1);
    }
}
