//! Operator commands that act on the store directly.

use std::sync::Arc;

use windlass_core::audit_digests::AuditDigests;

use crate::config::{KeyArgs, StoreArgs};

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Walk the platform-wide chain, every organisation's chain and every signed digest;
    /// exit 1 at the first edited, removed or reordered entry or a head no longer matching
    /// its signed digest. Digests are checked when the KEK is at hand (`--kek-file` exists
    /// or `--kms-key-id`), since their public keys derive from it, not from the database.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// Sign every chain's head that grew since its last digest (`windlass serve` does it
    /// hourly).
    Digest {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        keys: KeyArgs,
    },
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
        AuditCommand::Verify { store, keys } => {
            let store = store.connect().await?;
            let mut broken = false;
            let report = store.verify_audit_chain().await?;
            match &report.first_break {
                None => println!(
                    "audit chain intact: {} entries, head seq {} hash {}",
                    report.entries_checked,
                    report.head_seq.unwrap_or(0),
                    report.head_hash.as_deref().unwrap_or("-")
                ),
                Some(b) => {
                    broken = true;
                    println!(
                        "audit chain BROKEN at seq {}: {} ({} entries checked)",
                        b.seq, b.reason, report.entries_checked
                    );
                }
            }
            let digests = if keys.kms_key_id.is_some() || keys.kek_file.exists() {
                Some(AuditDigests::new(Arc::new(keys.key_ring(&store).await?)))
            } else {
                println!(
                    "signed digests not checked: no KEK at {} (give --kek-file or --kms-key-id)",
                    keys.kek_file.display()
                );
                None
            };
            for chain in store.audit_chains().await? {
                let name =
                    chain.map_or_else(|| "platform".to_owned(), |id| format!("organization {id}"));
                let own = store.verify_organization_chain(chain).await?;
                match &own.first_break {
                    None => println!(
                        "{name}: chain intact, {} entries, head {}",
                        own.entries_checked,
                        own.head_hash.as_deref().unwrap_or("-")
                    ),
                    Some(b) => {
                        broken = true;
                        println!("{name}: chain BROKEN at chain_seq {}: {}", b.seq, b.reason);
                    }
                }
                if let Some(digests) = &digests {
                    let checked = digests.verify(&store, chain).await?;
                    match &checked.first_mismatch {
                        None => {
                            println!("{name}: {} signed digests match", checked.digests_checked)
                        }
                        Some(m) => {
                            broken = true;
                            println!(
                                "{name}: signed digest {} does NOT match chain_seq {}: {}",
                                m.digest_id, m.chain_seq, m.reason
                            );
                        }
                    }
                }
            }
            // Checking the log is itself on the record, after the check.
            let outcome = serde_json::json!({
                "entries_checked": report.entries_checked,
                "intact": !broken,
            });
            store
                .append_audit(operator_action("audit.verify", "audit_log", outcome))
                .await?;
            if broken {
                std::process::exit(1);
            }
            Ok(())
        }
        AuditCommand::Digest { store, keys } => {
            let store = store.connect().await?;
            let digests = AuditDigests::new(Arc::new(keys.key_ring(&store).await?));
            let signed = digests.sign_heads(&store).await?;
            store
                .append_audit(operator_action(
                    "audit.digest",
                    "audit_digests",
                    serde_json::json!({"signed": signed.len()}),
                ))
                .await?;
            println!("signed {} chain heads", signed.len());
            Ok(())
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
pub(crate) fn operator_action(
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
