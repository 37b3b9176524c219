//! regstat's console: server-rendered pages and a JSON API over what regstat knows of a
//! registry's usage. It reads PostgreSQL only (a read replica will do), through the same store
//! queries as `regstat report`, and keeps no state: run any number of copies.
//!
//! # Layout
//! - [`startup`]: [`Application`], the server on a listener (port 0 in tests), with security
//!   headers and the credentials check in front of everything but health and metrics.
//! - [`auth`]: the credentials check (bearer tokens for scripts, Basic for browsers).
//! - [`error`]: [`error::ConsoleError`], the one place errors become HTTP answers (JSON for
//!   the API, an HTML page for pages).
//! - [`api`]: `/api/v1/...`, one endpoint per report plus what the pages show, and the
//!   OpenAPI document generated from it.
//! - [`pages`]: the HTML pages (templates in `templates/`, checked at compile time).
//! - [`params`]: query parameters shared by pages and API.
//! - [`views`]: how values look on a page (sizes, times, "never").
//! - [`assets`]: the vendored htmx and uPlot, the stylesheet and the chart script, embedded.

pub mod api;
pub mod assets;
pub mod auth;
pub mod error;
pub mod pages;
pub mod params;
pub mod startup;
pub mod views;

pub use startup::Application;
