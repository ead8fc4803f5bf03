//! What commits with a case's events: the optimistic append's retry bound, and the rows that
//! go in the same transaction (sealed outbox messages, a court update's inbox row and document).

use crate::error::StoreError;
use tiaojie_confirmation::{Envelope, Message};

/// How often a command is retried when another one appended to the same case first.
pub(crate) const APPEND_ATTEMPTS: usize = 20;

/// Extra rows written in the same transaction as a case's events.
#[derive(Default)]
pub(crate) struct Alongside {
    /// Outbox messages (sealed).
    pub outbox: Vec<(Message, Envelope)>,
    /// An inbox row: the court update's message id.
    pub inbox: Option<String>,
    /// The court's document that came with it (kept beside the inbox row).
    pub document: Option<Vec<u8>>,
}

/// Writes the rows that go with a case's events, inside the append's transaction.
pub(crate) async fn write_alongside(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    case_id: &str,
    now: i64,
    alongside: &Alongside,
) -> Result<(), StoreError> {
    for (message, envelope) in &alongside.outbox {
        sqlx::query(
            "INSERT INTO confirmation_outbox (message_id, case_id, seq, payload, signature, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&message.message_id)
        .bind(case_id)
        .bind(message.seq)
        .bind(&envelope.payload)
        .bind(&envelope.signature)
        .bind(message.created_at)
        .execute(&mut **tx)
        .await?;
    }
    if let Some(message_id) = &alongside.inbox {
        let inserted = sqlx::query(
            "INSERT INTO confirmation_inbox (message_id, case_id, received_at, outcome, document) \
             VALUES ($1, $2, $3, 'applied', $4) ON CONFLICT DO NOTHING",
        )
        .bind(message_id)
        .bind(case_id)
        .bind(now)
        .bind(alongside.document.clone())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::Duplicate);
        }
    }
    Ok(())
}
