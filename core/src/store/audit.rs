use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row, Transaction};
use uuid::Uuid;

use super::{Store, parse_uuid};
use crate::audit::{
    ActorKind, AuditEntry, AuditFilter, AuditResult, ChainBreak, ChainBreakReason,
    ChainVerification, Environment, ExportedAuditEntry, GENESIS_HASH, NewAuditEntry, chain_hash,
    organization_chain_hash,
};
use crate::clock;
use crate::{Error, Result};

/// What an append writes: every column but `seq`, which the database assigns.
const INSERTED: &str = "id, organization_id, occurred_at, actor, actor_kind, action, \
     resource, cluster_id, project_id, environment, service, client, ip, result, details, \
     prev_hash, hash, chain_seq, chain_prev_hash, chain_hash";

const COLUMNS: &str = "seq, id, organization_id, occurred_at, actor, actor_kind, action, \
     resource, cluster_id, project_id, environment, service, client, ip, result, details, \
     prev_hash, hash, chain_seq, chain_prev_hash, chain_hash";

const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

/// Rows read per query while verifying, so a long chain is walked in bounded memory.
const VERIFY_BATCH: i64 = 1000;

/// An entry exactly as stored. The hash is computed from this text form, both when
/// appending and when verifying, so verification never depends on re-serialising values.
struct StoredEntry {
    seq: i64,
    id: String,
    organization_id: Option<String>,
    occurred_at: String,
    actor: String,
    actor_kind: String,
    action: String,
    resource: String,
    cluster_id: Option<String>,
    project_id: Option<String>,
    environment: Option<String>,
    service: Option<String>,
    client: Option<String>,
    ip: Option<String>,
    result: String,
    details: String,
    prev_hash: String,
    hash: String,
    chain_seq: Option<i64>,
    chain_prev_hash: Option<String>,
    chain_hash: Option<String>,
}

impl StoredEntry {
    /// The fields both hashes cover, in their order, after the position (`seq` in the
    /// platform-wide chain, `chain_seq` in the organisation's).
    fn hashed_fields<'a>(&'a self, position: &'a str) -> [Option<&'a str>; 16] {
        [
            Some(position),
            Some(&self.id),
            self.organization_id.as_deref(),
            Some(&self.occurred_at),
            Some(&self.actor),
            Some(&self.actor_kind),
            Some(&self.action),
            Some(&self.resource),
            self.cluster_id.as_deref(),
            self.project_id.as_deref(),
            self.environment.as_deref(),
            self.service.as_deref(),
            self.client.as_deref(),
            self.ip.as_deref(),
            Some(&self.result),
            Some(&self.details),
        ]
    }

    /// The hash in the organisation's chain, from the stored text (see
    /// [`organization_chain_hash`] for the order).
    fn compute_chain_hash(&self) -> Option<String> {
        let chain_seq = self.chain_seq?.to_string();
        Some(organization_chain_hash(
            self.chain_prev_hash.as_deref()?,
            &self.hashed_fields(&chain_seq),
        ))
    }

    fn compute_hash(&self) -> String {
        let seq = self.seq.to_string();
        chain_hash(&self.prev_hash, &self.hashed_fields(&seq))
    }

    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(Self {
            seq: row.try_get("seq")?,
            id: row.try_get("id")?,
            organization_id: row.try_get("organization_id")?,
            occurred_at: row.try_get("occurred_at")?,
            actor: row.try_get("actor")?,
            actor_kind: row.try_get("actor_kind")?,
            action: row.try_get("action")?,
            resource: row.try_get("resource")?,
            cluster_id: row.try_get("cluster_id")?,
            project_id: row.try_get("project_id")?,
            environment: row.try_get("environment")?,
            service: row.try_get("service")?,
            client: row.try_get("client")?,
            ip: row.try_get("ip")?,
            result: row.try_get("result")?,
            details: row.try_get("details")?,
            prev_hash: row.try_get("prev_hash")?,
            hash: row.try_get("hash")?,
            chain_seq: row.try_get("chain_seq")?,
            chain_prev_hash: row.try_get("chain_prev_hash")?,
            chain_hash: row.try_get("chain_hash")?,
        })
    }

    fn into_entry(self) -> Result<AuditEntry> {
        let corrupt = |column: &str, value: &str| {
            Error::InvalidInput(format!("corrupt audit_log.{column} {value:?}"))
        };
        let uuid = |text: Option<String>, column: &str| {
            text.map(|t| parse_uuid(&t, &format!("audit_log.{column}")))
                .transpose()
        };
        Ok(AuditEntry {
            seq: self.seq,
            id: parse_uuid(&self.id, "audit_log.id")?,
            organization_id: uuid(self.organization_id, "organization_id")?,
            occurred_at: clock::from_db(&self.occurred_at),
            actor_kind: ActorKind::parse(&self.actor_kind)
                .ok_or_else(|| corrupt("actor_kind", &self.actor_kind))?,
            actor: self.actor,
            action: self.action,
            resource: self.resource,
            cluster_id: uuid(self.cluster_id, "cluster_id")?,
            project_id: uuid(self.project_id, "project_id")?,
            environment: self
                .environment
                .map(|e| Environment::parse(&e).ok_or_else(|| corrupt("environment", &e)))
                .transpose()?,
            service: self.service,
            client: self.client,
            ip: self.ip,
            result: AuditResult::parse(&self.result)
                .ok_or_else(|| corrupt("result", &self.result))?,
            details: serde_json::from_str(&self.details)
                .map_err(|e| Error::InvalidInput(format!("corrupt audit_log.details: {e}")))?,
            prev_hash: self.prev_hash,
            hash: self.hash,
            chain_seq: self.chain_seq,
            chain_prev_hash: self.chain_prev_hash,
            chain_hash: self.chain_hash,
        })
    }
}

impl Store {
    /// Appends one entry to its organisation's chain.
    ///
    /// Appends to one chain are serialised (PostgreSQL: an advisory lock on that chain
    /// alone, taken in [`append_in`]; SQLite: the write lock taken up front), so two
    /// concurrent appends can never pick the same predecessor and fork it, while appends to
    /// different organisations' chains never wait on each other (PostgreSQL).
    pub async fn append_audit(&self, new: NewAuditEntry) -> Result<AuditEntry> {
        let mut tx = self.begin_audit_append().await?;
        let appended = append_in(&mut tx, new).await?;
        tx.commit().await?;
        Ok(appended)
    }

    /// The chain head is read inside: on PostgreSQL the chain's own lock is taken by
    /// `append_in`, once the entry is known; on SQLite the write lock is held from the start.
    pub(super) async fn begin_audit_append(&self) -> Result<Transaction<'static, Any>> {
        self.begin_write().await
    }

    /// Walks one organisation's own chain (`None`: the platform's) from its first entry:
    /// what a customer can check with its slice alone. `seq` in a break is the chain_seq.
    pub async fn verify_organization_chain(
        &self,
        organization_id: Option<Uuid>,
    ) -> Result<ChainVerification> {
        let mut report = ChainVerification {
            entries_checked: 0,
            head_seq: None,
            head_hash: None,
            first_break: None,
        };
        let organization = organization_id.map(|id| id.to_string());
        let mut expected_seq = 1;
        let mut expected_prev = GENESIS_HASH.to_owned();
        loop {
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM audit_log \
                 WHERE organization_id IS NOT DISTINCT FROM $1 AND chain_seq >= $2 \
                 ORDER BY chain_seq LIMIT $3"
            ))
            .bind(organization.clone())
            .bind(expected_seq)
            .bind(VERIFY_BATCH)
            .fetch_all(self.pool())
            .await?;
            if rows.is_empty() {
                return Ok(report);
            }
            for row in &rows {
                let stored = StoredEntry::from_row(row)?;
                let chain_seq = stored.chain_seq.unwrap_or_default();
                let reason = if chain_seq != expected_seq {
                    Some(ChainBreakReason::MissingEntries { expected_seq })
                } else if stored.chain_prev_hash.as_deref() != Some(expected_prev.as_str()) {
                    Some(ChainBreakReason::PrevHashMismatch)
                } else if stored.compute_chain_hash() != stored.chain_hash {
                    Some(ChainBreakReason::HashMismatch)
                } else {
                    None
                };
                if let Some(reason) = reason
                    && report.first_break.is_none()
                {
                    report.first_break = Some(ChainBreak {
                        seq: chain_seq,
                        reason,
                    });
                }
                report.entries_checked += 1;
                expected_seq = chain_seq + 1;
                expected_prev = stored.chain_hash.clone().unwrap_or_default();
                report.head_seq = Some(chain_seq);
                report.head_hash = stored.chain_hash;
            }
        }
    }

    /// The organisations with a chain of their own (`None`: the platform's).
    pub async fn audit_chains(&self) -> Result<Vec<Option<Uuid>>> {
        let rows = sqlx::query(
            "SELECT DISTINCT organization_id FROM audit_log WHERE chain_seq IS NOT NULL",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                row.try_get::<Option<String>, _>("organization_id")?
                    .map(|id| parse_uuid(&id, "audit_log.organization_id"))
                    .transpose()
            })
            .collect()
    }

    /// The head (chain_seq, chain_hash) of an organisation's chain, if it has one.
    pub async fn audit_chain_head(
        &self,
        organization_id: Option<Uuid>,
    ) -> Result<Option<(i64, String)>> {
        let mut conn = self.pool().acquire().await?;
        chain_head(&mut conn, organization_id.map(|id| id.to_string())).await
    }

    /// The chain hash of entry `chain_seq` of an organisation's chain.
    pub async fn audit_chain_hash_at(
        &self,
        organization_id: Option<Uuid>,
        chain_seq: i64,
    ) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT chain_hash FROM audit_log \
             WHERE organization_id IS NOT DISTINCT FROM $1 AND chain_seq = $2",
        )
        .bind(organization_id.map(|id| id.to_string()))
        .bind(chain_seq)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| row.try_get("chain_hash"))
            .transpose()
            .map_err(Into::into)
    }

    /// An organisation's chain as stored (every field in its stored text, which is what
    /// the hashes cover), for the customer to verify without Windlass.
    pub async fn audit_export(
        &self,
        organization_id: Uuid,
        after_chain_seq: i64,
        limit: u32,
    ) -> Result<Vec<ExportedAuditEntry>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_log WHERE organization_id = $1 AND chain_seq > $2 \
             ORDER BY chain_seq LIMIT $3"
        ))
        .bind(organization_id.to_string())
        .bind(after_chain_seq)
        .bind(i64::from(limit.clamp(1, MAX_PAGE)))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let s = StoredEntry::from_row(row)?;
                Ok(ExportedAuditEntry {
                    chain_seq: s.chain_seq.unwrap_or_default(),
                    id: s.id,
                    organization_id: s.organization_id,
                    occurred_at: s.occurred_at,
                    actor: s.actor,
                    actor_kind: s.actor_kind,
                    action: s.action,
                    resource: s.resource,
                    cluster_id: s.cluster_id,
                    project_id: s.project_id,
                    environment: s.environment,
                    service: s.service,
                    client: s.client,
                    ip: s.ip,
                    result: s.result,
                    details: s.details,
                    chain_prev_hash: s.chain_prev_hash.unwrap_or_default(),
                    chain_hash: s.chain_hash.unwrap_or_default(),
                })
            })
            .collect()
    }

    /// One organisation's entries, oldest first. Platform-wide entries (no organisation) are
    /// never listed here.
    pub async fn audit_entries(
        &self,
        organization_id: Uuid,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditEntry>> {
        let limit = filter.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
        let text = |id: Option<Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_log WHERE organization_id = $1 AND seq > $2 \
             AND ($3 = '' OR cluster_id = $3) AND ($4 = '' OR project_id = $4) \
             AND ($5 = '' OR environment = $5) AND ($6 = '' OR service = $6) \
             AND ($7 = '' OR action = $7) \
             ORDER BY seq LIMIT $8"
        ))
        .bind(organization_id.to_string())
        .bind(filter.after_seq.unwrap_or(0))
        .bind(text(filter.cluster_id))
        .bind(text(filter.project_id))
        .bind(
            filter
                .environment
                .map(Environment::as_str)
                .unwrap_or_default(),
        )
        .bind(filter.service.clone().unwrap_or_default())
        .bind(filter.action.clone().unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| StoredEntry::from_row(row)?.into_entry())
            .collect()
    }

    /// Walks the whole log by `seq` and reports the first entry that does not verify: up to
    /// the cutover (migration 0016) each entry against the platform-wide chain, and every
    /// entry with an organisation chain against that chain (one walk, remembering each
    /// chain's last link; an append holds its chain's lock while it takes its `seq`, so
    /// `seq` order is chain order). Past the cutover `seq` may have gaps (a rolled-back
    /// append); a removed entry shows as a gap in its chain's `chain_seq`.
    ///
    /// Reads the stored text, not parsed values, so a row edited outside Windlass is judged
    /// on exactly what is in the database.
    pub async fn verify_audit_chain(&self) -> Result<ChainVerification> {
        let mut report = ChainVerification {
            entries_checked: 0,
            head_seq: None,
            head_hash: None,
            first_break: None,
        };
        let cutover = self.audit_chain_cutover().await?;
        let mut expected_seq = 1;
        let mut expected_prev = GENESIS_HASH.to_owned();
        // Each organisation chain's next (chain_seq, chain_prev_hash).
        let mut chains: HashMap<Option<String>, (i64, String)> = HashMap::new();
        let mut after = 0;
        loop {
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
            ))
            .bind(after)
            .bind(VERIFY_BATCH)
            .fetch_all(self.pool())
            .await?;
            if rows.is_empty() {
                return Ok(report);
            }
            for row in &rows {
                let stored = StoredEntry::from_row(row)?;
                let platform_wide = stored.seq <= cutover;
                let global = if !platform_wide {
                    None
                } else if stored.seq != expected_seq {
                    Some(ChainBreakReason::MissingEntries { expected_seq })
                } else if stored.prev_hash != expected_prev {
                    Some(ChainBreakReason::PrevHashMismatch)
                } else if stored.compute_hash() != stored.hash {
                    Some(ChainBreakReason::HashMismatch)
                } else {
                    None
                };
                let own = match stored.chain_seq {
                    Some(chain_seq) => {
                        let (next, prev) = chains
                            .get(&stored.organization_id)
                            .cloned()
                            .unwrap_or((1, GENESIS_HASH.to_owned()));
                        let reason = if chain_seq != next {
                            Some(ChainBreakReason::MissingEntries { expected_seq: next })
                        } else if stored.chain_prev_hash.as_deref() != Some(prev.as_str()) {
                            Some(ChainBreakReason::PrevHashMismatch)
                        } else if stored.compute_chain_hash() != stored.chain_hash
                            // Past the cutover the platform-wide columns repeat the chain's.
                            || (!platform_wide
                                && (Some(&stored.hash) != stored.chain_hash.as_ref()
                                    || Some(&stored.prev_hash)
                                        != stored.chain_prev_hash.as_ref()))
                        {
                            Some(ChainBreakReason::HashMismatch)
                        } else {
                            None
                        };
                        chains.insert(
                            stored.organization_id.clone(),
                            (chain_seq + 1, stored.chain_hash.clone().unwrap_or_default()),
                        );
                        reason
                    }
                    // An entry past the cutover must be in a chain.
                    None if !platform_wide => Some(ChainBreakReason::HashMismatch),
                    None => None,
                };
                if let Some(reason) = global.or(own)
                    && report.first_break.is_none()
                {
                    report.first_break = Some(ChainBreak {
                        seq: stored.seq,
                        reason,
                    });
                }
                report.entries_checked += 1;
                // Past a break, keep checking each link against what is stored, so the
                // count covers the whole log and later entries are still walked.
                if platform_wide {
                    expected_seq = stored.seq + 1;
                    expected_prev = stored.hash.clone();
                }
                after = stored.seq;
                report.head_seq = Some(stored.seq);
                report.head_hash = Some(stored.hash);
            }
        }
    }

    /// The last `seq` of the platform-wide chain (migration 0016).
    async fn audit_chain_cutover(&self) -> Result<i64> {
        let row = sqlx::query("SELECT seq FROM audit_chain_cutover")
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(row) => row.try_get("seq")?,
            None => 0,
        })
    }
}

/// Appends `new` on `conn`, which must be inside a transaction begun by
/// [`Store::begin_audit_append`]: on PostgreSQL this takes the lock of the entry's chain
/// (held until the transaction ends), which keeps that chain from forking.
pub(super) async fn append_in(conn: &mut AnyConnection, new: NewAuditEntry) -> Result<AuditEntry> {
    // Reshaped, never refused over its content: the entry must be written.
    let new = new.sanitized();
    new.validate()?;
    let organization = new.organization_id.map(|id| id.to_string());
    if conn.backend_name() == "PostgreSQL" {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(chain_lock_key(organization.as_deref()))
            .execute(&mut *conn)
            .await?;
    }
    let (chain_seq, chain_prev_hash) = match chain_head(conn, organization.clone()).await? {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS_HASH.to_owned()),
    };
    let mut stored = StoredEntry {
        // Assigned by the database on insert.
        seq: 0,
        id: Uuid::new_v4().to_string(),
        organization_id: organization,
        // Stamped inside the chain's lock, so time never goes backwards along chain_seq.
        occurred_at: clock::now_db(),
        actor: new.actor,
        actor_kind: new.actor_kind.as_str().to_owned(),
        action: new.action,
        resource: new.resource,
        cluster_id: new.cluster_id.map(|id| id.to_string()),
        project_id: new.project_id.map(|id| id.to_string()),
        environment: new.environment.map(|e| e.as_str().to_owned()),
        service: new.service,
        client: new.client,
        ip: new.ip,
        result: new.result.as_str().to_owned(),
        details: new.details.to_string(),
        prev_hash: String::new(),
        hash: String::new(),
        chain_seq: Some(chain_seq),
        chain_prev_hash: Some(chain_prev_hash),
        chain_hash: None,
    };
    stored.chain_hash = stored.compute_chain_hash();
    // The platform-wide columns repeat the chain's (see migration 0016).
    stored.prev_hash = stored.chain_prev_hash.clone().unwrap_or_default();
    stored.hash = stored.chain_hash.clone().unwrap_or_default();
    let row = sqlx::query(&format!(
        "INSERT INTO audit_log ({INSERTED}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
             $17, $18, $19, $20) RETURNING seq"
    ))
    .bind(&stored.id)
    .bind(stored.organization_id.clone())
    .bind(&stored.occurred_at)
    .bind(&stored.actor)
    .bind(&stored.actor_kind)
    .bind(&stored.action)
    .bind(&stored.resource)
    .bind(stored.cluster_id.clone())
    .bind(stored.project_id.clone())
    .bind(stored.environment.clone())
    .bind(stored.service.clone())
    .bind(stored.client.clone())
    .bind(stored.ip.clone())
    .bind(&stored.result)
    .bind(&stored.details)
    .bind(&stored.prev_hash)
    .bind(&stored.hash)
    .bind(stored.chain_seq)
    .bind(stored.chain_prev_hash.clone())
    .bind(stored.chain_hash.clone())
    .fetch_one(&mut *conn)
    .await?;
    stored.seq = row.try_get("seq")?;
    stored.into_entry()
}

/// The advisory lock key of an organisation's chain (`None`: the platform's).
fn chain_lock_key(organization_id: Option<&str>) -> String {
    format!(
        "windlass.audit_chain:{}",
        organization_id.unwrap_or("platform")
    )
}

/// The last entry (chain_seq, chain_hash) of an organisation's chain (`None`: the
/// platform's), if it has one.
async fn chain_head(
    conn: &mut AnyConnection,
    organization_id: Option<String>,
) -> Result<Option<(i64, String)>> {
    let row = sqlx::query(
        "SELECT chain_seq, chain_hash FROM audit_log \
         WHERE organization_id IS NOT DISTINCT FROM $1 AND chain_seq IS NOT NULL \
         ORDER BY chain_seq DESC LIMIT 1",
    )
    .bind(organization_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| Ok((row.try_get("chain_seq")?, row.try_get("chain_hash")?)))
        .transpose()
}
