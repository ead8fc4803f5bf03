//! Unit-test harness: a hub over a temporary SQLite store, with no network, and a fake media
//! plane that records what the hub asked of it, in order.

use std::sync::{Arc, Mutex};
use tiaojie_domain::{Grant, Role, RoomName};

use tiaojie_media::{
    MediaError, OfferOutcome, ParticipantId, ParticipantMediaStats, SfuCounters, Standing,
    StandingChange, TapReceiver,
};
use tokio::sync::mpsc;

use crate::hub::{Connection, Hub, Session, ShutOut};
use crate::live_room::Outbound;
use crate::media_plane::{MediaPlane, Pending};
use crate::metrics::Metrics;
use crate::recording::Recorders;
use crate::token::{TokenKeys, TokenRequest};

/// What the hub asked of the media plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Enter(Standing),
    Update(StandingChange),
    Leave,
}

/// A media plane that accepts every standing and records it; it negotiates nothing.
#[derive(Default)]
pub struct FakeMedia {
    calls: Mutex<Vec<(String, Call)>>,
    counters: SfuCounters,
}

impl FakeMedia {
    /// Every call so far, with the participant it was about.
    pub fn calls(&self) -> Vec<(String, Call)> {
        self.calls.lock().expect("calls").clone()
    }

    fn record(&self, who: &ParticipantId, call: Call) {
        self.calls
            .lock()
            .expect("calls")
            .push((who.0.clone(), call));
    }
}

fn refused<'a, T: Send + 'a>() -> Pending<'a, T> {
    Box::pin(async { Err(MediaError::NotNegotiated) })
}

fn done<'a>() -> Pending<'a, ()> {
    Box::pin(async { Ok(()) })
}

impl MediaPlane for FakeMedia {
    fn enter<'a>(
        &'a self,
        _: &'a RoomName,
        who: ParticipantId,
        standing: Standing,
    ) -> Pending<'a, ()> {
        self.record(&who, Call::Enter(standing));
        done()
    }
    fn offer<'a>(
        &'a self,
        _: &'a RoomName,
        _: ParticipantId,
        _: String,
        _: Option<String>,
    ) -> Pending<'a, OfferOutcome> {
        refused()
    }
    fn answer<'a>(
        &'a self,
        _: &'a RoomName,
        _: ParticipantId,
        _: String,
    ) -> Pending<'a, Option<String>> {
        refused()
    }
    fn candidate<'a>(&'a self, _: &'a RoomName, _: ParticipantId, _: String) -> Pending<'a, ()> {
        refused()
    }
    fn update<'a>(
        &'a self,
        _: &'a RoomName,
        who: ParticipantId,
        change: StandingChange,
    ) -> Pending<'a, ()> {
        self.record(&who, Call::Update(change));
        done()
    }
    fn set_max_height<'a>(
        &'a self,
        _: &'a RoomName,
        _: ParticipantId,
        _: Option<u32>,
    ) -> Pending<'a, ()> {
        done()
    }
    fn leave<'a>(&'a self, _: &'a RoomName, who: ParticipantId) -> Pending<'a, ()> {
        self.record(&who, Call::Leave);
        done()
    }
    fn close_room<'a>(&'a self, _: &'a RoomName) -> Pending<'a, ()> {
        done()
    }
    fn stats<'a>(&'a self, _: &'a RoomName) -> Pending<'a, Vec<ParticipantMediaStats>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    fn tap<'a>(&'a self, _: &'a RoomName, _: usize) -> Pending<'a, TapReceiver> {
        refused()
    }
    fn untap<'a>(&'a self, _: &'a RoomName) -> Pending<'a, ()> {
        done()
    }
    fn request_keyframes<'a>(&'a self, _: &'a RoomName) -> Pending<'a, ()> {
        done()
    }
    fn shutdown(&self) -> Pending<'_, ()> {
        done()
    }
    fn counters(&self) -> &SfuCounters {
        &self.counters
    }
    fn local_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], 0))
    }
}

/// A hub over a fresh SQLite store in a temporary directory named after `tag`.
pub async fn hub(
    tag: &str,
    tune: impl FnOnce(&mut tiaojie_config::Config),
    media: Option<Arc<dyn MediaPlane>>,
) -> Arc<Hub> {
    let dir = std::env::temp_dir().join(format!("tiaojie-hub-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = tiaojie_config::Config::default();
    tune(&mut config);
    let store = tiaojie_store::Store::connect(&format!("sqlite://{}/t.db", dir.display()), 2)
        .await
        .expect("store");
    let keys = TokenKeys::from_config(&config.auth, &dir).expect("keys");
    let recorders = Recorders::open(&config.recording, &dir).expect("recorders");
    Arc::new(Hub::new(
        store,
        Arc::new(keys),
        config.signaling,
        Arc::new(Metrics::default()),
        ShutOut {
            revoked_tokens: Vec::new(),
            removed: Vec::new(),
        },
        media,
        Arc::new(recorders),
    ))
}

/// A joined person: their session and what their connection receives.
pub struct Person {
    pub session: Session,
    pub rx: mpsc::Receiver<Outbound>,
}

impl Person {
    /// The events and replies received so far, parsed.
    pub fn received(&mut self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        while let Ok(frame) = self.rx.try_recv() {
            if let Outbound::Text(text) = frame {
                out.push(serde_json::from_str(&text).expect("JSON"));
            }
        }
        out
    }
}

/// Joins `identity` to `room` (created on first join) with `role`'s grants, or these.
pub async fn join(
    hub: &Arc<Hub>,
    room: &str,
    identity: &str,
    role: Role,
    grants: Option<Vec<Grant>>,
) -> Person {
    try_join(hub, room, identity, role, grants)
        .await
        .expect("joined")
}

/// Like [`join`], with the hub's answer.
pub async fn try_join(
    hub: &Arc<Hub>,
    room: &str,
    identity: &str,
    role: Role,
    grants: Option<Vec<Grant>>,
) -> Result<Person, crate::hub::SignalError> {
    let (token, _) = hub
        .keys()
        .issue(&TokenRequest {
            identity: identity.into(),
            name: String::new(),
            room: Some(room.into()),
            role,
            grants,
            ttl: None,
            not_before_secs: 0,
        })
        .expect("token");
    let Connection { link, rx } = hub.connect();
    let session = hub.join(None, &RoomName::from(room), &token, link).await?;
    Ok(Person { session, rx })
}
