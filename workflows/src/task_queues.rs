//! Task queue names. Work is split by what it touches so a fleet can scale each kind apart.

/// Cloud access, clusters, terraform: long, rate-limited cloud calls.
pub const INFRASTRUCTURE: &str = "windlass-infrastructure";
