//! Jellyfin's resume rules, as pure functions (JF `UserDataManager.UpdatePlayState` and
//! `SessionManager.OnPlaybackStart/Stopped`, defaults from `ServerConfiguration`).
//!
//! - under 5 % in → no resume point (position 0);
//! - over 90 % in, or within one second of the end → played, position 0;
//! - an item shorter than 300 s, stopped in between → played, position 0;
//! - otherwise the position is kept as the resume point;
//! - an item of unknown length → played, position 0;
//! - a stop report without a position → played, position 0, and one more play.

/// Below this share of the runtime there is nothing to resume.
pub const MIN_RESUME_PERCENT: f64 = 5.0;
/// Above this share of the runtime the item counts as played.
pub const MAX_RESUME_PERCENT: f64 = 90.0;
/// Items shorter than this are marked played rather than resumed.
pub const MIN_RESUME_DURATION_TICKS: i64 = 300 * TICKS_PER_SECOND;
/// 1 s in ticks: within this of the end counts as the end.
pub const TICKS_PER_SECOND: i64 = 10_000_000;

/// What a reported position does to the user's data for an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayOutcome {
    /// Store this resume position (0 clears it); `Played` is left as it is.
    Resume(i64),
    /// Mark the item played and clear the resume position.
    Played,
}

/// Applies the rules to a reported `position` for an item of `runtime` ticks.
pub fn outcome(position: i64, runtime: Option<i64>) -> PlayOutcome {
    let runtime = runtime.unwrap_or(0);
    if runtime <= 0 {
        // Jellyfin: without a runtime, assume the item was played through.
        return PlayOutcome::Played;
    }
    if position <= 0 {
        return PlayOutcome::Resume(0);
    }
    let percent = position as f64 * 100.0 / runtime as f64;
    if percent < MIN_RESUME_PERCENT {
        PlayOutcome::Resume(0)
    } else if percent > MAX_RESUME_PERCENT
        || position >= runtime - TICKS_PER_SECOND
        // Too short to be worth resuming: stopping in the middle counts as watched.
        || runtime < MIN_RESUME_DURATION_TICKS
    {
        PlayOutcome::Played
    } else {
        PlayOutcome::Resume(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60 * TICKS_PER_SECOND;
    const FILM: i64 = 100 * MINUTE;

    #[test]
    fn under_five_percent_leaves_no_resume_point() {
        assert_eq!(outcome(FILM * 4 / 100, Some(FILM)), PlayOutcome::Resume(0));
        assert_eq!(outcome(0, Some(FILM)), PlayOutcome::Resume(0));
    }

    #[test]
    fn exactly_five_percent_is_a_resume_point() {
        assert_eq!(
            outcome(FILM * 5 / 100, Some(FILM)),
            PlayOutcome::Resume(FILM * 5 / 100)
        );
    }

    #[test]
    fn between_five_and_ninety_percent_the_position_is_kept() {
        assert_eq!(outcome(FILM / 2, Some(FILM)), PlayOutcome::Resume(FILM / 2));
        assert_eq!(
            outcome(FILM * 90 / 100, Some(FILM)),
            PlayOutcome::Resume(FILM * 90 / 100)
        );
    }

    #[test]
    fn over_ninety_percent_counts_as_played() {
        assert_eq!(outcome(FILM * 91 / 100, Some(FILM)), PlayOutcome::Played);
        assert_eq!(outcome(FILM, Some(FILM)), PlayOutcome::Played);
        assert_eq!(outcome(FILM * 2, Some(FILM)), PlayOutcome::Played);
    }

    #[test]
    fn within_one_second_of_the_end_counts_as_played() {
        // 20 % of a 1.2 s clip is not over 90 %, but it is within a second of the end.
        let clip = 12 * TICKS_PER_SECOND / 10;
        assert_eq!(outcome(clip / 5, Some(clip)), PlayOutcome::Played);
    }

    #[test]
    fn an_item_shorter_than_five_minutes_counts_as_played_once_resumable() {
        let short = 299 * TICKS_PER_SECOND;
        assert_eq!(outcome(short / 2, Some(short)), PlayOutcome::Played);
        assert_eq!(outcome(short / 100, Some(short)), PlayOutcome::Resume(0));
        let long_enough = 300 * TICKS_PER_SECOND;
        assert_eq!(
            outcome(long_enough / 2, Some(long_enough)),
            PlayOutcome::Resume(long_enough / 2)
        );
    }

    #[test]
    fn an_item_of_unknown_length_counts_as_played() {
        assert_eq!(outcome(5 * MINUTE, None), PlayOutcome::Played);
        assert_eq!(outcome(5 * MINUTE, Some(0)), PlayOutcome::Played);
    }
}
