//! Starting and stopping a host: data directory, store, vault, admin
//! token, audit trail, runtime, listener, graceful shutdown.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::config::Settings;
use crate::egress::Broker;
use crate::runtime::Runtime;
use crate::store::{SledStore, Store};

/// Sub-directory of the data dir that holds the sled database.
const STORE_DIR: &str = "store";

/// Opens the store of a data directory (creating the directory).
pub fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    prepare_data_dir(&settings.data_dir)?;
    Ok(Arc::new(
        SledStore::open(&settings.data_dir.join(STORE_DIR))
            .with_context(|| format!("opening the store in {}", settings.data_dir.display()))?,
    ))
}

/// Runs the host until SIGINT/SIGTERM.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let running = start(settings).await?;
    // Before the line below: a script that sends SIGTERM as soon as it reads
    // it must get a graceful stop, not the default action (exit mid-write).
    let shutdown = shutdown_signal();
    if let Some(path) = &running.created_token {
        // The path, never the token.
        println!("admin token written to {} (owner-only)", path.display());
    }
    // Scripts and tests read this line to learn the bound port.
    println!("plugboard listening on http://{}", running.addr);
    shutdown.await;
    tracing::info!("shutting down");
    running.stop().await
}

/// A host serving in this process (`serve`, and `plugboard test`, which
/// drives a private host through its real API).
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// Where a newly created admin token was written, if one was.
    pub created_token: Option<std::path::PathBuf>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Stops accepting, finishes in-flight requests, stores queued audit
    /// records and flushes the store.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await.context("the server task panicked")?
    }
}

/// Opens the data directory and starts serving; returns once the listener
/// is bound.
pub async fn start(settings: Settings) -> anyhow::Result<Running> {
    crate::metrics::install();
    crate::metrics::spawn_upkeep();
    let store = open_store(&settings)?;
    // Before anything listens: a wrong master key must stop the start.
    let vault = Arc::new(crate::vault::open::open(
        &*store,
        &settings.data_dir,
        settings.master_key.as_ref(),
    )?);
    tracing::info!(key = vault.current_id(), "vault open");
    let created_token = api::ensure_admin_token(&*store, &settings.data_dir)?;
    if let Some(path) = &created_token {
        // The path, never the token.
        tracing::info!(path = %path.display(), "created the admin token");
    }
    // The trail's writer, and the retention sweep before anything listens
    // (so the records an operator sees are never past retention).
    let audit = crate::audit::AuditLog::start(store.clone())?;
    match settings.audit_retention {
        Some(retention) => {
            crate::audit::sweep_and_record(&audit, store.clone(), retention)
                .await
                .context("sweeping the audit trail")?;
            crate::audit::spawn_sweeper(audit.clone(), store.clone(), retention);
        }
        None => tracing::info!("audit records are kept forever (retention 0)"),
    }
    let broker = Arc::new(Broker::new(settings.egress.clone()));
    if !settings.egress.allow_cidrs.is_empty() {
        let ranges: Vec<String> = settings
            .egress
            .allow_cidrs
            .iter()
            .map(|c| c.to_string())
            .collect();
        tracing::warn!(ranges = %ranges.join(", "), "guests may reach these special address ranges");
    }
    let runtime = Arc::new(Runtime::new(settings.limits.clone(), broker)?);
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let addr: SocketAddr = listener.local_addr()?;
    let state = AppState::new(store.clone(), runtime, vault, settings, audit.clone());
    api::spawn_worker(state.clone());
    let app = api::service(state);

    tracing::info!(%addr, "listening");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        // `into_make_service` resolves the router's state once. Serving the
        // `Router` itself re-runs `with_state` for every accepted
        // connection, which rebuilds the route table: heaptrack during
        // `scripts/bench-scale`'s burst counted 17.8 KiB per open
        // connection for it (33.5 MB for 1,878 connections).
        axum::serve(listener, axum::ServiceExt::into_make_service(app))
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .context("serving HTTP")?;
        // Queued audit records (credential uses of the last calls) are
        // stored before the process ends.
        audit.sync().await;
        store.flush()?;
        tracing::info!("stopped");
        Ok(())
    });
    Ok(Running {
        addr,
        created_token,
        stop,
        task,
    })
}

/// Creates the data directory owner-only (it holds the token file and the
/// store).
fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating data dir {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting permissions of {}", dir.display()))?;
    }
    Ok(())
}

/// Resolves on the first SIGINT or SIGTERM. On Unix both are registered
/// when this is called, not when the future is first polled: a signal in
/// between would otherwise take its default action and end the process
/// without the shutdown below (an e2e test that stopped a host right after
/// its "listening" line saw exactly that).
fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let int = signal(SignalKind::interrupt());
        let term = signal(SignalKind::terminate());
        async move {
            let recv = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
                match s {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = recv(int) => {},
                () = recv(term) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
