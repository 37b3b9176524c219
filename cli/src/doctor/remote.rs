//! `registry NAME`: each configured registry answers, accepts regstat's credentials (the token
//! round trip, where it uses tokens, happens inside the client) and lists a first page of its
//! catalog. `endpoint URL`: each of `doctor.endpoints` answers `/readyz` with 200.

use super::{Report, STEP_TIMEOUT, bounded, chain, millis};
use regstat_registry::{FetchError, RegistryClient};
use regstat_shared::config::{RegistrySettings, Settings};

/// Repositories asked for in the sample catalog call.
const CATALOG_SAMPLE: u32 = 10;

/// Repository names shown of the sample.
const SAMPLE_SHOWN: usize = 3;

/// Longest part of an endpoint's answer shown.
const BODY_SHOWN: usize = 200;

/// `registry NAME`: reachable, credentials accepted, a first page of the catalog.
pub(super) async fn registry(
    report: &mut Report,
    registry: &RegistrySettings,
    settings: &Settings,
) {
    let name = format!("registry {}", registry.name);
    let mut callbacks = settings.callbacks.clone();
    callbacks.timeout_ms = callbacks.timeout_ms.min(millis(STEP_TIMEOUT));
    let client = match RegistryClient::new(registry, &callbacks) {
        Ok(client) => client,
        Err(error) => {
            report.fail(name, format!("{error:#}: fix this [[registries]] entry"));
            return;
        }
    };
    let url = client.url().as_str().trim_end_matches('/').to_owned();
    // A token round trip and the catalog call: a few steps.
    let sample = tokio::time::timeout(3 * STEP_TIMEOUT, client.catalog_sample(CATALOG_SAMPLE));
    match sample.await {
        Ok(Ok(repositories)) => {
            let shown: Vec<&str> = repositories
                .iter()
                .take(SAMPLE_SHOWN)
                .map(String::as_str)
                .collect();
            let listed = if repositories.is_empty() {
                "an empty catalog".to_owned()
            } else {
                let more = if repositories.len() > SAMPLE_SHOWN {
                    ", …"
                } else {
                    ""
                };
                format!(
                    "a catalog page of {} ({}{more})",
                    repositories.len(),
                    shown.join(", ")
                )
            };
            let credentials = if registry.username.is_some() || registry.docker_config.is_some() {
                ", accepts the configured credentials"
            } else {
                " (no credentials configured)"
            };
            report.ok(
                name,
                format!("{url} answers{credentials} and lists {listed}"),
            );
        }
        Ok(Err(error)) => {
            report.fail(name, registry_failure(&error, &url, &registry.name));
        }
        Err(_) => {
            report.fail(
                name,
                format!(
                    "{url}: no answer within {} s: is the registry running, and reachable \
                     from here?",
                    (3 * STEP_TIMEOUT).as_secs()
                ),
            );
        }
    }
}

/// What a failed sample catalog call means, and what to do about it.
fn registry_failure(error: &FetchError, url: &str, name: &str) -> String {
    match error {
        FetchError::Transient(why) => format!(
            "unreachable or failing at {url}: {why}: is the registry running, and reachable \
             from here?"
        ),
        FetchError::Denied(why) => format!(
            "credentials refused, or not allowed to list the catalog: {why}: check username \
             and password (or docker_config) of [[registries]] `{name}`"
        ),
        FetchError::Invalid(why) => {
            format!("answered something unexpected: {why}: is {url} a registry (API /v2/)?")
        }
        FetchError::Gone => format!("{url} answered 404 to /v2/_catalog: is it a registry?"),
    }
}

/// `endpoint URL`: `GET <url>/readyz` answers 200.
pub(super) async fn endpoint(report: &mut Report, url: &str) {
    let name = format!("endpoint {url}");
    let probe = format!("{}/readyz", url.trim_end_matches('/'));
    let client = match reqwest::Client::builder().timeout(STEP_TIMEOUT).build() {
        Ok(client) => client,
        Err(error) => {
            report.fail(
                name,
                format!("cannot build an HTTP client: {}", chain(&error)),
            );
            return;
        }
    };
    let response = match client.get(&probe).send().await {
        Ok(response) => response,
        Err(error) => {
            report.fail(
                name,
                format!(
                    "GET {probe}: no answer: {}: is the service running there, and is \
                     doctor.endpoints right?",
                    chain(&error.without_url())
                ),
            );
            return;
        }
    };
    let status = response.status();
    if status == reqwest::StatusCode::OK {
        report.ok(name, format!("GET {probe} answered {status}"));
        return;
    }
    let body = bounded(response.text()).await.ok().and_then(Result::ok);
    let body = body
        .map(|text| crate::render::shorten(text.trim(), BODY_SHOWN))
        .filter(|text| !text.is_empty())
        .map(|text| format!(": {text}"))
        .unwrap_or_default();
    report.fail(
        name,
        format!("GET {probe} answered {status}{body}: see that service's log"),
    );
}
