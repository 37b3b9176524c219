//! `/api/v1/...`: one endpoint per report, with the parameters and rows of `regstat report
//! NAME --format json` (both run [`regstat_store::reports`]), and what the pages show. Lists
//! answer CSV with `format=csv`: the same rows. [`ApiDoc`] is the OpenAPI 3.1 document,
//! served at `/api/v1/openapi.json`.

use crate::error::ConsoleError;
use crate::params::{self, Format, Query};
use crate::startup::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use regstat_store::browse::{
    self, ActivityRow, ActorHit, ActorRow, BlobRef, DayPulls, DigestDay, DigestDetail, ManifestRef,
    RepositoryDetail, RepositoryRow, SearchResults, TagRef, TagRow, Totals,
};
use regstat_store::reports::{self, Report};
use regstat_store::status::{self, QueueRow};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

/// The API's routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/api/v1/openapi.json", web::get().to(openapi))
        .route("/api/v1/reports/{name}", web::get().to(report))
        .route("/api/v1/overview", web::get().to(overview))
        .route("/api/v1/repositories", web::get().to(repositories))
        .route(
            "/api/v1/repositories/{registry}/{repository:.+}",
            web::get().to(repository),
        )
        .route("/api/v1/digests/{digest}", web::get().to(digest))
        .route("/api/v1/search", web::get().to(search))
        .route("/api/v1/activity", web::get().to(activity));
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "regstat console API"),
    paths(report, overview, repositories, repository, digest, search, activity),
    components(schemas(
        ErrorDoc,
        Overview,
        RepositoryPage,
        ActivityPage,
        Totals,
        QueueRow,
        RepositoryRow,
        RepositoryDetail,
        TagRow,
        DayPulls,
        ActorRow,
        ActivityRow,
        DigestDetail,
        ManifestRef,
        TagRef,
        BlobRef,
        DigestDay,
        SearchResults,
        ActorHit
    ))
)]
pub struct ApiDoc;

/// An error: its code, a message for people and, for a bad parameter, its name.
#[derive(Serialize, ToSchema)]
pub struct ErrorDoc {
    /// `unauthorized`, `bad_parameter`, `not_found`, `unavailable` or `internal`.
    pub error: String,
    /// What is wrong.
    pub message: String,
    /// The parameter at fault.
    pub parameter: Option<String>,
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

/// Rows as JSON, or CSV with `format=csv`.
pub(crate) fn rows_response<T: Serialize>(
    rows: &[T],
    format: Format,
) -> Result<HttpResponse, ConsoleError> {
    match format {
        Format::Json => Ok(HttpResponse::Ok().json(rows)),
        Format::Csv => {
            let values =
                serde_json::to_value(rows).map_err(|e| ConsoleError::Internal(e.into()))?;
            let values = values.as_array().cloned().unwrap_or_default();
            let csv = regstat_shared::export::csv(&values)
                .map_err(|e| ConsoleError::Internal(e.into()))?;
            Ok(HttpResponse::Ok()
                .content_type("text/csv; charset=utf-8")
                .body(csv))
        }
    }
}

async fn connection(
    state: &AppState,
) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, ConsoleError> {
    Ok(state.pool.acquire().await?)
}

/// Rows of a report the API answers at most unless `limit` asks for more (the reports
/// without a limit of their own have every row in `regstat report`): a whole report at real
/// size is tens of thousands of rows; a full page links the next in a `Link` header.
pub const REPORT_PAGE_ROWS: i64 = 1000;

/// Runs report `name` with the request's parameters (every row unless `limit` says
/// otherwise, as `regstat report NAME` prints them): its rows.
pub(crate) async fn report_rows(
    state: &AppState,
    name: &str,
    query: &Query,
) -> Result<Vec<serde_json::Value>, ConsoleError> {
    let (report, filters) = Report::from_params(name, &params::report_params(query)?)?;
    let mut db = connection(state).await?;
    Ok(reports::run(&mut db, &report, &filters).await?)
}

/// How many rows report `name` has with the parameters in `query`, whatever its limit.
pub(crate) async fn report_count(
    state: &AppState,
    name: &str,
    query: &Query,
) -> Result<i64, ConsoleError> {
    let (report, filters) = Report::from_params(name, &params::report_params(query)?)?;
    let mut db = connection(state).await?;
    Ok(reports::count(&mut db, &report, &filters).await?)
}

/// A report's rows.
#[utoipa::path(
    get,
    path = "/api/v1/reports/{name}",
    params(
        ("name" = String, Path, description = "images, repositories, blobs, stale, unpulled, orphaned-blobs, undetermined-blobs, missing-blobs, most-tags, top-pulled, version-checks, pulls, architectures, actors, history, deleted"),
        ("days" = Option<i32>, Query, description = "Window or age in days (stale and unpulled need it; 30 elsewhere)"),
        ("limit" = Option<i64>, Query, description = "Most rows (most-tags, top-pulled, version-checks: 20; history: 100; the other reports: 1000, with a `Link: <...>; rel=\"next\"` header to the next page when the page is full)"),
        ("offset" = Option<i64>, Query, description = "Rows to skip first, in the report's order (0 by default)"),
        ("grace" = Option<String>, Query, description = "orphaned-blobs: ignore blobs linked this recently, e.g. 2h"),
        ("registry" = Option<String>, Query, description = "Only this registry"),
        ("repository" = Option<String>, Query, description = "Repository prefix or glob; history: the repository"),
        ("tag" = Option<String>, Query, description = "history: only this tag"),
        ("actor" = Option<String>, Query, description = "history: only this actor"),
        ("since" = Option<String>, Query, description = "history, deleted: RFC 3339 time or duration ago (7d)"),
        ("format" = Option<String>, Query, description = "json (default) or csv"),
    ),
    responses(
        (status = 200, description = "The report's rows, as `regstat report NAME --format json` prints them (with the same `limit` and `offset`)", body = Vec<serde_json::Value>),
        (status = 400, description = "A parameter that cannot be used, named", body = ErrorDoc),
        (status = 404, description = "No such report", body = ErrorDoc),
    )
)]
async fn report(
    request: HttpRequest,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let query = Query::parse(request.query_string(), &params::REPORT_PARAMS)?;
    let (report, mut filters) = Report::from_params(&name, &params::report_params(&query)?)?;
    let paged = report.own_limit().is_none();
    if paged {
        filters.limit.get_or_insert(REPORT_PAGE_ROWS);
    }
    let rows = {
        let mut db = connection(&state).await?;
        reports::run(&mut db, &report, &filters).await?
    };
    let mut response = rows_response(&rows, query.format()?)?;
    // A full page may have a next one (one request too many at the end, no count of the
    // whole report on every page).
    if let (true, Some(limit)) = (paged, filters.limit)
        && rows.len() as i64 == limit
    {
        let next = query
            .with("limit", limit.to_string())
            .with("offset", (filters.offset.unwrap_or(0) + limit).to_string());
        let link = format!("<{}?{}>; rel=\"next\"", request.path(), next.encode());
        if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&link) {
            response
                .headers_mut()
                .insert(actix_web::http::header::LINK, value);
        }
    }
    Ok(response)
}

/// What the overview shows besides reports.
#[derive(Serialize, ToSchema)]
pub struct Overview {
    /// What is live now.
    pub totals: Totals,
    /// The queues as workers last polled them.
    pub queues: Vec<QueueRow>,
}

/// Totals and the pipeline.
#[utoipa::path(get, path = "/api/v1/overview", responses((status = 200, body = Overview)))]
async fn overview(state: web::Data<AppState>) -> Result<HttpResponse, ConsoleError> {
    let mut db = connection(&state).await?;
    let totals = browse::totals(&mut db).await?;
    let queues = status::queues(&mut db, &state.prefix).await?;
    Ok(HttpResponse::Ok().json(Overview { totals, queues }))
}

/// A page of repositories.
#[derive(Serialize, ToSchema)]
pub struct RepositoryPage {
    /// The page's rows.
    pub rows: Vec<RepositoryRow>,
    /// Repositories matching, in all.
    pub total: i64,
    /// This page (from 1).
    pub page: i64,
    /// Rows per page.
    pub per_page: i64,
}

/// Repositories, searched, filtered, sorted and paginated.
#[utoipa::path(
    get,
    path = "/api/v1/repositories",
    params(
        ("q" = Option<String>, Query, description = "Names containing this text"),
        ("registry" = Option<String>, Query, description = "Only this registry"),
        ("sort" = Option<String>, Query, description = "name (default), tags, pulls, last_pulled, last_pushed, size"),
        ("dir" = Option<String>, Query, description = "asc or desc"),
        ("page" = Option<i64>, Query, description = "From 1"),
        ("per_page" = Option<i64>, Query, description = "1 to 500, default 50"),
        ("format" = Option<String>, Query, description = "json (default) or csv (the rows only)"),
    ),
    responses((status = 200, body = RepositoryPage), (status = 400, body = ErrorDoc))
)]
async fn repositories(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let query = Query::parse(request.query_string(), &params::REPOSITORY_PARAMS)?;
    let (list, page) = params::repository_query(&query)?;
    let mut db = connection(&state).await?;
    let (rows, total) = browse::repositories(&mut db, &list).await?;
    match query.format()? {
        Format::Csv => rows_response(&rows, Format::Csv),
        Format::Json => Ok(HttpResponse::Ok().json(RepositoryPage {
            rows,
            total,
            page,
            per_page: list.limit,
        })),
    }
}

/// One repository: tags, pulls per day of its top tags, actors, history; with `part`, one of
/// them as rows (JSON, or CSV with `format=csv`).
#[utoipa::path(
    get,
    path = "/api/v1/repositories/{registry}/{repository}",
    params(
        ("registry" = String, Path, description = "Canonical registry name"),
        ("repository" = String, Path, description = "Repository (may contain /)"),
        ("days" = Option<i32>, Query, description = "Window of the pulls per day: 7, 30 (default), 90 or 365"),
        ("part" = Option<String>, Query, description = "Only these rows: tags, pulls_per_day, actors or history"),
        ("format" = Option<String>, Query, description = "With part: json (default) or csv"),
    ),
    responses((status = 200, body = RepositoryDetail), (status = 404, body = ErrorDoc))
)]
async fn repository(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let (registry, repository) = path.into_inner();
    let query = Query::parse(request.query_string(), &["days", "part", "format"])?;
    let detail = repository_detail(&state, &query, &registry, &repository).await?;
    part_response(
        &detail,
        &query,
        &["tags", "pulls_per_day", "actors", "history"],
    )
}

/// The whole `value` as JSON; with `part`, that field's rows as JSON or CSV.
fn part_response<T: Serialize>(
    value: &T,
    query: &Query,
    parts: &[&str],
) -> Result<HttpResponse, ConsoleError> {
    let format = query.format()?;
    let Some(part) = query.text("part") else {
        if format == Format::Csv {
            return Err(ConsoleError::parameter(
                "format",
                "csv needs part (one list)",
            ));
        }
        return Ok(HttpResponse::Ok().json(value));
    };
    if !parts.contains(&part.as_str()) {
        return Err(ConsoleError::parameter(
            "part",
            format!("{part:?}: use {}", parts.join(", ")),
        ));
    }
    let whole = serde_json::to_value(value).map_err(|e| ConsoleError::Internal(e.into()))?;
    let rows = whole[part.as_str()].as_array().cloned().unwrap_or_default();
    rows_response(&rows, format)
}

pub(crate) async fn repository_detail(
    state: &AppState,
    query: &Query,
    registry: &str,
    repository: &str,
) -> Result<RepositoryDetail, ConsoleError> {
    let days = window(query)?;
    let mut db = connection(state).await?;
    browse::repository(&mut db, registry, repository, days)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(format!("no repository {registry}/{repository}")))
}

/// `days` of a chart: 7, 30 (default), 90 or 365.
pub(crate) fn window(query: &Query) -> Result<i32, ConsoleError> {
    match query.number::<i32>("days")? {
        None => Ok(30),
        Some(days @ (7 | 30 | 90 | 365)) => Ok(days),
        Some(_) => Err(ConsoleError::parameter("days", "use 7, 30, 90 or 365")),
    }
}

/// One digest: where it is tagged, its index and children, referrers, blobs, pulls; with
/// `part`, one of them as rows (JSON, or CSV with `format=csv`).
#[utoipa::path(
    get,
    path = "/api/v1/digests/{digest}",
    params(
        ("digest" = String, Path, description = "e.g. sha256:..."),
        ("part" = Option<String>, Query, description = "Only these rows: manifests, tags, parents, children, referrers, blobs or pulls_per_day"),
        ("format" = Option<String>, Query, description = "With part: json (default) or csv"),
    ),
    responses((status = 200, body = DigestDetail), (status = 404, body = ErrorDoc))
)]
async fn digest(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let query = Query::parse(request.query_string(), &["part", "format"])?;
    let detail = digest_detail(&state, &path).await?;
    part_response(
        &detail,
        &query,
        &[
            "manifests",
            "tags",
            "parents",
            "children",
            "referrers",
            "blobs",
            "pulls_per_day",
        ],
    )
}

pub(crate) async fn digest_detail(
    state: &AppState,
    digest: &str,
) -> Result<DigestDetail, ConsoleError> {
    if let Some(problem) = regstat_shared::grammar::digest_problem(digest) {
        return Err(ConsoleError::parameter(
            "digest",
            format!("{digest:?} {problem}"),
        ));
    }
    let mut db = connection(state).await?;
    browse::digest(&mut db, digest)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(format!("nothing is known of {digest}")))
}

/// Repositories, tags, digests (6+ hex digits) and actors matching `q`; with `part`, one of
/// them as rows (JSON, or CSV with `format=csv`).
#[utoipa::path(
    get,
    path = "/api/v1/search",
    params(
        ("q" = String, Query, description = "Text to look for"),
        ("part" = Option<String>, Query, description = "Only these rows: repositories, tags, digests or actors"),
        ("format" = Option<String>, Query, description = "With part: json (default) or csv"),
    ),
    responses((status = 200, body = SearchResults), (status = 400, body = ErrorDoc))
)]
async fn search(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let query = Query::parse(request.query_string(), &["q", "part", "format"])?;
    let results = search_results(&state, &query).await?;
    part_response(
        &results,
        &query,
        &["repositories", "tags", "digests", "actors"],
    )
}

pub(crate) async fn search_results(
    state: &AppState,
    query: &Query,
) -> Result<SearchResults, ConsoleError> {
    let text = query.text("q").unwrap_or_default();
    let mut db = connection(state).await?;
    Ok(browse::search(&mut db, &text).await?)
}

/// A page of the ledger, newest first.
#[derive(Serialize, ToSchema)]
pub struct ActivityPage {
    /// The entries.
    pub rows: Vec<ActivityRow>,
    /// `after` for the next page (`null`: this is the last).
    pub next: Option<String>,
}

/// The ledger's pushes, pulls, mounts and deletes, filtered, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/activity",
    params(
        ("action" = Option<String>, Query, description = "push, pull, mount or delete"),
        ("repository" = Option<String>, Query, description = "Repository prefix or glob"),
        ("tag" = Option<String>, Query, description = "Exact tag"),
        ("actor" = Option<String>, Query, description = "Exact actor"),
        ("since" = Option<String>, Query, description = "RFC 3339 time or duration ago"),
        ("until" = Option<String>, Query, description = "RFC 3339 time or duration ago"),
        ("after" = Option<String>, Query, description = "The `next` cursor of the previous page"),
        ("limit" = Option<i64>, Query, description = "1 to 500, default 50"),
        ("format" = Option<String>, Query, description = "json (default) or csv (the rows only)"),
    ),
    responses((status = 200, body = ActivityPage), (status = 400, body = ErrorDoc))
)]
async fn activity(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let query = Query::parse(request.query_string(), &params::ACTIVITY_PARAMS)?;
    let page = activity_page(&state, &query).await?;
    match query.format()? {
        Format::Csv => rows_response(&page.rows, Format::Csv),
        Format::Json => Ok(HttpResponse::Ok().json(page)),
    }
}

pub(crate) async fn activity_page(
    state: &AppState,
    query: &Query,
) -> Result<ActivityPage, ConsoleError> {
    let list = params::activity_query(query)?;
    let mut db = connection(state).await?;
    let rows = browse::activity(&mut db, &list).await?;
    let next = (rows.len() as i64 == list.limit)
        .then(|| {
            rows.last()
                .map(|r| params::encode_cursor(r.occurred_at, &r.event_id))
        })
        .flatten();
    Ok(ActivityPage { rows, next })
}
