//! Opening the vault against a store at start-up, and rotating its key.
//!
//! The store keeps a *check value*: a known text sealed under the key
//! everything is sealed with. At start-up the host must open it with the key
//! it was given, so a wrong key is a start-up error with a clear message,
//! not a failure at the first invocation.
//!
//! Rotation (`plugboard rotate-key`, host stopped):
//! 1. generate the new key and write it to `master.key.next`;
//! 2. re-seal every credential field and the check value under it, in one
//!    store transaction;
//! 3. move `master.key.next` over `master.key` (with the key in
//!    `PLUGBOARD_MASTER_KEY` instead, the operator swaps the variable).
//!
//! A crash after 1 leaves the old key current; after 2 the new one, which
//! start-up finds in `master.key.next` (the check value says which key is
//! current). Either way every value opens.

use std::path::Path;

use anyhow::{Context as _, bail};

use super::key::{self, KeySource, MasterKey, NEXT_KEY_FILE};
use super::{Secret, Vault};
use crate::store::{CredentialsRecord, SealedField, Store, VaultCheck};

/// Record and field names of the check value.
const CHECK_RECORD: &str = "plugboard-vault";
const CHECK_FIELD: &str = "check";
const CHECK_TEXT: &str = "plugboard vault check v1";

fn check_value(vault: &Vault) -> VaultCheck {
    VaultCheck {
        key_id: vault.current_id().to_owned(),
        sealed: vault.seal(CHECK_RECORD, CHECK_FIELD, CHECK_TEXT),
    }
}

/// The vault for a store: the configured key, verified against the store's
/// check value (created on first use).
pub fn open(store: &dyn Store, data_dir: &Path, env: Option<&Secret>) -> anyhow::Result<Vault> {
    let check = store
        .vault_check()
        .context("reading the vault check value")?;
    let keys = key::load(data_dir, env.map(Secret::expose), check.is_none())?;
    if keys.created {
        tracing::info!(path = %keys.source, key = keys.primary.id(), "created a master key (owner-only); back it up: without it stored credentials cannot be opened");
    }
    let source = keys.source.clone();
    let mut all: Vec<MasterKey> = std::iter::once(keys.primary).chain(keys.next).collect();
    let Some(check) = check else {
        let vault = Vault::new(all.swap_remove(0), all);
        store
            .put_vault_check(&check_value(&vault))
            .context("storing the vault check value")?;
        return Ok(vault);
    };
    let Some(pos) = all.iter().position(|k| k.id() == check.key_id) else {
        let given: Vec<&str> = all.iter().map(MasterKey::id).collect();
        bail!(
            "wrong master key: the store's credentials are sealed with key {}, but {source} holds key {}; \
             start with the key the store was created or last rotated with",
            check.key_id,
            given.join(" and ")
        );
    };
    let from_next_file = pos != 0;
    let current = all.swap_remove(pos);
    let vault = Vault::new(current, all);
    let opened = vault
        .open(CHECK_RECORD, CHECK_FIELD, &check.sealed)
        .map_err(|e| anyhow::anyhow!("the vault check value does not open: {e}"))?;
    if opened.expose() != CHECK_TEXT {
        bail!("the vault check value opened to something unexpected; the store is damaged");
    }
    if from_next_file {
        tracing::warn!(
            key = vault.current_id(),
            "using the key of an unfinished rotation from {NEXT_KEY_FILE}; run `plugboard rotate-key` again or finish it by hand"
        );
    }
    Ok(vault)
}

/// What a rotation did.
#[derive(Debug)]
pub struct Rotation {
    /// Key everything was sealed with before.
    pub old_key: String,
    /// Key everything is sealed with now.
    pub new_key: String,
    /// Credential fields re-sealed.
    pub fields: usize,
    /// Where the new key is: the key file, or `master.key.next` for the
    /// operator to move into `PLUGBOARD_MASTER_KEY`.
    pub new_key_path: std::path::PathBuf,
    /// Whether the operator must still swap the environment variable.
    pub env_swap_needed: bool,
}

/// Re-seals every credential under a new key (see the module doc).
pub fn rotate(
    store: &dyn Store,
    data_dir: &Path,
    env: Option<&Secret>,
) -> anyhow::Result<Rotation> {
    let old = open(store, data_dir, env)?;
    let keys = key::load(data_dir, env.map(Secret::expose), false)?;
    let new = MasterKey::generate();
    let next_path = data_dir.join(NEXT_KEY_FILE);
    key::write_key_file(&next_path, &new)?;
    let old_id = old.current_id().to_owned();
    let new_vault = Vault::new(new.clone(), vec![keys.primary, old.current_key().clone()]);
    let now = crate::api::now();
    let reseal =
        |instance: &str, record: &CredentialsRecord| -> Result<CredentialsRecord, String> {
            let mut out = record.clone();
            for (field, value) in &mut out.fields {
                let sealed = new_vault
                    .reseal(instance, field, &value.sealed)
                    .map_err(|e| format!("field {field}: {e}"))?;
                *value = SealedField {
                    sealed,
                    updated_at: value.updated_at.clone(),
                };
            }
            Ok(out)
        };
    let check = check_value(&new_vault);
    let fields = store
        .reseal_all(&reseal, &check)
        .context("re-sealing credentials")?;
    store.flush()?;
    tracing::info!(old = %old_id, new = new.id(), fields, at = %now, "master key rotated");
    match keys.source {
        KeySource::File(path) => {
            std::fs::rename(&next_path, &path).with_context(|| {
                format!("moving {} over {}", next_path.display(), path.display())
            })?;
            Ok(Rotation {
                old_key: old_id,
                new_key: new.id().to_owned(),
                fields,
                new_key_path: path,
                env_swap_needed: false,
            })
        }
        KeySource::Env => Ok(Rotation {
            old_key: old_id,
            new_key: new.id().to_owned(),
            fields,
            new_key_path: next_path,
            env_swap_needed: true,
        }),
    }
}
