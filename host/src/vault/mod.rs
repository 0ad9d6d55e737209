//! The vault: instance credentials sealed at rest.
//!
//! Each credential field is sealed on its own with XChaCha20-Poly1305 (the
//! `chacha20poly1305` crate): a random 192-bit nonce per seal (safe to draw
//! at random, unlike AES-GCM's 96 bits) and the record's identity
//! (`instance id` + `field name`) as associated data, so a ciphertext copied
//! onto another instance or field fails to open instead of yielding the
//! wrong secret. A sealed value is the text
//! `pbv1.<key id>.<base64 nonce‖ciphertext>`; the key id says which master
//! key sealed it, so several keys can be in use while a rotation runs.
//!
//! - [`key`]: master keys, where they come from (env or key file), ids.
//! - [`secret`]: [`Secret`] and [`Credentials`]: zeroized, never printed.
//! - [`open`]: the vault of a store (start-up key check) and rotation.

pub mod key;
pub mod open;
pub mod secret;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use hmac::Mac as _;

pub use key::{KeySource, MasterKey};
pub use secret::{Credentials, Secret};

/// Why a sealed value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// Not a sealed value of ours.
    #[error("not a sealed value (bad format)")]
    Malformed,
    /// Sealed under a key the host was not given.
    #[error("sealed with master key {0}, which this host does not have")]
    UnknownKey(String),
    /// The ciphertext does not authenticate for this record: tampered, or
    /// sealed for another instance or field.
    #[error(
        "does not authenticate for this record: tampered with, or sealed for another instance or field"
    )]
    Tampered,
    /// The opened value is not UTF-8 (cannot happen for values we sealed).
    #[error("opened value is not text")]
    NotText,
}

const PREFIX: &str = "pbv1";
const NONCE_LEN: usize = 24;

/// The master keys in use: the current one seals, all of them open.
pub struct Vault {
    current: MasterKey,
    others: Vec<MasterKey>,
}

impl Vault {
    /// A vault sealing with `current` and also opening with `others`
    /// (keys of an unfinished rotation).
    pub fn new(current: MasterKey, others: Vec<MasterKey>) -> Self {
        Self { current, others }
    }

    /// Id of the sealing key.
    pub fn current_id(&self) -> &str {
        self.current.id()
    }

    /// The sealing key (for rotation).
    pub(crate) fn current_key(&self) -> &MasterKey {
        &self.current
    }

    /// Whether the vault holds the key with id `id`.
    pub fn has_key(&self, id: &str) -> bool {
        self.key(id).is_some()
    }

    fn key(&self, id: &str) -> Option<&MasterKey> {
        std::iter::once(&self.current)
            .chain(&self.others)
            .find(|k| k.id() == id)
    }

    /// Seals `plaintext` for `field` of `record` (an instance id).
    pub fn seal(&self, record: &str, field: &str, plaintext: &str) -> String {
        seal_with(&self.current, record, field, plaintext)
    }

    /// Opens a value sealed for `field` of `record`.
    pub fn open(&self, record: &str, field: &str, sealed: &str) -> Result<Secret, VaultError> {
        let (id, body) = split(sealed)?;
        let key = self
            .key(id)
            .ok_or_else(|| VaultError::UnknownKey(id.to_owned()))?;
        let bytes = B64.decode(body).map_err(|_| VaultError::Malformed)?;
        if bytes.len() < NONCE_LEN {
            return Err(VaultError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let aad = associated_data(record, field);
        let plain = cipher(key)
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::Tampered)?;
        String::from_utf8(plain).map(Secret::new).map_err(|e| {
            // Wipe the bytes we are about to drop.
            let mut bytes = e.into_bytes();
            zeroize::Zeroize::zeroize(&mut bytes);
            VaultError::NotText
        })
    }

    /// Re-seals a value under the current key (rotation).
    pub fn reseal(&self, record: &str, field: &str, sealed: &str) -> Result<String, VaultError> {
        let secret = self.open(record, field, sealed)?;
        Ok(self.seal(record, field, secret.expose()))
    }

    /// A short keyed fingerprint of a set of credentials: equal credentials
    /// give equal fingerprints (so instances sharing a token share a rate
    /// budget), and without the master key nobody can test a guess against
    /// it. Safe to show in stats and logs.
    pub fn fingerprint(&self, credentials: &Credentials) -> String {
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(self.current.bytes())
            .expect("HMAC takes keys of any length");
        mac.update(b"plugboard credential fingerprint v1");
        for name in credentials.names() {
            let value = credentials.get(name).map(Secret::expose).unwrap_or("");
            for part in [name.as_bytes(), value.as_bytes()] {
                mac.update(&(part.len() as u64).to_be_bytes());
                mac.update(part);
            }
        }
        format!("cred_{}", hex::encode(&mac.finalize().into_bytes()[..8]))
    }
}

/// The key id of a sealed value, if it is one.
pub fn key_id_of(sealed: &str) -> Option<&str> {
    split(sealed).ok().map(|(id, _)| id)
}

fn split(sealed: &str) -> Result<(&str, &str), VaultError> {
    let mut parts = sealed.splitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(PREFIX), Some(id), Some(body)) if !id.is_empty() => Ok((id, body)),
        _ => Err(VaultError::Malformed),
    }
}

fn cipher(key: &MasterKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(key.bytes().into())
}

/// The record's identity, bound into every ciphertext. Length-prefixed, so
/// no two (record, field) pairs share an encoding.
fn associated_data(record: &str, field: &str) -> Vec<u8> {
    let mut aad = b"plugboard credential v1".to_vec();
    for part in [record, field] {
        aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

fn seal_with(key: &MasterKey, record: &str, field: &str, plaintext: &str) -> String {
    let mut nonce = [0u8; NONCE_LEN];
    rand::fill(&mut nonce);
    let aad = associated_data(record, field);
    let ciphertext = cipher(key)
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext.as_bytes(),
                aad: &aad,
            },
        )
        // Encryption fails only for messages beyond 256 GiB.
        .expect("XChaCha20-Poly1305 encrypts any reasonable message");
    let mut body = nonce.to_vec();
    body.extend_from_slice(&ciphertext);
    format!("{PREFIX}.{}.{}", key.id(), B64.encode(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_open_only_for_their_own_record() {
        let v = Vault::new(MasterKey::generate(), vec![]);
        let sealed = v.seal("inst_a", "api_token", "s3cret");
        assert!(sealed.starts_with(&format!("pbv1.{}.", v.current_id())));
        assert!(!sealed.contains("s3cret"));
        assert_eq!(
            v.open("inst_a", "api_token", &sealed).unwrap().expose(),
            "s3cret"
        );
        // Random nonces: the same value seals differently each time.
        assert_ne!(sealed, v.seal("inst_a", "api_token", "s3cret"));
        assert_eq!(
            v.open("inst_b", "api_token", &sealed),
            Err(VaultError::Tampered)
        );
        assert_eq!(
            v.open("inst_a", "password", &sealed),
            Err(VaultError::Tampered)
        );
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(
            v.open("inst_a", "api_token", &flipped),
            Err(VaultError::Tampered)
        );
        assert_eq!(
            v.open("inst_a", "api_token", "garbage"),
            Err(VaultError::Malformed)
        );
        assert_eq!(
            v.open("inst_a", "api_token", "pbv1.k.!!"),
            Err(VaultError::UnknownKey("k".into()))
        );
    }

    #[test]
    fn rotation_keeps_old_values_readable_until_resealed() {
        let old = MasterKey::generate();
        let old_id = old.id().to_owned();
        let sealed = Vault::new(old.clone(), vec![]).seal("i", "f", "v");
        let other = Vault::new(MasterKey::generate(), vec![]);
        assert_eq!(
            other.open("i", "f", &sealed),
            Err(VaultError::UnknownKey(old_id))
        );
        let both = Vault::new(MasterKey::generate(), vec![old]);
        let resealed = both.reseal("i", "f", &sealed).unwrap();
        assert_eq!(key_id_of(&resealed), Some(both.current_id()));
        let new_only = Vault::new(both.current.clone(), vec![]);
        assert_eq!(new_only.open("i", "f", &resealed).unwrap().expose(), "v");
    }

    #[test]
    fn fingerprints_are_equal_for_equal_credentials_only() {
        let v = Vault::new(MasterKey::generate(), vec![]);
        let c =
            |t: &str| Credentials::new([("token".to_owned(), Secret::new(t.to_owned()))].into());
        assert_eq!(v.fingerprint(&c("a")), v.fingerprint(&c("a")));
        assert_ne!(v.fingerprint(&c("a")), v.fingerprint(&c("b")));
        let other = Vault::new(MasterKey::generate(), vec![]);
        assert_ne!(v.fingerprint(&c("a")), other.fingerprint(&c("a")), "keyed");
    }
}
