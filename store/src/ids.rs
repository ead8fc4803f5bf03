//! Typed ids read from rows: stored as text, read back as the domain's types.

use sqlx::any::AnyRow;
use sqlx::{ColumnIndex, Row};

/// Column `at` of `row` as a typed id (`RoomName`, `PersonId`, `CaseId`).
pub(crate) fn text_id<T, I>(row: &AnyRow, at: I) -> Result<T, sqlx::Error>
where
    T: From<String>,
    I: ColumnIndex<AnyRow>,
{
    row.try_get::<String, _>(at).map(T::from)
}
