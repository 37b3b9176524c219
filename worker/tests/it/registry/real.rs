//! Against the real registry (distribution 2.8, Debian's `docker-registry`), fed by skopeo.

use super::support::{
    Blob, Layout, OCI_INDEX, OCI_MANIFEST, RegistryOptions, Scratch, build_oci_layout, callbacks,
    require_tools, settings, sha256, skopeo,
};
use base64::Engine as _;
use regstat_registry::{Descriptor, FetchError, ManifestKind, Platform, RegistryClient};
use regstat_shared::config::RegistrySettings;
use serde_json::json;

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

fn descriptor(blob: &Blob) -> Descriptor {
    Descriptor {
        media_type: Some(blob.media_type.to_owned()),
        digest: blob.digest.clone(),
        size: Some(blob.size),
    }
}

fn platform(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
    Platform {
        os: Some(os.into()),
        architecture: Some(architecture.into()),
        variant: variant.map(Into::into),
    }
}

fn client(settings: &RegistrySettings) -> RegistryClient {
    RegistryClient::new(settings, &callbacks()).expect("registry client")
}

/// Pushes `tag` of the layout to `docker://<host>/<destination>` with extra skopeo flags.
async fn push(scratch: &Scratch, layout: &Layout, tag: &str, destination: &str, flags: &[&str]) {
    let source = layout.reference(tag);
    let mut args = vec!["copy", "--dest-tls-verify=false"];
    args.extend_from_slice(flags);
    args.push(&source);
    args.push(destination);
    skopeo(&args, scratch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_docker_and_index_manifests_from_a_real_registry() {
    require_tools();
    let mut scratch = Scratch::new();
    let host = scratch.start_registry(&RegistryOptions::default()).await;
    let layout = build_oci_layout(&scratch).await;
    let app = format!("docker://{host}/lab/app:v1");
    let docker = format!("docker://{host}/lab/docker:v1");
    let multi = format!("docker://{host}/lab/multi:v1");
    push(&scratch, &layout, "arm64", &app, &[]).await;
    push(&scratch, &layout, "amd64", &docker, &["--format", "v2s2"]).await;
    push(&scratch, &layout, "multi", &multi, &["--all"]).await;
    let local = settings("local", &format!("http://{host}"));
    let fresh = client(&local);
    let client = client(&local);

    // An OCI image, exactly as written.
    let image = &layout.arm64;
    let fetched = client
        .manifest("lab/app", &image.manifest.digest)
        .await
        .expect("the OCI manifest");
    assert!(!fetched.from_cache, "the first fetch asks the registry");
    assert_eq!(fetched.media_type, OCI_MANIFEST);
    assert_eq!(fetched.size, image.manifest.size);
    assert_eq!(fetched.manifest.kind, ManifestKind::Image);
    assert_eq!(fetched.manifest.config, Some(descriptor(&image.config)));
    assert_eq!(fetched.manifest.layers, vec![descriptor(&image.layer)]);
    assert!(fetched.manifest.children.is_empty());

    // Again: from the cache, the same content.
    let again = client
        .manifest("lab/app", &image.manifest.digest)
        .await
        .expect("the cached manifest");
    assert!(again.from_cache, "the second fetch of a digest is cached");
    assert_eq!(again.manifest, fetched.manifest);
    assert_eq!(again.size, fetched.size);

    // Its config names the platform written into it.
    let found = client
        .config_platform("lab/app", &image.config.digest)
        .await
        .expect("the config");
    assert_eq!(found, Some(platform("linux", "arm64", Some("v8"))));

    // Digests the registry does not have: gone, not an error to retry.
    let missing = sha256(uuid::Uuid::new_v4().as_bytes());
    for result in [
        client.manifest("lab/app", &missing).await.map(|_| ()),
        client
            .config_platform("lab/app", &missing)
            .await
            .map(|_| ()),
        fresh
            .manifest("lab/never-pushed", &image.manifest.digest)
            .await
            .map(|_| ()),
    ] {
        assert!(matches!(result, Err(FetchError::Gone)), "{result:?}");
    }
    // The cache is by digest alone: content is the same in every repository.
    let elsewhere = client
        .manifest("lab/never-pushed", &image.manifest.digest)
        .await
        .expect("a cached digest, asked for in another repository");
    assert!(elsewhere.from_cache);

    // A Docker v2 schema2 image, converted by skopeo: its digest is of the converted bytes.
    let raw = skopeo(
        &["inspect", "--tls-verify=false", "--raw", &docker],
        &scratch,
    )
    .await;
    let fetched = client
        .manifest("lab/docker", &sha256(&raw))
        .await
        .expect("the Docker v2 manifest");
    assert_eq!(fetched.media_type, DOCKER_MANIFEST);
    assert_eq!(fetched.size, raw.len() as u64);
    assert_eq!(fetched.manifest.kind, ManifestKind::Image);
    let config = fetched.manifest.config.expect("a config");
    assert_eq!(config.media_type.as_deref(), Some(DOCKER_CONFIG));
    let layer = Descriptor {
        media_type: Some(DOCKER_LAYER.into()),
        ..descriptor(&layout.amd64.layer)
    };
    assert_eq!(fetched.manifest.layers, vec![layer]);
    let found = client
        .config_platform("lab/docker", &config.digest)
        .await
        .expect("the Docker config");
    assert_eq!(found, Some(platform("linux", "amd64", None)));

    // An OCI index pushed with --all: children with their platforms.
    let fetched = client
        .manifest("lab/multi", &layout.index.digest)
        .await
        .expect("the OCI index");
    assert_eq!(fetched.media_type, OCI_INDEX);
    assert_eq!(fetched.manifest.kind, ManifestKind::Index);
    assert_eq!(fetched.manifest.config, None);
    assert_eq!(
        fetched.manifest.children,
        vec![
            (
                descriptor(&layout.amd64.manifest),
                Some(platform("linux", "amd64", None))
            ),
            (
                descriptor(&layout.arm64.manifest),
                Some(platform("linux", "arm64", Some("v8")))
            ),
        ]
    );
    // The children were pushed by digest into the same repository.
    let child = client
        .manifest("lab/multi", &layout.amd64.manifest.digest)
        .await
        .expect("a child manifest");
    assert_eq!(child.manifest.kind, ManifestKind::Image);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn htpasswd_basic_auth_on_a_real_registry() {
    require_tools();
    let mut scratch = Scratch::new();
    let hash = bcrypt::hash("s3cret-pw", 4).expect("bcrypt");
    let htpasswd = scratch.write("htpasswd", format!("alice:{hash}\n"));
    let options = RegistryOptions {
        htpasswd: Some(htpasswd),
        tls: None,
        ..RegistryOptions::default()
    };
    let host = scratch.start_registry(&options).await;
    let layout = build_oci_layout(&scratch).await;
    let destination = format!("docker://{host}/lab/private:v1");
    push(
        &scratch,
        &layout,
        "amd64",
        &destination,
        &["--dest-creds", "alice:s3cret-pw"],
    )
    .await;
    let image = &layout.amd64;
    let url = format!("http://{host}");

    // Credentials in the settings.
    let mut with_password = settings("private", &url);
    with_password.username = Some("alice".into());
    with_password.password = Some("s3cret-pw".into());
    let client_a = client(&with_password);
    let fetched = client_a
        .manifest("lab/private", &image.manifest.digest)
        .await
        .expect("with the right password");
    assert_eq!(fetched.manifest.config, Some(descriptor(&image.config)));
    let found = client_a
        .config_platform("lab/private", &image.config.digest)
        .await
        .expect("the config with the right password");
    assert_eq!(found, Some(platform("linux", "amd64", None)));

    // Credentials in a Docker config.json: `auth` under a URL key, and username/password.
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret-pw");
    let docker_configs = [
        json!({"auths": {format!("http://{host}/v1/"): {"auth": auth}}}),
        json!({"auths": {host.clone(): {"username": "alice", "password": "s3cret-pw"}}}),
    ];
    for (i, docker_config) in docker_configs.iter().enumerate() {
        let path = scratch.write(&format!("config-{i}.json"), docker_config.to_string());
        let mut from_file = settings("private", &url);
        from_file.docker_config = Some(path);
        let fetched = client(&from_file)
            .manifest("lab/private", &image.manifest.digest)
            .await
            .unwrap_or_else(|e| panic!("with {docker_config}: {e}"));
        assert_eq!(fetched.manifest.kind, ManifestKind::Image);
    }

    // Wrong password, and none at all: denied, and the message holds no password.
    let mut wrong = settings("private", &url);
    wrong.username = Some("alice".into());
    wrong.password = Some("wrong-pw".into());
    let error = client(&wrong)
        .manifest("lab/private", &image.manifest.digest)
        .await
        .expect_err("a wrong password");
    assert!(matches!(error, FetchError::Denied(_)), "{error:?}");
    assert!(
        !format!("{error} {error:?}").contains("wrong-pw"),
        "{error:?}"
    );
    let error = client(&settings("private", &url))
        .manifest("lab/private", &image.manifest.digest)
        .await
        .expect_err("no credentials");
    assert!(matches!(error, FetchError::Denied(_)), "{error:?}");
}

/// A CA and a certificate for 127.0.0.1 signed by it: (CA PEM, certificate PEM, key PEM).
fn certificates() -> (String, String, String) {
    use rcgen::KeyUsagePurpose::{CrlSign, DigitalSignature, KeyCertSign};
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "regstat test CA");
    ca.key_usages = vec![KeyCertSign, CrlSign, DigitalSignature];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key"))
        .expect("CA certificate");
    let leaf_key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("params")
        .signed_by(&leaf_key, &ca)
        .expect("certificate");
    (ca.pem(), leaf.pem(), leaf_key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_an_extra_ca_or_without_verification() {
    require_tools();
    let mut scratch = Scratch::new();
    let (ca, certificate, key) = certificates();
    let ca_file = scratch.write("ca.pem", ca);
    let options = RegistryOptions {
        htpasswd: None,
        tls: Some((
            scratch.write("cert.pem", certificate),
            scratch.write("key.pem", key),
        )),
        ..RegistryOptions::default()
    };
    let host = scratch.start_registry(&options).await;
    let layout = build_oci_layout(&scratch).await;
    let destination = format!("docker://{host}/lab/tls:v1");
    push(&scratch, &layout, "amd64", &destination, &[]).await;
    let digest = &layout.amd64.manifest.digest;
    let url = format!("https://{host}");

    let mut trusting = settings("tls", &url);
    trusting.ca_file = Some(ca_file);
    let fetched = client(&trusting)
        .manifest("lab/tls", digest)
        .await
        .expect("with the CA file");
    assert_eq!(fetched.manifest.kind, ManifestKind::Image);

    let mut insecure = settings("tls", &url);
    insecure.insecure_skip_verify = true;
    client(&insecure)
        .manifest("lab/tls", digest)
        .await
        .expect("without verification");

    // Neither: the certificate is not trusted.
    let error = client(&settings("tls", &url))
        .manifest("lab/tls", digest)
        .await
        .expect_err("an untrusted certificate");
    assert!(matches!(error, FetchError::Transient(_)), "{error:?}");
    assert!(
        error.to_string().to_lowercase().contains("certificate"),
        "{error}"
    );
}
