//! The console in a real browser (Debian's `chromium`, driven through `chromedriver` with
//! WebDriver), over the real pipeline fed by the real registry: skopeo pushes, pulls and
//! deletes; then search → repository → digest by clicking, sorting and paging, CSV against the
//! API's rows, and the pull counts against what skopeo did. Every step saves a screenshot
//! under `target/console-screenshots/`.

use super::Variant;
use super::clients::Skopeo;
use super::drive::{Images, Pipeline, settle};
use crate::console::{PASSWORD, USER, console_settings};
use crate::helpers::TestConsole;
use crate::support::{free_port, require_tools};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const INSTALL_BROWSER: &str = "install it: apt-get install -y chromium chromium-driver (or run deploy/dev.sh --services-only)";

/// chromedriver and a headless chromium session, both gone on drop.
struct Browser {
    driver: Child,
    client: Option<Client>,
    profile: PathBuf,
    screenshots: PathBuf,
}

impl Browser {
    async fn start() -> Self {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(tool).is_file(),
                "{tool} is missing: {INSTALL_BROWSER}"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {CHROMEDRIVER} ({e}): {INSTALL_BROWSER}"));
        let profile = std::env::temp_dir().join(regstat_shared::testkit::unique_name("chromium"));
        let screenshots = regstat_shared::testkit::workspace_binary("regstat")
            .parent()
            .and_then(|debug| debug.parent())
            .expect("the target directory")
            .join("console-screenshots");
        std::fs::create_dir_all(&screenshots).expect("the screenshots directory");
        let mut browser = Self {
            driver,
            client: None,
            profile,
            screenshots,
        };
        let webdriver = format!("http://127.0.0.1:{port}");
        let status = format!("{webdriver}/status");
        regstat_shared::testkit::eventually(
            Duration::from_secs(20),
            "chromedriver to answer",
            || {
                let status = status.clone();
                async move {
                    reqwest::get(&status)
                        .await
                        .ok()
                        .filter(|r| r.status().is_success())
                }
            },
        )
        .await;
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": CHROMIUM,
                // As the machine's own probe runs it: no sandbox (root), no background
                // networking (the network is closed), a profile of its own.
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1400,1000",
                    format!("--user-data-dir={}", browser.profile.display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&webdriver)
            .await
            .expect("a chromium session");
        browser.client = Some(client);
        browser
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("a session")
    }

    async fn goto(&self, url: &str) {
        self.client().goto(url).await.expect("navigate");
    }

    async fn text(&self, css: &str) -> String {
        self.client()
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .expect("its text")
    }

    async fn click(&self, css: &str) {
        self.client()
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .expect("click");
    }

    async fn attribute(&self, css: &str, name: &str) -> String {
        self.client()
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .attr(name)
            .await
            .expect("attribute")
            .unwrap_or_else(|| panic!("{css} has no {name}"))
    }

    /// The cells of a table's body, row by row.
    async fn rows(&self, table: &str) -> Vec<Vec<String>> {
        let script = format!(
            "return Array.from(document.querySelectorAll('#{table} tbody tr')).map(\
             r => Array.from(r.cells).map(c => c.innerText.trim()));"
        );
        let value = self.client().execute(&script, vec![]).await.expect("rows");
        serde_json::from_value(value).expect("rows of text")
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client().screenshot().await.expect("a screenshot");
        std::fs::write(self.screenshots.join(format!("{name}.png")), png).expect("save it");
    }

    async fn stop(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// `GET path` of the console with its Basic credentials.
async fn fetch(console: &str, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{console}{path}"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .expect("the console answers")
}

/// The CSV link of `table` returns exactly the rows of its JSON link.
async fn assert_csv_is_the_json_rows(browser: &Browser, console: &str, table: &str) {
    let csv = browser.attribute(&format!("#{table} a.csv"), "href").await;
    let json = browser.attribute(&format!("#{table} a.json"), "href").await;
    let path = |link: &str| link.trim_start_matches(console).to_owned();
    let rows: Value = fetch(console, &path(&json))
        .await
        .json()
        .await
        .expect("json");
    let text = fetch(console, &path(&csv)).await.text().await.expect("csv");
    let rows = rows.as_array().expect("rows").clone();
    assert!(!rows.is_empty(), "{table} has rows");
    assert_eq!(
        text,
        regstat_shared::export::csv(&rows).expect("csv"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_finds_what_skopeo_did_by_clicking_through_the_console() {
    require_tools();
    let pipeline = Pipeline::start(&Variant {
        name: "console",
        htpasswd: false,
        include_references: true,
    })
    .await;
    let images = Images::build(&pipeline.scratch).await;
    let sk = Skopeo {
        scratch: &pipeline.scratch,
        host: pipeline.host.clone(),
        creds: None,
    };
    sk.push(&images.layout.reference("a"), "web/app:v1", &[])
        .await;
    sk.push(&images.layout.reference("a2"), "web/app:v2", &[])
        .await;
    sk.push(&images.layout.reference("m"), "web/multi:v1", &["--all"])
        .await;
    sk.push(&images.layout.reference("b"), "web/old:v1", &[])
        .await;
    // Pulls: web/app:v1 three times, web/multi:v1 once (arm64/v8).
    for _ in 0..3 {
        sk.pull("web/app:v1", &[]).await;
    }
    sk.pull(
        "web/multi:v1",
        &["--override-arch", "arm64", "--override-variant", "v8"],
    )
    .await;
    sk.delete(&format!("web/old@{}", images.b.manifest.digest))
        .await;
    settle(&pipeline).await;

    let console = TestConsole::spawn(&console_settings(&pipeline.db, &pipeline.broker));
    let unauthorized = reqwest::get(format!("{}/", console.address))
        .await
        .expect("answers");
    assert_eq!(unauthorized.status(), 401, "no credentials, no console");
    let base = console
        .address
        .replace("http://", &format!("http://{USER}:{PASSWORD}@"));
    let browser = Browser::start().await;

    // Overview.
    browser.goto(&format!("{base}/")).await;
    // web/old's only manifest was deleted: two repositories hold something.
    assert_eq!(browser.text("#totals div:nth-child(1) .value").await, "2");
    assert_eq!(
        browser.text("#totals div:nth-child(2) .value").await,
        "3",
        "tags"
    );
    let top = browser.rows("top-pulled").await;
    assert_eq!(
        top[0][1..4],
        ["web/app".to_owned(), "v1".to_owned(), "3".to_owned()],
        "{top:?}"
    );
    browser.screenshot("overview").await;

    // Search → repository.
    let search = browser
        .client()
        .find(Locator::Css("#search"))
        .await
        .expect("the search box");
    search
        .send_keys("web/app\u{E007}")
        .await
        .expect("type and press Enter");
    regstat_shared::testkit::eventually(Duration::from_secs(10), "the search page", || async {
        browser
            .client()
            .find(Locator::Css("#found-repositories a"))
            .await
            .ok()
    })
    .await;
    browser.screenshot("search").await;
    browser.click("#found-repositories tbody a").await;
    assert_eq!(browser.text("#title").await, "web/app");
    let tags = browser.rows("tags").await;
    let v1 = tags.iter().find(|r| r[0] == "v1").expect("v1 listed");
    // Columns: tag, digest, media type, platforms, size, pushed, last pulled, pulls 7 d,
    // pulls 30 d, pulls, version checks, last checked.
    assert_eq!(v1[3], "linux/amd64");
    assert_eq!(
        (v1[7].as_str(), v1[8].as_str(), v1[9].as_str()),
        ("3", "3", "3"),
        "{v1:?}"
    );
    let v2 = tags.iter().find(|r| r[0] == "v2").expect("v2 listed");
    assert_eq!((v2[6].as_str(), v2[9].as_str()), ("never", "0"), "{v2:?}");
    assert_csv_is_the_json_rows(&browser, &console.address, "tags").await;
    browser.screenshot("repository").await;

    // Repository → digest.
    browser
        .click("#tags tbody tr:first-child td:nth-child(2) a")
        .await;
    assert_eq!(browser.text("#title").await, images.a.manifest.digest);
    let tagged = browser.rows("digest-tags").await;
    assert!(
        tagged.iter().any(|r| r[1] == "web/app" && r[2] == "v1"),
        "{tagged:?}"
    );
    assert_csv_is_the_json_rows(&browser, &console.address, "blobs").await;
    browser.screenshot("digest").await;

    // The index: its two children with their platforms.
    browser
        .goto(&format!("{base}/digests/{}", images.m.digest))
        .await;
    let children = browser.rows("children").await;
    let platforms: Vec<&str> = children.iter().map(|r| r[4].as_str()).collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64/v8"], "{children:?}");

    // Repositories: sorted by pulls by clicking its header, then paged one by one.
    browser.goto(&format!("{base}/repositories")).await;
    browser.click("#repositories th:nth-child(4) a").await;
    let sorted = browser.rows("repositories").await;
    assert_eq!(sorted[0][1], "web/app", "{sorted:?}");
    assert_eq!(sorted[0][3], "3");
    browser.screenshot("repositories").await;
    browser
        .goto(&format!("{base}/repositories?per_page=1"))
        .await;
    let mut names = vec![browser.rows("repositories").await[0][1].clone()];
    while browser.client().find(Locator::Css("#next")).await.is_ok() {
        browser.click("#next").await;
        names.push(browser.rows("repositories").await[0][1].clone());
    }
    assert_eq!(
        names,
        ["web/app", "web/multi", "web/old"],
        "page after page"
    );

    // Activity: the delete is in the audit trail.
    browser
        .goto(&format!("{base}/activity?action=delete"))
        .await;
    let deletes = browser.rows("activity").await;
    assert!(
        deletes.iter().all(|r| r[1] == "delete") && !deletes.is_empty(),
        "{deletes:?}"
    );
    browser.screenshot("activity").await;

    browser.stop().await;
    console.stop().await;
    pipeline.assert_broker_empty().await;
    pipeline.stop().await;
}
