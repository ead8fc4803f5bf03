//! The mediation time limit (ODR-Med 24): 30 days before filing, 15 (ordinary) or 7 (simple)
//! after; extended by the parties' consent; paused while an appraisal runs.
//!
//! Days are counted as 24-hour periods from the moment the case was opened (a court counting
//! from the next calendar day gets at most one day more); pauses add their length.

use super::case::Stage;
use serde::Serialize;

/// One day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

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
    let due_at = started_at + (limit + extension_days) * DAY_MS + paused_ms;
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
        let t0 = 1_800_000_000_000;
        let day = DAY_MS;
        let simple = time_limit(Stage::Simple, t0, 0, &[], None, t0 + 6 * day);
        assert_eq!((simple.due_at, simple.overdue), (t0 + 7 * day, false));
        assert!(time_limit(Stage::Simple, t0, 0, &[], None, t0 + 7 * day + 1).overdue);
        assert_eq!(
            time_limit(Stage::Ordinary, t0, 0, &[], None, t0).due_at,
            t0 + 15 * day
        );
        // 30 days before filing, +10 by consent, a 3-day appraisal: due on day 43.
        let pauses = [(t0 + 5 * day, Some(t0 + 8 * day))];
        let pre = time_limit(Stage::PreFiling, t0, 10, &pauses, None, t0 + 42 * day);
        assert_eq!((pre.due_at, pre.overdue), (t0 + 43 * day, false));
        assert!(time_limit(Stage::PreFiling, t0, 10, &pauses, None, t0 + 44 * day).overdue);
        // A running pause: never overdue, and the due date moves with the clock.
        let running = [(t0 + day, None)];
        let p = time_limit(Stage::Simple, t0, 0, &running, None, t0 + 20 * day);
        assert!(p.paused && !p.overdue);
        assert_eq!(p.due_at, t0 + 7 * day + 19 * day);
        // Ended cases are never overdue; the clock stopped at the end.
        let ended = time_limit(Stage::Simple, t0, 0, &[], Some(t0 + day), t0 + 90 * day);
        assert!(!ended.overdue);
        assert_eq!(ended.remaining_ms, 6 * day);
    }
}
