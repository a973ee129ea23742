//! The ffmpeg command of one run: a process that writes chunks of one output from a given
//! segment onward. Pure: argument lists only, so unit tests pin them for every hardware path.
//!
//! The shape (see `shared/transcoding.md`):
//! - `-copyts` keeps source timestamps; `-max_delay 5000000` makes the MPEG-TS muxer add a
//!   constant 10 s ([`super::HLS_MPEGTS_OFFSET_90K`]); no run shifts anything, so chunk k has
//!   the same timestamps whichever run wrote it and no `EXT-X-DISCONTINUITY` is needed;
//! - video: `fps` puts frames on exact frame numbers, `trim=start_pts` starts the run on the
//!   boundary frame, keyframes are forced on an absolute list of boundary times (and `-g`
//!   keeps the encoder from adding its own), B-frames are off so a keyframe's decode time is
//!   its presentation time and audio splits exactly there;
//! - audio: the run seeks about half a second early (pre-roll) with the start aligned to the
//!   encoder's frame grid, `aresample` stamps samples from that aligned start, and packets
//!   before the segment boundary are dropped (`noise` bsf): the encoder is warm at the
//!   boundary and frame times match the unbroken run's, so the splice has no gap and no
//!   priming click; copied audio next to encoded video is trimmed at the boundary the same way
//!   (the demuxer's seek lands up to a GOP early and ffmpeg keeps those copied packets);
//! - the hls muxer cuts at every keyframe (`hls_time` far below a segment), writing one chunk
//!   per keyframe, numbered from the run's first chunk.

use std::ffi::OsString;
use std::path::Path;

use ephyra_config::HwAccelKind;

use super::grid::Grid;
use super::request::{AudioOut, Container, OutputSpec, VideoCodec, VideoOut};
use crate::scan::probe::prefixed_file_arg;

/// Seconds of audio decoded and encoded before a run's first boundary, then dropped.
pub const AUDIO_PREROLL_SECONDS: f64 = 0.5;

/// Seconds a run burning in a bitmap subtitle seeks before its first boundary. A PGS or
/// VobSub event is one packet at its start; a run whose input seek lands after that packet
/// never shows the event, so a cold segment would lack a subtitle the unbroken run shows.
/// Subtitle events rarely last longer (Netflix's limit is 7 s); the frames decoded in between
/// are dropped by `trim` and cost a cold start about this much video decoding.
pub const BITMAP_SUBTITLE_PREROLL_SECONDS: f64 = 8.0;

/// The hardware path a run encodes with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HwPath {
    /// The API.
    pub kind: HwAccelKind,
    /// The render node (VAAPI/QSV) or the CUDA device number (NVENC).
    pub device: Option<String>,
}

impl HwPath {
    /// Software encoding.
    pub fn software() -> HwPath {
        HwPath {
            kind: HwAccelKind::None,
            device: None,
        }
    }

    /// The path a run of `spec` takes on a replica whose path is `self`: software when a
    /// text subtitle is burned in. libass draws text in software only, and Jellyfin's way of
    /// overlaying it on the GPU starts from a transparent canvas (`alphasrc`) that only its
    /// own ffmpeg build has; a software run keeps the subtitle (a GPU run would lose it) and
    /// the same segment grid, so segments from either path join in one playlist.
    pub fn for_output(self, spec: &crate::transcode::request::OutputSpec) -> HwPath {
        let text_burn_in = spec.burn_in.as_ref().is_some_and(|b| !b.bitmap);
        if text_burn_in && self.kind != HwAccelKind::None {
            HwPath::software()
        } else {
            self
        }
    }

    /// The name reported in metrics and `/System/Info`.
    pub fn name(&self) -> &'static str {
        match self.kind {
            HwAccelKind::None => "software",
            HwAccelKind::Vaapi => "vaapi",
            HwAccelKind::Qsv => "qsv",
            HwAccelKind::Nvenc => "nvenc",
        }
    }

    fn render_node(&self) -> &str {
        self.device.as_deref().unwrap_or("/dev/dri/renderD128")
    }

    /// Device set-up, before the input.
    pub fn init_args(&self) -> Vec<String> {
        let node = self.render_node();
        match self.kind {
            HwAccelKind::None => vec![],
            HwAccelKind::Vaapi => strings(&[
                "-init_hw_device",
                &format!("vaapi=va:{node}"),
                "-filter_hw_device",
                "va",
            ]),
            HwAccelKind::Qsv => strings(&[
                "-init_hw_device",
                &format!("vaapi=va:{node}"),
                "-init_hw_device",
                "qsv=qs@va",
                "-filter_hw_device",
                "qs",
            ]),
            HwAccelKind::Nvenc => strings(&[
                "-init_hw_device",
                &format!("cuda=cu:{}", self.device.as_deref().unwrap_or("0")),
                "-filter_hw_device",
                "cu",
            ]),
        }
    }

    /// Hardware decoding, before the input (only when the video is encoded).
    pub fn decode_args(&self) -> Vec<String> {
        match self.kind {
            HwAccelKind::None => vec![],
            HwAccelKind::Vaapi | HwAccelKind::Qsv => strings(&[
                "-hwaccel",
                "vaapi",
                "-hwaccel_output_format",
                "vaapi",
                "-hwaccel_device",
                "va",
                "-noautorotate",
            ]),
            HwAccelKind::Nvenc => strings(&[
                "-hwaccel",
                "cuda",
                "-hwaccel_output_format",
                "cuda",
                "-hwaccel_device",
                "cu",
                "-noautorotate",
            ]),
        }
    }

    /// Scaling (and HDR to SDR tone-mapping where the path has it) after `fps,trim`.
    pub fn scale_filter(&self, width: u32, height: u32, ten_bit_source: bool) -> String {
        match self.kind {
            HwAccelKind::None => format!("scale={width}:{height},format=yuv420p"),
            HwAccelKind::Vaapi => {
                let tonemap = if ten_bit_source {
                    ",tonemap_vaapi=format=nv12:t=bt709:m=bt709:p=bt709"
                } else {
                    ""
                };
                format!("scale_vaapi=w={width}:h={height}:format=nv12:extra_hw_frames=24{tonemap}")
            }
            HwAccelKind::Qsv => {
                let tonemap = if ten_bit_source {
                    ",tonemap_vaapi=format=nv12:t=bt709:m=bt709:p=bt709"
                } else {
                    ""
                };
                format!(
                    "scale_vaapi=w={width}:h={height}:format=nv12:extra_hw_frames=24{tonemap},\
                     hwmap=derive_device=qsv,format=qsv"
                )
            }
            // Upstream ffmpeg has no CUDA tone-mapper (jellyfin-ffmpeg's `tonemap_cuda`);
            // 10-bit sources are converted to 8-bit 4:2:0 by the scaler.
            HwAccelKind::Nvenc => format!("scale_cuda=w={width}:h={height}:format=yuv420p"),
        }
    }

    /// A bitmap subtitle's chain and the overlay that puts it on the scaled video, as
    /// Jellyfin's filter chains do (`GetSwVidFilterChain`, `GetIntelVaapiFullVidFiltersPrefered`,
    /// `GetIntelQsvVaapiVidFiltersPrefered`, `GetNvidiaVidFiltersPrefered`): the subtitle
    /// canvas (the source's size, ffmpeg's sub2video) is scaled in software to the output size,
    /// then overlaid in software or uploaded and overlaid on the GPU where the video already is.
    /// `eof_action=pass` keeps the video flowing after the last subtitle; `repeatlast=0` stops
    /// a cleared subtitle from lingering.
    pub fn bitmap_overlay(&self, width: u32, height: u32) -> (String, String) {
        let scaled = format!("scale={width}:{height}:flags=fast_bilinear");
        let sync = "eof_action=pass:repeatlast=0";
        match self.kind {
            HwAccelKind::None => (scaled, format!("overlay={sync}")),
            HwAccelKind::Vaapi => (
                format!("{scaled},format=bgra,hwupload=derive_device=vaapi"),
                format!("overlay_vaapi={sync}:w={width}:h={height}"),
            ),
            HwAccelKind::Qsv => (
                format!("{scaled},format=bgra,hwupload=derive_device=qsv:extra_hw_frames=64"),
                format!("overlay_qsv={sync}:w={width}:h={height}"),
            ),
            HwAccelKind::Nvenc => (
                format!("{scaled},format=yuva420p,hwupload=derive_device=cuda"),
                format!("overlay_cuda={sync}"),
            ),
        }
    }

    /// The encoder and its rate control; `gop` frames between keyframes.
    pub fn encoder_args(&self, codec: VideoCodec, bitrate: u64, gop: u64) -> Vec<String> {
        let b = bitrate.to_string();
        let buf = (bitrate * 2).to_string();
        let g = gop.to_string();
        let mut args = match (self.kind, codec) {
            (HwAccelKind::None, VideoCodec::H264) => strings(&[
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-profile:v",
                "high",
            ]),
            (HwAccelKind::None, VideoCodec::Hevc) => {
                strings(&["-c:v", "libx265", "-preset", "veryfast", "-tag:v", "hvc1"])
            }
            (HwAccelKind::Vaapi, c) => strings(&[
                "-c:v",
                if c == VideoCodec::H264 {
                    "h264_vaapi"
                } else {
                    "hevc_vaapi"
                },
                "-rc_mode",
                "VBR",
            ]),
            (HwAccelKind::Qsv, c) => strings(&[
                "-c:v",
                if c == VideoCodec::H264 {
                    "h264_qsv"
                } else {
                    "hevc_qsv"
                },
                "-preset",
                "veryfast",
                "-mbbrc",
                "1",
                "-forced_idr",
                "1",
            ]),
            (HwAccelKind::Nvenc, c) => strings(&[
                "-c:v",
                if c == VideoCodec::H264 {
                    "h264_nvenc"
                } else {
                    "hevc_nvenc"
                },
                "-preset",
                "p1",
                "-forced-idr",
                "1",
            ]),
        };
        args.extend(strings(&[
            "-b:v", &b, "-maxrate", &b, "-bufsize", &buf, "-bf", "0",
        ]));
        match self.kind {
            // Forced keyframes are honoured; a long GOP keeps the encoder from adding others.
            HwAccelKind::None => {
                let long = (gop * 2 + 1).to_string();
                args.extend(strings(&[
                    "-g",
                    &long,
                    "-keyint_min",
                    &long,
                    "-sc_threshold",
                    "0",
                ]));
            }
            HwAccelKind::Vaapi => {
                let long = (gop * 2 + 1).to_string();
                args.extend(strings(&["-g", &long]));
            }
            // Jellyfin: these "cannot force key frames" reliably, so the GOP is exactly one
            // segment and starts on the run's first (boundary) frame; the list is given too.
            HwAccelKind::Qsv | HwAccelKind::Nvenc => {
                args.extend(strings(&["-g", &g, "-keyint_min", &g]));
            }
        }
        args
    }
}

fn strings(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| (*s).to_owned()).collect()
}

/// Formats seconds for ffmpeg, to the microsecond.
fn secs(t: f64) -> String {
    format!("{:.6}", t.max(0.0))
}

/// One run: which output, from which segment, written where.
#[derive(Debug)]
pub struct Run<'a> {
    /// The media file.
    pub input: &'a Path,
    /// The output.
    pub spec: &'a OutputSpec,
    /// Its grid.
    pub grid: &'a Grid,
    /// The first segment this run writes.
    pub segment: usize,
    /// The folder the run writes into.
    pub out_dir: &'a Path,
    /// The encoder path.
    pub hw: &'a HwPath,
    /// Sample rate of the source audio stream (for the pre-roll grid of copied audio).
    pub source_sample_rate: Option<u32>,
}

impl Run<'_> {
    /// The full argument list (without the program name).
    pub fn args(&self) -> Vec<OsString> {
        let spec = self.spec;
        let seg = &self.grid.segments[self.segment.min(self.grid.segments.len().saturating_sub(1))];
        let first_chunk = seg.first_chunk;
        let audio_cut = seg.audio_cut;
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |items: Vec<String>| a.extend(items.into_iter().map(OsString::from));
        push(strings(&[
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
        ]));

        // The audio pre-roll start, on the encoder's frame grid from time 0.
        let (audio_start, audio_start_samples) = match &spec.audio {
            Some((
                _,
                AudioOut::Encode {
                    codec, sample_rate, ..
                },
            )) => {
                let frame = codec.frame_samples();
                let rate = f64::from(*sample_rate);
                let preroll = if spec.encodes_video() {
                    AUDIO_PREROLL_SECONDS
                } else {
                    0.0
                };
                let frames = if self.segment == 0 {
                    (self.grid.origin * rate / frame as f64).floor()
                } else {
                    ((seg.start - preroll) * rate / frame as f64).floor()
                };
                let samples = frames.max(0.0) as u64 * frame;
                (samples as f64 / rate, Some(samples))
            }
            _ => (seg.start, None),
        };
        let encodes = spec.encodes_video();
        // A copied video must begin exactly on the boundary keyframe: the input seek lands on
        // it (ffmpeg 5.1's `noise` bsf sees copied packets in the muxer's time base, not the
        // one it reports, so it cannot trim them). Encoded audio then has no pre-roll.
        // A bitmap subtitle burned into encoded video needs a second input to the video's
        // filters: a `-filter_complex` graph whose output is mapped instead of `0:v:0`.
        let overlay = match (&spec.video, &spec.burn_in) {
            (VideoOut::Encode { .. }, Some(burn)) if burn.bitmap => Some(burn.subtitle_position),
            _ => None,
        };
        let seek = if encodes {
            let subtitle_preroll = if overlay.is_some() {
                BITMAP_SUBTITLE_PREROLL_SECONDS
            } else {
                0.25
            };
            audio_start.min(seg.start - subtitle_preroll)
        } else {
            seg.start - 0.0005
        };
        if encodes {
            push(self.hw.init_args());
            push(self.hw.decode_args());
        }
        if self.segment > 0 {
            push(vec!["-ss".into(), secs(seek)]);
        }
        push(strings(&["-copyts"]));
        if !encodes {
            push(strings(&["-fflags", "+genpts"]));
        }
        a.push("-i".into());
        a.push(prefixed_file_arg(self.input));

        let mut push = |items: Vec<String>| a.extend(items.into_iter().map(OsString::from));
        push(strings(&["-map_metadata", "-1", "-map_chapters", "-1"]));
        match &spec.video {
            VideoOut::Copy => {
                push(strings(&["-map", "0:v:0"]));
                if let Some((index, _)) = &spec.audio {
                    push(vec!["-map".into(), format!("0:{index}")]);
                }
                push(strings(&["-c:v", "copy"]));
            }
            VideoOut::Encode {
                codec,
                width,
                height,
                bitrate,
                ten_bit_source,
            } => {
                let rate = self.grid.frame_rate;
                let mut filters = format!(
                    "fps={}/{},trim=start_pts={}",
                    rate.num,
                    rate.den,
                    self.grid.start_frame(self.segment)
                );
                // `for_output` made a text burn-in a software run.
                if let Some(burn) = &spec.burn_in
                    && !burn.bitmap
                {
                    filters.push_str(&format!(
                        ",subtitles=f='{}':si={}",
                        filter_escape(self.input),
                        burn.subtitle_position
                    ));
                }
                filters.push(',');
                filters.push_str(&self.hw.scale_filter(*width, *height, *ten_bit_source));
                let video_filters = match overlay {
                    // The subtitle joins after `fps,trim`: the overlay's frames are the main
                    // input's, so the grid (frame numbers, keyframes, timestamps) is the same
                    // as without a subtitle, in an unbroken run and a cold one alike.
                    Some(position) => {
                        let (sub, over) = self.hw.bitmap_overlay(*width, *height);
                        push(vec!["-map".into(), "[v]".into()]);
                        vec![
                            "-filter_complex".into(),
                            format!(
                                "[0:v:0]{filters}[main];[0:s:{position}]{sub}[sub];\
                                 [main][sub]{over}[v]"
                            ),
                        ]
                    }
                    None => {
                        push(vec!["-map".into(), "0:v:0".into()]);
                        vec!["-vf".into(), filters]
                    }
                };
                if let Some((index, _)) = &spec.audio {
                    push(vec!["-map".into(), format!("0:{index}")]);
                }
                push(video_filters);
                push(
                    self.hw
                        .encoder_args(*codec, *bitrate, self.grid.frames_per_segment),
                );
                let keyframes = self.grid.forced_keyframes(self.segment);
                if !keyframes.is_empty() {
                    let list: Vec<String> = keyframes.iter().map(|t| secs(*t)).collect();
                    push(vec!["-force_key_frames:v".into(), list.join(",")]);
                }
            }
        }
        if let Some((_, audio)) = &spec.audio {
            match audio {
                AudioOut::Copy => push(strings(&["-c:a", "copy"])),
                AudioOut::Encode {
                    codec,
                    channels,
                    bitrate,
                    sample_rate,
                } => {
                    push(vec![
                        "-c:a".into(),
                        codec.encoder().into(),
                        "-ac".into(),
                        channels.to_string(),
                        "-ar".into(),
                        sample_rate.to_string(),
                        "-b:a".into(),
                        bitrate.to_string(),
                        "-af".into(),
                        format!(
                            "aresample={sample_rate}:async=1:min_hard_comp=0.005:first_pts={}",
                            audio_start_samples.unwrap_or(0)
                        ),
                    ]);
                }
            }
            // Audio before the boundary belongs to the previous segment, a hair below it so a
            // packet exactly on it stays (the muxer puts it after the keyframe). Copied audio
            // needs it too: with `-copyts` ffmpeg 5.1 keeps copied packets from the keyframe
            // the demuxer seeked to (up to a GOP, ~2 s, before the boundary), since
            // `-copypriorss` defaults to "keep"; a cold segment then began with them. A copied
            // video is cut by the input seek itself (see `seek` above).
            if matches!(audio, AudioOut::Encode { .. }) || encodes {
                push(vec![
                    "-bsf:a".into(),
                    format!("noise=drop=lt(pts*tb\\,{})", secs(audio_cut - 0.000_001)),
                ]);
            }
        }
        let ext = spec.container.extension();
        push(strings(&[
            "-avoid_negative_ts",
            "disabled",
            "-max_muxing_queue_size",
            "2048",
            "-max_delay",
            "5000000",
            "-f",
            "hls",
            "-hls_time",
            "0.05",
            "-hls_flags",
            "temp_file",
            "-hls_playlist_type",
            "vod",
            "-hls_list_size",
            "0",
            "-start_number",
            &first_chunk.to_string(),
        ]));
        if spec.container == Container::Mp4 {
            push(strings(&[
                "-hls_segment_type",
                "fmp4",
                "-hls_fmp4_init_filename",
                "init.mp4",
                "-hls_segment_options",
                "movflags=+frag_discont",
            ]));
        } else {
            push(strings(&["-hls_segment_type", "mpegts"]));
        }
        a.push("-hls_segment_filename".into());
        a.push(self.out_dir.join(format!("%d.{ext}")).into_os_string());
        a.push(self.out_dir.join("run.m3u8").into_os_string());
        a
    }
}

/// Escapes a path for a filter argument inside single quotes.
fn filter_escape(path: &Path) -> String {
    path.to_string_lossy()
        .replace('\\', "\\\\")
        .replace('\'', "'\\\\\\''")
        .replace(':', "\\:")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcode::media::{Keyframe, MediaIndex, Rational};
    use crate::transcode::request::AudioCodec;

    fn grid() -> Grid {
        let index = MediaIndex {
            start: 0.0,
            duration: 24.0,
            frame_rate: Rational { num: 24, den: 1 },
            keyframes: vec![Keyframe { pts: 0.0, dts: 0.0 }],
        };
        Grid::transcode(&index, 6)
    }

    fn spec() -> OutputSpec {
        OutputSpec {
            container: Container::Ts,
            video: VideoOut::Encode {
                codec: VideoCodec::H264,
                width: 1280,
                height: 720,
                bitrate: 3_000_000,
                ten_bit_source: true,
            },
            audio: Some((
                1,
                AudioOut::Encode {
                    codec: AudioCodec::Aac,
                    channels: 2,
                    bitrate: 192_000,
                    sample_rate: 48_000,
                },
            )),
            burn_in: None,
            segment_seconds: 6,
        }
    }

    fn args_of(hw: HwPath, segment: usize) -> String {
        joined_args(&spec(), hw, segment)
    }

    /// A run's arguments joined by spaces, for `contains` checks.
    fn joined(run: &Run<'_>) -> String {
        run.args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The arguments of `segment`'s run of `s` on `hw`, joined by spaces.
    fn joined_args(s: &OutputSpec, hw: HwPath, segment: usize) -> String {
        let g = grid();
        let run = Run {
            input: Path::new("/m/film.mkv"),
            spec: s,
            grid: &g,
            segment,
            out_dir: Path::new("/t/x/run-2"),
            hw: &hw,
            source_sample_rate: Some(48_000),
        };
        joined(&run)
    }

    #[test]
    fn the_software_run_seeks_with_pre_roll_and_cuts_on_the_absolute_grid() {
        let cmd = args_of(HwPath::software(), 2);
        // Segment 2 starts at frame 288 = 12 s; audio from 11.5 s rounded down to whole AAC
        // frames of 1024 samples: 539 frames = 551936 samples = 11.498667 s.
        for part in [
            "-ss 11.498667 -copyts -i file:/m/film.mkv",
            "-map 0:v:0 -map 0:1",
            "-vf fps=24/1,trim=start_pts=288,scale=1280:720,format=yuv420p",
            "-c:v libx264 -preset veryfast -profile:v high -b:v 3000000 -maxrate 3000000 -bufsize 6000000 -bf 0 -g 289 -keyint_min 289 -sc_threshold 0",
            "-force_key_frames:v 17.979167",
            "-c:a aac -ac 2 -ar 48000 -b:a 192000 -af aresample=48000:async=1:min_hard_comp=0.005:first_pts=551936",
            "-bsf:a noise=drop=lt(pts*tb\\,11.999999)",
            "-max_delay 5000000 -f hls -hls_time 0.05 -hls_flags temp_file",
            "-start_number 2 -hls_segment_type mpegts -hls_segment_filename /t/x/run-2/%d.ts /t/x/run-2/run.m3u8",
        ] {
            assert!(cmd.contains(part), "`{part}` missing from\n{cmd}");
        }
        assert!(!cmd.contains("-hwaccel"));
        // The first run starts at the beginning without seeking.
        assert!(!args_of(HwPath::software(), 0).contains("-ss"));
    }

    #[test]
    fn the_vaapi_run_decodes_scales_tone_maps_and_encodes_on_the_gpu() {
        let hw = HwPath {
            kind: HwAccelKind::Vaapi,
            device: Some("/dev/dri/renderD129".to_owned()),
        };
        let cmd = args_of(hw, 1);
        for part in [
            "-init_hw_device vaapi=va:/dev/dri/renderD129 -filter_hw_device va -hwaccel vaapi -hwaccel_output_format vaapi -hwaccel_device va -noautorotate -ss",
            "-vf fps=24/1,trim=start_pts=144,scale_vaapi=w=1280:h=720:format=nv12:extra_hw_frames=24,tonemap_vaapi=format=nv12:t=bt709:m=bt709:p=bt709 ",
            "-c:v h264_vaapi -rc_mode VBR -b:v 3000000 -maxrate 3000000 -bufsize 6000000 -bf 0 -g 289 -force_key_frames:v 11.979167,17.979167",
        ] {
            assert!(cmd.contains(part), "`{part}` missing from\n{cmd}");
        }
    }

    #[test]
    fn the_qsv_run_maps_vaapi_frames_to_qsv_and_fixes_the_gop() {
        let hw = HwPath {
            kind: HwAccelKind::Qsv,
            device: None,
        };
        let cmd = args_of(hw, 1);
        for part in [
            "-init_hw_device vaapi=va:/dev/dri/renderD128 -init_hw_device qsv=qs@va -filter_hw_device qs -hwaccel vaapi",
            "scale_vaapi=w=1280:h=720:format=nv12:extra_hw_frames=24,tonemap_vaapi=format=nv12:t=bt709:m=bt709:p=bt709,hwmap=derive_device=qsv,format=qsv ",
            "-c:v h264_qsv -preset veryfast -mbbrc 1 -forced_idr 1 -b:v 3000000 -maxrate 3000000 -bufsize 6000000 -bf 0 -g 144 -keyint_min 144 -force_key_frames:v",
        ] {
            assert!(cmd.contains(part), "`{part}` missing from\n{cmd}");
        }
    }

    #[test]
    fn the_nvenc_run_uses_cuda_frames_end_to_end() {
        let hw = HwPath {
            kind: HwAccelKind::Nvenc,
            device: None,
        };
        let cmd = args_of(hw, 1);
        for part in [
            "-init_hw_device cuda=cu:0 -filter_hw_device cu -hwaccel cuda -hwaccel_output_format cuda -hwaccel_device cu",
            "trim=start_pts=144,scale_cuda=w=1280:h=720:format=yuv420p ",
            "-c:v h264_nvenc -preset p1 -forced-idr 1 -b:v 3000000 -maxrate 3000000 -bufsize 6000000 -bf 0 -g 144 -keyint_min 144",
        ] {
            assert!(cmd.contains(part), "`{part}` missing from\n{cmd}");
        }
    }

    /// The arguments of segment 2 with the second subtitle stream (a PGS one) burned in.
    fn bitmap_args(kind: HwAccelKind) -> String {
        let mut s = spec();
        s.burn_in = Some(crate::transcode::request::BurnIn {
            subtitle_position: 1,
            stream_index: 3,
            bitmap: true,
        });
        joined_args(&s, HwPath { kind, device: None }, 2)
    }

    #[test]
    fn a_bitmap_subtitle_is_overlaid_after_the_grid_filters_in_software() {
        let cmd = bitmap_args(HwAccelKind::None);
        for part in [
            "-map [v] -map 0:1 -filter_complex [0:v:0]fps=24/1,trim=start_pts=288,scale=1280:720,format=yuv420p[main];\
             [0:s:1]scale=1280:720:flags=fast_bilinear[sub];\
             [main][sub]overlay=eof_action=pass:repeatlast=0[v] -c:v libx264",
            // The seek goes back far enough to read a subtitle event shown at the boundary;
            // the keyframe list and the audio (from 11.498667 s, trimmed at 12 s) are those
            // of the plain run.
            "-ss 4.000000 -copyts -i file:/m/film.mkv",
            "aresample=48000:async=1:min_hard_comp=0.005:first_pts=551936",
            "-force_key_frames:v 17.979167",
            "-bsf:a noise=drop=lt(pts*tb\\,11.999999)",
        ] {
            assert!(cmd.contains(part), "`{part}` missing from\n{cmd}");
        }
        assert!(!cmd.contains("-vf") && !cmd.contains("0:v:0 -map"), "{cmd}");
    }

    #[test]
    fn a_text_subtitle_burned_in_on_a_gpu_replica_is_drawn_by_a_software_run() {
        let mut s = spec();
        s.burn_in = Some(crate::transcode::request::BurnIn {
            subtitle_position: 0,
            stream_index: 2,
            bitmap: false,
        });
        let software = joined_args(&s, HwPath::software(), 2);
        for kind in [HwAccelKind::Vaapi, HwAccelKind::Qsv, HwAccelKind::Nvenc] {
            let gpu = HwPath { kind, device: None };
            assert_eq!(
                gpu.clone().for_output(&s).kind,
                HwAccelKind::None,
                "{kind:?}"
            );
            let cmd = joined_args(&s, gpu.for_output(&s), 2);
            assert_eq!(cmd, software, "{kind:?}");
        }
        assert!(
            software.contains(
                "-vf fps=24/1,trim=start_pts=288,subtitles=f='/m/film.mkv':si=0,scale=1280:720"
            ),
            "{software}"
        );
        assert!(software.contains("-c:v libx264"), "{software}");
        // Bitmap subtitles and plain transcodes keep the GPU.
        let mut bitmap = spec();
        bitmap.burn_in = Some(crate::transcode::request::BurnIn {
            subtitle_position: 1,
            stream_index: 3,
            bitmap: true,
        });
        for plain in [spec(), bitmap] {
            let path = HwPath {
                kind: HwAccelKind::Qsv,
                device: None,
            }
            .for_output(&plain);
            assert_eq!(path.kind, HwAccelKind::Qsv);
        }
    }

    #[test]
    fn gpu_paths_upload_the_scaled_subtitle_and_overlay_it_on_the_device() {
        for (kind, sub, overlay) in [
            (
                HwAccelKind::Vaapi,
                "[0:s:1]scale=1280:720:flags=fast_bilinear,format=bgra,hwupload=derive_device=vaapi[sub]",
                "[main][sub]overlay_vaapi=eof_action=pass:repeatlast=0:w=1280:h=720[v]",
            ),
            (
                HwAccelKind::Qsv,
                "[0:s:1]scale=1280:720:flags=fast_bilinear,format=bgra,hwupload=derive_device=qsv:extra_hw_frames=64[sub]",
                "[main][sub]overlay_qsv=eof_action=pass:repeatlast=0:w=1280:h=720[v]",
            ),
            (
                HwAccelKind::Nvenc,
                "[0:s:1]scale=1280:720:flags=fast_bilinear,format=yuva420p,hwupload=derive_device=cuda[sub]",
                "[main][sub]overlay_cuda=eof_action=pass:repeatlast=0[v]",
            ),
        ] {
            let cmd = bitmap_args(kind);
            let main = format!(
                "[0:v:0]fps=24/1,trim=start_pts=288,{}[main];",
                HwPath { kind, device: None }.scale_filter(1280, 720, true)
            );
            for part in [
                main.as_str(),
                sub,
                overlay,
                "-map [v] -map 0:1 -filter_complex",
            ] {
                assert!(cmd.contains(part), "{kind:?}: `{part}` missing from\n{cmd}");
            }
        }
    }

    #[test]
    fn copied_audio_next_to_encoded_video_is_trimmed_at_the_boundary() {
        let (g, mut s) = (grid(), spec());
        s.audio = Some((1, AudioOut::Copy));
        let hw = HwPath::software();
        let run = Run {
            input: Path::new("/m/film.mkv"),
            spec: &s,
            grid: &g,
            segment: 2,
            out_dir: Path::new("/t/x/run-2"),
            hw: &hw,
            source_sample_rate: Some(48_000),
        };
        let cmd = joined(&run);
        // Without the trim, the packets from the keyframe the demuxer lands on (up to a GOP
        // before 12 s) would open the cold segment.
        for part in [
            "-ss 11.750000 -copyts -i",
            "-c:a copy -bsf:a noise=drop=lt(pts*tb\\,11.999999) -avoid_negative_ts",
        ] {
            assert!(cmd.contains(part), "`{part}` missing from\n{cmd}");
        }
    }

    #[test]
    fn a_remux_copies_video_from_the_boundary_keyframe_into_fmp4() {
        let index = MediaIndex {
            start: 0.0,
            duration: 12.0,
            frame_rate: Rational { num: 24, den: 1 },
            keyframes: (0..6)
                .map(|i| Keyframe {
                    pts: f64::from(i) * 2.0,
                    dts: f64::from(i) * 2.0 - 0.083,
                })
                .collect(),
        };
        let grid = Grid::remux(&index, 6);
        let mut s = spec();
        s.video = VideoOut::Copy;
        s.audio = Some((1, AudioOut::Copy));
        s.container = Container::Mp4;
        let hw = HwPath::software();
        let run = Run {
            input: Path::new("/m/a.mkv"),
            spec: &s,
            grid: &grid,
            segment: 1,
            out_dir: Path::new("/t/y"),
            hw: &hw,
            source_sample_rate: Some(48_000),
        };
        let cmd = joined(&run);
        for part in [
            "-ss 5.999500 -copyts -fflags +genpts -i file:/m/a.mkv",
            // The input seek cuts copied video and audio alike: no trim.
            "-c:v copy -c:a copy -avoid_negative_ts",
            "-start_number 3 -hls_segment_type fmp4 -hls_fmp4_init_filename init.mp4",
        ] {
            assert!(cmd.contains(part), "`{part}` missing from\n{cmd}");
        }
    }
}
