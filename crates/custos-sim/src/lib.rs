//! `custos-sim`: a local simulator of the parts of the Genesys Cloud Platform API that a
//! recording export touches, faithful in paths, JSON field names, enums, status codes, error
//! bodies, rate-limit headers and timing — and of the search-style API described in the design
//! guide Custos implements (which real Genesys does not have).
//!
//! Everything Custos claims is proven against this simulator, so fidelity is the point: field
//! names come from the official SDK models (a test checks every response against them), and the
//! official Python SDK runs against it in CI. Media is real audio (WAV PCM, WAV µ-law, Ogg Opus),
//! generated as a stream, so recordings can be gigabytes. Faults are seeded and reproducible,
//! and the simulator can tell a test the ground truth (every recording's SHA-256, size,
//! duration, state) and what it served.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let scenario = custos_sim::Scenario { conversations: 50, ..Default::default() };
//! custos_sim::serve(listener, scenario, std::future::pending()).await
//! # }
//! ```
//!
//! The control plane under `/sim/` (ground truth, counters, clock) is the simulator's own and
//! needs no token; everything under `/api/v2/` behaves like Genesys.

// Handlers return `Response`s as their error values; boxing them would buy nothing here.
#![allow(clippy::result_large_err)]

mod analytics;
pub mod archive;
pub mod audio;
mod auth;
mod bulk;
pub mod catalog;
pub mod cli;
mod directory;
mod gate;
mod media;
pub mod natives;
mod orphans;
mod preserve;
mod recordings;
pub mod rng;
pub mod scenario;
mod search;
mod state;
mod tokens;
mod transcripts;
mod truth;
mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post, put};

pub use orphans::hostile_orphan_id;
pub use scenario::{Client, Faults, Scenario, ScenarioError};
pub use state::Stats;
pub use truth::{OrphanTruth, RecordingTruth, Truth};

use state::Inner;

/// A simulator: the catalog, its state and its counters. Cheap to clone (shared).
#[derive(Clone)]
pub struct Sim(Arc<Inner>);

impl Sim {
    /// Builds the catalog for `scenario`. Fails if the scenario is invalid.
    pub fn new(scenario: Scenario) -> Result<Sim, ScenarioError> {
        scenario.validate()?;
        Ok(Sim(Arc::new(Inner::new(scenario))))
    }

    /// Serves on `listener` until `shutdown` completes. The base URL media links point at is
    /// the listener's own address.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let addr = listener.local_addr()?;
        self.0.set_base_url(format!("http://{addr}"));
        axum::serve(
            listener,
            self.router()
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
    }

    /// Serves on 127.0.0.1 (a free port) in the background until the returned handle is
    /// dropped: what tests and `custos demo` use.
    pub async fn spawn(self) -> std::io::Result<Running> {
        self.spawn_on("127.0.0.1:0").await
    }

    /// [`Sim::spawn`] on a given loopback address (`custos demo` keeps one port, so that a
    /// re-run resumes the same export).
    pub async fn spawn_on(self, addr: &str) -> std::io::Result<Running> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(self.clone().serve(listener, async {
            let _ = stopped.await;
        }));
        Ok(Running {
            sim: self,
            base_url,
            stop: Some(stop),
        })
    }

    /// Lands the org's recording archive into the scenario's `archive_dir` (crate::archive):
    /// how many recordings landed; none without an `archive_dir`. The objects that are no
    /// recording (`archive-stray`) land now even when recordings land by jobs.
    pub fn land_archive(&self) -> Result<usize, String> {
        let Some(dir) = &self.0.scenario.archive_dir else {
            return Ok(0);
        };
        archive::land_strays(&self.0, dir)?;
        match self.0.scenario.archive_by_jobs {
            false => archive::land(&self.0, dir),
            true => Ok(0),
        }
    }

    /// What the simulator has served so far.
    pub fn stats(&self) -> Stats {
        self.0.stats.lock().expect("stats lock").clone()
    }

    /// The ground truth: every recording's true bytes (hashes are computed on first call).
    pub fn truth(&self) -> Truth {
        truth::build(&self.0)
    }

    /// The bytes the transcript URL of recording `recording_id` serves, if it has a transcript.
    pub fn transcript_bytes(&self, recording_id: &str) -> Option<Vec<u8>> {
        let rec = self.0.catalog.recording(recording_id)?;
        transcripts::has_transcript(&self.0, rec)
            .then(|| serde_json::to_vec(&transcripts::document(&self.0, rec)).expect("json"))
    }

    /// Moves the simulator's clock forward (token, URL, window and job timers), so tests need
    /// not sleep.
    pub fn advance_clock(&self, ms: u64) {
        self.0.clock.advance(ms);
    }

    /// The scenario this simulator runs.
    pub fn scenario(&self) -> &Scenario {
        &self.0.scenario
    }

    fn router(&self) -> Router {
        let api = Router::new()
            .route(
                "/api/v2/analytics/conversations/details/query",
                post(analytics::details_query),
            )
            .route(
                "/api/v2/analytics/conversations/details/jobs",
                post(analytics::submit_job),
            )
            .route(
                "/api/v2/analytics/conversations/details/jobs/availability",
                get(analytics::availability),
            )
            .route(
                "/api/v2/analytics/conversations/details/jobs/{job_id}",
                get(analytics::job_status).delete(analytics::cancel_job),
            )
            .route(
                "/api/v2/analytics/conversations/details/jobs/{job_id}/results",
                get(analytics::job_results),
            )
            .route(
                "/api/v2/conversations/{cid}/recordingmetadata",
                get(recordings::metadata_list),
            )
            .route(
                "/api/v2/conversations/{cid}/recordingmetadata/{rid}",
                get(recordings::metadata_one),
            )
            .route(
                "/api/v2/conversations/{cid}/recordings",
                get(recordings::recordings_list),
            )
            .route(
                "/api/v2/conversations/{cid}/recordings/{rid}",
                get(recordings::recording_one).put(preserve::put_recording),
            )
            .route(
                "/api/v2/recording/batchrequests",
                post(recordings::batch_submit),
            )
            .route(
                "/api/v2/recording/batchrequests/{job_id}",
                get(recordings::batch_status),
            )
            .route("/api/v2/recording/settings", get(recordings::settings))
            .route("/api/v2/recording/jobs", post(bulk::create).get(bulk::list))
            .route(
                "/api/v2/recording/jobs/{job_id}",
                get(bulk::get_one).put(bulk::execute).delete(bulk::cancel),
            )
            .route(
                "/api/v2/recording/jobs/{job_id}/failedrecordings",
                get(bulk::failed_recordings),
            )
            .route("/api/v2/orphanrecordings", get(orphans::list))
            .route(
                "/api/v2/orphanrecordings/{orphan_id}/media",
                get(orphans::media),
            )
            .route(
                "/api/v2/conversations/{cid}/recordings/{rid}/annotations",
                get(transcripts::annotations),
            )
            .route(
                "/api/v2/speechandtextanalytics/conversations/{cid}/communications/{comm}/transcripturl",
                get(transcripts::transcript_url),
            )
            .route(
                "/api/v2/recordings/deletionprotection",
                put(preserve::put_protection).post(preserve::post_protection),
            )
            .route("/api/v2/tokens/me", get(tokens::me))
            .route("/api/v2/users", get(directory::users))
            .route("/api/v2/routing/queues", get(directory::queues))
            .route("/api/v2/routing/skills", get(directory::skills))
            .route("/api/v2/routing/wrapupcodes", get(directory::wrapups))
            .route("/api/v2/authorization/divisions", get(directory::divisions))
            .route("/api/v2/search/recordings", get(search::search))
            .route("/api/v2/recordings/{id}", get(search::metadata))
            .route("/api/v2/recordings/{id}/media", get(search::media))
            .route_layer(axum::middleware::from_fn_with_state(
                self.clone(),
                gate::api_gate,
            ));
        Router::new()
            .merge(api)
            .route("/oauth/token", post(auth::token))
            .route("/media/{cid}/{rid}/{format}", get(media::presigned))
            .route("/sim/stats", get(truth::stats_endpoint))
            .route("/sim/truth", get(truth::truth_endpoint))
            .route("/sim/clock", post(truth::clock_endpoint))
            .fallback(gate::not_found)
            // Genesys' documented request.bytes.max.
            .layer(axum::extract::DefaultBodyLimit::max(512_000))
            .with_state(self.clone())
    }
}

/// A simulator serving in the background (see [`Sim::spawn`]); it stops when dropped.
pub struct Running {
    /// The simulator (stats, truth, clock).
    pub sim: Sim,
    /// `http://127.0.0.1:<port>`: both the API and the login base.
    pub base_url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves `scenario` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    scenario: Scenario,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sim =
        Sim::new(scenario).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    sim.serve(listener, shutdown).await
}
