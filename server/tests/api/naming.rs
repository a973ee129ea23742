//! A realistic library (about 170 files named the ways people name them: Jellyfin, Plex and
//! Kodi conventions, scene releases, fansub anime, daily shows, extras, versions, stacks, disc
//! folders, NAS system folders, downloads in progress) scanned on both providers: every file
//! must be placed as Jellyfin places it. Also `Fields=Path` (administrators only), the extras
//! routes, the scan summary, names that are not UTF-8, and a library root that reads empty.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ephyra_config::{LibraryConfig, LibraryKind};
use ephyra_server::scan::{self, ScanReport};
use serde_json::Value;
use sqlx::Row;

use crate::support::{Provider, TestServer, test_config, with_token};

const FILMS: &str = "Naming Films";
const SHOWS: &str = "Naming Shows";

/// Film library files and where each must go. `-` means "not listed at all" (ignored on
/// purpose), `unplaced` a file the scan summary reports.
const FILM_FILES: &[(&str, &str)] = &[
    ("Heat (1995)/Heat (1995).mkv", "film Heat (1995)"),
    ("Heat (1995)/Heat (1995)-trailer.mkv", "Trailer of Heat"),
    ("Heat (1995)/Trailers/Teaser.mkv", "Trailer of Heat"),
    (
        "Heat (1995)/Behind The Scenes/Making Heat.mkv",
        "BehindTheScenes of Heat",
    ),
    (
        "Heat (1995)/Deleted Scenes/Bank.mkv",
        "DeletedScene of Heat",
    ),
    ("Heat (1995)/Featurettes/Cast.mkv", "Featurette of Heat"),
    ("Heat (1995)/Interviews/Mann.mkv", "Interview of Heat"),
    ("Heat (1995)/Scenes/Opening.mkv", "Scene of Heat"),
    ("Heat (1995)/Shorts/Short One.mkv", "Short of Heat"),
    ("Heat (1995)/Other/Misc.mkv", "Unknown of Heat"),
    ("Heat (1995)/Extras/Bloopers.mkv", "Unknown of Heat"),
    ("Heat (1995)/Sample/heat.sample.mkv", "Sample of Heat"),
    ("Heat (1995)/@eaDir/Heat (1995).mkv/SYNOVIDEO.mkv", "-"),
    (
        "The Matrix (1999) [imdbid-tt0133093]/The.Matrix.1999.1080p.BluRay.x264-GRP.mkv",
        "film The Matrix (1999)",
    ),
    (
        "The Matrix (1999) [imdbid-tt0133093]/The.Matrix.1999.1080p.BluRay.x264-GRP.sample.mkv",
        "Sample of The Matrix",
    ),
    (
        "The Matrix (1999) [imdbid-tt0133093]/sample.mkv",
        "Sample of The Matrix",
    ),
    (
        "Film (2021)/Film (2021) - 1080p.mkv",
        "version [1080p] of Film",
    ),
    (
        "Film (2021)/Film (2021) - 2160p.mkv",
        "film Film (2021) [2160p]",
    ),
    (
        "Film (2021)/Film (2021) - 720p.mkv",
        "version [720p] of Film",
    ),
    (
        "Blade Runner (1982)/Blade Runner (1982).mkv",
        "film Blade Runner (1982) [Blade Runner]",
    ),
    (
        "Blade Runner (1982)/Blade Runner (1982) - Final Cut.mkv",
        "version [Final Cut] of Blade Runner",
    ),
    (
        "Toy Story (1995)/Toy Story (1995) [Bluray-1080p].mkv",
        "version [Bluray-1080p] of Toy Story",
    ),
    (
        "Toy Story (1995)/Toy Story (1995) [Remux-2160p].mkv",
        "film Toy Story (1995) [Remux-2160p]",
    ),
    (
        "Bad Boys (1995)/Bad Boys (1995) cd1.avi",
        "film Bad Boys (1995)",
    ),
    (
        "Bad Boys (1995)/Bad Boys (1995) cd2.avi",
        "part 2 of Bad Boys",
    ),
    ("Dune (1984)/Dune (1984) part1.mkv", "film Dune (1984)"),
    ("Dune (1984)/Dune (1984) part2.mkv", "part 2 of Dune"),
    ("Dune (1984)/Dune (1984) part3.mkv", "part 3 of Dune"),
    (
        "Lawrence of Arabia (1962)/Lawrence.of.Arabia.1962.disc1.mkv",
        "film Lawrence of Arabia (1962)",
    ),
    (
        "Lawrence of Arabia (1962)/Lawrence.of.Arabia.1962.disc2.mkv",
        "part 2 of Lawrence of Arabia",
    ),
    ("Ben-Hur (1959) pt1.mkv", "film Ben-Hur (1959)"),
    ("Ben-Hur (1959) pt2.mkv", "part 2 of Ben-Hur"),
    ("Alien (1979)/VIDEO_TS/VTS_01_1.VOB", "film Alien (1979)"),
    ("Aliens (1986)/BDMV/STREAM/00001.m2ts", "film Aliens (1986)"),
    ("Terminator (1984).iso", "film Terminator (1984)"),
    (
        "Predator (1987)/Predator (1987).iso",
        "film Predator (1987)",
    ),
    (
        "Big.Buck.Bunny.2008.720p.BluRay.x264-GRP.mkv",
        "film Big Buck Bunny (2008)",
    ),
    (
        "2001.A.Space.Odyssey.1968.2160p.UHD.mkv",
        "film 2001 A Space Odyssey (1968)",
    ),
    ("1917 (2019).mkv", "film 1917 (2019)"),
    ("Amélie (2001).mkv", "film Amélie (2001)"),
    ("Jaws [1975].avi", "film Jaws (1975)"),
    ("Home Video.mp4", "film Home Video (-)"),
    ("Sintel (2010)/movie.mkv", "film Sintel (2010)"),
    ("Sintel (2010)/Sintel (2010).sample.mkv", "Sample of Sintel"),
    ("Inception (2010) {tmdb-27205}.mkv", "film Inception (2010)"),
    (
        "Inception (2010) {tmdb-27205}-trailer.mkv",
        "Trailer of Inception",
    ),
    ("Up (2009).mp4", "film Up (2009)"),
    ("Up (2009) - Trailer.mp4", "Trailer of Up"),
    ("Trailers/Random Trailer.mkv", "unplaced"),
    ("#recycle/Old Film (2000).mkv", "-"),
    ("$RECYCLE.BIN/S-1-5-21/Film.mkv", "-"),
    ("lost+found/#12345.mkv", "-"),
    (".@__thumb/Heat.mkv", "-"),
    ("System Volume Information/x.mkv", "-"),
    (".hidden (2000).mkv", "-"),
    ("Downloading (2024).mkv.part", "-"),
    ("Downloading 2 (2024).mkv.!qB", "-"),
    ("Downloading 3 (2024).mkv.crdownload", "-"),
    ("Downloading 4 (2024).mkv.partial", "-"),
    ("Private Stuff/Secret (2002).mkv", "-"),
    ("Collection/Iron Man (2008).mkv", "film Iron Man (2008)"),
    ("Collection/Iron Man 2 (2010).mkv", "film Iron Man 2 (2010)"),
    (
        "Kodi Style/Some.Movie.2015.720p.WEB-DL.mkv",
        "film Some Movie (2015)",
    ),
    (
        "The Thing (1982)/The Thing (1982).mkv",
        "film The Thing (1982)",
    ),
    (
        "The Thing (1982)/Making of-featurette.mkv",
        "Featurette of The Thing",
    ),
    (
        "The Thing (1982)/Lost ending-deleted.mkv",
        "DeletedScene of The Thing",
    ),
    (
        "The Thing (1982)/Carpenter-interview.mkv",
        "Interview of The Thing",
    ),
    (
        "The Thing (1982)/Set tour-behindthescenes.mkv",
        "BehindTheScenes of The Thing",
    ),
    ("The Thing (1982)/Opening-scene.mkv", "Scene of The Thing"),
    ("The Thing (1982)/Blair-short.mkv", "Short of The Thing"),
    ("The Thing (1982)/Stuff-other.mkv", "Unknown of The Thing"),
    ("The Thing (1982)/Clip one-clip.mkv", "Clip of The Thing"),
    (
        "Avatar (2009) [tmdbid-19995]/Avatar (2009) [tmdbid-19995].mkv",
        "film Avatar (2009)",
    ),
    (
        "Avatar (2009) [tmdbid-19995]/trailer.mkv",
        "Trailer of Avatar",
    ),
    (
        "Gladiator (2000)/Gladiator.2000.REMUX.2160p.mkv",
        "film Gladiator (2000)",
    ),
    (
        "Gladiator (2000)/Gladiator.2000.1080p.mkv",
        "film Gladiator (2000)",
    ),
];

/// TV library files and where each must go.
const SHOW_FILES: &[(&str, &str)] = &[
    (
        "Breaking Bad (2008)/Season 01/Breaking.Bad.S01E01.720p.BluRay.x264-DEMAND.mkv",
        "Breaking Bad S01E01",
    ),
    (
        "Breaking Bad (2008)/Season 01/Breaking.Bad.S01E02.720p.BluRay.x264-DEMAND.mkv",
        "Breaking Bad S01E02",
    ),
    (
        "Breaking Bad (2008)/Season 01/Breaking.Bad.S01E03.720p.BluRay.x264-DEMAND.mkv",
        "Breaking Bad S01E03",
    ),
    (
        "Breaking Bad (2008)/Season 01/Breaking.Bad.S01E03.720p.BluRay.x264-DEMAND.sample.mkv",
        "Sample of Breaking Bad",
    ),
    (
        "Breaking Bad (2008)/Season 01/Breaking Bad - S01E04 - Cancer Man.mkv",
        "Breaking Bad S01E04",
    ),
    (
        "Breaking Bad (2008)/Season 01/Breaking Bad - S01E05 - Gray Matter.mkv",
        "Breaking Bad S01E05",
    ),
    (
        "Breaking Bad (2008)/Season 01/breaking.bad.s01e06.mkv",
        "Breaking Bad S01E06",
    ),
    (
        "Breaking Bad (2008)/Season 01/Breaking Bad 1x07.mkv",
        "Breaking Bad S01E07",
    ),
    (
        "Breaking Bad (2008)/Season 02/Breaking Bad - S02E01E02 - Seven Thirty-Seven.mkv",
        "Breaking Bad S02E01-E02",
    ),
    (
        "Breaking Bad (2008)/Season 02/Breaking Bad - S02E03-E04.mkv",
        "Breaking Bad S02E03-E04",
    ),
    (
        "Breaking Bad (2008)/Season 02/breaking.bad.s02e05-06.mkv",
        "Breaking Bad S02E05-E06",
    ),
    (
        "Breaking Bad (2008)/Specials/Breaking Bad S00E01 Minisode.mkv",
        "Breaking Bad S00E01",
    ),
    (
        "Breaking Bad (2008)/Season 00/Breaking Bad S00E02.mkv",
        "Breaking Bad S00E02",
    ),
    (
        "Breaking Bad (2008)/Extras/Inside Breaking Bad.mkv",
        "Unknown of Breaking Bad",
    ),
    (
        "Breaking Bad (2008)/Trailers/Season 1 Trailer.mkv",
        "Trailer of Breaking Bad",
    ),
    ("Breaking Bad (2008)/@eaDir/x.mkv", "-"),
    (
        "Ted Lasso (2020) [tvdbid-383203]/Season 1/Ted Lasso S01E01 Pilot.mkv",
        "Ted Lasso S01E01",
    ),
    (
        "Ted Lasso (2020) [tvdbid-383203]/Season 1/Ted Lasso S01E02 Biscuits.mkv",
        "Ted Lasso S01E02",
    ),
    (
        "Ted Lasso (2020) [tvdbid-383203]/Season 1/Ted.Lasso.S01E03.1080p.WEB.mkv",
        "Ted Lasso S01E03",
    ),
    (
        "Ted Lasso (2020) [tvdbid-383203]/Season 1/Ted.Lasso.S01E04.1080p.WEB.mkv",
        "Ted Lasso S01E04",
    ),
    (
        "Ted Lasso (2020) [tvdbid-383203]/Season 1/Ted.Lasso.S01E05.1080p.WEB.mkv",
        "Ted Lasso S01E05",
    ),
    (
        "Ted Lasso (2020) [tvdbid-383203]/Season 1/Ted.Lasso.S01E06.1080p.WEB.mkv",
        "Ted Lasso S01E06",
    ),
    (
        "Doctor Who (2005)/Series 2/Doctor Who - 01 - New Earth.mkv",
        "Doctor Who S02E01",
    ),
    (
        "Doctor Who (2005)/Series 2/Doctor Who - 02 - Tooth and Claw.mkv",
        "Doctor Who S02E02",
    ),
    (
        "Doctor Who (2005)/Series 3/Doctor Who - 01 - Smith and Jones.mkv",
        "Doctor Who S03E01",
    ),
    (
        "The Office (US) {tmdb-2316}/Season 2/The Office 2x01 The Dundies.mkv",
        "The Office (US) S02E01",
    ),
    (
        "The Office (US) {tmdb-2316}/Season 2/the.office.2x02.mkv",
        "The Office (US) S02E02",
    ),
    (
        "The Office (US) {tmdb-2316}/Season 3/3x01-02 Gay Witch Hunt.mkv",
        "The Office (US) S03E01-E02",
    ),
    (
        "The Simpsons/Season 1/the.simpsons.102.hdtv.avi",
        "The Simpsons S01E02",
    ),
    (
        "The Simpsons/Season 1/the.simpsons.103.hdtv.avi",
        "The Simpsons S01E03",
    ),
    (
        "The Simpsons/Season 25/The Simpsons.S25E09.Steal this episode.mp4",
        "The Simpsons S25E09",
    ),
    (
        "One Piece/[SubsPlease] One Piece - 1071 (1080p) [ABCD1234].mkv",
        "One Piece S01E1071",
    ),
    (
        "One Piece/[SubsPlease] One Piece - 1072 (1080p) [ABCD1234].mkv",
        "One Piece S01E1072",
    ),
    (
        "One Piece/[SubsPlease] One Piece - 1073 (1080p) [ABCD1234].mkv",
        "One Piece S01E1073",
    ),
    (
        "One Piece/[SubsPlease] One Piece - 1074 (1080p) [ABCD1234].mkv",
        "One Piece S01E1074",
    ),
    (
        "Sousou no Frieren/[SubsPlease] Sousou no Frieren - 01 (1080p).mkv",
        "Sousou no Frieren S01E01",
    ),
    (
        "Sousou no Frieren/[SubsPlease] Sousou no Frieren - 02 (1080p).mkv",
        "Sousou no Frieren S01E02",
    ),
    (
        "Sousou no Frieren/[SubsPlease] Sousou no Frieren - 03 (1080p).mkv",
        "Sousou no Frieren S01E03",
    ),
    (
        "Sousou no Frieren/[Group] Sousou no Frieren - 12 [1080p][HEVC].mkv",
        "Sousou no Frieren S01E12",
    ),
    (
        "Sousou no Frieren/[SubsPlease] Sousou no Frieren - 24v2 (1080p).mkv",
        "Sousou no Frieren S01E24",
    ),
    (
        "The Daily Show/The Daily Show 2024-05-01.mkv",
        "The Daily Show S01 2024-05-01",
    ),
    (
        "The Daily Show/the.daily.show.2024.05.02.guest.name.720p.mkv",
        "The Daily Show S01 2024-05-02",
    ),
    (
        "The Daily Show/The Daily Show 2024_05_03.mkv",
        "The Daily Show S01 2024-05-03",
    ),
    (
        "Jeopardy/Jeopardy 2023 07 14 HDTV x264 AC3.mkv",
        "Jeopardy S01 2023-07-14",
    ),
    (
        "Love.Death.and.Robots.S01.1080p.NF.WEB-DL.DDP5.1.x264-NTG/Love.Death.and.Robots.S01E01.Sonnies.Edge.1080p.NF.WEB-DL.DDP5.1.x264-NTG.mkv",
        "Love Death and Robots S01E01",
    ),
    (
        "Love.Death.and.Robots.S01.1080p.NF.WEB-DL.DDP5.1.x264-NTG/Love.Death.and.Robots.S01E02.Three.Robots.1080p.NF.WEB-DL.DDP5.1.x264-NTG.mkv",
        "Love Death and Robots S01E02",
    ),
    (
        "Love.Death.and.Robots.S01.1080p.NF.WEB-DL.DDP5.1.x264-NTG/Sample/love.death.and.robots.s01e01.sample.mkv",
        "Sample of Love Death and Robots",
    ),
    ("Mr.Robot.S01E01.720p.mkv", "Mr Robot S01E01"),
    ("Mr.Robot.S01E02.720p.mkv", "Mr Robot S01E02"),
    ("Random Clip.mkv", "unplaced"),
    ("Trailers/Some Trailer.mkv", "unplaced"),
    (
        "Elementary/Season 1/Elementary - S01E23-E24-E26 - The Woman.mp4",
        "Elementary S01E23-E26",
    ),
    (
        "Elementary/Season 2/Elementary - 02x03-04-15 - Ep Name.mp4",
        "Elementary S02E03-E15",
    ),
    (
        "Planet Earth/Specials/Making of Planet Earth.mkv",
        "Planet Earth S00 unnumbered",
    ),
    (
        "Planet Earth/Season 1/Planet Earth S01E01 From Pole to Pole.mkv",
        "Planet Earth S01E01",
    ),
    (
        "Planet Earth/Season 1/Planet.Earth.S01E02.Mountains.mkv",
        "Planet Earth S01E02",
    ),
    (
        "Planet Earth/Season 1/Planet.Earth.S01E03.Fresh.Water.mkv",
        "Planet Earth S01E03",
    ),
    (
        "Planet Earth/Season 1/Planet.Earth.S01E04.Caves.mkv",
        "Planet Earth S01E04",
    ),
    (
        "Running Man/Running Man S2017E368.mkv",
        "Running Man S2017E368",
    ),
    ("Firefly/Season 1/E01 - Serenity.mkv", "Firefly S01E01"),
    (
        "Firefly/Season 1/Episode 2 - The Train Job.mkv",
        "Firefly S01E02",
    ),
    ("Firefly/Season 1/03 - Bushwhacked.mkv", "Firefly S01E03"),
    (
        "Firefly/Season 1/Firefly 1x04 Shindig.mkv",
        "Firefly S01E04",
    ),
    ("Firefly/Firefly (2002) - Trailer.mkv", "Trailer of Firefly"),
    ("Firefly/#recycle/Firefly S01E05.mkv", "-"),
    ("Firefly/Season 1/Firefly S01E06.mkv.part", "-"),
    ("Firefly/Season 1/.Firefly S01E07.mkv", "-"),
    (
        "Firefly/Season 1/Featurettes/Here's How It Was.mkv",
        "Featurette of Firefly",
    ),
    (
        "Sherlock/Sherlock Season 1 Episode 1 - A Study in Pink.mkv",
        "Sherlock S01E01",
    ),
    ("Sherlock/s1 e2 - The Blind Banker.mkv", "Sherlock S01E02"),
    (
        "Band of Brothers/Band.of.Brothers.Pt.1.mkv",
        "Band of Brothers S01E01",
    ),
    (
        "Band of Brothers/Band.of.Brothers.Pt.2.mkv",
        "Band of Brothers S01E02",
    ),
    (
        "Hunter X Hunter/Season 2/[HorribleSubs] Hunter X Hunter - 136 [720p].mkv",
        "Hunter X Hunter S02E136",
    ),
    (
        "The Wonder Years/The.Wonder.Years.S04.PDTV.x264-JCH/The Wonder Years s04e07 Christmas Party NTSC PDTV.avi",
        "The Wonder Years S04E07",
    ),
    (
        "Show Without Numbers/Season 1/Behind the curtain.mkv",
        "Show Without Numbers S01 unnumbered",
    ),
];

/// A library built from the tables: every video a hard link to one tiny real clip, so each
/// probes (and nothing big is copied); plus the files that are not videos.
struct NamingLibrary {
    server: TestServer,
    media: tempfile::TempDir,
    report: ScanReport,
    admin_token: String,
    viewer_token: String,
}

fn write_tree(root: &Path, clip: &Path, files: &[(&str, &str)]) -> Result<()> {
    for (relative, _) in files {
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().context("parent")?)?;
        std::fs::hard_link(clip, &path).or_else(|_| std::fs::copy(clip, &path).map(|_| ()))?;
    }
    Ok(())
}

impl NamingLibrary {
    async fn new(provider: Provider) -> Result<NamingLibrary> {
        let sample = ephyra_testsupport::media::cached_sample_library().await?;
        let clip = sample.videos()[0].to_path_buf();
        let media = tempfile::tempdir()?;
        let films = media.path().join("films");
        let shows = media.path().join("shows");
        write_tree(&films, &clip, FILM_FILES)?;
        write_tree(&shows, &clip, SHOW_FILES)?;
        // Beside the videos: a `.ignore` marker, the rest of the disc folders.
        std::fs::write(films.join("Private Stuff/.ignore"), b"")?;
        for extra in [
            "Alien (1979)/VIDEO_TS/VIDEO_TS.IFO",
            "Alien (1979)/VIDEO_TS/VTS_01_0.IFO",
            "Alien (1979)/VIDEO_TS/VTS_01_2.VOB",
            "Aliens (1986)/BDMV/index.bdmv",
            "Aliens (1986)/BDMV/STREAM/00002.m2ts",
        ] {
            std::fs::write(films.join(extra), b"small")?;
        }
        let data = tempfile::tempdir()?;
        let mut config = test_config(provider, data.path()).await?;
        config.libraries = vec![
            LibraryConfig {
                name: FILMS.to_owned(),
                kind: LibraryKind::Movies,
                folders: vec![films],
            },
            LibraryConfig {
                name: SHOWS.to_owned(),
                kind: LibraryKind::Tvshows,
                folders: vec![shows],
            },
        ];
        config.scan.concurrency = 2;
        let server = TestServer::from_config(config, data).await?;
        let report = scan::scan_all(&server.state).await?;
        let (_, admin_token) = server.admin().await?;
        let (_, viewer_token) = server.viewer().await?;
        Ok(NamingLibrary {
            server,
            media,
            report,
            admin_token,
            viewer_token,
        })
    }

    async fn json(&self, uri: &str, token: &str) -> Result<Value> {
        let reply = self.server.get(uri, Some(&with_token(token))).await?;
        anyhow::ensure!(reply.status == http::StatusCode::OK, "GET {uri}: {reply:?}");
        reply.json()
    }

    /// What the store made of every file, described as the tables describe it.
    async fn placements(&self) -> Result<BTreeMap<PathBuf, String>> {
        let rows = sqlx::query(
            "SELECT i.path, i.kind, i.name, i.production_year, i.parent_index_number, \
             i.index_number, i.index_number_end, i.premiere_date, i.extra_type, i.owner_role, \
             i.version_name, i.part_number, s.name AS series_name, o.name AS owner_name \
             FROM items i LEFT JOIN items s ON s.id = i.series_id \
             LEFT JOIN items o ON o.id = i.owner_id \
             WHERE i.path IS NOT NULL AND i.kind NOT IN ('Series', 'Season')",
        )
        .fetch_all(self.server.state.store.pool())
        .await?;
        let mut out = BTreeMap::new();
        for row in rows {
            let path: String = row.try_get("path")?;
            let kind: String = row.try_get("kind")?;
            let name: String = row.try_get("name")?;
            let owner: Option<String> = row.try_get("owner_name")?;
            let owner = owner.unwrap_or_else(|| "?".to_owned());
            let role: Option<String> = row.try_get("owner_role")?;
            let int = |c: &str| row.try_get::<Option<i64>, _>(c);
            let described = match (role.as_deref(), kind.as_str()) {
                (Some("extra"), _) => {
                    let t: Option<String> = row.try_get("extra_type")?;
                    format!("{} of {owner}", t.unwrap_or_default())
                }
                (Some("version"), _) => {
                    let v: Option<String> = row.try_get("version_name")?;
                    format!("version [{}] of {owner}", v.unwrap_or_default())
                }
                (Some("part"), _) => {
                    format!("part {} of {owner}", int("part_number")?.unwrap_or(0))
                }
                (_, "Episode") => {
                    let series: Option<String> = row.try_get("series_name")?;
                    let season = int("parent_index_number")?.unwrap_or(-1);
                    let mut text = format!("{} S{season:02}", series.unwrap_or_default());
                    match (int("index_number")?, int("premiere_date")?) {
                        (Some(n), _) => {
                            text.push_str(&format!("E{n:02}"));
                            if let Some(end) = int("index_number_end")? {
                                text.push_str(&format!("-E{end:02}"));
                            }
                        }
                        (None, Some(ms)) => text.push_str(&format!(" {}", ymd(ms))),
                        (None, None) => text.push_str(" unnumbered"),
                    }
                    text
                }
                _ => {
                    let year = int("production_year")?.map_or("-".to_owned(), |y| y.to_string());
                    let v: Option<String> = row.try_get("version_name")?;
                    let mut text = format!("film {name} ({year})");
                    if let Some(v) = v {
                        text.push_str(&format!(" [{v}]"));
                    }
                    text
                }
            };
            out.insert(PathBuf::from(path), described);
        }
        Ok(out)
    }
}

/// `YYYY-MM-DD` of a unix-ms midnight (civil-from-days, proleptic Gregorian).
fn ymd(ms: i64) -> String {
    let z = ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn canonical(root: &Path) -> PathBuf {
    root.canonicalize().unwrap_or_else(|_| root.to_path_buf())
}

async fn every_file_is_placed_as_jellyfin_places_it(provider: Provider) -> Result<()> {
    let lib = NamingLibrary::new(provider).await?;
    assert!(
        FILM_FILES.len() + SHOW_FILES.len() >= 150,
        "the library is realistic in size"
    );
    let placed = lib.placements().await?;
    let unplaced: Vec<&PathBuf> = lib.report.unplaced.iter().map(|(p, _)| p).collect();
    let mut wrong = Vec::new();
    for (folder, table) in [("films", FILM_FILES), ("shows", SHOW_FILES)] {
        let root = canonical(&lib.media.path().join(folder));
        for (relative, expected) in table {
            let path = root.join(relative);
            let got = match placed.get(&path) {
                Some(described) => described.clone(),
                None if unplaced.contains(&&path) => "unplaced".to_owned(),
                None => "-".to_owned(),
            };
            if got != *expected {
                wrong.push(format!(
                    "{folder}/{relative}: expected `{expected}`, got `{got}`"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{provider:?}: {} misplaced:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // Nothing is stored that the tables do not name (the rest of the disc folders).
    let expected_stored = FILM_FILES
        .iter()
        .chain(SHOW_FILES)
        .filter(|(_, e)| *e != "-" && *e != "unplaced")
        .count();
    assert_eq!(placed.len(), expected_stored, "{provider:?}: {placed:#?}");
    assert!(lib.report.errors.is_empty(), "{:?}", lib.report.errors);
    Ok(())
}

#[tokio::test]
async fn every_file_is_placed_as_jellyfin_places_it_on_sqlite() -> Result<()> {
    every_file_is_placed_as_jellyfin_places_it(Provider::Sqlite).await
}

#[tokio::test]
async fn every_file_is_placed_as_jellyfin_places_it_on_postgres() -> Result<()> {
    every_file_is_placed_as_jellyfin_places_it(Provider::Postgres).await
}

fn names(result: &Value) -> Vec<String> {
    let items = result.get("Items").unwrap_or(result);
    items
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["Name"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn the_api_serves_the_placed_library_as_jellyfin_clients_read_it() -> Result<()> {
    for provider in [Provider::Sqlite, Provider::Postgres] {
        let lib = NamingLibrary::new(provider).await?;
        let admin = lib.admin_token.clone();
        let viewer = lib.viewer_token.clone();

        // Extras, versions and parts are never listed as films.
        let films = lib
            .json(
                "/Items?Recursive=true&IncludeItemTypes=Movie&SortBy=SortName",
                &viewer,
            )
            .await?;
        let film_names = names(&films);
        assert_eq!(
            film_names.iter().filter(|n| *n == "Film").count(),
            1,
            "{film_names:?}"
        );
        assert_eq!(
            film_names.iter().filter(|n| *n == "Dune").count(),
            1,
            "{film_names:?}"
        );
        assert!(
            !film_names
                .iter()
                .any(|n| n.contains("Teaser") || n.contains("Bloopers"))
        );
        let all = lib.json("/Items?Recursive=true", &viewer).await?;
        assert!(!names(&all).iter().any(|n| n == "Making Heat"), "{all}");

        // Versions: one film, several media sources the client picks from.
        let film = films["Items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["Name"] == "Film")
            .context("Film listed")?;
        let id = film["Id"].as_str().context("id")?;
        let detail = lib.json(&format!("/Items/{id}"), &viewer).await?;
        let sources: Vec<&str> = detail["MediaSources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["Name"].as_str())
            .collect();
        assert_eq!(sources, ["2160p", "1080p", "720p"], "{detail}");
        assert_eq!(detail["MediaSourceCount"], 3);

        // Extras of a film, by route.
        let heat = films["Items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["Name"] == "Heat")
            .and_then(|i| i["Id"].as_str())
            .context("Heat")?
            .to_owned();
        let trailers = lib
            .json(&format!("/Items/{heat}/LocalTrailers"), &viewer)
            .await?;
        assert_eq!(trailers.as_array().map(Vec::len), Some(2), "{trailers}");
        assert!(
            trailers
                .as_array()
                .into_iter()
                .flatten()
                .all(|t| t["Type"] == "Trailer")
        );
        let features = lib
            .json(&format!("/Items/{heat}/SpecialFeatures"), &viewer)
            .await?;
        let mut feature_names = names(&features);
        feature_names.sort();
        assert_eq!(
            feature_names,
            [
                "Bank",
                "Bloopers",
                "Cast",
                "Making Heat",
                "Mann",
                "Misc",
                "Opening",
                "Short One",
                "heat"
            ],
            "{features}"
        );
        assert!(features[0]["ExtraType"].is_string(), "{features}");

        // Provider ids from id tags; the series name and year without them.
        let series = lib
            .json(
                "/Items?Recursive=true&IncludeItemTypes=Series&SearchTerm=Ted",
                &viewer,
            )
            .await?;
        assert_eq!(series["Items"][0]["Name"], "Ted Lasso");
        assert_eq!(series["Items"][0]["ProductionYear"], 2020);
        assert_eq!(series["Items"][0]["ProviderIds"]["Tvdb"], "383203");
        let matrix = lib
            .json(
                "/Items?Recursive=true&IncludeItemTypes=Movie&SearchTerm=Matrix",
                &viewer,
            )
            .await?;
        assert_eq!(matrix["Items"][0]["ProviderIds"]["Imdb"], "tt0133093");

        // Multi-episode files carry their last episode.
        let multi = lib
            .json(
                "/Items?Recursive=true&IncludeItemTypes=Episode&SearchTerm=Seven%20Thirty",
                &viewer,
            )
            .await?;
        assert_eq!(multi["Items"][0]["IndexNumber"], 1);
        assert_eq!(multi["Items"][0]["IndexNumberEnd"], 2);

        // `Fields=Path`: administrators get paths, other users do not.
        let uri = "/Items?Recursive=true&IncludeItemTypes=Movie&SearchTerm=Heat&Fields=Path";
        let as_admin = lib.json(uri, &admin).await?;
        let path = as_admin["Items"][0]["Path"]
            .as_str()
            .context("admin sees Path")?;
        assert!(path.ends_with("Heat (1995)/Heat (1995).mkv"), "{path}");
        let as_viewer = lib.json(uri, &viewer).await?;
        assert!(as_viewer["Items"][0].get("Path").is_none(), "{as_viewer}");

        // The scan summary: counts and the files that could not be placed.
        let summary = lib.json("/Library/ScanSummary", &admin).await?;
        let films_summary = summary
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["Name"] == FILMS)
            .context("films summary")?;
        assert_eq!(films_summary["Summary"]["UnplacedCount"], 1, "{summary}");
        assert!(
            films_summary["Summary"]["Unplaced"][0]["Path"]
                .as_str()
                .is_some_and(|p| p.ends_with("Trailers/Random Trailer.mkv")),
            "{summary}"
        );
        assert!(
            films_summary["Summary"]["Ignored"].as_u64() >= Some(10),
            "{summary}"
        );
        let reply = lib
            .server
            .get("/Library/ScanSummary", Some(&with_token(&viewer)))
            .await?;
        reply.assert_error(http::StatusCode::FORBIDDEN)?;

        // A rescan with nothing changed re-probes and re-places nothing.
        let again = scan::scan_all(&lib.server.state).await?;
        assert_eq!(again.probed, 0, "{provider:?}");
        assert_eq!(again.removed, 0, "{provider:?}");
    }
    Ok(())
}

/// The top-level part of a library folder a relative path lies in: its first folder, or
/// `None` for a file directly in the root (the loose files are one part).
fn top_level_part(relative: &Path) -> Option<std::ffi::OsString> {
    let mut components = relative.components();
    let first = components.next()?;
    components.next()?;
    Some(first.as_os_str().to_owned())
}

/// A scan takes a library one top-level folder at a time (the loose files in the root
/// together), which gives what placing the whole library at once gives, and holds at most the
/// largest such part's files, not the library's.
#[tokio::test]
async fn a_scan_places_one_top_level_folder_at_a_time() -> Result<()> {
    for (kind, table) in [
        (LibraryKind::Movies, FILM_FILES),
        (LibraryKind::Tvshows, SHOW_FILES),
    ] {
        let files: Vec<PathBuf> = table.iter().map(|(r, _)| PathBuf::from(r)).collect();
        let whole: BTreeMap<PathBuf, scan::place::Role> =
            scan::place::place(kind, &files).into_iter().collect();
        let mut parts: BTreeMap<Option<std::ffi::OsString>, Vec<PathBuf>> = BTreeMap::new();
        for file in &files {
            parts
                .entry(top_level_part(file))
                .or_default()
                .push(file.clone());
        }
        assert!(parts.len() > 10, "{kind:?}: {} parts", parts.len());
        let by_part: BTreeMap<PathBuf, scan::place::Role> = parts
            .values()
            .flat_map(|part| scan::place::place(kind, part))
            .collect();
        assert_eq!(whole, by_part, "{kind:?}");
    }

    let lib = NamingLibrary::new(Provider::Sqlite).await?;
    // Every video walked is stored or reported unplaced: count them by part.
    let placed = lib.placements().await?;
    let walked: Vec<&PathBuf> = placed
        .keys()
        .chain(lib.report.unplaced.iter().map(|(p, _)| p))
        .collect();
    assert_eq!(walked.len(), lib.report.files);
    let mut sizes: BTreeMap<(PathBuf, Option<std::ffi::OsString>), usize> = BTreeMap::new();
    for folder in ["films", "shows"] {
        let root = canonical(&lib.media.path().join(folder));
        for path in walked.iter().filter(|p| p.starts_with(&root)) {
            let relative = path.strip_prefix(&root)?;
            *sizes
                .entry((root.clone(), top_level_part(relative)))
                .or_default() += 1;
        }
    }
    let largest = sizes.values().copied().max().unwrap_or(0);
    assert_eq!(lib.report.largest_unit, largest, "{sizes:#?}");
    assert!(
        largest * 5 < lib.report.files,
        "the largest part ({largest} files) is a small share of the {} files",
        lib.report.files
    );
    Ok(())
}

#[tokio::test]
async fn a_version_added_later_joins_its_film_on_the_next_scan() -> Result<()> {
    let lib = NamingLibrary::new(Provider::Sqlite).await?;
    let root = canonical(&lib.media.path().join("films"));
    std::fs::copy(
        root.join("Up (2009).mp4"),
        root.join("1917 (2019) - extended.mkv"),
    )?;
    // `Heat (1995)/Heat (1995) - 4K.mkv` turns Heat into a film with two versions.
    std::fs::copy(
        root.join("Heat (1995)/Heat (1995).mkv"),
        root.join("Heat (1995)/Heat (1995) - 4K.mkv"),
    )?;
    let report = scan::scan_all(&lib.server.state).await?;
    assert_eq!(report.probed, 2);
    let placed = lib.placements().await?;
    assert_eq!(
        placed[&root.join("Heat (1995)/Heat (1995).mkv")],
        "film Heat (1995) [Heat]"
    );
    assert_eq!(
        placed[&root.join("Heat (1995)/Heat (1995) - 4K.mkv")],
        "version [4K] of Heat"
    );
    Ok(())
}

#[cfg(unix)]
#[tokio::test]
async fn a_name_that_is_not_utf8_is_reported_not_stored_or_dropped_silently() -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let lib = NamingLibrary::new(Provider::Sqlite).await?;
    let root = canonical(&lib.media.path().join("films"));
    let name = std::ffi::OsStr::from_bytes(b"Caf\xe9 (1999).mkv");
    std::fs::copy(root.join("Up (2009).mp4"), root.join(name))?;
    let report = scan::scan_all(&lib.server.state).await?;
    let reported = report
        .unplaced
        .iter()
        .find(|(p, _)| p == &root.join(name))
        .context("the file is reported")?;
    assert!(reported.1.contains("UTF-8"), "{reported:?}");
    // Reported again by the next scan, and the library is otherwise unchanged.
    let again = scan::scan_all(&lib.server.state).await?;
    assert!(again.unplaced.iter().any(|(p, _)| p == &root.join(name)));
    assert_eq!(again.removed, 0);
    Ok(())
}

#[tokio::test]
async fn a_library_root_that_reads_empty_keeps_its_items_and_play_history() -> Result<()> {
    for provider in [Provider::Sqlite, Provider::Postgres] {
        let lib = NamingLibrary::new(provider).await?;
        let films = lib.media.path().join("films");
        let before = lib
            .json(
                "/Items?Recursive=true&IncludeItemTypes=Movie",
                &lib.viewer_token,
            )
            .await?;
        // An NFS share that is not mounted: the mount point is there, empty.
        let away = lib.media.path().join("films-away");
        std::fs::rename(&films, &away)?;
        std::fs::create_dir(&films)?;
        let report = scan::scan_all(&lib.server.state).await?;
        assert_eq!(report.removed, 0, "{provider:?}");
        assert_eq!(
            report.unreadable_folders.len(),
            1,
            "{provider:?}: {report:?}"
        );
        let after = lib
            .json(
                "/Items?Recursive=true&IncludeItemTypes=Movie",
                &lib.viewer_token,
            )
            .await?;
        assert_eq!(
            after["TotalRecordCount"], before["TotalRecordCount"],
            "{provider:?}"
        );
        // The root missing altogether: the same.
        std::fs::remove_dir(&films)?;
        let report = scan::scan_all(&lib.server.state).await?;
        assert_eq!(report.removed, 0, "{provider:?}");
        std::fs::rename(&away, &films)?;
        let report = scan::scan_all(&lib.server.state).await?;
        assert_eq!((report.removed, report.probed), (0, 0), "{provider:?}");
    }
    Ok(())
}

/// The counts the database keeps per library, kind and level (migration 0016) are the rows'
/// own counts, and a library page's total (read from them) is what the page lists, what a
/// filtered listing counts row by row, and what a one-item page says.
async fn assert_counts_follow_the_rows(lib: &NamingLibrary, when: &str) -> Result<()> {
    let pool = lib.server.state.store.pool();
    let read = |sql: &'static str| async move {
        let rows = sqlx::query(sql).fetch_all(pool).await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<String, _>("library_id")?,
                    r.try_get::<String, _>("kind")?,
                    r.try_get::<i64, _>("top_level")?,
                    r.try_get::<i64, _>("n")?,
                ))
            })
            .collect::<Result<Vec<_>>>()
    };
    let kept = read(
        "SELECT library_id, kind, top_level, n FROM item_counts WHERE n <> 0 \
         ORDER BY library_id, kind, top_level",
    )
    .await?;
    let recounted = read(
        "SELECT library_id, kind, \
         CAST(CASE WHEN parent_id IS NULL THEN 1 ELSE 0 END AS BIGINT) AS top_level, \
         COUNT(*) AS n FROM items WHERE probe_error IS NULL AND owner_id IS NULL \
         GROUP BY library_id, kind, CASE WHEN parent_id IS NULL THEN 1 ELSE 0 END \
         ORDER BY library_id, kind, top_level",
    )
    .await?;
    assert_eq!(kept, recounted, "{when}");
    assert!(!kept.is_empty(), "{when}: something is counted");

    // Across every library, with and without kinds.
    for types in ["", "Movie", "Episode,Series"] {
        let uri = format!("/Items?Recursive=true&IncludeItemTypes={types}");
        let all = lib.json(&uri, &lib.viewer_token).await?;
        let listed = all["Items"].as_array().context("items")?.len();
        for limited in [
            format!("{uri}&Limit=1"),
            format!("{uri}&IsPlayed=false&Limit=1"),
        ] {
            let page = lib.json(&limited, &lib.viewer_token).await?;
            assert_eq!(page["TotalRecordCount"], listed, "{when}: {limited}");
        }
    }
    let views = lib.json("/UserViews", &lib.viewer_token).await?;
    let views = views["Items"].as_array().context("views")?;
    assert_eq!(views.len(), 2, "{when}: {views:?}");
    for view in views {
        let id = view["Id"].as_str().context("view id")?;
        for (types, recursive) in [
            ("Movie", true),
            ("Series", true),
            ("Season,Episode", true),
            ("Episode", true),
            ("", true),
            ("", false),
        ] {
            let uri = format!(
                "/Items?ParentId={id}&Recursive={recursive}&IncludeItemTypes={types}&SortBy=SortName"
            );
            // A limited page is counted (an unlimited one is its own total).
            let page = lib
                .json(&format!("{uri}&Limit=1000"), &lib.viewer_token)
                .await?;
            let total = page["TotalRecordCount"].as_i64().context("total")?;
            let listed = page["Items"].as_array().context("items")?.len();
            assert_eq!(total, listed as i64, "{when}: {uri}");
            // A filter that keeps every item (the viewer has no favourites) is counted row by
            // row; a page of one still carries the whole total, and so does a page without a
            // limit, whether it lists everything or starts past the end.
            for narrowed in [
                format!("{uri}&IsFavorite=false&Limit=1000"),
                format!("{uri}&Limit=1"),
                uri.clone(),
                format!("{uri}&StartIndex=100000"),
            ] {
                let other = lib.json(&narrowed, &lib.viewer_token).await?;
                assert_eq!(other["TotalRecordCount"], total, "{when}: {narrowed}");
            }
        }
        // The view's own child count reads the top-level counts.
        let children = lib
            .json(&format!("/Items?ParentId={id}"), &lib.viewer_token)
            .await?;
        assert_eq!(
            view["ChildCount"], children["TotalRecordCount"],
            "{when}: {view}"
        );
    }
    Ok(())
}

async fn kept_counts_follow_scans_that_add_remove_break_and_mend_files(
    provider: Provider,
) -> Result<()> {
    let lib = NamingLibrary::new(provider).await?;
    assert_counts_follow_the_rows(&lib, "after the first scan").await?;
    let films = canonical(&lib.media.path().join("films"));
    let shows = canonical(&lib.media.path().join("shows"));
    let matrix = films
        .join("The Matrix (1999) [imdbid-tt0133093]/The.Matrix.1999.1080p.BluRay.x264-GRP.mkv");
    let good = std::fs::read(&matrix)?;
    // A film and its extras go, a version goes (its sibling is listed in its place), a whole
    // series goes, a new film comes, and a film becomes unreadable.
    std::fs::remove_dir_all(films.join("Heat (1995)"))?;
    std::fs::remove_file(films.join("Film (2021)/Film (2021) - 1080p.mkv"))?;
    std::fs::remove_dir_all(shows.join("Breaking Bad (2008)"))?;
    std::fs::write(films.join("A New Film (2024).mkv"), &good)?;
    // Every video is a hard link to one clip: unlinked first, so only this one changes.
    std::fs::remove_file(&matrix)?;
    std::fs::write(&matrix, b"not a video at all")?;
    let report = scan::scan_all(&lib.server.state).await?;
    assert!(report.removed > 0, "{report:?}");
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert_counts_follow_the_rows(&lib, "after files went, came and broke").await?;
    // Mended: the film is listed again.
    std::fs::remove_file(&matrix)?;
    std::fs::write(&matrix, &good)?;
    let report = scan::scan_all(&lib.server.state).await?;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_counts_follow_the_rows(&lib, "after the broken film was mended").await?;
    Ok(())
}

#[tokio::test]
async fn kept_counts_follow_scans_that_add_remove_break_and_mend_files_on_sqlite() -> Result<()> {
    kept_counts_follow_scans_that_add_remove_break_and_mend_files(Provider::Sqlite).await
}

#[tokio::test]
async fn kept_counts_follow_scans_that_add_remove_break_and_mend_files_on_postgres() -> Result<()> {
    kept_counts_follow_scans_that_add_remove_break_and_mend_files(Provider::Postgres).await
}
