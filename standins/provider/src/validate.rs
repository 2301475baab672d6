//! The provider's own configuration check beyond what Terraform checks against the
//! schema: like the SDK the real providers are built on, a computed-only attribute
//! (`arn`, `oidc_issuer_url`, ...) set in configuration is an error, which Terraform
//! core leaves to the provider.

use crate::proto::tfplugin6 as pb;
use crate::schema::{Block, Nesting};
use crate::value::Value;

pub fn read_only_violations(block: &Block, config: &Value) -> Vec<pb::Diagnostic> {
    let mut diagnostics = Vec::new();
    walk(block, config, &mut Vec::new(), &mut diagnostics);
    diagnostics
}

fn attribute_step(name: &str) -> pb::attribute_path::Step {
    pb::attribute_path::Step {
        selector: Some(pb::attribute_path::step::Selector::AttributeName(
            name.to_owned(),
        )),
    }
}

fn walk(
    block: &Block,
    config: &Value,
    path: &mut Vec<pb::attribute_path::Step>,
    out: &mut Vec<pb::Diagnostic>,
) {
    for attribute in &block.attributes {
        let read_only = attribute.computed && !attribute.optional && !attribute.required;
        if read_only && !config.get(&attribute.name).is_null() {
            let mut steps = path.clone();
            steps.push(attribute_step(&attribute.name));
            out.push(pb::Diagnostic {
                severity: pb::diagnostic::Severity::Error as i32,
                summary: "Computed attributes cannot be set".to_owned(),
                detail: format!(
                    "Computed attributes cannot be set, but a value was set for \"{}\".",
                    attribute.name
                ),
                attribute: Some(pb::AttributePath { steps }),
            });
        }
    }
    for nested in &block.block_types {
        path.push(attribute_step(&nested.type_name));
        match (nested.nesting, config.get(&nested.type_name)) {
            (Nesting::Single, value @ Value::Map(_)) => walk(&nested.block, value, path, out),
            (Nesting::List | Nesting::Set, Value::List(items)) => {
                for (index, item) in items.iter().enumerate() {
                    path.push(pb::attribute_path::Step {
                        selector: Some(pb::attribute_path::step::Selector::ElementKeyInt(
                            index as i64,
                        )),
                    });
                    walk(&nested.block, item, path, out);
                    path.pop();
                }
            }
            _ => {}
        }
        path.pop();
    }
}
