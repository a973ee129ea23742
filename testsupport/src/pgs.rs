//! Blu-ray image subtitles (PGS, `.sup`) written from scratch, for burn-in tests.
//!
//! ffmpeg cannot make a bitmap subtitle from text, and no such file may be downloaded, so
//! [`write_sup`] encodes display sets itself: each [`PgsRect`] becomes one display set that
//! shows a solid rectangle (presentation, window, palette and object segments with the
//! run-length-coded bitmap, then END) and one that clears it at its end time (a presentation
//! with no object). [`mux_pgs`] copies such a `.sup` next to a video into a Matroska file.
//!
//! The format is the one `libavcodec/pgssubdec.c` reads: segments of `"PG"`, a 90 kHz PTS and
//! DTS, a type byte and a big-endian length.

use std::path::Path;
use std::time::Duration;

use crate::SupportError;

/// Presentation composition segment.
const PCS: u8 = 0x16;
/// Window definition segment.
const WDS: u8 = 0x17;
/// Palette definition segment.
const PDS: u8 = 0x14;
/// Object definition segment (the bitmap).
const ODS: u8 = 0x15;
/// End of a display set.
const END: u8 = 0x80;

/// One solid rectangle shown from `start` to `end`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PgsRect {
    /// When it appears.
    pub start: Duration,
    /// When it is cleared.
    pub end: Duration,
    /// Left edge on the video, pixels.
    pub x: u16,
    /// Top edge on the video, pixels.
    pub y: u16,
    /// Width, pixels.
    pub width: u16,
    /// Height, pixels.
    pub height: u16,
    /// Its colour as (Y, Cr, Cb), opaque; `(235, 128, 128)` is white.
    pub ycrcb: (u8, u8, u8),
}

/// The bytes of a `.sup` for a `video_width`x`video_height` video showing `rects` in turn.
/// Each rectangle gets its own epoch (so any one decodes without the others).
pub fn sup_bytes(video_width: u16, video_height: u16, rects: &[PgsRect]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, rect) in rects.iter().enumerate() {
        let composition = (n * 2) as u16;
        let shown = ticks(rect.start);
        // The window, shared by the showing and the clearing set.
        let mut window = vec![1, 0];
        for v in [rect.x, rect.y, rect.width, rect.height] {
            window.extend(v.to_be_bytes());
        }

        // Showing: epoch start, one object in window 0 at (x, y).
        let mut pcs = presentation(video_width, video_height, composition, 0x80, 1);
        pcs.extend([0, 0, 0, 0]); // object 0, window 0, not cropped
        pcs.extend(rect.x.to_be_bytes());
        pcs.extend(rect.y.to_be_bytes());
        segment(&mut out, shown, PCS, &pcs);
        segment(&mut out, shown, WDS, &window);
        // Palette 0, version 0: entry 1 is the colour, opaque (entry 0 stays transparent).
        let (y, cr, cb) = rect.ycrcb;
        segment(&mut out, shown, PDS, &[0, 0, 1, y, cr, cb, 0xff]);
        let rle = solid_rle(rect.width, rect.height, 1);
        let mut ods = vec![0, 0, 0, 0xc0]; // object 0, version 0, first and last fragment
        let length = (rle.len() + 4) as u32;
        ods.extend(&length.to_be_bytes()[1..]);
        ods.extend(rect.width.to_be_bytes());
        ods.extend(rect.height.to_be_bytes());
        ods.extend(rle);
        segment(&mut out, shown, ODS, &ods);
        segment(&mut out, shown, END, &[]);

        // Clearing: a normal composition without objects.
        let cleared = ticks(rect.end);
        let pcs = presentation(video_width, video_height, composition + 1, 0x00, 0);
        segment(&mut out, cleared, PCS, &pcs);
        segment(&mut out, cleared, WDS, &window);
        segment(&mut out, cleared, END, &[]);
    }
    out
}

/// Writes [`sup_bytes`] to `path`.
pub fn write_sup(
    path: &Path,
    video_width: u16,
    video_height: u16,
    rects: &[PgsRect],
) -> Result<(), SupportError> {
    std::fs::write(path, sup_bytes(video_width, video_height, rects)).map_err(|source| {
        SupportError::File {
            action: "writing",
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Writes `output`: every stream of `video` plus the `.sup` at `sup` as a PGS subtitle
/// stream (language `language`), all copied.
pub async fn mux_pgs(
    video: &Path,
    sup: &Path,
    language: &str,
    output: &Path,
) -> Result<(), SupportError> {
    // `-copyts`: without it ffmpeg shifts each input to start at 0, and the `.sup`'s first
    // event (its start time) would move to the video's start.
    let args: Vec<String> = vec![
        "-copyts".into(),
        "-i".into(),
        video.to_string_lossy().into_owned(),
        "-i".into(),
        sup.to_string_lossy().into_owned(),
        "-map".into(),
        "0".into(),
        "-map".into(),
        "1:0".into(),
        "-c".into(),
        "copy".into(),
        "-metadata:s:s:0".into(),
        format!("language={language}"),
        "-f".into(),
        "matroska".into(),
    ];
    crate::media::ffmpeg(&args, output).await
}

/// 90 kHz ticks of `t`.
fn ticks(t: Duration) -> u32 {
    (t.as_micros() * 9 / 100) as u32
}

/// The start of a presentation composition: video size, 23.976 fps code, the composition
/// number and state, no palette update, palette 0, `objects` composition objects.
fn presentation(width: u16, height: u16, number: u16, state: u8, objects: u8) -> Vec<u8> {
    let mut pcs = Vec::new();
    pcs.extend(width.to_be_bytes());
    pcs.extend(height.to_be_bytes());
    pcs.push(0x10);
    pcs.extend(number.to_be_bytes());
    pcs.extend([state, 0, 0, objects]);
    pcs
}

/// Appends one segment: magic, PTS, DTS (0), type, length, data.
fn segment(out: &mut Vec<u8>, pts: u32, kind: u8, data: &[u8]) {
    out.extend(b"PG");
    out.extend(pts.to_be_bytes());
    out.extend(0u32.to_be_bytes());
    out.push(kind);
    out.extend((data.len() as u16).to_be_bytes());
    out.extend(data);
}

/// Run-length coding of a `width`x`height` bitmap of palette entry `colour` (non-zero).
fn solid_rle(width: u16, height: u16, colour: u8) -> Vec<u8> {
    let mut line = Vec::new();
    let mut left = width;
    while left > 0 {
        let run = left.min(16_383);
        match run {
            1 => line.push(colour),
            2 => line.extend([colour, colour]),
            3..=63 => line.extend([0, 0x80 | run as u8, colour]),
            _ => line.extend([0, 0xc0 | (run >> 8) as u8, run as u8, colour]),
        }
        left -= run;
    }
    line.extend([0, 0]); // end of line
    line.repeat(usize::from(height))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_coded_as_runs_and_ends_with_two_zeros() {
        assert_eq!(solid_rle(2, 1, 1), [1, 1, 0, 0]);
        assert_eq!(
            solid_rle(40, 2, 1),
            [0, 0x80 | 40, 1, 0, 0, 0, 0x80 | 40, 1, 0, 0]
        );
        assert_eq!(solid_rle(300, 1, 1), [0, 0xc1, 0x2c, 1, 0, 0]);
    }

    #[tokio::test]
    async fn ffprobe_reads_the_sup_as_pgs_with_one_subtitle_per_display_set() {
        let dir = tempfile::tempdir().unwrap();
        let sup = dir.path().join("rects.sup");
        let rect = |start: u64, x: u16| PgsRect {
            start: Duration::from_millis(start),
            end: Duration::from_millis(start + 1500),
            x,
            y: 100,
            width: 64,
            height: 32,
            ycrcb: (235, 128, 128),
        };
        write_sup(&sup, 320, 180, &[rect(500, 20), rect(3000, 200)]).unwrap();
        let out = tokio::process::Command::new("ffprobe")
            .args(["-v", "error", "-show_entries"])
            .args([
                "stream=codec_name:subtitle=pts_time,num_rects",
                "-of",
                "csv=p=0",
            ])
            .arg(&sup)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("hdmv_pgs_subtitle"), "{text}");
        // Two shown (one rectangle each), two cleared (none): four decoded subtitles.
        let events: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains("pgs") && !l.trim().is_empty())
            .collect();
        assert_eq!(
            events,
            ["0.500000,1", "2.000000,0", "3.000000,1", "4.500000,0"],
            "{text}"
        );
    }

    #[test]
    fn each_rectangle_is_a_showing_and_a_clearing_display_set() {
        let rect = PgsRect {
            start: Duration::from_secs(1),
            end: Duration::from_secs(2),
            x: 10,
            y: 20,
            width: 30,
            height: 4,
            ycrcb: (235, 128, 128),
        };
        let bytes = sup_bytes(320, 180, &[rect]);
        // Walk the segments: types in order, PTS at 90 kHz.
        let mut kinds = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            assert_eq!(&bytes[at..at + 2], b"PG");
            let pts = u32::from_be_bytes(bytes[at + 2..at + 6].try_into().unwrap());
            let kind = bytes[at + 10];
            let len = usize::from(u16::from_be_bytes([bytes[at + 11], bytes[at + 12]]));
            kinds.push((kind, pts));
            at += 13 + len;
        }
        assert_eq!(at, bytes.len());
        assert_eq!(
            kinds,
            [
                (PCS, 90_000),
                (WDS, 90_000),
                (PDS, 90_000),
                (ODS, 90_000),
                (END, 90_000),
                (PCS, 180_000),
                (WDS, 180_000),
                (END, 180_000)
            ]
        );
    }
}
