use super::*;
use base64::Engine as _;
use regstat_shared::config::{CallbackSettings, RegistrySettings};
use std::path::PathBuf;

fn callbacks(equiv: &str) -> CallbackSettings {
    CallbackSettings {
        timeout_ms: 1000,
        concurrency: 2,
        manifest_cache_entries: 16,
        max_document_bytes: 4096,
        equiv_registries_file: equiv.to_owned(),
    }
}

fn registry(name: &str, url: &str, aliases: &[&str]) -> RegistrySettings {
    RegistrySettings {
        name: name.into(),
        url: url.into(),
        aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
        docker_config: None,
        username: None,
        password: None,
        ca_file: None,
        insecure_skip_verify: false,
        token_realms: vec![],
    }
}

/// A file under the temp dir, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(content: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "regstat-registry-test-{}.json",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&path, content).expect("write the file");
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn names(registries: &Registries, host: Option<&str>) -> (String, Option<String>) {
    let resolved = registries.resolve(host);
    (resolved.name, resolved.client.map(|c| c.name().to_owned()))
}

fn pair(name: &str, client: Option<&str>) -> (String, Option<String>) {
    (name.to_owned(), client.map(str::to_owned))
}

#[test]
fn hosts_resolve_to_configured_registries() {
    let registries = Registries::from_settings(
        &[
            registry(
                "main",
                "https://Registry.Example.com:5000",
                &["10.0.0.5:5000", "registry"],
            ),
            registry("hub-mirror", "https://mirror.example.com", &[]),
        ],
        &callbacks(""),
    )
    .expect("registries");
    let main = pair("main", Some("main"));
    assert_eq!(names(&registries, Some("registry.example.com:5000")), main);
    assert_eq!(names(&registries, Some("REGISTRY.example.COM:5000")), main);
    assert_eq!(names(&registries, Some("10.0.0.5:5000")), main);
    assert_eq!(names(&registries, Some("registry")), main);
    let mirror = pair("hub-mirror", Some("hub-mirror"));
    assert_eq!(names(&registries, Some("mirror.example.com")), mirror);
    assert_eq!(names(&registries, Some("mirror.example.com:443")), mirror);

    // Another port is another registry; unknown hosts keep their name and get no client.
    assert_eq!(
        names(&registries, Some("registry.example.com")),
        pair("registry.example.com", None)
    );
    assert_eq!(
        names(&registries, Some("registry:5000")),
        pair("registry:5000", None)
    );
    assert_eq!(
        names(&registries, Some("Other.example.com:5000")),
        pair("Other.example.com:5000", None)
    );
    assert_eq!(names(&registries, None), pair("unknown", None));
    assert_eq!(names(&registries, Some("")), pair("unknown", None));

    assert_eq!(
        registries.client("main").map(RegistryClient::name),
        Some("main")
    );
    assert_eq!(registries.clients().count(), 2);
}

#[test]
fn equivalent_registries() {
    let file = TempFile::new(
        r#"{
            "main": ["registry.internal:5000", "Registry.Corp"],
            "registry.example.com:5000": ["10.0.0.9:5000"],
            "docker.io": ["index.docker.io", "registry-1.docker.io"]
        }"#,
    );
    let registries = Registries::from_settings(
        &[registry("main", "https://registry.example.com:5000", &[])],
        &callbacks(file.path()),
    )
    .expect("registries");
    let main = pair("main", Some("main"));
    assert_eq!(names(&registries, Some("registry.internal:5000")), main);
    assert_eq!(names(&registries, Some("registry.corp")), main);
    // A canonical name that is a configured registry's host leads to that registry.
    assert_eq!(names(&registries, Some("10.0.0.9:5000")), main);
    // A canonical name that is not configured: the name, no client.
    assert_eq!(
        names(&registries, Some("registry-1.docker.io")),
        pair("docker.io", None)
    );
    assert_eq!(
        names(&registries, Some("index.docker.io")),
        pair("docker.io", None)
    );
}

#[test]
fn unusable_settings_are_refused_with_the_culprit_named() {
    let error = Registries::from_settings(
        &[
            registry("a", "http://127.0.0.1:5000", &[]),
            registry("b", "http://127.0.0.2:5000", &["127.0.0.1:5000"]),
        ],
        &callbacks(""),
    )
    .expect_err("host claimed twice");
    let message = format!("{error:#}");
    assert!(
        message.contains("127.0.0.1:5000") && message.contains("`b`"),
        "{message}"
    );

    let file = TempFile::new(r#"{"x": ["127.0.0.1:5000"]}"#);
    let error = Registries::from_settings(
        &[registry("a", "http://127.0.0.1:5000", &[])],
        &callbacks(file.path()),
    )
    .expect_err("alias of another registry");
    assert!(format!("{error:#}").contains("127.0.0.1:5000"), "{error:#}");

    let file = TempFile::new(r#"["not", "a", "map"]"#);
    let error = Registries::from_settings(&[], &callbacks(file.path())).expect_err("bad file");
    assert!(format!("{error:#}").contains(file.path()), "{error:#}");

    let error = Registries::from_settings(&[], &callbacks("/nonexistent/regstat-equiv.json"))
        .expect_err("missing file");
    assert!(
        format!("{error:#}").contains("equiv_registries_file"),
        "{error:#}"
    );

    let mut bad_ca = registry("tls", "https://registry.example.com", &[]);
    bad_ca.ca_file = Some("/nonexistent/regstat-ca.pem".into());
    let error = Registries::from_settings(&[bad_ca], &callbacks("")).expect_err("no CA file");
    assert!(format!("{error:#}").contains("`tls`"), "{error:#}");
}

#[test]
fn debug_output_shows_no_secret() {
    let mut with_password = registry("main", "https://registry.example.com", &[]);
    with_password.username = Some("alice".into());
    with_password.password = Some("hunter2-password-secret".into());
    let auth = base64::engine::general_purpose::STANDARD.encode("bob:auth-field-secret");
    let docker_config = TempFile::new(
        &serde_json::json!({
            "auths": {
                "mirror.example.com": {"auth": auth},
                "tokens.example.com": {"identitytoken": "identity-token-secret"},
            }
        })
        .to_string(),
    );
    let mut from_docker = registry("mirror", "https://mirror.example.com", &[]);
    from_docker.docker_config = Some(docker_config.0.clone());
    let mut with_identity = registry("tokens", "https://tokens.example.com", &[]);
    with_identity.docker_config = Some(docker_config.0.clone());
    let registries =
        Registries::from_settings(&[with_password, from_docker, with_identity], &callbacks(""))
            .expect("registries");
    let debug = format!("{registries:?}");
    for secret in [
        "hunter2-password-secret",
        "auth-field-secret",
        &auth,
        "identity-token-secret",
    ] {
        assert!(!debug.contains(secret), "Debug shows a secret: {debug}");
    }
    // It still says who and how.
    assert!(debug.contains("basic auth as alice"), "{debug}");
    assert!(debug.contains("basic auth as bob"), "{debug}");
    assert!(debug.contains("identity token"), "{debug}");
    let client = registries.client("main").expect("client");
    assert!(!format!("{client:?}").contains("hunter2"));
}
