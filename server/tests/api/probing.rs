//! Probing through ffprobe fork servers answers exactly as one ffprobe per file does: for
//! every kind of file a library holds (containers, chapters, subtitles, languages, odd names,
//! broken and non-media files, a file that never opens), and when the fork server cannot
//! work (a wrapper script as ffprobe), in which case each file gets its own ffprobe.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use ephyra_server::scan::probe::{self, MediaInfo, ProbeError};
use ephyra_server::scan::prober::Prober;
use ephyra_testsupport::media::{Container, generate_video, write_corrupt_video};
use futures::StreamExt;

const TIMEOUT: Duration = Duration::from_secs(60);

/// A folder of files as varied as a library's, each made by ffmpeg or by hand.
async fn varied_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mkv = dir.join("Film (2020).mkv");
    let mp4 = dir.join("Show S01E01.mp4");
    generate_video(&mkv, 3, Container::Mkv).await?;
    generate_video(&mp4, 3, Container::Mp4).await?;

    // Two audio languages, a titled forced subtitle and chapters, in Matroska.
    let srt = dir.join("subs.srt");
    std::fs::write(&srt, "1\n00:00:00,500 --> 00:00:01,500\nHello\n")?;
    let chapters = dir.join("chapters.ffmeta");
    std::fs::write(
        &chapters,
        ";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=1500\ntitle=Opening\n\
         [CHAPTER]\nTIMEBASE=1/1000\nSTART=1500\nEND=3000\n",
    )?;
    let rich = dir.join("Rich (2021).mkv");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&mkv)
        .args(["-f", "lavfi", "-i", "sine=frequency=220:duration=3", "-i"])
        .arg(&srt)
        .arg("-i")
        .arg(&chapters)
        .args([
            "-map",
            "0:v",
            "-map",
            "0:a",
            "-map",
            "1:a",
            "-map",
            "2:s",
            "-map_chapters",
            "3",
            "-c:v",
            "copy",
            "-c:a",
            "aac",
            "-c:s",
            "srt",
            "-metadata:s:a:0",
            "language=eng",
            "-metadata:s:a:1",
            "language=fre",
            "-metadata:s:a:1",
            "title=Commentary",
            "-metadata:s:s:0",
            "language=ger",
            "-disposition:s:0",
            "forced",
        ])
        .arg(&rich)
        .status()?;
    anyhow::ensure!(status.success(), "ffmpeg could not make the rich file");

    // Names that must reach ffprobe byte for byte: a protocol look-alike, a newline, and
    // bytes that are not UTF-8.
    let protocol = dir.join("http:look-alike.mkv");
    let newline = dir.join("two\nlines.mkv");
    let latin1 = dir.join(OsStr::from_bytes(b"caf\xe9.mkv"));
    for odd in [&protocol, &newline, &latin1] {
        std::fs::hard_link(&mkv, odd)?;
    }

    let corrupt = dir.join("Broken (2019).mkv");
    write_corrupt_video(&corrupt)?;
    let text = dir.join("notes.mp4");
    std::fs::write(&text, "not a video at all\n")?;
    let empty = dir.join("empty.mkv");
    std::fs::write(&empty, "")?;
    let missing = dir.join("gone.mkv");
    Ok(vec![
        mkv, mp4, rich, protocol, newline, latin1, corrupt, text, empty, missing,
    ])
}

/// Both answers, compared as the scanner sees them: the same info, or the same error.
fn same(
    file: &Path,
    alone: &Result<MediaInfo, ProbeError>,
    forked: &Result<MediaInfo, ProbeError>,
) {
    match (alone, forked) {
        (Ok(a), Ok(f)) => assert_eq!(a, f, "{}", file.display()),
        (Err(a), Err(f)) => assert_eq!(a.to_string(), f.to_string(), "{}", file.display()),
        _ => panic!(
            "{}: one ffprobe gave {alone:?}, the fork server {forked:?}",
            file.display()
        ),
    }
}

#[tokio::test]
async fn fork_servers_answer_every_kind_of_file_as_one_ffprobe_per_file_does() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let files = varied_files(dir.path()).await?;
    let ffprobe = Path::new("ffprobe");
    let prober = Prober::new(ffprobe, true, &dir.path().join("data"));

    let mut alone = Vec::new();
    for file in &files {
        alone.push(probe::probe(ffprobe, file, TIMEOUT).await);
    }
    // The rich file's streams and chapters are really there, so the comparison means something.
    let rich = alone[2].as_ref().expect("the rich file probes");
    assert_eq!(rich.streams.len(), 4, "{rich:?}");
    assert_eq!(rich.chapters.len(), 2, "{rich:?}");
    assert!(alone[6].is_err() && alone[7].is_err() && alone[8].is_err() && alone[9].is_err());

    for (file, alone) in files.iter().zip(&alone) {
        same(file, alone, &prober.probe(file, TIMEOUT).await);
    }
    assert_eq!(
        prober.forked(),
        files.len() as u64,
        "every answer came from a fork server"
    );

    // Several at once, as a scan probes: each fork server answers its own file.
    let forked: Vec<_> = futures::stream::iter(files.iter().cycle().take(files.len() * 3))
        .map(|file| {
            let prober = &prober;
            async move { (file, prober.probe(file, TIMEOUT).await) }
        })
        .buffered(4)
        .collect()
        .await;
    for (i, (file, forked)) in forked.iter().enumerate() {
        same(file, &alone[i % files.len()], forked);
    }
    assert_eq!(prober.forked(), 4 * files.len() as u64);
    Ok(())
}

#[tokio::test]
async fn a_probe_that_never_ends_is_stopped_at_its_limit_and_the_fork_server_goes_on() -> Result<()>
{
    let dir = tempfile::tempdir()?;
    let film = dir.path().join("Film.mkv");
    generate_video(&film, 2, Container::Mkv).await?;
    // A named pipe nobody writes: ffprobe waits on it forever.
    let fifo = dir.path().join("stuck.mkv");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status()?;
    anyhow::ensure!(status.success(), "mkfifo failed");

    let prober = Prober::new(Path::new("ffprobe"), true, &dir.path().join("data"));
    let limit = Duration::from_secs(1);
    let stuck = prober.probe(&fifo, limit).await;
    assert!(
        matches!(stuck, Err(ProbeError::Timeout(d)) if d == limit),
        "{stuck:?}"
    );
    let after = prober.probe(&film, TIMEOUT).await;
    assert!(after.is_ok(), "{after:?}");
    assert_eq!(
        prober.forked(),
        2,
        "the fork server answered both and survived its stuck child"
    );
    Ok(())
}

#[tokio::test]
async fn a_wrapper_script_as_ffprobe_gets_one_ffprobe_per_file() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let film = dir.path().join("Film.mkv");
    generate_video(&film, 2, Container::Mkv).await?;
    // The preloaded library would run the shell's main per request: the -version check
    // refuses it, and every file is probed by the script, as configured.
    let wrapper = dir.path().join("ffprobe-wrapper");
    std::fs::write(&wrapper, "#!/bin/sh\nexec ffprobe \"$@\"\n")?;
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;

    let prober = Prober::new(&wrapper, true, &dir.path().join("data"));
    let found = prober.probe(&film, TIMEOUT).await;
    same(
        &film,
        &probe::probe(Path::new("ffprobe"), &film, TIMEOUT).await,
        &found,
    );
    assert!(found.is_ok(), "{found:?}");
    assert_eq!(
        prober.forked(),
        0,
        "the wrapper is not taken for a fork server"
    );

    // Turned off by configuration, nothing forks either.
    let off = Prober::new(Path::new("ffprobe"), false, &dir.path().join("data"));
    assert!(off.probe(&film, TIMEOUT).await.is_ok());
    assert_eq!(off.forked(), 0);
    Ok(())
}
