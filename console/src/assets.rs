//! The console's static files, embedded in the binary and served from `/static`: the vendored
//! htmx 2.0.11 and uPlot 1.6.32 (their licenses in `THIRD-PARTY-LICENSES.txt`), the
//! stylesheet and the chart script. No CDN, no build step.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpResponse, web};

/// (name, content type, bytes).
const FILES: [(&str, &str, &[u8]); 6] = [
    (
        "htmx.min.js",
        "text/javascript",
        include_bytes!("../static/htmx.min.js"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript",
        include_bytes!("../static/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css",
        include_bytes!("../static/uPlot.min.css"),
    ),
    (
        "console.css",
        "text/css",
        include_bytes!("../static/console.css"),
    ),
    (
        "console.js",
        "text/javascript",
        include_bytes!("../static/console.js"),
    ),
    (
        "THIRD-PARTY-LICENSES.txt",
        "text/plain; charset=utf-8",
        include_bytes!("../static/THIRD-PARTY-LICENSES.txt"),
    ),
];

/// `GET /static/{name}`.
pub async fn serve(name: web::Path<String>) -> HttpResponse {
    match FILES.iter().find(|(file, ..)| *file == name.as_str()) {
        Some((_, content_type, bytes)) => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, *content_type))
            .insert_header((CACHE_CONTROL, "public, max-age=3600"))
            .body(*bytes),
        None => HttpResponse::NotFound().finish(),
    }
}
