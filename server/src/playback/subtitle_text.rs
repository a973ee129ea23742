//! Subtitle text after ffmpeg has converted it: the formats Ephyra serves, decoding of files
//! that are not UTF-8, and the time window of Jellyfin's `SubtitleEncoder.FilterEvents` (drop
//! cues before the start or after the end, shift the rest to the start unless timestamps are
//! kept), plus the `X-TIMESTAMP-MAP` header HLS players need.
//!
//! Pure text processing; ffmpeg does the format conversion (see `api::subtitles`). Cue times are
//! parsed leniently: a line that does not parse is left as it is, never a panic.

use crate::scan::probe::TICKS_PER_SECOND;

/// A text subtitle format a client may ask for in `Stream.{format}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// WebVTT (`vtt`, `webvtt`).
    Vtt,
    /// SubRip (`srt`, `subrip`).
    Srt,
    /// Advanced SubStation Alpha.
    Ass,
    /// SubStation Alpha.
    Ssa,
}

impl Format {
    /// The format named in a URL (without regard to case), or `None`.
    pub fn parse(name: &str) -> Option<Format> {
        match name.trim().to_ascii_lowercase().as_str() {
            "vtt" | "webvtt" => Some(Format::Vtt),
            "srt" | "subrip" => Some(Format::Srt),
            "ass" => Some(Format::Ass),
            "ssa" => Some(Format::Ssa),
            _ => None,
        }
    }

    /// The format a stored subtitle codec is read as (`subrip` → SRT), for text codecs ffmpeg
    /// demuxes directly; other text codecs (`mov_text`) are extracted to SRT first.
    pub fn of_codec(codec: &str) -> Option<Format> {
        match codec.to_ascii_lowercase().as_str() {
            "subrip" | "srt" => Some(Format::Srt),
            "ass" => Some(Format::Ass),
            "ssa" => Some(Format::Ssa),
            "webvtt" | "vtt" => Some(Format::Vtt),
            _ => None,
        }
    }

    /// ffmpeg's muxer/demuxer name.
    pub fn ffmpeg_format(self) -> &'static str {
        match self {
            Format::Vtt => "webvtt",
            Format::Srt => "srt",
            Format::Ass | Format::Ssa => "ass",
        }
    }

    /// ffmpeg's encoder name.
    pub fn ffmpeg_codec(self) -> &'static str {
        match self {
            Format::Vtt => "webvtt",
            Format::Srt => "srt",
            Format::Ass => "ass",
            Format::Ssa => "ssa",
        }
    }

    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Vtt => "vtt",
            Format::Srt => "srt",
            Format::Ass => "ass",
            Format::Ssa => "ssa",
        }
    }

    /// The response's content type (Jellyfin's `MimeTypes`).
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Vtt => "text/vtt; charset=utf-8",
            Format::Srt => "application/x-subrip; charset=utf-8",
            Format::Ass | Format::Ssa => "text/x-ssa; charset=utf-8",
        }
    }
}

/// Subtitle bytes as text: UTF-8 (a byte-order mark dropped), UTF-16 with a byte-order mark,
/// else Latin-1, the usual encoding of old SRT files, so no file is refused for its encoding.
pub fn decode(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return String::from_utf8_lossy(rest).into_owned();
    }
    let utf16 = |rest: &[u8], little: bool| {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| {
                if little {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            })
            .collect();
        String::from_utf16_lossy(&units)
    };
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return utf16(rest, true);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return utf16(rest, false);
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// The cue window of one request, in ticks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    /// Cues starting before this are dropped.
    pub start_ticks: i64,
    /// Cues starting after this are dropped (`None` = to the end).
    pub end_ticks: Option<i64>,
    /// Keep source times (HLS) instead of shifting cues to the start.
    pub copy_timestamps: bool,
}

impl Window {
    /// Whether the window changes anything.
    fn is_whole(&self) -> bool {
        self.start_ticks <= 0 && self.end_ticks.is_none_or(|e| e <= 0)
    }

    /// The cue's new times, or `None` when it falls outside.
    fn apply(&self, start: i64, end: i64) -> Option<(i64, i64)> {
        if start < self.start_ticks || end < self.start_ticks {
            return None;
        }
        if let Some(limit) = self.end_ticks.filter(|e| *e > 0)
            && start > limit
        {
            return None;
        }
        if self.copy_timestamps {
            Some((start, end))
        } else {
            Some((start - self.start_ticks, end - self.start_ticks))
        }
    }
}

/// Parses `H:MM:SS.fff`, `MM:SS.fff`, `HH:MM:SS,fff` (any number of fraction digits) to ticks.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    let (clock, fraction) = match text.find(['.', ',']) {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, ""),
    };
    let mut seconds: i64 = 0;
    let parts: Vec<&str> = clock.split(':').collect();
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    for part in &parts {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) || part.len() > 6 {
            return None;
        }
        seconds = seconds * 60 + part.parse::<i64>().ok()?;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) || fraction.len() > 9 {
        return None;
    }
    let mut fraction_ticks = 0;
    let mut scale = TICKS_PER_SECOND / 10;
    for digit in fraction.bytes() {
        fraction_ticks += i64::from(digit - b'0') * scale;
        scale /= 10;
    }
    Some(seconds * TICKS_PER_SECOND + fraction_ticks)
}

fn clock(ticks: i64) -> (i64, i64, i64, i64) {
    let ms = ticks.max(0) / 10_000;
    (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
}

/// `HH:MM:SS.mmm` (WebVTT) or `HH:MM:SS,mmm` (SRT).
fn format_time(ticks: i64, separator: char) -> String {
    let (h, m, s, ms) = clock(ticks);
    format!("{h:02}:{m:02}:{s:02}{separator}{ms:03}")
}

/// `H:MM:SS.cc` (ASS).
fn format_ass_time(ticks: i64) -> String {
    let (h, m, s, ms) = clock(ticks);
    format!("{h}:{m:02}:{s:02}.{:02}", ms / 10)
}

/// Applies `window` to subtitle `text` in `format` (as ffmpeg wrote it).
pub fn apply_window(text: &str, format: Format, window: Window) -> String {
    let text = text.replace("\r\n", "\n");
    if window.is_whole() {
        return text;
    }
    match format {
        Format::Vtt | Format::Srt => window_blocks(&text, format, window),
        Format::Ass | Format::Ssa => window_ass(&text, window),
    }
}

fn window_blocks(text: &str, format: Format, window: Window) -> String {
    let separator = if format == Format::Srt { ',' } else { '.' };
    let mut out: Vec<String> = Vec::new();
    let mut number = 0;
    for block in text.split("\n\n") {
        let block = block.trim_matches('\n');
        if block.is_empty() {
            continue;
        }
        let lines: Vec<&str> = block.lines().collect();
        let Some(timing) = lines.iter().position(|l| l.contains("-->")) else {
            // The WebVTT header, NOTE and STYLE blocks.
            if format == Format::Vtt {
                out.push(block.to_owned());
            }
            continue;
        };
        let line = lines[timing];
        let (start_text, rest) = line.split_once("-->").unwrap_or((line, ""));
        let rest = rest.trim_start();
        let (end_text, settings) = rest.split_once(' ').unwrap_or((rest, ""));
        let (Some(start), Some(end)) = (parse_time(start_text), parse_time(end_text)) else {
            continue;
        };
        let Some((start, end)) = window.apply(start, end) else {
            continue;
        };
        let mut timing_line = format!(
            "{} --> {}",
            format_time(start, separator),
            format_time(end, separator)
        );
        if !settings.trim().is_empty() {
            timing_line.push(' ');
            timing_line.push_str(settings.trim());
        }
        let mut cue: Vec<String> = Vec::new();
        if format == Format::Srt {
            number += 1;
            cue.push(number.to_string());
        } else if timing > 0 {
            // A WebVTT cue identifier.
            cue.push(lines[timing - 1].to_owned());
        }
        cue.push(timing_line);
        cue.extend(lines[timing + 1..].iter().map(|l| (*l).to_owned()));
        out.push(cue.join("\n"));
    }
    let mut joined = out.join("\n\n");
    joined.push('\n');
    joined
}

/// Cues of SRT or WebVTT `text` as Jellyfin's `JsonWriter` writes them for `Stream.js`:
/// `{"TrackEvents":[{"Id","Text","StartPositionTicks","EndPositionTicks"}]}`, the form
/// jellyfin-web's own subtitle renderer fetches. Lines of a cue are joined with `\n`.
pub fn track_events(text: &str) -> serde_json::Value {
    let text = text.replace("\r\n", "\n");
    let mut events = Vec::new();
    for block in text.split("\n\n") {
        let lines: Vec<&str> = block.trim_matches('\n').lines().collect();
        let Some(timing) = lines.iter().position(|l| l.contains("-->")) else {
            continue;
        };
        let (start_text, rest) = lines[timing].split_once("-->").unwrap_or_default();
        let end_text = rest.split_whitespace().next().unwrap_or_default();
        let (Some(start), Some(end)) = (parse_time(start_text), parse_time(end_text)) else {
            continue;
        };
        events.push(serde_json::json!({
            "Id": (events.len() + 1).to_string(),
            "Text": lines[timing + 1..].join("\n"),
            "StartPositionTicks": start,
            "EndPositionTicks": end,
        }));
    }
    serde_json::json!({ "TrackEvents": events })
}

fn window_ass(text: &str, window: Window) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let Some(body) = line.strip_prefix("Dialogue:") else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let fields: Vec<&str> = body.splitn(4, ',').collect();
        let times = (fields.len() == 4)
            .then(|| Some((parse_time(fields[1])?, parse_time(fields[2])?)))
            .flatten();
        let Some((start, end)) = times else {
            continue;
        };
        if let Some((start, end)) = window.apply(start, end) {
            out.push_str(&format!(
                "Dialogue:{},{},{},{}\n",
                fields[0],
                format_ass_time(start),
                format_ass_time(end),
                fields[3]
            ));
        }
    }
    out
}

/// Adds `X-TIMESTAMP-MAP=MPEGTS:<offset>,LOCAL:00:00:00.000` after the `WEBVTT` line, so an
/// HLS player lines cue times up with the MPEG-TS timestamps of the video segments.
pub fn add_time_map(vtt: &str, mpegts_offset: u64) -> String {
    let map = format!("X-TIMESTAMP-MAP=MPEGTS:{mpegts_offset},LOCAL:00:00:00.000");
    match vtt.split_once('\n') {
        Some((first, rest)) if first.trim_start_matches('\u{feff}').starts_with("WEBVTT") => {
            format!("{first}\n{map}\n{rest}")
        }
        _ => format!("WEBVTT\n{map}\n\n{vtt}"),
    }
}

/// The cues of a WebVTT or SRT text, as (start, end) ticks, for tests and checks.
pub fn cue_times(text: &str) -> Vec<(i64, i64)> {
    text.lines()
        .filter_map(|l| l.split_once("-->"))
        .filter_map(|(a, b)| {
            let end = b.split_whitespace().next()?;
            Some((parse_time(a)?, parse_time(end)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = TICKS_PER_SECOND;

    const VTT: &str = "WEBVTT\n\n00:00:01.000 --> 00:00:02.500\nOne\n\n\
                       00:00:31.000 --> 00:00:33.000 line:90%\nTwo\nlines\n\n\
                       01:00:00.000 --> 01:00:01.000\nThree\n";

    #[test]
    fn times_parse_in_every_notation() {
        assert_eq!(parse_time("00:00:01.500"), Some(15 * S / 10));
        assert_eq!(parse_time("00:01:01,250"), Some(61 * S + S / 4));
        assert_eq!(parse_time("0:00:02.05"), Some(2 * S + S / 20));
        assert_eq!(parse_time("01:02.003"), Some(62 * S + 3 * S / 1000));
        assert_eq!(parse_time("1:00:00.000"), Some(3600 * S));
        for bad in ["", "a:b", "1:2:3:4", "00:00:01.x", "-1:00"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_window_drops_cues_outside_and_shifts_the_rest() {
        let window = Window {
            start_ticks: 30 * S,
            end_ticks: Some(60 * S),
            copy_timestamps: false,
        };
        let out = apply_window(VTT, Format::Vtt, window);
        assert!(out.starts_with("WEBVTT\n\n"), "{out}");
        assert_eq!(cue_times(&out), [(S, 3 * S)]);
        assert!(out.contains("00:00:01.000 --> 00:00:03.000 line:90%\nTwo\nlines"));
        let kept = Window {
            copy_timestamps: true,
            ..window
        };
        assert_eq!(
            cue_times(&apply_window(VTT, Format::Vtt, kept)),
            [(31 * S, 33 * S)]
        );
        let from_start = Window::default();
        assert_eq!(
            cue_times(&apply_window(VTT, Format::Vtt, from_start)).len(),
            3
        );
    }

    #[test]
    fn srt_cues_are_renumbered_after_the_window() {
        let srt = "1\r\n00:00:01,000 --> 00:00:02,000\r\nA\r\n\r\n2\r\n00:00:05,000 --> 00:00:06,000\r\nB\r\n";
        let out = apply_window(
            srt,
            Format::Srt,
            Window {
                start_ticks: 4 * S,
                ..Window::default()
            },
        );
        assert_eq!(out, "1\n00:00:01,000 --> 00:00:02,000\nB\n");
    }

    #[test]
    fn ass_dialogue_lines_are_windowed_and_the_header_kept() {
        let ass = "[Script Info]\nTitle: x\n\n[Events]\nFormat: Layer, Start, End, Style, Text\n\
                   Dialogue: 0,0:00:01.00,0:00:02.00,Default,,0,0,0,,Early\n\
                   Dialogue: 0,0:00:10.50,0:00:12.00,Default,,0,0,0,,Late, with a comma\n";
        let out = apply_window(
            ass,
            Format::Ass,
            Window {
                start_ticks: 5 * S,
                ..Window::default()
            },
        );
        assert!(out.contains("[Script Info]") && out.contains("Format: Layer"));
        assert!(!out.contains("Early"));
        assert!(
            out.contains("Dialogue: 0,0:00:05.50,0:00:07.00,Default,,0,0,0,,Late, with a comma"),
            "{out}"
        );
    }

    #[test]
    fn the_timestamp_map_follows_the_header() {
        let out = add_time_map(VTT, 900_000);
        assert!(out.starts_with("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:900000,LOCAL:00:00:00.000\n\n"));
        assert_eq!(cue_times(&out).len(), 3);
    }

    #[test]
    fn any_encoding_decodes() {
        assert_eq!(decode(b"\xEF\xBB\xBFcaf\xC3\xA9"), "café");
        assert_eq!(decode(b"caf\xE9"), "café", "Latin-1");
        assert_eq!(decode(b"\xFF\xFEh\x00i\x00"), "hi");
        assert_eq!(decode(b"\xFE\xFF\x00h\x00i"), "hi");
    }

    #[test]
    fn garbage_is_left_without_cues_not_a_panic() {
        let out = apply_window(
            "1\nnot --> a time\nx\n\n\u{0}\u{1}-->",
            Format::Srt,
            Window {
                start_ticks: S,
                ..Window::default()
            },
        );
        assert!(cue_times(&out).is_empty());
        assert_eq!(Format::parse("SubRip"), Some(Format::Srt));
        assert_eq!(Format::parse("pgs"), None);
    }

    #[test]
    fn cues_become_jellyfins_track_events() {
        let vtt = "WEBVTT\n\n00:00:01.500 --> 00:00:03.000 line:90%\nHello\nthere\n\nbad --> time\nskipped\n\n1\n00:01:00.000 --> 00:01:02.250\nAgain\n";
        let json = track_events(vtt);
        assert_eq!(
            json,
            serde_json::json!({"TrackEvents": [
                {"Id": "1", "Text": "Hello\nthere", "StartPositionTicks": 15_000_000, "EndPositionTicks": 30_000_000},
                {"Id": "2", "Text": "Again", "StartPositionTicks": 600_000_000, "EndPositionTicks": 622_500_000},
            ]})
        );
        assert_eq!(
            track_events("WEBVTT\n"),
            serde_json::json!({"TrackEvents": []})
        );
    }
}
