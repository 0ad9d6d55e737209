//! Bearer-token authentication for `/v1`.
//!
//! Tokens are random 256-bit values; the store keeps only their sha256, so a
//! copy of the data directory does not reveal a usable token. On first start
//! the host mints an admin token and writes it to an owner-only file.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use rand::RngCore as _;
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiError;
use crate::store::{Store, StoreResult, TokenRecord};

/// File name of the admin token inside the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// sha256 of a token, the key it is stored under.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Mints the admin token if the store has none; returns the file it was
/// written to. The token itself is never logged.
pub fn ensure_admin_token(store: &dyn Store, data_dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    if store.has_tokens()? {
        return Ok(None);
    }
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let token = format!("pb_{}", hex::encode(secret));
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    write_owner_only(&path, token.as_bytes())?;
    let record = TokenRecord {
        id: format!("tok_{}", &hex::encode(token_hash(&token))[..12]),
        scope: "admin".into(),
        created_at: super::now(),
    };
    put(store, &token, &record)?;
    Ok(Some(path))
}

fn put(store: &dyn Store, token: &str, record: &TokenRecord) -> StoreResult<()> {
    store.put_token(&token_hash(token), record)
}

/// Writes a file readable and writable by the owner only (0600 on Unix),
/// also when it already existed with wider permissions.
pub fn write_owner_only(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        options.mode(0o600);
        let mut f = options.open(path)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(contents)?;
        f.sync_all()
    }
    #[cfg(not(unix))]
    {
        let mut f = options.open(path)?;
        f.write_all(contents)?;
        f.sync_all()
    }
}

/// Middleware: rejects requests without a valid bearer token with 401.
pub async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(token) = presented else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "missing bearer token: send `Authorization: Bearer <token>` (the admin token is in <data-dir>/admin.token)",
        ));
    };
    // A sled point read is microseconds and mostly served from its cache, so
    // it runs inline rather than on a blocking thread.
    let Some(record) = state.store.token(&token_hash(token))? else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "invalid token",
        ));
    };
    request.extensions_mut().insert(record);
    Ok(next.run(request).await)
}
