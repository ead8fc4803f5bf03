//! Chat: a message to everyone in the sender's place, or to one person there.
//!
//! Who may be written to and who reads a message is decided by [`decide`], a pure function of
//! the room's state: chat stays in the sender's place (a private room's chat reaches nobody
//! outside it, a direct message only someone standing in the same place), whatever the client
//! asks. [`Hub::chat`] then numbers the message, keeps it in its readers' histories, delivers
//! it and answers the sender, all under one hold of the room.

use std::sync::Arc;

use tiaojie_domain::PersonId;
use tiaojie_domain::clock::now_millis;
use tiaojie_domain::mediation::Place;

use crate::hub::{Hub, Session, SignalError, reply_to};
use crate::ids;
use crate::live_room::{Audience, RoomState};
use crate::protocol::{ErrorCode, Event, MAX_CHAT_CHARS, Reply, RequestId, SignalReason};

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The sender's place: the message stays in it.
    pub place: Place,
    /// Who receives it (the sender is not among them), in identity order.
    pub readers: Vec<PersonId>,
}

/// Where `sender`'s message (`to` one person, or to their place) goes, as the room stands.
/// Refused: an empty or too long text, a sender no longer present, a recipient who is the
/// sender, absent, or in another place.
pub fn decide(
    state: &RoomState,
    sender: &PersonId,
    text: &str,
    to: Option<&PersonId>,
) -> Result<Delivery, SignalError> {
    if text.trim().is_empty() || text.chars().count() > MAX_CHAT_CHARS {
        return Err(SignalError::because(
            ErrorCode::InvalidMessage,
            SignalReason::ChatLength {
                max: MAX_CHAT_CHARS,
            },
        ));
    }
    let place = state
        .members
        .get(sender)
        .map(|m| m.info.space)
        .ok_or_else(|| SignalError::new(ErrorCode::NotJoined, "not in this room any more"))?;
    let readers = match to {
        Some(target) => {
            let with_you = target != sender
                && state
                    .members
                    .get(target)
                    .is_some_and(|m| m.info.space == place);
            if !with_you {
                return Err(SignalError::because(
                    ErrorCode::ParticipantNotFound,
                    SignalReason::NotWithYou {
                        person: target.clone(),
                    },
                ));
            }
            vec![target.clone()]
        }
        None => state
            .members
            .values()
            .filter(|m| m.info.space == place && m.info.identity != *sender)
            .map(|m| m.info.identity.clone())
            .collect(),
    };
    Ok(Delivery { place, readers })
}

impl Hub {
    /// `chat`: to the sender's place, or to one person there.
    pub async fn chat(
        self: &Arc<Self>,
        session: &Session,
        id: Option<RequestId>,
        text: String,
        to: Option<PersonId>,
    ) -> Result<(), SignalError> {
        let mut state = self.owned_state(session).await?;
        let delivery = decide(&state, &session.identity, &text, to.as_ref())?;
        let seq = state.next_seq();
        let at = now_millis();
        let message_id = ids::random_id();
        let event = Event::Chat {
            seq,
            message_id: message_id.clone(),
            from: session.identity.clone(),
            to: to.clone(),
            text,
            at,
        };
        // Kept in each reader's history and the sender's, for a page that reloads.
        state.keep_chat(&event, delivery.readers.iter().chain([&session.identity]));
        let audience = match &to {
            Some(target) => Audience::Only(target),
            None => Audience::Space {
                space: delivery.place,
                except: Some(&session.identity),
            },
        };
        let stalled = state.broadcast(&event, audience);
        reply_to(
            &state,
            &session.identity,
            &Reply::ChatSent {
                id,
                message_id,
                seq,
                at,
            },
        );
        self.handle_stalled(&session.room, &mut state, stalled);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! Chat driven in memory: a hub over a temporary store and a fake media plane.

    use super::*;
    use crate::testing::{FakeMedia, hub, join};
    use tiaojie_domain::mediation::Side;
    use tiaojie_domain::{Role, RoomName};

    fn chats(received: &[serde_json::Value]) -> Vec<String> {
        received
            .iter()
            .filter(|e| e["type"] == "chat")
            .map(|e| e["text"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    #[tokio::test]
    async fn chat_stays_in_the_senders_place() {
        let hub = hub("chat-place", |_| {}, Some(Arc::new(FakeMedia::default()))).await;
        let mut m = join(&hub, "r1", "m", Role::Mediator, None).await;
        let mut a = join(&hub, "r1", "a", Role::Party, None).await;
        let mut b = join(&hub, "r1", "b", Role::Party, None).await;
        let room = RoomName::from("r1");
        let private = Place::Private(Side::Applicant);
        for who in ["m", "a"] {
            hub.move_participant(&room, &PersonId::from(who), private)
                .await
                .expect("moved");
        }
        let [pm, pa, pb] = ["m", "a", "b"].map(PersonId::from);
        {
            let state = a.session.room.state.lock().await;
            let to_place = decide(&state, &pa, "只对调解员说", None).expect("allowed");
            assert_eq!(
                to_place,
                Delivery {
                    place: private,
                    readers: vec![pm.clone()]
                }
            );
            let refused = |r: Result<Delivery, SignalError>| r.err().map(|e| e.code);
            assert_eq!(
                refused(decide(&state, &pa, "hi", Some(&pb))),
                Some(ErrorCode::ParticipantNotFound),
                "a direct message does not leave the private room"
            );
            assert_eq!(
                refused(decide(&state, &pa, "hi", Some(&pa))),
                Some(ErrorCode::ParticipantNotFound)
            );
            assert_eq!(
                refused(decide(&state, &pa, &"字".repeat(MAX_CHAT_CHARS + 1), None)),
                Some(ErrorCode::InvalidMessage)
            );
            assert_eq!(
                refused(decide(&state, &pa, " \n", None)),
                Some(ErrorCode::InvalidMessage)
            );
            assert_eq!(
                decide(&state, &pb, "anyone?", None)
                    .expect("allowed")
                    .readers,
                Vec::<PersonId>::new(),
                "nobody else stands in the joint room"
            );
        }
        for p in [&mut m, &mut a, &mut b] {
            p.received();
        }
        hub.chat(&a.session, None, "只对调解员说".into(), None)
            .await
            .expect("sent");
        hub.chat(&b.session, None, "有人吗".into(), None)
            .await
            .expect("sent");
        assert_eq!(chats(&m.received()), vec!["只对调解员说"]);
        assert!(
            chats(&a.received()).is_empty(),
            "the sender gets a reply, not the event"
        );
        assert!(
            chats(&b.received()).is_empty(),
            "nothing from the private room"
        );
        let state = m.session.room.state.lock().await;
        assert_eq!(
            state.chat_history(&pb).len(),
            1,
            "kept for the sender's reload"
        );
        assert_eq!(state.chat_history(&pm).len(), 1);
    }
}
