//! Dates and durations in Jellyfin's units: ISO-8601 UTC with exactly seven fractional digits
//! (`2024-01-01T00:00:00.0000000Z`), and ticks of 100 ns. The database keeps unix milliseconds.

use chrono::{DateTime, Utc};

/// Milliseconds since the unix epoch, now.
pub fn now_millis() -> i64 {
    Utc::now().timestamp_millis()
}

/// Unix milliseconds as a Jellyfin date: `2024-01-01T00:00:00.0000000Z`.
pub fn date(millis: i64) -> String {
    let at = DateTime::<Utc>::from_timestamp_millis(millis).unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    let hundreds_of_nanos = at.timestamp_subsec_nanos() / 100;
    format!("{}.{hundreds_of_nanos:07}Z", at.format("%Y-%m-%dT%H:%M:%S"))
}

/// [`date`] for an optional timestamp.
pub fn date_opt(millis: Option<i64>) -> Option<String> {
    millis.map(date)
}

/// Milliseconds as ticks (1 tick = 100 ns).
pub fn ticks_from_millis(millis: i64) -> i64 {
    millis.saturating_mul(10_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_have_seven_fractional_digits_and_a_z() {
        assert_eq!(date(1_704_067_200_000), "2024-01-01T00:00:00.0000000Z");
        assert_eq!(date(1_704_067_200_123), "2024-01-01T00:00:00.1230000Z");
    }

    #[test]
    fn one_second_is_ten_million_ticks() {
        assert_eq!(ticks_from_millis(1000), 10_000_000);
    }
}
