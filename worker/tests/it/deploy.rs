//! The deployment files agree with the code: the RabbitMQ definitions with the topology the
//! binaries declare, the operations guide and the deployment files with the settings in
//! `shared/src/defaults.toml`, the dashboards and alerts with the metrics the code records,
//! and the database dashboard's SQL with the migrated schema.
//!
//! `deploy/validate.sh` checks the same files' syntax (compose, Kubernetes, Prometheus).

use crate::helpers::TestDb;
use lapin::ExchangeKind;
use lapin::types::{AMQPValue, FieldTable};
use regstat_shared::config::{DEFAULTS, Settings};
use regstat_shared::topology::Topology;
use serde_json::{Map, Value, json};
use sqlx::AssertSqlSafe;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The workspace root (this crate is `worker/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the worker crate is inside the workspace")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Files under `dir` (recursively) whose name ends with one of `extensions`.
fn files(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("list {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if extensions
                .iter()
                .any(|ext| path.to_string_lossy().ends_with(ext))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

// ---------------------------------------------------------------------------------------------
// deploy/rabbitmq/definitions.json

fn amqp_to_json(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(b) => json!(b),
        AMQPValue::ShortShortInt(n) => json!(n),
        AMQPValue::ShortShortUInt(n) => json!(n),
        AMQPValue::ShortInt(n) => json!(n),
        AMQPValue::ShortUInt(n) => json!(n),
        AMQPValue::LongInt(n) => json!(n),
        AMQPValue::LongUInt(n) => json!(n),
        AMQPValue::LongLongInt(n) => json!(n),
        AMQPValue::ShortString(s) => json!(s.as_str()),
        AMQPValue::LongString(s) => {
            json!(std::str::from_utf8(s.as_bytes()).expect("queue arguments are UTF-8"))
        }
        other => panic!("queue argument of a type definitions.json cannot express: {other:?}"),
    }
}

fn table_to_json(table: &FieldTable) -> Value {
    let map: Map<String, Value> = table
        .inner()
        .iter()
        .map(|(key, value)| (key.as_str().to_owned(), amqp_to_json(value)))
        .collect();
    Value::Object(map)
}

fn exchange_type(kind: &ExchangeKind) -> &str {
    match kind {
        ExchangeKind::Direct => "direct",
        ExchangeKind::Fanout => "fanout",
        ExchangeKind::Headers => "headers",
        ExchangeKind::Topic => "topic",
        ExchangeKind::Custom(name) => name,
    }
}

/// The topology of the default settings, as RabbitMQ definitions (vhost `/`).
fn declared_definitions() -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) {
    let settings = Settings::load_with_env(None, Vec::new()).expect("default settings load");
    assert_eq!(
        settings.amqp.prefix, "regstat",
        "definitions.json is for the default prefix"
    );
    let topology = Topology::from_settings(&settings.amqp);
    let exchanges = topology
        .exchanges()
        .iter()
        .map(|(name, kind)| {
            // Declared with ExchangeDeclareOptions { durable: true, ..default }.
            let exchange = json!({
                "name": name, "vhost": "/", "type": exchange_type(kind),
                "durable": true, "auto_delete": false, "internal": false, "arguments": {},
            });
            canonical(&exchange)
        })
        .collect();
    let queues = topology
        .queues()
        .iter()
        .map(|spec| {
            // Declared with QueueDeclareOptions { durable: true, ..default }.
            canonical(&json!({
                "name": spec.name, "vhost": "/", "durable": true, "auto_delete": false,
                "arguments": table_to_json(&topology.queue_arguments(spec)),
            }))
        })
        .collect();
    let bindings = topology
        .queues()
        .iter()
        .flat_map(|spec| {
            spec.bindings.iter().map(|key| {
                canonical(&json!({
                    "source": spec.exchange, "vhost": "/", "destination": spec.name,
                    "destination_type": "queue", "routing_key": key, "arguments": {},
                }))
            })
        })
        .collect();
    (exchanges, queues, bindings)
}

/// `value` as JSON text with every object's keys sorted, so equal values compare equal
/// whatever the key order (serde_json may preserve insertion order).
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let fields: Vec<String> = entries
                .into_iter()
                .map(|(key, value)| format!("{}:{}", Value::from(key.as_str()), canonical(value)))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// Each entry of `file[section]`, canonical.
fn file_entries(file: &Value, section: &str) -> BTreeSet<String> {
    let entries = file[section]
        .as_array()
        .unwrap_or_else(|| panic!("definitions.json has no `{section}` array"));
    let set: BTreeSet<String> = entries.iter().map(canonical).collect();
    assert_eq!(
        set.len(),
        entries.len(),
        "definitions.json repeats an entry of `{section}`"
    );
    set
}

fn assert_same(section: &str, declared: &BTreeSet<String>, file: &BTreeSet<String>) {
    let missing: Vec<_> = declared.difference(file).collect();
    let extra: Vec<_> = file.difference(declared).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "deploy/rabbitmq/definitions.json `{section}` differs from shared/src/topology.rs\n\
         declared by the binaries, missing from the file:\n  {}\n\
         in the file, not declared by the binaries:\n  {}",
        missing
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
        extra
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
    );
}

/// `rabbitmqctl import_definitions deploy/rabbitmq/definitions.json` creates exactly what the
/// binaries declare, so a broker provisioned from the file accepts their declarations
/// (a difference in a queue argument would be refused with PRECONDITION_FAILED).
#[test]
fn rabbitmq_definitions_match_the_declared_topology() {
    let file: Value = serde_json::from_str(&read("deploy/rabbitmq/definitions.json"))
        .expect("definitions.json is JSON");
    let keys: BTreeSet<&str> = file
        .as_object()
        .expect("definitions.json is an object")
        .keys()
        .map(String::as_str)
        .collect();
    // No users, permissions or policies: credentials never go in the repository.
    assert_eq!(
        keys,
        BTreeSet::from(["exchanges", "queues", "bindings"]),
        "definitions.json holds the topology only"
    );
    let (exchanges, queues, bindings) = declared_definitions();
    assert_same("exchanges", &exchanges, &file_entries(&file, "exchanges"));
    assert_same("queues", &queues, &file_entries(&file, "queues"));
    assert_same("bindings", &bindings, &file_entries(&file, "bindings"));
}

// ---------------------------------------------------------------------------------------------
// Settings: docs/OPERATIONS.md and the deployment files

/// Every `section.key` of the built-in defaults (top-level keys without a section).
fn default_keys() -> Vec<String> {
    let mut section = String::new();
    let mut keys = Vec::new();
    for line in DEFAULTS.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
        } else if let Some((key, _)) = line.split_once('=')
            && !line.starts_with('#')
        {
            let key = key.trim();
            keys.push(if section.is_empty() {
                key.to_owned()
            } else {
                format!("{section}.{key}")
            });
        }
    }
    assert!(
        keys.len() > 20,
        "parsed too few keys from defaults.toml: {keys:?}"
    );
    keys
}

#[test]
fn operations_guide_documents_every_setting() {
    let guide = read("docs/OPERATIONS.md");
    let missing: Vec<_> = default_keys()
        .into_iter()
        .filter(|key| !guide.contains(&format!("`{key}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/OPERATIONS.md does not document {missing:?}: regenerate its configuration \
         reference with `python3 deploy/config-reference.py --write docs/OPERATIONS.md`"
    );
}

/// `REGSTAT__SECTION__KEY` names in `text`, as `section.key`.
fn env_settings(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("REGSTAT__") {
        rest = &rest[at + "REGSTAT__".len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(rest.len());
        let name = &rest[..end];
        // Placeholders such as REGSTAT__<SECTION>__<KEY> leave an empty name.
        if let Some((section, key)) = name.split_once("__")
            && !section.is_empty()
            && !key.is_empty()
        {
            found.insert(format!(
                "{}.{}",
                section.to_ascii_lowercase(),
                key.to_ascii_lowercase()
            ));
        }
    }
    found
}

/// Compose, Kubernetes, the example environment and the docs only set variables that name
/// real settings (a typo would be silently ignored by the binaries).
#[test]
fn deployment_files_name_only_real_settings() {
    let keys: BTreeSet<String> = default_keys().into_iter().collect();
    let root = root();
    let mut paths: Vec<PathBuf> = [
        "compose.yaml",
        ".env.example",
        "deploy/dev.sh",
        "docs/OPERATIONS.md",
    ]
    .iter()
    .map(|p| root.join(p))
    .collect();
    paths.extend(files(
        &root.join("deploy/kubernetes"),
        &[".yaml", ".toml", ".env"],
    ));
    paths.extend(files(&root.join("deploy/compose"), &[".toml", ".sh"]));
    let mut unknown = Vec::new();
    for path in &paths {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        for setting in env_settings(&text) {
            if !keys.contains(&setting) {
                unknown.push(format!("{}: {setting}", path.display()));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "variables naming no setting of shared/src/defaults.toml: {unknown:#?}"
    );
}

/// The settings files of compose and Kubernetes load and validate like the binaries' own
/// `--config` (unknown keys are refused).
#[test]
fn deployment_settings_files_load() {
    for file in [
        "deploy/compose/regstat.toml",
        "deploy/kubernetes/regstat.toml",
    ] {
        Settings::load_with_env(Some(&root().join(file)), Vec::new())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}

/// Compose, Kubernetes and Prometheus use the ports of the default `receiver.listen` and
/// `worker.listen`, as a local run does.
/// KEDA scales the workers over exactly the work queues the Kubernetes base's settings
/// declare (every shard's), each once.
#[test]
fn keda_triggers_cover_every_work_queue_of_the_kubernetes_settings() {
    let settings = Settings::load_with_env(
        Some(&root().join("deploy/kubernetes/regstat.toml")),
        Vec::new(),
    )
    .unwrap();
    let declared: Vec<String> = Topology::from_settings(&settings.amqp).work_queues();
    assert!(declared.len() > 2, "the base is sharded: {declared:?}");
    let mut triggered: Vec<String> = read("deploy/kubernetes/worker.yaml")
        .lines()
        .filter_map(|line| line.trim().strip_prefix("queueName:"))
        .map(|name| name.trim().to_owned())
        .collect();
    triggered.sort();
    let mut declared = declared;
    declared.sort();
    assert_eq!(triggered, declared);
}

#[test]
fn deployment_files_use_the_default_ports() {
    let settings = Settings::load_with_env(None, Vec::new()).expect("default settings load");
    let port = |listen: &str| listen.rsplit_once(':').expect("host:port").1.to_owned();
    let receiver = port(&settings.receiver.listen);
    let worker = port(&settings.worker.listen);
    let expectations = [
        ("compose.yaml", format!("127.0.0.1:{receiver}:{receiver}")),
        ("compose.yaml", format!("- \"{worker}\"")),
        (
            "deploy/kubernetes/receiver.yaml",
            format!("containerPort: {receiver}"),
        ),
        (
            "deploy/kubernetes/worker.yaml",
            format!("containerPort: {worker}"),
        ),
        (
            "deploy/prometheus/prometheus.yml",
            format!("port: {receiver}"),
        ),
        (
            "deploy/prometheus/prometheus.yml",
            format!("port: {worker}"),
        ),
    ];
    for (file, expected) in expectations {
        assert!(
            read(file).contains(&expected),
            "{file} does not contain `{expected}` (the default receiver.listen is \
             {receiver}, worker.listen {worker})"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Dashboards and alerts

/// Metric names `regstat_*` used in `text`, without the histogram suffixes.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("regstat_") {
        let preceded_by_word = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        rest = &rest[at..];
        let end = rest
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(rest.len());
        let name = &rest[..end];
        rest = &rest[end..];
        if preceded_by_word {
            continue;
        }
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        found.insert(base.to_owned());
    }
    found
}

/// Every metric the dashboards and alert rules query is recorded somewhere in the code (as a
/// string literal passed to the `metrics` macros).
#[test]
fn dashboards_and_alerts_query_recorded_metrics() {
    let root = root();
    let mut sources = String::new();
    for crate_dir in ["shared/src", "receiver/src", "worker/src"] {
        for path in files(&root.join(crate_dir), &[".rs"]) {
            sources.push_str(&std::fs::read_to_string(&path).expect("read a source file"));
        }
    }
    let mut queried = 0;
    let mut unknown = Vec::new();
    let mut users = files(&root.join("deploy/grafana/dashboards"), &[".json"]);
    users.extend(files(&root.join("deploy/prometheus"), &[".yml", ".yaml"]));
    for path in &users {
        let text = std::fs::read_to_string(path).expect("read a dashboard or rules file");
        for name in metric_names(&text) {
            queried += 1;
            if !sources.contains(&format!("\"{name}\"")) {
                unknown.push(format!("{}: {name}", path.display()));
            }
        }
    }
    assert!(
        queried > 10,
        "found too few metrics in the dashboards: {queried}"
    );
    assert!(
        unknown.is_empty(),
        "metrics queried but never recorded by the code: {unknown:#?}"
    );
}

/// The SQL of every panel of `dashboard` (panels nested in rows included).
fn panel_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    let mut pending: Vec<&Value> = dashboard["panels"]
        .as_array()
        .expect("a dashboard has panels")
        .iter()
        .collect();
    while let Some(panel) = pending.pop() {
        if let Some(nested) = panel["panels"].as_array() {
            pending.extend(nested);
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(sql) = target["rawSql"].as_str() {
                let title = panel["title"].as_str().unwrap_or("(untitled)").to_owned();
                queries.push((title, sql.to_owned()));
            }
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if variable["type"] == "query"
            && let Some(sql) = variable["query"].as_str()
        {
            queries.push((format!("variable {}", variable["name"]), sql.to_owned()));
        }
    }
    queries
}

/// What Grafana's PostgreSQL data source makes of its macros and of the dashboard's
/// variables, for a 30-day range.
fn expand_grafana_sql(sql: &str, variables: &[(String, String)]) -> String {
    const FROM: &str = "'2026-01-01T00:00:00Z'";
    const TO: &str = "'2026-01-31T00:00:00Z'";
    let mut sql = sql.to_owned();
    while let Some(start) = sql.find("$__timeFilter(") {
        let args = start + "$__timeFilter(".len();
        let end = args + sql[args..].find(')').expect("$__timeFilter( is closed");
        let column = sql[args..end].trim().to_owned();
        sql.replace_range(start..=end, &format!("{column} BETWEEN {FROM} AND {TO}"));
    }
    sql = sql
        .replace("$__timeFrom()", FROM)
        .replace("$__timeTo()", TO);
    for (name, value) in variables {
        sql = sql
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    assert!(!sql.contains('$'), "unexpanded macro or variable in: {sql}");
    sql
}

/// Every query of the PostgreSQL dashboard runs on the migrated schema (on empty tables:
/// this checks names and types, not numbers).
#[tokio::test]
async fn database_dashboard_sql_runs_on_the_schema() {
    let db = TestDb::new().await;
    let mut checked = 0;
    for path in files(&root().join("deploy/grafana/dashboards"), &[".json"]) {
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
        let variables: Vec<(String, String)> = dashboard["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["type"] == "custom" || v["type"] == "constant")
            .map(|v| {
                let value = v["current"]["value"]
                    .as_str()
                    .or(v["query"].as_str())
                    .expect("a custom variable has a current value");
                (v["name"].as_str().unwrap().to_owned(), value.to_owned())
            })
            .collect();
        for (title, sql) in panel_queries(&dashboard) {
            let expanded = expand_grafana_sql(&sql, &variables);
            if let Err(e) = sqlx::query(AssertSqlSafe(expanded.clone()))
                .fetch_all(&db.pool)
                .await
            {
                panic!(
                    "{}: panel `{title}`: {e}\n{expanded}",
                    path.file_name().unwrap().to_string_lossy()
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 5,
        "found only {checked} SQL queries in the dashboards"
    );
}
