//! What a provider's resources do in the cloud behind them (the ARM stand-in for azurerm,
//! moto for aws).

use crate::value::Value;

#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// The cloud refused or failed the call; the message is what the user sees.
    #[error("{0}")]
    Refused(String),
    /// The stand-in does not manage this resource type (yet).
    #[error("the provider stand-in does not manage {0}")]
    Unsupported(String),
    /// The provider is not configured to reach its cloud.
    #[error("{0}")]
    NotConfigured(String),
}

/// The cloud side of a resource's life. Values are the resource's terraform attributes.
#[tonic::async_trait]
pub trait Cloud: Send + Sync {
    /// Creates the resource `planned` describes; returns what the cloud computed (at
    /// least `id`), to settle the plan's unknowns with.
    async fn create(&self, type_name: &str, planned: &Value) -> Result<Value, CloudError>;
    /// Changes the resource in place; returns what the cloud computed.
    async fn update(&self, type_name: &str, planned: &Value) -> Result<Value, CloudError>;
    /// Whether the resource still exists.
    async fn exists(&self, type_name: &str, state: &Value) -> Result<bool, CloudError>;
    async fn delete(&self, type_name: &str, state: &Value) -> Result<(), CloudError>;
    /// The attributes of the existing resource `id` (the provider's import id).
    async fn import(&self, type_name: &str, id: &str) -> Result<Value, CloudError>;
    /// What the provider itself settles in a planned create or update before the cloud
    /// is asked, given the prior state (null for a create) and the resource's
    /// configuration (aws: the region, `tags_all` from the default tags, policies equal
    /// to the prior ones kept as they were). Unchanged by default.
    fn plan(&self, _type_name: &str, _prior: &Value, _config: &Value, planned: Value) -> Value {
        planned
    }
}
