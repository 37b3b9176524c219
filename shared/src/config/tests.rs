//! Tests of the layered configuration. None of them touches the process environment: the
//! environment is always an explicit map given to [`Settings::load_with_env`].

#![allow(clippy::unwrap_used)]

use super::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A TOML file in the temp directory, removed when dropped (even when the test fails).
struct TempToml {
    path: PathBuf,
}

impl TempToml {
    fn new(contents: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let unique = format!(
            "regstat-config-test-{}-{}-{}.toml",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let path = std::env::temp_dir().join(unique);
        std::fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        Self { path }
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempToml {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn load(file: Option<&Path>, pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    Settings::load_with_env(file, env(pairs))
}

fn load_err(file: Option<&Path>, pairs: &[(&str, &str)]) -> ConfigError {
    match load(file, pairs) {
        Ok(settings) => panic!("{pairs:?} loaded: {settings:?}"),
        Err(e) => e,
    }
}

fn tokens(settings: &Settings) -> Vec<&str> {
    settings
        .receiver
        .tokens
        .iter()
        .map(|t| t.expose_secret())
        .collect()
}

#[test]
fn defaults_load_and_validate() {
    let settings = load(None, &[]).unwrap();
    settings.validate().unwrap();

    assert_eq!(
        settings.amqp.url.expose_secret(),
        "amqp://guest:guest@127.0.0.1:5672/%2f"
    );
    assert_eq!(settings.amqp.prefix, "regstat");
    assert_eq!(settings.amqp.confirm_timeout(), Duration::from_secs(5));
    assert_eq!(settings.amqp.delivery_limit, 20);
    assert_eq!(
        settings.amqp.reconnect_max_backoff(),
        Duration::from_secs(5)
    );

    assert_eq!(
        settings.database.url.expose_secret(),
        "postgres://postgres@127.0.0.1:5432/regstat"
    );
    assert_eq!(settings.database.max_connections, 8);
    assert_eq!(settings.database.acquire_timeout(), Duration::from_secs(5));
    assert!(settings.database.migrate_on_start);

    assert_eq!(settings.receiver.listen, "0.0.0.0:8080");
    assert_eq!(
        settings.receiver_listen().unwrap(),
        "0.0.0.0:8080".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(settings.receiver.body_limit_bytes, 1_048_576);
    assert!(settings.receiver.tokens.is_empty());
    assert!(settings.receiver.basic.is_empty());
    assert_eq!(settings.receiver.retry_after_secs, 1);
    assert_eq!(settings.receiver.http_workers, 0);
    assert_eq!(settings.receiver.shutdown_timeout_secs, 30);

    assert_eq!(settings.worker.prefetch, 512);
    assert_eq!(settings.worker.batch_size, 256);
    assert_eq!(settings.worker.batch_linger(), Duration::from_millis(5));

    assert_eq!(settings.telemetry.format, LogFormat::Human);
    assert_eq!(settings.telemetry.filter, "info");
}

#[test]
fn environment_without_the_prefix_is_ignored() {
    // Only `REGSTAT__*` counts; `REGSTAT_CONFIG` names the file and is no setting.
    let settings = load(
        None,
        &[
            ("RECEIVER__LISTEN", "nonsense"),
            ("REGSTAT_CONFIG", "/nonexistent.toml"),
            ("OTHER__AMQP__URL", "http://x"),
            ("PATH", "/usr/bin"),
        ],
    )
    .unwrap();
    assert_eq!(settings.receiver.listen, "0.0.0.0:8080");
}

#[test]
fn file_overrides_defaults() {
    let file = TempToml::new(
        r#"
[amqp]
url = "amqps://user:pw@broker.example:5671/prod"
prefix = "regstat-prod"

[database]
max_connections = 32
migrate_on_start = false

[receiver]
listen = "127.0.0.1:9000"
tokens = ["t1"]

[worker]
batch_size = 64

[telemetry]
format = "json"
"#,
    );
    let settings = load(Some(file.path()), &[]).unwrap();
    assert_eq!(
        settings.amqp.url.expose_secret(),
        "amqps://user:pw@broker.example:5671/prod"
    );
    assert_eq!(settings.amqp.prefix, "regstat-prod");
    assert_eq!(settings.database.max_connections, 32);
    assert!(!settings.database.migrate_on_start);
    assert_eq!(settings.receiver.listen, "127.0.0.1:9000");
    assert_eq!(tokens(&settings), ["t1"]);
    assert_eq!(settings.worker.batch_size, 64);
    assert_eq!(settings.telemetry.format, LogFormat::Json);

    // What the file does not mention keeps its default, in the same sections too.
    assert_eq!(settings.amqp.confirm_timeout_ms, 5000);
    assert_eq!(
        settings.database.url.expose_secret(),
        "postgres://postgres@127.0.0.1:5432/regstat"
    );
    assert_eq!(settings.receiver.body_limit_bytes, 1_048_576);
    assert_eq!(settings.worker.prefetch, 512);
    assert_eq!(settings.telemetry.filter, "info");
}

#[test]
fn environment_overrides_file() {
    let file = TempToml::new(
        r#"
[amqp]
url = "amqp://file@broker:5672/%2f"

[receiver]
listen = "127.0.0.1:9000"
tokens = ["from-file"]
retry_after_secs = 7

[worker]
batch_size = 64
"#,
    );
    let settings = load(
        Some(file.path()),
        &[
            ("REGSTAT__RECEIVER__LISTEN", "[::1]:7000"),
            ("REGSTAT__AMQP__URL", "amqp://env@broker:5672/%2f"),
            ("REGSTAT__RECEIVER__TOKENS", "a,b"),
            ("REGSTAT__WORKER__BATCH_SIZE", "10"),
            ("REGSTAT__DATABASE__MIGRATE_ON_START", "false"),
            ("REGSTAT__TELEMETRY__FORMAT", "json"),
        ],
    )
    .unwrap();
    assert_eq!(settings.receiver.listen, "[::1]:7000");
    assert_eq!(
        settings.receiver_listen().unwrap(),
        "[::1]:7000".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        settings.amqp.url.expose_secret(),
        "amqp://env@broker:5672/%2f"
    );
    assert_eq!(tokens(&settings), ["a", "b"]);
    assert_eq!(settings.worker.batch_size, 10);
    assert!(!settings.database.migrate_on_start);
    assert_eq!(settings.telemetry.format, LogFormat::Json);
    // The file still wins over the defaults where the environment says nothing.
    assert_eq!(settings.receiver.retry_after_secs, 7);

    // Without a file the environment overrides the defaults directly; one token is a
    // one-element list.
    let settings = load(None, &[("REGSTAT__RECEIVER__TOKENS", "only")]).unwrap();
    assert_eq!(tokens(&settings), ["only"]);
}

#[test]
fn invalid_values_name_their_key() {
    for (key, value, named) in [
        (
            "REGSTAT__RECEIVER__BODY_LIMIT_BYTES",
            "abc",
            "receiver.body_limit_bytes",
        ),
        ("REGSTAT__RECEIVER__LISTEN", "nonsense", "receiver.listen"),
        ("REGSTAT__AMQP__URL", "http://x", "amqp.url"),
        ("REGSTAT__WORKER__BATCH_SIZE", "0", "worker.batch_size"),
        ("REGSTAT__WORKER__PREFETCH", "-1", "worker.prefetch"),
        ("REGSTAT__WORKER__PREFETCH", "0", "worker.prefetch"),
        ("REGSTAT__DATABASE__URL", "mysql://x", "database.url"),
        (
            "REGSTAT__DATABASE__MAX_CONNECTIONS",
            "0",
            "database.max_connections",
        ),
        ("REGSTAT__AMQP__PREFIX", "", "amqp.prefix"),
        ("REGSTAT__AMQP__PREFIX", "a b", "amqp.prefix"),
        (
            "REGSTAT__AMQP__CONFIRM_TIMEOUT_MS",
            "0",
            "amqp.confirm_timeout_ms",
        ),
        (
            "REGSTAT__RECEIVER__BODY_LIMIT_BYTES",
            "100",
            "receiver.body_limit_bytes",
        ),
        ("REGSTAT__RECEIVER__TOKENS", "a, ", "receiver.tokens"),
        ("REGSTAT__TELEMETRY__FORMAT", "xml", "telemetry.format"),
    ] {
        let message = load_err(None, &[(key, value)]).to_string();
        assert!(
            message.contains(named),
            "{key}={value:?}: error does not name `{named}`: {message}"
        );
        assert!(
            message.starts_with("invalid configuration: "),
            "{key}={value:?}: {message}"
        );
    }

    // Values that deserialise but cannot work are `Invalid` with the exact key.
    for (key, value, named) in [
        ("REGSTAT__RECEIVER__LISTEN", "nonsense", "receiver.listen"),
        ("REGSTAT__AMQP__URL", "http://x", "amqp.url"),
    ] {
        match load_err(None, &[(key, value)]) {
            ConfigError::Invalid { key: got, .. } => assert_eq!(got, named),
            other => panic!("{key}: expected Invalid, got {other:?}"),
        }
    }

    // The same checks apply to the file.
    let file = TempToml::new("[receiver]\nbody_limit_bytes = \"abc\"\n");
    let message = load_err(Some(file.path()), &[]).to_string();
    assert!(message.contains("receiver.body_limit_bytes"), "{message}");
}

#[test]
fn unknown_keys_are_rejected_by_name() {
    let file = TempToml::new("[receiver]\nlisten_addr = \"x\"\n");
    let message = load_err(Some(file.path()), &[]).to_string();
    assert!(message.contains("listen_addr"), "{message}");

    let file = TempToml::new("[recevier]\nlisten = \"127.0.0.1:1\"\n");
    let message = load_err(Some(file.path()), &[]).to_string();
    assert!(message.contains("recevier"), "{message}");

    // A misspelt variable is an error too, not silently ignored.
    let message = load_err(None, &[("REGSTAT__WORKER__BATCHSIZE", "10")]).to_string();
    assert!(message.contains("batchsize"), "{message}");
}

#[test]
fn a_missing_or_broken_file_is_an_error() {
    let file = TempToml::new("");
    let missing = file.path().with_extension("missing.toml");
    let message = load_err(Some(&missing), &[]).to_string();
    assert!(
        message.contains("not found") || message.contains("missing"),
        "{message}"
    );

    let file = TempToml::new("[receiver\nlisten = ");
    load_err(Some(file.path()), &[]);

    // An empty file changes nothing.
    let file = TempToml::new("");
    let settings = load(Some(file.path()), &[]).unwrap();
    assert_eq!(settings.receiver.listen, "0.0.0.0:8080");
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let file = TempToml::new(
        r#"
[[receiver.basic]]
username = "registry"
password = "s3cr3t-basic"
"#,
    );
    let settings = load(
        Some(file.path()),
        &[
            (
                "REGSTAT__AMQP__URL",
                "amqp://regstat:s3cr3t-amqp@broker:5672/%2f",
            ),
            (
                "REGSTAT__DATABASE__URL",
                "postgres://regstat:s3cr3t-db@db:5432/regstat",
            ),
            ("REGSTAT__RECEIVER__TOKENS", "s3cr3t-token"),
        ],
    )
    .unwrap();

    // The secrets did load...
    assert!(settings.amqp.url.expose_secret().contains("s3cr3t-amqp"));
    assert!(settings.database.url.expose_secret().contains("s3cr3t-db"));
    assert_eq!(tokens(&settings), ["s3cr3t-token"]);
    assert_eq!(settings.receiver.basic.len(), 1);
    assert_eq!(settings.receiver.basic[0].username, "registry");
    assert_eq!(
        settings.receiver.basic[0].password.expose_secret(),
        "s3cr3t-basic"
    );

    // ...and no Debug rendering shows them.
    for debug in [format!("{settings:?}"), format!("{settings:#?}")] {
        for secret in ["s3cr3t-amqp", "s3cr3t-db", "s3cr3t-token", "s3cr3t-basic"] {
            assert!(!debug.contains(secret), "{secret} leaked: {debug}");
        }
        // The non-secret parts are still there to debug with.
        assert!(debug.contains("registry"), "{debug}");
        assert!(debug.contains("0.0.0.0:8080"), "{debug}");
    }

    // A rejected URL is not echoed back either.
    let error = load_err(
        None,
        &[("REGSTAT__AMQP__URL", "http://regstat:s3cr3t-amqp@broker/")],
    );
    for text in [error.to_string(), format!("{error:?}")] {
        assert!(!text.contains("s3cr3t-amqp"), "{text}");
    }
}

#[test]
fn environment_values_are_taken_verbatim() {
    // Tokens that look like numbers or booleans stay the exact text (they used to be parsed as
    // numbers first, which failed to load and printed the mangled secret in the error).
    for token in ["0123", "1e5", "true", "inf", "-7"] {
        let settings = load(None, &[("REGSTAT__RECEIVER__TOKENS", token)])
            .unwrap_or_else(|e| panic!("token {token:?}: {e}"));
        assert_eq!(tokens(&settings), [token]);
    }
    let settings = load(None, &[("REGSTAT__RECEIVER__TOKENS", "0123,456")]).unwrap();
    assert_eq!(tokens(&settings), ["0123", "456"]);

    // Strings keep leading zeros and trailing decimals.
    let settings = load(
        None,
        &[
            ("REGSTAT__AMQP__PREFIX", "007"),
            ("REGSTAT__TELEMETRY__FILTER", "1.50"),
        ],
    )
    .unwrap();
    assert_eq!(settings.amqp.prefix, "007");
    assert_eq!(settings.telemetry.filter, "1.50");

    // Numbers and booleans are still parsed where the setting is one.
    let settings = load(
        None,
        &[
            ("REGSTAT__WORKER__PREFETCH", "64"),
            ("REGSTAT__AMQP__CONFIRM_TIMEOUT_MS", "250"),
            ("REGSTAT__DATABASE__MIGRATE_ON_START", "FALSE"),
        ],
    )
    .unwrap();
    assert_eq!(settings.worker.prefetch, 64);
    assert_eq!(settings.amqp.confirm_timeout(), Duration::from_millis(250));
    assert!(!settings.database.migrate_on_start);
    let message = load_err(None, &[("REGSTAT__WORKER__PREFETCH", "70000")]).to_string();
    assert!(message.contains("worker.prefetch"), "{message}");
    let message = load_err(None, &[("REGSTAT__DATABASE__MIGRATE_ON_START", "maybe")]).to_string();
    assert!(message.contains("database.migrate_on_start"), "{message}");

    // In a file, tokens are a list; numbers in it are taken as text.
    let file = TempToml::new("[receiver]\ntokens = [\"x\", 123]\n");
    assert_eq!(tokens(&load(Some(file.path()), &[]).unwrap()), ["x", "123"]);
    let file = TempToml::new("[receiver]\ntokens = 5\n");
    let message = load_err(Some(file.path()), &[]).to_string();
    assert!(message.contains("receiver.tokens"), "{message}");
}

#[test]
fn basic_credentials_come_from_the_environment_as_user_password_pairs() {
    let settings = load(
        None,
        &[("REGSTAT__CONSOLE__BASIC", "admin:pw:with:colons,ops:pw2")],
    )
    .unwrap();
    let users: Vec<(&str, &str)> = settings
        .console
        .basic
        .iter()
        .map(|c| (c.username.as_str(), c.password.expose_secret()))
        .collect();
    assert_eq!(users, [("admin", "pw:with:colons"), ("ops", "pw2")]);
    assert!(!settings.console.is_open());
    let error = load(None, &[("REGSTAT__CONSOLE__BASIC", "no-password")]).unwrap_err();
    assert!(error.to_string().contains("user:password"), "{error}");
}

#[test]
fn tokens_from_the_environment_are_trimmed() {
    let settings = load(None, &[("REGSTAT__RECEIVER__TOKENS", "a, b\n")]).unwrap();
    assert_eq!(tokens(&settings), ["a", "b"]);
}

#[test]
fn passwords_are_masked_and_the_rest_kept() {
    assert_eq!(
        redact_url("amqp://guest:guest@127.0.0.1:5672/%2f"),
        "amqp://guest:***@127.0.0.1:5672/%2f"
    );
    assert_eq!(
        redact_url("postgres://app:p%40ss@db:5432/regstat?sslmode=require&password=x"),
        "postgres://app:***@db:5432/regstat?sslmode=require&password=***"
    );
    assert_eq!(
        redact_url("postgres://postgres@127.0.0.1:5432/regstat"),
        "postgres://postgres@127.0.0.1:5432/regstat"
    );
    assert_eq!(
        redact_url("amqps://u:a@b@host"),
        "amqps://u:***@host",
        "an unescaped @ in the password still ends up masked"
    );
    assert_eq!(redact_url("not a url with secret"), "***");
    assert_eq!(
        redact_url("amqp://u:a@n1:5672/%2f,amqp://u:b@n2:5672/%2f"),
        "amqp://u:***@n1:5672/%2f,amqp://u:***@n2:5672/%2f",
        "every node of a cluster's list"
    );
}

#[test]
fn a_cluster_is_a_comma_separated_list_of_nodes() {
    let settings = Settings::load_with_env(
        None,
        vec![(
            "REGSTAT__AMQP__URL".into(),
            "amqp://g:g@127.0.0.1:5673/%2f, amqp://g:g@127.0.0.1:5674/%2f,".into(),
        )],
    )
    .unwrap();
    let nodes: Vec<String> = settings
        .amqp
        .node_urls()
        .iter()
        .map(|n| n.expose_secret().to_owned())
        .collect();
    assert_eq!(
        nodes,
        [
            "amqp://g:g@127.0.0.1:5673/%2f",
            "amqp://g:g@127.0.0.1:5674/%2f"
        ]
    );
    let refused = Settings::load_with_env(
        None,
        vec![(
            "REGSTAT__AMQP__URL".into(),
            "amqp://g:g@n1/%2f,n2:5672".into(),
        )],
    );
    assert!(matches!(
        refused,
        Err(ConfigError::Invalid {
            key: "amqp.url",
            ..
        })
    ));
    let refused = Settings::load_with_env(
        None,
        vec![
            ("REGSTAT__AMQP__SHARDS".into(), "4".into()),
            ("REGSTAT__WORKER__SHARDS".into(), "1,4".into()),
        ],
    );
    assert!(
        matches!(&refused, Err(ConfigError::Invalid { key: "worker.shards", reason }) if reason.contains("shard 4")),
        "{refused:?}"
    );
}
