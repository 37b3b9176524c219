//! Query parameters, read one way for pages and API alike: every value is checked on its own
//! and a bad or unknown one is a 400 that names it.

use crate::error::ConsoleError;
use chrono::{DateTime, Utc};
use regstat_store::browse::{ActivityQuery, RepositoryQuery, RepositorySort};
use regstat_store::reports::{Params, parse_since};
use std::collections::BTreeMap;

/// How a list is answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    /// JSON (the API's default).
    #[default]
    Json,
    /// CSV with a header row: the same rows.
    Csv,
}

/// A request's query parameters, each taken at most once.
#[derive(Debug, Clone, Default)]
pub struct Query {
    values: BTreeMap<String, String>,
}

impl Query {
    /// Reads `query` (`a=1&b=2`), refusing parameters outside `allowed`, repeated ones, and
    /// empty values (read as absent, as an empty form field is).
    pub fn parse(query: &str, allowed: &[&str]) -> Result<Self, ConsoleError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|e| ConsoleError::parameter("query", e.to_string()))?;
        let mut values = BTreeMap::new();
        for (key, value) in pairs {
            if !allowed.contains(&key.as_str()) {
                return Err(ConsoleError::parameter(
                    &key,
                    format!(
                        "unknown parameter (this endpoint takes: {})",
                        allowed.join(", ")
                    ),
                ));
            }
            if value.is_empty() {
                continue;
            }
            if values.insert(key.clone(), value).is_some() {
                return Err(ConsoleError::parameter(&key, "given twice"));
            }
        }
        Ok(Self { values })
    }

    /// The parameters `pairs` (absent and empty ones left out), as a page asks the API's
    /// functions for what it shows.
    pub fn of(pairs: &[(&str, Option<String>)]) -> Self {
        let values = pairs
            .iter()
            .filter_map(|(k, v)| {
                v.clone()
                    .filter(|v| !v.is_empty())
                    .map(|v| ((*k).to_owned(), v))
            })
            .collect();
        Self { values }
    }

    /// The same parameters with `name` set to `value`.
    pub fn with(mut self, name: &str, value: String) -> Self {
        self.values.insert(name.to_owned(), value);
        self
    }

    /// The parameters as a query string (`a=1&b=2`).
    pub fn encode(&self) -> String {
        serde_urlencoded::to_string(&self.values).unwrap_or_default()
    }

    /// The text of `name`, if given.
    pub fn text(&self, name: &str) -> Option<String> {
        self.values.get(name).cloned()
    }

    /// A whole number, if given.
    pub fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, ConsoleError> {
        self.values
            .get(name)
            .map(|v| {
                v.parse().map_err(|_| {
                    ConsoleError::parameter(name, format!("{v:?} is not a whole number"))
                })
            })
            .transpose()
    }

    /// A time: RFC 3339, or a duration ago (`7d`).
    pub fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, ConsoleError> {
        self.values
            .get(name)
            .map(|v| parse_since(v).map_err(|e| ConsoleError::parameter(name, e)))
            .transpose()
    }

    /// `format`: `json` or `csv`.
    pub fn format(&self) -> Result<Format, ConsoleError> {
        match self.values.get("format").map(String::as_str) {
            None | Some("json") => Ok(Format::Json),
            Some("csv") => Ok(Format::Csv),
            Some(other) => Err(ConsoleError::parameter(
                "format",
                format!("{other:?}: use json or csv"),
            )),
        }
    }
}

/// What `/api/v1/reports/{name}` takes: the report's parameters and `format`.
pub const REPORT_PARAMS: [&str; 10] = [
    "days",
    "limit",
    "offset",
    "grace",
    "registry",
    "repository",
    "tag",
    "actor",
    "since",
    "format",
];

/// The report parameters of `query` (as `regstat report NAME` takes them as flags).
pub fn report_params(query: &Query) -> Result<Params, ConsoleError> {
    Ok(Params {
        days: query.number("days")?,
        limit: query.number("limit")?,
        offset: query.number("offset")?,
        grace: query.text("grace"),
        registry: query.text("registry"),
        repository: query.text("repository"),
        tag: query.text("tag"),
        actor: query.text("actor"),
        since: query.text("since"),
    })
}

/// What the repository list takes.
pub const REPOSITORY_PARAMS: [&str; 7] =
    ["q", "registry", "sort", "dir", "page", "per_page", "format"];

/// Rows per page of a list, unless asked otherwise.
pub const PAGE_SIZE: i64 = 50;
/// The most rows a page may ask for.
pub const MAX_PAGE_SIZE: i64 = 500;

/// The repository list's query, and its page number (from 1).
pub fn repository_query(query: &Query) -> Result<(RepositoryQuery, i64), ConsoleError> {
    let sort = match query.text("sort").as_deref() {
        None | Some("name") => RepositorySort::Name,
        Some("tags") => RepositorySort::Tags,
        Some("pulls") => RepositorySort::Pulls,
        Some("last_pulled") => RepositorySort::LastPulled,
        Some("last_pushed") => RepositorySort::LastPushed,
        Some("size") => RepositorySort::Size,
        Some(other) => {
            return Err(ConsoleError::parameter(
                "sort",
                format!("{other:?}: use name, tags, pulls, last_pulled, last_pushed or size"),
            ));
        }
    };
    let descending = match query.text("dir").as_deref() {
        None => sort != RepositorySort::Name,
        Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(ConsoleError::parameter(
                "dir",
                format!("{other:?}: use asc or desc"),
            ));
        }
    };
    let page = query.number::<i64>("page")?.unwrap_or(1);
    if page < 1 {
        return Err(ConsoleError::parameter("page", "pages start at 1"));
    }
    let per_page = query.number::<i64>("per_page")?.unwrap_or(PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&per_page) {
        return Err(ConsoleError::parameter(
            "per_page",
            format!("must be between 1 and {MAX_PAGE_SIZE}"),
        ));
    }
    Ok((
        RepositoryQuery {
            search: query.text("q"),
            registry: query.text("registry"),
            sort,
            descending,
            limit: per_page,
            offset: (page - 1).saturating_mul(per_page),
        },
        page,
    ))
}

/// What the activity takes.
pub const ACTIVITY_PARAMS: [&str; 9] = [
    "action",
    "repository",
    "tag",
    "actor",
    "since",
    "until",
    "after",
    "limit",
    "format",
];

/// The activity's query.
pub fn activity_query(query: &Query) -> Result<ActivityQuery, ConsoleError> {
    let action = query.text("action");
    if let Some(action) = &action
        && !["push", "pull", "mount", "delete"].contains(&action.as_str())
    {
        return Err(ConsoleError::parameter(
            "action",
            format!("{action:?}: use push, pull, mount or delete"),
        ));
    }
    let limit = query.number::<i64>("limit")?.unwrap_or(PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        return Err(ConsoleError::parameter(
            "limit",
            format!("must be between 1 and {MAX_PAGE_SIZE}"),
        ));
    }
    let after = query
        .text("after")
        .map(|cursor| decode_cursor(&cursor))
        .transpose()?;
    Ok(ActivityQuery {
        action,
        repository: query.text("repository"),
        tag: query.text("tag"),
        actor: query.text("actor"),
        since: query.time("since")?,
        until: query.time("until")?,
        after,
        limit,
    })
}

/// The cursor of the page after an entry: its time and its event id.
pub fn encode_cursor(at: DateTime<Utc>, event_id: &str) -> String {
    format!(
        "{}~{event_id}",
        at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
    )
}

fn decode_cursor(cursor: &str) -> Result<(DateTime<Utc>, String), ConsoleError> {
    let bad = || ConsoleError::parameter("after", "not a cursor this console made");
    let (at, id) = cursor.split_once('~').ok_or_else(bad)?;
    let at = DateTime::parse_from_rfc3339(at).map_err(|_| bad())?;
    Ok((at.with_timezone(&Utc), id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_repeated_and_malformed_parameters_are_named() {
        let refused = |query: &str, allowed: &[&str]| match Query::parse(query, allowed) {
            Err(ConsoleError::BadParameter { parameter, .. }) => parameter,
            other => panic!("{query}: {other:?}"),
        };
        assert_eq!(refused("dayz=3", &REPORT_PARAMS), "dayz");
        assert_eq!(refused("days=3&days=4", &REPORT_PARAMS), "days");
        let query = Query::parse("days=three", &REPORT_PARAMS).expect("parsed");
        assert!(
            matches!(report_params(&query), Err(ConsoleError::BadParameter { parameter, .. }) if parameter == "days")
        );
        let query = Query::parse("days=&limit=5", &REPORT_PARAMS).expect("parsed");
        assert_eq!(report_params(&query).expect("params").days, None);
    }

    #[test]
    fn cursors_round_trip() {
        let at = DateTime::parse_from_rfc3339("2026-12-02T02:29:46.473123456Z")
            .expect("time")
            .with_timezone(&Utc);
        let cursor = encode_cursor(at, "id~with~tildes");
        assert_eq!(
            decode_cursor(&cursor).expect("cursor"),
            (at, "id~with~tildes".to_owned())
        );
        assert!(decode_cursor("nonsense").is_err());
    }
}
