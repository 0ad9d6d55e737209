//! Bearer-token authentication for `/v1`.
//!
//! Tokens are random 256-bit values; the store keeps only their sha256, so a
//! copy of the data directory does not reveal a usable token. On first start
//! the host mints an admin token and writes it to an owner-only file;
//! rotating that token rewrites the file.
//!
//! The middleware is also where API requests enter the audit trail (see
//! [`super::audit`]): refusals, and the outcome of every admin action.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use rand::RngCore as _;
use sha2::{Digest, Sha256};

use super::audit::{self, AuditNote, Target};
use super::error::ApiError;
use super::openapi::error_responses;
use super::openapi::schemas::{NewToken, TokenList};
use super::{AppState, unix_ms};
use crate::audit::Actor;
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
        last_used_at: None,
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
) -> Result<Response, ApiError> {
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
        last_used_at: None,
    };
    put(&*state.store, &token, &record)?;
    tracing::info!(token = %record.id, scope = %record.scope, "token created");
    let note = AuditNote::on(&record.id)
        .with("scope", record.scope.as_str())
        .with("instances", record.instances.clone());
    Ok(note.attach(shown_once(StatusCode::CREATED, &record, &token)))
}

/// A token record with the token itself: the only time it is shown.
fn shown_once(status: StatusCode, record: &TokenRecord, token: &str) -> Response {
    let mut view = serde_json::to_value(record).unwrap_or_default();
    view["token"] = serde_json::json!(token);
    (status, axum::Json(view)).into_response()
}

error_responses!(RotateErrors = [NOT_FOUND]);

/// Rotate a token.
///
/// Mints a replacement with the same name, scope and instances and revokes
/// the old token in one store transaction; the answer is the only time the
/// new token is shown. Rotating the bootstrap admin token also rewrites
/// `<data-dir>/admin.token` (atomically: written aside, renamed over once
/// the store committed).
#[utoipa::path(
    post,
    path = "/v1/tokens/{id}/rotate",
    operation_id = "rotateToken",
    tag = "tokens",
    params(("id" = String, Path, description = "Token id (`tok_…`)")),
    responses((status = 201, description = "Rotated: the new token.", body = NewToken), RotateErrors),
)]
pub async fn rotate_token(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    let old = state
        .store
        .tokens()?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(|| ApiError::not_found(format!("token {id}")))?;
    let token = mint();
    let record = TokenRecord {
        id: token_id(&token),
        created_at: super::now(),
        last_used_at: None,
        ..old
    };
    let file = state.settings.data_dir.join(ADMIN_TOKEN_FILE);
    // The file's token, if it is the one being rotated (ids are derived
    // from the hash; the hash itself is compared after the commit).
    let in_file = std::fs::read_to_string(&file)
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| token_id(t) == id);
    let staged = match &in_file {
        Some(_) => Some(stage(&file, &token).map_err(ApiError::internal)?),
        None => None,
    };
    let old_hash = match state.store.replace_token(&id, &token_hash(&token), &record) {
        Ok(hash) => hash,
        Err(e) => {
            if let Some(tmp) = &staged {
                let _ = std::fs::remove_file(tmp);
            }
            return Err(e.into());
        }
    };
    forget(&state, &id);
    // Committed: from here on nothing may fail the request, or the only
    // copy of the new token (this answer) would be lost.
    let mut rewrote = false;
    if let Some(tmp) = staged {
        if in_file.is_some_and(|t| token_hash(&t) == old_hash) {
            match replace_file(&tmp, &file) {
                Ok(()) => rewrote = true,
                Err(e) => {
                    tracing::error!(path = %file.display(), error = %e, "could not rewrite the admin token file; use the token from the rotation answer");
                }
            }
        }
        let _ = std::fs::remove_file(&tmp);
    }
    tracing::info!(old = %id, new = %record.id, admin_token_file = rewrote, "token rotated");
    let note = AuditNote::on(&id)
        .with("replacedBy", record.id.as_str())
        .with("adminTokenFile", rewrote);
    Ok(note.attach(shown_once(StatusCode::CREATED, &record, &token)))
}

/// Writes `token` owner-only next to `file`, under a unique name; returns
/// that path.
fn stage(file: &Path, token: &str) -> std::io::Result<PathBuf> {
    let tmp = file.with_extension(format!("{}.tmp", uuid::Uuid::new_v4().simple()));
    write_owner_only(&tmp, token.as_bytes())?;
    Ok(tmp)
}

/// Renames `tmp` over `file` and makes the rename durable.
fn replace_file(tmp: &Path, file: &Path) -> std::io::Result<()> {
    std::fs::rename(tmp, file)?;
    #[cfg(unix)]
    if let Some(dir) = file.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
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
    forget(&state, &id);
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

/// How often a token's `lastUsedAt` is written at most.
const LAST_USED_EVERY_MS: u64 = 60_000;

/// A stored token as requests use it, kept in memory until the store is
/// written: its record, the actor it makes, and when this entry last saw
/// its `lastUsedAt` written.
///
/// Every API request looks its token up, and both workers share these
/// entries: the actor is made once (a request clones a pointer, not its
/// strings), and a use within a minute of the last write is settled here
/// without the lock of the host-wide `token_seen` map.
pub(crate) struct Known {
    record: TokenRecord,
    actor: Arc<Actor>,
    /// Unix ms of the last `lastUsedAt` write this entry knows of; 0 when
    /// it knows none (a fresh entry asks `token_seen`).
    noted_ms: AtomicU64,
}

impl Known {
    fn new(record: TokenRecord) -> Self {
        Self {
            actor: Arc::new(Actor::token(&record)),
            record,
            noted_ms: AtomicU64::new(0),
        }
    }
}

/// Writes `lastUsedAt` if the last write for this token is a minute old:
/// one small write per token per minute, not one per request.
fn note_use(state: &AppState, hash: &[u8; 32], known: &Known) {
    let now = unix_ms();
    if now.saturating_sub(known.noted_ms.load(Ordering::Relaxed)) < LAST_USED_EVERY_MS {
        return;
    }
    let record = &known.record;
    let (due, noted) = {
        let mut seen = state.token_seen.lock().unwrap_or_else(|e| e.into_inner());
        match seen.get(&record.id) {
            Some(&at) if now.saturating_sub(at) < LAST_USED_EVERY_MS => (false, at),
            _ => {
                seen.insert(record.id.clone(), now);
                (true, now)
            }
        }
    };
    known.noted_ms.store(noted, Ordering::Relaxed);
    if due && let Err(e) = state.store.touch_token(hash, &super::now()) {
        tracing::warn!(token = %record.id, error = %e, "could not record the token's last use");
    }
}

/// Drops a revoked token from the `lastUsedAt` bookkeeping.
fn forget(state: &AppState, id: &str) {
    state
        .token_seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(id);
}

/// Middleware: rejects requests without a valid bearer token with 401 (or
/// outside the token's scope with 403), recording the refusal; runs the
/// handler as the token's actor and records admin actions' outcomes.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let target = Target::of(&mut parts).await;
    guarded(&state, &target, Request::from_parts(parts, body), |r| {
        next.run(r)
    })
    .await
}

/// What [`require_token`] does once it knows the request's [`Target`]:
/// shared with the invoke route's fast path ([`super::fast`]), which
/// knows its target without axum's routing.
///
/// Not an `async fn`: one keeps its arguments for its whole life, so every
/// call in flight would hold the request twice (the argument and its
/// parts). Split here, the `async` block holds the parts once.
pub(super) fn guarded<F>(
    state: &AppState,
    target: &Target<'_>,
    request: Request,
    run: impl FnOnce(Request) -> F,
) -> impl Future<Output = Response>
where
    F: Future<Output = Response>,
{
    // Split, because a `Request`'s body is not `Sync`: a reference to the
    // whole request across the refusal's `await` would make this future
    // not `Send`.
    let (parts, body) = request.into_parts();
    async move {
        let actor = match authorize(state, target, &parts).await {
            Ok(actor) => actor,
            Err(e) => return e.into_response(),
        };
        let admin = target.action().map(|action| (action, actor.clone()));
        let response = crate::audit::acting(actor, run(Request::from_parts(parts, body))).await;
        if let Some((action, actor)) = admin {
            // Stored before the answer goes out, so an answered admin
            // request has its record. If it cannot be stored the writer
            // logs the loss; the answer still goes out (the action
            // happened).
            let record = audit::admin(state, target, action, Actor::clone(&actor), &response);
            state.audit.append(record).await;
        }
        response
    }
}

/// The actor a request's bearer token names, if the token is known and its
/// scope allows the request; otherwise the 401/403, recorded as a refusal.
async fn authorize(
    state: &AppState,
    target: &Target<'_>,
    request: &Parts,
) -> Result<Arc<Actor>, ApiError> {
    let presented = request
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    // Refusals happen before the handler reads the body.
    let has_body = request.headers.contains_key(header::CONTENT_LENGTH)
        || request.headers.contains_key(header::TRANSFER_ENCODING);
    let refuse = |e: ApiError| if has_body { e.body_unread() } else { e };
    let Some(token) = presented else {
        let e = refuse(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "missing bearer token: send `Authorization: Bearer <token>` (the admin token is in <data-dir>/admin.token)",
        ));
        return Err(audit::denied(state, target, Actor::unidentified(), "missing token", e).await);
    };
    let hash = token_hash(token);
    // Kept in memory until a token (or other record) is written; the read
    // on a miss is a sled point read, microseconds and mostly served from
    // its cache, so it runs inline rather than on a blocking thread.
    let known = state.tokens.get(&*state.store, &hash, || {
        Ok::<_, crate::store::StoreError>(
            state.store.token(&hash)?.map(|r| Arc::new(Known::new(r))),
        )
    })?;
    let Some(known) = known else {
        let e = refuse(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "invalid token",
        ));
        return Err(audit::denied(state, target, Actor::unidentified(), "invalid token", e).await);
    };
    let record = &known.record;
    let allowed = match record.scope.as_str() {
        ADMIN => true,
        INVOKE => invoke_scope_allows(record, &request.method, request.uri.path()),
        _ => false,
    };
    if !allowed {
        let e = refuse(ApiError::new(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            format!(
                "token {} ({} scope) may not {} {}",
                record.id,
                record.scope,
                request.method,
                request.uri.path()
            ),
        ));
        let actor = Actor::clone(&known.actor);
        return Err(audit::denied(state, target, actor, "outside the token's scope", e).await);
    }
    note_use(state, &hash, &known);
    Ok(known.actor.clone())
}
