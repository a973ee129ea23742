//! How an item plays: the client's `DeviceProfile` ([`profile`]) and the decision between
//! direct play, remux and transcode, with the delivery of each subtitle ([`decision`]), and
//! the subtitle text served ([`subtitle_text`]).
//!
//! Pure logic only; the HTTP side is `api::playback` and `api::subtitles`.

pub mod decision;
pub mod profile;
pub mod subtitle_text;
