use super::*;
use serde_json::json;

fn digest(n: u8) -> String {
    format!("sha256:{}", format!("{n:02x}").repeat(32))
}

fn desc(media_type: &str, n: u8, size: u64) -> Descriptor {
    Descriptor {
        media_type: Some(media_type.to_owned()),
        digest: digest(n),
        size: Some(size),
    }
}

/// A schema1 layer: a digest and nothing else.
fn blob_sum(n: u8) -> Descriptor {
    Descriptor {
        media_type: None,
        digest: digest(n),
        size: None,
    }
}

fn platform(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
    Platform {
        os: Some(os.into()),
        architecture: Some(architecture.into()),
        variant: variant.map(Into::into),
    }
}

fn bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(value).expect("serialise")
}

const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

#[test]
fn docker_v2_image() {
    let body = json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": 1469, "digest": digest(1)},
        "layers": [
            {"mediaType": DOCKER_LAYER, "size": 2811478, "digest": digest(2)},
            {"mediaType": DOCKER_LAYER, "size": 32, "digest": digest(3), "urls": ["http://x"]},
        ],
    });
    let manifest = parse_manifest(Some(DOCKER_MANIFEST), &bytes(&body)).expect("parse");
    assert_eq!(
        manifest,
        Manifest {
            kind: ManifestKind::Image,
            media_type: DOCKER_MANIFEST.to_owned(),
            config: Some(desc(DOCKER_CONFIG, 1, 1469)),
            layers: vec![desc(DOCKER_LAYER, 2, 2811478), desc(DOCKER_LAYER, 3, 32)],
            children: vec![],
            subject: None,
            artifact_type: None,
            platform: None,
        }
    );
}

#[test]
fn docker_manifest_list() {
    let body = json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_LIST,
        "manifests": [
            {"mediaType": DOCKER_MANIFEST, "size": 528, "digest": digest(1),
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": DOCKER_MANIFEST, "size": 529, "digest": digest(2),
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8",
                          "features": ["sse4"], "os.version": "1"}},
            {"mediaType": DOCKER_MANIFEST, "size": 530, "digest": digest(3)},
        ],
    });
    let manifest = parse_manifest(Some(DOCKER_MANIFEST_LIST), &bytes(&body)).expect("parse");
    assert_eq!(manifest.kind, ManifestKind::Index);
    assert_eq!(manifest.media_type, DOCKER_MANIFEST_LIST);
    assert_eq!(manifest.config, None);
    assert!(manifest.layers.is_empty());
    assert_eq!(
        manifest.children,
        vec![
            (
                desc(DOCKER_MANIFEST, 1, 528),
                Some(platform("linux", "amd64", None))
            ),
            (
                desc(DOCKER_MANIFEST, 2, 529),
                Some(platform("linux", "arm64", Some("v8")))
            ),
            (desc(DOCKER_MANIFEST, 3, 530), None),
        ]
    );
}

#[test]
fn oci_manifest_with_parameters_in_the_content_type() {
    let body = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": 582, "digest": digest(1)},
        "layers": [{"mediaType": OCI_LAYER, "size": 65761, "digest": digest(2)}],
        "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"},
    });
    let content_type = "Application/VND.oci.image.manifest.v1+json; charset=utf-8";
    let manifest = parse_manifest(Some(content_type), &bytes(&body)).expect("parse");
    assert_eq!(manifest.kind, ManifestKind::Image);
    assert_eq!(manifest.media_type, OCI_MANIFEST);
    assert_eq!(manifest.config, Some(desc(OCI_CONFIG, 1, 582)));
    assert_eq!(manifest.layers, vec![desc(OCI_LAYER, 2, 65761)]);
}

#[test]
fn oci_index_with_subject_and_artifact_type() {
    let body = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "artifactType": "application/vnd.example.bundle",
        "subject": {"mediaType": OCI_MANIFEST, "size": 7, "digest": digest(9)},
        "manifests": [
            {"mediaType": OCI_MANIFEST, "size": 478, "digest": digest(1),
             "platform": {"architecture": "arm", "os": "linux", "variant": "v7"}},
            {"mediaType": OCI_MANIFEST, "size": 478, "digest": digest(2),
             "platform": {"architecture": "amd64", "os": "linux", "variant": ""}},
        ],
    });
    let manifest = parse_manifest(Some(OCI_INDEX), &bytes(&body)).expect("parse");
    assert_eq!(manifest.kind, ManifestKind::Index);
    assert_eq!(manifest.subject, Some(desc(OCI_MANIFEST, 9, 7)));
    assert_eq!(
        manifest.artifact_type.as_deref(),
        Some("application/vnd.example.bundle")
    );
    let platforms: Vec<_> = manifest.children.iter().map(|(_, p)| p.clone()).collect();
    assert_eq!(
        platforms,
        vec![
            Some(platform("linux", "arm", Some("v7"))),
            Some(platform("linux", "amd64", None)),
        ]
    );
}

#[test]
fn oci_artifact_manifest_refers_to_its_subject() {
    let body = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2,
                   "digest": digest(1)},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                    "size": 10, "digest": digest(2)}],
        "subject": {"mediaType": OCI_MANIFEST, "size": 478, "digest": digest(3)},
    });
    let manifest = parse_manifest(Some(OCI_MANIFEST), &bytes(&body)).expect("parse");
    assert_eq!(manifest.kind, ManifestKind::Image);
    assert_eq!(manifest.subject, Some(desc(OCI_MANIFEST, 3, 478)));
    assert_eq!(
        manifest.artifact_type.as_deref(),
        Some("application/vnd.dev.cosign.artifact.sig.v1+json")
    );
}

#[test]
fn media_type_falls_back_to_the_body_then_to_the_shape() {
    let image = json!({
        "schemaVersion": 2,
        "config": {"mediaType": OCI_CONFIG, "size": 2, "digest": digest(1)},
        "layers": [],
    });
    let index = json!({"schemaVersion": 2, "manifests": []});
    let mut docker = image.clone();
    docker["mediaType"] = json!(DOCKER_MANIFEST);
    let cases = [
        (None, &docker, DOCKER_MANIFEST, ManifestKind::Image),
        (
            Some("application/json"),
            &docker,
            DOCKER_MANIFEST,
            ManifestKind::Image,
        ),
        (None, &image, OCI_MANIFEST, ManifestKind::Image),
        (
            Some("text/plain"),
            &image,
            OCI_MANIFEST,
            ManifestKind::Image,
        ),
        (None, &index, OCI_INDEX, ManifestKind::Index),
        (
            Some("application/octet-stream"),
            &index,
            OCI_INDEX,
            ManifestKind::Index,
        ),
        // The response's Content-Type wins over the body.
        (
            Some(OCI_MANIFEST),
            &docker,
            OCI_MANIFEST,
            ManifestKind::Image,
        ),
    ];
    for (content_type, body, media_type, kind) in cases {
        let manifest = parse_manifest(content_type, &bytes(body))
            .unwrap_or_else(|e| panic!("{content_type:?} {body}: {e}"));
        assert_eq!(manifest.media_type, media_type, "{content_type:?} {body}");
        assert_eq!(manifest.kind, kind, "{content_type:?} {body}");
    }
}

/// A schema1 manifest signed the way libtrust does it: the payload, pretty-printed, with a
/// `signatures` member spliced in before its closing brace.
fn signed_schema1(payload: &Value) -> (Vec<u8>, Vec<u8>) {
    let payload = serde_json::to_string_pretty(payload).expect("serialise");
    let format_length = payload.rfind("\n}").expect("closing brace");
    let tail = &payload[format_length..];
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let protected = json!({
        "formatLength": format_length,
        "formatTail": encode(tail.as_bytes()),
        "time": "2016-01-01T00:00:00Z",
    });
    let signatures = format!(
        ",\n   \"signatures\": [{{\"header\": {{\"alg\": \"ES256\"}}, \"signature\": \"c2ln\", \
         \"protected\": \"{}\"}}]",
        encode(protected.to_string().as_bytes())
    );
    let signed = format!("{}{signatures}{tail}", &payload[..format_length]);
    (signed.into_bytes(), payload.into_bytes())
}

#[test]
fn schema1_signed() {
    let v1 = json!({"id": "abc", "os": "linux", "architecture": "arm"}).to_string();
    let payload = json!({
        "schemaVersion": 1,
        "name": "library/old",
        "tag": "latest",
        "architecture": "arm",
        "fsLayers": [{"blobSum": digest(1)}, {"blobSum": digest(2)}, {"blobSum": digest(1)}],
        "history": [{"v1Compatibility": v1}, {"v1Compatibility": "{}"}],
    });
    let (signed, canonical) = signed_schema1(&payload);
    for content_type in [Some(SCHEMA1_SIGNED), None] {
        let manifest = parse_manifest(content_type, &signed).expect("parse");
        assert_eq!(manifest.kind, ManifestKind::Schema1);
        assert_eq!(manifest.media_type, SCHEMA1_SIGNED);
        assert_eq!(manifest.config, None);
        assert_eq!(manifest.layers, vec![blob_sum(1), blob_sum(2), blob_sum(1)]);
        assert_eq!(manifest.platform, Some(platform("linux", "arm", None)));
    }
    // The digest covers the payload without the signatures.
    assert_eq!(
        schema1_signed_payload(&signed).as_deref(),
        Some(canonical.as_slice())
    );
    assert_eq!(schema1_signed_payload(&canonical), None);
    assert_eq!(schema1_signed_payload(b"not json"), None);
}

#[test]
fn schema1_unsigned_without_os_or_architecture() {
    let body = json!({"schemaVersion": 1, "fsLayers": [{"blobSum": digest(4)}]});
    let manifest = parse_manifest(None, &bytes(&body)).expect("parse");
    assert_eq!(manifest.media_type, SCHEMA1);
    assert_eq!(manifest.kind, ManifestKind::Schema1);
    assert_eq!(manifest.layers, vec![blob_sum(4)]);
    assert_eq!(manifest.platform, None, "nothing stated, no platform");

    let body = json!({"schemaVersion": 1, "architecture": "amd64", "fsLayers": []});
    let manifest = parse_manifest(Some(SCHEMA1), &bytes(&body)).expect("parse");
    assert_eq!(
        manifest.platform,
        Some(Platform {
            os: None,
            architecture: Some("amd64".into()),
            variant: None,
        })
    );
}

#[test]
fn garbage_is_refused() {
    let descriptor = json!({"mediaType": OCI_CONFIG, "size": 2, "digest": digest(1)});
    let cases: Vec<(Option<&str>, Vec<u8>)> = vec![
        (Some(OCI_MANIFEST), b"".to_vec()),
        (Some(OCI_MANIFEST), b"<html>502 Bad Gateway</html>".to_vec()),
        (Some(OCI_MANIFEST), b"{\"config\": ".to_vec()),
        (Some(OCI_MANIFEST), b"[]".to_vec()),
        (Some(OCI_MANIFEST), b"\"manifest\"".to_vec()),
        (Some(OCI_MANIFEST), b"null".to_vec()),
        // No config.
        (Some(OCI_MANIFEST), bytes(&json!({"layers": []}))),
        (
            Some(OCI_MANIFEST),
            bytes(&json!({"config": "sha256:x", "layers": []})),
        ),
        (
            Some(OCI_MANIFEST),
            bytes(&json!({"config": descriptor, "layers": {}})),
        ),
        (
            Some(OCI_MANIFEST),
            bytes(&json!({"config": {"mediaType": OCI_CONFIG, "size": -1, "digest": digest(1)}})),
        ),
        (
            Some(OCI_MANIFEST),
            bytes(&json!({"config": {"mediaType": OCI_CONFIG, "size": 1, "digest": "nope"}})),
        ),
        (
            Some(OCI_MANIFEST),
            bytes(&json!({"config": {"mediaType": OCI_CONFIG, "size": 1}})),
        ),
        (Some(OCI_INDEX), bytes(&json!({"manifests": null}))),
        (Some(OCI_INDEX), bytes(&json!({"schemaVersion": 2}))),
        (
            Some(OCI_INDEX),
            bytes(&json!({"manifests": [descriptor], "subject": 3})),
        ),
        (
            Some(OCI_INDEX),
            bytes(&json!({"manifests": [{"digest": digest(1), "size": 1, "platform": "linux"}]})),
        ),
        (Some(SCHEMA1_SIGNED), bytes(&json!({"schemaVersion": 1}))),
        (
            Some(SCHEMA1),
            bytes(&json!({"fsLayers": [{"blobSum": "x"}]})),
        ),
        // Nothing says what it is.
        (None, bytes(&json!({"schemaVersion": 2}))),
        (None, bytes(&json!({}))),
        (None, bytes(&json!({"mediaType": 2, "config": descriptor}))),
        // Specific types regstat does not read.
        (
            Some("application/vnd.oci.artifact.manifest.v1+json"),
            bytes(&json!({"config": descriptor})),
        ),
        (
            None,
            bytes(&json!({"mediaType": "application/vnd.example+json", "config": descriptor})),
        ),
        (Some("text/html"), bytes(&json!({"config": descriptor}))),
    ];
    for (content_type, body) in cases {
        let result = parse_manifest(content_type, &body);
        assert!(
            result.is_err(),
            "accepted {content_type:?} {}: {result:?}",
            String::from_utf8_lossy(&body)
        );
    }
    let unsupported = parse_manifest(
        Some("application/vnd.oci.artifact.manifest.v1+json"),
        &bytes(&json!({"config": descriptor})),
    );
    assert!(
        matches!(&unsupported, Err(ManifestError::Unsupported(t)) if t.contains("artifact")),
        "{unsupported:?}"
    );
    assert!(matches!(
        parse_manifest(None, b"{}"),
        Err(ManifestError::UnknownType)
    ));
}

#[test]
fn config_platform() {
    let config = json!({
        "architecture": "arm64",
        "variant": "v8",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [digest(1)]},
        "config": {"Env": ["PATH=/bin"]},
    });
    assert_eq!(
        parse_config_platform(&bytes(&config)).expect("parse"),
        Some(platform("linux", "arm64", Some("v8")))
    );
    let windows = json!({"architecture": "amd64", "os": "windows", "os.version": "10.0"});
    let platform = parse_config_platform(&bytes(&windows))
        .expect("parse")
        .expect("a platform");
    assert_eq!(platform.os.as_deref(), Some("windows"));
    assert_eq!(platform.variant, None);

    // Artifact configs state no platform; a partial one is kept as stated.
    assert_eq!(parse_config_platform(b"{}").expect("parse"), None);
    assert_eq!(
        parse_config_platform(br#"{"os": "", "architecture": ""}"#).expect("parse"),
        None
    );
    assert_eq!(
        parse_config_platform(br#"{"os": "linux"}"#).expect("parse"),
        Some(Platform {
            os: Some("linux".into()),
            architecture: None,
            variant: None,
        })
    );

    for garbage in [
        &b""[..],
        b"[]",
        b"\"linux\"",
        b"{\"os\": 5, \"architecture\": \"amd64\"}",
        b"\x89PNG",
    ] {
        assert!(
            parse_config_platform(garbage).is_err(),
            "accepted {}",
            String::from_utf8_lossy(garbage)
        );
    }
}

#[test]
fn accept_header_names_every_type() {
    for media_type in KNOWN_TYPES {
        assert!(
            MANIFEST_ACCEPT.contains(media_type),
            "{media_type} missing from the Accept header"
        );
    }
}

/// The real registry's notifications list a manifest's references (config and layers, or an
/// index's children): a manifest with those descriptors must parse back to the same ones.
#[test]
fn shapes_from_the_real_registry_fixtures() {
    let mut checked = 0;
    for file in [
        "01-push-oci-by-tag.jsonl",
        "06-push-multiarch-oci-index.jsonl",
    ] {
        let text = regstat_shared::testkit::fixture_text(file);
        for line in text.lines() {
            let request: Value = serde_json::from_str(line).expect("fixture line");
            let events = request["body"]["events"].as_array().expect("events");
            for event in events {
                let target = &event["target"];
                let Some(references) = target["references"].as_array() else {
                    continue;
                };
                let media_type = target["mediaType"].as_str().expect("media type");
                let expected: Vec<Descriptor> = references
                    .iter()
                    .map(|r| Descriptor {
                        media_type: Some(r["mediaType"].as_str().expect("type").to_owned()),
                        digest: r["digest"].as_str().expect("digest").to_owned(),
                        size: Some(r["size"].as_u64().expect("size")),
                    })
                    .collect();
                let (body, got) = if media_type == OCI_INDEX {
                    let body = json!({"schemaVersion": 2, "mediaType": media_type,
                                      "manifests": references});
                    let manifest = parse_manifest(Some(media_type), &bytes(&body)).expect("parse");
                    let children = manifest.children.into_iter().map(|(d, _)| d).collect();
                    (body, children)
                } else {
                    let body = json!({"schemaVersion": 2, "mediaType": media_type,
                                      "config": references[0], "layers": references[1..]});
                    let manifest = parse_manifest(Some(media_type), &bytes(&body)).expect("parse");
                    let mut all = vec![manifest.config.expect("config")];
                    all.extend(manifest.layers);
                    (body, all)
                };
                assert_eq!(got, expected, "{file}: {body}");
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 4,
        "only {checked} manifests with references in the fixtures"
    );
}

#[test]
fn config_created() {
    let created = |value: serde_json::Value| {
        let config = json!({"architecture": "amd64", "os": "linux", "created": value});
        parse_config(&bytes(&config)).expect("parse").created
    };
    assert_eq!(
        created(json!("2024-05-01T12:00:00.123456789Z")).map(|t| t.to_rfc3339()),
        Some("2024-05-01T12:00:00.123456789+00:00".to_owned())
    );
    assert_eq!(
        created(json!("2024-05-01T14:00:00+02:00")).map(|t| t.to_rfc3339()),
        Some("2024-05-01T12:00:00+00:00".to_owned())
    );
    // Reproducible builds' placeholders, and what is not a time, are no creation time.
    assert_eq!(created(json!("1970-01-01T00:00:00Z")), None);
    assert!(created(json!("1980-01-01T00:00:01Z")).is_some());
    assert_eq!(created(json!("1980-01-01T00:00:00Z")), None);
    assert_eq!(created(json!("yesterday")), None);
    assert_eq!(created(json!(1714564800)), None);
    let without = parse_config(br#"{"os": "linux"}"#).expect("parse");
    assert_eq!(without.created, None);
}
