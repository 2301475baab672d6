//! Timestamps as the store keeps them.

use chrono::{DateTime, SecondsFormat, Utc};

/// RFC 3339, UTC, microseconds, `Z` suffix: fixed width, so text order is time order in
/// both SQLite and PostgreSQL.
pub fn to_db(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn now_db() -> String {
    to_db(Utc::now())
}

pub fn from_db(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        // Rows are only ever written through `to_db`; a bad value is a corrupted row, and the
        // epoch makes that visible without failing a whole listing.
        .unwrap_or_default()
}
