//! Item listings as SQL: the [`ItemQuery`] a handler fills, the [`SortBy`] whitelist, and
//! [`Sql`], which assembles a statement from `&'static str` fragments with every request
//! value bound as `$n`, so no request text ever reaches the SQL. Builds statements; runs none.

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe};

use super::model::ItemKind;
use crate::jf::JfId;

/// Sort keys a client may ask for; anything else is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    /// By sort name (articles dropped).
    SortName,
    /// By display name.
    Name,
    /// By when the scanner first saw the item.
    DateCreated,
    /// By the user's last playback.
    DatePlayed,
    /// By release date.
    PremiereDate,
    /// By year.
    ProductionYear,
    /// By duration.
    Runtime,
    /// By season number.
    ParentIndexNumber,
    /// By episode number.
    IndexNumber,
    /// By play count.
    PlayCount,
    /// Shuffled.
    Random,
}

impl std::str::FromStr for SortBy {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "sortname" => SortBy::SortName,
            "name" => SortBy::Name,
            "datecreated" => SortBy::DateCreated,
            "dateplayed" | "datelastcontentadded" => SortBy::DatePlayed,
            "premieredate" => SortBy::PremiereDate,
            "productionyear" => SortBy::ProductionYear,
            "runtime" => SortBy::Runtime,
            "parentindexnumber" => SortBy::ParentIndexNumber,
            "indexnumber" => SortBy::IndexNumber,
            "playcount" => SortBy::PlayCount,
            "random" => SortBy::Random,
            _ => return Err(()),
        })
    }
}

impl SortBy {
    /// The SQL expression, from a fixed list. Nullable columns are coalesced so both databases
    /// order them alike.
    fn column(self) -> &'static str {
        match self {
            SortBy::SortName => "i.sort_key",
            SortBy::Name => "COALESCE(md.title, i.name)",
            SortBy::DateCreated => "i.date_created",
            SortBy::DatePlayed => "COALESCE(ud.last_played_at, 0)",
            SortBy::PremiereDate => {
                "COALESCE(md.premiere_date, i.premiere_date, md.production_year, \
                 i.production_year, 0)"
            }
            SortBy::ProductionYear => "COALESCE(md.production_year, i.production_year, 0)",
            SortBy::Runtime => "COALESCE(i.run_time_ticks, 0)",
            SortBy::ParentIndexNumber => "COALESCE(i.parent_index_number, 0)",
            SortBy::IndexNumber => "COALESCE(i.index_number, 0)",
            SortBy::PlayCount => "COALESCE(ud.play_count, 0)",
            SortBy::Random => "RANDOM()",
        }
    }
}

/// Which items a listing wants. Empty lists mean "no restriction".
#[derive(Debug, Clone, Default)]
pub struct ItemQuery {
    /// Whose user data to join and filter on.
    pub user_id: Option<JfId>,
    /// Only items of this library.
    pub library_id: Option<JfId>,
    /// Only items under this item (a series or season).
    pub ancestor_id: Option<JfId>,
    /// Only items under this library or item, whichever it is: a client's `parentId`,
    /// narrowed without first asking the store what it names (an unknown id matches nothing).
    pub parent_id: Option<JfId>,
    /// With a library or ancestor: all descendants, not only direct children.
    pub recursive: bool,
    /// Only these kinds.
    pub include_kinds: Vec<ItemKind>,
    /// Not these kinds.
    pub exclude_kinds: Vec<ItemKind>,
    /// Only these ids.
    pub ids: Vec<JfId>,
    /// Name or original title contains this text, without regard to case or accents.
    pub search_term: Option<String>,
    /// Played (true) or not (false).
    pub is_played: Option<bool>,
    /// Favourite (true) or not (false).
    pub is_favorite: Option<bool>,
    /// Has a resume position.
    pub is_resumable: bool,
    /// Sort keys with "descending" flags, applied in order.
    pub sort: Vec<(SortBy, bool)>,
    /// Rows to skip.
    pub start_index: i64,
    /// Rows to return at most.
    pub limit: Option<i64>,
    /// Not these ids (a film's similar items leave the film out).
    pub exclude_ids: Vec<JfId>,
    /// Only these production years.
    pub years: Vec<i64>,
    /// Sort name starts with this text, without regard to case (the A–Z picker).
    pub name_starts_with: Option<String>,
    /// Sort name sorts before this text, without regard to case (the picker's `#`).
    pub name_less_than: Option<String>,
    /// Genres, studios, people and ratings from local metadata.
    pub metadata: crate::store::metadata::MetadataFilter,
    /// The caller does not need [`ItemPage::total`](super::ItemPage): the listing skips
    /// counting every match (a page sorted by an indexed column then reads only the page).
    pub without_total: bool,
}

/// A bound value.
#[derive(Debug, Clone)]
pub(in crate::store) enum Bind {
    Text(String),
    Int(i64),
}

/// SQL assembled from `&'static str` fragments, with every value bound as `$n`. Because
/// fragments must be static, request text cannot become SQL.
#[derive(Debug, Clone, Default)]
pub(in crate::store) struct Sql {
    text: String,
    binds: Vec<Bind>,
}

impl Sql {
    pub(in crate::store) fn new(fragment: &'static str) -> Sql {
        Sql {
            text: fragment.to_owned(),
            binds: Vec::new(),
        }
    }

    /// True before the first fragment.
    pub(in crate::store) fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    pub(in crate::store) fn push(&mut self, fragment: &'static str) -> &mut Sql {
        self.text.push_str(fragment);
        self
    }

    fn placeholder(&mut self, bind: Bind) -> &mut Sql {
        self.binds.push(bind);
        self.text.push('$');
        self.text.push_str(&self.binds.len().to_string());
        self
    }

    pub(in crate::store) fn text(&mut self, value: impl Into<String>) -> &mut Sql {
        self.placeholder(Bind::Text(value.into()))
    }

    pub(in crate::store) fn int(&mut self, value: i64) -> &mut Sql {
        self.placeholder(Bind::Int(value))
    }

    /// `$a, $b, ...` for a non-empty list.
    pub(in crate::store) fn texts<I: IntoIterator<Item = String>>(
        &mut self,
        values: I,
    ) -> &mut Sql {
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.text(value);
        }
        self
    }

    pub(in crate::store) fn query(&self) -> Query<'_, Any, AnyArguments> {
        // Safe: `text` is built only from static fragments and `$n` placeholders.
        let mut query = sqlx::query(AssertSqlSafe(self.text.clone()));
        for bind in &self.binds {
            query = match bind {
                Bind::Text(v) => query.bind(v.clone()),
                Bind::Int(v) => query.bind(*v),
            };
        }
        query
    }
}

/// Columns of [`Item`] over `items i` and the joins of [`push_item_joins`]: the item, its
/// series `s` and season `se` names, its local metadata `md` (`smd` for the series) and the
/// user's data `ud`. Names, years, dates and overviews from an `.nfo` take the place of those
/// derived from file names. The naming and `.nfo` details a DTO shows come in the same row,
/// so a page needs no follow-up query for them.
const ITEM_COLUMNS: &str = "SELECT i.id, i.library_id, i.parent_id, i.kind, \
     COALESCE(md.title, i.name) AS name, COALESCE(md.sort_title, i.sort_name) AS sort_name, \
     i.path, i.series_id, i.season_id, i.index_number, i.parent_index_number, \
     COALESCE(md.production_year, i.production_year) AS production_year, \
     COALESCE(md.premiere_date, i.premiere_date) AS premiere_date, \
     COALESCE(md.overview, i.overview) AS overview, \
     COALESCE(i.run_time_ticks, md.run_time_ticks) AS run_time_ticks, i.container, \
     i.size_bytes, i.bitrate, i.file_mtime, i.date_created, i.date_modified, \
     COALESCE(smd.title, s.name) AS series_name, se.name AS season_name, \
     ud.playback_position_ticks, ud.play_count, ud.is_favorite, ud.played, ud.last_played_at, \
     i.extra_type, i.version_name, i.index_number_end, i.provider_ids, \
     md.original_title, md.tagline, md.official_rating, md.community_rating, \
     md.provider_ids AS md_provider_ids, md.collection, \
     CASE WHEN i.kind NOT IN ('Series', 'Season') THEN (SELECT COUNT(*) FROM items v \
     WHERE v.owner_id = i.id AND v.owner_role IN ('version', 'part') \
     AND v.probe_error IS NULL) END AS linked_count, \
     CASE WHEN i.kind = 'Series' THEN (SELECT COUNT(*) FROM items c \
     WHERE c.parent_id = i.id AND c.kind = 'Season') END AS season_count, \
     CASE i.kind WHEN 'Series' THEN (SELECT COUNT(*) FROM items e \
     WHERE e.series_id = i.id AND e.kind = 'Episode' AND e.probe_error IS NULL) \
     WHEN 'Season' THEN (SELECT COUNT(*) FROM items e \
     WHERE e.season_id = i.id AND e.kind = 'Episode' AND e.probe_error IS NULL) \
     END AS episode_count, ";

/// `SELECT` and the columns of [`Item`] (see [`ITEM_COLUMNS`]), ending with the user's played
/// episodes of a series or season, so the statement continues with `FROM`.
pub(in crate::store) fn push_item_select(sql: &mut Sql, user: Option<JfId>) {
    sql.push(ITEM_COLUMNS)
        .push(
            "CASE i.kind WHEN 'Series' THEN (SELECT COUNT(*) FROM items e \
             JOIN user_item_data eu ON eu.item_id = e.id WHERE e.series_id = i.id \
             AND e.kind = 'Episode' AND e.probe_error IS NULL AND eu.played = 1 \
             AND eu.user_id = ",
        )
        .text(user_key(user))
        .push(
            ") WHEN 'Season' THEN (SELECT COUNT(*) FROM items e \
             JOIN user_item_data eu ON eu.item_id = e.id WHERE e.season_id = i.id \
             AND e.kind = 'Episode' AND e.probe_error IS NULL AND eu.played = 1 \
             AND eu.user_id = ",
        )
        .text(user_key(user))
        .push(") END AS played_count");
}

/// The joins [`ITEM_COLUMNS`] and the filters read, after `FROM items i` (or a page joined to
/// `items i`), with the user bound.
pub(in crate::store) fn push_item_joins(sql: &mut Sql, user: Option<JfId>) {
    sql.push(
        " LEFT JOIN items s ON s.id = i.series_id \
         LEFT JOIN items se ON se.id = i.season_id \
         LEFT JOIN item_metadata smd ON smd.item_id = i.series_id",
    );
    push_filter_joins(sql, user);
}

/// The joins [`push_filters`] and [`SortBy::column`] read (`md`, `ud`): a listing's first
/// step, which finds the page, needs no more.
pub(in crate::store) fn push_filter_joins(sql: &mut Sql, user: Option<JfId>) {
    sql.push(" LEFT JOIN item_metadata md ON md.item_id = i.id")
        .push(" LEFT JOIN user_item_data ud ON ud.item_id = i.id AND ud.user_id = ")
        .text(user_key(user));
}

/// ` FROM items i` with every join of [`push_item_joins`].
pub(in crate::store) fn push_item_from(sql: &mut Sql, user: Option<JfId>) {
    sql.push(" FROM items i");
    push_item_joins(sql, user);
}

/// `ORDER BY` a listing's sort keys, then sort name and id (so pages never overlap).
pub(in crate::store) fn push_order(sql: &mut Sql, sort: &[(SortBy, bool)]) {
    sql.push(" ORDER BY ");
    for (by, descending) in sort {
        sql.push(by.column())
            .push(if *descending { " DESC, " } else { " ASC, " });
    }
    sql.push("i.sort_name ASC, i.id ASC");
}

/// The user id bound into the user-data join; no user matches the nil id.
pub(in crate::store) fn user_key(user: Option<JfId>) -> String {
    user.map_or_else(|| "-".to_owned(), |u| u.to_n())
}

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern.
fn like_pattern(term: &str) -> String {
    let mut out = String::from("%");
    for c in term.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

pub(in crate::store) fn push_filters(sql: &mut Sql, q: &ItemQuery) {
    sql.push(" WHERE i.probe_error IS NULL");
    // Extras, alternate versions and further parts are reached through their owner only.
    sql.push(" AND i.owner_id IS NULL");
    if let Some(library) = q.library_id {
        sql.push(" AND i.library_id = ").text(library.to_n());
        if !q.recursive && q.ancestor_id.is_none() {
            sql.push(" AND i.parent_id IS NULL");
        }
    }
    if let Some(ancestor) = q.ancestor_id {
        let id = ancestor.to_n();
        if q.recursive {
            sql.push(" AND (i.parent_id = ")
                .text(id.clone())
                .push(" OR i.series_id = ")
                .text(id.clone())
                .push(" OR i.season_id = ")
                .text(id)
                .push(")");
        } else {
            sql.push(" AND i.parent_id = ").text(id);
        }
    }
    if let Some(parent) = q.parent_id {
        // Library and item ids never collide, so one condition covers both.
        let id = parent.to_n();
        if q.recursive {
            sql.push(" AND (i.library_id = ")
                .text(id.clone())
                .push(" OR i.parent_id = ")
                .text(id.clone())
                .push(" OR i.series_id = ")
                .text(id.clone())
                .push(" OR i.season_id = ")
                .text(id)
                .push(")");
        } else {
            sql.push(" AND ((i.library_id = ")
                .text(id.clone())
                .push(" AND i.parent_id IS NULL) OR i.parent_id = ")
                .text(id)
                .push(")");
        }
    }
    if !q.include_kinds.is_empty() {
        sql.push(" AND i.kind IN (")
            .texts(q.include_kinds.iter().map(|k| k.as_str().to_owned()))
            .push(")");
    }
    if !q.exclude_kinds.is_empty() {
        sql.push(" AND i.kind NOT IN (")
            .texts(q.exclude_kinds.iter().map(|k| k.as_str().to_owned()))
            .push(")");
    }
    if !q.ids.is_empty() {
        sql.push(" AND i.id IN (")
            .texts(q.ids.iter().map(|i| i.to_n()))
            .push(")");
    }
    if let Some(term) = q
        .search_term
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        // Folded as the stored key is: without regard to case or accents. On PostgreSQL a
        // trigram index serves it where pg_trgm is installed (migration 0012).
        sql.push(" AND i.search_name LIKE ")
            .text(like_pattern(&super::keys::fold(term)))
            .push(" ESCAPE '\\'");
    }
    match q.is_played {
        // `ud.x = 1` rather than `COALESCE(ud.x, 0) = 1`: a condition that is false for a
        // missing row lets the database start from the user's rows instead of every item.
        Some(true) => {
            sql.push(" AND ud.played = 1");
        }
        Some(false) => {
            sql.push(" AND COALESCE(ud.played, 0) = 0");
        }
        None => {}
    }
    match q.is_favorite {
        Some(true) => {
            sql.push(" AND ud.is_favorite = 1");
        }
        Some(false) => {
            sql.push(" AND COALESCE(ud.is_favorite, 0) = 0");
        }
        None => {}
    }
    if q.is_resumable {
        sql.push(" AND ud.playback_position_ticks > 0");
    }
    if !q.exclude_ids.is_empty() {
        sql.push(" AND i.id NOT IN (")
            .texts(q.exclude_ids.iter().map(|i| i.to_n()))
            .push(")");
    }
    if !q.years.is_empty() {
        sql.push(" AND COALESCE(md.production_year, i.production_year) IN (");
        for (n, year) in q.years.iter().enumerate() {
            if n > 0 {
                sql.push(", ");
            }
            sql.int(*year);
        }
        sql.push(")");
    }
    if let Some(prefix) = q.name_starts_with.as_deref().filter(|p| !p.is_empty()) {
        let mut pattern = like_pattern(prefix);
        pattern.remove(0);
        sql.push(" AND LOWER(i.sort_key) LIKE ")
            .text(pattern)
            .push(" ESCAPE '\\'");
    }
    if let Some(bound) = q.name_less_than.as_deref().filter(|b| !b.is_empty()) {
        sql.push(" AND LOWER(i.sort_key) < ")
            .text(bound.to_lowercase());
    }
    crate::store::metadata::push_metadata_filters(sql, &q.metadata);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_binds_every_value_as_a_numbered_placeholder() {
        let mut sql = Sql::new("SELECT 1 FROM items WHERE id IN (");
        sql.texts(["a".to_owned(), "b".to_owned()])
            .push(") AND x = ")
            .int(3);
        assert_eq!(
            sql.text,
            "SELECT 1 FROM items WHERE id IN ($1, $2) AND x = $3"
        );
        assert_eq!(sql.binds.len(), 3);
    }

    #[test]
    fn search_terms_cannot_inject_wildcards() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(like_pattern("The"), "%the%");
    }

    #[test]
    fn unknown_sort_keys_are_refused_so_the_list_drops_them() {
        assert_eq!("SortName".parse::<SortBy>(), Ok(SortBy::SortName));
        assert_eq!("dateplayed".parse::<SortBy>(), Ok(SortBy::DatePlayed));
        assert!("name; DROP TABLE items".parse::<SortBy>().is_err());
    }
}
