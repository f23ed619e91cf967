//! `emag-sync dashboard`: the HTTP server on its own (status, health, metrics), reading the
//! store the schedulers write — on this machine or, with PostgreSQL, any other.

use std::net::SocketAddr;
use std::path::Path;

use emag_sync::web::{self, AppState, WebError};
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use super::{load_config, open_store, EXIT_CONFIG};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address and port to listen on [default: EMAG_DASHBOARD_BIND, or 127.0.0.1:8001]. An
    /// address other machines can reach (0.0.0.0:8001) needs EMAG_DASHBOARD_TOKEN.
    #[arg(long, value_name = "ADDR")]
    bind: Option<SocketAddr>,
}

pub async fn run(env_file: Option<&Path>, args: Args) -> u8 {
    let config = match load_config(env_file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Listening for SIGTERM/SIGINT before the URL is printed: whoever reads the URL may stop
    // the server at once and must get a clean exit.
    let (mut term, mut interrupt) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(interrupt)) => (term, interrupt),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: cannot listen for SIGTERM/SIGINT: {e}");
            return 1;
        }
    };
    let addr = args.bind.unwrap_or(config.dashboard.bind);
    let listener = match web::bind(addr, config.dashboard.token.as_ref()).await {
        Ok(listener) => listener,
        Err(e @ WebError::TokenRequired { .. }) => {
            eprintln!("error: {e}");
            return EXIT_CONFIG;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let store = match open_store(&config).await {
        Ok(store) => store,
        Err(code) => return code,
    };
    let local = listener.local_addr().unwrap_or(addr);
    println!(
        "emag-sync dashboard: http://{local} (/api/status, /health, /livez, /readyz, /metrics); \
         database {}; Ctrl-C stops it",
        store.url_redacted()
    );
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::info!("stop requested: finishing the requests in flight, then exiting");
        stop.cancel();
    });
    let result = web::serve(listener, AppState::new(config, store.clone()), cancel).await;
    store.close().await;
    match result {
        Ok(()) => {
            println!("emag-sync dashboard stopped");
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// The dashboard served beside the scheduler of `start`.
#[derive(Debug)]
pub struct Beside {
    pub url: String,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), WebError>>,
}

/// Serves the dashboard beside a scheduler whose clients are `accounts`, until `cancel`. An
/// address that is taken or refused costs the dashboard, never the schedule: it is logged and
/// `None` returned.
pub async fn serve_beside<'a>(
    config: &emag_sync::config::Config,
    store: &storage::Store,
    accounts: impl IntoIterator<Item = &'a emag_sync::sync::Account>,
    cancel: CancellationToken,
) -> Option<Beside> {
    let addr = config.dashboard.bind;
    let listener = match web::bind(addr, config.dashboard.token.as_ref()).await {
        Ok(listener) => listener,
        Err(e) => {
            let hint =
                "the scheduler runs without the dashboard (start --no-dashboard leaves it off)";
            match e {
                WebError::TokenRequired { .. } => tracing::error!(error = %e, "{hint}"),
                _ => tracing::warn!(error = %e, "{hint}"),
            }
            return None;
        }
    };
    let url = format!("http://{}", listener.local_addr().unwrap_or(addr));
    tracing::info!(dashboard.url = %url, "serving the dashboard beside the scheduler");
    let state = AppState::new(config.clone(), store.clone()).with_api_clients(accounts);
    let task = tokio::spawn(web::serve(listener, state, cancel.clone()));
    Some(Beside { url, cancel, task })
}

impl Beside {
    /// Stops serving and waits (at most 5 s) for the requests in flight.
    pub async fn stop(self) {
        self.cancel.cancel();
        match tokio::time::timeout(std::time::Duration::from_secs(5), self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the dashboard stopped with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "the dashboard's task failed"),
            Err(_) => tracing::warn!("the dashboard did not stop within 5 s; exiting without it"),
        }
    }
}
