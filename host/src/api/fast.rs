//! The invoke route's fast path.
//!
//! `POST /v1/instances/{id}/methods/{method}` is the request a host serves
//! most. Under load (`scripts/bench-load`, perf) axum's router and the two
//! `from_fn` middlewares around the handler were ~11 % of the host's CPU
//! per call: route matching, a `Next` and a boxed future per layer, a state
//! clone per layer, and the path and query extractors' maps. [`Front`]
//! sits in front of the router and serves the plain form of that route
//! itself, through the same functions the router's layers and handler
//! call ([`super::observe::tracked`], [`super::auth::guarded`],
//! [`super::instances::invoke_request`]): the span, metrics, token check,
//! refusal and admin audit records, and the call are the router's.
//!
//! "Plain" means no query string and no `%` in the path, so the fast path
//! never repeats axum's percent-decoding or query parsing: any other
//! request, `?outbound=true` included, goes to the router unchanged.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::Request;
use axum::http::Method;
use axum::response::{IntoResponse as _, Response};
use tower_service::Service;

use super::audit::Target;
use super::{AppState, auth, instances, observe};

/// The invoke route's pattern, as the router matches it (metrics label).
pub(super) const INVOKE_ROUTE: &str = "/v1/instances/{id}/methods/{method}";

/// The router, with the invoke route's fast path in front of it.
#[derive(Clone)]
pub struct Front {
    router: Router,
    state: AppState,
}

impl Front {
    /// `router` (the full API, see [`super::router`]) behind the fast path.
    pub fn new(router: Router, state: AppState) -> Self {
        Self { router, state }
    }
}

/// Boxed: the fast path's future is an `async` block, which has no name.
/// (The router boxes each of its layers' futures anyway.)
type Answer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl Service<Request> for Front {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<Request>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, request: Request) -> Answer {
        match plain_invoke(&request) {
            Some(at) => {
                let state = self.state.clone();
                Box::pin(invoke(state, request, at))
            }
            None => Box::pin(self.router.call(request)),
        }
    }
}

/// Where a plain invoke request's path holds the instance id and the
/// method name. Offsets rather than copies: the call reads both from the
/// request's own path, without two allocations per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InvokePath {
    id: (usize, usize),
    method: usize,
}

impl InvokePath {
    /// The instance id and the method name in `path`, the path this was
    /// read from.
    fn read(self, path: &str) -> (&str, &str) {
        (&path[self.id.0..self.id.1], &path[self.method..])
    }
}

/// Where the instance id and method name of a plain invoke request (see
/// the module doc) are in its path; `None` for anything the router must
/// see.
fn plain_invoke(request: &Request) -> Option<InvokePath> {
    const PREFIX: &str = "/v1/instances/";
    if request.method() != Method::POST || request.uri().query().is_some() {
        return None;
    }
    let path = request.uri().path();
    if path.contains('%') {
        return None;
    }
    let rest = path.strip_prefix(PREFIX)?;
    let (id, rest) = rest.split_once('/')?;
    let method = rest.strip_prefix("methods/")?;
    if id.is_empty() || method.is_empty() || method.contains('/') {
        return None;
    }
    let start = PREFIX.len();
    Some(InvokePath {
        id: (start, start + id.len()),
        method: path.len() - method.len(),
    })
}

/// What the router does for the invoke route: [`observe::track`] around
/// [`auth::require_token`] around [`instances::invoke`].
///
/// The call's whole future is boxed once and lives as long as the call
/// (through a slow upstream, seconds), so each layer is written to hold
/// the next one's future once: made by a closure where it is awaited
/// rather than bound to a local first, which `async` state keeps a second
/// copy of. 10,000 calls in flight held ~16 KiB of future each before.
async fn invoke(state: AppState, request: Request, at: InvokePath) -> Result<Response, Infallible> {
    // The clone shares the request's path bytes (a reference count): the
    // id and method are read from it while the request itself moves on.
    let uri = request.uri().clone();
    let (id, method) = at.read(uri.path());
    let target = invoke_target(id);
    // One clock read for the route's metrics, the answer's `durationMs`
    // and the call's usage figures.
    let state = &state;
    let response = observe::tracked(INVOKE_ROUTE, Method::POST, |started| {
        auth::guarded(state, &target, request, move |request| {
            // Split outside the `async` block, which then keeps only the
            // headers and the body for the call's life, not the request.
            let (parts, body) = request.into_parts();
            let headers = parts.headers;
            async move {
                instances::invoke_request(state, id, method, false, &headers, body, started)
                    .await
                    .map(axum::Json)
                    .into_response()
            }
        })
    })
    .await;
    Ok(response)
}

/// The invoke request's target, as the router's [`Target::of`] reads it.
fn invoke_target(id: &str) -> Target<'_> {
    Target::new(Method::POST, INVOKE_ROUTE, Some(id.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(method: Method, uri: &str) -> Option<(String, String)> {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(axum::body::Body::empty())
            .expect("a valid request");
        let (id, method) = plain_invoke(&request)?.read(request.uri().path());
        Some((id.to_owned(), method.to_owned()))
    }

    #[test]
    fn the_plain_invoke_request_takes_the_fast_path() {
        assert_eq!(
            plain(Method::POST, "/v1/instances/inst_1/methods/echo"),
            Some(("inst_1".into(), "echo".into()))
        );
        // hyper hands HTTP/2 requests over with the `:scheme` and
        // `:authority` in the URI (absolute form); only the path counts.
        assert_eq!(
            plain(
                Method::POST,
                "http://127.0.0.1:8080/v1/instances/inst_1/methods/echo"
            ),
            Some(("inst_1".into(), "echo".into()))
        );
    }

    #[test]
    fn everything_else_goes_to_the_router() {
        for (method, uri) in [
            (Method::GET, "/v1/instances/inst_1/methods/echo"),
            (Method::PUT, "/v1/instances/inst_1/methods/echo"),
            // The router parses queries and percent-decodes segments.
            (
                Method::POST,
                "/v1/instances/inst_1/methods/echo?outbound=true",
            ),
            (Method::POST, "/v1/instances/inst_1/methods/echo?"),
            (Method::POST, "/v1/instances/inst_1/methods/ech%6F"),
            (Method::POST, "/v1/instances/inst%5F1/methods/echo"),
            // Not the invoke route (the router answers 404 or 405).
            (Method::POST, "/v1/instances/inst_1/methods/"),
            (Method::POST, "/v1/instances//methods/echo"),
            (Method::POST, "/v1/instances/inst_1/methods/echo/"),
            (Method::POST, "/v1/instances/inst_1/methods/echo/more"),
            (Method::POST, "/v1/instances/inst_1/method/echo"),
            (Method::POST, "/v1/instances/inst_1/test"),
            (Method::POST, "/v1/instances/inst_1"),
            (Method::POST, "/instances/inst_1/methods/echo"),
            (Method::POST, "/v2/instances/inst_1/methods/echo"),
        ] {
            assert_eq!(plain(method.clone(), uri), None, "{method} {uri}");
        }
    }

    #[test]
    fn the_fast_route_is_the_routers_invoke_route() {
        let spec = super::super::openapi();
        let item = spec
            .paths
            .paths
            .get(INVOKE_ROUTE)
            .expect("the router serves the fast path's route");
        let post = item.post.as_ref().expect("as POST");
        assert_eq!(post.operation_id.as_deref(), Some("invokeMethod"));
    }

    /// Every call in flight holds the fast path's whole future until it
    /// answers (seconds, on a slow upstream): a layer that keeps a second
    /// copy of the future (or of the request) inside it shows here first.
    /// Before the layers were written to hold it once it was 18,080 bytes
    /// here (heaptrack counted ~15.8 KiB per call in a release build),
    /// after, 5,584; grown to 5,864 since, 5,072 once the request was held
    /// once and instantiating was boxed. (A release test build laid out the
    /// inner layers' futures byte for byte as this one does.)
    #[tokio::test]
    async fn an_invoke_call_holds_each_layers_future_once() {
        use std::sync::Arc;

        let (store, dir) = crate::store::testing::temp_store();
        let store: Arc<dyn crate::store::Store> = Arc::new(store);
        let settings = crate::config::Settings::resolve(&crate::config::Overrides {
            data_dir: Some(dir.clone()),
            max_instances: Some(1),
            ..Default::default()
        })
        .expect("settings");
        let broker = Arc::new(crate::egress::Broker::new(settings.egress.clone()));
        let runtime =
            crate::runtime::Runtime::new(settings.limits.clone(), broker).expect("runtime");
        let vault = crate::vault::Vault::new(crate::vault::MasterKey::generate(), vec![]);
        let audit = crate::audit::AuditLog::start(store.clone()).expect("audit log");
        let state = AppState::new(store, Arc::new(runtime), Arc::new(vault), settings, audit);
        let request = Request::builder()
            .method(Method::POST)
            .uri("/v1/instances/inst_1/methods/echo")
            .body(axum::body::Body::empty())
            .expect("a valid request");

        let at = plain_invoke(&request).expect("a plain invoke request");
        let call = invoke(state, request, at);
        let size = std::mem::size_of_val(&call);
        drop(call);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(size <= 6 << 10, "the invoke route's future is {size} bytes");
    }

    #[test]
    fn the_invoke_route_is_not_an_admin_action() {
        // Invocations are not admin actions (the broker records their
        // credential uses); `guarded` asks the target, so the fast path's
        // target must not name one either.
        assert_eq!(invoke_target("inst_1").action(), None);
    }
}
