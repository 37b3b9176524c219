//! The clients: skopeo, and the test's own requests to the registry API.

use super::{ACCEPT, CHECKER_AGENT, USER, USER_PASSWORD};
use crate::support::{Scratch, skopeo};
use serde_json::Value;

pub(super) struct Skopeo<'a> {
    pub(super) scratch: &'a Scratch,
    pub(super) host: String,
    /// `user:password` for htpasswd.
    pub(super) creds: Option<&'a str>,
}

impl Skopeo<'_> {
    fn docker(&self, reference: &str) -> String {
        format!("docker://{}/{reference}", self.host)
    }

    async fn run(&self, global: &[&str], args: &[String]) {
        let mut all: Vec<&str> = global.to_vec();
        all.extend(args.iter().map(String::as_str));
        skopeo(&all, self.scratch).await;
    }

    fn creds(&self, flag: &str) -> Vec<String> {
        self.creds
            .map(|c| vec![flag.to_owned(), c.to_owned()])
            .unwrap_or_default()
    }

    /// From the OCI layout to the registry.
    pub(super) async fn push(&self, source: &str, destination: &str, flags: &[&str]) {
        let mut args = vec!["copy".to_owned(), "--dest-tls-verify=false".to_owned()];
        args.extend(self.creds("--dest-creds"));
        args.extend(flags.iter().map(|f| (*f).to_owned()));
        args.extend([source.to_owned(), self.docker(destination)]);
        self.run(&[], &args).await;
    }

    /// Registry to registry.
    pub(super) async fn copy(&self, source: &str, destination: &str) {
        let mut args = vec![
            "copy".to_owned(),
            "--src-tls-verify=false".to_owned(),
            "--dest-tls-verify=false".to_owned(),
        ];
        args.extend(self.creds("--src-creds"));
        args.extend(self.creds("--dest-creds"));
        args.extend([self.docker(source), self.docker(destination)]);
        self.run(&[], &args).await;
    }

    /// From the registry into a fresh OCI layout.
    pub(super) async fn pull(&self, source: &str, global: &[&str]) {
        let into = self
            .scratch
            .dir
            .join(format!("pulled-{}", uuid::Uuid::new_v4().simple()));
        let mut args = vec!["copy".to_owned(), "--src-tls-verify=false".to_owned()];
        args.extend(self.creds("--src-creds"));
        args.extend([self.docker(source), format!("oci:{}:x", into.display())]);
        self.run(global, &args).await;
    }

    pub(super) async fn delete(&self, reference: &str) {
        let mut args = vec!["delete".to_owned(), "--tls-verify=false".to_owned()];
        args.extend(self.creds("--creds"));
        args.push(self.docker(reference));
        self.run(&[], &args).await;
    }
}

/// The registry's own API, as the test reads it.
pub(super) struct RegistryApi {
    base: String,
    client: reqwest::Client,
    auth: bool,
}

impl RegistryApi {
    pub(super) fn new(host: &str, auth: bool) -> Self {
        let client = reqwest::Client::builder()
            .user_agent(CHECKER_AGENT)
            .build()
            .expect("HTTP client");
        Self {
            base: format!("http://{host}/v2"),
            client,
            auth,
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.client.request(method, format!("{}/{path}", self.base));
        if self.auth {
            request.basic_auth(USER, Some(USER_PASSWORD))
        } else {
            request
        }
    }

    /// `GET /v2/<repository>/tags/list`, sorted; none when the repository has none.
    pub(super) async fn tags(&self, repository: &str) -> Vec<String> {
        let response = self
            .request(reqwest::Method::GET, &format!("{repository}/tags/list"))
            .send()
            .await
            .expect("tags/list");
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Vec::new();
        }
        assert!(response.status().is_success(), "{response:?}");
        let body: Value = response.json().await.expect("tags/list JSON");
        let mut tags: Vec<String> = body["tags"]
            .as_array()
            .map(|tags| {
                tags.iter()
                    .map(|t| t.as_str().expect("a tag").to_owned())
                    .collect()
            })
            .unwrap_or_default();
        tags.sort();
        tags
    }

    /// `Docker-Content-Digest` of a HEAD of the manifest (a HEAD counts as no pull).
    pub(super) async fn digest(&self, repository: &str, reference: &str) -> String {
        let response = self
            .request(
                reqwest::Method::HEAD,
                &format!("{repository}/manifests/{reference}"),
            )
            .header("Accept", ACCEPT)
            .send()
            .await
            .expect("HEAD manifest");
        assert!(
            response.status().is_success(),
            "HEAD {repository}:{reference}: {response:?}"
        );
        response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .expect("Docker-Content-Digest")
            .to_owned()
    }
}
