//! A participant's grants (publish, subscribe, moderate, record, admin) replaced by an admin,
//! effective at once: [`grants_change`] decides the set and what forwarding must change, then
//! [`Hub::update_grants`] hands that to the media plane before anyone hears of it.

use std::sync::Arc;

use tiaojie_domain::{Grant, PersonId, RoomName};
use tiaojie_media::StandingChange;

use crate::hub::{Hub, SignalError};
use crate::protocol::{ErrorCode, ParticipantInfo};

/// A participant's new grants, each once and in order, and what the media plane must apply.
pub fn grants_change(mut grants: Vec<Grant>) -> (Vec<Grant>, StandingChange) {
    grants.sort();
    grants.dedup();
    let change = StandingChange::Grants {
        publish: grants.contains(&Grant::Publish),
        subscribe: grants.contains(&Grant::Subscribe),
    };
    (grants, change)
}

impl Hub {
    /// Replaces a participant's grants, effective at once.
    pub async fn update_grants(
        self: &Arc<Self>,
        room: &RoomName,
        identity: &PersonId,
        grants: Vec<Grant>,
    ) -> Result<ParticipantInfo, SignalError> {
        let (grants, change) = grants_change(grants);
        let (live, mut state) = self.locked_member_room(room, identity).await?;
        // The media plane first: nobody hears of a grant before forwarding follows it.
        self.media_update(room, identity, change).await;
        self.update_member(&live, &mut state, identity, |info| info.grants = grants)
            .ok_or_else(|| SignalError::new(ErrorCode::ParticipantNotFound, "gone"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Call, FakeMedia, hub, join};
    use tiaojie_domain::Role;

    #[tokio::test]
    async fn new_grants_reach_the_media_plane_and_then_the_room() {
        let media = Arc::new(FakeMedia::default());
        let hub = hub("grants", |_| {}, Some(media.clone())).await;
        let mut mediator = join(&hub, "r1", "m", Role::Mediator, None).await;
        let _party = join(&hub, "r1", "p", Role::Party, None).await;
        mediator.received();
        let (room, p) = (RoomName::from("r1"), PersonId::from("p"));
        let info = hub
            .update_grants(
                &room,
                &p,
                vec![Grant::Subscribe, Grant::Publish, Grant::Subscribe],
            )
            .await
            .expect("updated");
        assert_eq!(info.grants, vec![Grant::Publish, Grant::Subscribe]);
        let info = hub
            .update_grants(&room, &p, vec![Grant::Subscribe])
            .await
            .expect("updated");
        assert_eq!(info.grants, vec![Grant::Subscribe]);
        let updates: Vec<Call> = media
            .calls()
            .into_iter()
            .filter(|(who, call)| who == "p" && matches!(call, Call::Update(_)))
            .map(|(_, call)| call)
            .collect();
        assert_eq!(
            updates,
            vec![
                Call::Update(StandingChange::Grants {
                    publish: true,
                    subscribe: true
                }),
                Call::Update(StandingChange::Grants {
                    publish: false,
                    subscribe: true
                }),
            ],
            "publish withdrawn: their media is no longer forwarded"
        );
        let heard: Vec<serde_json::Value> = mediator
            .received()
            .into_iter()
            .filter(|e| e["type"] == "participant.updated")
            .map(|e| e["participant"]["grants"].clone())
            .collect();
        assert_eq!(
            heard,
            vec![
                serde_json::json!(["publish", "subscribe"]),
                serde_json::json!(["subscribe"])
            ]
        );
        assert_eq!(
            hub.update_grants(&room, &PersonId::from("q"), vec![])
                .await
                .err()
                .map(|e| e.code),
            Some(ErrorCode::ParticipantNotFound)
        );
    }
}
