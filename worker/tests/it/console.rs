//! The console (`regstat-console`): its API and pages over a database the worker filled
//! (`api`). The browser test, over the real pipeline fed by a real registry, is
//! `e2e_model::console`.

mod api;

use crate::helpers::{TestConsole, TestDb, context, fixture_bodies, messages};
use regstat_shared::testkit::TestBroker;
use regstat_worker::handler::{Outcome, handle_batch};
use serde_json::Value;

/// The console's Basic user in these tests.
pub(crate) const USER: &str = "operator";
pub(crate) const PASSWORD: &str = "console-pw";
/// Its bearer token.
const TOKEN: &str = "console-token";

/// Settings for a console on the test database with credentials.
pub(crate) fn console_settings(
    db: &TestDb,
    broker: &TestBroker,
) -> regstat_shared::config::Settings {
    crate::helpers::settings_with_file(
        db,
        broker,
        &format!(
            "[console]\nlisten = \"127.0.0.1:0\"\ntokens = [\"{TOKEN}\"]\n\
             [[console.basic]]\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n"
        ),
        &[],
    )
}

/// Records `events` through the worker's handler.
async fn record(db: &TestDb, events: &[Value]) {
    let (outcomes, _) = handle_batch(&context(db), &messages(events)).await.unwrap();
    assert!(outcomes.iter().all(|o| *o == Outcome::Ack), "{outcomes:?}");
}

/// The real fixtures' events (pushes, pulls by tag and digest, a multi-arch index, a delete).
fn fixture_events() -> Vec<Value> {
    [
        "01-push-oci-by-tag.jsonl",
        "03-pull-by-tag.jsonl",
        "04-pull-by-digest.jsonl",
        "06-push-multiarch-oci-index.jsonl",
        "07-pull-one-arch.jsonl",
        "12-delete-manifest-by-digest.jsonl",
        "a2-auth-push.jsonl",
    ]
    .iter()
    .flat_map(|file| fixture_bodies(file))
    .flat_map(|body| {
        let envelope: Value = serde_json::from_str(&body).unwrap();
        envelope["events"].as_array().unwrap().clone()
    })
    .collect()
}

/// A console over a database holding the fixtures.
async fn console_with_fixtures() -> (TestDb, TestBroker, TestConsole) {
    let db = TestDb::new().await;
    let broker = TestBroker::new().await;
    record(&db, &fixture_events()).await;
    let console = TestConsole::spawn(&console_settings(&db, &broker));
    (db, broker, console)
}
