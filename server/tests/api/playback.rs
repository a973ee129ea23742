//! PlaybackInfo and the direct stream: every form of `Range`, HEAD, 416, content types,
//! authentication, and files that must never be served (paths from requests, links that
//! leave the library, links swapped after the scan).

use std::path::PathBuf;

use axum::body::Body;
use http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::json;
use tower::ServiceExt as _;

use crate::library::{Scanned, names};
use crate::support::Provider;
use crate::with_library_on_both_providers;

/// The films' files, by title.
fn film_file(lib: &Scanned, title: &str) -> PathBuf {
    let ext = if title == "Tiny Planet" { "mp4" } else { "mkv" };
    let year = if title == "Tiny Planet" { 2021 } else { 2019 };
    lib.films_dir.join(format!("{title} ({year}).{ext}"))
}

/// `GET`/`HEAD` with an optional `Range`, as the logged-in user.
async fn fetch(
    lib: &Scanned,
    method: Method,
    uri: &str,
    range: Option<&str>,
) -> anyhow::Result<crate::support::Reply> {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("Authorization", &lib.auth);
    if let Some(r) = range {
        request = request.header(header::RANGE, r);
    }
    lib.server.send(request.body(Body::empty())?).await
}

fn header(reply: &crate::support::Reply, name: header::HeaderName) -> String {
    reply
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

with_library_on_both_providers! {
    async fn playback_info_describes_the_file_and_offers_direct_play_and_hls(lib) {
        let id = lib.id_of("Big Buck Test").await?;
        // As the Python client posts it: an unknown key and a profile that plays mkv/h264/aac.
        let body = json!({
            "UserId": lib.user_id(), "AutoOpenLiveStream": true, "IsPlayback": true,
            "DeviceProfile": {
                "DirectPlayProfiles": [{"Container": "mkv,mp4", "VideoCodec": "h264,hevc",
                                        "AudioCodec": "aac,mp3", "Type": "Video"}],
                "TranscodingProfiles": [{"Container": "ts", "Type": "Video", "VideoCodec": "h264",
                                         "AudioCodec": "aac", "Protocol": "hls",
                                         "Context": "Streaming"}]
            }
        });
        let reply = lib.server.post(&format!("/Items/{id}/PlaybackInfo"), Some(&lib.auth), Some(body.clone())).await?;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        let info = reply.json()?;
        let session = info["PlaySessionId"].as_str().unwrap();
        assert_eq!(session.len(), 32);
        let source = &info["MediaSources"][0];
        assert_eq!(source["Id"], id.as_str());
        assert_eq!(source["Protocol"], "File");
        assert_eq!(source["Container"], "mkv");
        assert_eq!(source["Size"], std::fs::metadata(film_file(&lib, "Big Buck Test"))?.len());
        assert!(source["Bitrate"].as_i64().unwrap() > 0);
        assert!(source["RunTimeTicks"].as_i64().unwrap() > 0);
        assert!(source["ETag"].is_string());
        assert_eq!(source["SupportsDirectPlay"], true);
        assert_eq!(source["SupportsDirectStream"], true);
        assert_eq!(source["SupportsTranscoding"], true);
        // Jellyfin hands out a transcoding URL only when the file cannot be played as it is.
        assert!(source.get("TranscodingUrl").is_none(), "{source}");
        assert!(source.get("TranscodingContainer").is_none(), "{source}");
        assert!(source["MediaStreams"].as_array().unwrap().len() >= 2);

        // A profile that only plays mp4 remuxes the mkv through HLS, the video copied.
        let mut body = body.clone();
        body["DeviceProfile"]["DirectPlayProfiles"] = json!([{"Container": "mp4", "Type": "Video"}]);
        let info = lib.server.post(&format!("/Items/{id}/PlaybackInfo"), Some(&lib.auth), Some(body)).await?.json()?;
        let session = info["PlaySessionId"].as_str().unwrap();
        let source = &info["MediaSources"][0];
        assert_eq!(source["SupportsDirectPlay"], false);
        assert_eq!(source["SupportsDirectStream"], false);
        assert_eq!(source["SupportsTranscoding"], true);
        assert_eq!(source["TranscodingSubProtocol"], "hls");
        assert_eq!(source["TranscodingContainer"], "ts");
        let url = source["TranscodingUrl"].as_str().unwrap();
        assert!(url.starts_with(&format!("/videos/{id}/master.m3u8?")), "{url}");
        assert!(url.contains(&format!("PlaySessionId={session}")), "{url}");
        assert!(url.contains(&format!("ApiKey={}", lib.token)), "{url}");
        assert!(url.contains(&format!("MediaSourceId={id}")), "{url}");
        assert!(url.contains("TranscodeReasons=ContainerNotSupported"), "{url}");
        assert!(url.contains("AllowVideoStreamCopy=true"), "{url}");

        // Without a transcoding profile, a file the client cannot play cannot be offered.
        let body = json!({"DeviceProfile": {"DirectPlayProfiles": [{"Container": "mp4", "Type": "Video"}]}});
        let info = lib.server.post(&format!("/Items/{id}/PlaybackInfo"), Some(&lib.auth), Some(body)).await?.json()?;
        let source = &info["MediaSources"][0];
        assert_eq!(source["SupportsDirectPlay"], false);
        assert_eq!(source["SupportsTranscoding"], false);
        assert!(source.get("TranscodingUrl").is_none());

        // The GET form, and the errors.
        let info = lib.json(&format!("/Items/{id}/PlaybackInfo?UserId={}", lib.user_id())).await?;
        assert_eq!(info["MediaSources"][0]["Id"], id.as_str());
        lib.server.post("/Items/zzz/PlaybackInfo", Some(&lib.auth), None).await?.assert_error(StatusCode::BAD_REQUEST)?;
        let series = lib.id_of("Test Show").await?;
        lib.server.post(&format!("/Items/{series}/PlaybackInfo"), Some(&lib.auth), None).await?.assert_error(StatusCode::NOT_FOUND)?;
        lib.server.post(&format!("/Items/{id}/PlaybackInfo"), None, None).await?.assert_error(StatusCode::UNAUTHORIZED)?;
        Ok(())
    }

    async fn the_direct_stream_answers_every_form_of_range_with_the_files_own_bytes(lib) {
        let id = lib.id_of("Big Buck Test").await?;
        let file = std::fs::read(film_file(&lib, "Big Buck Test"))?;
        let len = file.len();
        assert!(len > 2000, "a real video");
        let uri = format!("/Videos/{id}/stream?static=true&mediaSourceId={id}&deviceId=dev-0001");

        let whole = fetch(&lib, Method::GET, &uri, None).await?;
        assert_eq!(whole.status, StatusCode::OK);
        assert_eq!(header(&whole, header::ACCEPT_RANGES), "bytes");
        assert_eq!(header(&whole, header::CONTENT_TYPE), "video/x-matroska");
        assert_eq!(header(&whole, header::CONTENT_LENGTH), len.to_string());
        assert_eq!(whole.body.as_ref(), file.as_slice());

        let cases = [
            ("bytes=0-99", 0, 99),
            ("bytes=1000-1999", 1000, 1999),
            (&*format!("bytes={}-", len - 10), len - 10, len - 1),
            ("bytes=-500", len - 500, len - 1),
            (&*format!("bytes=100-{}", len + 5000), 100, len - 1),
            ("bytes=10-19, 50-59", 10, 19),
        ];
        for (range, start, end) in cases {
            let part = fetch(&lib, Method::GET, &uri, Some(range)).await?;
            assert_eq!(part.status, StatusCode::PARTIAL_CONTENT, "{range}");
            assert_eq!(header(&part, header::CONTENT_RANGE), format!("bytes {start}-{end}/{len}"), "{range}");
            assert_eq!(header(&part, header::CONTENT_LENGTH), (end - start + 1).to_string(), "{range}");
            assert_eq!(part.body.as_ref(), &file[start..=end], "{range}");
        }

        for range in [format!("bytes={len}-"), format!("bytes={}-{}", len + 1, len + 9), "bytes=-0".to_owned()] {
            let refused = fetch(&lib, Method::GET, &uri, Some(&range)).await?;
            refused.assert_error(StatusCode::RANGE_NOT_SATISFIABLE)?;
            assert_eq!(header(&refused, header::CONTENT_RANGE), format!("bytes */{len}"), "{range}");
        }
        // Malformed ranges are ignored: the whole file, 200.
        for range in ["bytes=9-3", "pages=1-2", "bytes=x-y"] {
            let ignored = fetch(&lib, Method::GET, &uri, Some(range)).await?;
            assert_eq!(ignored.status, StatusCode::OK, "{range}");
            assert_eq!(ignored.body.len(), len, "{range}");
        }

        let head = fetch(&lib, Method::HEAD, &uri, Some("bytes=0-9")).await?;
        assert_eq!(head.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(header(&head, header::CONTENT_LENGTH), "10");
        assert!(head.body.is_empty());
        let head = fetch(&lib, Method::HEAD, &uri, None).await?;
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(header(&head, header::CONTENT_LENGTH), len.to_string());
        assert!(head.body.is_empty());
        Ok(())
    }

    async fn both_stream_routes_serve_the_file_with_its_content_type_and_ignore_transcode_parameters(lib) {
        let id = lib.id_of("Tiny Planet").await?;
        let file = std::fs::read(film_file(&lib, "Tiny Planet"))?;
        for uri in [
            format!("/Videos/{id}/stream.mp4?Static=true&ApiKey={}", lib.token),
            format!("/videos/{id}/stream?static=true&VideoCodec=hevc&AudioCodec=opus&MaxWidth=10"),
            format!("/Videos/{id}/stream.mkv?static=true"),
        ] {
            let reply = fetch(&lib, Method::GET, &uri, Some("bytes=0-15")).await?;
            assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT, "{uri}");
            assert_eq!(header(&reply, header::CONTENT_TYPE), "video/mp4", "{uri}");
            assert_eq!(reply.body.as_ref(), &file[..16], "{uri}");
        }
        // The token may come as ApiKey alone (players load the URL without headers).
        let reply = lib.server.get(&format!("/Videos/{id}/stream?static=true&ApiKey={}", lib.token), None).await?;
        assert_eq!(reply.status, StatusCode::OK);
        lib.server.get(&format!("/Videos/{id}/stream"), None).await?.assert_error(StatusCode::UNAUTHORIZED)?;
        Ok(())
    }

    async fn nothing_but_a_scanned_items_file_is_ever_served(lib) {
        let id = lib.id_of("Big Buck Test").await?;
        let film = std::fs::read(film_file(&lib, "Big Buck Test"))?;
        // Paths in the URL are not ids; paths in parameters are ignored.
        for uri in [
            "/Videos/..%2F..%2F..%2Fetc%2Fpasswd/stream".to_owned(),
            "/Videos/%2e%2e/stream".to_owned(),
            "/Videos/%2Fetc%2Fpasswd/stream".to_owned(),
            "/Videos/..%252F..%252Fetc/stream.mkv".to_owned(),
        ] {
            let reply = fetch(&lib, Method::GET, &uri, None).await?;
            assert!(reply.status == StatusCode::BAD_REQUEST || reply.status == StatusCode::NOT_FOUND, "{uri}: {reply:?}");
            assert!(!String::from_utf8_lossy(&reply.body).contains("root:"), "{uri}");
        }
        // A MediaSourceId that is no id names no source (it picks one of the item's versions).
        let reply = fetch(&lib, Method::GET, &format!("/Videos/{id}/stream?MediaSourceId=../../etc/passwd"), None).await?;
        reply.assert_error(StatusCode::NOT_FOUND)?;
        for uri in [
            format!("/Videos/{id}/stream?path=/etc/passwd&MediaSourceId={id}"),
            format!("/Videos/{id}/stream.%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
        ] {
            let reply = fetch(&lib, Method::GET, &uri, None).await?;
            assert_eq!(reply.status, StatusCode::OK, "{uri}");
            assert_eq!(reply.body.as_ref(), film.as_slice(), "{uri}: the item's own file");
        }
        // An id that names no item, and a folder item, have nothing to stream.
        fetch(&lib, Method::GET, "/Videos/0123456789abcdef0123456789abcdef/stream", None).await?.assert_error(StatusCode::NOT_FOUND)?;
        let series = lib.id_of("Test Show").await?;
        fetch(&lib, Method::GET, &format!("/Videos/{series}/stream"), None).await?.assert_error(StatusCode::NOT_FOUND)?;
        Ok(())
    }

    async fn a_file_swapped_for_a_link_out_of_the_library_after_the_scan_is_not_served(lib) {
        let outside = tempfile::tempdir()?;
        let secret = outside.path().join("secret.mkv");
        std::fs::write(&secret, b"not for clients")?;
        let id = lib.id_of("Big Buck Test").await?;
        let film = film_file(&lib, "Big Buck Test");
        std::fs::remove_file(&film)?;
        std::os::unix::fs::symlink(&secret, &film)?;
        let reply = fetch(&lib, Method::GET, &format!("/Videos/{id}/stream"), None).await?;
        reply.assert_error(StatusCode::NOT_FOUND)?;
        assert!(!String::from_utf8_lossy(&reply.body).contains("not for clients"));
        assert!(!String::from_utf8_lossy(&reply.body).contains(outside.path().to_str().unwrap()));
        // A file that vanished is a plain 404 too, with no path in the answer.
        std::fs::remove_file(&film)?;
        let reply = fetch(&lib, Method::GET, &format!("/Videos/{id}/stream"), None).await?;
        reply.assert_error(StatusCode::NOT_FOUND)?;
        assert!(!String::from_utf8_lossy(&reply.body).contains(lib.media.path().to_str().unwrap()));
        Ok(())
    }

    async fn an_active_stream_is_counted_until_its_body_is_done(lib) {
        let id = lib.id_of("Big Buck Test").await?;
        let metrics = lib.server.state.metrics.clone();
        assert_eq!(metrics.active_streams.get(), 0);
        let request = Request::get(format!("/Videos/{id}/stream"))
            .header("Authorization", &lib.auth)
            .body(Body::empty())?;
        let response = ephyra_server::app(lib.server.state.clone()).oneshot(request).await?;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(metrics.active_streams.get(), 1, "counted while the body is open");
        response.into_body().collect().await?;
        assert_eq!(metrics.active_streams.get(), 0, "released when the body is done");
        let request = Request::head(format!("/Videos/{id}/stream"))
            .header("Authorization", &lib.auth)
            .body(Body::empty())?;
        let response = ephyra_server::app(lib.server.state.clone()).oneshot(request).await?;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(metrics.active_streams.get(), 0, "HEAD streams nothing");
        Ok(())
    }
}

#[tokio::test]
async fn a_link_inside_the_library_pointing_outside_is_never_scanned_nor_served()
-> anyhow::Result<()> {
    let outside = tempfile::tempdir()?;
    let secret = outside.path().join("Secret (2000).mkv");
    std::fs::copy(
        &ephyra_testsupport::media::cached_sample_library()
            .await?
            .films[0]
            .path,
        &secret,
    )?;
    let outside_path = outside.path().to_owned();
    let lib = Scanned::prepared(Provider::Sqlite, move |media| {
        std::os::unix::fs::symlink(&secret, media.join("films/Secret (2000).mkv"))?;
        std::os::unix::fs::symlink(&outside_path, media.join("films/Elsewhere"))?;
        Ok(())
    })
    .await?;
    let films = lib
        .json("/Items?Recursive=true&IncludeItemTypes=Movie&SortBy=SortName")
        .await?;
    assert_eq!(names(&films), ["Big Buck Test", "Tiny Planet"]);
    let search = lib.json("/Items?Recursive=true&SearchTerm=secret").await?;
    assert_eq!(search["TotalRecordCount"], 0);
    Ok(())
}

crate::with_library_on_both_providers! {
    fixture = crate::subtitles::with_subtitle_media;
    async fn chrome_plays_the_mp4_as_it_is_and_gets_hls_for_the_hevc_ac3_matroska(lib) {
        use crate::subtitles::{HEVC_FILM, playback_info};
        let mp4 = lib.id_of("Tiny Planet").await?;
        let info = playback_info(&lib, &mp4, json!({})).await?;
        let source = &info["MediaSources"][0];
        assert_eq!(source["SupportsDirectPlay"], true, "{source}");
        assert!(source.get("TranscodingUrl").is_none(), "{source}");

        let mkv = lib.id_of(HEVC_FILM).await?;
        let info = playback_info(&lib, &mkv, json!({})).await?;
        let source = &info["MediaSources"][0];
        assert_eq!(source["SupportsDirectPlay"], false);
        assert_eq!(source["SupportsDirectStream"], false);
        assert_eq!(source["TranscodingSubProtocol"], "hls");
        assert_eq!(source["TranscodingContainer"], "mp4", "Chrome asks fMP4 first");
        let url = source["TranscodingUrl"].as_str().unwrap();
        let hevc = source["MediaStreams"].as_array().unwrap().iter()
            .any(|s| s["Type"] == "Video" && s["Codec"] == "hevc");
        assert!(url.contains("TranscodeReasons=ContainerNotSupported"), "{url}");
        assert!(url.contains("AudioCodecNotSupported"), "AC3 is not for browsers: {url}");
        assert!(url.contains("AudioCodec=aac"), "{url}");
        assert!(url.contains("AllowAudioStreamCopy=false"), "{url}");
        if hevc {
            assert!(url.contains("AllowVideoStreamCopy=true"), "HEVC is copied: {url}");
        } else {
            assert!(url.contains("VideoCodecNotSupported"), "{url}");
            assert!(url.contains("AllowVideoStreamCopy=false"), "{url}");
        }
        assert!(url.contains("VideoCodec=h264,"), "H.264 is the codec encoded to: {url}");

        // The chosen audio and subtitle streams.
        let subtitle = source["MediaStreams"].as_array().unwrap().iter()
            .find(|s| s["Type"] == "Subtitle").unwrap()["Index"].as_i64().unwrap();
        let info = playback_info(&lib, &mkv, json!({
            "AudioStreamIndex": 1, "SubtitleStreamIndex": subtitle, "MediaSourceId": mkv,
            "AllowVideoStreamCopy": false
        })).await?;
        let source = &info["MediaSources"][0];
        assert_eq!(source["DefaultSubtitleStreamIndex"], subtitle);
        assert_eq!(source["DefaultAudioStreamIndex"], 1);
        let url = source["TranscodingUrl"].as_str().unwrap();
        assert!(url.contains("AudioStreamIndex=1&"), "{url}");
        assert!(url.contains("AllowVideoStreamCopy=false"), "{url}");
        assert!(!url.contains("SubtitleMethod"), "text subtitles stay external: {url}");
        let sub = source["MediaStreams"].as_array().unwrap().iter()
            .find(|s| s["Index"] == subtitle).unwrap();
        assert_eq!(sub["DeliveryMethod"], "External");

        // An unknown media source is 404.
        let reply = lib.server.post(
            &format!("/Items/{mkv}/PlaybackInfo"), Some(&lib.auth),
            Some(json!({"MediaSourceId": "0123456789abcdef0123456789abcdef"})),
        ).await?;
        reply.assert_error(StatusCode::NOT_FOUND)?;
        lib.get(&format!("/Items/{mkv}/PlaybackInfo?MediaSourceId=nonsense")).await?.assert_error(StatusCode::NOT_FOUND)?;

        // The GET form reads its flags from the query.
        let info = lib.json(&format!(
            "/Items/{mp4}/PlaybackInfo?UserId={}&MaxStreamingBitrate=100000&StartTimeTicks=50000000&MediaSourceId={mp4}",
            lib.user_id()
        )).await?;
        let source = &info["MediaSources"][0];
        assert_eq!(source["SupportsDirectPlay"], false, "over the bitrate limit");
        let url = source["TranscodingUrl"].as_str().unwrap();
        assert!(url.contains("TranscodeReasons=ContainerBitrateExceedsLimit"), "{url}");
        assert!(url.contains("StartTimeTicks=50000000"), "{url}");
        assert!(url.contains("VideoBitrate=64000"), "the floor Jellyfin keeps: {url}");
        Ok(())
    }
}

#[tokio::test]
async fn a_media_source_id_naming_another_version_plays_that_version() -> anyhow::Result<()> {
    use ephyra_testsupport::media::{Container, VideoSpec, generate_video_with};

    let media = tempfile::tempdir()?;
    let folder = media.path().join("Twin (2020)");
    let (long, short) = (
        folder.join("Twin (2020) - 1080p.mkv"),
        folder.join("Twin (2020) - 720p.mkv"),
    );
    let spec = |seconds| VideoSpec {
        seconds,
        ..VideoSpec::default()
    };
    tokio::try_join!(
        generate_video_with(&long, spec(3), Container::Mkv),
        generate_video_with(&short, spec(1), Container::Mkv),
    )?;
    let data = tempfile::tempdir()?;
    let mut config = crate::support::test_config(Provider::Sqlite, data.path()).await?;
    config.libraries = vec![ephyra_config::LibraryConfig {
        name: "Twins".to_owned(),
        kind: ephyra_config::LibraryKind::Movies,
        folders: vec![media.path().to_path_buf()],
    }];
    let server = crate::support::TestServer::from_config(config, data).await?;
    ephyra_server::scan::scan_all(&server.state).await?;
    let (_, token) = server.viewer().await?;
    let auth = crate::support::with_token(&token);

    let films = server
        .get("/Items?Recursive=true&IncludeItemTypes=Movie", Some(&auth))
        .await?
        .json()?;
    let id = films["Items"][0]["Id"].as_str().unwrap().to_owned();
    let detail = server
        .get(&format!("/Items/{id}"), Some(&auth))
        .await?
        .json()?;
    let sources = detail["MediaSources"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(sources.len(), 2, "{detail}");
    let (long_len, short_len) = (
        std::fs::metadata(&long)?.len(),
        std::fs::metadata(&short)?.len(),
    );
    assert_ne!(long_len, short_len);
    for source in &sources {
        let source_id = source["Id"].as_str().unwrap();
        let expected = if source["Name"] == "720p" {
            short_len
        } else {
            long_len
        };
        for uri in [
            format!("/Videos/{id}/stream?MediaSourceId={source_id}&Static=true"),
            format!("/Videos/{id}/stream.mkv?MediaSourceId={source_id}&Static=true"),
        ] {
            let reply = server.get(&uri, Some(&auth)).await?;
            assert_eq!(reply.status, StatusCode::OK, "{uri}: {reply:?}");
            assert_eq!(reply.body.len() as u64, expected, "{uri} plays its version");
        }
        // PlaybackInfo answers for the version picked.
        let info = server
            .post(
                &format!("/Items/{id}/PlaybackInfo?MediaSourceId={source_id}"),
                Some(&auth),
                Some(json!({})),
            )
            .await?;
        assert_eq!(info.status, StatusCode::OK, "{info:?}");
        let info = info.json()?;
        assert_eq!(info["MediaSources"][0]["Id"], source_id, "{info}");
        assert_eq!(info["MediaSources"][0]["Size"], expected, "{info}");
    }
    // A source of another item is not a version of this one.
    let stranger = "0123456789abcdef0123456789abcdef";
    server
        .get(
            &format!("/Videos/{id}/stream?MediaSourceId={stranger}"),
            Some(&auth),
        )
        .await?
        .assert_error(StatusCode::NOT_FOUND)?;
    Ok(())
}
