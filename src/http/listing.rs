//! Paging, sorting and CSV for every list the API and the pages serve.
//!
//! Pages are keyset pages: the answer's `next` cursor names the last item's sort value and id,
//! and the next page starts after that pair. An item inserted meanwhile lands where its own
//! sort value puts it, so no item is shown twice or skipped because another arrived.

use actix_web::{HttpRequest, HttpResponse};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ApiError;

/// Items per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 100;
/// Most items one page (or one CSV export) holds.
pub const MAX_LIMIT: usize = 10_000;

/// The query every list takes (beside its own filters).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ListQuery {
    pub limit: Option<usize>,
    /// `next` of the previous page.
    pub cursor: Option<String>,
    /// A column the list sorts by (each list names its own; empty: its default).
    pub sort: String,
    /// `asc` or `desc` (empty: the column's natural order).
    pub order: String,
    /// `csv` for CSV.
    pub format: String,
}

impl ListQuery {
    /// The query of `req` (unknown fields are the list's own filters and are ignored here).
    pub fn of(req: &HttpRequest) -> Result<ListQuery, ApiError> {
        actix_web::web::Query::<ListQuery>::from_query(req.query_string())
            .map(|q| q.into_inner())
            .map_err(|e| ApiError::bad_request(format!("paging: {e}")))
    }

    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
    }

    /// Whether CSV is wanted (`?format=csv` or `Accept: text/csv`).
    pub fn wants_csv(&self, req: &HttpRequest) -> bool {
        self.format.eq_ignore_ascii_case("csv")
            || req
                .headers()
                .get("accept")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.starts_with("text/csv"))
    }
}

/// A value a list sorts by.
#[derive(Debug, Clone, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SortKey {
    Int(i64),
    Text(String),
}

impl From<i64> for SortKey {
    fn from(v: i64) -> Self {
        SortKey::Int(v)
    }
}
impl From<u32> for SortKey {
    fn from(v: u32) -> Self {
        SortKey::Int(v.into())
    }
}
impl From<String> for SortKey {
    fn from(v: String) -> Self {
        SortKey::Text(v)
    }
}
impl From<&str> for SortKey {
    fn from(v: &str) -> Self {
        SortKey::Text(v.to_string())
    }
}

/// How one list sorts: which columns it offers and which it uses by default.
pub struct Sorting {
    /// Column names the list accepts in `sort`, with whether each sorts descending by default.
    pub columns: &'static [(&'static str, bool)],
    /// The column used when `sort` is empty.
    pub default: &'static str,
}

/// The chosen column and direction.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub column: &'static str,
    pub desc: bool,
}

impl Sorting {
    /// The column and direction `q` asks for; an unknown column is a 400 naming the known ones.
    pub fn pick(&self, q: &ListQuery) -> Result<Order, ApiError> {
        let name = if q.sort.is_empty() {
            self.default
        } else {
            q.sort.as_str()
        };
        let (column, natural) = self
            .columns
            .iter()
            .find(|(c, _)| *c == name)
            .copied()
            .ok_or_else(|| {
                let known: Vec<&str> = self.columns.iter().map(|(c, _)| *c).collect();
                ApiError::bad_request(format!(
                    "sort: '{}' is not one of {}",
                    name.chars().take(40).collect::<String>(),
                    known.join(", ")
                ))
            })?;
        let desc = match q.order.as_str() {
            "" => natural,
            "asc" => false,
            "desc" => true,
            other => {
                return Err(ApiError::bad_request(format!(
                    "order: '{}' is not asc or desc",
                    other.chars().take(20).collect::<String>()
                )))
            }
        };
        Ok(Order { column, desc })
    }
}

#[derive(Serialize, Deserialize)]
struct Cursor {
    k: SortKey,
    id: u64,
}

fn encode(key: &SortKey, id: u64) -> String {
    let json = serde_json::to_vec(&Cursor { k: key.clone(), id }).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

fn decode(cursor: &str) -> Result<Cursor, ApiError> {
    let bad = || ApiError::bad_request("cursor: not one this list gave (use `next` as it came)");
    if cursor.len() > 2048 {
        return Err(bad());
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

/// One page of `items` in `order`, after `q.cursor`: `key` gives each item's sort value and
/// its id (the tie-breaker, unique). Returns the page and the cursor of the next one (`None`
/// on the last page).
pub fn page<T>(
    mut items: Vec<T>,
    order: &Order,
    q: &ListQuery,
    key: impl Fn(&T) -> (SortKey, u64),
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let after = q.cursor.as_deref().map(decode).transpose()?;
    let mut keyed: Vec<(SortKey, u64, T)> = items
        .drain(..)
        .map(|t| {
            let (k, id) = key(&t);
            (k, id, t)
        })
        .collect();
    let cmp = |a: (&SortKey, u64), b: (&SortKey, u64)| {
        let o =
            a.0.partial_cmp(b.0)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.1.cmp(&b.1));
        if order.desc {
            o.reverse()
        } else {
            o
        }
    };
    if let Some(c) = &after {
        keyed.retain(|(k, id, _)| cmp((k, *id), (&c.k, c.id)) == std::cmp::Ordering::Greater);
    }
    // Only the page is needed in order: select it, then sort just that.
    let limit = q.limit();
    if keyed.len() > limit + 1 {
        keyed.select_nth_unstable_by(limit, |a, b| cmp((&a.0, a.1), (&b.0, b.1)));
        keyed.truncate(limit + 1);
    }
    keyed.sort_by(|a, b| cmp((&a.0, a.1), (&b.0, b.1)));
    let more = keyed.len() > limit;
    keyed.truncate(limit);
    let next = if more {
        keyed.last().map(|(k, id, _)| encode(k, *id))
    } else {
        None
    };
    Ok((keyed.into_iter().map(|(_, _, t)| t).collect(), next))
}

/// The cursor after an item, for lists that page in their own storage order (by id).
pub fn cursor_after(key: impl Into<SortKey>, id: u64) -> String {
    encode(&key.into(), id)
}

/// The id a `cursor_after` cursor names, for lists that resume a scan from it.
pub fn cursor_id(q: &ListQuery) -> Result<Option<u64>, ApiError> {
    Ok(q.cursor.as_deref().map(decode).transpose()?.map(|c| c.id))
}

/// CSV (RFC 4180) with cells a spreadsheet would run as formulas neutralized.
pub fn csv(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut out = header.join(",");
    out.push_str("\r\n");
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

/// One CSV cell: quoted when needed, and a leading `=`, `+`, `-`, `@`, tab or CR defused.
pub fn csv_cell(s: &str) -> String {
    // A negative number is data, not a formula: spreadsheets read it back as the number.
    let number = s.parse::<f64>().is_ok_and(f64::is_finite);
    let s = if !number && s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// A CSV download named `name.csv`.
pub fn csv_response(name: &str, body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{name}.csv\""),
        ))
        .body(body)
}

/// `{"items": [...], "next": "..."}` (`next` absent on the last page).
pub fn json_page(items: impl Serialize, next: Option<String>) -> HttpResponse {
    let mut body = serde_json::json!({ "items": items });
    if let Some(n) = next {
        body["next"] = Value::String(n);
    }
    HttpResponse::Ok().json(body)
}

/// The page's query string with `cursor` replaced (for a "next page" link) and every other
/// parameter kept.
pub fn with_cursor(query: &str, cursor: &str) -> String {
    with_param(query, "cursor", cursor)
}

/// The query string with `name=value` set (replacing any earlier value), for links that change
/// one thing: the sort column, the direction, the page.
pub fn with_param(query: &str, name: &str, value: &str) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        // A new sort starts from the first page.
        if k != name && !(name != "cursor" && k == "cursor") {
            s.append_pair(&k, &v);
        }
    }
    if !value.is_empty() {
        s.append_pair(name, value);
    }
    s.finish()
}

/// The query string that sorts by `column`: the other way when it is the current column, else
/// in the column's natural order (first page either way).
pub fn sort_query(query: &str, column: &str, current: &Order) -> String {
    let q = with_param(query, "sort", column);
    let order = if current.column == column {
        if current.desc {
            "asc"
        } else {
            "desc"
        }
    } else {
        ""
    };
    with_param(&q, "order", order)
}

/// An arrow for the current sort column's header, nothing for the others.
pub fn sort_mark(column: &str, current: &Order) -> &'static str {
    match (current.column == column, current.desc) {
        (false, _) => "",
        (true, true) => " ▼",
        (true, false) => " ▲",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SORTING: Sorting = Sorting {
        columns: &[("name", false), ("critical", true)],
        default: "name",
    };

    fn q(extra: &str) -> ListQuery {
        actix_web::web::Query::<ListQuery>::from_query(extra)
            .unwrap()
            .into_inner()
    }

    #[test]
    fn pages_stay_stable_when_items_arrive() {
        let items: Vec<(u64, &str)> = vec![(1, "b"), (2, "a"), (3, "d"), (4, "c")];
        let query = q("limit=2");
        let order = SORTING.pick(&query).unwrap();
        let key = |t: &(u64, &str)| (SortKey::from(t.1), t.0);
        let (first, next) = page(items.clone(), &order, &query, key).unwrap();
        assert_eq!(first, vec![(2, "a"), (1, "b")]);
        // An item sorting before the cursor arrives: the second page is not shifted by it.
        let mut grown = items.clone();
        grown.push((5, "aa"));
        let query = q(&format!("limit=2&cursor={}", next.unwrap()));
        let (second, next) = page(grown, &order, &query, key).unwrap();
        assert_eq!(second, vec![(4, "c"), (3, "d")]);
        assert!(next.is_none(), "the last page has no next");
    }

    #[test]
    fn descending_columns_ties_and_bad_input() {
        let items: Vec<(u64, u32)> = vec![(1, 5), (2, 9), (3, 5), (4, 0)];
        let query = q("sort=critical&limit=3");
        let order = SORTING.pick(&query).unwrap();
        assert!(order.desc, "critical sorts most first by default");
        let key = |t: &(u64, u32)| (SortKey::from(t.1), t.0);
        let (p, next) = page(items.clone(), &order, &query, key).unwrap();
        assert_eq!(p, vec![(2, 9), (3, 5), (1, 5)]);
        let query = q(&format!("sort=critical&limit=3&cursor={}", next.unwrap()));
        assert_eq!(
            page(items.clone(), &order, &query, key).unwrap().0,
            vec![(4, 0)]
        );
        assert!(SORTING.pick(&q("sort=password")).is_err());
        assert!(SORTING.pick(&q("order=sideways")).is_err());
        assert!(page(items, &order, &q("cursor=%FF%00"), key).is_err());
    }

    #[test]
    fn csv_quotes_and_defuses() {
        let out = csv(
            &["a", "b"],
            [vec!["=cmd()".to_string(), "x, \"y\"".to_string()]],
        );
        assert_eq!(out, "a,b\r\n'=cmd(),\"x, \"\"y\"\"\"\r\n");
    }

    #[test]
    fn csv_keeps_negative_numbers_and_defuses_formulas_that_start_with_minus() {
        assert_eq!(csv_cell("-62"), "-62");
        assert_eq!(csv_cell("-1.5"), "-1.5");
        assert_eq!(csv_cell("-1+cmd|' /C calc'!A0"), "'-1+cmd|' /C calc'!A0");
        assert_eq!(csv_cell("-inf"), "'-inf");
    }

    #[test]
    fn links_keep_filters_and_restart_on_a_new_sort() {
        assert_eq!(
            with_param("cluster=prod&cursor=abc&sort=name", "sort", "critical"),
            "cluster=prod&sort=critical"
        );
        assert_eq!(
            with_cursor("cluster=prod&cursor=abc", "def"),
            "cluster=prod&cursor=def"
        );
    }
}
