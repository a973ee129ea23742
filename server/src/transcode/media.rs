//! What the grid needs to know about a media file, computed once per file with ffprobe and
//! kept in the database (`media_index`, migration 0004) so every replica cuts the same
//! segments: the video frame rate as an exact fraction, the start time, the duration and every
//! video keyframe's presentation and decode time.
//!
//! Reading keyframes means reading every packet header of the file once; that is the price of
//! a playlist every replica agrees on. Nothing here decides how a stream is encoded.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncBufReadExt;

use crate::scan::probe::prefixed_file_arg;

/// A frame rate as an exact fraction (`24000/1001`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rational {
    /// Numerator.
    pub num: u64,
    /// Denominator (never 0).
    pub den: u64,
}

impl Rational {
    /// The value as a float.
    pub fn as_f64(self) -> f64 {
        self.num as f64 / self.den.max(1) as f64
    }

    /// Parses ffprobe's `num/den`; `None` for 0/0 and rates no video has.
    pub fn parse(text: &str) -> Option<Rational> {
        let (num, den) = text.trim().split_once('/')?;
        let r = Rational {
            num: num.parse().ok()?,
            den: den.parse().ok()?,
        };
        (r.num > 0 && r.den > 0 && (1.0..=240.0).contains(&r.as_f64())).then_some(r)
    }
}

/// One video keyframe.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Keyframe {
    /// Presentation time, seconds.
    pub pts: f64,
    /// Decode time, seconds.
    pub dts: f64,
}

/// The facts about one file the grid is computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaIndex {
    /// The container's start time, seconds.
    pub start: f64,
    /// The container's duration, seconds.
    pub duration: f64,
    /// The first video stream's frame rate.
    pub frame_rate: Rational,
    /// Every keyframe of the first video stream, in presentation order.
    pub keyframes: Vec<Keyframe>,
}

/// Why a file could not be indexed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// ffprobe could not be started or read.
    #[error("cannot run ffprobe")]
    Spawn(#[source] std::io::Error),
    /// ffprobe ran longer than allowed.
    #[error("ffprobe did not finish within {0:?}")]
    Timeout(Duration),
    /// ffprobe failed or printed something unexpected.
    #[error("ffprobe cannot read the file: {0}")]
    Unreadable(String),
}

/// Indexes `file` with ffprobe: container facts, then every packet header of the first video
/// stream (only keyframes are kept, so memory stays small).
pub async fn index_file(
    ffprobe: &Path,
    file: &Path,
    timeout: Duration,
) -> Result<MediaIndex, IndexError> {
    tokio::time::timeout(timeout, index_inner(ffprobe, file))
        .await
        .map_err(|_| IndexError::Timeout(timeout))?
}

async fn index_inner(ffprobe: &Path, file: &Path) -> Result<MediaIndex, IndexError> {
    #[derive(Deserialize)]
    struct Out {
        #[serde(default)]
        streams: Vec<S>,
        format: Option<F>,
    }
    #[derive(Deserialize)]
    struct S {
        r_frame_rate: Option<String>,
        avg_frame_rate: Option<String>,
    }
    #[derive(Deserialize)]
    struct F {
        start_time: Option<String>,
        duration: Option<String>,
    }
    let output = tokio::process::Command::new(ffprobe)
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .arg("stream=r_frame_rate,avg_frame_rate:format=start_time,duration")
        .args(["-of", "json"])
        .arg(prefixed_file_arg(file))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(IndexError::Spawn)?;
    if !output.status.success() {
        return Err(IndexError::Unreadable(last_line(&output.stderr)));
    }
    let out: Out = serde_json::from_slice(&output.stdout)
        .map_err(|e| IndexError::Unreadable(e.to_string()))?;
    let stream = out
        .streams
        .first()
        .ok_or_else(|| IndexError::Unreadable("no video stream".to_owned()))?;
    let frame_rate = stream
        .r_frame_rate
        .as_deref()
        .and_then(Rational::parse)
        .or_else(|| stream.avg_frame_rate.as_deref().and_then(Rational::parse))
        .unwrap_or(Rational { num: 25, den: 1 });
    let format = out
        .format
        .ok_or_else(|| IndexError::Unreadable("no format".to_owned()))?;
    let number = |v: Option<String>| {
        v.and_then(|s| s.parse::<f64>().ok())
            .filter(|v| v.is_finite())
    };
    let start = number(format.start_time).unwrap_or(0.0).max(0.0);
    let duration = number(format.duration)
        .filter(|d| *d > 0.0)
        .ok_or_else(|| IndexError::Unreadable("no duration".to_owned()))?;

    let mut child = tokio::process::Command::new(ffprobe)
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .arg("packet=pts_time,dts_time,flags")
        .args(["-of", "csv=p=0"])
        .arg(prefixed_file_arg(file))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(IndexError::Spawn)?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| IndexError::Unreadable("no output".to_owned()))?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut keyframes = Vec::new();
    while let Some(line) = lines.next_line().await.map_err(IndexError::Spawn)? {
        if let Some(kf) = parse_packet_line(&line) {
            keyframes.push(kf);
        }
    }
    let status = child.wait().await.map_err(IndexError::Spawn)?;
    if !status.success() {
        return Err(IndexError::Unreadable("packet listing failed".to_owned()));
    }
    keyframes.sort_by(|a, b| a.pts.total_cmp(&b.pts));
    keyframes.dedup_by(|a, b| (a.pts - b.pts).abs() < 1e-6);
    if keyframes.is_empty() {
        return Err(IndexError::Unreadable("no video keyframes".to_owned()));
    }
    Ok(MediaIndex {
        start,
        duration,
        frame_rate,
        keyframes,
    })
}

/// A keyframe from one `pts_time,dts_time,flags` line; other packets give `None`.
fn parse_packet_line(line: &str) -> Option<Keyframe> {
    let mut fields = line.split(',');
    let pts = fields.next()?.trim().parse::<f64>().ok()?;
    let dts = fields.next()?.trim().parse::<f64>().unwrap_or(pts);
    let flags = fields.next()?;
    flags.starts_with('K').then_some(Keyframe { pts, dts })
}

fn last_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .last()
        .unwrap_or("no message")
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_rates_parse_exactly_and_nonsense_is_refused() {
        assert_eq!(
            Rational::parse("24000/1001"),
            Some(Rational {
                num: 24000,
                den: 1001
            })
        );
        assert_eq!(Rational::parse("0/0"), None);
        assert_eq!(Rational::parse("90000/1"), None);
        assert_eq!(Rational::parse("x"), None);
    }

    #[test]
    fn only_keyframe_packet_lines_are_kept() {
        assert_eq!(
            parse_packet_line("2.002000,1.919000,K_"),
            Some(Keyframe {
                pts: 2.002,
                dts: 1.919
            })
        );
        assert_eq!(parse_packet_line("2.044000,1.961000,__"), None);
        assert_eq!(
            parse_packet_line("0.5,N/A,K__"),
            Some(Keyframe { pts: 0.5, dts: 0.5 })
        );
        assert_eq!(parse_packet_line("N/A,N/A,K_"), None);
    }
}
