//! Dates and times as Chinese documents write them, in China Standard Time (UTC+8, no
//! daylight saving), from Unix milliseconds; no clock is read.

/// A moment's date and time in China: (year, month, day, hour, minute).
pub fn china(ms: i64) -> (i64, u32, u32, u32, u32) {
    let local = ms.div_euclid(1000) + 8 * 3600;
    let (days, secs) = (local.div_euclid(86_400), local.rem_euclid(86_400));
    let (y, m, d) = civil(days);
    (y, m, d, (secs / 3600) as u32, (secs % 3600 / 60) as u32)
}

/// The civil date of a day counted from 1970-01-01 (the proleptic Gregorian calendar).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `2026年12月5日 13:34` (China time).
pub fn date_time(ms: i64) -> String {
    let (y, m, d, h, min) = china(ms);
    format!("{y}年{m}月{d}日 {h:02}:{min:02}")
}

/// `2026年12月5日` (China time).
pub fn date(ms: i64) -> String {
    let (y, m, d, ..) = china(ms);
    format!("{y}年{m}月{d}日")
}

/// A date as a court's ruling writes it: `二〇二六年十二月五日`.
pub fn date_in_words(ms: i64) -> String {
    const DIGITS: [char; 10] = ['〇', '一', '二', '三', '四', '五', '六', '七', '八', '九'];
    let (y, m, d, ..) = china(ms);
    let year: String = y
        .to_string()
        .chars()
        .filter_map(|c| c.to_digit(10).map(|n| DIGITS[n as usize]))
        .collect();
    let number = |n: u32| match n {
        0..=9 => DIGITS[n as usize].to_string(),
        10 => "十".to_string(),
        11..=19 => format!("十{}", DIGITS[(n % 10) as usize]),
        _ if n.is_multiple_of(10) => format!("{}十", DIGITS[(n / 10) as usize]),
        _ => format!(
            "{}十{}",
            DIGITS[(n / 10) as usize],
            DIGITS[(n % 10) as usize]
        ),
    };
    format!("{year}年{}月{}日", number(m), number(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn china_time_and_its_dates() {
        // 2026-12-05 05:34 UTC is 13:34 in China.
        let t = 1_796_448_840_000;
        assert_eq!(china(t), (2026, 12, 5, 13, 34));
        assert_eq!(date_time(t), "2026年12月5日 13:34");
        assert_eq!(date_in_words(t), "二〇二六年十二月五日");
        // 16:30 UTC on 12-31 is already the new year in China.
        let eve = 1_798_734_600_000;
        assert_eq!(date(eve), "2027年1月1日");
        assert_eq!(date_in_words(eve), "二〇二七年一月一日");
        assert_eq!(date_in_words(1_800_000_000_000), "二〇二七年一月十五日");
        assert_eq!(
            date_in_words(1_803_000_000_000 + 25 * 86_400_000),
            "二〇二七年三月十六日"
        );
        assert_eq!(china(0), (1970, 1, 1, 8, 0));
    }
}
