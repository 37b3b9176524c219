//! `WWW-Authenticate` challenges (RFC 7235) as registries send them.
//!
//! Hand-written rather than with the `http-auth` crate: measured against our cases,
//! `http_auth::parse_challenges` refuses a whole header at an unquoted parameter value holding
//! `:` or `/` (`scope=repository:a/b:pull`, "invalid byte" at the `:`), which registries and
//! proxies do send; this parser takes them (test `bearer_is_preferred_and_params_are_lenient`).

/// What a registry asked for in a 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// `Basic realm="..."` (htpasswd): send Basic credentials.
    Basic,
    /// `Bearer realm="...",service="...",scope="..."`: get a token from the realm.
    Bearer {
        /// The token server's URL.
        realm: String,
        /// The `service` parameter to pass on.
        service: Option<String>,
        /// The `scope` parameter to pass on (may hold several, space-separated).
        scope: Option<String>,
    },
}

/// The challenge to answer among all `WWW-Authenticate` values: Bearer if offered (with a
/// realm), else Basic; `None` when there is neither.
pub(crate) fn parse<'a>(headers: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
    let mut basic = false;
    for header in headers {
        for (scheme, params) in split(header) {
            if scheme.eq_ignore_ascii_case("bearer") {
                let param = |name: &str| {
                    params
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.clone())
                        .filter(|v| !v.is_empty())
                };
                if let Some(realm) = param("realm") {
                    return Some(Challenge::Bearer {
                        realm,
                        service: param("service"),
                        scope: param("scope"),
                    });
                }
            } else if scheme.eq_ignore_ascii_case("basic") {
                basic = true;
            }
        }
    }
    basic.then_some(Challenge::Basic)
}

type Params = Vec<(String, String)>;

/// Splits one header value into its challenges: `scheme` followed by comma-separated
/// `name=value` or `name="quoted \"value\""` parameters; a token not followed by `=` starts
/// the next challenge.
fn split(header: &str) -> Vec<(String, Params)> {
    let mut cursor = Cursor {
        rest: header.as_bytes(),
    };
    let mut challenges = Vec::new();
    loop {
        cursor.skip(|b| b == b',' || b.is_ascii_whitespace());
        let scheme = cursor.token();
        if scheme.is_empty() {
            break;
        }
        let mut params = Vec::new();
        loop {
            cursor.skip(|b| b == b',' || b.is_ascii_whitespace());
            let saved = cursor.rest;
            let name = cursor.token();
            cursor.skip(|b| b == b' ' || b == b'\t');
            if name.is_empty() || !cursor.eat(b'=') {
                // The next challenge's scheme (or the end, or a token68 we do not use).
                cursor.rest = saved;
                if name.is_empty() {
                    // Not a token at all: skip one byte so the loop always advances.
                    cursor.rest = cursor.rest.get(1..).unwrap_or_default();
                }
                break;
            }
            cursor.skip(|b| b == b' ' || b == b'\t');
            let value = if cursor.eat(b'"') {
                cursor.quoted()
            } else {
                cursor.token()
            };
            params.push((name, value));
        }
        challenges.push((scheme, params));
        if cursor.rest.is_empty() {
            break;
        }
    }
    challenges
}

struct Cursor<'a> {
    rest: &'a [u8],
}

impl Cursor<'_> {
    fn skip(&mut self, what: impl Fn(u8) -> bool) {
        while let Some((&b, rest)) = self.rest.split_first() {
            if !what(b) {
                break;
            }
            self.rest = rest;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        match self.rest.split_first() {
            Some((&b, rest)) if b == byte => {
                self.rest = rest;
                true
            }
            _ => false,
        }
    }

    /// An RFC 7230 token (plus `/` and `=` padding would make it token68: not needed).
    fn token(&mut self) -> String {
        let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b);
        let end = self
            .rest
            .iter()
            .position(|&b| !is_tchar(b))
            .unwrap_or(self.rest.len());
        let (token, rest) = self.rest.split_at(end);
        self.rest = rest;
        String::from_utf8_lossy(token).into_owned()
    }

    /// The rest of a quoted string whose opening quote was eaten.
    fn quoted(&mut self) -> String {
        let mut value = Vec::new();
        while let Some((&b, rest)) = self.rest.split_first() {
            self.rest = rest;
            match b {
                b'"' => break,
                b'\\' => {
                    if let Some((&escaped, rest)) = self.rest.split_first() {
                        value.push(escaped);
                        self.rest = rest;
                    }
                }
                other => value.push(other),
            }
        }
        String::from_utf8_lossy(&value).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(realm: &str, service: Option<&str>, scope: Option<&str>) -> Challenge {
        Challenge::Bearer {
            realm: realm.into(),
            service: service.map(Into::into),
            scope: scope.map(Into::into),
        }
    }

    #[test]
    fn distribution_token_challenge() {
        let header = r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:lab/app:pull""#;
        assert_eq!(
            parse([header]),
            Some(bearer(
                "https://auth.example.com/token",
                Some("registry.example.com"),
                Some("repository:lab/app:pull")
            ))
        );
    }

    #[test]
    fn htpasswd_challenge() {
        assert_eq!(parse([r#"Basic realm="test""#]), Some(Challenge::Basic));
        assert_eq!(parse(["basic"]), Some(Challenge::Basic));
    }

    #[test]
    fn bearer_is_preferred_and_params_are_lenient() {
        let header = r#"Basic realm="x", BEARER Realm = "http://127.0.0.1:9/token" , scope=repository:a/b:pull,error="insufficient_scope""#;
        assert_eq!(
            parse([header]),
            Some(bearer(
                "http://127.0.0.1:9/token",
                None,
                Some("repository:a/b:pull")
            ))
        );
        // Bearer in a second header value.
        assert_eq!(
            parse([r#"Basic realm="x""#, r#"Bearer realm="r",service="s""#]),
            Some(bearer("r", Some("s"), None))
        );
    }

    #[test]
    fn quoted_strings_and_several_scopes() {
        let header =
            r#"Bearer realm="http://h/t?a=\"b\"",scope="repository:a:pull repository:b:pull""#;
        assert_eq!(
            parse([header]),
            Some(bearer(
                "http://h/t?a=\"b\"",
                None,
                Some("repository:a:pull repository:b:pull")
            ))
        );
    }

    #[test]
    fn nothing_usable() {
        assert_eq!(parse(Vec::<&str>::new()), None);
        assert_eq!(parse([""]), None);
        assert_eq!(parse(["Negotiate"]), None);
        // A Bearer challenge without a realm cannot be answered.
        assert_eq!(parse([r#"Bearer service="s""#]), None);
        assert_eq!(parse(["\"garbage, ==, @@"]), None);
    }
}
