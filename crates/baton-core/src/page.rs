use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One page of a keyset-paginated listing. `next_cursor` is `null` on the last page.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "PageOf{T}")]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}
