//! The console's API and pages over a database the worker filled with the real fixtures.

use super::{PASSWORD, TOKEN, USER, console_settings, console_with_fixtures, record};
use crate::helpers::{TestConsole, TestDb};
use regstat_shared::testkit::TestBroker;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn get(console: &TestConsole, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", console.address))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
}

async fn json(console: &TestConsole, path: &str) -> Value {
    let response = get(console, path).await;
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.json().await.unwrap()
}

async fn text(console: &TestConsole, path: &str) -> String {
    let response = get(console, path).await;
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_credentials_nothing_but_health_is_served() {
    let (_db, _broker, console) = console_with_fixtures().await;
    for path in [
        "/",
        "/repositories",
        "/api/v1/reports/images",
        "/static/console.js",
    ] {
        let response = client()
            .get(format!("{}{path}", console.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Basic"), "{challenge}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized");
    }
    let wrong = client()
        .get(format!("{}/", console.address))
        .basic_auth(USER, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let basic = client()
        .get(format!("{}/", console.address))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::OK);
    for path in ["/healthz", "/readyz", "/metrics"] {
        let response = client()
            .get(format!("{}{path}", console.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    console.stop().await;
}

#[tokio::test]
async fn without_credentials_it_refuses_to_start_unless_told_to_serve_everyone() {
    let db = TestDb::new().await;
    let broker = TestBroker::new().await;
    let open =
        crate::helpers::settings(&db, &broker, &[("REGSTAT__CONSOLE__LISTEN", "127.0.0.1:0")]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = regstat_console::Application::build_with_listener(&open, listener)
        .err()
        .expect("refused");
    assert!(
        refused.to_string().contains("console.allow_anonymous"),
        "{refused}"
    );
    let anonymous = crate::helpers::settings(
        &db,
        &broker,
        &[
            ("REGSTAT__CONSOLE__LISTEN", "127.0.0.1:0"),
            ("REGSTAT__CONSOLE__ALLOW_ANONYMOUS", "true"),
        ],
    );
    let console = TestConsole::spawn(&anonymous);
    let response = client()
        .get(format!("{}/api/v1/overview", console.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    console.stop().await;
}

/// Runs the real `regstat` binary's report as JSON against the test database.
async fn cli_report(db: &TestDb, args: &[&str]) -> Value {
    let mut command =
        std::process::Command::new(regstat_shared::testkit::workspace_binary("regstat"));
    command
        .arg("report")
        .args(args)
        .args(["--format", "json"])
        .env_remove("REGSTAT_CONFIG")
        .env("REGSTAT__DATABASE__URL", &db.url)
        .env("REGSTAT__TELEMETRY__FILTER", "warn");
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_report_answers_the_rows_the_cli_prints() {
    let (db, _broker, console) = console_with_fixtures().await;
    let cases: [(&str, &[&str]); 6] = [
        ("images", &[]),
        ("repositories", &[]),
        (
            "top-pulled?days=100000&limit=5",
            &["top-pulled", "--days", "100000", "--limit", "5"],
        ),
        ("unpulled?days=1", &["unpulled", "--days", "1"]),
        (
            "history?repository=lab/app&limit=3",
            &["history", "--repository", "lab/app", "--limit", "3"],
        ),
        ("blobs?repository=lab", &["blobs", "--repository", "lab"]),
    ];
    for (path, args) in cases {
        let api = json(&console, &format!("/api/v1/reports/{path}")).await;
        let args: Vec<&str> = if args.is_empty() {
            vec![path]
        } else {
            args.to_vec()
        };
        let cli = cli_report(&db, &args).await;
        assert_eq!(api, cli, "{path}");
        assert!(
            api.as_array().is_some_and(|rows| !rows.is_empty()),
            "{path} has rows"
        );
    }
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_400_and_named_and_csv_is_the_same_rows() {
    let (_db, _broker, console) = console_with_fixtures().await;
    for (path, parameter) in [
        ("/api/v1/reports/top-pulled?dayz=3", "dayz"),
        ("/api/v1/reports/top-pulled?days=many", "days"),
        ("/api/v1/reports/stale", "days"),
        ("/api/v1/reports/history", "repository"),
        ("/api/v1/repositories?sort=colour", "sort"),
        ("/api/v1/repositories?per_page=100000", "per_page"),
        ("/api/v1/activity?after=garbage", "after"),
        ("/api/v1/digests/sha256:xyz", "digest"),
        ("/repositories?page=0", "page"),
    ] {
        let response = get(&console, path).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        if path.starts_with("/api/") {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["parameter"], parameter, "{path}: {body}");
            assert_eq!(body["error"], "bad_parameter");
        } else {
            assert!(response.text().await.unwrap().contains(parameter), "{path}");
        }
    }
    assert_eq!(
        get(&console, "/api/v1/reports/nonsense").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&console, "/repositories/127.0.0.1%3A5000/no/such")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    let rows = json(&console, "/api/v1/reports/images").await;
    let csv = text(&console, "/api/v1/reports/images?format=csv").await;
    assert_eq!(
        csv,
        regstat_shared::export::csv(rows.as_array().unwrap()).unwrap()
    );
    let page = json(&console, "/api/v1/repositories?sort=pulls&per_page=2").await;
    let csv = text(
        &console,
        "/api/v1/repositories?sort=pulls&per_page=2&format=csv",
    )
    .await;
    assert_eq!(
        csv,
        regstat_shared::export::csv(page["rows"].as_array().unwrap()).unwrap()
    );
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_paginate_and_sort_and_details_link_up() {
    let (_db, _broker, console) = console_with_fixtures().await;
    let all = json(&console, "/api/v1/repositories?per_page=500").await;
    let total = all["total"].as_i64().unwrap();
    assert!(total >= 3, "{all}");
    let mut seen = Vec::new();
    for page in 1..=total {
        let one = json(
            &console,
            &format!("/api/v1/repositories?per_page=1&page={page}"),
        )
        .await;
        assert_eq!(one["total"], total);
        seen.push(one["rows"][0]["repository"].clone());
    }
    let names: Vec<Value> = all["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["repository"].clone())
        .collect();
    assert_eq!(seen, names, "pages in name order make the whole list");
    // Every report takes a limit: its first rows, in its order.
    let images = json(&console, "/api/v1/reports/images").await;
    let images = images.as_array().unwrap();
    assert!(images.len() >= 2, "{images:?}");
    let first = json(&console, "/api/v1/reports/images?limit=1").await;
    assert_eq!(first.as_array().unwrap().as_slice(), &images[..1]);
    // ...and pages: following the Link header, one row at a time, gives the whole report
    // once; the last (empty) page has no next link.
    let mut paged = Vec::new();
    let mut next = Some("/api/v1/reports/images?limit=1".to_owned());
    while let Some(path) = next.take() {
        let response = get(&console, &path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        next = response.headers().get("link").map(|link| {
            let link = link.to_str().unwrap();
            let target = link
                .strip_prefix('<')
                .and_then(|l| l.strip_suffix(">; rel=\"next\""))
                .unwrap_or_else(|| panic!("a next link: {link}"));
            target.to_owned()
        });
        let rows: Value = response.json().await.unwrap();
        paged.extend(rows.as_array().unwrap().iter().cloned());
        assert!(paged.len() <= images.len(), "{paged:?}");
    }
    assert_eq!(paged.as_slice(), images);
    let second = json(&console, "/api/v1/reports/images?limit=1&offset=1").await;
    assert_eq!(second.as_array().unwrap().as_slice(), &images[1..2]);
    let response = get(&console, "/api/v1/reports/images?offset=-1").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["parameter"], "offset", "{body}");
    let by_pulls = json(&console, "/api/v1/repositories?sort=pulls").await;
    let pulls: Vec<i64> = by_pulls["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["pulls_30d"].as_i64().unwrap())
        .collect();
    assert!(pulls.windows(2).all(|w| w[0] >= w[1]), "{pulls:?}");

    let app = json(&console, "/api/v1/repositories/127.0.0.1%3A5000/lab/multi").await;
    let tag = &app["tags"][0];
    assert_eq!(tag["tag"], "v1");
    let digest = tag["digest"].as_str().unwrap();
    let detail = json(&console, &format!("/api/v1/digests/{digest}")).await;
    assert_eq!(detail["tags"][0]["repository"], "lab/multi");
    assert_eq!(detail["children"].as_array().unwrap().len(), 2, "{detail}");
    let found = json(&console, &format!("/api/v1/search?q={}", &digest[7..15])).await;
    assert_eq!(found["digests"][0]["digest"], digest);
    // Substrings of repositories, tags and actors, whatever the case; `%` and `_` are
    // characters like any other.
    let found = json(&console, "/api/v1/search?q=AB/MUL").await;
    assert_eq!(
        found["repositories"][0]["repository"], "lab/multi",
        "{found}"
    );
    let found = json(&console, "/api/v1/search?q=V1").await;
    assert!(
        found["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["repository"] == "lab/multi" && t["tag"] == "v1"),
        "{found}"
    );
    for wildcard in ["%25", "_"] {
        let found = json(&console, &format!("/api/v1/search?q={wildcard}")).await;
        for kind in ["repositories", "tags", "actors"] {
            assert_eq!(found[kind], json!([]), "{wildcard}: {found}");
        }
    }

    // Keyset pages of the activity: every entry once, newest first.
    let everything = json(&console, "/api/v1/activity?limit=500").await;
    let mut paged = Vec::new();
    let mut next = Some(String::new());
    while let Some(after) = next {
        let path = if after.is_empty() {
            "/api/v1/activity?limit=7".to_owned()
        } else {
            format!("/api/v1/activity?limit=7&after={}", urlencode(&after))
        };
        let page = json(&console, &path).await;
        paged.extend(
            page["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["event_id"].clone()),
        );
        next = page["next"].as_str().map(str::to_owned);
    }
    let all_ids: Vec<Value> = everything["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event_id"].clone())
        .collect();
    assert_eq!(paged, all_ids);
    console.stop().await;
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacker_influenced_fields_render_as_text_under_a_strict_policy() {
    let db = TestDb::new().await;
    let broker = TestBroker::new().await;
    let script = "<script>alert(1)</script>";
    let image = "<img src=x onerror=alert(2)>";
    record(
        &db,
        &[json!({
            "id": "hostile-1", "timestamp": "2026-12-01T10:00:00Z", "action": "pull",
            "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 10,
                       "digest": format!("sha256:{}", "ab".repeat(32)), "repository": "lab/app", "tag": "v1"},
            "request": {"method": "GET", "host": "127.0.0.1:5000", "addr": "10.0.0.1:1", "useragent": script},
            "actor": {"name": image},
        })],
    )
    .await;
    let console = TestConsole::spawn(&console_settings(&db, &broker));
    let response = get(&console, "/activity").await;
    let policy = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"),
        "{policy}"
    );
    let page = response.text().await.unwrap();
    assert!(
        page.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
            || page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "escaped"
    );
    assert!(!page.contains(script) && !page.contains(image), "never raw");
    let search = text(&console, "/search?q=%3Cimg").await;
    assert!(!search.contains(image));
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_endpoint() {
    let (_db, _broker, console) = console_with_fixtures().await;
    let doc = json(&console, "/api/v1/openapi.json").await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    for path in [
        "/api/v1/reports/{name}",
        "/api/v1/overview",
        "/api/v1/repositories",
        "/api/v1/repositories/{registry}/{repository}",
        "/api/v1/digests/{digest}",
        "/api/v1/search",
        "/api/v1/activity",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    console.stop().await;
}

/// The candidates page shows the plan of `cleanup.policy_file` (read-only), says when none is
/// configured, and shows why a policy is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_candidates_page_shows_the_plan_of_the_configured_policy() {
    let (db, broker, console) = console_with_fixtures().await;
    let page = text(&console, "/candidates").await;
    assert!(page.contains("id=\"cleanup-none\""), "{page}");

    let dir = std::env::temp_dir().join(regstat_shared::testkit::unique_name("policy"));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        "[[policy]]\nrepositories = [\"lab/multi\"]\nuntagged = \"delete\"\n",
    )
    .unwrap();
    let with_policy = |policy: &std::path::Path| {
        crate::helpers::settings_with_file(
            &db,
            &broker,
            &format!(
                "[console]\nlisten = \"127.0.0.1:0\"\ntokens = [\"{TOKEN}\"]\n\
                 [cleanup]\npolicy_file = \"{}\"\n",
                policy.display()
            ),
            &[],
        )
    };
    let planned = TestConsole::spawn(&with_policy(&policy));
    let page = text(&planned, "/candidates").await;
    let section = page
        .split("id=\"cleanup-plan\"")
        .nth(1)
        .expect("the plan's table");
    let (rows, totals) = section
        .split_once("id=\"cleanup-totals\"")
        .expect("the totals after the rows");
    assert!(rows.contains("lab/multi"), "{rows}");
    assert!(rows.contains("no rule of policy[0] keeps it"), "{rows}");
    assert!(
        !rows.contains(">lab/app<"),
        "no policy matches lab/app: {rows}"
    );
    assert!(
        !rows.contains(">never<"),
        "an untagged manifest's last use is not known: {rows}"
    );
    assert!(totals.contains(">lab/multi<"), "{totals}");
    planned.stop().await;

    std::fs::write(&policy, "[[policy]]\nrepositories = [\"lab/*\"]\n").unwrap();
    let refused = TestConsole::spawn(&with_policy(&policy));
    let page = text(&refused, "/candidates").await;
    let problem = page
        .split("id=\"cleanup-problem\"")
        .nth(1)
        .expect("the policy's problem");
    assert!(problem.contains("policy[0].untagged"), "{problem}");
    refused.stop().await;
    console.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
