//! Periods as the Civil Procedure Law counts them (CPL 85), one rule for every limit on
//! both sides of the network boundary: the mediation time limit, the 30 days to apply for
//! judicial confirmation (CPL 205), the court's 3 days to accept and 15 (+10) days to rule.
//!
//! A period counted in days does not count the day it begins on, and ends at the end (24:00)
//! of its last day, in China Standard Time (the courts' calendar; no daylight saving). So 30
//! days opened on 12-04 at 16:00 end at 24:00 on 01-03. A last day that falls on a public
//! holiday is not moved to the next working day: no holiday calendar is kept, so the limit
//! shown is never later than the court's.

/// One day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// China Standard Time's offset from UTC.
pub const CST_OFFSET_MS: i64 = 8 * 3_600_000;

/// The end (24:00 China Standard Time) of the `days`-th day after the day `at` falls on:
/// the end of a period of `days` days that began at `at` (Unix ms).
pub fn end_of_day_after(at: i64, days: i64) -> i64 {
    let local = at + CST_OFFSET_MS;
    let day_start = local - local.rem_euclid(DAY_MS);
    day_start + (days + 1) * DAY_MS - CST_OFFSET_MS
}

/// Whether `at` is exactly a day's end (24:00 China time), as every period's end is.
pub fn is_day_end(at: i64) -> bool {
    (at + CST_OFFSET_MS).rem_euclid(DAY_MS) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-04 00:00 China time.
    const DEC_4: i64 = 1_796_313_600_000;
    const HOUR: i64 = 3_600_000;

    #[test]
    fn the_day_a_period_begins_does_not_count_and_the_last_day_ends_at_midnight() {
        // DOMAIN.md's example: 30 days opened on 12-04 at 16:00 end at 24:00 on 01-03, which
        // is 2027-01-04 00:00 China time, 2027-01-03 16:00 UTC.
        let jan_4 = DEC_4 + 31 * DAY_MS;
        assert_eq!(end_of_day_after(DEC_4 + 16 * HOUR, 30), jan_4);
        assert!(is_day_end(jan_4));
        // Any moment of the first day gives the same end: 00:00 and 23:59:59.999.
        assert_eq!(end_of_day_after(DEC_4, 30), jan_4);
        assert_eq!(end_of_day_after(DEC_4 + DAY_MS - 1, 30), jan_4);
        // Midnight starts the next day: one more day.
        assert_eq!(end_of_day_after(DEC_4 + DAY_MS, 30), jan_4 + DAY_MS);
        // The court's date, not UTC's: 23:30 UTC on 12-03 is 07:30 on 12-04 in China, so
        // three days run to the end of 12-07; 15:30 UTC on 12-03 is still 12-03 in China.
        assert_eq!(
            end_of_day_after(DEC_4 + 7 * HOUR + 30 * 60_000, 3),
            DEC_4 + 4 * DAY_MS
        );
        assert_eq!(end_of_day_after(DEC_4 - 30 * 60_000, 3), DEC_4 + 3 * DAY_MS);
        assert!(!is_day_end(DEC_4 + 1));
    }
}
