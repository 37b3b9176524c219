//! regstat's registry client: which configured registry an event came from, and what a
//! registry holds (manifests and image configs by digest, catalog and tag lists).
//!
//! # Layout
//! - this file: [`Registries`], every configured registry plus the equivalent-names map;
//!   resolves an event's `request.host` to a canonical name and, when configured, a client.
//! - `client`: [`RegistryClient`], one registry's client: manifests and config blobs by
//!   digest, verified against the digest and cached; [`RegistryClient::content`], a
//!   manifest's content with its platform, as callbacks and `regstat sync` record it.
//! - `listing`: for `regstat sync`, the catalog and tag lists (paginated) and `HEAD` checks.
//! - `deletion`: for `regstat cleanup apply`, deleting a manifest by digest.
//! - `transport`: the one authenticated request path (base URL from configuration only,
//!   never from an event; TLS via rustls; bounded time and concurrency; the 401 dance).
//! - `auth`, `challenge`, `credentials`: answering a 401 (Basic, or a token from the realm),
//!   `WWW-Authenticate` parsing, credentials from settings or a Docker `config.json`.
//! - `error`: [`FetchError`], and turning transport errors and oversized bodies into one.
//! - `hosts`: host normalisation and origins, one way everywhere.
//! - `digest`: what may go into a URL (the shared grammar) and checking what came back.
//! - [`manifest`]: pure parsing of Docker v2, Docker manifest lists, OCI manifests and
//!   indexes, and schema1.

mod auth;
mod challenge;
mod client;
mod credentials;
mod deletion;
mod digest;
mod error;
mod hosts;
mod listing;
pub mod manifest;
mod transport;

pub use client::{Fetched, FetchedContent, RegistryClient, content_of};
pub use error::FetchError;
pub use manifest::{
    Descriptor, ImageConfig, MANIFEST_ACCEPT, Manifest, ManifestError, ManifestKind, Platform,
    parse_config, parse_config_platform, parse_manifest,
};

use anyhow::{Context, bail};
use hosts::{normalise_host, url_hosts};
use regstat_shared::config::{CallbackSettings, RegistrySettings};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Where a host leads.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    /// A configured registry (index into [`Registries::clients`]).
    Registry(usize),
    /// A canonical name from the equivalence file that is not a configured registry.
    Name(String),
}

/// Every configured registry, and which hosts mean which registry.
pub struct Registries {
    /// One client per configured registry, in configuration order.
    clients: Vec<RegistryClient>,
    /// Lowercase `host[:port]` → route: each registry's URL host and aliases, and the
    /// equivalence file's aliases.
    hosts: HashMap<String, Route>,
}

impl std::fmt::Debug for Registries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut hosts: Vec<(&String, String)> = self
            .hosts
            .iter()
            .map(|(host, route)| (host, self.route_name(route).to_owned()))
            .collect();
        hosts.sort();
        f.debug_struct("Registries")
            .field("clients", &self.clients)
            .field("hosts", &hosts)
            .finish()
    }
}

/// What an event's host resolves to.
#[derive(Debug)]
pub struct Resolved<'a> {
    /// The canonical registry name to record.
    pub name: String,
    /// The client to call back with, when the registry is configured.
    pub client: Option<&'a RegistryClient>,
}

impl Registries {
    /// Builds a client per configured registry and loads the equivalence file
    /// (`callbacks.equiv_registries_file`, `{"canonical": ["alias", ...]}`; empty for none).
    /// Fails, naming the registry or file, on unusable settings or a host claimed twice.
    pub fn from_settings(
        registries: &[RegistrySettings],
        callbacks: &CallbackSettings,
    ) -> anyhow::Result<Self> {
        let mut this = Self {
            clients: Vec::with_capacity(registries.len()),
            hosts: HashMap::new(),
        };
        for settings in registries {
            let client = RegistryClient::new(settings, callbacks)?;
            let index = this.clients.len();
            let mut hosts = url_hosts(client.url());
            hosts.extend(settings.aliases.iter().map(|a| normalise_host(a)));
            this.clients.push(client);
            for host in hosts {
                this.claim(host, Route::Registry(index), &settings.name)?;
            }
        }
        let file = callbacks.equiv_registries_file.trim();
        if !file.is_empty() {
            this.load_equivalents(Path::new(file))?;
        }
        Ok(this)
    }

    /// The canonical name and client for an event's `request.host`. Matching is on the exact
    /// `host[:port]`, case-insensitively; a port-less host matches a port-less alias (and a
    /// registry URL on the scheme's default port). Unknown hosts keep their own name, without
    /// a client; no host at all is `unknown`.
    pub fn resolve(&self, host: Option<&str>) -> Resolved<'_> {
        let Some(host) = host.map(str::trim).filter(|h| !h.is_empty()) else {
            return Resolved {
                name: "unknown".to_owned(),
                client: None,
            };
        };
        match self.hosts.get(&normalise_host(host)) {
            Some(Route::Registry(index)) => {
                let client = self.clients.get(*index);
                Resolved {
                    name: client.map_or_else(|| host.to_owned(), |c| c.name().to_owned()),
                    client,
                }
            }
            Some(Route::Name(name)) => Resolved {
                name: name.clone(),
                client: None,
            },
            None => Resolved {
                name: host.to_owned(),
                client: None,
            },
        }
    }

    /// The client of the registry configured under `name`.
    pub fn client(&self, name: &str) -> Option<&RegistryClient> {
        self.clients.iter().find(|c| c.name() == name)
    }

    /// Every configured registry's client.
    pub fn clients(&self) -> impl Iterator<Item = &RegistryClient> {
        self.clients.iter()
    }

    fn route_name<'a>(&'a self, route: &'a Route) -> &'a str {
        match route {
            Route::Registry(index) => self.clients.get(*index).map_or("", |c| c.name()),
            Route::Name(name) => name,
        }
    }

    /// Records that `host` leads to `route`; a host already leading elsewhere is an error.
    fn claim(&mut self, host: String, route: Route, claimant: &str) -> anyhow::Result<()> {
        if host.is_empty() {
            bail!("`{claimant}`: an empty host or alias");
        }
        if let Some(existing) = self.hosts.get(&host) {
            if *existing == route {
                return Ok(());
            }
            bail!(
                "host `{host}` is claimed by both `{}` and `{claimant}`",
                self.route_name(existing)
            );
        }
        self.hosts.insert(host, route);
        Ok(())
    }

    /// Adds the equivalence file's aliases. A canonical name that is a configured registry's
    /// name (or one of its hosts) leads to that registry's client.
    fn load_equivalents(&mut self, path: &Path) -> anyhow::Result<()> {
        let context = || format!("callbacks.equiv_registries_file {}", path.display());
        let text = std::fs::read(path).with_context(context)?;
        let map: BTreeMap<String, Vec<String>> = serde_json::from_slice(&text)
            .context("expected {\"canonical\": [\"alias\", ...]}")
            .with_context(context)?;
        for (canonical, aliases) in map {
            let canonical = canonical.trim().to_owned();
            if canonical.is_empty() {
                bail!("{}: an empty canonical name", context());
            }
            let route = match self.clients.iter().position(|c| c.name() == canonical) {
                Some(index) => Route::Registry(index),
                None => self
                    .hosts
                    .get(&normalise_host(&canonical))
                    .cloned()
                    .unwrap_or_else(|| Route::Name(canonical.clone())),
            };
            for alias in aliases {
                self.claim(normalise_host(&alias), route.clone(), &canonical)
                    .with_context(context)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
