//! Hosts and origins, compared one way everywhere: which `host[:port]` strings name a
//! registry (its URL, aliases, Docker config keys, event hosts), and whether two URLs share an
//! origin (where credentials may go).

use reqwest::Url;

/// A host as compared: trimmed, lowercase.
pub(crate) fn normalise_host(host: &str) -> String {
    host.trim().to_ascii_lowercase()
}

/// The lowercase `host[:port]` forms clients use for a URL: with its port (explicit or the
/// scheme's default), and without it when it is the default.
pub(crate) fn url_hosts(url: &Url) -> Vec<String> {
    let Some(host) = url.host_str() else {
        return Vec::new();
    };
    let host = normalise_host(host);
    let mut hosts = Vec::new();
    if url.port().is_none() {
        hosts.push(host.clone());
    }
    if let Some(port) = url.port_or_known_default() {
        hosts.push(format!("{host}:{port}"));
    }
    hosts
}

/// Whether two URLs have the same scheme, host and port.
pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// `scheme://host[:port]` of a URL: what messages and logs name (never a query, which may
/// carry signatures).
pub(crate) fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_a_url() {
        let hosts = |url: &str| url_hosts(&Url::parse(url).expect("url"));
        assert_eq!(hosts("http://127.0.0.1:5000"), ["127.0.0.1:5000"]);
        assert_eq!(
            hosts("https://Registry.Example.com"),
            ["registry.example.com", "registry.example.com:443"]
        );
        assert_eq!(
            hosts("https://registry.example.com:443"),
            ["registry.example.com", "registry.example.com:443"]
        );
        assert_eq!(hosts("http://[::1]:5000"), ["[::1]:5000"]);
    }

    #[test]
    fn origins() {
        let url = |u: &str| Url::parse(u).expect("url");
        assert!(same_origin(
            &url("https://r.example.com/v2/x"),
            &url("https://r.example.com:443/")
        ));
        assert!(!same_origin(
            &url("http://r.example.com/"),
            &url("https://r.example.com/")
        ));
        assert!(!same_origin(
            &url("http://127.0.0.1:1/"),
            &url("http://127.0.0.1:2/")
        ));
        assert!(!same_origin(&url("http://a/"), &url("http://b/")));
    }
}
