//! Response shapes shared by several features (PascalCase, nulls left out).

use serde::Serialize;

/// Jellyfin's `QueryResult<T>`: all three fields are required by the Kotlin SDK.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryResult<T> {
    /// The page of results.
    pub items: Vec<T>,
    /// How many results exist in total.
    pub total_record_count: u64,
    /// Offset of the first result.
    pub start_index: u64,
}
