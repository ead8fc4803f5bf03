//! The hub's bridge to the recorder: the `record` request (and the control API's), the room's
//! recording policy, and telling every participant at once (`recording.updated`).
//!
//! The room's lock is held while recording starts or stops, so the event everyone sees and the
//! capture's own log of who was present agree.

use std::sync::Arc;

use tiaojie_domain::mediation::RuleError;
use tiaojie_domain::{Grant, PersonId, RecordingMode, RoomName};

use crate::hub::{Hub, Session, SignalError};
use crate::live_room::{Audience, RoomState};
use crate::protocol::{
    ErrorCode, Event, RecordAction, RecordingStatus, Reply, RequestId, SignalReason, to_text,
};
use crate::recording::{Control, Finished, Presence, Recorders};

impl Hub {
    /// The recorder.
    pub fn recorders(&self) -> &Arc<Recorders> {
        &self.recorders
    }

    /// `record`: a participant with the `record` grant starts, pauses, resumes or stops it.
    pub async fn record(
        self: &Arc<Self>,
        session: &Session,
        id: Option<RequestId>,
        action: RecordAction,
        mode: Option<RecordingMode>,
    ) -> Result<(), SignalError> {
        self.require_grant(session, Grant::Record).await?;
        let status = self
            .recording_action(&session.room.name, session.identity.as_str(), action, mode)
            .await?;
        let role = self.role_of(session).await?;
        self.audit_in_room(
            &session.room.name,
            session.identity.as_str(),
            &role,
            action.audit_action(),
            &status.audit_detail(),
        )
        .await?;
        let state = self.owned_state(session).await?;
        if let Some(member) = state.members.get(&session.identity) {
            member.reply(to_text(&Reply::Ok { id }).into());
        }
        Ok(())
    }

    /// The most `room` may record: the configuration's limit, lowered by the room's policy.
    async fn recording_limit(&self, room: &RoomName) -> Result<RecordingMode, SignalError> {
        let record = self.store().room(room).await?;
        let server = self.recorders.allowed();
        Ok(record.recording.map_or(server, |r| r.min(server)))
    }

    /// Starts, pauses, resumes or stops recording a room people are in; everyone present is
    /// told. `by` is who asked (an identity, or an admin's).
    pub async fn recording_action(
        self: &Arc<Self>,
        room: &RoomName,
        by: &str,
        action: RecordAction,
        mode: Option<RecordingMode>,
    ) -> Result<RecordingStatus, SignalError> {
        let state_error = |reason| SignalError::because(ErrorCode::RecordingState, reason);
        // Only a start needs the room's policy (a database read).
        let limit = match action {
            RecordAction::Start => Some(self.recording_limit(room).await?),
            _ => None,
        };
        // A case's session is recorded only while every party present has consented to it.
        let case = match action {
            RecordAction::Start | RecordAction::Resume => {
                match self.store().case_of_room(room).await? {
                    Some((case, n)) => Some((self.store().case(&case).await?, n)),
                    None => None,
                }
            }
            _ => None,
        };
        let Some(live) = self.existing_room(room) else {
            return Err(state_error(SignalReason::RecordingEmptyRoom));
        };
        let mut state = live.state.lock().await;
        if state.retired {
            return Err(state_error(SignalReason::RecordingEmptyRoom));
        }
        if let Some((case, n)) = &case {
            let present: Vec<&PersonId> = state.members.keys().collect();
            let missing = case.recording_consent_missing(*n, &present);
            if !missing.is_empty() {
                return Err(RuleError::ChecksMissing { missing }.into());
            }
        }
        let mut ended = None;
        match action {
            RecordAction::Start => {
                if state.recording.is_some() {
                    return Err(state_error(SignalReason::RecordingOn));
                }
                let limit = limit.unwrap_or(RecordingMode::Off);
                if limit == RecordingMode::Off {
                    return Err(SignalError::because(
                        ErrorCode::Forbidden,
                        SignalReason::RecordingNotAllowed,
                    ));
                }
                let mode = mode.unwrap_or(limit);
                if mode == RecordingMode::Off {
                    return Err(SignalError::new(
                        ErrorCode::InvalidMessage,
                        "mode must be audio or audio_video",
                    ));
                }
                if mode > limit {
                    return Err(SignalError::because(
                        ErrorCode::Forbidden,
                        SignalReason::RecordingLimit { limit },
                    ));
                }
                let Some(sfu) = self.sfu_handle() else {
                    return Err(SignalError::new(
                        ErrorCode::MediaUnavailable,
                        "recording needs the media plane (media.enabled = false)",
                    ));
                };
                let tap = sfu
                    .tap(room, self.recorders.config().tap_capacity)
                    .await
                    .map_err(|e| SignalError::new(ErrorCode::MediaUnavailable, e.to_string()))?;
                let present = state
                    .members
                    .values()
                    .map(|m| Presence {
                        identity: m.info.identity.clone(),
                        name: m.info.name.clone(),
                        role: m.info.role,
                        place: m.info.space,
                    })
                    .collect();
                let recorders = self.recorders.clone();
                let (room_name, by_name) = (room.clone(), by.to_string());
                // Creating the directory and its first files fsyncs: off the async threads.
                let started = tokio::task::spawn_blocking(move || {
                    recorders.start(&room_name, mode, &by_name, present, tap)
                })
                .await
                .map_err(|e| SignalError::new(ErrorCode::Internal, e.to_string()))
                .and_then(|r| {
                    r.map_err(|e| {
                        tracing::error!(%room, error = %e, "could not start a recording");
                        SignalError::new(ErrorCode::Internal, "recording storage failed")
                    })
                });
                match started {
                    Ok(recording) => state.recording = Some(recording),
                    Err(e) => {
                        let _ = sfu.untap(room).await;
                        return Err(e);
                    }
                }
            }
            RecordAction::Pause | RecordAction::Resume => {
                let pause = action == RecordAction::Pause;
                let Some(r) = state.recording.as_mut() else {
                    return Err(state_error(SignalReason::RecordingOff));
                };
                if r.paused == pause {
                    return Err(state_error(if pause {
                        SignalReason::RecordingPaused
                    } else {
                        SignalReason::RecordingNotPaused
                    }));
                }
                r.paused = pause;
                r.by = by.to_string();
                r.tell(if pause {
                    Control::Pause { by: by.into() }
                } else {
                    Control::Resume { by: by.into() }
                });
                if !pause && let Some(sfu) = self.sfu_handle() {
                    // The video resumes decodable: a keyframe from every camera now.
                    let _ = sfu.request_keyframes(room).await;
                }
            }
            RecordAction::Stop => {
                ended = self.stop_recording(room, &mut state, by, &format!("stopped by {by}"));
                if ended.is_none() {
                    return Err(state_error(SignalReason::RecordingOff));
                }
            }
        }
        let status = match ended {
            Some(id) => RecordingStatus {
                id: Some(id),
                by: Some(by.to_string()),
                ..RecordingStatus::off()
            },
            None => state.recording_status(),
        };
        tracing::info!(%room, by, ?action, state = ?status.state, "recording changed");
        let seq = state.next_seq();
        let stalled = state.broadcast(
            &Event::RecordingUpdated {
                seq,
                recording: status.clone(),
            },
            Audience::All,
        );
        self.handle_stalled(&live, &mut state, stalled);
        Ok(status)
    }

    /// Tells a room (if anyone is still in it) that a recording's files are ready, with the
    /// chain head participants may be shown to confirm the record.
    pub async fn relay_finished_recordings(
        self: Arc<Self>,
        mut finished: tokio::sync::mpsc::UnboundedReceiver<Finished>,
    ) {
        while let Some(f) = finished.recv().await {
            self.announce(&f.room, Audience::All, |seq| Event::RecordingFinished {
                seq,
                recording: f.id,
                chain_head: f.chain_head,
                complete: f.complete,
            })
            .await;
        }
    }

    /// Ends the room's recording, if any: the capture drains what the tap holds, then makes its
    /// files. Returns the ended recording's id. Does not tell participants.
    pub(crate) fn stop_recording(
        &self,
        room: &RoomName,
        state: &mut RoomState,
        by: &str,
        reason: &str,
    ) -> Option<String> {
        let recording = state.recording.take()?;
        recording.tell(Control::Stop {
            by: by.to_string(),
            reason: reason.to_string(),
        });
        // The worker drains the tap and drops it; the media plane lets go of a tap whose
        // recorder has gone (a new recording's tap replaces it). No untap here: it could race
        // a new recording's tap.
        self.recorders.stopping(&recording.id);
        tracing::info!(%room, recording = %recording.id, by, reason, "recording stopped");
        Some(recording.id)
    }
}
