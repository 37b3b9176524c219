//! What a manifest contains: its config, layers, children and platform.
//!
//! Content is immutable for a digest, so whichever source provides it (the event's
//! `target.references`, a callback to the registry, or `regstat sync`) gives the same rows.
//! The registry client builds it from what it fetched, the store records it.

use crate::event::Descriptor;

/// Docker v2 schema2 image manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (multi-platform).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (multi-platform, or a list of artifacts).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema1, signed (what registries serve).
pub const SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// Docker schema1, unsigned.
pub const SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";

/// Media types of manifest lists / image indexes.
pub const INDEX_MEDIA_TYPES: [&str; 2] = [OCI_INDEX, DOCKER_MANIFEST_LIST];

/// Whether a manifest media type is an index (multi-platform) rather than an image.
pub fn is_index(media_type: Option<&str>) -> bool {
    media_type.is_some_and(|m| INDEX_MEDIA_TYPES.contains(&m))
}

/// How much of a manifest's content regstat knows; the most informative status wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FetchStatus {
    /// Pushed, but no callback was possible and the event carried no references.
    NoRegistry,
    /// The registry answered 404 when called back (deleted meanwhile).
    Gone,
    /// References taken from the event; no callback.
    FromEvent,
    /// Read from the registry.
    Fetched,
}

impl FetchStatus {
    /// The value stored in `manifests.fetch_status`.
    pub fn as_str(self) -> &'static str {
        match self {
            FetchStatus::NoRegistry => "no_registry",
            FetchStatus::Gone => "gone",
            FetchStatus::FromEvent => "from_event",
            FetchStatus::Fetched => "fetched",
        }
    }
}

/// What a reference is to the manifest holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// The image config blob.
    Config,
    /// A layer blob.
    Layer,
    /// A child manifest of an index.
    Manifest,
    /// The manifest this one refers to (OCI `subject`).
    Subject,
}

impl Role {
    /// The value stored in `manifest_references.role`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Config => "config",
            Role::Layer => "layer",
            Role::Manifest => "manifest",
            Role::Subject => "subject",
        }
    }
}

/// One reference of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Its role.
    pub role: Role,
    /// Position among the references of the same role.
    pub position: i32,
    /// Digest referenced.
    pub digest: String,
    /// Its media type.
    pub media_type: Option<String>,
    /// Its size.
    pub size: Option<i64>,
    /// Platform of an index child.
    pub os: Option<String>,
    /// Platform of an index child.
    pub architecture: Option<String>,
    /// Platform of an index child.
    pub variant: Option<String>,
}

/// A manifest's content, as far as it is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// Where it came from.
    pub status: FetchStatus,
    /// Digest of the image config.
    pub config_digest: Option<String>,
    /// The image's own platform (from its config).
    pub os: Option<String>,
    /// The image's own platform (from its config).
    pub architecture: Option<String>,
    /// The image's own platform (from its config).
    pub variant: Option<String>,
    /// OCI `artifactType`.
    pub artifact_type: Option<String>,
    /// OCI `subject` digest.
    pub subject_digest: Option<String>,
    /// When the image was built, as its config states (`created`, placeholders left out).
    pub created: Option<chrono::DateTime<chrono::Utc>>,
    /// Config, layers, children, subject.
    pub references: Vec<Reference>,
}

impl Content {
    /// Nothing known beyond the status.
    pub fn empty(status: FetchStatus) -> Self {
        Self {
            status,
            config_digest: None,
            os: None,
            architecture: None,
            variant: None,
            artifact_type: None,
            subject_digest: None,
            created: None,
            references: Vec::new(),
        }
    }

    /// Content from an event's `target.references` (`includereferences: true`). Distribution
    /// lists an image's config first, then its layers; an index lists its children (without
    /// platform).
    pub fn from_event(media_type: Option<&str>, references: &[Descriptor]) -> Option<Self> {
        if references.is_empty() {
            return None;
        }
        let mut content = Self::empty(FetchStatus::FromEvent);
        let index = is_index(media_type);
        let mut layers = 0;
        for (i, descriptor) in references.iter().enumerate() {
            let Some(digest) = descriptor.digest.clone() else {
                continue;
            };
            let (role, position) = if index {
                (Role::Manifest, i)
            } else if i == 0 {
                content.config_digest = Some(digest.clone());
                (Role::Config, 0)
            } else {
                layers += 1;
                (Role::Layer, layers - 1)
            };
            content.references.push(Reference {
                role,
                position: i32::try_from(position).unwrap_or(i32::MAX),
                digest,
                media_type: descriptor.media_type.clone(),
                size: descriptor.size.and_then(|s| i64::try_from(s).ok()),
                os: None,
                architecture: None,
                variant: None,
            });
        }
        Some(content)
    }
}
