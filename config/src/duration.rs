//! Human durations for configuration values: `"500ms"`, `"30s"`, `"15m"`, `"2h"`, `"7d"`, or a
//! sum such as `"1h30m"`. Serialised back in the largest unit that divides the value exactly.

use serde::{Deserialize, Deserializer, Serializer};
use std::time::Duration;

const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1000),
    ("ms", 1),
];

/// Parses `"1h30m"`-style text.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let mut millis: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "{text:?} is not a duration like \"30s\", \"15m\" or \"2h\""
            ));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{text:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let scale = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(|| format!("{text:?}: unknown unit {unit:?} (use ms, s, m, h or d)"))?;
        millis = number
            .checked_mul(scale)
            .and_then(|v| millis.checked_add(v))
            .ok_or_else(|| format!("{text:?}: too long"))?;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_millis(millis))
}

/// Formats a duration the way [`parse`] reads it.
pub fn format(value: &Duration) -> String {
    let millis = value.as_millis() as u64;
    if millis == 0 {
        return "0s".into();
    }
    for (name, scale) in UNITS {
        if millis.is_multiple_of(scale) {
            return format!("{}{name}", millis / scale);
        }
    }
    format!("{millis}ms")
}

/// `serde(with = "duration")` serialiser.
pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(value))
}

/// `serde(with = "duration")` deserialiser.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse("").is_err());
        assert!(parse("10").is_err());
        assert!(parse("s").is_err());
        assert!(parse("5 weeks").is_err());
        assert!(parse("99999999999999999999s").is_err());
        for text in ["30s", "2h", "250ms", "7d", "90m", "1500ms"] {
            let d = parse(text).expect("parses");
            assert_eq!(parse(&format(&d)), Ok(d));
        }
        assert_eq!(format(&Duration::from_secs(5400)), "90m");
    }
}
