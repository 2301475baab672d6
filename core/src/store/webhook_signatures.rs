//! The webhook replay cache: each signed call is accepted once.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, is_unique_violation};
use crate::Result;
use crate::clock;

impl Store {
    /// Records a webhook signature the first time it is presented: `true` if it was new,
    /// `false` if this (environment, timestamp, signature) was accepted before. Entries
    /// seen before `forget_before` are purged on the way: their timestamps are outside the
    /// signature window, so the window check refuses them without the cache.
    pub async fn first_use_of_webhook_signature(
        &self,
        environment_id: Uuid,
        signed_at: i64,
        signature_hex: &str,
        forget_before: DateTime<Utc>,
    ) -> Result<bool> {
        sqlx::query("DELETE FROM webhook_signatures_seen WHERE seen_at < $1")
            .bind(clock::to_db(forget_before))
            .execute(self.writer())
            .await?;
        let inserted = sqlx::query(
            "INSERT INTO webhook_signatures_seen (environment_id, signed_at, signature, seen_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(environment_id.to_string())
        .bind(signed_at)
        .bind(signature_hex)
        .bind(clock::now_db())
        .execute(self.writer())
        .await;
        match inserted {
            Ok(_) => Ok(true),
            Err(error) if is_unique_violation(&error) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }
}
