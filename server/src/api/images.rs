//! Item images: `GET`/`HEAD /Items/{itemId}/Images/{imageType}[/{imageIndex}]`.
//!
//! Anonymous, as in Jellyfin (clients put image URLs in `<img>` tags without a token). With a
//! `tag` the answer may be cached for a year: the tag changes whenever the image does. Only
//! images the scanner recorded are served, and only while their file still resolves inside
//! the item's library folders or the extracted-images folder (a replica that did not scan
//! extracts a missing frame again, from the item's video). A collection (BoxSet) has no
//! images of its own and answers with its first film's (see `store::boxsets`); a person
//! answers with the local image an actor's `<thumb>` names (see `scan::nfo`). Resizing
//! parameters (`maxWidth`, `fillHeight`, `quality`, `format`, ...) are honoured by
//! [`resize`], which caches each size in this replica's data folder.

pub mod cache;
pub mod resize;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use http::{HeaderValue, Method, header};
use serde::Deserialize;

use crate::error::ApiError;
use crate::jf::{JfId, Path, Query};
use crate::scan::images::{image_content_type, image_tag};
use crate::scan::{local_extracted_frame, media_path_for_serving};
use crate::state::AppState;
use crate::stream::{ServeError, ServeOptions, serve_file};

/// `Cache-Control` of an image asked for by tag: public, one year (Jellyfin's value).
const CACHE_FOREVER: &str = "public, max-age=31536000";

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/items/{itemid}/images/{imagetype}", get(image).head(image))
        .route(
            "/items/{itemid}/images/{imagetype}/{imageindex}",
            get(image_at).head(image_at),
        )
}

/// Jellyfin's image types; path segments arrive lowercased.
const IMAGE_TYPES: &[&str] = &[
    "Primary",
    "Art",
    "Backdrop",
    "Banner",
    "Logo",
    "Thumb",
    "Disc",
    "Box",
    "Screenshot",
    "Menu",
    "Chapter",
    "BoxRear",
    "Profile",
];

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ImageParams {
    tag: Option<String>,
    max_width: Option<u32>,
    max_height: Option<u32>,
    fill_width: Option<u32>,
    fill_height: Option<u32>,
    width: Option<u32>,
    height: Option<u32>,
    quality: Option<u32>,
    format: Option<String>,
}

async fn image(
    State(state): State<AppState>,
    method: Method,
    Path((item_id, image_type)): Path<(JfId, String)>,
    Query(params): Query<ImageParams>,
) -> Result<Response, ApiError> {
    serve_image(&state, &method, item_id, &image_type, 0, params).await
}

async fn image_at(
    State(state): State<AppState>,
    method: Method,
    Path((item_id, image_type, index)): Path<(JfId, String, String)>,
    Query(params): Query<ImageParams>,
) -> Result<Response, ApiError> {
    let index: i64 = index
        .parse()
        .map_err(|_| ApiError::bad_request("The image index must be a number."))?;
    serve_image(&state, &method, item_id, &image_type, index, params).await
}

async fn serve_image(
    state: &AppState,
    method: &Method,
    item_id: JfId,
    image_type: &str,
    index: i64,
    params: ImageParams,
) -> Result<Response, ApiError> {
    let image_type = IMAGE_TYPES
        .iter()
        .find(|t| t.eq_ignore_ascii_case(image_type))
        .ok_or_else(|| ApiError::bad_request("Unknown image type."))?;
    let not_found = || ApiError::not_found("Image not found.");
    let (library_id, image) = match state.store.item(item_id, None).await? {
        Some(item) => {
            let image = state
                .store
                .image(item_id, image_type, index)
                .await?
                .ok_or_else(not_found)?;
            (item.library_id, image)
        }
        // A collection (BoxSet) shows the image of its first film that has one; a person
        // the local image an actor's `<thumb>` names.
        None if index == 0 => {
            let set = state
                .store
                .boxset_images(&[item_id])
                .await?
                .remove(&item_id)
                .unwrap_or_default()
                .into_iter()
                .find(|b| b.image.image_type == *image_type);
            let borrowed = match set {
                Some(borrowed) => borrowed,
                // Only with its tag: a person's id follows from the name alone, so without
                // the tag anyone could ask whether the library credits someone.
                None if *image_type == "Primary" => state
                    .store
                    .person_images(&[item_id])
                    .await?
                    .remove(&item_id)
                    .filter(|b| params.tag.as_deref() == Some(b.image.tag.as_str()))
                    .ok_or_else(not_found)?,
                None => return Err(not_found()),
            };
            (borrowed.library_id, borrowed.image)
        }
        None => return Err(not_found()),
    };
    let path = match media_path_for_serving(&state.config, state.store.ids(), library_id, &image.path) {
        Some(path) => path,
        // An extracted frame lives in the data folder of the replica that scanned.
        None => local_extracted_frame(&state.config, &state.store, &image.path)
            .await
            .ok_or_else(|| {
                tracing::warn!(item_id = %item_id, "image file missing or outside the library; refused");
                not_found()
            })?,
    };
    let original = resize::OutFormat::of_content_type(image_content_type(&path));
    let request = resize::Resize::from_params(
        params.max_width,
        params.max_height,
        params.fill_width,
        params.fill_height,
        params.width,
        params.height,
        params.quality,
        params.format.as_deref(),
        original,
    )
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut etag = image.tag.clone();
    let path = match request {
        None => path,
        Some(request) => {
            // The name holds the image's tag, so a changed image is never answered from an
            // old copy.
            let name = request.cache_name(&image.tag);
            match resized(state, &path, &name, request, original).await {
                Ok(None) => path,
                Ok(Some(cached)) => {
                    etag = image_tag(std::path::Path::new(&name), 0, 0);
                    cached
                }
                Err(ResizedError::Busy) => {
                    return Err(ApiError::Busy {
                        retry_after_secs: 2,
                    });
                }
                Err(ResizedError::Resize(e)) => {
                    tracing::warn!(item_id = %item_id, error = %e, "image cannot be resized");
                    // A file that is not an image (or too large to decode) is the library's
                    // fault, not the server's: 404, as for a missing image.
                    return Err(if matches!(e, resize::ResizeError::Io(_)) {
                        ApiError::internal(e)
                    } else {
                        ApiError::not_found("The image cannot be read.")
                    });
                }
            }
        }
    };
    let options = ServeOptions {
        content_type: image_content_type(&path),
        head: method == Method::HEAD,
        range: None,
    };
    let mut response = serve_file(&path, options, ()).await.map_err(|e| match e {
        ServeError::RangeNotSatisfiable { size } => ApiError::RangeNotSatisfiable { size },
        ServeError::Io(io) => {
            tracing::warn!(item_id = %item_id, error = %io, "image unreadable");
            not_found()
        }
    })?;
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{etag}\"")) {
        headers.insert(header::ETAG, etag);
    }
    if params.tag.as_deref().is_some_and(|t| !t.is_empty()) {
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_FOREVER),
        );
    }
    Ok(response)
}

enum ResizedError {
    Busy,
    Resize(resize::ResizeError),
}

/// The cached copy of `source` resized as `request` asks, made now (in a resize slot) when
/// missing; `None` when the original already is what was asked.
async fn resized(
    state: &AppState,
    source: &std::path::Path,
    name: &str,
    request: resize::Resize,
    original: resize::OutFormat,
) -> Result<Option<std::path::PathBuf>, ResizedError> {
    let cache = &state.images;
    if let Some(hit) = cache.lookup(name).await {
        return Ok(Some(hit));
    }
    let _slot = cache.slot().await.map_err(|_| ResizedError::Busy)?;
    // Made by another request while this one waited for its slot.
    if let Some(hit) = cache.lookup(name).await {
        return Ok(Some(hit));
    }
    let output = cache.dir().join(name);
    let (from, to) = (source.to_owned(), output.clone());
    let done =
        tokio::task::spawn_blocking(move || resize::resize_file(&from, &to, &request, original))
            .await
            .map_err(|e| ResizedError::Resize(resize::ResizeError::Io(std::io::Error::other(e))))?
            .map_err(ResizedError::Resize)?;
    match done {
        resize::Resized::Original => Ok(None),
        resize::Resized::Written => {
            cache.written(&output).await;
            Ok(Some(output))
        }
    }
}
