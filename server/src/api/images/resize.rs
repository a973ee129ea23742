//! Images resized on request (`maxWidth`, `maxHeight`, `fillWidth`, `fillHeight`, `width`,
//! `height`, `quality`, `format`), cached in this replica's data folder by (image tag, asked
//! size, quality, format).
//!
//! The output is a pure function of the original's bytes and the request, so every replica
//! answers the same bytes for the same URL whether it resized the image or read its cache.
//! Never upscales; refuses sizes above [`MAX_DIMENSION`]; decodes with dimension and memory
//! limits, and reads at most [`MAX_SOURCE_BYTES`], so a hostile or broken file costs bounded
//! memory and yields an error, never a panic.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageFormat, ImageReader, Limits};

/// The largest width or height a client may ask for.
pub const MAX_DIMENSION: u32 = 4096;
/// Source images larger than this are not decoded (a real poster or fanart is a few MiB).
const MAX_SOURCE_BYTES: u64 = 64 * 1024 * 1024;
/// Decoder limits: no side over 16384 pixels, no more than 256 MiB of pixel buffers.
const MAX_SOURCE_SIDE: u32 = 16_384;
const MAX_DECODE_ALLOC: u64 = 256 * 1024 * 1024;
/// JPEG quality when the client names none (Jellyfin's default).
const DEFAULT_QUALITY: u8 = 90;

/// Output formats a client may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutFormat {
    /// `jpg`/`jpeg`.
    Jpeg,
    /// `png`.
    Png,
    /// `webp` (lossless: the pure-Rust encoder has no lossy mode).
    Webp,
}

impl OutFormat {
    /// From a `format=` value; `None` for a format Ephyra does not write.
    pub fn parse(text: &str) -> Option<OutFormat> {
        match text.trim().to_ascii_lowercase().as_str() {
            "jpg" | "jpeg" => Some(OutFormat::Jpeg),
            "png" => Some(OutFormat::Png),
            "webp" => Some(OutFormat::Webp),
            _ => None,
        }
    }

    /// The format of an original, by its `Content-Type`.
    pub fn of_content_type(content_type: &str) -> OutFormat {
        match content_type {
            "image/png" => OutFormat::Png,
            "image/webp" => OutFormat::Webp,
            _ => OutFormat::Jpeg,
        }
    }

    /// File extension (the serving code derives the content type from it).
    pub fn extension(self) -> &'static str {
        match self {
            OutFormat::Jpeg => "jpg",
            OutFormat::Png => "png",
            OutFormat::Webp => "webp",
        }
    }
}

/// A validated resize request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resize {
    /// Bounds the result must fit in.
    pub max_width: Option<u32>,
    /// Bounds the result must fit in.
    pub max_height: Option<u32>,
    /// The box the result should cover (scaled down to cover it, never up).
    pub fill_width: Option<u32>,
    /// The box the result should cover.
    pub fill_height: Option<u32>,
    /// JPEG quality, 1-100.
    pub quality: u8,
    /// Output format.
    pub format: OutFormat,
}

/// Why a resize request is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResizeRequestError {
    /// A size of 0 or above [`MAX_DIMENSION`].
    #[error("image sizes must be between 1 and 4096 pixels")]
    BadSize,
    /// A `format` Ephyra does not write.
    #[error("unsupported image format; use jpg, png or webp")]
    BadFormat,
}

impl Resize {
    /// The request, or `None` when it asks for the original unchanged (no size, no format, or
    /// the original's format). `width`/`height` count as maxima.
    #[allow(clippy::too_many_arguments)]
    pub fn from_params(
        max_width: Option<u32>,
        max_height: Option<u32>,
        fill_width: Option<u32>,
        fill_height: Option<u32>,
        width: Option<u32>,
        height: Option<u32>,
        quality: Option<u32>,
        format: Option<&str>,
        original: OutFormat,
    ) -> Result<Option<Resize>, ResizeRequestError> {
        let max_width = min_opt(max_width, width);
        let max_height = min_opt(max_height, height);
        for size in [max_width, max_height, fill_width, fill_height]
            .into_iter()
            .flatten()
        {
            if size == 0 || size > MAX_DIMENSION {
                return Err(ResizeRequestError::BadSize);
            }
        }
        let format = match format.map(str::trim).filter(|f| !f.is_empty()) {
            Some(f) => OutFormat::parse(f).ok_or(ResizeRequestError::BadFormat)?,
            None => original,
        };
        let sized = max_width.is_some()
            || max_height.is_some()
            || fill_width.is_some()
            || fill_height.is_some();
        if !sized && format == original {
            return Ok(None);
        }
        let quality = quality
            .map(|q| q.clamp(1, 100) as u8)
            .unwrap_or(DEFAULT_QUALITY);
        Ok(Some(Resize {
            max_width,
            max_height,
            fill_width,
            fill_height,
            quality,
            format,
        }))
    }

    /// The cache file name of this request for an image with `tag`.
    pub fn cache_name(&self, tag: &str) -> String {
        let n = |v: Option<u32>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        // The tag is 32 hex digits from the store; anything else is hashed so no request
        // value ever becomes a path component.
        let safe_tag = if tag.len() <= 64 && tag.chars().all(|c| c.is_ascii_alphanumeric()) {
            tag.to_owned()
        } else {
            crate::scan::images::image_tag(Path::new(tag), 0, 0)
        };
        let quality = if self.format == OutFormat::Jpeg {
            self.quality
        } else {
            0
        };
        format!(
            "{safe_tag}-mw{}-mh{}-fw{}-fh{}-q{quality}.{}",
            n(self.max_width),
            n(self.max_height),
            n(self.fill_width),
            n(self.fill_height),
            self.format.extension()
        )
    }

    /// The output size for an original of `width` x `height`: covers the fill box, fits the
    /// max box, keeps the aspect ratio and never exceeds the original.
    pub fn target(&self, width: u32, height: u32) -> (u32, u32) {
        if width == 0 || height == 0 {
            return (width.max(1), height.max(1));
        }
        let (w, h) = (f64::from(width), f64::from(height));
        let ratio = |limit: Option<u32>, side: f64| limit.map(|l| f64::from(l) / side);
        let fill = [ratio(self.fill_width, w), ratio(self.fill_height, h)]
            .into_iter()
            .flatten()
            .fold(None, |acc: Option<f64>, r| {
                Some(acc.map_or(r, |a| a.max(r)))
            });
        let max = [ratio(self.max_width, w), ratio(self.max_height, h)]
            .into_iter()
            .flatten()
            .fold(None, |acc: Option<f64>, r| {
                Some(acc.map_or(r, |a| a.min(r)))
            });
        let mut scale = fill.unwrap_or(1.0);
        if let Some(max) = max {
            scale = scale.min(max);
        }
        let scale = scale.min(1.0);
        let side = |v: f64| ((v * scale).round() as u32).max(1);
        (side(w), side(h))
    }
}

fn min_opt(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Why an image could not be resized.
#[derive(Debug, thiserror::Error)]
pub enum ResizeError {
    /// The original could not be read, or the result not written.
    #[error("cannot read the image or write the resized copy: {0}")]
    Io(#[from] std::io::Error),
    /// The original is too large to decode.
    #[error("the image file is too large to resize")]
    TooLarge,
    /// The original is not an image Ephyra can decode.
    #[error("not a readable image: {0}")]
    Decode(String),
    /// Encoding failed.
    #[error("cannot encode the resized image: {0}")]
    Encode(String),
}

/// What [`resize_file`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resized {
    /// The request asks for the original's own size and format: serve the original.
    Original,
    /// The resized copy is at `output`.
    Written,
}

/// Resizes `source` as `resize` asks into `output` (through a temporary file in the same
/// folder, renamed into place, so a reader never sees half an image). Blocking: run it off
/// the async threads.
pub fn resize_file(
    source: &Path,
    output: &Path,
    resize: &Resize,
    original: OutFormat,
) -> Result<Resized, ResizeError> {
    let size = std::fs::metadata(source)?.len();
    if size > MAX_SOURCE_BYTES {
        return Err(ResizeError::TooLarge);
    }
    let bytes = std::fs::read(source)?;
    // Only the header is read here: an image already within the asked size, in the asked
    // format, is sent as it is rather than re-encoded.
    let (width, height) = ImageReader::new(Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| ResizeError::Decode(e.to_string()))?
        .into_dimensions()
        .map_err(|e| ResizeError::Decode(e.to_string()))?;
    if resize.format == original && resize.target(width, height) == (width, height) {
        return Ok(Resized::Original);
    }
    let encoded = resize_bytes(&bytes, resize)?;
    if let Some(dir) = output.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let partial = partial_path(output);
    std::fs::write(&partial, &encoded)?;
    std::fs::rename(&partial, output).inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })?;
    Ok(Resized::Written)
}

fn partial_path(output: &Path) -> PathBuf {
    let mut name = output.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.partial", crate::jf::JfId::random().to_n()));
    output.with_file_name(name)
}

/// Decodes, resizes and encodes an image held in memory.
pub fn resize_bytes(bytes: &[u8], resize: &Resize) -> Result<Vec<u8>, ResizeError> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ResizeError::Decode(e.to_string()))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SOURCE_SIDE);
    limits.max_image_height = Some(MAX_SOURCE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits);
    let image = reader
        .decode()
        .map_err(|e| ResizeError::Decode(e.to_string()))?;
    let (width, height) = resize.target(image.width(), image.height());
    let resized = if (width, height) == (image.width(), image.height()) {
        image
    } else {
        image.resize_exact(width, height, image::imageops::FilterType::CatmullRom)
    };
    encode(resized, resize)
}

fn encode(image: DynamicImage, resize: &Resize) -> Result<Vec<u8>, ResizeError> {
    let mut out = Vec::new();
    let error = |e: image::ImageError| ResizeError::Encode(e.to_string());
    match resize.format {
        OutFormat::Jpeg => {
            // JPEG has no alpha: flatten to RGB first.
            let rgb = DynamicImage::ImageRgb8(image.to_rgb8());
            let encoder =
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, resize.quality);
            rgb.write_with_encoder(encoder).map_err(error)?;
        }
        OutFormat::Png => {
            image
                .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
                .map_err(error)?;
        }
        OutFormat::Webp => {
            let rgba = DynamicImage::ImageRgba8(image.to_rgba8());
            rgba.write_to(&mut Cursor::new(&mut out), ImageFormat::WebP)
                .map_err(error)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resize(mw: Option<u32>, mh: Option<u32>, fw: Option<u32>, fh: Option<u32>) -> Resize {
        Resize {
            max_width: mw,
            max_height: mh,
            fill_width: fw,
            fill_height: fh,
            quality: 90,
            format: OutFormat::Jpeg,
        }
    }

    #[test]
    fn target_sizes_keep_the_aspect_and_never_upscale() {
        // jellyfin-web's card: fill 198x297 over a 300x450 poster.
        assert_eq!(
            resize(None, None, Some(198), Some(297)).target(300, 450),
            (198, 297)
        );
        // Covering a wider box than the image's aspect keeps the aspect.
        assert_eq!(
            resize(None, None, Some(300), Some(100)).target(600, 900),
            (300, 450)
        );
        assert_eq!(
            resize(Some(150), None, None, None).target(300, 450),
            (150, 225)
        );
        assert_eq!(
            resize(None, Some(90), None, None).target(300, 450),
            (60, 90)
        );
        assert_eq!(
            resize(Some(4000), None, None, None).target(300, 450),
            (300, 450)
        );
        assert_eq!(
            resize(None, None, Some(1000), Some(1000)).target(300, 450),
            (300, 450)
        );
        assert_eq!(
            resize(Some(100), None, Some(200), None).target(300, 450),
            (100, 150)
        );
    }

    #[test]
    fn requests_are_validated() {
        let parse = |mw, format: Option<&str>| {
            Resize::from_params(
                mw,
                None,
                None,
                None,
                None,
                None,
                None,
                format,
                OutFormat::Jpeg,
            )
        };
        assert_eq!(parse(None, None), Ok(None));
        assert_eq!(parse(None, Some("jpg")), Ok(None));
        assert!(parse(None, Some("webp")).unwrap().is_some());
        assert_eq!(parse(Some(0), None), Err(ResizeRequestError::BadSize));
        assert_eq!(parse(Some(5000), None), Err(ResizeRequestError::BadSize));
        assert_eq!(
            parse(Some(300), Some("gif")),
            Err(ResizeRequestError::BadFormat)
        );
    }

    #[test]
    fn garbage_is_a_decode_error() {
        let r = resize(Some(10), None, None, None);
        assert!(matches!(
            resize_bytes(b"not an image at all", &r),
            Err(ResizeError::Decode(_))
        ));
        assert!(matches!(
            resize_bytes(&[0xff, 0xd8, 0xff, 0xe0, 0, 0], &r),
            Err(ResizeError::Decode(_))
        ));
    }

    #[test]
    fn a_png_is_resized_to_a_jpeg_and_a_webp() {
        let image = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
            40,
            20,
            image::Rgba([200, 10, 10, 255]),
        ));
        let mut png = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        let jpeg = resize_bytes(&png, &resize(Some(20), None, None, None)).unwrap();
        assert_eq!(&jpeg[..2], &[0xff, 0xd8]);
        let decoded = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (20, 10));
        let webp = resize_bytes(
            &png,
            &Resize {
                format: OutFormat::Webp,
                ..resize(Some(10), None, None, None)
            },
        )
        .unwrap();
        assert_eq!(&webp[..4], b"RIFF");
        assert_eq!(&webp[8..12], b"WEBP");
    }
}
