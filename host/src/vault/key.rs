//! Master keys: 32 random bytes, named by a short hash (the key id stored
//! with every ciphertext), read from `PLUGBOARD_MASTER_KEY` or from a key
//! file in the data directory that the host creates, owner-only, on first
//! start.
//!
//! A rotation writes the new key to `master.key.next` before re-sealing
//! anything, so whatever moment it stops at, the keys on disk open every
//! value in the store; see [`crate::cli`]'s `rotate-key`.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// Environment variable holding a base64 master key.
pub const KEY_ENV: &str = "PLUGBOARD_MASTER_KEY";
/// Key file in the data directory, used when the variable is not set.
pub const KEY_FILE: &str = "master.key";
/// The next key while a rotation runs (or if one was interrupted).
pub const NEXT_KEY_FILE: &str = "master.key.next";

/// A 256-bit master key.
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    bytes: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

/// A key that cannot be read or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Not base64 of 32 bytes.
    #[error("{source_name} is not a master key: expected base64 of 32 bytes")]
    Invalid {
        /// Where it came from (variable or file), never its value.
        source_name: String,
    },
    /// The key file could not be read or written.
    #[error("master key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The store holds sealed values but no key was given.
    #[error(
        "the store holds sealed credentials but there is no master key: set {KEY_ENV} or restore {path}"
    )]
    Missing {
        /// Where the key file was expected.
        path: PathBuf,
    },
}

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::fill(&mut bytes[..]);
        Self::from_bytes(bytes)
    }

    fn from_bytes(bytes: Zeroizing<[u8; 32]>) -> Self {
        // The id commits to the key without revealing it: a domain-separated
        // hash, 8 bytes of it, is plenty to tell a handful of keys apart.
        let digest = Sha256::new()
            .chain_update(b"plugboard master key id v1")
            .chain_update(&bytes[..])
            .finalize();
        Self {
            id: format!("k{}", hex::encode(&digest[..8])),
            bytes,
        }
    }

    /// Parses base64 (padded or not) of 32 bytes; `source_name` is for the
    /// error message.
    pub fn decode(text: &str, source_name: &str) -> Result<Self, KeyError> {
        let invalid = || KeyError::Invalid {
            source_name: source_name.to_owned(),
        };
        let text = text.trim();
        let decoded = Zeroizing::new(
            STANDARD
                .decode(text)
                .or_else(|_| STANDARD_NO_PAD.decode(text))
                .map_err(|_| invalid())?,
        );
        let bytes: [u8; 32] = decoded.as_slice().try_into().map_err(|_| invalid())?;
        Ok(Self::from_bytes(Zeroizing::new(bytes)))
    }

    /// The key as base64, for the key file.
    pub fn encode(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(&self.bytes[..]))
    }

    /// The key id (`k` + 16 hex digits); safe to log.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(super) fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }
}

/// Where the host's master key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `PLUGBOARD_MASTER_KEY`.
    Env,
    /// A key file.
    File(PathBuf),
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env => f.write_str(KEY_ENV),
            Self::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The keys found for a data directory.
pub struct LoadedKeys {
    /// The configured key.
    pub primary: MasterKey,
    /// Where it came from.
    pub source: KeySource,
    /// The key of an unfinished rotation, if any.
    pub next: Option<MasterKey>,
    /// Whether the key file was created just now.
    pub created: bool,
}

/// Reads the master key from `env` (the variable's value) or the key file in
/// `data_dir`. A missing key file is created only when `may_create` (the
/// store holds nothing sealed yet).
pub fn load(data_dir: &Path, env: Option<&str>, may_create: bool) -> Result<LoadedKeys, KeyError> {
    let next_path = data_dir.join(NEXT_KEY_FILE);
    let next = read_key_file(&next_path)?;
    if let Some(text) = env {
        return Ok(LoadedKeys {
            primary: MasterKey::decode(text, KEY_ENV)?,
            source: KeySource::Env,
            next,
            created: false,
        });
    }
    let path = data_dir.join(KEY_FILE);
    if let Some(primary) = read_key_file(&path)? {
        return Ok(LoadedKeys {
            primary,
            source: KeySource::File(path),
            next,
            created: false,
        });
    }
    if !may_create {
        return Err(KeyError::Missing { path });
    }
    let primary = MasterKey::generate();
    write_key_file(&path, &primary)?;
    Ok(LoadedKeys {
        primary,
        source: KeySource::File(path),
        next,
        created: true,
    })
}

/// Reads a key file; `None` if it does not exist.
pub fn read_key_file(path: &Path) -> Result<Option<MasterKey>, KeyError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let text = Zeroizing::new(text);
            MasterKey::decode(&text, &path.display().to_string()).map(Some)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(KeyError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes a key file, owner-only, synced to disk.
pub fn write_key_file(path: &Path, key: &MasterKey) -> Result<(), KeyError> {
    crate::api::write_owner_only(path, key.encode().as_bytes()).map_err(|source| KeyError::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_ids_are_stable() {
        let k = MasterKey::generate();
        let again = MasterKey::decode(&k.encode(), "test").unwrap();
        assert_eq!(k.id(), again.id());
        assert_ne!(k.id(), MasterKey::generate().id());
        assert!(format!("{k:?}").starts_with("MasterKey(k"));
        for bad in ["", "not base64!", "AAAA"] {
            let e = MasterKey::decode(bad, "PLUGBOARD_MASTER_KEY").unwrap_err();
            assert!(e.to_string().contains("PLUGBOARD_MASTER_KEY"), "{e}");
        }
    }

    #[test]
    fn the_key_file_is_created_once_and_only_when_allowed() {
        let dir = tempfile_dir();
        assert!(matches!(
            load(&dir, None, false),
            Err(KeyError::Missing { .. })
        ));
        let first = load(&dir, None, true).unwrap();
        assert!(first.created);
        let second = load(&dir, None, false).unwrap();
        assert!(!second.created);
        assert_eq!(first.primary.id(), second.primary.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let env = MasterKey::generate();
        let from_env = load(&dir, Some(&env.encode()), false).unwrap();
        assert_eq!(from_env.source, KeySource::Env);
        assert_eq!(from_env.primary.id(), env.id());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "pb-key-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
