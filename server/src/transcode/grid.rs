//! The segment grid: which source time span segment k covers, computed only from facts about
//! the file (its [`MediaIndex`]) and the segment length, so every replica and every ffmpeg run
//! agrees on it.
//!
//! ffmpeg's hls muxer is told to cut at *every* video keyframe (a tiny `hls_time`), so a run
//! writes one "chunk" per keyframe, numbered by the keyframe's position in the grid. A
//! segment is a range of chunks:
//! - **transcode**: keyframes are forced exactly at the segment boundaries, which are whole
//!   frame numbers `first_frame + k·F` (F frames = the segment length rounded to whole frames,
//!   so 23.976 fps never drifts); chunk k is segment k;
//! - **remux** (video copied): boundaries are the first source keyframe at or after
//!   `start + k·D` (absolute, like Jellyfin's `ComputeSegments`); a segment is the chunks of the
//!   source keyframes between two boundaries.
//!
//! Nothing here runs a process or touches a file.

use super::media::{MediaIndex, Rational};

/// 100 ns ticks per second (Jellyfin's unit).
pub const TICKS_PER_SECOND: f64 = 10_000_000.0;

/// How segments are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GridKind {
    /// Video re-encoded: boundaries every F frames, keyframes forced there.
    Transcode,
    /// Video copied: boundaries at source keyframes.
    Remux,
}

/// One segment of the playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Absolute source time where it starts (seconds; the keyframe's presentation time).
    pub start: f64,
    /// Its length in seconds.
    pub duration: f64,
    /// The first chunk of the segment.
    pub first_chunk: u32,
    /// One past its last chunk; `None` for the last segment (every chunk up to the end).
    pub end_chunk: Option<u32>,
    /// Audio packets before this time belong to the previous segment: the boundary keyframe's
    /// decode time (the muxer interleaves by decode time, video first on a tie).
    pub audio_cut: f64,
}

impl Segment {
    /// `runtimeTicks` in the segment URL.
    pub fn start_ticks(&self, origin: f64) -> i64 {
        ((self.start - origin).max(0.0) * TICKS_PER_SECOND).round() as i64
    }

    /// `actualSegmentLengthTicks` in the segment URL.
    pub fn duration_ticks(&self) -> i64 {
        (self.duration * TICKS_PER_SECOND).round() as i64
    }
}

/// Every segment of one output, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// How it was cut.
    pub kind: GridKind,
    /// The segments.
    pub segments: Vec<Segment>,
    /// For a transcode: the output frame rate and the frame number of each chunk's first frame
    /// is `first_frame + chunk·frames_per_segment`.
    pub frame_rate: Rational,
    /// Frames per segment (transcode).
    pub frames_per_segment: u64,
    /// Frame number (at `frame_rate`, counted from time 0) of the first output frame.
    pub first_frame: u64,
    /// Source time 0 of the playlist (the file's start time): `runtimeTicks` count from here.
    pub origin: f64,
    /// Keyframe times of each chunk (remux), to seek to a chunk.
    pub chunk_times: Vec<f64>,
}

impl Grid {
    /// The grid of a transcode with segments of about `segment_seconds`.
    pub fn transcode(index: &MediaIndex, segment_seconds: u32) -> Grid {
        let rate = index.frame_rate;
        let fps = rate.as_f64();
        // A whole number of frames per segment, so boundaries are exact frame numbers.
        let frames_per_segment = ((f64::from(segment_seconds) * fps).round() as u64).max(1);
        let first_frame = (index.start * fps).round().max(0.0) as u64;
        let total_frames = ((index.duration * fps).floor() as u64).max(1);
        // The tail of up to two frames is merged into the last segment: a source whose frame
        // count is one less than its duration suggests must not leave a segment that never
        // appears.
        let count = total_frames
            .saturating_sub(2)
            .div_ceil(frames_per_segment)
            .max(1);
        let end = index.start + index.duration;
        let time_of = |frame: u64| frame as f64 / fps;
        let segments = (0..count)
            .map(|k| {
                let start = time_of(first_frame + k * frames_per_segment);
                let last = k + 1 == count;
                let stop = if last {
                    end.max(start)
                } else {
                    time_of(first_frame + (k + 1) * frames_per_segment)
                };
                Segment {
                    start,
                    duration: stop - start,
                    first_chunk: k as u32,
                    end_chunk: (!last).then_some(k as u32 + 1),
                    audio_cut: start,
                }
            })
            .collect();
        Grid {
            kind: GridKind::Transcode,
            segments,
            frame_rate: rate,
            frames_per_segment,
            first_frame,
            origin: index.start,
            chunk_times: Vec::new(),
        }
    }

    /// The grid of a remux: boundaries at the first source keyframe at or after each multiple
    /// of `segment_seconds` from the first keyframe.
    pub fn remux(index: &MediaIndex, segment_seconds: u32) -> Grid {
        let keyframes = &index.keyframes;
        let step = f64::from(segment_seconds.max(1));
        let end = index.start + index.duration;
        let mut boundaries: Vec<usize> = Vec::new();
        if let Some(first) = keyframes.first() {
            boundaries.push(0);
            let mut n = 1.0;
            for (i, kf) in keyframes.iter().enumerate().skip(1) {
                // Tolerance of a millisecond: container timestamps are rounded to ms.
                if kf.pts + 0.001 >= first.pts + n * step {
                    boundaries.push(i);
                    n = ((kf.pts - first.pts) / step + 1e-9).floor() + 1.0;
                }
            }
        }
        // A last boundary closer than half a second to the end would make a sliver.
        if boundaries.len() > 1
            && let Some(&last) = boundaries.last()
            && end - keyframes[last].pts < 0.5
        {
            boundaries.pop();
        }
        let segments = boundaries
            .iter()
            .enumerate()
            .map(|(k, &b)| {
                let start = keyframes[b].pts;
                let next = boundaries.get(k + 1).copied();
                let stop = next.map_or(end.max(start), |n| keyframes[n].pts);
                Segment {
                    start,
                    duration: stop - start,
                    first_chunk: b as u32,
                    end_chunk: next.map(|n| n as u32),
                    audio_cut: keyframes[b].dts.min(start),
                }
            })
            .collect();
        Grid {
            kind: GridKind::Remux,
            segments,
            frame_rate: index.frame_rate,
            frames_per_segment: 0,
            first_frame: 0,
            origin: index.start,
            chunk_times: keyframes.iter().map(|k| k.pts).collect(),
        }
    }

    /// The longest segment, rounded up (`#EXT-X-TARGETDURATION`).
    pub fn target_duration(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| s.duration)
            .fold(1.0_f64, f64::max)
            .ceil() as u64
    }

    /// The segment holding chunk `chunk`.
    pub fn segment_of_chunk(&self, chunk: u32) -> Option<usize> {
        self.segments.iter().rposition(|s| s.first_chunk <= chunk)
    }

    /// Keyframe thresholds for a transcode run starting at segment `from`: a keyframe is
    /// forced on the first frame at or after each (half a frame before each boundary, so a
    /// timestamp rounded by the container still counts).
    pub fn forced_keyframes(&self, from: usize) -> Vec<f64> {
        let half = 0.5 / self.frame_rate.as_f64();
        self.segments
            .iter()
            .skip(from + 1)
            .map(|s| s.start - half)
            .collect()
    }

    /// The frame number the output of a transcode run starting at `segment` begins with.
    pub fn start_frame(&self, segment: usize) -> u64 {
        self.first_frame + segment as u64 * self.frames_per_segment
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcode::media::Keyframe;

    fn index(duration: f64, num: u64, den: u64, keyframes: &[f64]) -> MediaIndex {
        MediaIndex {
            start: 0.0,
            duration,
            frame_rate: Rational { num, den },
            keyframes: keyframes
                .iter()
                .map(|&t| Keyframe {
                    pts: t,
                    dts: t - 0.08,
                })
                .collect(),
        }
    }

    #[test]
    fn a_transcode_grid_at_23_976_fps_is_whole_frames_and_never_drifts() {
        let grid = Grid::transcode(&index(3600.0, 24_000, 1001, &[]), 6);
        assert_eq!(grid.frames_per_segment, 144);
        // Segment k starts at exactly k·144 frames: 6.006 s each, for the whole hour.
        let k = 500;
        let expected = (k * 144) as f64 * 1001.0 / 24_000.0;
        assert!((grid.segments[k].start - expected).abs() < 1e-9);
        assert_eq!(
            grid.segments.len(),
            (3600.0_f64 * 24_000.0 / 1001.0 / 144.0).ceil() as usize
        );
        let total: f64 = grid.segments.iter().map(|s| s.duration).sum();
        assert!((total - 3600.0).abs() < 1e-6, "{total}");
        assert_eq!(grid.segments.last().and_then(|s| s.end_chunk), None);
    }

    #[test]
    fn a_one_frame_tail_joins_the_last_segment() {
        // 12 s at 24 fps = 288 frames = 4 segments of 72; 12.04 s is one more frame.
        let grid = Grid::transcode(&index(12.04, 24, 1, &[]), 3);
        assert_eq!(grid.segments.len(), 4);
        assert!((grid.segments[3].duration - 3.04).abs() < 1e-9);
    }

    #[test]
    fn a_remux_grid_cuts_at_the_first_keyframe_on_or_after_each_multiple() {
        let kfs = [0.0, 2.0, 4.0, 6.1, 8.0, 10.0, 12.5, 14.0, 16.0];
        let grid = Grid::remux(&index(18.0, 24, 1, &kfs), 6);
        let starts: Vec<f64> = grid.segments.iter().map(|s| s.start).collect();
        assert_eq!(starts, vec![0.0, 6.1, 12.5]);
        let chunks: Vec<(u32, Option<u32>)> = grid
            .segments
            .iter()
            .map(|s| (s.first_chunk, s.end_chunk))
            .collect();
        assert_eq!(chunks, vec![(0, Some(3)), (3, Some(6)), (6, None)]);
        assert!((grid.segments[2].duration - 5.5).abs() < 1e-9);
        // The audio cut is the boundary keyframe's decode time.
        assert!((grid.segments[1].audio_cut - 6.02).abs() < 1e-9);
        assert_eq!(grid.segment_of_chunk(4), Some(1));
        assert_eq!(grid.target_duration(), 7);
    }

    #[test]
    fn forced_keyframes_sit_half_a_frame_before_each_later_boundary() {
        let grid = Grid::transcode(&index(12.0, 24, 1, &[]), 3);
        let kf = grid.forced_keyframes(1);
        assert_eq!(kf.len(), 2);
        assert!((kf[0] - (6.0 - 1.0 / 48.0)).abs() < 1e-9);
        assert_eq!(grid.start_frame(2), 144);
    }
}
