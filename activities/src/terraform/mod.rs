//! The terraform runner: real terraform, driven through its CLI and its `-json` output.

mod cli;
mod error;
mod locks;
mod messages;
mod plan;
mod reconcile;
mod remote_state;

pub use cli::{PLAN_FILE, Plan, Terraform};
pub use error::TerraformError;
pub use locks::{LockHolder, LockVerdict, StaleLockPolicy, is_stale, judge};
pub use messages::{ChangeSummary, Diagnostic, LockInfo, TerraformMessage};
pub use plan::{PlanGuard, PlanReport, ResourceChange};
pub use reconcile::{
    ADOPTED_IMPORTS_FILE, ExistingResource, RECONCILE_IMPORTS_FILE, already_existing, forget,
    state_addresses, write_imports, write_imports_to,
};
pub use remote_state::{
    BACKEND_OVERRIDE_FILE, LOCAL_STATE_FILE, RemoteState, StateLease, write_backend_override,
};
