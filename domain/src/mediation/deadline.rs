//! The mediation time limit (ODR-Med 24): 30 days before filing, 15 (ordinary) or 7 (simple)
//! after; extended by the parties' consent; paused while an appraisal runs.
//!
//! Days are counted as the Civil Procedure Law counts a period (CPL 85), by the one rule in
//! [`tiaojie_confirmation::period`] that the court's limits use too: the day the case was
//! opened does not count, and the limit runs out at the end (24:00 China time) of its last
//! day. Pauses add their length.

use super::case::Stage;
use serde::Serialize;

pub use tiaojie_confirmation::period::{DAY_MS, end_of_day_after};

/// The statutory limit for a stage, in days.
pub fn limit_days(stage: Stage) -> i64 {
    match stage {
        Stage::PreFiling => 30,
        Stage::Ordinary => 15,
        Stage::Simple => 7,
    }
}

/// Where a case stands against its time limit, at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TimeLimit {
    /// When counting started (the case's opening), Unix ms.
    pub started_at: i64,
    /// The statutory days for the stage.
    pub limit_days: i64,
    /// Days added by the parties' consent.
    pub extension_days: i64,
    /// Time paused so far (appraisal), ms.
    pub paused_ms: i64,
    /// Whether a pause is running now.
    pub paused: bool,
    /// When the limit runs out, Unix ms (moves while paused).
    pub due_at: i64,
    /// Time left (negative when overdue), ms.
    pub remaining_ms: i64,
    /// Past due and neither ended nor paused.
    pub overdue: bool,
}

/// Computes the time limit at `now`. `pauses` are (start, end) with `None` for a running one;
/// `ended_at` stops the clock (an outcome was recorded).
pub fn time_limit(
    stage: Stage,
    started_at: i64,
    extension_days: i64,
    pauses: &[(i64, Option<i64>)],
    ended_at: Option<i64>,
    now: i64,
) -> TimeLimit {
    let at = ended_at.map_or(now, |e| e.min(now));
    let paused_ms: i64 = pauses
        .iter()
        .map(|(start, end)| (end.unwrap_or(at).min(at) - start).max(0))
        .sum();
    let paused = ended_at.is_none() && pauses.iter().any(|(_, end)| end.is_none());
    let limit = limit_days(stage);
    let due_at = end_of_day_after(started_at, limit + extension_days) + paused_ms;
    TimeLimit {
        started_at,
        limit_days: limit,
        extension_days,
        paused_ms,
        paused,
        due_at,
        remaining_ms: due_at - at,
        overdue: ended_at.is_none() && !paused && at > due_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_extensions_and_pauses_with_a_controlled_clock() {
        // 2027-01-15 16:00 China Standard Time (08:00 UTC).
        let t0 = 1_800_000_000_000;
        let day = DAY_MS;
        let hour = 3_600_000;
        // The 15th does not count: seven days end at 24:00 on the 22nd (16:00 UTC).
        let end_22nd = t0 + 7 * day + 8 * hour;
        let simple = time_limit(Stage::Simple, t0, 0, &[], None, t0 + 6 * day);
        assert_eq!((simple.due_at, simple.overdue), (end_22nd, false));
        assert!(!time_limit(Stage::Simple, t0, 0, &[], None, end_22nd).overdue);
        assert!(time_limit(Stage::Simple, t0, 0, &[], None, end_22nd + 1).overdue);
        // Opened a minute before or at midnight: the day of opening never counts.
        let late = t0 + 8 * hour - 60_000;
        assert_eq!(end_of_day_after(late, 7), end_22nd);
        assert_eq!(end_of_day_after(t0 + 8 * hour, 7), end_22nd + day);
        assert_eq!(
            time_limit(Stage::Ordinary, t0, 0, &[], None, t0).due_at,
            end_22nd + 8 * day
        );
        // 30 days before filing, +10 by consent, a 3-day appraisal: 43 days and 8 hours on.
        let pauses = [(t0 + 5 * day, Some(t0 + 8 * day))];
        let pre = time_limit(Stage::PreFiling, t0, 10, &pauses, None, t0 + 43 * day);
        assert_eq!((pre.due_at, pre.overdue), (t0 + 43 * day + 8 * hour, false));
        assert!(time_limit(Stage::PreFiling, t0, 10, &pauses, None, t0 + 44 * day).overdue);
        // A running pause: never overdue, and the due date moves with the clock.
        let running = [(t0 + day, None)];
        let p = time_limit(Stage::Simple, t0, 0, &running, None, t0 + 20 * day);
        assert!(p.paused && !p.overdue);
        assert_eq!(p.due_at, end_22nd + 19 * day);
        // Ended cases are never overdue; the clock stopped at the end.
        let ended = time_limit(Stage::Simple, t0, 0, &[], Some(t0 + day), t0 + 90 * day);
        assert!(!ended.overdue);
        assert_eq!(ended.remaining_ms, 6 * day + 8 * hour);
    }
}
