//! Local metadata of items (migration 0009): what an `.nfo` says (overview, tagline, ratings,
//! provider ids, collection) and the genres, studios, people and tags linked to items, with
//! the listings and filters built on them (`/Genres`, `/Studios`, `/Persons`, `Genres=`,
//! `Tags=` ...).
//!
//! Titles, years, dates and overviews are overlaid on the item's own columns when items are
//! read (see `items::query`); this module only writes them. Like `items`, SQL is assembled
//! from constant fragments with every request value bound.

use std::collections::HashMap;

use sqlx::Row;

use super::items::{ItemQuery, Sql, push_filters, push_item_from};
use super::{Store, StoreResult, get_id};
use crate::jf::JfId;
use crate::scan::nfo::{LocalMetadata, PersonKind};
use crate::store::ids::name_id;

/// Listing filters on local metadata. Empty lists mean "no restriction"; names match
/// without regard to case.
#[derive(Debug, Clone, Default)]
pub struct MetadataFilter {
    /// Genre names (`Genres=Action|Drama`).
    pub genres: Vec<String>,
    /// Genre ids (`GenreIds=`).
    pub genre_ids: Vec<JfId>,
    /// Studio names (`Studios=`).
    pub studios: Vec<String>,
    /// Studio ids (`StudioIds=`).
    pub studio_ids: Vec<JfId>,
    /// Person ids (`PersonIds=`).
    pub person_ids: Vec<JfId>,
    /// Person names (`Person=`).
    pub persons: Vec<String>,
    /// With a person filter, only these credits (`PersonTypes=Actor`).
    pub person_kinds: Vec<PersonKind>,
    /// Official ratings (`OfficialRatings=PG-13|R`).
    pub official_ratings: Vec<String>,
    /// Tags (`Tags=Christmas|Favourites`).
    pub tags: Vec<String>,
    /// Only the films of this collection (a BoxSet's children, `ParentId={boxset}`).
    pub collection_id: Option<JfId>,
}

/// Appends the `AND ...` conditions of `filter` (items are `i`, their metadata `md`).
pub(super) fn push_metadata_filters(sql: &mut Sql, filter: &MetadataFilter) {
    let lower = |names: &[String]| -> Vec<String> {
        names.iter().map(|n| n.trim().to_lowercase()).collect()
    };
    let ids = |ids: &[JfId]| -> Vec<String> { ids.iter().map(|i| i.to_n()).collect() };
    let name_ids = |kind: &str, names: &[String]| -> Vec<String> {
        names.iter().map(|n| name_id(kind, n).to_n()).collect()
    };
    let mut genre_ids = ids(&filter.genre_ids);
    genre_ids.extend(name_ids("genre", &filter.genres));
    if !genre_ids.is_empty() {
        sql.push(
            " AND EXISTS (SELECT 1 FROM item_genres g WHERE g.item_id = i.id AND g.genre_id IN (",
        )
        .texts(genre_ids)
        .push("))");
    }
    let mut studio_ids = ids(&filter.studio_ids);
    studio_ids.extend(name_ids("studio", &filter.studios));
    if !studio_ids.is_empty() {
        sql.push(
            " AND EXISTS (SELECT 1 FROM item_studios st WHERE st.item_id = i.id \
             AND st.studio_id IN (",
        )
        .texts(studio_ids)
        .push("))");
    }
    let mut person_ids = ids(&filter.person_ids);
    person_ids.extend(name_ids("person", &filter.persons));
    if !person_ids.is_empty() {
        sql.push(
            " AND EXISTS (SELECT 1 FROM item_people p WHERE p.item_id = i.id \
             AND p.person_id IN (",
        )
        .texts(person_ids)
        .push(")");
        if !filter.person_kinds.is_empty() {
            sql.push(" AND p.kind IN (")
                .texts(filter.person_kinds.iter().map(|k| k.as_str().to_owned()))
                .push(")");
        }
        sql.push(")");
    }
    let tag_ids = name_ids("tag", &filter.tags);
    if !tag_ids.is_empty() {
        sql.push(
            " AND EXISTS (SELECT 1 FROM item_tags tg WHERE tg.item_id = i.id AND tg.tag_id IN (",
        )
        .texts(tag_ids)
        .push("))");
    }
    if !filter.official_ratings.is_empty() {
        sql.push(" AND LOWER(md.official_rating) IN (")
            .texts(lower(&filter.official_ratings))
            .push(")");
    }
    if let Some(set) = filter.collection_id {
        sql.push(" AND md.collection_id = ").text(set.to_n());
    }
}

/// The `.nfo` an item's metadata was read from, to tell whether it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NfoStamp {
    /// The file.
    pub path: String,
    /// Its size when read.
    pub size: i64,
    /// Its modification time when read (unix ms).
    pub mtime: i64,
}

/// A credited person as read for an item's `People`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonRead {
    /// Derived from the name.
    pub id: JfId,
    /// As written.
    pub name: String,
    /// An actor's character.
    pub role: Option<String>,
    /// `Actor`, `Director`, `Writer`.
    pub kind: String,
}

/// Which names a listing counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// `/Genres`.
    Genre,
    /// `/Studios`.
    Studio,
    /// `/Persons`.
    Person,
}

/// A genre, studio or person with how many matching items carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameCount {
    /// Derived from the name.
    pub id: JfId,
    /// As first written.
    pub name: String,
    /// Matching items.
    pub items: i64,
}

/// Links item `id` to `names` with `insert` (`$1` item, `$2` name id, `$3` name, `$4`
/// position), in their order and once each: two spellings that give one `kind` id keep the
/// first.
async fn insert_names(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    insert: &'static str,
    kind: &str,
    id: &str,
    names: &[String],
) -> StoreResult<()> {
    let mut seen = std::collections::HashSet::new();
    for (position, name) in names.iter().enumerate() {
        let name_id = name_id(kind, name).to_n();
        if !seen.insert(name_id.clone()) {
            continue;
        }
        sqlx::query(insert)
            .bind(id)
            .bind(name_id)
            .bind(name)
            .bind(position as i64)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

impl Store {
    /// The `.nfo` stamps of a library's items, by item.
    pub async fn nfo_stamps(&self, library_id: JfId) -> StoreResult<HashMap<JfId, NfoStamp>> {
        let rows = sqlx::query(
            "SELECT m.item_id, m.nfo_path, m.nfo_size, m.nfo_mtime FROM item_metadata m \
             JOIN items i ON i.id = m.item_id WHERE i.library_id = $1 AND m.source = 'nfo'",
        )
        .bind(library_id.to_n())
        .fetch_all(self.pool())
        .await?;
        let mut out = HashMap::new();
        for row in &rows {
            out.insert(
                get_id(row, "item_id")?,
                NfoStamp {
                    path: row.try_get("nfo_path")?,
                    size: row.try_get("nfo_size")?,
                    mtime: row.try_get("nfo_mtime")?,
                },
            );
        }
        Ok(out)
    }

    /// Replaces an item's local metadata with what `meta` says (all empty, with `error`, when
    /// the file could not be read), in one transaction.
    pub async fn set_local_metadata(
        &self,
        item_id: JfId,
        stamp: &NfoStamp,
        meta: &LocalMetadata,
        error: Option<&str>,
    ) -> StoreResult<()> {
        let id = item_id.to_n();
        let mut tx = self.begin_write().await?;
        for table in [
            "DELETE FROM item_genres WHERE item_id = $1",
            "DELETE FROM item_studios WHERE item_id = $1",
            "DELETE FROM item_people WHERE item_id = $1",
            "DELETE FROM item_tags WHERE item_id = $1",
        ] {
            sqlx::query(table).bind(&id).execute(&mut *tx).await?;
        }
        let sort_title = meta
            .sort_title
            .clone()
            .or_else(|| meta.title.as_deref().map(crate::scan::names::sort_name));
        // The set's name as a BoxSet shows it; its id follows from it (see `store::boxsets`).
        let collection = meta
            .collection
            .as_deref()
            .and_then(crate::store::boxsets::collection_name);
        let provider_ids = (!meta.provider_ids.is_empty())
            .then(|| serde_json::to_string(&meta.provider_ids).unwrap_or_default());
        sqlx::query(
            "INSERT INTO item_metadata (item_id, source, nfo_path, nfo_size, nfo_mtime, \
             parse_error, title, original_title, sort_title, production_year, premiere_date, \
             overview, tagline, official_rating, community_rating, run_time_ticks, \
             provider_ids, collection, collection_id) \
             VALUES ($1, 'nfo', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
             CAST($14 AS DOUBLE PRECISION), $15, $16, $17, $18) \
             ON CONFLICT (item_id) DO UPDATE SET source = excluded.source, \
             nfo_path = excluded.nfo_path, nfo_size = excluded.nfo_size, \
             nfo_mtime = excluded.nfo_mtime, parse_error = excluded.parse_error, \
             title = excluded.title, original_title = excluded.original_title, \
             sort_title = excluded.sort_title, production_year = excluded.production_year, \
             premiere_date = excluded.premiere_date, overview = excluded.overview, \
             tagline = excluded.tagline, official_rating = excluded.official_rating, \
             community_rating = excluded.community_rating, \
             run_time_ticks = excluded.run_time_ticks, provider_ids = excluded.provider_ids, \
             collection = excluded.collection, collection_id = excluded.collection_id",
        )
        .bind(&id)
        .bind(&stamp.path)
        .bind(stamp.size)
        .bind(stamp.mtime)
        .bind(error)
        .bind(meta.title.clone())
        .bind(meta.original_title.clone())
        .bind(sort_title)
        .bind(meta.year)
        .bind(meta.premiered)
        .bind(meta.plot.clone())
        .bind(meta.tagline.clone())
        .bind(meta.official_rating.clone())
        // Bound as text and cast: a NULL float makes sqlx's Any driver prepare the statement
        // with an integer parameter on PostgreSQL, which a later float then does not fit.
        .bind(meta.community_rating.map(|r| r.to_string()))
        .bind(meta.run_time_ticks)
        .bind(provider_ids)
        .bind(collection.clone())
        .bind(
            collection
                .as_deref()
                .map(|name| self.ids().boxset(name).to_n()),
        )
        .execute(&mut *tx)
        .await?;
        insert_names(
            &mut tx,
            "INSERT INTO item_genres (item_id, genre_id, name, position) VALUES ($1, $2, $3, $4)",
            "genre",
            &id,
            &meta.genres,
        )
        .await?;
        insert_names(
            &mut tx,
            "INSERT INTO item_studios (item_id, studio_id, name, position) VALUES ($1, $2, $3, $4)",
            "studio",
            &id,
            &meta.studios,
        )
        .await?;
        insert_names(
            &mut tx,
            "INSERT INTO item_tags (item_id, tag_id, name, position) VALUES ($1, $2, $3, $4)",
            "tag",
            &id,
            &meta.tags,
        )
        .await?;
        for (position, person) in meta.people.iter().enumerate() {
            sqlx::query(
                "INSERT INTO item_people (item_id, position, person_id, name, role, kind, \
                 image_path, image_tag) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&id)
            .bind(position as i64)
            .bind(name_id("person", &person.name).to_n())
            .bind(&person.name)
            .bind(person.role.clone())
            .bind(person.kind.as_str())
            .bind(
                person
                    .image
                    .as_ref()
                    .map(|i| i.path.to_string_lossy().into_owned()),
            )
            .bind(person.image.as_ref().map(|i| i.tag.clone()))
            .execute(&mut *tx)
            .await?;
        }
        // The item's sort and search keys follow its `.nfo` title and sort title.
        crate::store::items::keys::refresh(&mut tx, std::slice::from_ref(&id)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets an item's local metadata (its `.nfo` is gone).
    pub async fn remove_local_metadata(&self, item_id: JfId) -> StoreResult<()> {
        let id = item_id.to_n();
        let mut tx = self.begin_write().await?;
        for table in [
            "DELETE FROM item_genres WHERE item_id = $1",
            "DELETE FROM item_studios WHERE item_id = $1",
            "DELETE FROM item_people WHERE item_id = $1",
            "DELETE FROM item_tags WHERE item_id = $1",
            "DELETE FROM item_metadata WHERE item_id = $1",
        ] {
            sqlx::query(table).bind(&id).execute(&mut *tx).await?;
        }
        crate::store::items::keys::refresh(&mut tx, std::slice::from_ref(&id)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The genres, studios or people of the items `query` matches (paging and sorting of the
    /// query ignored), by name, with how many items carry each.
    pub async fn name_counts(
        &self,
        kind: NameKind,
        query: &ItemQuery,
        person_kinds: &[PersonKind],
    ) -> StoreResult<Vec<NameCount>> {
        let (select, join) = match kind {
            NameKind::Genre => (
                "SELECT n.genre_id AS id, MIN(n.name) AS name, COUNT(DISTINCT i.id) AS items ",
                " JOIN item_genres n ON n.item_id = i.id",
            ),
            NameKind::Studio => (
                "SELECT n.studio_id AS id, MIN(n.name) AS name, COUNT(DISTINCT i.id) AS items ",
                " JOIN item_studios n ON n.item_id = i.id",
            ),
            NameKind::Person => (
                "SELECT n.person_id AS id, MIN(n.name) AS name, COUNT(DISTINCT i.id) AS items ",
                " JOIN item_people n ON n.item_id = i.id",
            ),
        };
        let mut sql = Sql::new(select);
        push_item_from(&mut sql, query.user_id);
        sql.push(join);
        push_filters(&mut sql, query);
        if kind == NameKind::Person && !person_kinds.is_empty() {
            sql.push(" AND n.kind IN (")
                .texts(person_kinds.iter().map(|k| k.as_str().to_owned()))
                .push(")");
        }
        sql.push(match kind {
            NameKind::Genre => " GROUP BY n.genre_id",
            NameKind::Studio => " GROUP BY n.studio_id",
            NameKind::Person => " GROUP BY n.person_id",
        });
        sql.push(" ORDER BY MIN(LOWER(n.name)), 1");
        let rows = sql.query().fetch_all(self.pool()).await?;
        rows.iter()
            .map(|row| {
                Ok(NameCount {
                    id: get_id(row, "id")?,
                    name: row.try_get("name")?,
                    items: row.try_get("items")?,
                })
            })
            .collect()
    }

    /// The official ratings of the items `query` matches, sorted.
    pub async fn official_ratings(&self, query: &ItemQuery) -> StoreResult<Vec<String>> {
        let mut sql = Sql::new("SELECT DISTINCT md.official_rating AS rating ");
        push_item_from(&mut sql, query.user_id);
        push_filters(&mut sql, query);
        sql.push(" AND md.official_rating IS NOT NULL ORDER BY rating");
        let rows = sql.query().fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("rating").map_err(Into::into))
            .collect()
    }

    /// The tags of the items `query` matches, each once (as first written), sorted without
    /// regard to case.
    pub async fn tag_names(&self, query: &ItemQuery) -> StoreResult<Vec<String>> {
        let mut sql = Sql::new("SELECT MIN(tg.name) AS name ");
        push_item_from(&mut sql, query.user_id);
        sql.push(" JOIN item_tags tg ON tg.item_id = i.id");
        push_filters(&mut sql, query);
        sql.push(" GROUP BY tg.tag_id ORDER BY MIN(LOWER(tg.name))");
        let rows = sql.query().fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("name").map_err(Into::into))
            .collect()
    }

    /// The local images of `people` (from an actor's `<thumb>`, see `scan::nfo`): for each,
    /// the image of its first credit (by item, then position) that has one, with that item's
    /// library, so a person shows one image whichever film lists it.
    pub async fn person_images(
        &self,
        people: &[JfId],
    ) -> StoreResult<HashMap<JfId, crate::store::boxsets::BorrowedImage>> {
        let mut out = HashMap::new();
        if people.is_empty() {
            return Ok(out);
        }
        let mut sql = Sql::new(
            "SELECT p.person_id, p.item_id, p.image_path, p.image_tag, i.library_id \
             FROM item_people p JOIN items i ON i.id = p.item_id \
             WHERE p.image_path IS NOT NULL AND p.image_tag IS NOT NULL \
             AND i.probe_error IS NULL AND p.person_id IN (",
        );
        sql.texts(people.iter().map(JfId::to_n))
            .push(") ORDER BY p.person_id, p.item_id, p.position");
        for row in sql.query().fetch_all(self.pool()).await? {
            let person = get_id(&row, "person_id")?;
            if out.contains_key(&person) {
                continue;
            }
            let path: String = row.try_get("image_path")?;
            out.insert(
                person,
                crate::store::boxsets::BorrowedImage {
                    image: crate::store::items::ItemImage {
                        item_id: get_id(&row, "item_id")?,
                        image_type: "Primary".to_owned(),
                        image_index: 0,
                        path: std::path::PathBuf::from(path),
                        tag: row.try_get("image_tag")?,
                        file_mtime: None,
                    },
                    library_id: get_id(&row, "library_id")?,
                },
            );
        }
        Ok(out)
    }

    /// The name of a genre, studio or person by id, when any item carries it.
    pub async fn name_of(&self, kind: NameKind, id: JfId) -> StoreResult<Option<String>> {
        let sql = match kind {
            NameKind::Genre => "SELECT MIN(name) AS name FROM item_genres WHERE genre_id = $1",
            NameKind::Studio => "SELECT MIN(name) AS name FROM item_studios WHERE studio_id = $1",
            NameKind::Person => "SELECT MIN(name) AS name FROM item_people WHERE person_id = $1",
        };
        let row = sqlx::query(sql)
            .bind(id.to_n())
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("name")?)
    }
}
