//! Who is acting, carried through a request as a task-local, so the broker
//! can name the actor of a credential use without every call path between
//! the API and the egress hooks passing it along.
//!
//! The API's auth middleware sets the calling token around the handler,
//! webhook ingress sets the delivery's instance, the job worker sets the
//! job; anything else is the host itself.

use std::future::Future;
use std::sync::Arc;

use super::record::Actor;

tokio::task_local! {
    // Shared, not owned: every API request sets its token's actor, and few
    // read it (credential uses, admin records), so a request clones a
    // pointer rather than the actor's strings.
    static ACTOR: Arc<Actor>;
}

/// Runs `f` with `actor` as the current actor.
///
/// Not an `async fn`: one would hold `f` twice in its state, as its
/// argument and inside the scope future it awaits, and every call in
/// flight carries the whole state (see `api/fast.rs`).
pub fn acting<F: Future>(actor: impl Into<Arc<Actor>>, f: F) -> impl Future<Output = F::Output> {
    ACTOR.scope(actor.into(), f)
}

/// The current actor; the host itself outside any [`acting`] scope.
pub fn current_actor() -> Actor {
    ACTOR
        .try_with(|actor| Actor::clone(actor))
        .unwrap_or_else(|_| Actor::system("host", None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::ActorKind;

    #[tokio::test]
    async fn the_scope_names_the_actor() {
        assert_eq!(current_actor().kind, ActorKind::System);
        let inside = acting(Actor::webhook("inst_1"), async { current_actor() }).await;
        assert_eq!(inside, Actor::webhook("inst_1"));
        assert_eq!(current_actor().kind, ActorKind::System);
    }
}
