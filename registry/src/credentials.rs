//! Where a registry's credentials come from: the settings, or a Docker `config.json`.

use crate::hosts::normalise_host;
use anyhow::{Context, bail};
use base64::Engine as _;
use regstat_shared::config::RegistrySettings;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// What regstat can authenticate with. Secrets stay [`SecretString`]s, so `Debug` redacts
/// them.
#[derive(Debug, Clone)]
pub(crate) enum Credentials {
    /// A user and password: Basic auth, or Basic auth at a token server.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: SecretString,
    },
    /// A Docker `identitytoken`: an OAuth2 refresh token for the registry's token server.
    IdentityToken(SecretString),
}

impl Credentials {
    /// A description without the secret, for `Debug` output and logs.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Basic { username, .. } => format!("basic auth as {username}"),
            Self::IdentityToken(_) => "an identity token".to_owned(),
        }
    }
}

/// The credentials for `registry`: its `username`/`password` settings if given, else the
/// `auths` entry of its `docker_config` whose key matches one of `hosts` (in order), else none.
pub(crate) fn load(
    registry: &RegistrySettings,
    hosts: &[String],
) -> anyhow::Result<Option<Credentials>> {
    let name = &registry.name;
    match (&registry.username, &registry.password) {
        (Some(username), Some(password)) => {
            return Ok(Some(Credentials::Basic {
                username: username.clone(),
                password: password.clone(),
            }));
        }
        (Some(_), None) => bail!("registry `{name}`: `username` is set without `password`"),
        (None, Some(_)) => bail!("registry `{name}`: `password` is set without `username`"),
        (None, None) => {}
    }
    let Some(path) = &registry.docker_config else {
        return Ok(None);
    };
    from_docker_config(name, path, hosts)
}

/// A Docker `config.json`, as far as regstat reads it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: HashMap<String, String>,
}

#[derive(Deserialize)]
struct AuthEntry {
    auth: Option<SecretString>,
    username: Option<String>,
    password: Option<SecretString>,
    identitytoken: Option<SecretString>,
}

fn from_docker_config(
    name: &str,
    path: &Path,
    hosts: &[String],
) -> anyhow::Result<Option<Credentials>> {
    let context = || format!("registry `{name}`: docker_config {}", path.display());
    let text = std::fs::read(path).with_context(context)?;
    // serde_json's messages may quote a value (a password): say only where it went wrong.
    let config: DockerConfig = serde_json::from_slice(&text)
        .map_err(|e| {
            anyhow::anyhow!(
                "not a Docker config.json: wrong shape or syntax at line {}, column {}",
                e.line(),
                e.column()
            )
        })
        .with_context(context)?;
    let by_host: HashMap<String, &AuthEntry> = config
        .auths
        .iter()
        .map(|(key, entry)| (normalise_key(key), entry))
        .collect();
    let helper = hosts.iter().find_map(|host| {
        config
            .cred_helpers
            .iter()
            .find(|(k, _)| normalise_key(k) == *host)
    });
    if config.creds_store.is_some() || helper.is_some() {
        // Read once at start-up, so logged once.
        tracing::warn!(
            registry = name,
            docker_config = %path.display(),
            "the Docker config names a credential store or helper; regstat does not run them \
             and uses only its `auths` entries"
        );
    }
    for host in hosts {
        if let Some(entry) = by_host.get(host)
            && let Some(credentials) = entry_credentials(entry).with_context(context)?
        {
            return Ok(Some(credentials));
        }
    }
    Ok(None)
}

/// An `auths` entry's credentials: `identitytoken`, else `username`/`password`, else `auth`
/// (base64 of `user:password`). An empty entry (credentials kept by a store) gives none.
fn entry_credentials(entry: &AuthEntry) -> anyhow::Result<Option<Credentials>> {
    let present = |secret: &Option<SecretString>| {
        secret
            .as_ref()
            .filter(|s| !s.expose_secret().is_empty())
            .cloned()
    };
    if let Some(token) = present(&entry.identitytoken) {
        return Ok(Some(Credentials::IdentityToken(token)));
    }
    if let (Some(username), Some(password)) = (&entry.username, present(&entry.password))
        && !username.is_empty()
    {
        return Ok(Some(Credentials::Basic {
            username: username.clone(),
            password,
        }));
    }
    let Some(auth) = present(&entry.auth) else {
        return Ok(None);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.expose_secret().trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    // The messages never include the value: it is the password.
    let Some(decoded) = decoded else {
        bail!("an `auth` value is not base64 of `user:password`");
    };
    let Some((username, password)) = decoded.split_once(':') else {
        bail!("an `auth` value does not decode to `user:password`");
    };
    Ok(Some(Credentials::Basic {
        username: username.to_owned(),
        password: SecretString::from(password),
    }))
}

/// An `auths` key as a lowercase `host[:port]`: keys may be bare (`host:port`) or URLs
/// (`https://host:port/v1/`).
pub(crate) fn normalise_key(key: &str) -> String {
    let lower = normalise_host(key);
    let without_scheme = ["https://", "http://"]
        .iter()
        .find_map(|scheme| lower.strip_prefix(scheme))
        .unwrap_or(&lower);
    without_scheme
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use regstat_shared::config::RegistrySettings;

    fn registry(docker_config: Option<&Path>) -> RegistrySettings {
        RegistrySettings {
            name: "main".into(),
            url: "https://registry.example.com:5000".into(),
            aliases: vec![],
            docker_config: docker_config.map(Path::to_path_buf),
            username: None,
            password: None,
            ca_file: None,
            insecure_skip_verify: false,
            token_realms: vec![],
        }
    }

    /// A file under the temp dir, removed on drop.
    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn new(content: &serde_json::Value) -> Self {
            let path = std::env::temp_dir().join(format!(
                "regstat-docker-config-{}.json",
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::write(&path, content.to_string()).expect("write the docker config");
            Self(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn hosts() -> Vec<String> {
        vec!["registry.example.com:5000".into()]
    }

    fn basic(credentials: Option<Credentials>) -> (String, String) {
        match credentials {
            Some(Credentials::Basic { username, password }) => {
                (username, password.expose_secret().to_owned())
            }
            other => panic!("expected basic credentials, got {other:?}"),
        }
    }

    #[test]
    fn keys_are_normalised() {
        assert_eq!(
            normalise_key("https://Registry.Example.com:5000/v1/"),
            "registry.example.com:5000"
        );
        assert_eq!(normalise_key("http://10.0.0.5:5000"), "10.0.0.5:5000");
        assert_eq!(
            normalise_key(" registry.example.com:5000 "),
            "registry.example.com:5000"
        );
        assert_eq!(normalise_key("[::1]:5000"), "[::1]:5000");
    }

    #[test]
    fn settings_win() {
        let mut settings = registry(None);
        settings.username = Some("alice".into());
        settings.password = Some("wonderland".into());
        let credentials = load(&settings, &hosts()).expect("load");
        assert_eq!(basic(credentials), ("alice".into(), "wonderland".into()));

        settings.password = None;
        assert!(
            load(&settings, &hosts()).is_err(),
            "username without password"
        );
        assert!(load(&registry(None), &hosts()).expect("load").is_none());
    }

    #[test]
    fn docker_config_auth_forms() {
        let auth = base64::engine::general_purpose::STANDARD.encode("bob:pa:ss");
        let file = TempFile::new(&serde_json::json!({
            "auths": {"https://registry.example.com:5000/v1/": {"auth": auth}}
        }));
        let credentials = load(&registry(Some(&file.0)), &hosts()).expect("load");
        assert_eq!(basic(credentials), ("bob".into(), "pa:ss".into()));

        let file = TempFile::new(&serde_json::json!({
            "auths": {"registry.example.com:5000": {"username": "carol", "password": "pw"}}
        }));
        let credentials = load(&registry(Some(&file.0)), &hosts()).expect("load");
        assert_eq!(basic(credentials), ("carol".into(), "pw".into()));

        let file = TempFile::new(&serde_json::json!({
            "auths": {"registry.example.com:5000": {"auth": "PHRva2VuPjo=",
                                                    "identitytoken": "refresh-me"}}
        }));
        match load(&registry(Some(&file.0)), &hosts()).expect("load") {
            Some(Credentials::IdentityToken(token)) => {
                assert_eq!(token.expose_secret(), "refresh-me");
            }
            other => panic!("expected an identity token, got {other:?}"),
        }
    }

    #[test]
    fn docker_config_other_hosts_and_stores() {
        let auth = base64::engine::general_purpose::STANDARD.encode("dave:secret-pw");
        let file = TempFile::new(&serde_json::json!({
            "auths": {
                "registry.example.com": {"auth": auth},
                "registry.example.com:5000": {},
            },
            "credsStore": "desktop",
        }));
        // Another port is another registry; an empty entry (kept in the store) gives nothing.
        assert!(
            load(&registry(Some(&file.0)), &hosts())
                .expect("load")
                .is_none()
        );
        // An alias may match.
        let hosts = vec![
            "registry.example.com:5000".into(),
            "registry.example.com".into(),
        ];
        let credentials = load(&registry(Some(&file.0)), &hosts).expect("load");
        assert_eq!(basic(credentials), ("dave".into(), "secret-pw".into()));
    }

    #[test]
    fn docker_config_errors_name_the_file_but_no_secret() {
        let missing = std::env::temp_dir().join("regstat-no-such-docker-config.json");
        let error = load(&registry(Some(&missing)), &hosts()).expect_err("missing file");
        assert!(format!("{error:#}").contains("regstat-no-such-docker-config.json"));

        let file = TempFile::new(&serde_json::json!({
            "auths": {"registry.example.com:5000": {"auth": "!!not-base64-secret!!"}}
        }));
        let error = load(&registry(Some(&file.0)), &hosts()).expect_err("bad auth");
        let message = format!("{error:#}");
        assert!(message.contains("base64"), "{message}");
        assert!(!message.contains("not-base64-secret"), "{message}");

        let file = TempFile::new(&serde_json::json!({
            "auths": {"registry.example.com:5000": "c2VjcmV0LXNoYXBl"}
        }));
        let error = load(&registry(Some(&file.0)), &hosts()).expect_err("bad shape");
        let message = format!("{error:#}");
        assert!(message.contains("line 1"), "{message}");
        assert!(!message.contains("c2VjcmV0LXNoYXBl"), "{message}");
    }
}
