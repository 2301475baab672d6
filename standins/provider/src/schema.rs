//! The provider's schema, from the JSON `scripts/tools/provider_schema_from_jsii.py`
//! writes (one file per provider version), turned into the protocol's messages once.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;

use crate::proto::tfplugin6 as pb;

#[derive(Debug, Deserialize)]
pub struct ProviderIdentity {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Deserialize)]
struct SchemaFile {
    provider: ProviderIdentity,
    provider_schema: Block,
    resource_schemas: BTreeMap<String, Block>,
    data_source_schemas: BTreeMap<String, Block>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Block {
    pub attributes: Vec<Attribute>,
    pub block_types: Vec<NestedBlock>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Attribute {
    pub name: String,
    /// The cty type in Terraform's JSON type notation.
    #[serde(rename = "type")]
    pub ty: serde_json::Value,
    pub required: bool,
    pub optional: bool,
    pub computed: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NestedBlock {
    pub type_name: String,
    pub nesting: Nesting,
    pub min_items: i64,
    pub max_items: i64,
    pub block: Block,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Nesting {
    Single,
    List,
    Set,
}

/// One provider version's schema: what GetProviderSchema answers, and the blocks the
/// resource handlers read values against.
pub struct ProviderSchema {
    pub identity: ProviderIdentity,
    pub resources: HashMap<String, Block>,
    pub response: pb::get_provider_schema::Response,
}

impl ProviderSchema {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let file: SchemaFile = serde_json::from_slice(&std::fs::read(path)?)?;
        let response = pb::get_provider_schema::Response {
            provider: Some(schema_message(&file.provider_schema)),
            resource_schemas: file
                .resource_schemas
                .iter()
                .map(|(name, block)| (name.clone(), schema_message(block)))
                .collect(),
            data_source_schemas: file
                .data_source_schemas
                .iter()
                .map(|(name, block)| (name.clone(), schema_message(block)))
                .collect(),
            diagnostics: vec![],
            provider_meta: None,
            server_capabilities: Some(pb::ServerCapabilities {
                plan_destroy: false,
                get_provider_schema_optional: false,
                move_resource_state: false,
            }),
        };
        Ok(Self {
            identity: file.provider,
            resources: file.resource_schemas.into_iter().collect(),
            response,
        })
    }
}

fn schema_message(block: &Block) -> pb::Schema {
    pb::Schema {
        version: 0,
        block: Some(block_message(block)),
    }
}

fn block_message(block: &Block) -> pb::schema::Block {
    pb::schema::Block {
        version: 0,
        attributes: block
            .attributes
            .iter()
            .map(|a| pb::schema::Attribute {
                name: a.name.clone(),
                r#type: serde_json::to_vec(&a.ty).expect("a JSON value serialises"),
                required: a.required,
                optional: a.optional,
                computed: a.computed,
                ..Default::default()
            })
            .collect(),
        block_types: block
            .block_types
            .iter()
            .map(|b| pb::schema::NestedBlock {
                type_name: b.type_name.clone(),
                block: Some(block_message(&b.block)),
                nesting: match b.nesting {
                    Nesting::Single => pb::schema::nested_block::NestingMode::Single,
                    Nesting::List => pb::schema::nested_block::NestingMode::List,
                    Nesting::Set => pb::schema::nested_block::NestingMode::Set,
                } as i32,
                min_items: b.min_items,
                max_items: b.max_items,
            })
            .collect(),
        ..Default::default()
    }
}
