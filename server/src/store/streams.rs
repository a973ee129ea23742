//! The media streams of a file (video, audio, subtitle tracks) as stored and as every reader
//! sees them: ffprobe's findings mapped by the scanner, external subtitle files beside a video,
//! and what playback and transcoding decide from. Plain values: nothing here reads a file or
//! the database.

/// The kind of a stream, named as Jellyfin's `MediaStream.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamKind {
    /// A video track.
    Video,
    /// An audio track.
    Audio,
    /// A subtitle track.
    Subtitle,
    /// A cover picture stored as a video stream (`attached_pic`).
    EmbeddedImage,
    /// Anything else (data, attachments, timecodes).
    #[default]
    Data,
}

impl StreamKind {
    /// The Jellyfin `MediaStream.Type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamKind::Video => "Video",
            StreamKind::Audio => "Audio",
            StreamKind::Subtitle => "Subtitle",
            StreamKind::EmbeddedImage => "EmbeddedImage",
            StreamKind::Data => "Data",
        }
    }

    /// Parses the string [`StreamKind::as_str`] writes; unknown text is `Data`.
    pub fn from_name(name: &str) -> StreamKind {
        match name {
            "Video" => StreamKind::Video,
            "Audio" => StreamKind::Audio,
            "Subtitle" => StreamKind::Subtitle,
            "EmbeddedImage" => StreamKind::EmbeddedImage,
            _ => StreamKind::Data,
        }
    }
}

/// One stream of a file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamInfo {
    /// ffprobe's stream index, which is also Jellyfin's `MediaStream.Index`.
    pub index: i64,
    /// What the stream carries.
    pub kind: StreamKind,
    /// Codec name (`h264`, `aac`, `subrip`).
    pub codec: Option<String>,
    /// Language tag (`eng`), when set.
    pub language: Option<String>,
    /// Track title, when set.
    pub title: Option<String>,
    /// Frame width in pixels.
    pub width: Option<i64>,
    /// Frame height in pixels.
    pub height: Option<i64>,
    /// Audio channels.
    pub channels: Option<i64>,
    /// Audio channel layout (`stereo`, `5.1`).
    pub channel_layout: Option<String>,
    /// Audio sample rate in Hz.
    pub sample_rate: Option<i64>,
    /// Average frame rate in frames per second.
    pub frame_rate: Option<f64>,
    /// Bitrate of the stream in bits per second.
    pub bit_rate: Option<i64>,
    /// Codec profile (`High`, `LC`).
    pub profile: Option<String>,
    /// Codec level (41 for H.264 level 4.1).
    pub level: Option<i64>,
    /// Pixel format (`yuv420p`).
    pub pixel_format: Option<String>,
    /// Whether the track is flagged default.
    pub is_default: bool,
    /// Whether the track is flagged forced.
    pub is_forced: bool,
    /// Whether the video is interlaced.
    pub is_interlaced: bool,
    /// Whether the track is flagged for the hearing impaired (SDH/CC).
    pub is_hearing_impaired: bool,
    /// A subtitle file beside the video rather than a stream inside it.
    pub is_external: bool,
    /// The file of an external subtitle. Never sent to clients.
    pub path: Option<String>,
}

impl StreamInfo {
    /// The codec as Jellyfin names it to clients (`MediaStream.Codec`) and matches it against
    /// a device profile's `SubtitleProfiles` formats: ffprobe's names for image subtitles
    /// become Jellyfin's (`hdmv_pgs_subtitle` → `PGSSUB`, `dvd_subtitle` → `DVDSUB`,
    /// `dvb_subtitle` → `DVBSUB`, `dvb_teletext` → `DVBTXT`, as its probe normalizer does);
    /// every other codec keeps ffprobe's name, which is also what ffmpeg is given.
    pub fn client_codec(&self) -> Option<&str> {
        let codec = self.codec.as_deref()?;
        if self.kind != StreamKind::Subtitle {
            return Some(codec);
        }
        Some(match codec.to_ascii_lowercase().as_str() {
            "hdmv_pgs_subtitle" => "PGSSUB",
            "dvd_subtitle" => "DVDSUB",
            "dvb_subtitle" => "DVBSUB",
            "dvb_teletext" => "DVBTXT",
            _ => codec,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_subtitles_carry_jellyfin_codec_names_and_other_streams_ffprobe_names() {
        let stream = |kind, codec: &str| StreamInfo {
            kind,
            codec: Some(codec.to_owned()),
            ..StreamInfo::default()
        };
        let named = |kind, codec| stream(kind, codec).client_codec().map(str::to_owned);
        assert_eq!(
            named(StreamKind::Subtitle, "hdmv_pgs_subtitle").as_deref(),
            Some("PGSSUB")
        );
        assert_eq!(
            named(StreamKind::Subtitle, "dvd_subtitle").as_deref(),
            Some("DVDSUB")
        );
        assert_eq!(
            named(StreamKind::Subtitle, "dvb_subtitle").as_deref(),
            Some("DVBSUB")
        );
        assert_eq!(
            named(StreamKind::Subtitle, "dvb_teletext").as_deref(),
            Some("DVBTXT")
        );
        assert_eq!(
            named(StreamKind::Subtitle, "subrip").as_deref(),
            Some("subrip")
        );
        assert_eq!(named(StreamKind::Subtitle, "ass").as_deref(), Some("ass"));
        assert_eq!(named(StreamKind::Video, "h264").as_deref(), Some("h264"));
        assert_eq!(StreamInfo::default().client_codec(), None);
    }
}
