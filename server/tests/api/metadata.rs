//! Local metadata from `.nfo` files beside the media: read into the item DTOs, listed by
//! `/Genres`, `/Studios`, `/Persons`, `/Years`, `/Items/Filters`, filterable on `/Items`, and
//! re-read when a file changes. Broken and oversized files never fail the scan. Chapters
//! embedded in the media file (ffprobe) are served as `Chapters`.

use std::path::Path;

use anyhow::{Context as _, Result};
use serde_json::Value;

use crate::library::{FILMS, Scanned, names};
use crate::support::Provider;

const BIG_BUCK_NFO: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes" ?>
<movie>
  <title>Big Buck Test</title>
  <originaltitle>Grand Lapin</originaltitle>
  <sorttitle>Bunny, Big Buck</sorttitle>
  <year>2008</year>
  <premiered>2008-05-20</premiered>
  <plot>A large rabbit deals with three bullies.</plot>
  <tagline>One big rabbit.</tagline>
  <ratings><rating name="imdb" max="10" default="true"><value>6.4</value></rating></ratings>
  <mpaa>Rated PG</mpaa>
  <uniqueid type="imdb" default="true">tt1254207</uniqueid>
  <uniqueid type="tmdb">10378</uniqueid>
  <genre>Animation</genre>
  <genre>Comedy</genre>
  <studio>Blender Foundation</studio>
  <tag>Blender Open Movie</tag>
  <tag>short film</tag>
  <tag>Short Film</tag>
  <director>Sacha Goedegebure</director>
  <credits>Sacha Goedegebure</credits>
  <actor><name>Frank Rabbit</name><role>Big Buck</role><order>1</order></actor>
  <actor><name>Ann Squirrel</name><role>Frank</role><order>0</order></actor>
</movie>
"#;

const SHOW_NFO: &str = r#"<tvshow>
  <title>Test Show</title>
  <plot>A show made for tests.</plot>
  <genre>Drama</genre>
  <genre>Comedy</genre>
  <studio>HBO</studio>
  <tag>Short film</tag>
  <mpaa>TV-MA</mpaa>
  <id>81189</id>
  <premiered>2011-04-17</premiered>
  <actor><name>Ann Squirrel</name><role>Herself</role></actor>
</tvshow>
"#;

/// The sample library with: a full `.nfo` for one film, a broken one for the other, a
/// `tvshow.nfo`, a good episode `.nfo` and an oversized one.
async fn with_nfo(provider: Provider) -> Result<Scanned> {
    Scanned::prepared(provider, |root: &Path| {
        std::fs::write(root.join("films/Big Buck Test (2019).nfo"), BIG_BUCK_NFO)?;
        std::fs::write(
            root.join("films/Tiny Planet (2021).nfo"),
            "<movie><title>Tiny Planet Renamed</title><plot>never closed",
        )?;
        let season = root.join("series/Test Show/Season 01");
        std::fs::write(root.join("series/Test Show/tvshow.nfo"), SHOW_NFO)?;
        std::fs::write(
            season.join("Test Show S01E02.nfo"),
            "<episodedetails><title>The Second One</title><plot>Things happen.</plot>\
             <aired>2011-04-24</aired><director>Someone Else</director></episodedetails>",
        )?;
        // 1.5 MiB: refused unread, whatever it says.
        let mut big = String::from("<episodedetails><title>Too Big</title><plot>");
        big.push_str(&"x".repeat(1536 * 1024));
        big.push_str("</plot></episodedetails>");
        std::fs::write(season.join("Test Show S01E01.nfo"), big)?;
        Ok(())
    })
    .await
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

crate::with_library_on_both_providers! {
    fixture = with_nfo;
    async fn a_film_nfo_fills_the_item_dto_as_jellyfin_shapes_it(lib) {
        let id = lib.id_of("Big Buck Test").await?;
        let item = lib.json(&format!("/Items/{id}")).await?;
        assert_eq!(item["Overview"], "A large rabbit deals with three bullies.");
        assert_eq!(item["OriginalTitle"], "Grand Lapin");
        assert_eq!(item["SortName"], "Bunny, Big Buck");
        assert_eq!(item["ProductionYear"], 2008);
        assert_eq!(item["PremiereDate"], "2008-05-20T00:00:00.0000000Z");
        assert_eq!(strings(&item["Taglines"]), vec!["One big rabbit."]);
        assert_eq!(strings(&item["Genres"]), vec!["Animation", "Comedy"]);
        assert_eq!(item["GenreItems"][1]["Name"], "Comedy");
        assert_eq!(item["GenreItems"][1]["Id"].as_str().map(str::len), Some(32));
        assert_eq!(item["Studios"][0]["Name"], "Blender Foundation");
        assert_eq!(item["OfficialRating"], "PG");
        assert_eq!(item["CommunityRating"], 6.4);
        assert_eq!(item["ProviderIds"]["Imdb"], "tt1254207");
        assert_eq!(item["ProviderIds"]["Tmdb"], "10378");
        let people: Vec<(String, String, String)> = item["People"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["Name"].as_str().unwrap().to_owned(),
                    p["Type"].as_str().unwrap().to_owned(),
                    p["Role"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        assert_eq!(
            people,
            vec![
                ("Ann Squirrel".to_owned(), "Actor".to_owned(), "Frank".to_owned()),
                ("Frank Rabbit".to_owned(), "Actor".to_owned(), "Big Buck".to_owned()),
                ("Sacha Goedegebure".to_owned(), "Director".to_owned(), String::new()),
                ("Sacha Goedegebure".to_owned(), "Writer".to_owned(), String::new()),
            ]
        );
        // The series' name in an episode comes from tvshow.nfo too; the episode from its own.
        let second = lib.json(&format!("/Items/{}", lib.id_of("The Second One").await?)).await?;
        assert_eq!(second["Overview"], "Things happen.");
        assert_eq!(second["People"][0]["Type"], "Director");
        let show = lib.json(&format!("/Items/{}", lib.id_of("Test Show").await?)).await?;
        assert_eq!(show["ProviderIds"]["Tvdb"], "81189");
        assert_eq!(show["OfficialRating"], "TV-MA");
        assert_eq!(show["ProductionYear"], 2011);
        Ok(())
    }

    async fn broken_and_oversized_nfo_files_are_logged_and_the_items_keep_their_names(lib) {
        assert!(lib.report.errors.is_empty() || lib.report.errors.iter().all(|(p, _)| !p.to_string_lossy().ends_with(".nfo")));
        let tiny = lib.json(&format!("/Items/{}", lib.id_of("Tiny Planet").await?)).await?;
        assert!(tiny.get("Overview").is_none(), "{tiny}");
        assert!(tiny.get("Genres").is_none(), "{tiny}");
        assert_eq!(tiny["ProductionYear"], 2021);
        let first = lib.json(&format!("/Items/{}", lib.id_of("Episode 1").await?)).await?;
        assert!(first.get("Overview").is_none(), "the 1.5 MiB .nfo was not read: {first}");
        // Recorded as read: a rescan does not read them again, and nothing changes.
        lib.rescan().await?;
        assert_eq!(lib.id_of("Tiny Planet").await?, tiny["Id"].as_str().unwrap());
        Ok(())
    }

    async fn genres_studios_people_and_years_are_listed_and_filter_items(lib) {
        let films = lib.library_id(FILMS).await?;
        let all = lib.json("/Genres?Recursive=true").await?;
        assert_eq!(names(&all), vec!["Animation", "Comedy", "Drama"]);
        assert_eq!(all["TotalRecordCount"], 3);
        assert_eq!(all["Items"][0]["Type"], "Genre");
        let in_films = lib.json(&format!("/Genres?ParentId={films}")).await?;
        assert_eq!(names(&in_films), vec!["Animation", "Comedy"]);
        let series_only = lib.json("/Genres?IncludeItemTypes=Series&Recursive=true").await?;
        assert_eq!(names(&series_only), vec!["Comedy", "Drama"]);
        let paged = lib.json("/Genres?StartIndex=1&Limit=1").await?;
        assert_eq!(names(&paged), vec!["Comedy"]);
        assert_eq!(paged["TotalRecordCount"], 3);

        let comedy = lib.json("/Items?Recursive=true&Genres=Comedy&SortBy=SortName").await?;
        assert_eq!(names(&comedy), vec!["Big Buck Test", "Test Show"]);
        let either = lib.json("/Items?Recursive=true&Genres=Animation|Drama&SortBy=SortName").await?;
        assert_eq!(names(&either), vec!["Big Buck Test", "Test Show"]);
        let drama_id = all["Items"][2]["Id"].as_str().unwrap().to_owned();
        let by_id = lib.json(&format!("/Items?Recursive=true&GenreIds={drama_id}")).await?;
        assert_eq!(names(&by_id), vec!["Test Show"]);
        let bad_id = lib.json("/Items?Recursive=true&GenreIds=nonsense").await?;
        assert_eq!(bad_id["TotalRecordCount"], 0);

        let studios = lib.json("/Studios").await?;
        assert_eq!(names(&studios), vec!["Blender Foundation", "HBO"]);
        let hbo = lib.json("/Items?Recursive=true&Studios=HBO").await?;
        assert_eq!(names(&hbo), vec!["Test Show"]);

        let directors = lib.json("/Persons?PersonTypes=Director").await?;
        assert_eq!(names(&directors), vec!["Sacha Goedegebure", "Someone Else"]);
        let ann = lib.json("/Persons?SearchTerm=squirrel").await?;
        assert_eq!(names(&ann), vec!["Ann Squirrel"]);
        assert_eq!(ann["Items"][0]["Type"], "Person");
        let ann_id = ann["Items"][0]["Id"].as_str().unwrap().to_owned();
        let with_ann = lib.json(&format!("/Items?Recursive=true&PersonIds={ann_id}&SortBy=SortName")).await?;
        assert_eq!(names(&with_ann), vec!["Big Buck Test", "Test Show"]);
        // A person's page asks for the person as an item.
        let person = lib.json(&format!("/Items/{ann_id}")).await?;
        assert_eq!(person["Name"], "Ann Squirrel");
        assert_eq!(person["Type"], "Person");
        let genre = lib.json("/Genres/comedy").await?;
        assert_eq!(genre["Name"], "Comedy");
        assert_eq!(lib.get("/Genres/Western").await?.status, http::StatusCode::NOT_FOUND);

        let years = lib.json(&format!("/Years?ParentId={films}")).await?;
        assert_eq!(names(&years), vec!["2021", "2008"]);
        assert_eq!(years["Items"][0]["Type"], "Year");
        let y2008 = lib.json("/Items?Recursive=true&Years=2008").await?;
        assert_eq!(names(&y2008), vec!["Big Buck Test"]);
        let rated = lib.json("/Items?Recursive=true&OfficialRatings=PG").await?;
        assert_eq!(names(&rated), vec!["Big Buck Test"]);

        let filters = lib.json(&format!("/Items/Filters?ParentId={films}")).await?;
        assert_eq!(strings(&filters["Genres"]), vec!["Animation", "Comedy"]);
        assert_eq!(strings(&filters["OfficialRatings"]), vec!["PG"]);
        assert_eq!(filters["Years"], serde_json::json!([2021, 2008]));
        let filters2 = lib.json(&format!("/Items/Filters2?ParentId={films}")).await?;
        assert_eq!(filters2["Genres"][0]["Name"], "Animation");
        assert_eq!(filters2["Genres"][0]["Id"].as_str().map(str::len), Some(32));
        Ok(())
    }

    async fn tags_are_served_listed_and_filter_items_without_regard_to_case(lib) {
        let film = lib.json(&format!("/Items/{}", lib.id_of("Big Buck Test").await?)).await?;
        assert_eq!(strings(&film["Tags"]), vec!["Blender Open Movie", "short film"]);
        let tagged = lib.json("/Items?Recursive=true&Tags=SHORT%20FILM&SortBy=SortName").await?;
        let mut found = names(&tagged);
        found.sort();
        assert_eq!(found, vec!["Big Buck Test", "Test Show"], "{tagged}");
        let either = lib.json("/Items?Recursive=true&Tags=Blender%20Open%20Movie|Nothing").await?;
        assert_eq!(names(&either), vec!["Big Buck Test"]);
        assert_eq!(lib.json("/Items?Recursive=true&Tags=Nothing").await?["TotalRecordCount"], 0);
        let films = lib.library_id(FILMS).await?;
        let filters = lib.json(&format!("/Items/Filters?ParentId={films}")).await?;
        assert_eq!(strings(&filters["Tags"]), vec!["Blender Open Movie", "short film"]);
        // Across both libraries the tag is written two ways: it is listed once.
        let filters2 = lib.json("/Items/Filters2?Recursive=true").await?;
        assert_eq!(strings(&filters2["Tags"]), vec!["Blender Open Movie", "Short film"]);
        Ok(())
    }

    async fn a_changed_nfo_is_read_again_and_a_removed_one_forgotten(lib) {
        let nfo = lib.films_dir.join("Big Buck Test (2019).nfo");
        std::fs::write(&nfo, BIG_BUCK_NFO.replace("<genre>Animation</genre>", "<genre>Family</genre><genre>Short</genre>"))?;
        std::fs::write(
            lib.films_dir.join("Tiny Planet (2021).nfo"),
            "<movie><title>Tiny Planet</title><plot>Fixed now.</plot></movie>",
        )?;
        lib.rescan().await?;
        let item = lib.json(&format!("/Items/{}", lib.id_of("Big Buck Test").await?)).await?;
        assert_eq!(strings(&item["Genres"]), vec!["Family", "Short", "Comedy"]);
        let tiny = lib.json(&format!("/Items/{}", lib.id_of("Tiny Planet").await?)).await?;
        assert_eq!(tiny["Overview"], "Fixed now.");
        assert_eq!(lib.json("/Items?Recursive=true&Genres=Animation").await?["TotalRecordCount"], 0);

        std::fs::remove_file(&nfo)?;
        lib.rescan().await?;
        let item = lib.json(&format!("/Items/{}", lib.id_of("Big Buck Test").await?)).await?;
        assert!(item.get("Genres").is_none(), "{item}");
        assert!(item.get("Overview").is_none(), "{item}");
        assert_eq!(item["ProductionYear"], 2019, "the name's year again");
        Ok(())
    }
}

/// Big Buck Test's video file in `films`.
fn big_buck_file(films: &Path) -> Result<std::path::PathBuf> {
    std::fs::read_dir(films)?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("Big Buck Test (2019).")
                && matches!(p.extension().and_then(|e| e.to_str()), Some("mkv" | "mp4"))
        })
        .context("Big Buck Test's file")
}

/// Remuxes Big Buck Test in place with the chapters of the ffmetadata text `chapters`, or
/// with none (ffmpeg, as any tool would).
fn set_chapters(films: &Path, chapters: Option<&str>) -> Result<()> {
    let film = big_buck_file(films)?;
    let mkv = film.extension().is_some_and(|e| e == "mkv");
    let out = films.join("remuxed.tmp");
    let mut ffmpeg = std::process::Command::new("ffmpeg");
    ffmpeg.args(["-v", "error", "-y", "-i"]).arg(&film);
    let meta = films.join("chapters.ffmeta");
    match chapters {
        Some(text) => {
            std::fs::write(&meta, text)?;
            ffmpeg.arg("-i").arg(&meta).args(["-map_chapters", "1"]);
        }
        None => {
            ffmpeg.args(["-map_chapters", "-1"]);
        }
    }
    let status = ffmpeg
        .args(["-map", "0", "-c", "copy", "-f"])
        .arg(if mkv { "matroska" } else { "mp4" })
        .arg(&out)
        .status()?;
    anyhow::ensure!(status.success(), "ffmpeg could not remux the film");
    let _ = std::fs::remove_file(&meta);
    std::fs::rename(&out, &film)?;
    Ok(())
}

/// Three chapters for Big Buck Test (12 s): "Opening" at 0, "The Chase" at 4.5 s and an
/// untitled one at 9.25 s.
const CHAPTERS: &str = ";FFMETADATA1\n\
    [CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=4500\ntitle=Opening\n\
    [CHAPTER]\nTIMEBASE=1/1000\nSTART=4500\nEND=9250\ntitle=The Chase\n\
    [CHAPTER]\nTIMEBASE=1/1000\nSTART=9250\nEND=12000\n";

async fn chapters_are_read_from_the_file_and_served(provider: Provider) -> Result<()> {
    let lib = Scanned::prepared(provider, |root: &Path| {
        set_chapters(&root.join("films"), Some(CHAPTERS))
    })
    .await?;
    let id = lib.id_of("Big Buck Test").await?;
    let item = lib.json(&format!("/Items/{id}")).await?;
    let date = "0001-01-01T00:00:00.0000000Z";
    assert_eq!(
        item["Chapters"],
        serde_json::json!([
            {"StartPositionTicks": 0, "Name": "Opening", "ImageDateModified": date},
            {"StartPositionTicks": 45_000_000, "Name": "The Chase", "ImageDateModified": date},
            {"StartPositionTicks": 92_500_000, "ImageDateModified": date},
        ]),
        "{item}"
    );
    // A listing gives them only when asked; a film without chapters has an empty list.
    let films = lib
        .json("/Items?Recursive=true&IncludeItemTypes=Movie&Fields=Chapters")
        .await?;
    let by_name = |name: &str| {
        films["Items"]
            .as_array()
            .and_then(|items| items.iter().find(|i| i["Name"] == name))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(
        by_name("Big Buck Test")["Chapters"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    assert_eq!(by_name("Tiny Planet")["Chapters"], serde_json::json!([]));
    let plain = lib
        .json("/Items?Recursive=true&IncludeItemTypes=Movie")
        .await?;
    assert!(plain["Items"][0].get("Chapters").is_none(), "{plain}");

    // The file changes (its chapters removed): the next scan probes it again and forgets them.
    set_chapters(&lib.films_dir, None)?;
    lib.rescan().await?;
    let item = lib.json(&format!("/Items/{id}")).await?;
    assert_eq!(item["Chapters"], serde_json::json!([]), "{item}");
    Ok(())
}

#[tokio::test]
async fn chapters_are_read_from_the_file_and_served_sqlite() -> Result<()> {
    chapters_are_read_from_the_file_and_served(Provider::Sqlite).await
}

#[tokio::test]
async fn chapters_are_read_from_the_file_and_served_postgres() -> Result<()> {
    chapters_are_read_from_the_file_and_served(Provider::Postgres).await
}
