//! Recording rooms (录音录像): the server's recorder and each recorded room's capture worker.
//!
//! - [`Recorders`] is server-wide: the configuration, the signing key (generated into the data
//!   directory on first start), the recordings directory and which recordings are live. It
//!   starts captures, lists and deletes recordings, finds the files people may download, and
//!   finishes recordings a crash interrupted.
//! - A recorded room holds a [`LiveRecording`] in its state. Its capture runs on its own thread
//!   with its own small runtime, fed by the media tap and by [`Control`] messages from the hub
//!   (who is where, pause, resume, stop), so disk writes and fsyncs never touch the packet path
//!   or the server's runtime. When it stops, the same thread makes the derived files and the
//!   signed manifest.
//!
//! The hub's side — the `record` request, telling everyone, presence hooks — is in
//! `recorder_bridge`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};
use tiaojie_domain::{PersonId, RecordingMode, Role, RoomName};

use serde::Serialize;
use tiaojie_config::RecordingConfig;
use tiaojie_domain::mediation::Place;
use tiaojie_media::{Kind, TapPacket, TapReceiver};
use tiaojie_recorder::{
    CaptureConfig, EventKind, Manifest, Packet, Recording, RecordingInfo, SigningKey, read_events,
};
use tokio::sync::mpsc;

use crate::protocol::{RecordingState, RecordingStatus};

/// A gap of at least this many packets in one track is logged as an interruption at once;
/// smaller losses are counted and logged when the recording stops.
const GAP_EVENT_PACKETS: u64 = 25;

/// Why the recorder could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RecorderSetupError {
    /// The recordings directory or the key file could not be made or read.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The key file is not an Ed25519 PKCS#8 key.
    #[error("recording key {path}: {message}")]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// Someone in a recorded room, and where they are.
#[derive(Debug, Clone)]
pub(crate) struct Presence {
    pub(crate) identity: PersonId,
    pub(crate) name: String,
    pub(crate) role: Role,
    pub(crate) place: Place,
}

/// What the hub tells a capture worker.
#[derive(Debug, Clone)]
pub(crate) enum Control {
    /// Someone is present (start, join, move); where they are decides whether they are
    /// recorded.
    Present(Presence),
    /// Someone left the room.
    Left { identity: PersonId },
    /// Stop capturing for now.
    Pause { by: String },
    /// Capture again.
    Resume { by: String },
    /// End the recording.
    Stop { by: String, reason: String },
}

/// A room's recording while it runs.
#[derive(Debug)]
pub struct LiveRecording {
    /// The recording's id (its directory's name).
    pub id: String,
    /// What is captured.
    pub mode: RecordingMode,
    /// Paused: nothing is captured.
    pub paused: bool,
    /// Start, Unix milliseconds.
    pub started_at: i64,
    /// Who acted on it last.
    pub by: String,
    /// Whether private rooms are recorded.
    pub private_rooms: bool,
    control: mpsc::UnboundedSender<Control>,
}

impl LiveRecording {
    /// What participants are told.
    pub fn status(&self) -> RecordingStatus {
        RecordingStatus {
            state: if self.paused {
                RecordingState::Paused
            } else {
                RecordingState::Recording
            },
            mode: Some(self.mode),
            id: Some(self.id.clone()),
            started_at: Some(self.started_at),
            by: Some(self.by.clone()),
            private_rooms: self.private_rooms,
        }
    }

    pub(crate) fn tell(&self, control: Control) {
        // A worker that has gone away (storage failed) has logged why; nothing to tell.
        let _ = self.control.send(control);
    }
}

/// Whether someone in `space` is recorded.
pub(crate) fn recorded_in(place: Place, private_rooms: bool) -> bool {
    match place {
        Place::Joint => true,
        Place::Private(_) => private_rooms,
        Place::Lobby => false,
    }
}

/// A recording as the API lists it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RecordingView {
    /// Its id.
    pub id: String,
    /// The room recorded.
    pub room: RoomName,
    /// `audio` or `audio_video`.
    pub mode: String,
    /// `recording` (capturing now), `finishing` (making its files), `finished`, or
    /// `interrupted` (capture ended without a stop and has not been recovered yet).
    pub state: String,
    /// Who started it.
    pub started_by: PersonId,
    /// Start, Unix milliseconds.
    pub started_at: i64,
    /// End, Unix milliseconds, once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<i64>,
    /// False for a recording finished by recovery after a crash (it holds what was sealed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete: Option<bool>,
    /// The hash chain's head, once finished: what agreements cite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_head: Option<String>,
    /// The playable files, once finished.
    pub files: Vec<RecordingFile>,
    /// Whether it may hold a private room (背对背), by its own record: it was started to record
    /// private rooms, or someone was recorded in one. Parties never read such a recording,
    /// whatever the configuration says today.
    pub private_rooms: bool,
}

/// Whether a recording's events say it may hold a private room. No events (unreadable, or
/// not written yet) count as yes: when in doubt, a caucus is not handed to the other side.
pub fn may_hold_private_rooms(events: &[tiaojie_recorder::RecordingEvent]) -> bool {
    events.is_empty()
        || events.iter().any(|e| match &e.what {
            EventKind::Started { private_rooms, .. } => *private_rooms,
            EventKind::Present {
                space, recorded, ..
            } => *recorded && space.starts_with("private:"),
            _ => false,
        })
}

/// One playable file of a recording.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RecordingFile {
    /// Its path: fetch it at `/api/recordings/{id}/files/{file}`.
    pub file: String,
    /// `audio` (one person's microphone), `video` (one camera with its sound) or `mixed`
    /// (everyone).
    pub kind: String,
    /// Whose (absent for the mix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<PersonId>,
    /// Size.
    pub bytes: u64,
    /// SHA-256 (hex), as the signed manifest lists it.
    pub sha256: String,
}

/// A recording whose files and manifest are ready.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The room it recorded.
    pub room: RoomName,
    /// Its id.
    pub id: String,
    /// The chain head its manifest signs.
    pub chain_head: String,
    /// False when finished after an interruption.
    pub complete: bool,
}

/// The server's recorder.
pub struct Recorders {
    config: RecordingConfig,
    dir: PathBuf,
    key_der: Vec<u8>,
    allowed: RecordingMode,
    /// Live recordings: id → (room, stopping).
    live: Mutex<HashMap<String, (String, bool)>>,
    workers: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Where finished recordings are announced (the hub tells the room).
    finished: Mutex<Option<mpsc::UnboundedSender<Finished>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Recorders {
    /// Opens the recordings directory and loads (or, on first start, generates) the key.
    pub fn open(
        config: &RecordingConfig,
        data_dir: &Path,
    ) -> Result<Recorders, RecorderSetupError> {
        let dir = config.dir(data_dir);
        std::fs::create_dir_all(&dir).map_err(|source| RecorderSetupError::Io {
            path: dir.clone(),
            source,
        })?;
        let key_path = config.key_file(data_dir);
        let key_der = match std::fs::read(&key_path) {
            Ok(der) => der,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (_, der) =
                    SigningKey::generate().map_err(|message| RecorderSetupError::Key {
                        path: key_path.clone(),
                        message,
                    })?;
                if let Some(parent) = key_path.parent() {
                    std::fs::create_dir_all(parent).map_err(|source| RecorderSetupError::Io {
                        path: parent.to_path_buf(),
                        source,
                    })?;
                }
                crate::token::write_private_file(&key_path, &der).map_err(|source| {
                    RecorderSetupError::Io {
                        path: key_path.clone(),
                        source,
                    }
                })?;
                tracing::info!(path = %key_path.display(), "generated the recording signing key");
                der
            }
            Err(source) => {
                return Err(RecorderSetupError::Io {
                    path: key_path,
                    source,
                });
            }
        };
        SigningKey::from_pkcs8(&key_der).map_err(|message| RecorderSetupError::Key {
            path: key_path.clone(),
            message,
        })?;
        Ok(Recorders {
            allowed: config.allowed.parse().unwrap_or(RecordingMode::Off),
            config: config.clone(),
            dir,
            key_der,
            live: Mutex::new(HashMap::new()),
            workers: Mutex::new(Vec::new()),
            finished: Mutex::new(None),
        })
    }

    /// The signing key's PKCS#8 DER: the server's one Ed25519 identity, which also seals
    /// judicial-confirmation envelopes.
    pub fn key_der(&self) -> &[u8] {
        &self.key_der
    }

    /// The signing key (parsed when loaded, so this does not fail in practice).
    pub fn key(&self) -> Result<SigningKey, std::io::Error> {
        SigningKey::from_pkcs8(&self.key_der).map_err(std::io::Error::other)
    }

    /// The most the configuration lets any room record.
    pub fn allowed(&self) -> RecordingMode {
        self.allowed
    }

    /// The recording configuration.
    pub fn config(&self) -> &RecordingConfig {
        &self.config
    }

    /// The recordings directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts capturing `room` from `tap`, with who is `present`.
    pub(crate) fn start(
        self: &Arc<Self>,
        room: &RoomName,
        mode: RecordingMode,
        by: &str,
        present: Vec<Presence>,
        tap: TapReceiver,
    ) -> Result<LiveRecording, tiaojie_recorder::RecorderError> {
        let started = std::time::SystemTime::now();
        let started_ms = started
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let id = format!(
            "rec-{started_ms}-{}",
            &crate::ids::random_token(6).replace(['-', '_'], "x")
        );
        let dir = self.dir.join(&id);
        let capture = CaptureConfig {
            segment_bytes: self.config.segment_bytes,
            segment_age: self.config.segment_age,
            ..CaptureConfig::default()
        };
        let mut recording = Recording::create(&dir, &id, capture, self.key()?)?;
        recording.event(EventKind::Started {
            room: room.to_string(),
            mode: mode.as_str().to_string(),
            by: by.to_string(),
            private_rooms: self.config.private_rooms,
        })?;
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let mut worker = Worker {
            room: room.clone(),
            recording: Some(recording),
            mode,
            private_rooms: self.config.private_rooms,
            recorded: HashSet::new(),
            paused: false,
            tracks: HashMap::new(),
            names: HashSet::new(),
            dropped_seen: 0,
            failed: false,
        };
        for presence in present {
            worker.control(Control::Present(presence));
        }
        lock(&self.live).insert(id.clone(), (room.to_string(), false));
        let recorders = self.clone();
        let worker_id = id.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("recorder-{id}"))
            .spawn(move || {
                worker.run(tap, control_rx, &recorders, &worker_id);
                lock(&recorders.live).remove(&worker_id);
            });
        let thread = match spawned {
            Ok(thread) => thread,
            Err(e) => {
                // Never started: it must not stay listed as live (undeletable) forever.
                lock(&self.live).remove(&id);
                return Err(e.into());
            }
        };
        let mut workers = lock(&self.workers);
        workers.retain(|w| !w.is_finished());
        workers.push(thread);
        tracing::info!(%room, recording = %id, mode = mode.as_str(), by, "recording started");
        Ok(LiveRecording {
            id,
            mode,
            paused: false,
            started_at: started_ms,
            by: by.to_string(),
            private_rooms: self.config.private_rooms,
            control: control_tx,
        })
    }

    /// Finished recordings from now on (one listener: the hub).
    pub fn announcements(&self) -> mpsc::UnboundedReceiver<Finished> {
        let (tx, rx) = mpsc::unbounded_channel();
        *lock(&self.finished) = Some(tx);
        rx
    }

    fn announce(&self, finished: Finished) {
        if let Some(tx) = lock(&self.finished).as_ref() {
            let _ = tx.send(finished);
        }
    }

    /// Marks a live recording as stopping (its files are being made).
    pub(crate) fn stopping(&self, id: &str) {
        if let Some(entry) = lock(&self.live).get_mut(id) {
            entry.1 = true;
        }
    }

    /// Whether a recording is still being captured or finished.
    pub fn is_live(&self, id: &str) -> bool {
        lock(&self.live).contains_key(id)
    }

    /// Waits for every capture worker to finish its files (at shutdown).
    pub fn wait_for_workers(&self) {
        let workers: Vec<_> = lock(&self.workers).drain(..).collect();
        for w in workers {
            let _ = w.join();
        }
    }

    /// A recording's directory, if `id` names one (ids are checked: no path tricks).
    fn recording_dir(&self, id: &str) -> Option<PathBuf> {
        let plain = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let dir = self.dir.join(id);
        (plain && dir.join("recording.json").is_file()).then_some(dir)
    }

    /// One recording's summary (reads its files).
    pub fn view(&self, id: &str) -> Option<RecordingView> {
        let dir = self.recording_dir(id)?;
        let info = RecordingInfo::read(&dir).ok()?;
        let events = read_events(&dir).unwrap_or_default();
        let (room, mode, started_by) = events
            .iter()
            .find_map(|e| match &e.what {
                EventKind::Started { room, mode, by, .. } => {
                    Some((room.clone(), mode.clone(), by.clone()))
                }
                _ => None,
            })
            .unwrap_or_default();
        let manifest = Manifest::read(&dir).ok().flatten();
        // The signed manifest's events once there are; the log's until then.
        let private_rooms = may_hold_private_rooms(
            manifest
                .as_ref()
                .map_or(events.as_slice(), |m| m.events.as_slice()),
        ) || may_hold_private_rooms(&events);
        let live = lock(&self.live).get(id).map(|(_, stopping)| *stopping);
        let state = match (&manifest, live) {
            (_, Some(false)) => "recording",
            (_, Some(true)) => "finishing",
            (Some(_), None) => "finished",
            (None, None) => "interrupted",
        };
        let manifest = manifest.filter(|_| live.is_none());
        Some(RecordingView {
            id: info.id,
            room: RoomName::from(room),
            mode,
            state: state.into(),
            started_by: PersonId::from(started_by),
            started_at: (info.created_us / 1000) as i64,
            ended_at: manifest.as_ref().map(|m| (m.ended_us / 1000) as i64),
            complete: manifest.as_ref().map(|m| m.complete),
            chain_head: manifest.as_ref().map(|m| m.chain_head.clone()),
            files: manifest
                .map(|m| {
                    m.derived
                        .into_iter()
                        .map(|d| RecordingFile {
                            file: d.file,
                            kind: d.kind,
                            identity: d.identity.map(PersonId::from),
                            bytes: d.bytes,
                            sha256: d.sha256,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            private_rooms,
        })
    }

    /// Every recording, newest first.
    pub fn list(&self) -> Vec<RecordingView> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut views: Vec<RecordingView> = entries
            .flatten()
            .filter_map(|e| self.view(&e.file_name().to_string_lossy()))
            .collect();
        views.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(a.id.cmp(&b.id)));
        views
    }

    /// The path of a finished recording's file, if the signed manifest lists it.
    pub fn file(&self, id: &str, file: &str) -> Option<PathBuf> {
        if self.is_live(id) {
            return None;
        }
        let dir = self.recording_dir(id)?;
        let manifest = Manifest::read(&dir).ok().flatten()?;
        manifest
            .derived
            .iter()
            .any(|d| d.file == file)
            .then(|| dir.join(file))
    }

    /// A finished recording's signed manifest.
    pub fn manifest(&self, id: &str) -> Option<Manifest> {
        Manifest::read(&self.recording_dir(id)?).ok().flatten()
    }

    /// Deletes a recording that is not live. `Ok(false)` if there is no such recording.
    pub fn delete(&self, id: &str) -> Result<bool, DeleteError> {
        if self.is_live(id) {
            return Err(DeleteError::Live);
        }
        let Some(dir) = self.recording_dir(id) else {
            return Ok(false);
        };
        std::fs::remove_dir_all(&dir).map_err(DeleteError::Io)?;
        Ok(true)
    }

    /// Finished recordings that ended more than `retention_days` before `now_ms`.
    pub fn expired(&self, now_ms: i64) -> Vec<String> {
        let days = i64::from(self.config.retention_days);
        if days == 0 {
            return Vec::new();
        }
        let cutoff = now_ms - days * 86_400_000;
        self.list()
            .into_iter()
            .filter(|v| v.state == "finished" && v.ended_at.is_some_and(|end| end < cutoff))
            .map(|v| v.id)
            .collect()
    }

    /// Finishes recordings a crash interrupted (no manifest, not live): derives what was
    /// sealed and signs a manifest marked incomplete. Runs on its own thread.
    pub fn recover_interrupted(self: &Arc<Self>) {
        let interrupted: Vec<RecordingView> = self
            .list()
            .into_iter()
            .filter(|v| v.state == "interrupted")
            .collect();
        if interrupted.is_empty() {
            return;
        }
        let recorders = self.clone();
        let spawned = std::thread::Builder::new()
            .name("recorder-recovery".into())
            .spawn(move || {
                for v in interrupted {
                    let dir = recorders.dir.join(&v.id);
                    let recovered = recorders
                        .key()
                        .map_err(tiaojie_recorder::DeriveError::from)
                        .and_then(|key| tiaojie_recorder::recover(&dir, &key));
                    match recovered {
                        Ok(m) => tracing::warn!(
                            recording = %v.id, room = %v.room, head = %m.chain_head,
                            "recovered a recording interrupted by an unclean stop (marked incomplete)"
                        ),
                        Err(e) => tracing::error!(
                            recording = %v.id, error = %e,
                            "could not recover an interrupted recording; run `tiaojie recording recover`"
                        ),
                    }
                }
            });
        if let Ok(handle) = spawned {
            lock(&self.workers).push(handle);
        }
    }
}

/// Why a recording could not be deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    /// It is still being captured or finished.
    #[error("the recording is still running; stop it first")]
    Live,
    /// The disk refused.
    #[error("storage: {0}")]
    Io(std::io::Error),
}

/// One captured track's state.
struct TrackState {
    name: String,
    last_seq: Option<u64>,
    lost: u64,
}

/// A capture: runs on its own thread until stopped, then makes the files.
struct Worker {
    room: RoomName,
    recording: Option<Recording>,
    mode: RecordingMode,
    private_rooms: bool,
    recorded: HashSet<String>,
    paused: bool,
    tracks: HashMap<(String, String, Option<String>), TrackState>,
    names: HashSet<String>,
    dropped_seen: u64,
    failed: bool,
}

impl Worker {
    fn run(
        mut self,
        tap: TapReceiver,
        control: mpsc::UnboundedReceiver<Control>,
        recorders: &Recorders,
        id: &str,
    ) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(recording = id, error = %e, "recorder thread could not start");
                return;
            }
        };
        let (by, reason, tap) = runtime.block_on(self.capture(tap, control));
        recorders.stopping(id);
        if let Some(mut tap) = tap {
            // What the tap still holds arrived before the stop.
            while let Ok(p) = tap.rx.try_recv() {
                self.packet(p);
            }
            self.count_drops(&tap);
        }
        let mut losses: Vec<(String, u64)> = self
            .tracks
            .values()
            .filter(|t| t.lost > 0)
            .map(|t| (t.name.clone(), t.lost))
            .collect();
        losses.sort();
        for (track, packets) in losses {
            self.event(EventKind::Interruption {
                cause: "packet_loss".into(),
                track: Some(track),
                packets,
                detail: "packets that never reached the server (short losses; concealed in the mixed track)".into(),
            });
        }
        self.event(EventKind::Stopped { by, reason });
        let Some(recording) = self.recording.take() else {
            return;
        };
        let dir = recording.dir().to_path_buf();
        if let Err(e) = recording.finish() {
            tracing::error!(recording = id, error = %e, "could not seal the recording");
            return;
        }
        let started = std::time::Instant::now();
        let finished = recorders
            .key()
            .map_err(tiaojie_recorder::DeriveError::from)
            .and_then(|key| tiaojie_recorder::finalize(&dir, &key, true));
        match finished {
            Ok(m) => {
                tracing::info!(
                    recording = id, files = m.derived.len(), head = %m.chain_head,
                    took_ms = started.elapsed().as_millis() as u64,
                    "recording finished"
                );
                // Announced only once the recording no longer counts as live.
                lock(&recorders.live).remove(id);
                recorders.announce(Finished {
                    room: self.room.clone(),
                    id: id.to_string(),
                    chain_head: m.chain_head,
                    complete: m.complete,
                });
            }
            Err(e) => {
                tracing::error!(recording = id, error = %e, "could not make the recording's files")
            }
        }
    }

    /// Captures until stopped; returns who stopped it, why, and the tap if still open.
    async fn capture(
        &mut self,
        tap: TapReceiver,
        mut control: mpsc::UnboundedReceiver<Control>,
    ) -> (String, String, Option<TapReceiver>) {
        let mut tap = Some(tap);
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            let packet = async {
                match tap.as_mut() {
                    Some(t) => t.rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                c = control.recv() => match c {
                    Some(Control::Stop { by, reason }) => return (by, reason, tap),
                    Some(other) => self.control(other),
                    None => return ("system".into(), "the room's recording ended".into(), tap),
                },
                p = packet => match p {
                    Some(p) => self.packet(p),
                    None => {
                        // The media plane stopped tapping (e.g. it shut down): say so once.
                        if let Some(t) = tap.take() {
                            self.count_drops(&t);
                        }
                    }
                },
                _ = tick.tick() => {
                    if let Some(t) = &tap {
                        self.count_drops(t);
                    }
                    let now = tiaojie_domain::clock::now_millis().max(0) as u64 * 1000;
                    if let Some(r) = self.recording.as_mut()
                        && !self.failed
                        && let Err(e) = r.seal_idle(now)
                    {
                        self.fail(e);
                    }
                }
            }
        }
    }

    fn control(&mut self, c: Control) {
        match c {
            Control::Present(Presence {
                identity,
                name,
                role,
                place,
            }) => {
                let recorded = recorded_in(place, self.private_rooms);
                // Packets name their person as the media plane does: by the id's text.
                if recorded {
                    self.recorded.insert(identity.to_string());
                } else {
                    self.recorded.remove(identity.as_str());
                }
                // The record's own vocabulary: the wire texts of the role and the place.
                self.event(EventKind::Present {
                    identity: identity.into_string(),
                    name,
                    role: role.as_str().to_string(),
                    space: place.as_str().to_string(),
                    recorded,
                });
            }
            Control::Left { identity } => {
                self.recorded.remove(identity.as_str());
                self.event(EventKind::Left {
                    identity: identity.into_string(),
                });
            }
            Control::Pause { by } => {
                self.paused = true;
                self.event(EventKind::Paused { by });
            }
            Control::Resume { by } => {
                self.paused = false;
                self.event(EventKind::Resumed { by });
            }
            Control::Stop { .. } => {}
        }
    }

    fn packet(&mut self, p: TapPacket) {
        if self.failed
            || self.paused
            || !self.recorded.contains(&p.participant.0)
            || (self.mode == RecordingMode::Audio && p.kind.is_video())
        {
            return;
        }
        // A shared screen is recorded as video, named as a screen.
        let (kind, label) = match p.kind {
            Kind::Audio => ("audio", "audio"),
            Kind::Video => ("video", "video"),
            Kind::Screen => ("video", "screen"),
        };
        let key = (p.participant.0.clone(), p.mid.clone(), p.rid.clone());
        if !self.tracks.contains_key(&key) {
            let name = self.track_name(&p.participant.0, label, &p.mid, p.rid.as_deref());
            self.event(EventKind::Track {
                track: name.clone(),
                identity: p.participant.0.clone(),
                kind: kind.into(),
                codec: p.codec.clone(),
                clock_rate: p.clock_rate,
            });
            self.tracks.insert(
                key.clone(),
                TrackState {
                    name,
                    last_seq: None,
                    lost: 0,
                },
            );
        }
        let mut gap = None;
        let name = match self.tracks.get_mut(&key) {
            Some(t) => {
                if let Some(last) = t.last_seq
                    && p.seq > last + 1
                {
                    let missing = p.seq - last - 1;
                    if missing >= GAP_EVENT_PACKETS {
                        gap = Some(missing);
                    } else {
                        t.lost += missing;
                    }
                }
                t.last_seq = Some(t.last_seq.map_or(p.seq, |l| l.max(p.seq)));
                t.name.clone()
            }
            None => return,
        };
        if let Some(missing) = gap {
            self.event(EventKind::Interruption {
                cause: "publisher_gap".into(),
                track: Some(name.clone()),
                packets: missing,
                detail: format!("{missing} packets never reached the server"),
            });
        }
        let arrival_us = p
            .arrival_wall
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let result = match self.recording.as_mut() {
            Some(r) => r.write(&Packet {
                track: &name,
                arrival_us,
                seq: p.seq,
                rtp_time: p.rtp_time,
                marker: p.marker,
                keyframe: p.keyframe,
                audio_level: p.audio_level.map(|l| l.unsigned_abs()),
                payload: &p.data,
            }),
            None => return,
        };
        if let Err(e) = result {
            self.fail(e);
        }
    }

    /// A directory name for a track: the identity made plain, the kind, the media line.
    fn track_name(&mut self, identity: &str, kind: &str, mid: &str, rid: Option<&str>) -> String {
        let plain = |s: &str, max: usize| -> String {
            s.chars()
                .take(max)
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        let mut base = format!("{}-{kind}-m{}", plain(identity, 40), plain(mid, 8));
        if let Some(rid) = rid {
            base = format!("{base}-{}", plain(rid, 8));
        }
        let mut name = base.clone();
        let mut n = 2;
        while !self.names.insert(name.clone()) {
            name = format!("{base}-{n}");
            n += 1;
        }
        name
    }

    fn count_drops(&mut self, tap: &TapReceiver) {
        let dropped = tap.counters.dropped();
        if dropped > self.dropped_seen {
            let delta = dropped - self.dropped_seen;
            self.dropped_seen = dropped;
            self.event(EventKind::Interruption {
                cause: "tap_overflow".into(),
                track: None,
                packets: delta,
                detail: "the recorder fell behind and the media plane dropped these packets rather than delay forwarding".into(),
            });
        }
    }

    fn event(&mut self, what: EventKind) {
        if self.failed {
            return;
        }
        if let Some(r) = self.recording.as_mut()
            && let Err(e) = r.event(what)
        {
            self.fail(e);
        }
    }

    fn fail(&mut self, e: tiaojie_recorder::RecorderError) {
        if !self.failed {
            tracing::error!(error = %e, "recording storage failed; capture stopped (sealed segments are kept)");
        }
        self.failed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiaojie_domain::mediation::Side;

    #[test]
    fn the_joint_room_is_recorded_the_lobby_never_and_private_rooms_only_if_configured() {
        for (place, without, with) in [
            (Place::Lobby, false, false),
            (Place::Joint, true, true),
            (Place::Private(Side::Applicant), false, true),
            (Place::Private(Side::Respondent), false, true),
        ] {
            assert_eq!(recorded_in(place, false), without, "{place}");
            assert_eq!(recorded_in(place, true), with, "{place}");
        }
    }
}
