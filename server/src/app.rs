//! The HTTP application and the server's lifecycle.
//!
//! [`app`] builds the router (separate from start-up so tests can drive it); [`Server::start`]
//! opens storage, recovers what a crash left open, binds, and serves; [`Server::shutdown`] tells
//! every client, records every presence as ended, and closes the database cleanly.

use crate::api;
use crate::state::{AppState, CourtLink};
use crate::web;
use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use tiaojie_config::Config;
use tiaojie_domain::LeaveReason;
use tiaojie_domain::clock::now_millis;
use tiaojie_media::{MediaError, Sfu, SfuConfig};
use tiaojie_signaling::hub::Hub;
use tiaojie_signaling::metrics::Metrics;
use tiaojie_signaling::recording::{RecorderSetupError, Recorders};
use tiaojie_signaling::token::{KeyError, TokenKeys};
use tiaojie_signaling::ws;
use tiaojie_store::{Store, StoreError};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The router: the web client (`/`, `/join`, `/admin`, `/web/*`), `/ws`, `/api/*`, `/healthz`,
/// `/metrics`.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(web::routes())
        .route("/ws", get(websocket))
        .route(
            tiaojie_confirmation::wire::PATH,
            get(crate::court_link::bridge_socket),
        )
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .nest("/api", api::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.api.max_body_bytes))
        .with_state(state)
}

async fn websocket(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    let hard_limit = state.config.signaling.max_message_bytes * ws::HARD_LIMIT_FACTOR;
    let hub = state.hub.clone();
    upgrade
        .read_buffer_size(ws::READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_message_size(hard_limit)
        .max_frame_size(hard_limit)
        .on_upgrade(move |socket| ws::serve(socket, hub))
}

async fn healthz(State(state): State<AppState>) -> Response {
    match state.hub.store().rooms(false).await {
        Ok(_) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ok"})),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: storage unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({"status": "unavailable", "reason": "storage"})),
            )
                .into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = state.hub.metrics.render();
    if let Some(sfu) = state.hub.sfu_handle() {
        text.push_str(&tiaojie_signaling::metrics::render_media(sfu.counters()));
    }
    // Cases past their time limit: the admins' alert (an indexed count, per scrape).
    let now = state.hub.clock.now();
    if let Ok(late) = state.hub.store().overdue_count(now).await {
        text.push_str(&format!(
            "# HELP tiaojie_cases_overdue Open cases past their mediation time limit.\n\
             # TYPE tiaojie_cases_overdue gauge\ntiaojie_cases_overdue {late}\n"
        ));
    }
    // Judicial confirmation: the outbox's depth and age, dead letters (the admins' alert),
    // bridges connected, refusals.
    if let Ok(o) = state.hub.store().outbox_stats(now).await {
        let court = &state.court;
        text.push_str(&format!(
            "# HELP tiaojie_confirmation_outbox_pending Messages for the court not yet acknowledged.\n\
             # TYPE tiaojie_confirmation_outbox_pending gauge\ntiaojie_confirmation_outbox_pending {}\n\
             # HELP tiaojie_confirmation_outbox_oldest_seconds Age of the oldest unacknowledged message.\n\
             # TYPE tiaojie_confirmation_outbox_oldest_seconds gauge\ntiaojie_confirmation_outbox_oldest_seconds {:.3}\n\
             # HELP tiaojie_confirmation_dead_letters Messages that kept failing and wait for an admin.\n\
             # TYPE tiaojie_confirmation_dead_letters gauge\ntiaojie_confirmation_dead_letters {}\n\
             # HELP tiaojie_confirmation_bridges_connected Court bridges connected now.\n\
             # TYPE tiaojie_confirmation_bridges_connected gauge\ntiaojie_confirmation_bridges_connected {}\n\
             # HELP tiaojie_confirmation_refused_total Envelopes, updates or bridge keys refused.\n\
             # TYPE tiaojie_confirmation_refused_total counter\ntiaojie_confirmation_refused_total {}\n",
            o.pending,
            o.oldest_pending_ms as f64 / 1000.0,
            o.dead,
            court.connected.load(std::sync::atomic::Ordering::Relaxed),
            court.refused.load(std::sync::atomic::Ordering::Relaxed),
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(
            serde_json::json!({"error": {"code": "not_found", "message": "no such endpoint"}}),
        ),
    )
        .into_response()
}

async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        axum::Json(serde_json::json!({"error": {"code": "invalid_request", "message": "method not allowed on this endpoint"}})),
    )
        .into_response()
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Storage could not be opened or migrated.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// Token keys could not be loaded or created.
    #[error("token keys: {0}")]
    Keys(#[from] KeyError),
    /// The media plane could not start.
    #[error("media: {0}")]
    Media(#[from] MediaError),
    /// The recordings directory or the recording key could not be set up.
    #[error("recording: {0}")]
    Recorder(#[from] RecorderSetupError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// A running server.
pub struct Server {
    /// The bound address (the real port when configured with port 0).
    pub addr: SocketAddr,
    /// What the handlers reach (live rooms, configuration, the court link), for in-process
    /// callers such as tests.
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    /// Opens storage (applying migrations), ends presences a crash left open, loads keys,
    /// binds and starts serving.
    pub async fn start(config: Config) -> Result<Server, StartError> {
        let config = Arc::new(config);
        let store = Store::connect(&config.database_url(), config.database.max_connections).await?;
        let now = now_millis();
        let stale = store
            .end_open_participations(LeaveReason::ServerRestart, now)
            .await?;
        if stale > 0 {
            tracing::warn!(
                count = stale,
                "ended presences left open by an unclean stop"
            );
        }
        store.prune_revocations(now).await?;
        let keys = Arc::new(TokenKeys::from_config(
            &config.auth,
            &config.server.data_dir,
        )?);
        let metrics = Arc::new(Metrics::default());
        let descriptors = crate::listener::raise_descriptor_limit();
        metrics
            .descriptor_limit
            .store(descriptors, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(limit = descriptors, "open-descriptor limit");
        let recorders = Arc::new(Recorders::open(&config.recording, &config.server.data_dir)?);
        // Recordings a crash interrupted get their files and an incomplete-marked manifest.
        recorders.recover_interrupted();
        let revoked = store.revoked_token_ids().await?;
        let removed = store.removals().await?;
        let (media, media_events) = if config.media.enabled {
            let sfu_config = SfuConfig {
                bind: config.media.bind,
                advertise: config
                    .media
                    .advertise_ips()
                    .map_err(|e| StartError::Media(MediaError::Config(e)))?,
                keyframe_throttle: config.media.keyframe_throttle,
                ..SfuConfig::default()
            };
            let (sfu, events) = Sfu::start(sfu_config)?;
            (
                Some(Arc::new(sfu) as Arc<dyn tiaojie_signaling::media_plane::MediaPlane>),
                Some(events),
            )
        } else {
            (None, None)
        };
        let hub = Arc::new(Hub::new(
            store,
            keys,
            config.signaling.clone(),
            metrics,
            tiaojie_signaling::hub::ShutOut {
                revoked_tokens: revoked,
                removed,
            },
            media,
            recorders,
        ));
        tokio::spawn(retention(hub.clone()));
        let finished = hub.recorders().announcements();
        tokio::spawn(hub.clone().relay_finished_recordings(finished));
        if let Some(events) = media_events {
            tokio::spawn(hub.clone().relay_media_events(events));
        }
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.server.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.server.listen,
            source,
        })?;
        let fonts = crate::documents::load_fonts(&config.documents).await;
        let state = AppState {
            court: Arc::new(CourtLink::new(hub.recorders().key_der())),
            hub: hub.clone(),
            config: config.clone(),
            fonts,
        };
        let router = app(state.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let limits = crate::listener::Limits {
            header_timeout: config.server.header_timeout,
            per_address: config.server.max_connections_per_address,
        };
        let task = tokio::spawn(crate::listener::serve(
            listener,
            router,
            limits,
            hub.metrics.clone(),
            stopped,
        ));
        tracing::info!(%addr, database = ?hub.store().backend(), "tiaojie serving");
        Ok(Server {
            addr,
            state,
            stop: Some(stop),
            task,
        })
    }

    /// Graceful shutdown: every participant is told (`server.shutdown`, close 1001) and
    /// recorded as having left, the listener stops, connections get `server.shutdown_timeout`
    /// to finish, and the database is closed cleanly.
    pub async fn shutdown(mut self) {
        tracing::info!("shutting down");
        self.state
            .hub
            .shutdown(tiaojie_signaling::protocol::reason::SERVER_SHUTDOWN)
            .await;
        if let Some(sfu) = self.state.hub.sfu_handle() {
            let _ = sfu.shutdown().await;
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match tokio::time::timeout(self.state.config.server.shutdown_timeout, &mut self.task).await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "server task failed"),
            Err(_) => {
                tracing::warn!("connections still open after the shutdown timeout; closing them");
                self.task.abort();
            }
        }
        // Recordings stopped by the shutdown finish their files before the database closes.
        let recorders = self.state.hub.recorders().clone();
        let _ = tokio::task::spawn_blocking(move || recorders.wait_for_workers()).await;
        let _ = self
            .state
            .hub
            .store()
            .end_open_participations(LeaveReason::ServerShutdown, now_millis())
            .await;
        self.state.hub.store().close().await;
        tracing::info!("stopped");
    }
}

/// Deletes finished recordings older than `recording.retention_days` (0: never), hourly; each
/// deletion is audited as the system's.
async fn retention(hub: Arc<Hub>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        every.tick().await;
        let recorders = hub.recorders().clone();
        let days = recorders.config().retention_days;
        let expired = match tokio::task::spawn_blocking(move || {
            let ids = recorders.expired(now_millis());
            (recorders, ids)
        })
        .await
        {
            Ok(found) => found,
            Err(_) => continue,
        };
        let (recorders, ids) = expired;
        for id in ids {
            let entry = tiaojie_domain::AuditEntry::new(
                now_millis(),
                "system",
                "system",
                tiaojie_domain::AuditAction::RecordingDelete,
                &format!("recording:{id}"),
                &format!("retention: kept {days} days"),
            );
            if let Err(e) = hub.store().audit(&entry).await {
                tracing::error!(recording = %id, error = %e, "retention: not deleting, the audit log is unavailable");
                continue;
            }
            let r = recorders.clone();
            let doomed = id.clone();
            match tokio::task::spawn_blocking(move || r.delete(&doomed)).await {
                Ok(Ok(true)) => {
                    tracing::info!(recording = %id, days, "retention: recording deleted")
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => {
                    tracing::error!(recording = %id, error = %e, "retention: could not delete")
                }
                Err(e) => tracing::error!(recording = %id, error = %e, "retention: task failed"),
            }
        }
    }
}
