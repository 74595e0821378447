pub mod attachments;
pub mod chats;
pub mod health;
pub mod sessions;
pub mod tasks;
pub mod traces;
pub mod workflows;

use baton_core::Page;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::ApiError;

pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 500;

/// `?limit=&cursor=` of every listing.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Items per page, 1 to 500; 100 when absent.
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page; absent for the first page.
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn limit(&self) -> Result<u32, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(n) => Err(ApiError::bad(
                "invalid_limit",
                format!("limit must be between 1 and {MAX_LIMIT}, got {n}"),
            )),
        }
    }

    /// The id the page starts after: the `next_cursor` of an earlier page.
    pub fn after<T: std::str::FromStr>(&self) -> Result<Option<T>, ApiError> {
        self.cursor
            .as_deref()
            .map(str::parse::<T>)
            .transpose()
            .map_err(|_| {
                ApiError::bad(
                    "invalid_cursor",
                    "invalid cursor: not one this server issued",
                )
            })
    }
}

/// A page of `items` read with `limit + 1`: the extra one only says that more follow, and
/// the last kept item's id is the cursor for them.
pub fn page_of<T>(mut items: Vec<T>, limit: u32, id: impl Fn(&T) -> String) -> Page<T> {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = more.then(|| items.last()).flatten().map(id);
    Page { items, next_cursor }
}
