//! The audit log: a hash chain of who did what, appended alone or inside an action's own
//! transaction, read a page at a time, and verified (the chain, and that every case event an
//! action recorded has its entry).

use crate::error::StoreError;
use crate::pool::Store;
use sqlx::Row;
use sqlx::any::AnyRow;
use tiaojie_domain::audit::{
    AUDIT_GENESIS, AuditEntry, AuditProblem, AuditVerification, verify_audit,
};
use tiaojie_domain::mediation::Recorded;

impl Store {
    /// Appends to the audit log, chained to the entry before it. (One server appends; several
    /// servers on one PostgreSQL would need the head read under a row lock.) An action that
    /// changes a case writes its entry inside its own transaction instead
    /// ([`Store::case_command`]): the action and its entry commit together or not at all.
    pub async fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let _turn = self.audit_lock.lock().await;
        let _write = self.write_turn().await;
        // Two autocommit statements on one connection, not a transaction: a deferred SQLite
        // transaction that reads and then writes fails (SQLITE_BUSY_SNAPSHOT) when a presence
        // write commits in between. The audit lock keeps the head from moving meanwhile.
        let mut conn = self.pool.acquire().await?;
        append_audit(&mut conn, entry).await?;
        Ok(())
    }

    /// One page of the audit log, oldest first: up to `limit` entries after the entry `after`
    /// (0: from the start), only those on `target` when given. A log grows for years; a read
    /// must not fold all of it into one answer.
    pub async fn audit_page(
        &self,
        target: Option<&str>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, actor, role, action, target, detail, prev_hash, hash FROM audit_log \
             WHERE id > $1 AND ($2 IS NULL OR target = $2) ORDER BY id LIMIT $3",
        )
        .bind(after)
        .bind(target)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(audit_row)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// The audit log, oldest first; only entries on `target` when given.
    pub async fn audit_log(&self, target: Option<&str>) -> Result<Vec<AuditEntry>, StoreError> {
        macro_rules! columns {
            () => {
                "SELECT id, at, actor, role, action, target, detail, prev_hash, hash FROM audit_log"
            };
        }
        let rows = match target {
            Some(target) => {
                sqlx::query(concat!(columns!(), " WHERE target = $1 ORDER BY id"))
                    .bind(target)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(concat!(columns!(), " ORDER BY id"))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter()
            .map(audit_row)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Recomputes the whole audit chain and says where it breaks.
    pub async fn verify_audit_log(&self) -> Result<AuditVerification, StoreError> {
        let entries = self.audit_log(None).await?;
        let mut out = verify_audit(&entries);
        out.problems
            .extend(self.unaudited_case_events(&entries).await?);
        Ok(out)
    }

    /// Case events recorded by an action without that action's audit entry. Every event of a
    /// case comes from an API action or a court update, each writing its entry in the same
    /// transaction (naming the events).
    async fn unaudited_case_events(
        &self,
        entries: &[AuditEntry],
    ) -> Result<Vec<AuditProblem>, StoreError> {
        let mut covered: std::collections::HashMap<&str, Vec<(i64, i64)>> = Default::default();
        for e in entries {
            if let (Some(case), Some(range)) =
                (e.target.strip_prefix("case:"), audited_events(&e.detail))
            {
                covered.entry(case).or_default().push(range);
            }
        }
        let rows = sqlx::query("SELECT case_id, seq FROM case_events ORDER BY case_id, seq")
            .fetch_all(&self.pool)
            .await?;
        let mut problems = Vec::new();
        for row in rows {
            let case: String = row.try_get("case_id")?;
            let seq: i64 = row.try_get("seq")?;
            let audited = covered
                .get(case.as_str())
                .is_some_and(|ranges| ranges.iter().any(|(a, b)| (*a..=*b).contains(&seq)));
            if !audited {
                problems.push(AuditProblem {
                    id: 0,
                    what: format!("case {case}: event {seq} has no audit entry"),
                });
            }
        }
        Ok(problems)
    }
}

fn audit_row(row: &AnyRow) -> Result<AuditEntry, sqlx::Error> {
    Ok(AuditEntry {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        role: row.try_get("role")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        detail: row.try_get("detail")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// Appends `entry` to the audit chain on `tx` (a transaction's connection, or a plain one). The
/// caller holds the audit lock (the chain's head must not move between the read and the insert).
pub(crate) async fn append_audit(
    tx: &mut sqlx::AnyConnection,
    entry: &AuditEntry,
) -> Result<(), StoreError> {
    let prev: Option<String> = sqlx::query("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1")
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| row.try_get::<String, _>(0))
        .transpose()?;
    let mut entry = entry.clone();
    entry.prev_hash = prev.unwrap_or_else(|| AUDIT_GENESIS.to_string());
    entry.hash = entry.compute_hash();
    sqlx::query(
        "INSERT INTO audit_log (at, actor, role, action, target, detail, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(entry.at)
    .bind(&entry.actor)
    .bind(&entry.role)
    .bind(&entry.action)
    .bind(&entry.target)
    .bind(&entry.detail)
    .bind(&entry.prev_hash)
    .bind(&entry.hash)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The detail of a case action's audit entry: the case events it recorded (`#first-last` and
/// their kinds), then `detail`. `tiaojie audit verify` reads the range back to check that every
/// event an action recorded has its entry.
pub(crate) fn case_audit_detail(recorded: &[Recorded], detail: &str) -> String {
    let kinds: Vec<&str> = recorded.iter().map(|r| r.event.kind()).collect();
    let (first, last) = (
        recorded.first().map_or(0, |r| r.seq),
        recorded.last().map_or(0, |r| r.seq),
    );
    format!("#{first}-{last} {} {detail}", kinds.join(","))
        .trim_end()
        .to_string()
}

/// The case events (first, last) an audit entry's detail says its action recorded.
pub(crate) fn audited_events(detail: &str) -> Option<(i64, i64)> {
    let range = detail.strip_prefix('#')?.split(' ').next()?;
    let (first, last) = range.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?))
}
