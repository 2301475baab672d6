//! Cursor paging, the same on every list route: `?limit=` (1 to the route's maximum) and
//! `?after=<cursor>`, where the cursor is the `Windlass-Next-Cursor` header of the page
//! before (absent on the last page). Cursors are opaque to clients: base64url of a
//! position in the listing's order, so a page boundary survives inserts and deletes
//! around it (no offsets).

use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::problem::Problem;

/// Names the cursor of the next page when there may be one; absent on the last page.
pub const NEXT_CURSOR_HEADER: &str = "windlass-next-cursor";

/// A list route's page size when none is asked for, and the most it gives.
pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The `Windlass-Next-Cursor` of the page before; from the start without it.
    pub after: Option<String>,
    /// Items per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

impl PageQuery {
    /// The page size asked for, checked against `max`.
    pub fn limit(&self, default: u32, max: u32) -> Result<u32, Problem> {
        match self.limit {
            None => Ok(default),
            Some(limit) if (1..=max).contains(&limit) => Ok(limit),
            Some(_) => Err(Problem::bad_request(format!(
                "limit must be between 1 and {max}"
            ))),
        }
    }

    /// The position the cursor names, as the route encoded it.
    pub fn position(&self) -> Result<Option<String>, Problem> {
        self.after.as_deref().map(decode).transpose()
    }

    /// [`PageQuery::position`] parsed as the route's own position type.
    pub fn position_as<P: std::str::FromStr>(&self) -> Result<Option<P>, Problem> {
        self.position()?
            .map(|position| position.parse().map_err(|_| not_a_cursor()))
            .transpose()
    }
}

fn not_a_cursor() -> Problem {
    Problem::bad_request("after is not a cursor this API gave out")
}

/// A cursor for `position` (a route's own encoding of where an item sits).
pub fn encode(position: &str) -> String {
    URL_SAFE_NO_PAD.encode(position)
}

fn decode(cursor: &str) -> Result<String, Problem> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| not_a_cursor())?;
    String::from_utf8(bytes).map_err(|_| not_a_cursor())
}

/// One page of a listing, answered as a JSON array with the next page's cursor in
/// `Windlass-Next-Cursor`.
pub struct Page<T> {
    pub items: Vec<T>,
    /// The position of the last item when the page is full (there may be more).
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// A page of `items` fetched with `limit`: full means there may be more after the
    /// last one.
    pub fn of(items: Vec<T>, limit: u32, position: impl Fn(&T) -> String) -> Self {
        let next = (items.len() == limit as usize)
            .then(|| items.last().map(&position))
            .flatten();
        Self { items, next }
    }

    /// A page cut from a short listing held in full (an organisation's bindings, its
    /// projects): the items after `after` in the listing's order, which `position`
    /// must follow (ascending).
    pub fn cut(
        items: Vec<T>,
        query: &PageQuery,
        position: impl Fn(&T) -> String,
    ) -> Result<Self, Problem> {
        Self::cut_in_order(items, query, position, false)
    }

    /// [`Page::cut`] for a newest-first listing: `position` descending.
    pub fn cut_newest_first(
        items: Vec<T>,
        query: &PageQuery,
        position: impl Fn(&T) -> String,
    ) -> Result<Self, Problem> {
        Self::cut_in_order(items, query, position, true)
    }

    fn cut_in_order(
        mut items: Vec<T>,
        query: &PageQuery,
        position: impl Fn(&T) -> String,
        descending: bool,
    ) -> Result<Self, Problem> {
        let limit = query.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
        items.sort_by_key(|item| position(item));
        if descending {
            items.reverse();
        }
        if let Some(after) = query.position()? {
            items.retain(|item| {
                let here = position(item);
                if descending {
                    here < after
                } else {
                    here > after
                }
            });
        }
        items.truncate(limit as usize);
        Ok(Self::of(items, limit, position))
    }
}

impl<T: Serialize> IntoResponse for Page<T> {
    fn into_response(self) -> Response {
        let mut response = axum::Json(self.items).into_response();
        if let Some(value) = self
            .next
            .and_then(|next| HeaderValue::from_str(&encode(&next)).ok())
        {
            response.headers_mut().insert(NEXT_CURSOR_HEADER, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(after: Option<&str>, limit: Option<u32>) -> PageQuery {
        PageQuery {
            after: after.map(encode),
            limit,
        }
    }

    #[test]
    fn pages_cut_from_a_listing_cover_it_once_in_order() {
        let names: Vec<String> = ["delta", "alpha", "charlie", "bravo", "echo"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = Page::cut(names.clone(), &query(after.as_deref(), Some(2)), |n| {
                n.clone()
            })
            .unwrap();
            seen.extend(page.items.clone());
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, ["alpha", "bravo", "charlie", "delta", "echo"]);
    }

    #[test]
    fn a_made_up_cursor_or_limit_is_a_precise_400() {
        let bad = PageQuery {
            after: Some("%%%".into()),
            limit: None,
        };
        assert!(bad.position().is_err());
        assert!(query(None, Some(0)).limit(100, 1000).is_err());
        assert!(query(None, Some(1001)).limit(100, 1000).is_err());
    }
}
