//! Image manifests as registries serve them: Docker v2 schema2 and manifest lists, OCI
//! manifests and indexes, and enough of the old schema1 not to fail on it.
//!
//! Pure functions, bytes in and a [`Manifest`] out: no I/O, so every shape is unit-tested.
//! Unknown fields are ignored; a known field with the wrong shape is an error.

use base64::Engine as _;
use chrono::{DateTime, Utc};
pub use regstat_shared::content::{
    DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST, SCHEMA1, SCHEMA1_SIGNED,
};
use regstat_shared::grammar::digest_syntax_problem;
use serde::Deserialize;
use serde_json::Value;

/// The `Accept` header of every manifest request. It must name all four current types: a
/// registry answers 404 for OCI content it may not serve as asked, and converts Docker content
/// fetched by tag to schema1. Schema1 comes last, as a last resort.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.v1+prettyjws;q=0.5, \
application/vnd.docker.distribution.manifest.v1+json;q=0.5";

/// The manifest types [`parse_manifest`] reads.
const KNOWN_TYPES: [&str; 6] = [
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    OCI_INDEX,
    SCHEMA1,
    SCHEMA1_SIGNED,
];

/// Content types that say nothing about what a manifest is (some registries and proxies send
/// them): the body decides.
const GENERIC_TYPES: [&str; 4] = [
    "application/json",
    "application/octet-stream",
    "text/plain",
    "binary/octet-stream",
];

/// What a manifest is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// One image (or artifact): a config and layers.
    Image,
    /// A list of manifests, usually one per platform.
    Index,
    /// Docker's deprecated schema1: layers and an architecture, no config blob.
    Schema1,
}

/// A pointer to content by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// The media type of the content pointed at (`None` for schema1 layers, which have none,
    /// and for descriptors that omit it).
    pub media_type: Option<String>,
    /// Its digest, `algorithm:encoded`.
    pub digest: String,
    /// Its size in bytes (`None` for schema1 layers, which do not say).
    pub size: Option<u64>,
}

/// The platform an image runs on, as far as it is stated (empty strings count as unstated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: Option<String>,
    /// CPU architecture, e.g. `amd64`.
    pub architecture: Option<String>,
    /// CPU variant, e.g. `v8` for arm64.
    pub variant: Option<String>,
}

/// The parts of a manifest regstat records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Image, index or schema1.
    pub kind: ManifestKind,
    /// The manifest's own media type (one of the constants of this module).
    pub media_type: String,
    /// The config blob of an image; `None` for indexes and schema1.
    pub config: Option<Descriptor>,
    /// The layers of an image (schema1: `fsLayers` in the manifest's order, newest first).
    pub layers: Vec<Descriptor>,
    /// The manifests an index lists, with the platform each entry states.
    pub children: Vec<(Descriptor, Option<Platform>)>,
    /// The manifest this one refers to (OCI 1.1 `subject`: signatures, SBOMs, attestations).
    pub subject: Option<Descriptor>,
    /// OCI `artifactType`, when the manifest is an artifact rather than an image.
    pub artifact_type: Option<String>,
    /// The platform the manifest itself states: only schema1 does (`architecture`, and `os`
    /// from its newest history entry). Schema2 and OCI images state theirs in the config blob
    /// ([`parse_config_platform`]), indexes per child.
    pub platform: Option<Platform>,
}

/// Why a manifest or config could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON, or a known field has the wrong shape.
    #[error("malformed document: {0}")]
    Json(#[from] serde_json::Error),
    /// Valid JSON that is not what it should be.
    #[error("malformed document: {0}")]
    Shape(String),
    /// A manifest type regstat does not read.
    #[error("unsupported manifest media type `{0}`")]
    Unsupported(String),
    /// Neither the response nor the body says what the manifest is.
    #[error(
        "cannot tell the manifest's media type: no Content-Type, no `mediaType`, \
         no `manifests` or `config`"
    )]
    UnknownType,
}

/// A descriptor as it appears in JSON.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: String,
    size: Option<u64>,
    platform: Option<RawPlatform>,
}

#[derive(Deserialize)]
struct RawPlatform {
    os: Option<String>,
    architecture: Option<String>,
    variant: Option<String>,
}

/// An image manifest (Docker schema2 or OCI).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawImage {
    config: RawDescriptor,
    #[serde(default)]
    layers: Vec<RawDescriptor>,
    subject: Option<RawDescriptor>,
    artifact_type: Option<String>,
}

/// An index (Docker manifest list or OCI index).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIndex {
    manifests: Vec<RawDescriptor>,
    subject: Option<RawDescriptor>,
    artifact_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSchema1 {
    fs_layers: Vec<FsLayer>,
    architecture: Option<String>,
    #[serde(default)]
    history: Vec<History>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FsLayer {
    blob_sum: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct History {
    v1_compatibility: Option<String>,
}

/// Parses a manifest. Its media type comes from `content_type` (the response's Content-Type)
/// when that names a manifest type, else from the body's `mediaType`, else from its shape:
/// `manifests` makes an OCI index, `config` an OCI manifest, `schemaVersion: 1` schema1.
pub fn parse_manifest(content_type: Option<&str>, body: &[u8]) -> Result<Manifest, ManifestError> {
    let value: Value = serde_json::from_slice(body)?;
    let Value::Object(object) = &value else {
        return Err(ManifestError::Shape(
            "a manifest must be a JSON object".into(),
        ));
    };
    let body_type = match object.get("mediaType") {
        None | Some(Value::Null) => None,
        Some(Value::String(media_type)) => Some(media_type.as_str()),
        Some(_) => return Err(ManifestError::Shape("`mediaType` must be a string".into())),
    };
    let media_type = media_type_of(content_type.map(essence).as_deref(), body_type, object)?;
    match media_type {
        DOCKER_MANIFEST | OCI_MANIFEST => image(media_type, value),
        DOCKER_MANIFEST_LIST | OCI_INDEX => index(media_type, value),
        SCHEMA1 | SCHEMA1_SIGNED => schema1(media_type, value),
        other => Err(ManifestError::Unsupported(other.to_owned())),
    }
}

/// The media type of a content type without parameters, lowercase.
fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Decides the media type; the returned string is one of the module's constants or an
/// unsupported type.
fn media_type_of(
    content_type: Option<&str>,
    body_type: Option<&str>,
    object: &serde_json::Map<String, Value>,
) -> Result<&'static str, ManifestError> {
    let candidates = [content_type, body_type];
    for candidate in candidates.into_iter().flatten() {
        if let Some(found) = KNOWN_TYPES.iter().find(|k| **k == candidate) {
            return Ok(found);
        }
    }
    // A specific but unknown type (an artifact manifest, a Helm chart's own format...).
    if let Some(specific) = candidates
        .into_iter()
        .flatten()
        .find(|c| !c.is_empty() && !GENERIC_TYPES.contains(c) && !KNOWN_TYPES.contains(c))
    {
        return Err(ManifestError::Unsupported(specific.to_owned()));
    }
    if object.contains_key("manifests") {
        Ok(OCI_INDEX)
    } else if object.contains_key("config") {
        Ok(OCI_MANIFEST)
    } else if object.get("schemaVersion").and_then(Value::as_u64) == Some(1) {
        Ok(if object.contains_key("signatures") {
            SCHEMA1_SIGNED
        } else {
            SCHEMA1
        })
    } else {
        Err(ManifestError::UnknownType)
    }
}

fn descriptor(raw: RawDescriptor) -> Result<(Descriptor, Option<Platform>), ManifestError> {
    if digest_syntax_problem(&raw.digest).is_some() {
        return Err(ManifestError::Shape(format!(
            "`{}` is not a digest",
            raw.digest
        )));
    }
    let platform = raw
        .platform
        .and_then(|p| platform(p.os, p.architecture, p.variant));
    let descriptor = Descriptor {
        media_type: raw.media_type.filter(|t| !t.is_empty()),
        digest: raw.digest,
        size: raw.size,
    };
    Ok((descriptor, platform))
}

fn plain(raw: RawDescriptor) -> Result<Descriptor, ManifestError> {
    descriptor(raw).map(|(descriptor, _)| descriptor)
}

/// The platform stated, if anything is; empty strings are unstated.
fn platform(
    os: Option<String>,
    architecture: Option<String>,
    variant: Option<String>,
) -> Option<Platform> {
    let stated = |value: Option<String>| value.filter(|s| !s.is_empty());
    let platform = Platform {
        os: stated(os),
        architecture: stated(architecture),
        variant: stated(variant),
    };
    let any =
        platform.os.is_some() || platform.architecture.is_some() || platform.variant.is_some();
    any.then_some(platform)
}

fn image(media_type: &str, value: Value) -> Result<Manifest, ManifestError> {
    let raw: RawImage = serde_json::from_value(value)?;
    Ok(Manifest {
        kind: ManifestKind::Image,
        media_type: media_type.to_owned(),
        config: Some(plain(raw.config)?),
        layers: raw
            .layers
            .into_iter()
            .map(plain)
            .collect::<Result<_, _>>()?,
        children: Vec::new(),
        subject: raw.subject.map(plain).transpose()?,
        artifact_type: raw.artifact_type.filter(|s| !s.is_empty()),
        platform: None,
    })
}

fn index(media_type: &str, value: Value) -> Result<Manifest, ManifestError> {
    let raw: RawIndex = serde_json::from_value(value)?;
    Ok(Manifest {
        kind: ManifestKind::Index,
        media_type: media_type.to_owned(),
        config: None,
        layers: Vec::new(),
        children: raw
            .manifests
            .into_iter()
            .map(descriptor)
            .collect::<Result<_, _>>()?,
        subject: raw.subject.map(plain).transpose()?,
        artifact_type: raw.artifact_type.filter(|s| !s.is_empty()),
        platform: None,
    })
}

fn schema1(media_type: &str, value: Value) -> Result<Manifest, ManifestError> {
    let raw: RawSchema1 = serde_json::from_value(value)?;
    let layers = raw
        .fs_layers
        .into_iter()
        .map(|layer| {
            if digest_syntax_problem(&layer.blob_sum).is_none() {
                Ok(Descriptor {
                    media_type: None,
                    digest: layer.blob_sum,
                    size: None,
                })
            } else {
                Err(ManifestError::Shape(format!(
                    "`{}` is not a digest",
                    layer.blob_sum
                )))
            }
        })
        .collect::<Result<_, _>>()?;
    // The newest history entry is the image's own v1 JSON, which names its OS.
    let os = raw
        .history
        .first()
        .and_then(|h| h.v1_compatibility.as_deref())
        .and_then(|json| serde_json::from_str::<Value>(json).ok())
        .and_then(|v| v.get("os").and_then(Value::as_str).map(str::to_owned));
    Ok(Manifest {
        kind: ManifestKind::Schema1,
        media_type: media_type.to_owned(),
        config: None,
        layers,
        children: Vec::new(),
        subject: None,
        artifact_type: None,
        platform: platform(os, raw.architecture, None),
    })
}

/// What regstat reads from an image config blob.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageConfig {
    /// `os`, `architecture` and `variant`; `None` when it states none of them (artifact
    /// configs such as the OCI empty `{}`).
    pub platform: Option<Platform>,
    /// `created`, when it is a real time: absent, unparseable, and the placeholder times of
    /// reproducible builds (the Unix epoch, 1980-01-01) are `None`.
    pub created: Option<DateTime<Utc>>,
}

/// Creation times up to this one are placeholders, not when the image was built: reproducible
/// builds write the Unix epoch (`SOURCE_DATE_EPOCH=0`: ko, Bazel, Nix) or the zip epoch
/// 1980-01-01 (Buildpacks).
const PLACEHOLDER_CREATED_UNTIL: &str = "1980-01-01T00:00:01Z";

/// Reads [`ImageConfig`] from an image config blob.
pub fn parse_config(bytes: &[u8]) -> Result<ImageConfig, ManifestError> {
    #[derive(Deserialize)]
    struct RawConfig {
        os: Option<String>,
        architecture: Option<String>,
        variant: Option<String>,
        created: Option<Value>,
    }
    let value: Value = serde_json::from_slice(bytes)?;
    if !value.is_object() {
        return Err(ManifestError::Shape(
            "a config must be a JSON object".into(),
        ));
    }
    let raw: RawConfig = serde_json::from_value(value)?;
    let placeholder_until = DateTime::parse_from_rfc3339(PLACEHOLDER_CREATED_UNTIL).ok();
    let created = raw
        .created
        .as_ref()
        .and_then(Value::as_str)
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .filter(|created| placeholder_until.is_some_and(|until| *created >= until))
        .map(|created| created.with_timezone(&Utc));
    Ok(ImageConfig {
        platform: platform(raw.os, raw.architecture, raw.variant),
        created,
    })
}

/// Reads `os`, `architecture` and `variant` from an image config blob ([`parse_config`]'s
/// platform).
pub fn parse_config_platform(bytes: &[u8]) -> Result<Option<Platform>, ManifestError> {
    parse_config(bytes).map(|config| config.platform)
}

/// The signed payload of a schema1 `prettyjws` manifest, which is what its digest covers: the
/// body up to `formatLength` followed by the base64url `formatTail`, both from the first
/// signature's protected header. `None` for anything else.
pub(crate) fn schema1_signed_payload(body: &[u8]) -> Option<Vec<u8>> {
    #[derive(Deserialize)]
    struct Jws {
        signatures: Vec<Signature>,
    }
    #[derive(Deserialize)]
    struct Signature {
        protected: String,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Protected {
        format_length: usize,
        format_tail: String,
    }
    let decode = |text: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim_end_matches('='))
    };
    let jws: Jws = serde_json::from_slice(body).ok()?;
    let protected = decode(&jws.signatures.first()?.protected).ok()?;
    let protected: Protected = serde_json::from_slice(&protected).ok()?;
    let mut payload = body.get(..protected.format_length)?.to_vec();
    payload.extend(decode(&protected.format_tail).ok()?);
    Some(payload)
}

#[cfg(test)]
mod tests;
