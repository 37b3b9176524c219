//! Token auth (distribution's `Bearer realm=...,service=...,scope=...` flow) and where
//! credentials may go, on small test servers: a token server, a registry trusting it, and
//! blob storage behind a redirect.

use super::fake::{Auth, FakeRegistry, Storage, TokenPolicy, TokenServer, basic};
use super::support::{OCI_CONFIG, OCI_MANIFEST, callbacks, settings, sha256};
use regstat_registry::{FetchError, ManifestKind, RegistryClient};
use regstat_shared::config::RegistrySettings;
use serde_json::json;

/// An OCI manifest (and its config) the fake registry serves; returns (manifest digest,
/// config digest, config bytes).
fn add_image(registry: &FakeRegistry, architecture: &str) -> (String, String, Vec<u8>) {
    let config = json!({"os": "linux", "architecture": architecture}).to_string();
    let config_digest = sha256(config.as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": [],
    })
    .to_string();
    let digest = sha256(manifest.as_bytes());
    registry
        .state
        .add(&digest, OCI_MANIFEST, manifest.as_bytes());
    registry.state.add(
        &config_digest,
        "application/octet-stream",
        config.as_bytes(),
    );
    (digest, config_digest, config.into_bytes())
}

fn with_password(url: &str, user: &str, password: &str) -> RegistrySettings {
    let mut settings = settings("tokens", url);
    settings.username = Some(user.into());
    settings.password = Some(password.into());
    settings
}

/// `settings` with `tokens` as the registry's token server (`token_realms`): a test token server
/// listens on another port, another origin than the registry's.
fn trusting(mut settings: RegistrySettings, tokens: &TokenServer) -> RegistrySettings {
    settings.token_realms = vec![tokens.server.url()];
    settings
}

fn client(settings: &RegistrySettings) -> RegistryClient {
    RegistryClient::new(settings, &callbacks()).expect("registry client")
}

fn alice() -> TokenPolicy {
    TokenPolicy {
        credentials: Some(("alice".into(), "s3cret-pw".into())),
        ..TokenPolicy::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_token_per_scope_serves_many_fetches() {
    let tokens = TokenServer::start(alice());
    let registry = FakeRegistry::start(tokens.registry_auth());
    let (first, _, _) = add_image(&registry, "amd64");
    let (second, _, _) = add_image(&registry, "arm64");
    let client = client(&trusting(
        with_password(&registry.url(), "alice", "s3cret-pw"),
        &tokens,
    ));

    for digest in [&first, &second] {
        let fetched = client
            .manifest("lab/app", digest)
            .await
            .expect("a manifest");
        assert_eq!(fetched.manifest.kind, ManifestKind::Image);
        assert!(!fetched.from_cache);
    }
    let requests = tokens.requests();
    assert_eq!(
        requests.len(),
        1,
        "one token for two manifests: {requests:?}"
    );
    let request = &requests[0];
    assert_eq!(request.method, "GET");
    assert_eq!(request.param("service"), Some("test"));
    assert_eq!(request.param("scope"), Some("repository:lab/app:pull"));
    assert_eq!(
        request.authorization.as_deref(),
        Some(basic("alice", "s3cret-pw").as_str())
    );
    // Anonymous, 401, with the token; then the token up front.
    let seen = registry.state.seen();
    let authorizations: Vec<bool> = seen.iter().map(|s| s.authorization.is_some()).collect();
    assert_eq!(authorizations, [false, true, true], "{seen:?}");
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    let path = |digest: &str| format!("/v2/lab/app/manifests/{digest}");
    assert_eq!(paths, [path(&first), path(&first), path(&second)]);
    for request in &seen {
        let version = format!("regstat/{}", regstat_shared::VERSION);
        assert_eq!(request.user_agent.as_deref(), Some(version.as_str()));
        let accept = request.accept.as_deref().unwrap_or_default();
        for media_type in [
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.docker.distribution.manifest.v2+json",
        ] {
            assert!(
                accept.contains(media_type),
                "Accept lacks {media_type}: {accept}"
            );
        }
    }

    // Another repository is another scope: another token.
    let (third, _, _) = add_image(&registry, "s390x");
    client
        .manifest("lab/other", &third)
        .await
        .expect("another repository");
    let requests = tokens.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(
        requests[1].param("scope"),
        Some("repository:lab/other:pull")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_token_anonymous_and_identity_token_variants() {
    // `access_token` instead of `token`.
    let tokens = TokenServer::start(TokenPolicy {
        access_token_field: true,
        ..alice()
    });
    let registry = FakeRegistry::start(tokens.registry_auth());
    let (digest, _, _) = add_image(&registry, "amd64");
    client(&trusting(
        with_password(&registry.url(), "alice", "s3cret-pw"),
        &tokens,
    ))
    .manifest("lab/app", &digest)
    .await
    .expect("with an access_token answer");

    // Anonymous: a token server giving tokens to everyone, asked without credentials.
    let tokens = TokenServer::start(TokenPolicy::default());
    let registry = FakeRegistry::start(tokens.registry_auth());
    let (digest, _, _) = add_image(&registry, "amd64");
    client(&trusting(settings("public", &registry.url()), &tokens))
        .manifest("library/alpine", &digest)
        .await
        .expect("anonymously");
    assert_eq!(tokens.requests()[0].authorization, None);

    // A Docker identity token: an OAuth2 refresh-token POST.
    let tokens = TokenServer::start(TokenPolicy {
        refresh_token: Some("refresh-me-secret".into()),
        ..TokenPolicy::default()
    });
    let registry = FakeRegistry::start(tokens.registry_auth());
    let (digest, _, _) = add_image(&registry, "amd64");
    let (from_file, _cleanup) = with_identity_token(&registry);
    client(&trusting(from_file, &tokens))
        .manifest("lab/app", &digest)
        .await
        .expect("with an identity token");
    let requests = tokens.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.param("grant_type"), Some("refresh_token"));
    assert_eq!(request.param("refresh_token"), Some("refresh-me-secret"));
    assert_eq!(request.param("client_id"), Some("regstat"));
    assert_eq!(request.param("service"), Some("test"));
    assert_eq!(request.param("scope"), Some("repository:lab/app:pull"));
}

/// Settings for `registry` whose credentials come from a Docker config file holding the identity
/// token `refresh-me-secret`; the file goes when the guard drops.
fn with_identity_token(registry: &FakeRegistry) -> (RegistrySettings, RemoveOnDrop) {
    let host = registry.server.addr.to_string();
    let dir = std::env::temp_dir().join(regstat_shared::testkit::unique_name("docker-config"));
    std::fs::create_dir_all(&dir).expect("create the config directory");
    let cleanup = RemoveOnDrop(dir.clone());
    let path = dir.join("config.json");
    let docker_config = json!({"auths": {host: {"auth": "PHRva2VuPjo=",
                                                  "identitytoken": "refresh-me-secret"}}});
    std::fs::write(&path, docker_config.to_string()).expect("write the docker config");
    let mut settings = settings("tokens", &registry.url());
    settings.docker_config = Some(path);
    (settings, cleanup)
}

struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_or_tokens_are_denied() {
    let tokens = TokenServer::start(alice());
    let registry = FakeRegistry::start(tokens.registry_auth());
    let (digest, _, _) = add_image(&registry, "amd64");
    let error = client(&trusting(
        with_password(&registry.url(), "alice", "wrong-pw"),
        &tokens,
    ))
    .manifest("lab/app", &digest)
    .await
    .expect_err("a wrong password");
    assert!(matches!(error, FetchError::Denied(_)), "{error:?}");
    assert!(
        !format!("{error} {error:?}").contains("wrong-pw"),
        "{error:?}"
    );

    // The token server says yes, the registry refuses the token: denied after one try, and
    // the message holds no token.
    let tokens = TokenServer::start(TokenPolicy {
        issue_unknown_tokens: true,
        ..alice()
    });
    let registry = FakeRegistry::start(tokens.registry_auth());
    let (digest, _, _) = add_image(&registry, "amd64");
    let error = client(&trusting(
        with_password(&registry.url(), "alice", "s3cret-pw"),
        &tokens,
    ))
    .manifest("lab/app", &digest)
    .await
    .expect_err("a refused token");
    assert!(matches!(error, FetchError::Denied(_)), "{error:?}");
    assert!(!format!("{error:?}").contains("tok-"), "{error:?}");
    assert_eq!(tokens.requests().len(), 1);
    assert_eq!(
        registry.state.seen().len(),
        2,
        "one try without, one with the token"
    );
}

/// Blobs may redirect to storage elsewhere: the redirect is followed, and neither a token nor
/// a password goes with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_follow_a_redirect_to_another_host() {
    let storage = Storage::start();
    let tokens = TokenServer::start(alice());
    let token_registry = FakeRegistry::start(tokens.registry_auth());
    let basic_registry = FakeRegistry::start(Auth::Basic {
        user: "alice".into(),
        password: "s3cret-pw".into(),
    });
    for registry in [&token_registry, &basic_registry] {
        let (_, config_digest, config) = add_image(registry, "riscv64");
        storage
            .docs
            .lock()
            .unwrap()
            .insert(config_digest.clone(), config);
        *registry.state.blob_redirect.lock().unwrap() =
            Some(format!("{}/storage", storage.server.url()));
        let platform = client(&trusting(
            with_password(&registry.url(), "alice", "s3cret-pw"),
            &tokens,
        ))
        .config_platform("lab/app", &config_digest)
        .await
        .expect("the config through the redirect")
        .expect("a platform");
        assert_eq!(platform.architecture.as_deref(), Some("riscv64"));
        // The registry did get credentials...
        assert!(
            registry
                .state
                .seen()
                .iter()
                .any(|s| s.authorization.is_some()),
            "the registry was never authenticated to"
        );
    }
    // ... the storage never.
    let authorizations = storage.authorizations.lock().unwrap().clone();
    assert_eq!(authorizations, [None, None], "storage got credentials");
}

/// A redirect target that answers 401 with its own token realm gets nothing: neither the
/// registry's token nor, through its realm, the registry's password. (The first 401 of a
/// fetch is the one answered: the registry here needs none, or its token is sent up front.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_from_a_redirect_target_is_not_answered() {
    let tokens = TokenServer::start(alice());
    let public = FakeRegistry::start(Auth::None);
    let private = FakeRegistry::start(tokens.registry_auth());
    let foreign_tokens = TokenServer::start(TokenPolicy::default());
    let elsewhere = FakeRegistry::start(foreign_tokens.registry_auth());
    for registry in [&public, &private] {
        let (manifest_digest, config_digest, config) = add_image(registry, "amd64");
        elsewhere
            .state
            .add(&config_digest, "application/octet-stream", &config);
        *registry.state.blob_redirect.lock().unwrap() =
            Some(format!("{}/v2/lab/app/blobs", elsewhere.url()));
        let client = client(&trusting(
            with_password(&registry.url(), "alice", "s3cret-pw"),
            &tokens,
        ));
        // Authenticated (for the private registry) before the blob is asked for.
        client
            .manifest("lab/app", &manifest_digest)
            .await
            .expect("the manifest");
        let error = client
            .config_platform("lab/app", &config_digest)
            .await
            .expect_err("a 401 after the redirect");
        assert!(matches!(error, FetchError::Denied(_)), "{error:?}");
        assert!(
            !format!("{error:?}").contains("s3cr3t"),
            "the message shows the redirect's query: {error:?}"
        );
    }
    assert_eq!(tokens.requests().len(), 1, "the registry's own token, once");
    let asked = foreign_tokens.requests();
    assert!(asked.is_empty(), "the foreign realm was asked: {asked:?}");
    let seen = elsewhere.state.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.iter().all(|s| s.authorization.is_none()), "{seen:?}");
}

/// A 401 naming a token server that is neither the registry's origin nor in its
/// `token_realms` (a spoofed or compromised challenge) gets nothing: no request, no password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_realm_the_registry_does_not_list_gets_nothing() {
    let tokens = TokenServer::start(alice());
    let registry = FakeRegistry::start(tokens.registry_auth());
    let (digest, _, _) = add_image(&registry, "amd64");
    let error = client(&with_password(&registry.url(), "alice", "s3cret-pw"))
        .manifest("lab/app", &digest)
        .await
        .expect_err("an unlisted realm");
    assert!(matches!(error, FetchError::Denied(_)), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("token_realms") && message.contains(&tokens.server.url()),
        "{message}"
    );
    let asked = tokens.requests();
    assert!(asked.is_empty(), "the unlisted realm was asked: {asked:?}");
}

/// A token server that redirects is not followed: the refresh token (a POST body, which a 307
/// would carry along) never reaches the redirect's target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_requests_are_never_redirected() {
    let elsewhere = TokenServer::start(TokenPolicy {
        refresh_token: Some("refresh-me-secret".into()),
        ..TokenPolicy::default()
    });
    let tokens = TokenServer::start(TokenPolicy {
        redirect_to: Some(elsewhere.realm()),
        ..TokenPolicy::default()
    });
    let registry = FakeRegistry::start(tokens.registry_auth());
    let (digest, _, _) = add_image(&registry, "amd64");
    let (settings, _cleanup) = with_identity_token(&registry);
    let error = client(&trusting(settings, &tokens))
        .manifest("lab/app", &digest)
        .await
        .expect_err("a redirecting token server");
    assert!(matches!(error, FetchError::Denied(_)), "{error:?}");
    assert!(error.to_string().contains("never redirected"), "{error}");
    assert_eq!(
        tokens.requests().len(),
        1,
        "the listed realm was asked once"
    );
    let followed = elsewhere.requests();
    assert!(
        followed.is_empty(),
        "the redirect was followed: {followed:?}"
    );
}

/// A token server answering an `expires_in` near `u64::MAX` (a bug or an attack) used to
/// overflow `Instant + Duration` and panic the worker: the lifetime is clamped, the fetch
/// succeeds, and the token is reused like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_token_lifetime_is_clamped() {
    let tokens = TokenServer::start(TokenPolicy {
        expires_in: Some(u64::MAX),
        ..alice()
    });
    let registry = FakeRegistry::start(tokens.registry_auth());
    let (first, _, _) = add_image(&registry, "amd64");
    let (second, _, _) = add_image(&registry, "arm64");
    let client = client(&trusting(
        with_password(&registry.url(), "alice", "s3cret-pw"),
        &tokens,
    ));
    for digest in [&first, &second] {
        client
            .manifest("lab/app", digest)
            .await
            .expect("a manifest, whatever the token's lifetime");
    }
    assert_eq!(tokens.requests().len(), 1, "the token was kept");
}
