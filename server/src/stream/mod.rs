//! Direct streaming: a media file sent as it is on disk, whole or by byte range, read in chunks
//! so that a 40 GB film never sits in memory.
//!
//! This module answers for a path it is given; deciding *which* path may be served (only a
//! file the scanner recorded, still inside a configured library) is the caller's job, see
//! `api::playback`. It never builds a path from request text.

pub mod range;

use std::path::Path;

use axum::body::Body;
use axum::response::Response;
use futures::StreamExt;
use http::{HeaderValue, StatusCode, header};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use range::RangeAnswer;

/// Bytes read from disk per chunk of a response body.
const CHUNK_BYTES: usize = 256 * 1024;

/// The `Content-Type` of a container (as stored on items: `mkv`, `mp4`, ...).
pub fn content_type(container: &str) -> &'static str {
    match container.to_ascii_lowercase().as_str() {
        "mkv" => "video/x-matroska",
        "mp4" | "m4v" => "video/mp4",
        "webm" => "video/webm",
        "avi" => "video/x-msvideo",
        "ts" | "m2ts" | "mts" => "video/mp2t",
        "mov" => "video/quicktime",
        "wmv" => "video/x-ms-wmv",
        "flv" => "video/x-flv",
        "ogv" => "video/ogg",
        "3gp" => "video/3gpp",
        "mpg" | "mpeg" => "video/mpeg",
        _ => "application/octet-stream",
    }
}

/// Why a file was not served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The `Range` asks only for bytes past the end of a file of `size` bytes: answer 416 with
    /// `Content-Range: bytes */size`.
    #[error("range not satisfiable for a file of {size} bytes")]
    RangeNotSatisfiable {
        /// The file's size in bytes.
        size: u64,
    },
    /// The file could not be opened or read (gone, no permission, not a regular file). For
    /// the log only: its text names paths.
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
}

/// How a file is to be answered.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions<'a> {
    /// The `Content-Type` (see [`content_type`] for videos).
    pub content_type: &'static str,
    /// A HEAD request: the same headers, no body.
    pub head: bool,
    /// The raw `Range` header, if any.
    pub range: Option<&'a [u8]>,
}

/// Answers a request for the file at `path`: 200 or 206, with `Accept-Ranges: bytes`, or a
/// [`ServeError::RangeNotSatisfiable`] for the caller to answer 416.
///
/// `guard` lives as long as the response body is being sent (dropped when the client has the
/// last byte or goes away), so a caller can count active streams with it.
///
/// Filesystem errors (missing file, no permission) come back as [`ServeError::Io`]; the caller
/// logs them and answers with a generic status.
pub async fn serve_file<G: Send + Sync + 'static>(
    path: &Path,
    options: ServeOptions<'_>,
    guard: G,
) -> Result<Response, ServeError> {
    let mut file = tokio::fs::File::open(path).await?;
    let metadata = file.metadata().await?;
    if !metadata.is_file() {
        return Err(ServeError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let total = metadata.len();
    let builder = Response::builder()
        .header(header::ACCEPT_RANGES, "bytes")
        .header(
            header::CONTENT_TYPE,
            HeaderValue::from_static(options.content_type),
        );

    let (status, start, length, builder) = match range::answer(options.range, total) {
        RangeAnswer::Full => (StatusCode::OK, 0, total, builder),
        RangeAnswer::Partial(r) => (
            StatusCode::PARTIAL_CONTENT,
            r.start,
            r.len(),
            builder.header(header::CONTENT_RANGE, r.content_range(total)),
        ),
        RangeAnswer::Unsatisfiable => {
            return Err(ServeError::RangeNotSatisfiable { size: total });
        }
    };
    let builder = builder
        .status(status)
        .header(header::CONTENT_LENGTH, length);
    if options.head {
        return Ok(builder.body(Body::empty()).unwrap_or_default());
    }
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start)).await?;
    }
    let stream = ReaderStream::with_capacity(file.take(length), CHUNK_BYTES).map(move |chunk| {
        // Holding the guard in the stream ties its life to the body's.
        let _ = &guard;
        chunk
    });
    Ok(builder.body(Body::from_stream(stream)).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn file_of(len: usize) -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("film.mkv");
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &bytes).expect("write");
        (dir, path, bytes)
    }

    fn opts<'a>(range: Option<&'a str>, head: bool) -> ServeOptions<'a> {
        ServeOptions {
            content_type: content_type("mkv"),
            head,
            range: range.map(str::as_bytes),
        }
    }

    async fn body(response: Response) -> Vec<u8> {
        response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec()
    }

    fn header_of(response: &Response, name: header::HeaderName) -> String {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    #[tokio::test]
    async fn a_request_without_range_gets_the_whole_file() {
        let (_dir, path, bytes) = file_of(1_000_000);
        let response = serve_file(&path, opts(None, false), ())
            .await
            .expect("serve");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header_of(&response, header::ACCEPT_RANGES), "bytes");
        assert_eq!(
            header_of(&response, header::CONTENT_TYPE),
            "video/x-matroska"
        );
        assert_eq!(header_of(&response, header::CONTENT_LENGTH), "1000000");
        assert_eq!(body(response).await, bytes);
    }

    #[tokio::test]
    async fn a_range_gets_exactly_those_bytes() {
        let (_dir, path, bytes) = file_of(600_000);
        let response = serve_file(&path, opts(Some("bytes=300000-599998"), false), ())
            .await
            .expect("serve");
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            header_of(&response, header::CONTENT_RANGE),
            "bytes 300000-599998/600000"
        );
        assert_eq!(header_of(&response, header::CONTENT_LENGTH), "299999");
        assert_eq!(body(response).await, bytes[300_000..599_999]);
    }

    #[tokio::test]
    async fn an_unsatisfiable_range_is_reported_with_the_size() {
        let (_dir, path, _) = file_of(100);
        let result = serve_file(&path, opts(Some("bytes=100-"), false), ()).await;
        assert!(
            matches!(result, Err(ServeError::RangeNotSatisfiable { size: 100 })),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn head_sends_the_headers_without_a_body() {
        let (_dir, path, _) = file_of(100);
        let response = serve_file(&path, opts(Some("bytes=-10"), true), ())
            .await
            .expect("serve");
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(header_of(&response, header::CONTENT_LENGTH), "10");
        assert_eq!(
            header_of(&response, header::CONTENT_RANGE),
            "bytes 90-99/100"
        );
        assert!(body(response).await.is_empty());
    }

    #[tokio::test]
    async fn the_guard_lives_until_the_body_is_done() {
        struct Counted(Arc<AtomicUsize>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let active = Arc::new(AtomicUsize::new(1));
        let (_dir, path, _) = file_of(1000);
        let response = serve_file(&path, opts(None, false), Counted(active.clone()))
            .await
            .expect("serve");
        assert_eq!(active.load(Ordering::SeqCst), 1);
        body(response).await;
        assert_eq!(active.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_missing_file_is_an_io_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let result = serve_file(&dir.path().join("gone.mkv"), opts(None, false), ()).await;
        assert!(matches!(result, Err(ServeError::Io(_))));
        let result = serve_file(dir.path(), opts(None, false), ()).await;
        assert!(
            matches!(result, Err(ServeError::Io(_))),
            "a folder is not served"
        );
    }

    #[test]
    fn content_types_follow_the_container() {
        assert_eq!(content_type("mkv"), "video/x-matroska");
        assert_eq!(content_type("MP4"), "video/mp4");
        assert_eq!(content_type("m4v"), "video/mp4");
        assert_eq!(content_type("webm"), "video/webm");
        assert_eq!(content_type("avi"), "video/x-msvideo");
        assert_eq!(content_type("ts"), "video/mp2t");
        assert_eq!(content_type("mov"), "video/quicktime");
        assert_eq!(content_type("xyz"), "application/octet-stream");
    }
}
