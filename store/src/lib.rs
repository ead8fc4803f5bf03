//! tiaojie's storage: everything the server keeps, on SQLite (the embedded default) or
//! PostgreSQL, through sqlx's `Any` driver.
//!
//! One code path serves both backends: SQL is written in the common dialect (`$n` parameters,
//! `ON CONFLICT`, `RETURNING`, integers for times), and only the migrations differ per backend
//! (`migrations/sqlite`, `migrations/postgres`), kept semantically identical.
//!
//! Map of the crate (arrows point down; every module adds methods to [`Store`]):
//! - `cases`: a case's event record, appended optimistically with its audit entry and the rows
//!   that go with it in one transaction; the case list, minutes and ratings.
//! - `confirmation`: judicial confirmation's outbox (leased to the court bridge, redelivered,
//!   dead-lettered) and inbox (each court update taken once, with its effect).
//! - `append`: what commits with a case's events (retry bound, outbox and inbox rows).
//! - `audit`: the hash-chained audit log: append (alone or inside an action's transaction),
//!   pages, verification.
//! - `rooms`, `participations`, `access`: rooms, presence records, revoked links and removals.
//! - `group_commit`: joins and leaves queue to one writer task that commits each batch in one
//!   transaction; callers still wait for their own commit.
//! - `room_rows`: a room's row, shared by the room methods and the writer.
//! - `ids`: typed ids (room, person, case) read back from text columns.
//! - `pool`: [`Store`] itself: connecting, migrations, pool settings, SQLite's writer turn.
//! - `error`: [`StoreError`].
//!
//! The rules live in `tiaojie-domain`; this crate decides nothing but how rows are kept.

// Column lists as macros: sqlx 0.9 accepts only static SQL, and `concat!` builds it at compile time.
macro_rules! room_columns {
    () => {
        "name, created_at, closed_at, close_reason, max_participants, metadata, lobby, recording"
    };
}
macro_rules! participation_columns {
    () => {
        "id, room, identity, display_name, role, joined_at, left_at, leave_reason"
    };
}

mod access;
mod append;
mod audit;
mod cases;
mod confirmation;
mod error;
mod group_commit;
mod ids;
mod participations;
mod pool;
mod room_rows;
mod rooms;

pub use access::Removal;
pub use cases::{CaseSummary, MediatorRating, Minutes};
pub use confirmation::{Leased, MAX_ATTEMPTS, OutboxEntry, OutboxStats, Taken};
pub use error::StoreError;
pub use pool::{Backend, Store};

#[cfg(test)]
mod tests {
    use super::*;
    use tiaojie_domain::LeaveReason;
    use tiaojie_domain::recording::RecordingMode;
    use tiaojie_domain::room::NewRoom;
    use tiaojie_domain::{AuditEntry, PersonId, RoomName};

    async fn temp_store(tag: &str) -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("tiaojie-store-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let url = format!("sqlite://{}", dir.join("sub/t.db").display());
        (Store::connect(&url, 2).await.expect("connect"), dir)
    }

    #[tokio::test]
    async fn rooms_lifecycle_on_sqlite() {
        let (store, dir) = temp_store("rooms").await;
        let new = NewRoom {
            name: "case-1".into(),
            max_participants: Some(6),
            metadata: "（2026）豫0502民调123号".into(),
            lobby: true,
            recording: Some(RecordingMode::Audio),
        };
        let room = store.create_room(&new, 1000).await.expect("create");
        assert_eq!(room.max_participants, Some(6));
        assert!(room.lobby, "the lobby setting is stored");
        assert_eq!(room.recording, Some(RecordingMode::Audio));
        let room = store
            .set_room_recording(&RoomName::from("case-1"), None)
            .await
            .expect("policy");
        assert_eq!(room.recording, None);
        let read = tiaojie_domain::AuditAction::Act(tiaojie_domain::Action::RecordingRead);
        let entry = AuditEntry::new(5, "admin", "admin", read, "recording:x", "");
        store.audit(&entry).await.expect("audit");
        store
            .audit(&AuditEntry {
                target: "recording:y".into(),
                ..entry.clone()
            })
            .await
            .expect("audit");
        let log = store.audit_log(Some("recording:x")).await.expect("log");
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].action, "recording.read");
        assert_eq!(store.audit_log(None).await.expect("log").len(), 2);
        let intact = store.verify_audit_log().await.expect("verify");
        assert!(
            intact.problems.is_empty() && intact.entries == 2,
            "{intact:?}"
        );
        // Someone with database access edits the first entry: the chain says which.
        sqlx::query("UPDATE audit_log SET detail = 'nothing to see' WHERE id = 1")
            .execute(&store.pool)
            .await
            .expect("tamper");
        let broken = store.verify_audit_log().await.expect("verify");
        assert_eq!(
            broken.problems.iter().map(|p| p.id).collect::<Vec<_>>(),
            vec![1],
            "{broken:?}"
        );
        assert!(matches!(
            store.create_room(&new, 1001).await,
            Err(StoreError::RoomExists(_))
        ));
        assert!(matches!(
            store.room(&RoomName::from("nope")).await,
            Err(StoreError::RoomNotFound(_))
        ));
        store
            .open_room(&RoomName::from("auto-1"), 1002)
            .await
            .expect("auto create");
        assert_eq!(store.rooms(false).await.expect("list").len(), 2);
        let closed = store
            .close_room(&RoomName::from("case-1"), "done", 2000)
            .await
            .expect("close");
        assert_eq!(closed.closed_at, Some(2000));
        assert!(matches!(
            store
                .close_room(&RoomName::from("case-1"), "again", 2001)
                .await,
            Err(StoreError::RoomClosed(_))
        ));
        assert!(matches!(
            store.open_room(&RoomName::from("case-1"), 2002).await,
            Err(StoreError::RoomClosed(_))
        ));
        assert_eq!(store.rooms(false).await.expect("list").len(), 1);
        assert_eq!(store.rooms(true).await.expect("list").len(), 2);
        assert!(matches!(
            store
                .create_room(
                    &NewRoom {
                        name: "a/b".into(),
                        ..Default::default()
                    },
                    1
                )
                .await,
            Err(StoreError::Invalid(_))
        ));
        store.close().await;
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn participations_and_revocations_on_sqlite() {
        let (store, dir) = temp_store("parts").await;
        store
            .open_room(&RoomName::from("r"), 1)
            .await
            .expect("room");
        store
            .create_room(
                &NewRoom {
                    name: "shut".into(),
                    ..Default::default()
                },
                1,
            )
            .await
            .expect("room");
        store
            .close_room(&RoomName::from("shut"), "done", 2)
            .await
            .expect("close");
        assert!(matches!(
            store
                .record_join(
                    &RoomName::from("shut"),
                    &PersonId::from("x"),
                    "X",
                    "party",
                    3
                )
                .await,
            Err(StoreError::RoomClosed(_))
        ));
        let a = store
            .record_join(
                &RoomName::from("r"),
                &PersonId::from("alice"),
                "Alice",
                "party",
                10,
            )
            .await
            .expect("join");
        let b = store
            .record_join(
                &RoomName::from("r"),
                &PersonId::from("bob"),
                "Bob",
                "mediator",
                11,
            )
            .await
            .expect("join");
        store
            .record_leave(a, LeaveReason::Removed, "disruptive", 20)
            .await
            .expect("leave");
        assert_eq!(
            store
                .end_open_participations(LeaveReason::ServerShutdown, 30)
                .await
                .expect("end"),
            1
        );
        let rows = store
            .participations(&RoomName::from("r"))
            .await
            .expect("list");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].id, a);
        assert_eq!(rows[0].leave_reason.as_deref(), Some("removed: disruptive"));
        assert_eq!(rows[1].id, b);
        assert_eq!(rows[1].left_at, Some(30));
        assert_eq!(rows[1].leave_reason.as_deref(), Some("server_shutdown"));

        assert!(store.revoked_token_ids().await.expect("ids").is_empty());
        let removal = Removal {
            room: &RoomName::from("r"),
            identity: &PersonId::from("alice"),
            jti: "j1",
            token_expires_at: 100,
            reason: "removed",
            at: 50,
        };
        let entry = |action, at| {
            tiaojie_domain::AuditEntry::new(at, "m", "mediator", action, "room:r", "alice")
        };
        use tiaojie_domain::AuditAction::{PersonReadmit, PersonRemove};
        store
            .record_removal(&removal, &entry(PersonRemove, 50))
            .await
            .expect("remove");
        store
            .record_removal(&Removal { at: 51, ..removal }, &entry(PersonRemove, 51))
            .await
            .expect("idempotent");
        assert_eq!(
            store.revoked_token_ids().await.expect("ids"),
            vec!["j1".to_string()]
        );
        assert_eq!(
            store.removals().await.expect("removals"),
            vec![(RoomName::from("r"), PersonId::from("alice"))]
        );
        let lifted = store
            .lift_removal(
                &RoomName::from("r"),
                &PersonId::from("alice"),
                &entry(PersonReadmit, 52),
            )
            .await
            .expect("lift");
        assert_eq!(lifted, Some(vec!["j1".to_string()]));
        assert_eq!(
            store
                .lift_removal(
                    &RoomName::from("r"),
                    &PersonId::from("alice"),
                    &entry(PersonReadmit, 53)
                )
                .await
                .expect("lift"),
            None,
            "not removed any more"
        );
        // Each act and its entry committed together; the refused readmission left none.
        let log = store.audit_page(None, 0, 10).await.expect("log");
        let actions: Vec<_> = log.iter().map(|e| (e.action.clone(), e.at)).collect();
        assert_eq!(
            actions,
            vec![
                (PersonRemove.as_str().to_string(), 50),
                (PersonRemove.as_str().to_string(), 51),
                (PersonReadmit.as_str().to_string(), 52)
            ]
        );
        store
            .record_removal(&removal, &entry(PersonRemove, 54))
            .await
            .expect("again");
        assert_eq!(store.prune_revocations(101).await.expect("prune"), 1);
        assert!(store.revoked_token_ids().await.expect("ids").is_empty());
        store.close().await;
        std::fs::remove_dir_all(dir).ok();
    }
}
