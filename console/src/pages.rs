//! The HTML pages. Each handler reads what the API endpoint of the same data reads, builds
//! [`Table`]s (every table links its CSV and JSON: the API's rows for the same parameters) and
//! renders a template from `templates/` (checked at compile time, HTML-escaped).

use crate::api::{self, ActivityPage};
use crate::error::{ConsoleError, PageError};
use crate::params::{self, Query};
use crate::startup::AppState;
use crate::views::{
    bytes, digest_href, href, instant, media_type, repository_href, short_digest, sourced, time,
    time_or,
};
use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use regstat_store::browse::{self, ManifestRef, RepositorySort, TagRef};
use regstat_store::cleanup::{self, policy::Policies};
use regstat_store::status;
use serde_json::{Value, json};

/// The pages' routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/", web::get().to(overview))
        .route("/repositories", web::get().to(repositories))
        .route(
            "/repositories/{registry}/{repository:.+}",
            web::get().to(repository),
        )
        .route("/digests/{digest}", web::get().to(digest))
        .route("/search", web::get().to(search))
        .route("/activity", web::get().to(activity))
        .route("/candidates", web::get().to(candidates));
}

/// One cell: its text, and where it links.
#[derive(Debug, Clone, Default)]
pub struct Cell {
    /// What is shown.
    pub text: String,
    /// Its link, if any.
    pub href: Option<String>,
    /// A number: right-aligned.
    pub numeric: bool,
}

impl Cell {
    fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ..Self::default()
        }
    }

    fn number(value: i64) -> Self {
        Self {
            text: value.to_string(),
            numeric: true,
            href: None,
        }
    }

    fn link(text: impl Into<String>, href: String) -> Self {
        Self {
            text: text.into(),
            href: Some(href),
            numeric: false,
        }
    }
}

/// A column header, sortable when it has a link.
#[derive(Debug, Clone)]
pub struct Column {
    /// Header text.
    pub label: String,
    /// The same page sorted by this column (the other way when it is the current sort).
    pub sort_href: Option<String>,
    /// Marks the current sort: `▲`, `▼` or nothing.
    pub marker: &'static str,
    /// A number column: right-aligned.
    pub numeric: bool,
}

impl Column {
    fn new(label: &str) -> Self {
        Self {
            label: label.to_owned(),
            sort_href: None,
            marker: "",
            numeric: false,
        }
    }

    fn numeric(label: &str) -> Self {
        Self {
            numeric: true,
            ..Self::new(label)
        }
    }
}

/// A table as every page shows it.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Its HTML id (tests and deep links find it).
    pub id: String,
    /// Headers.
    pub columns: Vec<Column>,
    /// Rows of cells.
    pub rows: Vec<Vec<Cell>>,
    /// The same rows as CSV.
    pub csv: Option<String>,
    /// The same rows as JSON.
    pub json: Option<String>,
    /// What to say when there are no rows.
    pub empty: String,
    /// When the rows are the first of more: how many there are, and all of them.
    pub more: Option<More>,
}

/// The rest of a table that shows only its first rows.
#[derive(Debug, Clone, Default)]
pub struct More {
    /// Rows in all.
    pub total: i64,
    /// All of them as CSV.
    pub csv: String,
    /// All of them as JSON.
    pub json: String,
}

impl Table {
    fn new(id: &str, columns: Vec<Column>) -> Self {
        Self {
            id: id.to_owned(),
            columns,
            empty: "Nothing yet.".to_owned(),
            ..Self::default()
        }
    }

    /// Links the API endpoint `path` with `params` as JSON and CSV.
    fn exports(mut self, path: &str, params: &[(&str, Option<String>)]) -> Self {
        (self.csv, self.json) = {
            let (csv, json) = csv_and_json(path, params);
            (Some(csv), Some(json))
        };
        self
    }

    /// A report's first rows, `shown` at most, with its exports (of exactly those rows) and,
    /// when it has more, how many and links to all of them.
    async fn of_report(
        state: &AppState,
        name: &str,
        params: Vec<(&'static str, Option<String>)>,
        shown: usize,
    ) -> Result<Self, ConsoleError> {
        let mut first = params.clone();
        first.push(("limit", Some(shown.to_string())));
        let rows = api::report_rows(state, name, &Query::of(&first)).await?;
        let path = format!("/api/v1/reports/{name}");
        let mut table = Self::of_rows(name, &rows).exports(&path, &first);
        if rows.len() == shown {
            let total = api::report_count(state, name, &Query::of(&params)).await?;
            if total > rows.len() as i64 {
                // The API answers a page of a whole report unless asked for every row.
                let mut all = params.clone();
                all.push(("limit", Some(total.to_string())));
                let (csv, json) = csv_and_json(&path, &all);
                table.more = Some(More { total, csv, json });
            }
        }
        Ok(table)
    }

    /// A table of report rows: a column per key, repositories and digests linked, sizes and
    /// times for people.
    fn of_rows(id: &str, rows: &[Value]) -> Self {
        let keys = regstat_shared::export::columns(rows);
        let numeric = |key: &String| {
            rows.iter().any(|r| r[key].is_number())
                && rows.iter().all(|r| r[key].is_number() || r[key].is_null())
        };
        let columns = keys
            .iter()
            .map(|k| {
                let label = k.replace('_', " ");
                if numeric(k) {
                    Column::numeric(&label)
                } else {
                    Column::new(&label)
                }
            })
            .collect();
        let mut table = Self::new(id, columns);
        for row in rows {
            let cells = keys.iter().map(|key| value_cell(key, row)).collect();
            table.rows.push(cells);
        }
        table
    }
}

/// Links to `path` with `params`, as CSV and as JSON.
fn csv_and_json(path: &str, params: &[(&str, Option<String>)]) -> (String, String) {
    let mut csv: Vec<(&str, Option<String>)> = params.to_vec();
    csv.push(("format", Some("csv".to_owned())));
    (href(path, &csv), href(path, params))
}

/// A report value as a cell.
fn value_cell(key: &str, row: &Value) -> Cell {
    let value = &row[key];
    let text = |v: &Value| regstat_shared::export::cell(Some(v), "-");
    match (key, value) {
        ("repository", Value::String(repository)) => match row["registry"].as_str() {
            Some(registry) => Cell::link(repository.clone(), repository_href(registry, repository)),
            None => Cell::text(repository.clone()),
        },
        (key, Value::String(digest)) if key == "digest" || key.ends_with("_digest") => {
            Cell::link(short_digest(digest), digest_href(digest))
        }
        ("size" | "bytes", Value::Number(n)) => Cell {
            text: bytes(n.as_i64()),
            numeric: true,
            href: None,
        },
        (key, Value::String(at)) if key.ends_with("_at") => Cell::text(
            chrono::DateTime::parse_from_rfc3339(at)
                .map(|t| time(Some(t.with_timezone(&chrono::Utc))))
                .unwrap_or_else(|_| at.clone()),
        ),
        ("last_pulled_at" | "last_used_at", Value::Null) => Cell::text("never"),
        (_, Value::Number(n)) => Cell {
            text: n.to_string(),
            numeric: true,
            href: None,
        },
        (_, other) => Cell::text(text(other)),
    }
}

/// What every page's frame needs.
pub struct Frame {
    /// The title.
    pub title: String,
    /// Which navigation entry is current.
    pub section: &'static str,
    /// The search box's text.
    pub search: String,
}

impl Frame {
    fn new(title: impl Into<String>, section: &'static str) -> Self {
        Self {
            title: title.into(),
            section,
            search: String::new(),
        }
    }
}

fn html(page: impl Template) -> Result<HttpResponse, PageError> {
    Ok(HttpResponse::Ok()
        .content_type(ContentType::html())
        .body(page.render()?))
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    frame: Frame,
    status: String,
    message: String,
}

/// An error as a page (see [`PageError`]).
pub fn error_page(status: StatusCode, message: &str) -> String {
    ErrorPage {
        frame: Frame::new(status.to_string(), ""),
        status: status.to_string(),
        message: message.to_owned(),
    }
    .render()
    .unwrap_or_else(|_| format!("{status}: {message}"))
}

/// A chart's data: x values (UTC days as Unix seconds) and one named series per line.
fn chart(days: &[chrono::NaiveDate], series: &[(String, Vec<i64>)]) -> String {
    let x: Vec<i64> = days
        .iter()
        .filter_map(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp())
        .collect();
    json!({
        "x": x,
        "series": series.iter().map(|(name, values)| json!({"name": name, "values": values})).collect::<Vec<_>>(),
    })
    .to_string()
}

/// Every day of the last `days` days, to today (UTC).
fn last_days(days: i32) -> Vec<chrono::NaiveDate> {
    let today = chrono::Utc::now().date_naive();
    (0..i64::from(days))
        .rev()
        .map(|ago| today - chrono::Duration::days(ago))
        .collect()
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    frame: Frame,
    totals: browse::Totals,
    blob_bytes: String,
    /// When the blob figures were counted, when not just now.
    blobs_as_of: Option<String>,
    days: i32,
    windows: Vec<(i32, String, bool)>,
    chart: String,
    top: Table,
    platforms: Table,
    recent: Table,
    queues: Table,
}

async fn overview(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let query = Query::parse(request.query_string(), &["days"])?;
    let days = api::window(&query)?;
    let days_param = Some(days.to_string());
    let in_window = Query::of(&[("days", days_param.clone())]);
    let top_ten = Query::of(&[
        ("days", days_param.clone()),
        ("limit", Some("10".to_owned())),
    ]);
    // Each on a connection of its own, at the same time.
    let recent_ten = Query::of(&[("limit", Some("10".to_owned()))]);
    let (pulls, top, platforms, totals, queues, recent) = tokio::try_join!(
        api::report_rows(&state, "pulls", &in_window),
        api::report_rows(&state, "top-pulled", &top_ten),
        api::report_rows(&state, "architectures", &in_window),
        async {
            let mut db = state.pool.acquire().await?;
            Ok::<_, ConsoleError>(browse::totals(&mut db).await?)
        },
        async {
            let mut db = state.pool.acquire().await?;
            Ok::<_, ConsoleError>(status::queues(&mut db, &state.prefix).await?)
        },
        api::activity_page(&state, &recent_ten),
    )?;

    let axis = last_days(days);
    let per_day = |system: bool| -> Vec<i64> {
        axis.iter()
            .map(|day| {
                let day = day.to_string();
                pulls
                    .iter()
                    .filter(|r| r["day"].as_str() == Some(day.as_str()))
                    .filter_map(|r| r[if system { "system_pulls" } else { "pulls" }].as_i64())
                    .sum()
            })
            .collect()
    };
    let chart = chart(
        &axis,
        &[
            ("image pulls".to_owned(), per_day(false)),
            ("system pulls".to_owned(), per_day(true)),
        ],
    );
    let mut queue_table = Table::new(
        "queues",
        vec![
            Column::new("queue"),
            Column::new("role"),
            Column::numeric("ready"),
            Column::numeric("consumers"),
            Column::new("newest recorded"),
            Column::new("polled"),
        ],
    );
    queue_table.empty = "No worker has reported the queues yet.".to_owned();
    for q in &queues {
        queue_table.rows.push(vec![
            Cell::text(q.queue.clone()),
            Cell::text(q.role.clone()),
            Cell::number(q.messages),
            Cell::number(q.consumers),
            Cell::text(if q.role == "work" {
                time_or(q.newest_received_at, "none yet")
            } else {
                String::new()
            }),
            Cell::text(time(Some(q.updated_at))),
        ]);
    }
    html(OverviewPage {
        frame: Frame::new("Overview", "overview"),
        blob_bytes: bytes(Some(totals.blob_bytes)),
        blobs_as_of: totals.blobs_as_of.map(|at| time(Some(at))),
        totals,
        days,
        windows: [7, 30, 90, 365]
            .into_iter()
            .map(|d| (d, href("/", &[("days", Some(d.to_string()))]), d == days))
            .collect(),
        chart,
        top: Table::of_rows("top-pulled", &top).exports(
            "/api/v1/reports/top-pulled",
            &[
                ("days", days_param.clone()),
                ("limit", Some("10".to_owned())),
            ],
        ),
        platforms: Table::of_rows("architectures", &platforms)
            .exports("/api/v1/reports/architectures", &[("days", days_param)]),
        recent: activity_table("recent", &recent)
            .exports("/api/v1/activity", &[("limit", Some("10".to_owned()))]),
        queues: queue_table.exports("/api/v1/overview", &[]),
    })
}

/// Ledger entries as a table.
fn activity_table(id: &str, page: &ActivityPage) -> Table {
    let mut table = Table::new(
        id,
        vec![
            Column::new("time"),
            Column::new("action"),
            Column::new("repository"),
            Column::new("tag"),
            Column::new("digest"),
            Column::new("actor"),
            Column::new("client"),
        ],
    );
    for row in &page.rows {
        // The ledger keeps the Host the client used, which may be an alias of the registry's
        // canonical name: the link finds the repository by name.
        let repository = row
            .repository
            .as_ref()
            .map_or_else(Cell::default, |repository| {
                Cell::link(
                    repository.clone(),
                    href("/repositories", &[("q", Some(repository.clone()))]),
                )
            });
        let action = match row.request_method.as_deref() {
            Some(method) if row.action == "pull" => format!("pull ({method})"),
            _ => row.action.clone(),
        };
        table.rows.push(vec![
            Cell::text(instant(row.occurred_at)),
            Cell::text(action),
            repository,
            Cell::text(row.tag.clone().unwrap_or_default()),
            row.digest.as_ref().map_or_else(Cell::default, |d| {
                Cell::link(short_digest(d), digest_href(d))
            }),
            Cell::text(row.actor.clone().unwrap_or_default()),
            Cell::text(row.request_useragent.clone().unwrap_or_default()),
        ]);
    }
    table
}

#[derive(Template)]
#[template(path = "repositories.html")]
struct RepositoriesPage {
    frame: Frame,
    search: String,
    registry: String,
    table: Table,
    total: i64,
    page: i64,
    pages: i64,
    previous: Option<String>,
    next: Option<String>,
}

async fn repositories(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let query = Query::parse(request.query_string(), &params::REPOSITORY_PARAMS)?;
    let (list, page) = params::repository_query(&query)?;
    let mut db = state.pool.acquire().await.map_err(ConsoleError::from)?;
    let (rows, total) = browse::repositories(&mut db, &list).await?;
    drop(db);
    let keep = |sort: Option<String>, dir: Option<String>, page: Option<i64>| {
        href(
            "/repositories",
            &[
                ("q", query.text("q")),
                ("registry", query.text("registry")),
                ("sort", sort),
                ("dir", dir),
                ("page", page.filter(|p| *p > 1).map(|p| p.to_string())),
                ("per_page", query.text("per_page")),
            ],
        )
    };
    let sortable = |label: &str, sort: RepositorySort, key: &str, numeric: bool| {
        let current = list.sort == sort;
        let dir = if current && list.descending {
            "asc"
        } else if current {
            "desc"
        } else if sort == RepositorySort::Name {
            "asc"
        } else {
            "desc"
        };
        Column {
            label: label.to_owned(),
            sort_href: Some(keep(Some(key.to_owned()), Some(dir.to_owned()), None)),
            marker: match (current, list.descending) {
                (true, true) => "▼",
                (true, false) => "▲",
                _ => "",
            },
            numeric,
        }
    };
    let mut table = Table::new(
        "repositories",
        vec![
            Column::new("registry"),
            sortable("repository", RepositorySort::Name, "name", false),
            sortable("tags", RepositorySort::Tags, "tags", true),
            sortable("pulls (30 d)", RepositorySort::Pulls, "pulls", true),
            sortable(
                "last pulled",
                RepositorySort::LastPulled,
                "last_pulled",
                false,
            ),
            sortable(
                "last pushed",
                RepositorySort::LastPushed,
                "last_pushed",
                false,
            ),
            sortable("size", RepositorySort::Size, "size", true),
        ],
    );
    table.empty = "No repository matches.".to_owned();
    for row in &rows {
        table.rows.push(vec![
            Cell::text(row.registry.clone()),
            Cell::link(
                row.repository.clone(),
                repository_href(&row.registry, &row.repository),
            ),
            Cell::number(row.tags),
            Cell::number(row.pulls_30d),
            Cell::text(time(row.last_pulled_at)),
            Cell::text(time_or(row.last_pushed_at, "-")),
            Cell {
                text: bytes(row.size),
                numeric: true,
                href: None,
            },
        ]);
    }
    let api_params: Vec<(&str, Option<String>)> = params::REPOSITORY_PARAMS
        .iter()
        .filter(|p| **p != "format")
        .map(|p| (*p, query.text(p)))
        .collect();
    let pages = ((total + list.limit - 1) / list.limit).max(1);
    html(RepositoriesPage {
        frame: Frame::new("Repositories", "repositories"),
        search: query.text("q").unwrap_or_default(),
        registry: query.text("registry").unwrap_or_default(),
        table: table.exports("/api/v1/repositories", &api_params),
        total,
        page,
        pages,
        previous: (page > 1).then(|| keep(query.text("sort"), query.text("dir"), Some(page - 1))),
        next: (page < pages).then(|| keep(query.text("sort"), query.text("dir"), Some(page + 1))),
    })
}

#[derive(Template)]
#[template(path = "repository.html")]
struct RepositoryPage {
    frame: Frame,
    registry: String,
    repository: String,
    days: i32,
    windows: Vec<(i32, String, bool)>,
    chart: String,
    tags: Table,
    actors: Table,
    history: Table,
    history_href: String,
}

async fn repository(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let (registry, repository) = path.into_inner();
    let query = Query::parse(request.query_string(), &["days"])?;
    let detail = api::repository_detail(&state, &query, &registry, &repository).await?;
    let days = api::window(&query)?;
    let part = |name: &str| vec![("part", Some(name.to_owned()))];
    let api_path = format!("/api/v1{}", repository_href(&registry, &repository));
    let mut tags = Table::new(
        "tags",
        vec![
            Column::new("tag"),
            Column::new("digest"),
            Column::new("media type"),
            Column::new("platforms"),
            Column::numeric("size"),
            Column::new("pushed"),
            Column::new("last pulled"),
            Column::numeric("pulls 7 d"),
            Column::numeric("pulls 30 d"),
            Column::numeric("pulls"),
            Column::numeric("version checks"),
            Column::new("last checked"),
            Column::new("age"),
            Column::new("last used"),
        ],
    );
    tags.empty = "No live tag.".to_owned();
    for tag in &detail.tags {
        tags.rows.push(vec![
            Cell::text(tag.tag.clone()),
            Cell::link(short_digest(&tag.digest), digest_href(&tag.digest)),
            Cell::text(media_type(tag.media_type.as_deref())),
            Cell::text(tag.platforms.join(", ")),
            Cell {
                text: bytes(tag.size),
                numeric: true,
                href: None,
            },
            Cell::text(time_or(tag.pushed_at, "-")),
            Cell::text(time(tag.last_pulled_at)),
            Cell::number(tag.pulls_7d),
            Cell::number(tag.pulls_30d),
            Cell::number(tag.pull_count),
            Cell::number(tag.version_checks),
            Cell::text(time(tag.last_checked_at)),
            Cell::text(sourced(tag.age_at, tag.age_source.as_deref())),
            Cell::text(sourced(tag.last_used_at, tag.last_used_source.as_deref())),
        ]);
    }
    let axis = last_days(days);
    let mut names: Vec<String> = detail.pulls_per_day.iter().map(|d| d.tag.clone()).collect();
    names.sort();
    names.dedup();
    let series: Vec<(String, Vec<i64>)> = names
        .iter()
        .map(|tag| {
            let values = axis
                .iter()
                .map(|day| {
                    detail
                        .pulls_per_day
                        .iter()
                        .filter(|d| &d.tag == tag && d.day == *day)
                        .map(|d| d.pulls)
                        .sum()
                })
                .collect();
            let name = if tag.is_empty() {
                "(by digest)".to_owned()
            } else {
                tag.clone()
            };
            (name, values)
        })
        .collect();
    let mut actors = Table::new(
        "actors",
        vec![
            Column::new("actor"),
            Column::new("action"),
            Column::numeric("events"),
            Column::new("first"),
            Column::new("last"),
        ],
    );
    for actor in &detail.actors {
        actors.rows.push(vec![
            Cell::text(if actor.actor.is_empty() {
                "(anonymous)".to_owned()
            } else {
                actor.actor.clone()
            }),
            Cell::text(actor.action.clone()),
            Cell::number(actor.events),
            Cell::text(time(Some(actor.first_at))),
            Cell::text(time(Some(actor.last_at))),
        ]);
    }
    let history_page = ActivityPage {
        rows: detail.history.clone(),
        next: None,
    };
    let history_href = href("/activity", &[("repository", Some(repository.clone()))]);
    html(RepositoryPage {
        frame: Frame::new(format!("{registry}/{repository}"), "repositories"),
        windows: [7, 30, 90, 365]
            .into_iter()
            .map(|d| {
                (
                    d,
                    href(
                        &repository_href(&registry, &repository),
                        &[("days", Some(d.to_string()))],
                    ),
                    d == days,
                )
            })
            .collect(),
        chart: chart(&axis, &series),
        tags: tags.exports(&api_path, &part("tags")),
        actors: actors.exports(&api_path, &part("actors")),
        history: activity_table("history", &history_page).exports(
            "/api/v1/activity",
            &[("repository", Some(repository.clone()))],
        ),
        history_href,
        registry,
        repository,
        days,
    })
}

#[derive(Template)]
#[template(path = "digest.html")]
struct DigestPage {
    frame: Frame,
    digest: String,
    chart: String,
    /// No window choice: all the pulls known.
    windows: Vec<(i32, String, bool)>,
    has_pulls: bool,
    manifests: Table,
    tags: Table,
    parents: Table,
    children: Table,
    referrers: Table,
    blobs: Table,
}

fn manifest_table(id: &str, manifests: &[ManifestRef], empty: &str) -> Table {
    let mut table = Table::new(
        id,
        vec![
            Column::new("repository"),
            Column::new("digest"),
            Column::new("media type"),
            Column::new("artifact type"),
            Column::new("platform"),
            Column::numeric("size"),
        ],
    );
    table.empty = empty.to_owned();
    for m in manifests {
        table.rows.push(vec![
            Cell::link(
                format!("{}/{}", m.registry, m.repository),
                repository_href(&m.registry, &m.repository),
            ),
            Cell::link(short_digest(&m.digest), digest_href(&m.digest)),
            Cell::text(media_type(m.media_type.as_deref())),
            Cell::text(m.artifact_type.clone().unwrap_or_default()),
            Cell::text(m.platform.clone().unwrap_or_default()),
            Cell {
                text: bytes(m.size),
                numeric: true,
                href: None,
            },
        ]);
    }
    table
}

fn tag_table(id: &str, tags: &[TagRef], empty: &str, with_tag: bool) -> Table {
    let mut columns = vec![Column::new("registry"), Column::new("repository")];
    if with_tag {
        columns.push(Column::new("tag"));
    }
    let mut table = Table::new(id, columns);
    table.empty = empty.to_owned();
    for t in tags {
        let mut row = vec![
            Cell::text(t.registry.clone()),
            Cell::link(
                t.repository.clone(),
                repository_href(&t.registry, &t.repository),
            ),
        ];
        if with_tag {
            row.push(Cell::text(t.tag.clone()));
        }
        table.rows.push(row);
    }
    table
}

async fn digest(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let digest = path.into_inner();
    let detail = api::digest_detail(&state, &digest).await?;
    let days: Vec<chrono::NaiveDate> =
        match (detail.pulls_per_day.first(), detail.pulls_per_day.last()) {
            (Some(first), Some(last)) => first
                .day
                .iter_days()
                .take_while(|d| d <= &last.day)
                .collect(),
            _ => Vec::new(),
        };
    let values: Vec<i64> = days
        .iter()
        .map(|day| {
            detail
                .pulls_per_day
                .iter()
                .filter(|d| d.day == *day)
                .map(|d| d.pulls)
                .sum()
        })
        .collect();
    let mut blobs = Table::new(
        "blobs",
        vec![
            Column::new("role"),
            Column::new("digest"),
            Column::new("media type"),
            Column::numeric("size"),
        ],
    );
    blobs.empty = "No blob known (an index, or content not fetched).".to_owned();
    for b in &detail.blobs {
        blobs.rows.push(vec![
            Cell::text(b.role.clone()),
            Cell::link(short_digest(&b.digest), digest_href(&b.digest)),
            Cell::text(b.media_type.clone().unwrap_or_default()),
            Cell {
                text: bytes(b.size),
                numeric: true,
                href: None,
            },
        ]);
    }
    let api_path = format!("/api/v1{}", digest_href(&digest));
    let part = |name: &str| vec![("part", Some(name.to_owned()))];
    html(DigestPage {
        frame: Frame::new(short_digest(&digest), ""),
        chart: chart(&days, &[("pulls".to_owned(), values)]),
        windows: Vec::new(),
        has_pulls: !detail.pulls_per_day.is_empty(),
        manifests: manifest_table(
            "manifests",
            &detail.manifests,
            "No manifest with this digest.",
        )
        .exports(&api_path, &part("manifests")),
        tags: tag_table("digest-tags", &detail.tags, "No live tag names it.", true)
            .exports(&api_path, &part("tags")),
        parents: manifest_table("parents", &detail.parents, "No index holds it.")
            .exports(&api_path, &part("parents")),
        children: manifest_table("children", &detail.children, "Not an index.")
            .exports(&api_path, &part("children")),
        referrers: manifest_table(
            "referrers",
            &detail.referrers,
            "No referrer (signature, SBOM) names it.",
        )
        .exports(&api_path, &part("referrers")),
        blobs: blobs.exports(&api_path, &part("blobs")),
        digest,
    })
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    frame: Frame,
    query: String,
    repositories: Table,
    tags: Table,
    digests: Table,
    actors: Table,
}

async fn search(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let query = Query::parse(request.query_string(), &["q"])?;
    let results = api::search_results(&state, &query).await?;
    let text = query.text("q").unwrap_or_default();
    let mut actors = Table::new(
        "actors",
        vec![
            Column::new("actor"),
            Column::new("repository"),
            Column::numeric("events"),
        ],
    );
    actors.empty = "No actor matches.".to_owned();
    for a in &results.actors {
        actors.rows.push(vec![
            Cell::link(
                a.actor.clone(),
                href("/activity", &[("actor", Some(a.actor.clone()))]),
            ),
            Cell::link(
                format!("{}/{}", a.registry, a.repository),
                repository_href(&a.registry, &a.repository),
            ),
            Cell::number(a.events),
        ]);
    }
    let exports = |part: &str| vec![("q", Some(text.clone())), ("part", Some(part.to_owned()))];
    let mut frame = Frame::new(format!("Search: {text}"), "");
    frame.search.clone_from(&text);
    html(SearchPage {
        frame,
        repositories: tag_table(
            "found-repositories",
            &results.repositories,
            "No repository matches.",
            false,
        )
        .exports("/api/v1/search", &exports("repositories")),
        tags: tag_table("found-tags", &results.tags, "No tag matches.", true)
            .exports("/api/v1/search", &exports("tags")),
        digests: manifest_table(
            "found-digests",
            &results.digests,
            "No digest starts so (6 or more hex digits).",
        )
        .exports("/api/v1/search", &exports("digests")),
        actors: actors.exports("/api/v1/search", &exports("actors")),
        query: text,
    })
}

#[derive(Template)]
#[template(path = "activity.html")]
struct ActivityPageView {
    frame: Frame,
    /// The action choices, and which is selected.
    actions: Vec<(&'static str, bool)>,
    repository: String,
    tag: String,
    actor: String,
    since: String,
    until: String,
    table: Table,
    older: Option<String>,
    deletions: Table,
}

async fn activity(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let query = Query::parse(request.query_string(), &params::ACTIVITY_PARAMS)?;
    let page = api::activity_page(&state, &query).await?;
    let kept: Vec<(&str, Option<String>)> = params::ACTIVITY_PARAMS
        .iter()
        .filter(|p| !["format", "after"].contains(p))
        .map(|p| (*p, query.text(p)))
        .collect();
    let older = page.next.as_ref().map(|cursor| {
        let mut with_cursor = kept.clone();
        with_cursor.push(("after", Some(cursor.clone())));
        href("/activity", &with_cursor)
    });
    let since = vec![("since", query.text("since"))];
    let mut deletions = Table::of_report(&state, "deleted", since, DELETIONS_SHOWN).await?;
    deletions.id = "deletions".to_owned();
    let mut with_cursor = kept.clone();
    with_cursor.push(("after", query.text("after")));
    html(ActivityPageView {
        frame: Frame::new("Activity", "activity"),
        actions: ["push", "pull", "mount", "delete"]
            .into_iter()
            .map(|a| (a, query.text("action").as_deref() == Some(a)))
            .collect(),
        repository: query.text("repository").unwrap_or_default(),
        tag: query.text("tag").unwrap_or_default(),
        actor: query.text("actor").unwrap_or_default(),
        since: query.text("since").unwrap_or_default(),
        until: query.text("until").unwrap_or_default(),
        table: activity_table("activity", &page).exports("/api/v1/activity", &with_cursor),
        older,
        deletions,
    })
}

/// Deletions the activity page lists (the newest; the whole trail is a link away).
const DELETIONS_SHOWN: usize = 20;
/// Rows each table of the candidates page lists (the first in the report's order; all of
/// them are a link away).
const CANDIDATES_SHOWN: usize = 100;

#[derive(Template)]
#[template(path = "candidates.html")]
struct CandidatesPage {
    frame: Frame,
    days: String,
    stale_days: String,
    grace: String,
    unpulled: Table,
    stale: Table,
    orphaned: Table,
    undetermined: Table,
    missing: Table,
    plan: PlanSection,
}

/// The cleanup plan of the configured policy, as the candidates page shows it (read-only).
struct PlanSection {
    /// `cleanup.policy_file`, if set.
    policy_file: Option<String>,
    /// Why there is no plan: the file cannot be read or is refused.
    problem: Option<String>,
    /// Its candidates.
    rows: Table,
    /// Candidates and bytes freed per repository.
    totals: Table,
}

impl PlanSection {
    /// The plan of `state.policy_file` as of now.
    async fn of(state: &AppState) -> Result<Self, ConsoleError> {
        let mut section = Self {
            policy_file: None,
            problem: None,
            rows: Table::new("cleanup-plan", Vec::new()),
            totals: Table::new("cleanup-totals", Vec::new()),
        };
        if state.policy_file.is_empty() {
            return Ok(section);
        }
        section.policy_file = Some(state.policy_file.clone());
        let policies = match std::fs::read_to_string(&state.policy_file) {
            Err(error) => Err(format!("cannot be read: {error}")),
            Ok(text) => Policies::parse(&text).map_err(|e| format!("is refused: {e}")),
        };
        let policies = match policies {
            Ok(policies) => policies,
            Err(problem) => {
                section.problem = Some(problem);
                return Ok(section);
            }
        };
        let plan = cleanup::plan::plan(
            &state.pool,
            &policies,
            Some(state.policy_file.clone()),
            &cleanup::plan::Scope::default(),
            chrono::Utc::now(),
        )
        .await
        .map_err(ConsoleError::Unavailable)?;
        let candidates: Vec<Value> = plan
            .rows
            .iter()
            .filter(|r| r.decision == cleanup::decide::Verdict::Delete)
            .take(CANDIDATES_SHOWN)
            .filter_map(|r| serde_json::to_value(r).ok())
            .map(|mut row| {
                // Use is known per tag: an untagged manifest's is not "never" but unknown.
                if row["tag"].is_null() {
                    row["last_used_at"] = json!("unknown");
                }
                row
            })
            .collect();
        section.rows = Table::of_rows("cleanup-plan", &candidates);
        section.rows.empty = "The policy keeps everything.".to_owned();
        let totals: Vec<Value> = plan
            .totals
            .iter()
            .filter_map(|t| serde_json::to_value(t).ok())
            .collect();
        section.totals = Table::of_rows("cleanup-totals", &totals);
        Ok(section)
    }
}

async fn candidates(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let query = Query::parse(request.query_string(), &["days", "stale_days", "grace"])?;
    let days = query.number::<i32>("days")?.unwrap_or(30).to_string();
    let stale_days = query.number::<i32>("stale_days")?.unwrap_or(90).to_string();
    let grace = query.text("grace").unwrap_or_else(|| "2h".to_owned());
    let state = &state;
    // The page's sections are independent queries: asked together, the page takes as long as
    // its slowest section rather than their sum.
    let (mut unpulled, mut stale, mut orphaned, mut undetermined, mut missing, plan) = tokio::try_join!(
        Table::of_report(
            state,
            "unpulled",
            vec![("days", Some(days.clone()))],
            CANDIDATES_SHOWN,
        ),
        Table::of_report(
            state,
            "stale",
            vec![("days", Some(stale_days.clone()))],
            CANDIDATES_SHOWN,
        ),
        Table::of_report(
            state,
            "orphaned-blobs",
            vec![("grace", Some(grace.clone()))],
            CANDIDATES_SHOWN,
        ),
        Table::of_report(state, "undetermined-blobs", vec![], CANDIDATES_SHOWN),
        Table::of_report(state, "missing-blobs", vec![], CANDIDATES_SHOWN),
        PlanSection::of(state),
    )?;
    unpulled.empty =
        "Every image was used (pulled, checked or pushed) within the window.".to_owned();
    stale.empty = "No image was pushed that long ago.".to_owned();
    orphaned.empty = "No blob without a manifest.".to_owned();
    undetermined.empty = "Every live manifest's content is known.".to_owned();
    missing.empty = "No manifest references a deleted blob.".to_owned();
    html(CandidatesPage {
        frame: Frame::new("Candidates", "candidates"),
        days,
        stale_days,
        grace,
        unpulled,
        stale,
        orphaned,
        undetermined,
        missing,
        plan,
    })
}
