//! Operator commands that act on the store directly.

use crate::config::{KeyArgs, StoreArgs};

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain; exit 1 at the first edited, removed or reordered entry.
    Verify(StoreArgs),
}

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Re-wrap every data key under the current KEK (`--kek-file`), reading the old ones
    /// with `--previous-kek-file`. Online: processes configured with both keep working.
    Rewrap {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        keys: KeyArgs,
    },
}

pub async fn audit(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify(store) => {
            let store = store.connect().await?;
            let report = store.verify_audit_chain().await?;
            // Checking the log is itself on the record, after the check.
            let outcome = serde_json::json!({
                "entries_checked": report.entries_checked,
                "intact": report.first_break.is_none(),
            });
            store
                .append_audit(operator_action("audit.verify", "audit_log", outcome))
                .await?;
            match &report.first_break {
                None => {
                    println!(
                        "audit chain intact: {} entries, head seq {} hash {}",
                        report.entries_checked,
                        report.head_seq.unwrap_or(0),
                        report.head_hash.as_deref().unwrap_or("-")
                    );
                    Ok(())
                }
                Some(broken) => {
                    println!(
                        "audit chain BROKEN at seq {}: {} ({} entries checked)",
                        broken.seq, broken.reason, report.entries_checked
                    );
                    std::process::exit(1);
                }
            }
        }
    }
}

pub async fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Rewrap { store, keys } => {
            let store = store.connect().await?;
            let ring = keys.key_ring(&store).await?;
            let count = ring.rewrap_all().await?;
            store
                .append_audit(operator_action(
                    "keys.rewrap",
                    "data_keys",
                    serde_json::json!({"rewrapped": count}),
                ))
                .await?;
            println!(
                "re-wrapped {count} data keys under {}",
                keys.kek_file.display()
            );
            Ok(())
        }
    }
}

/// Operator actions are audited like any other: the actor is the operating-system account
/// that ran the command, as a support actor.
fn operator_action(
    action: &str,
    resource: &str,
    details: serde_json::Value,
) -> windlass_core::audit::NewAuditEntry {
    let account: String = std::env::var("USER")
        .unwrap_or_else(|_| "unknown".into())
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(64)
        .collect();
    windlass_core::audit::NewAuditEntry {
        client: Some("windlass-cli".to_owned()),
        ..windlass_core::audit::NewAuditEntry::new(
            None,
            format!("operator:{account}"),
            windlass_core::audit::ActorKind::Support,
            action,
            resource,
            windlass_core::audit::AuditResult::Success,
            details,
        )
    }
}
