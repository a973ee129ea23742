//! Where each video file of a library goes, judged over the files given together (as
//! Jellyfin's `VideoListResolver` does; the scan gives one top-level folder of a library at a
//! time, or the loose files of its root, since no rule looks across those): a film, an
//! alternate version of a film, a further part of a stacked film, an episode, an extra of a
//! film or series, or a file that cannot be placed (with the reason, for the scan summary).
//! Pure: paths in, roles out; no I/O.
//!
//! - **Extras** (by folder: `Trailers/`, `Extras/`, `Featurettes/`, …; by name: `-trailer`,
//!   ` - Trailer`, `.sample`, `sample.mkv`, `-featurette`, …) belong to the film of their
//!   folder (or, at the library root, to the film their name starts with) or to the series of
//!   their series folder. They are never films or episodes themselves.
//! - **Stacks** (`cd1`/`cd2`, `part1`, `disc 2`, `pt3`) in one folder are one film whose first
//!   part is the item; the others are stored as its parts.
//! - **Versions**: in a film's own folder, files that all start with the folder's name and
//!   differ only after a ` - ` or `[` (`Film (2021) - 1080p`, `Film (2021) - 2160p`) are one
//!   film with several media sources; the file named exactly like the folder, else the
//!   highest resolution, is the primary.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use ephyra_config::LibraryKind;

use super::names::{self, EpisodeName, ExtraType, MovieName, SeriesName};

/// The role of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// A film (the primary file when it has versions or parts).
    Movie {
        /// Its name.
        name: MovieName,
        /// Its version label when the film has several (`1080p`), shown as the source name.
        version: Option<String>,
    },
    /// An episode.
    Episode(EpisodeName),
    /// An extra of a film or series.
    Extra {
        /// Whose extra it is.
        owner: Owner,
        /// What kind.
        extra_type: ExtraType,
        /// Its title.
        title: String,
    },
    /// Another version of the film whose primary file is `primary` (relative path).
    Version {
        /// The primary file.
        primary: PathBuf,
        /// The version label (`2160p`, `Director's Cut`).
        label: String,
    },
    /// A further part of the stacked film whose first part is `primary`.
    Part {
        /// The first part.
        primary: PathBuf,
        /// This part's number (2, 3, ...).
        number: u32,
    },
    /// Cannot be placed; the reason goes to the scan summary.
    Unplaced(&'static str),
}

/// The owner of an extra.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// The film whose primary file is this (relative path).
    Movie(PathBuf),
    /// A series.
    Series(SeriesName),
}

/// Places every file (paths relative to one library folder). The answer has one entry per
/// input path, in input order.
///
/// A path that is not valid UTF-8 (Linux names are bytes) cannot be placed: the store and the
/// API carry paths and names as text, and a lossy copy would point at no file.
pub fn place(kind: LibraryKind, files: &[PathBuf]) -> Vec<(PathBuf, Role)> {
    let (text, bytes): (Vec<PathBuf>, Vec<PathBuf>) =
        files.iter().cloned().partition(|f| f.to_str().is_some());
    let mut placed: HashMap<PathBuf, Role> = match kind {
        LibraryKind::Movies => place_movies(&text),
        LibraryKind::Tvshows => text.iter().map(|f| (f.clone(), place_episode(f))).collect(),
    }
    .into_iter()
    .collect();
    for file in bytes {
        placed.insert(
            file,
            Role::Unplaced("the name is not valid UTF-8; rename the file"),
        );
    }
    files
        .iter()
        .map(|f| {
            let role = placed.remove(f).unwrap_or(Role::Unplaced("not placed"));
            (f.clone(), role)
        })
        .collect()
}

fn stem(path: &Path) -> &str {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
}

fn folder_list(path: &Path) -> Vec<&str> {
    path.parent()
        .map(|p| p.iter().filter_map(|c| c.to_str()).collect())
        .unwrap_or_default()
}

/// An extra found by folder: its type and the folders above the extras folder.
fn extra_by_folder(path: &Path) -> Option<(ExtraType, usize)> {
    folder_list(path)
        .iter()
        .enumerate()
        .find_map(|(i, f)| names::extra_folder_type(f).map(|t| (t, i)))
}

fn place_episode(path: &Path) -> Role {
    let folders = folder_list(path);
    let extra = extra_by_folder(path)
        .or_else(|| names::extra_name_type(stem(path)).map(|t| (t, folders.len())));
    if let Some((extra_type, at)) = extra {
        let series_folder = folders
            .first()
            .filter(|_| at > 0)
            .filter(|f| names::season_folder_number(f).is_none());
        return match series_folder {
            Some(folder) => Role::Extra {
                owner: Owner::Series(names::parse_series_folder(folder)),
                extra_type,
                title: names::extra_title(stem(path)),
            },
            None => Role::Unplaced("an extra outside any series folder"),
        };
    }
    if folders.iter().any(|f| names::is_disc_folder(f)) {
        return Role::Unplaced("a disc folder inside a TV library");
    }
    match names::parse_episode(path) {
        Some(episode) => Role::Episode(episode),
        None => Role::Unplaced("no series folder and no episode number in the name"),
    }
}

fn place_movies(files: &[PathBuf]) -> Vec<(PathBuf, Role)> {
    let mut roles: HashMap<&Path, Role> = HashMap::new();
    let mut extras: Vec<(&Path, ExtraType, Option<PathBuf>)> = Vec::new();
    // Films by folder (relative, "" for the root), in path order.
    let mut by_folder: BTreeMap<PathBuf, Vec<&Path>> = BTreeMap::new();
    for file in files {
        if let Some((extra_type, at)) = extra_by_folder(file) {
            let owner_dir: PathBuf = folder_list(file)[..at].iter().collect();
            extras.push((file, extra_type, Some(owner_dir)));
        } else if let Some(extra_type) = names::extra_name_type(stem(file)) {
            extras.push((file, extra_type, None));
        } else {
            let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
            by_folder.entry(dir).or_default().push(file);
        }
    }

    // Films of each folder: stacks first, then versions.
    let mut primaries_by_folder: HashMap<PathBuf, Vec<&Path>> = HashMap::new();
    for (dir, files) in &by_folder {
        let (entries, stacks) = stack(files, &mut roles);
        let folder_name = dir.file_name().and_then(|n| n.to_str());
        let versions = folder_name
            .filter(|_| entries.len() > 1)
            .and_then(|folder| version_labels(folder, &entries, &stacks));
        match versions {
            Some(labels) => {
                let primary = labels[0].0;
                for (file, label) in &labels {
                    if *file == primary {
                        roles.insert(
                            file,
                            Role::Movie {
                                name: names::parse_movie(file),
                                version: Some(label.clone()),
                            },
                        );
                    } else {
                        roles.insert(
                            file,
                            Role::Version {
                                primary: primary.to_path_buf(),
                                label: label.clone(),
                            },
                        );
                    }
                }
                primaries_by_folder.insert(dir.clone(), vec![primary]);
            }
            None => {
                for file in &entries {
                    roles.insert(
                        file,
                        Role::Movie {
                            name: names::parse_movie(file),
                            version: None,
                        },
                    );
                }
                primaries_by_folder.insert(dir.clone(), entries);
            }
        }
    }

    // Extras find their film.
    for (file, extra_type, owner_dir) in extras {
        let title = names::extra_title(stem(file));
        let owner = match owner_dir {
            // `Film (2001)/Trailers/x.mkv`: the film of `Film (2001)/`.
            Some(dir) if !dir.as_os_str().is_empty() => primaries_by_folder
                .get(&dir)
                .and_then(|films| films.first().copied()),
            Some(_) => None,
            None => {
                let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
                let films = primaries_by_folder.get(&dir);
                // By name first (`Film (2001)-trailer` → `Film (2001)`), then the folder's
                // only film when the extra is in a film's own folder.
                let by_name = films.and_then(|films| {
                    films.iter().copied().find(|f| {
                        let base = names::stack_part(stem(f))
                            .map_or_else(|| stem(f).to_owned(), |p| p.base);
                        title.eq_ignore_ascii_case(&base)
                            || title.to_lowercase().starts_with(&base.to_lowercase())
                    })
                });
                by_name.or_else(|| {
                    films
                        .filter(|f| !dir.as_os_str().is_empty() && f.len() == 1)
                        .and_then(|f| f.first().copied())
                })
            }
        };
        let role = match owner {
            Some(film) => Role::Extra {
                owner: Owner::Movie(film.to_path_buf()),
                extra_type,
                title,
            },
            None => Role::Unplaced("an extra without a film to belong to"),
        };
        roles.insert(file, role);
    }

    files
        .iter()
        .map(|f| {
            let role = roles
                .remove(f.as_path())
                .unwrap_or(Role::Unplaced("not placed"));
            (f.clone(), role)
        })
        .collect()
}

/// Groups stacked parts of one folder; records further parts in `roles` and returns the
/// folder's films (first parts and unstacked files, in path order) and which of them are the
/// first parts of stacks.
fn stack<'a>(
    files: &[&'a Path],
    roles: &mut HashMap<&'a Path, Role>,
) -> (Vec<&'a Path>, HashSet<&'a Path>) {
    // (base in lower case, marker word, lettered) → (part number, file).
    type Parts<'p> = Vec<(u32, &'p Path)>;
    let mut groups: BTreeMap<(String, String, bool), Parts<'a>> = BTreeMap::new();
    for file in files {
        if let Some(part) = names::stack_part(stem(file)) {
            groups
                .entry((part.base.to_lowercase(), part.kind, part.lettered))
                .or_default()
                .push((part.number, file));
        }
    }
    let mut stacked: HashMap<&Path, ()> = HashMap::new();
    let mut primaries = HashSet::new();
    for parts in groups.values_mut() {
        parts.sort();
        parts.dedup_by_key(|(n, _)| *n);
        if parts.len() < 2 {
            continue;
        }
        let primary = parts[0].1;
        primaries.insert(primary);
        for (number, file) in parts.iter().skip(1) {
            roles.insert(
                file,
                Role::Part {
                    primary: primary.to_path_buf(),
                    number: *number,
                },
            );
            stacked.insert(file, ());
        }
    }
    let entries = files
        .iter()
        .copied()
        .filter(|f| !stacked.contains_key(f))
        .collect();
    (entries, primaries)
}

/// When every film of a folder is a version of the folder's film, their labels, primary
/// first; otherwise `None` (they are separate films).
fn version_labels<'a>(
    folder: &str,
    entries: &[&'a Path],
    stacks: &HashSet<&'a Path>,
) -> Option<Vec<(&'a Path, String)>> {
    let folder_lower = folder.to_lowercase();
    let mut labelled = Vec::new();
    for file in entries {
        // A stack is named by its base (`Film (2001) - 1080p cd1` → `Film (2001) - 1080p`).
        let name = names::stack_part(stem(file))
            .filter(|_| stacks.contains(file))
            .map_or_else(|| stem(file).to_owned(), |p| p.base);
        let lower = name.to_lowercase();
        let rest = lower.strip_prefix(&folder_lower)?;
        let rest_original = name.get(name.len() - rest.len()..)?.trim();
        let label = if rest_original.is_empty() {
            String::new()
        } else if let Some(label) = rest_original.strip_prefix('-') {
            label.trim().to_owned()
        } else if rest_original.starts_with('[') {
            rest_original
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_owned()
        } else {
            return None;
        };
        labelled.push((*file, label));
    }
    // The plain name first, then the highest resolution, then by label.
    labelled.sort_by(|(_, a), (_, b)| {
        let key = |label: &str| {
            (
                !label.is_empty(),
                std::cmp::Reverse(names::resolution_of(label).unwrap_or(0)),
                label.to_lowercase(),
            )
        };
        key(a).cmp(&key(b))
    });
    let folder_title = names::parse_movie(&Path::new(folder).join("x.mkv")).title;
    for (_, label) in &mut labelled {
        if label.is_empty() {
            label.clone_from(&folder_title);
        }
    }
    Some(labelled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(kind: LibraryKind, paths: &[&str]) -> Vec<Role> {
        let files: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
        place(kind, &files).into_iter().map(|(_, r)| r).collect()
    }

    fn film(role: &Role) -> (&str, Option<i32>, Option<&str>) {
        match role {
            Role::Movie { name, version } => (name.title.as_str(), name.year, version.as_deref()),
            other => panic!("not a film: {other:?}"),
        }
    }

    /// Jellyfin: StackTests.TestSimpleStack, TestDualStacks, TestMixedExpressionsNotAllowed.
    #[test]
    fn stacked_parts_make_one_film_with_the_trailer_as_its_extra() {
        let r = roles(
            LibraryKind::Movies,
            &[
                "Bad Boys (2006)/Bad Boys (2006) part1.mkv",
                "Bad Boys (2006)/Bad Boys (2006) part2.mkv",
                "Bad Boys (2006)/Bad Boys (2006) part3.mkv",
                "Bad Boys (2006)/Bad Boys (2006) parta.mkv",
                "Bad Boys (2006)/Bad Boys (2006)-trailer.mkv",
                "300 (2006) part1.mkv",
                "300 (2006) part2.mkv",
                "300 (2006)-trailer.mkv",
            ],
        );
        assert_eq!(film(&r[0]), ("Bad Boys", Some(2006), None));
        assert_eq!(
            r[1],
            Role::Part {
                primary: "Bad Boys (2006)/Bad Boys (2006) part1.mkv".into(),
                number: 2
            }
        );
        assert!(matches!(r[2], Role::Part { number: 3, .. }));
        // A lettered part never joins a numbered stack: it stays a film of its own.
        assert!(matches!(r[3], Role::Movie { .. }), "{:?}", r[3]);
        assert_eq!(
            r[4],
            Role::Extra {
                owner: Owner::Movie("Bad Boys (2006)/Bad Boys (2006) part1.mkv".into()),
                extra_type: ExtraType::Trailer,
                title: "Bad Boys (2006)".into()
            }
        );
        assert_eq!(film(&r[5]), ("300", Some(2006), None));
        assert!(matches!(r[6], Role::Part { number: 2, .. }));
        assert!(
            matches!(&r[7], Role::Extra { owner: Owner::Movie(p), .. } if p == Path::new("300 (2006) part1.mkv")),
            "{:?}",
            r[7]
        );
    }

    /// Jellyfin: StackTests false positives.
    #[test]
    fn numbered_titles_are_not_stacked() {
        for set in [
            &["Bad Boys (2006).mkv", "Bad Boys (2007).mkv"][..],
            &["300 (2006).mkv", "300 (2007).mkv"],
            &[
                "Star Trek 1 - The motion picture.mkv",
                "Star Trek 2- The wrath of khan.mkv",
            ],
            &[
                "Harry Potter and the Deathly Hallows.mkv",
                "Harry Potter and the Deathly Hallows 1.mkv",
                "Harry Potter and the Deathly Hallows 2.mkv",
            ],
        ] {
            for role in roles(LibraryKind::Movies, set) {
                assert!(
                    matches!(role, Role::Movie { version: None, .. }),
                    "{set:?}: {role:?}"
                );
            }
        }
    }

    /// Jellyfin: MultiVersionTests.
    #[test]
    fn versions_in_a_film_folder_make_one_film_with_several_sources() {
        let r = roles(
            LibraryKind::Movies,
            &[
                "Film (2021)/Film (2021) - 1080p.mkv",
                "Film (2021)/Film (2021) - 2160p.mkv",
                "Film (2021)/Film (2021) - 720p.mkv",
            ],
        );
        assert!(
            matches!(&r[0], Role::Version { primary, label } if primary == Path::new("Film (2021)/Film (2021) - 2160p.mkv") && label == "1080p"),
            "{:?}",
            r[0]
        );
        assert_eq!(film(&r[1]), ("Film", Some(2021), Some("2160p")));
        assert!(matches!(&r[2], Role::Version { label, .. } if label == "720p"));

        let r = roles(
            LibraryKind::Movies,
            &[
                "Heat (1995)/Heat (1995).mkv",
                "Heat (1995)/Heat (1995) [Director's Cut].mkv",
            ],
        );
        assert_eq!(film(&r[0]), ("Heat", Some(1995), Some("Heat")));
        assert!(matches!(&r[1], Role::Version { label, .. } if label == "Director's Cut"));
    }

    /// Jellyfin: MultiVersionTests.TestMultiVersion (different films in one folder).
    #[test]
    fn different_films_in_one_folder_are_not_versions() {
        let r = roles(
            LibraryKind::Movies,
            &[
                "Collection/Iron Man (2008).mkv",
                "Collection/Iron Man 2 (2010).mkv",
            ],
        );
        assert_eq!(film(&r[0]), ("Iron Man", Some(2008), None));
        assert_eq!(film(&r[1]), ("Iron Man 2", Some(2010), None));
        // At the library root, two files never become versions.
        let r = roles(
            LibraryKind::Movies,
            &["Film (2021) - 1080p.mkv", "Film (2021) - 2160p.mkv"],
        );
        assert!(
            r.iter()
                .all(|r| matches!(r, Role::Movie { version: None, .. }))
        );
    }

    #[test]
    fn extras_folders_belong_to_the_film_of_their_folder() {
        let r = roles(
            LibraryKind::Movies,
            &[
                "Alien (1979)/Alien (1979).mkv",
                "Alien (1979)/Trailers/Teaser.mkv",
                "Alien (1979)/Behind The Scenes/Making of.mkv",
                "Alien (1979)/Featurettes/Design.mkv",
                "Alien (1979)/Alien (1979).sample.mkv",
                "Alien (1979)/sample.mkv",
                "Trailers/Lonely.mkv",
            ],
        );
        let owner = Owner::Movie("Alien (1979)/Alien (1979).mkv".into());
        for (role, kind) in r[1..6].iter().zip([
            ExtraType::Trailer,
            ExtraType::BehindTheScenes,
            ExtraType::Featurette,
            ExtraType::Sample,
            ExtraType::Sample,
        ]) {
            assert!(
                matches!(role, Role::Extra { owner: o, extra_type, .. } if *o == owner && *extra_type == kind),
                "{role:?}"
            );
        }
        assert!(matches!(r[6], Role::Unplaced(_)));
    }

    #[test]
    fn a_scene_sample_of_an_episode_is_an_extra_of_the_series_not_an_episode() {
        let r = roles(
            LibraryKind::Tvshows,
            &[
                "Show (2019)/Season 01/show.s01e03.720p.hdtv.x264-grp.mkv",
                "Show (2019)/Season 01/show.s01e03.720p.hdtv.x264-grp.sample.mkv",
                "Show (2019)/Season 01/Sample/show.s01e03.sample.mkv",
                "Show (2019)/Extras/Bloopers.mkv",
                "Show (2019)/Show - Trailer.mkv",
                "loose.sample.mkv",
            ],
        );
        assert!(matches!(&r[0], Role::Episode(e) if e.episode == Some(3)));
        for role in &r[1..5] {
            assert!(
                matches!(role, Role::Extra { owner: Owner::Series(s), .. } if s.name == "Show"),
                "{role:?}"
            );
        }
        assert!(matches!(r[5], Role::Unplaced(_)));
    }
}
