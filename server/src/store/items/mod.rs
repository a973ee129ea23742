//! Libraries, items (films, series, seasons, episodes, extras), their media streams and
//! images: what the scanner writes and the browsing API reads, split by concern:
//!
//! - [`model`]: the records (plain values);
//! - [`query`]: listings as SQL, built from constant fragments with every request value bound,
//!   sort columns from the [`SortBy`] whitelist, so no request text ever reaches the SQL;
//! - [`read`]: the API's reads;
//! - [`keys`]: the sort and search keys stored on each item, derived at write time;
//! - [`write`]: the scanner's writes.
//!
//! Items whose file ffprobe could not read (`probe_error` set) are kept so the scanner does
//! not re-probe them, but are never listed. Nothing here depends on the scanner: the stream
//! types are the store's own ([`crate::store::streams`]).

pub mod keys;
pub mod model;
pub mod query;
mod read;
mod write;

pub use model::{
    FolderCounts, Item, ItemImage, ItemKey, ItemKind, ItemNaming, ItemPage, KnownFile, Library,
    Linked, LocalInfo, NamingRead, NewItem, OwnerRole, ScanSummaryRow, UserData,
};
pub use query::{ItemQuery, SortBy};
pub(super) use query::{Sql, push_filters, push_item_from};
pub use read::{ItemNames, PageRelated};
pub use write::{ScanItem, ScanItemPages};
