//! Sealing and opening secrets. A value is sealed under its organisation's data key with
//! the organisation id and secret name as associated data. A run reads a secret only if it
//! was granted that secret when it started, and only for its own organisation; workflows
//! carry [`SecretRef`]s, and activities resolve them inside the worker at the last moment.

use uuid::Uuid;
use zeroize::Zeroizing;

use crate::crypto::{from_hex, to_hex};
use crate::keys::KeyRing;
use crate::secrets::{SealedSecret, SecretRef, SecretScope, validate_name};
use crate::{Error, Result, Store};

fn associated_data(organization_id: Uuid, name: &str) -> Vec<u8> {
    format!("windlass-secret:{organization_id}:{name}").into_bytes()
}

/// Seals and stores an organisation-wide secret.
pub async fn put_secret(
    store: &Store,
    keys: &KeyRing,
    organization_id: Uuid,
    name: &str,
    value: &str,
) -> Result<()> {
    put_scoped_secret(
        store,
        keys,
        organization_id,
        name,
        value,
        &SecretScope::Organization,
    )
    .await
}

/// Seals and stores a secret usable inside `scope` only.
pub async fn put_scoped_secret(
    store: &Store,
    keys: &KeyRing,
    organization_id: Uuid,
    name: &str,
    value: &str,
    scope: &SecretScope,
) -> Result<()> {
    let sealed = seal_secret(keys, organization_id, name, value).await?;
    store.upsert_sealed_secret(&sealed, scope).await
}

/// A secret's value sealed with its organisation's key, ready to store (for a write that
/// commits with its audit entry: [`Store::upsert_sealed_secret_on`]).
pub async fn seal_secret(
    keys: &KeyRing,
    organization_id: Uuid,
    name: &str,
    value: &str,
) -> Result<SealedSecret> {
    validate_name(name)?;
    let (version, key) = keys.organization_key(organization_id).await?;
    let sealed = key.seal(value.as_bytes(), &associated_data(organization_id, name))?;
    Ok(SealedSecret {
        organization_id,
        name: name.to_owned(),
        key_version: version,
        ciphertext: to_hex(&sealed),
    })
}

/// The value of `secret` for the run `run_id`, if the run was granted it.
pub async fn resolve_for_run(
    store: &Store,
    keys: &KeyRing,
    run_id: Uuid,
    secret: &SecretRef,
) -> Result<Zeroizing<String>> {
    Ok(resolve_sealed_for_run(store, keys, run_id, secret).await?.1)
}

/// Like [`resolve_for_run`], with the sealed record the value was opened from (its
/// ciphertext changes with every write, so it versions the value without revealing it).
pub async fn resolve_sealed_for_run(
    store: &Store,
    keys: &KeyRing,
    run_id: Uuid,
    secret: &SecretRef,
) -> Result<(SealedSecret, Zeroizing<String>)> {
    if !store
        .run_may_read_secret(run_id, secret.organization_id, &secret.name)
        .await?
    {
        return Err(Error::Forbidden(format!(
            "run {run_id} was not granted secret {:?} of organization {}",
            secret.name, secret.organization_id
        )));
    }
    let sealed = store
        .sealed_secret(secret.organization_id, &secret.name)
        .await?;
    let value = open_sealed(keys, &sealed).await?;
    Ok((sealed, value))
}

/// The value of a secret, for Windlass itself (no run grant involved): only the API's
/// webhook check and the run-scoped reader above call this.
pub async fn open_secret(
    store: &Store,
    keys: &KeyRing,
    secret: &SecretRef,
) -> Result<Zeroizing<String>> {
    let sealed = store
        .sealed_secret(secret.organization_id, &secret.name)
        .await?;
    open_sealed(keys, &sealed).await
}

async fn open_sealed(keys: &KeyRing, sealed: &SealedSecret) -> Result<Zeroizing<String>> {
    let key = keys
        .organization_key_version(sealed.organization_id, sealed.key_version)
        .await?;
    let plaintext = Zeroizing::new(key.open(
        &from_hex(&sealed.ciphertext)?,
        &associated_data(sealed.organization_id, &sealed.name),
    )?);
    String::from_utf8(plaintext.to_vec())
        .map(Zeroizing::new)
        .map_err(|_| Error::InvalidInput(format!("secret {:?} is not UTF-8", sealed.name)))
}
