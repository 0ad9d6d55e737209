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
use super::openapi::error_responses;
use super::openapi::schemas::{NewToken, TokenList};
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
        id: token_id(&token),
        scope: ADMIN.into(),
        name: Some("bootstrap admin".into()),
        instances: Vec::new(),
        created_at: super::now(),
    };
    put(store, &token, &record)?;
    Ok(Some(path))
}

/// Scope of tokens that may do everything.
pub const ADMIN: &str = "admin";
/// Scope of tokens that may only call (and read) given instances.
pub const INVOKE: &str = "invoke";

fn token_id(token: &str) -> String {
    format!("tok_{}", &hex::encode(token_hash(token))[..12])
}

/// A fresh random token.
fn mint() -> String {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    format!("pb_{}", hex::encode(secret))
}

/// Whether an `invoke` token may make this request: call, test, read, or
/// see the health and stats of one of its instances; nothing else.
fn invoke_scope_allows(record: &TokenRecord, method: &axum::http::Method, path: &str) -> bool {
    use axum::http::Method;
    let path = path.strip_prefix("/v1").unwrap_or(path);
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (id, rest) = match segs.as_slice() {
        ["instances", id, rest @ ..] => (*id, rest),
        _ => return false,
    };
    if !record.instances.iter().any(|i| i == id) {
        return false;
    }
    matches!(
        (method, rest),
        (&Method::GET, [] | ["health"] | ["stats"]) | (&Method::POST, ["test"] | ["methods", _])
    )
}

/// Body of `POST /v1/tokens`.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateToken {
    /// A label, 1-128 characters.
    name: String,
    /// `admin` (everything) or `invoke` (call, test and read `instances`).
    scope: String,
    /// For `invoke` tokens: the instances they may use.
    #[serde(default)]
    instances: Vec<String>,
}

error_responses!(CreateErrors = [INVALID_REQUEST, PAYLOAD_TOO_LARGE]);

/// Mint a token.
///
/// The answer is the only time the token is shown: the host stores only
/// its sha256.
#[utoipa::path(
    post,
    path = "/v1/tokens",
    operation_id = "createToken",
    tag = "tokens",
    request_body = CreateToken,
    responses((status = 201, description = "Minted.", body = NewToken), CreateErrors),
)]
pub async fn create_token(
    State(state): State<AppState>,
    body: axum::body::Body,
) -> Result<(StatusCode, axum::Json<serde_json::Value>), ApiError> {
    let req: CreateToken = super::read_json(body, state.settings.limits.max_request_bytes).await?;
    if req.name.trim().is_empty() || req.name.len() > 128 {
        return Err(ApiError::bad_request(
            "INVALID_REQUEST",
            "`name` must be 1-128 characters",
        ));
    }
    match req.scope.as_str() {
        ADMIN if !req.instances.is_empty() => {
            return Err(ApiError::bad_request(
                "INVALID_REQUEST",
                "`instances` only applies to `invoke` tokens",
            ));
        }
        ADMIN => {}
        INVOKE => {
            if req.instances.is_empty() {
                return Err(ApiError::bad_request(
                    "INVALID_REQUEST",
                    "an `invoke` token needs `instances`",
                ));
            }
            for i in &req.instances {
                if state.store.instance(i)?.is_none() {
                    return Err(ApiError::bad_request(
                        "INVALID_REQUEST",
                        format!("instance {i} does not exist"),
                    ));
                }
            }
        }
        other => {
            return Err(ApiError::bad_request(
                "INVALID_REQUEST",
                format!("`scope` must be `admin` or `invoke`, not {other:?}"),
            ));
        }
    }
    let token = mint();
    let record = TokenRecord {
        id: token_id(&token),
        scope: req.scope,
        name: Some(req.name.trim().to_owned()),
        instances: req.instances,
        created_at: super::now(),
    };
    put(&*state.store, &token, &record)?;
    tracing::info!(token = %record.id, scope = %record.scope, "token created");
    let mut view = serde_json::to_value(&record).unwrap_or_default();
    view["token"] = serde_json::json!(token);
    Ok((StatusCode::CREATED, axum::Json(view)))
}

error_responses!(ListErrors = []);

/// List tokens.
///
/// Ids, scopes, names and instances; never the tokens.
#[utoipa::path(
    get,
    path = "/v1/tokens",
    operation_id = "listTokens",
    tag = "tokens",
    responses((status = 200, description = "Every token.", body = TokenList), ListErrors),
)]
pub async fn list_tokens(
    State(state): State<AppState>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    Ok(axum::Json(
        serde_json::json!({ "items": state.store.tokens()? }),
    ))
}

error_responses!(DeleteErrors = [NOT_FOUND]);

/// Revoke a token, at once.
#[utoipa::path(
    delete,
    path = "/v1/tokens/{id}",
    operation_id = "deleteToken",
    tag = "tokens",
    params(("id" = String, Path, description = "Token id (`tok_…`)")),
    responses((status = 204, description = "Revoked."), DeleteErrors),
)]
pub async fn delete_token(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.delete_token(&id)?;
    tracing::info!(token = %id, "token revoked");
    Ok(StatusCode::NO_CONTENT)
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
    // Refusals happen before the handler reads the body.
    let has_body = request.headers().contains_key(header::CONTENT_LENGTH)
        || request.headers().contains_key(header::TRANSFER_ENCODING);
    let refuse = |e: ApiError| if has_body { e.body_unread() } else { e };
    let Some(token) = presented else {
        return Err(refuse(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "missing bearer token: send `Authorization: Bearer <token>` (the admin token is in <data-dir>/admin.token)",
        )));
    };
    // A sled point read is microseconds and mostly served from its cache, so
    // it runs inline rather than on a blocking thread.
    let Some(record) = state.store.token(&token_hash(token))? else {
        return Err(refuse(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "invalid token",
        )));
    };
    let allowed = match record.scope.as_str() {
        ADMIN => true,
        INVOKE => invoke_scope_allows(&record, request.method(), request.uri().path()),
        _ => false,
    };
    if !allowed {
        return Err(refuse(ApiError::new(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            format!(
                "token {} ({} scope) may not {} {}",
                record.id,
                record.scope,
                request.method(),
                request.uri().path()
            ),
        )));
    }
    request.extensions_mut().insert(record);
    Ok(next.run(request).await)
}
