//! Answering a registry's 401: Basic credentials, or a bearer token from the token server its
//! challenge names (distribution's token auth, with Basic credentials, anonymously, or with an
//! OAuth2 refresh token), cached per scope until shortly before it expires.

use crate::challenge::Challenge;
use crate::credentials::Credentials;
use crate::error::{FetchError, classify, read_limited};
use crate::hosts::origin;
use reqwest::{RequestBuilder, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Token lifetime when the token server does not say (the token spec's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Longest a token is kept, whatever the token server says: an `expires_in` near `u64::MAX`
/// would overflow the clock arithmetic, and a day is longer than any real token lives.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Most tokens kept per registry (one per repository scope); expired ones go first.
const MAX_TOKENS: usize = 1024;

/// What one request carries in its `Authorization` header.
#[derive(Clone)]
pub(crate) enum Authorization {
    /// `Basic base64(user:password)`.
    Basic {
        username: String,
        password: SecretString,
    },
    /// `Bearer <token>`.
    Bearer(SecretString),
}

impl Authorization {
    /// Adds the header to a request.
    pub(crate) fn apply(&self, request: RequestBuilder) -> RequestBuilder {
        match self {
            Self::Basic { username, password } => {
                request.basic_auth(username, Some(password.expose_secret()))
            }
            Self::Bearer(token) => request.bearer_auth(token.expose_secret()),
        }
    }
}

/// What the registry asked for last time, so later requests authenticate up front.
#[derive(Clone)]
enum Scheme {
    Unknown,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct TokenKey {
    realm: String,
    service: Option<String>,
    scope: String,
}

struct CachedToken {
    token: SecretString,
    /// Shortly before the token server's expiry.
    use_until: Instant,
}

/// Where a registry's 401 may send regstat for a token: the registry's own origin and the
/// origins of its `token_realms`; over https unless the registry itself is plain http. A realm
/// anywhere else is refused before any credential is sent.
#[derive(Debug, Clone)]
pub(crate) struct Realms {
    /// `scheme://host:port` of each allowed token server, the registry's first.
    origins: Vec<String>,
    /// Whether the registry is served over plain http (then so may its token server be).
    plain_http: bool,
}

impl Realms {
    /// The realms `registry` (its base URL) may name: its own origin and `token_realms`
    /// (http(s) URLs; only their origin counts).
    pub(crate) fn new(registry: &Url, token_realms: &[String]) -> Result<Self, String> {
        let mut origins = vec![origin(registry)];
        for realm in token_realms {
            let url = Url::parse(realm)
                .ok()
                .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
                .ok_or_else(|| format!("{realm:?} is not an http(s) URL"))?;
            origins.push(origin(&url));
        }
        Ok(Self {
            origins,
            plain_http: registry.scheme() == "http",
        })
    }

    /// Why regstat must not ask `realm` for a token, if it must not.
    fn refusal(&self, realm: &Url) -> Option<String> {
        let realm_origin = origin(realm);
        if !self.origins.contains(&realm_origin) {
            return Some(format!(
                "names the token realm {realm_origin}, which is neither the registry's own \
                 origin nor in its token_realms (add it there if it is the registry's token \
                 server)"
            ));
        }
        if realm.scheme() == "http" && !self.plain_http {
            return Some(format!(
                "names the token realm {realm_origin} over plain http although the registry \
                 is served over https"
            ));
        }
        None
    }
}

/// One registry's authentication state: the scheme it uses and its cached tokens.
pub(crate) struct Authenticator {
    /// The registry's canonical name, for messages.
    registry: String,
    /// Its credentials, if any.
    credentials: Option<Credentials>,
    /// Largest token response accepted.
    max_bytes: usize,
    /// The token servers it may ask.
    realms: Realms,
    /// The client token requests go through: the registry's TLS settings, no redirects.
    http: reqwest::Client,
    scheme: Mutex<Scheme>,
    tokens: Mutex<HashMap<TokenKey, CachedToken>>,
}

impl Authenticator {
    pub(crate) fn new(
        registry: &str,
        credentials: Option<Credentials>,
        max_bytes: usize,
        realms: Realms,
        http: reqwest::Client,
    ) -> Self {
        Self {
            registry: registry.to_owned(),
            credentials,
            max_bytes,
            realms,
            http,
            scheme: Mutex::new(Scheme::Unknown),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The credentials' description (no secret), or `no credentials`.
    pub(crate) fn describe(&self) -> String {
        self.credentials
            .as_ref()
            .map_or_else(|| "no credentials".to_owned(), Credentials::describe)
    }

    /// What to send before any challenge: Basic credentials if the registry asked for them
    /// before, a cached token for `scope` if it uses tokens, else nothing.
    pub(crate) fn up_front(&self, scope: &str) -> Option<Authorization> {
        let scheme = self
            .scheme
            .lock()
            .map(|s| s.clone())
            .unwrap_or(Scheme::Unknown);
        match scheme {
            Scheme::Unknown => None,
            Scheme::Basic => self.basic(),
            Scheme::Bearer { realm, service } => {
                let key = TokenKey {
                    realm,
                    service,
                    scope: scope.to_owned(),
                };
                let tokens = self.tokens.lock().ok()?;
                let cached = tokens.get(&key)?;
                (cached.use_until > Instant::now())
                    .then(|| Authorization::Bearer(cached.token.clone()))
            }
        }
    }

    fn basic(&self) -> Option<Authorization> {
        match &self.credentials {
            Some(Credentials::Basic { username, password }) => Some(Authorization::Basic {
                username: username.clone(),
                password: password.clone(),
            }),
            _ => None,
        }
    }

    /// Answers a challenge from the registry's own origin: the credentials for Basic, a new
    /// token (always fetched, the cached one was just refused or missing) for Bearer.
    /// `scope` is used when the challenge names none.
    pub(crate) async fn answer(
        &self,
        challenge: Option<Challenge>,
        scope: &str,
    ) -> Result<Authorization, FetchError> {
        match challenge {
            None => Err(FetchError::Denied(format!(
                "registry {} answered 401 without a usable WWW-Authenticate challenge",
                self.registry
            ))),
            Some(Challenge::Basic) => {
                self.remember(Scheme::Basic);
                self.basic().ok_or_else(|| {
                    FetchError::Denied(format!(
                        "registry {} asks for Basic auth and regstat has {} for it",
                        self.registry,
                        match self.credentials {
                            None => "no credentials",
                            Some(_) => "only an identity token (usable with token auth only)",
                        }
                    ))
                })
            }
            Some(Challenge::Bearer {
                realm,
                service,
                scope: challenged,
            }) => {
                let scope = challenged.unwrap_or_else(|| scope.to_owned());
                let (token, lifetime) =
                    self.fetch_token(&realm, service.as_deref(), &scope).await?;
                self.remember(Scheme::Bearer {
                    realm: realm.clone(),
                    service: service.clone(),
                });
                self.store(
                    TokenKey {
                        realm,
                        service,
                        scope,
                    },
                    token.clone(),
                    lifetime,
                );
                Ok(Authorization::Bearer(token))
            }
        }
    }

    fn remember(&self, scheme: Scheme) {
        if let Ok(mut current) = self.scheme.lock() {
            *current = scheme;
        }
    }

    fn store(&self, key: TokenKey, token: SecretString, lifetime: Duration) {
        let lifetime = lifetime.min(MAX_TOKEN_LIFETIME);
        let margin = (lifetime / 10).clamp(Duration::from_secs(1), Duration::from_secs(30));
        let now = Instant::now();
        let use_until = now
            .checked_add(lifetime.saturating_sub(margin))
            .unwrap_or(now);
        if let Ok(mut tokens) = self.tokens.lock() {
            if tokens.len() >= MAX_TOKENS {
                let now = Instant::now();
                tokens.retain(|_, cached| cached.use_until > now);
                if tokens.len() >= MAX_TOKENS {
                    tokens.clear();
                }
            }
            tokens.insert(key, CachedToken { token, use_until });
        }
    }

    /// Gets a token from `realm`, if [`Realms`] allows it: an OAuth2 refresh-token POST with an
    /// identity token, else a GET with Basic credentials (or anonymous), never redirected.
    /// Returns the token and its lifetime.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<(SecretString, Duration), FetchError> {
        let mut url = Url::parse(realm)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .ok_or_else(|| {
                FetchError::Denied(format!(
                    "registry {} names a token realm that is not an http(s) URL: {realm}",
                    self.registry
                ))
            })?;
        if let Some(refusal) = self.realms.refusal(&url) {
            return Err(FetchError::Denied(format!(
                "registry {} {refusal}; no credentials were sent",
                self.registry
            )));
        }
        let http = &self.http;
        let request = match &self.credentials {
            Some(Credentials::IdentityToken(refresh_token)) => {
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token.expose_secret()),
                    ("client_id", "regstat"),
                    ("scope", scope),
                ];
                if let Some(service) = service {
                    form.push(("service", service));
                }
                http.post(url.clone()).form(&form)
            }
            credentials => {
                {
                    let mut query = url.query_pairs_mut();
                    if let Some(service) = service {
                        query.append_pair("service", service);
                    }
                    for scope in scope.split_whitespace() {
                        query.append_pair("scope", scope);
                    }
                }
                let request = http.get(url.clone());
                match credentials {
                    Some(Credentials::Basic { username, password }) => {
                        request.basic_auth(username, Some(password.expose_secret()))
                    }
                    _ => request,
                }
            }
        };
        let started = Instant::now();
        let what = format!("token request to {}", origin(&url));
        let response = request.send().await.map_err(|e| classify(e, &what))?;
        let status = response.status();
        tracing::debug!(
            registry = %self.registry,
            realm = %origin(&url),
            scope,
            status = status.as_u16(),
            duration_ms = started.elapsed().as_millis() as u64,
            "token request"
        );
        match status {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(FetchError::Denied(format!(
                    "the token server of registry {} refused {} ({status}) for scope {scope}",
                    self.registry,
                    self.describe()
                )));
            }
            s if s == StatusCode::TOO_MANY_REQUESTS
                || s == StatusCode::REQUEST_TIMEOUT
                || s.is_server_error() =>
            {
                return Err(FetchError::Transient(format!(
                    "{what} for registry {} answered {status}",
                    self.registry
                )));
            }
            s if s.is_redirection() => {
                return Err(FetchError::Denied(format!(
                    "{what} for registry {} answered {status} (a redirect): token requests \
                     are never redirected, as they carry credentials; list the realm the \
                     registry should name",
                    self.registry
                )));
            }
            _ => {
                return Err(FetchError::Denied(format!(
                    "{what} for registry {} answered {status}",
                    self.registry
                )));
            }
        }
        let body = read_limited(response, self.max_bytes, &what).await?;
        parse_token(&body).ok_or_else(|| {
            FetchError::Invalid(format!(
                "{what} for registry {} returned no `token` or `access_token`",
                self.registry
            ))
        })
    }
}

/// `{"token": ..., "access_token": ..., "expires_in": ...}`: the token (`token` first) and its
/// lifetime.
fn parse_token(body: &[u8]) -> Option<(SecretString, Duration)> {
    #[derive(Deserialize)]
    struct TokenResponse {
        token: Option<SecretString>,
        access_token: Option<SecretString>,
        expires_in: Option<u64>,
    }
    let response: TokenResponse = serde_json::from_slice(body).ok()?;
    let token = [response.token, response.access_token]
        .into_iter()
        .flatten()
        .find(|t| !t.expose_secret().is_empty())?;
    let lifetime = response
        .expires_in
        .filter(|&s| s > 0)
        .map_or(DEFAULT_TOKEN_LIFETIME, |secs| {
            Duration::from_secs(secs).min(MAX_TOKEN_LIFETIME)
        });
    Some((token, lifetime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_responses() {
        let (token, lifetime) =
            parse_token(br#"{"token": "t1", "expires_in": 300, "issued_at": "x"}"#).expect("token");
        assert_eq!(token.expose_secret(), "t1");
        assert_eq!(lifetime, Duration::from_secs(300));
        let (token, lifetime) = parse_token(br#"{"access_token": "t2"}"#).expect("token");
        assert_eq!(token.expose_secret(), "t2");
        assert_eq!(lifetime, DEFAULT_TOKEN_LIFETIME);
        let (token, _) = parse_token(br#"{"token": "", "access_token": "t3"}"#).expect("token");
        assert_eq!(token.expose_secret(), "t3");
        assert!(parse_token(br#"{"token": ""}"#).is_none());
        assert!(parse_token(b"{}").is_none());
        assert!(parse_token(b"<html>").is_none());
        assert!(parse_token(br#"{"token": 5}"#).is_none());
    }

    #[test]
    fn tokens_are_reused_until_shortly_before_expiry() {
        let registry = Url::parse("https://registry.example.com").expect("a URL");
        let realms = Realms::new(&registry, &[]).expect("realms");
        let auth = Authenticator::new("main", None, 1024, realms, reqwest::Client::new());
        auth.remember(Scheme::Bearer {
            realm: "http://auth/token".into(),
            service: Some("registry".into()),
        });
        let key = |scope: &str| TokenKey {
            realm: "http://auth/token".into(),
            service: Some("registry".into()),
            scope: scope.into(),
        };
        auth.store(
            key("repository:a:pull"),
            "ta".into(),
            Duration::from_secs(300),
        );
        // One second of life minus a one-second margin: already stale.
        auth.store(
            key("repository:b:pull"),
            "tb".into(),
            Duration::from_secs(1),
        );
        match auth.up_front("repository:a:pull") {
            Some(Authorization::Bearer(token)) => assert_eq!(token.expose_secret(), "ta"),
            _ => panic!("expected the cached token"),
        }
        assert!(auth.up_front("repository:b:pull").is_none(), "stale token");
        assert!(auth.up_front("repository:c:pull").is_none(), "other scope");
    }

    #[test]
    fn token_realms_are_the_registry_and_its_listed_servers_over_https() {
        let url = |text: &str| Url::parse(text).expect("a URL");
        let https = Realms::new(
            &url("https://registry.example.com:5000"),
            &["https://auth.example.com".into()],
        )
        .expect("realms");
        assert_eq!(
            https.refusal(&url("https://registry.example.com:5000/token")),
            None
        );
        assert_eq!(
            https.refusal(&url("https://auth.example.com/token?x=1")),
            None
        );
        let refused =
            |realms: &Realms, realm: &str| realms.refusal(&url(realm)).expect("a refusal");
        assert!(refused(&https, "https://evil.example.com/token").contains("token_realms"));
        assert!(refused(&https, "https://auth.example.com:8443/token").contains("token_realms"));
        assert!(refused(&https, "http://registry.example.com:5000/token").contains("token_realms"));
        let listed_http = Realms::new(
            &url("https://registry.example.com"),
            &["http://auth.example.com".into()],
        )
        .expect("realms");
        assert!(refused(&listed_http, "http://auth.example.com/token").contains("plain http"));
        let plain = Realms::new(
            &url("http://127.0.0.1:5000"),
            &["http://127.0.0.1:5001".into()],
        )
        .expect("realms");
        assert_eq!(plain.refusal(&url("http://127.0.0.1:5001/token")), None);
        assert!(Realms::new(&url("https://r.example.com"), &["auth.example.com".into()]).is_err());
    }
}
