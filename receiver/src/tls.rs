//! HTTPS: a rustls server configuration from `receiver.tls_cert_file` and
//! `receiver.tls_key_file`.
//!
//! Both set: the receiver serves HTTPS only, on `receiver.listen`. Neither: plain HTTP (the
//! settings refuse one without the other). The files are read once, at start-up; an unreadable
//! or unusable file stops start-up with an error naming the setting and the path. The crypto
//! is aws-lc-rs, the provider lapin and reqwest already bring in (no `ring`).

use regstat_shared::config::ReceiverSettings;
use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The setting naming the certificate chain file.
pub const CERT_SETTING: &str = "receiver.tls_cert_file";
/// The setting naming the private key file.
pub const KEY_SETTING: &str = "receiver.tls_key_file";

/// Why the TLS files cannot be served. Each names the setting and the path.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("{setting} = {path:?}: cannot read the file")]
    Read {
        /// `receiver.tls_cert_file` or `receiver.tls_key_file`.
        setting: &'static str,
        /// The configured path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but holds no usable PEM item.
    #[error("{setting} = {path:?}: {problem}")]
    Pem {
        /// `receiver.tls_cert_file` or `receiver.tls_key_file`.
        setting: &'static str,
        /// The configured path.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// rustls refused the pair (a key that does not match the certificate, an unsupported
    /// key type...).
    #[error(
        "{CERT_SETTING} = {cert:?} with {KEY_SETTING} = {key:?}: not a usable certificate and key"
    )]
    Unusable {
        /// The certificate path.
        cert: PathBuf,
        /// The key path.
        key: PathBuf,
        /// rustls' reason.
        #[source]
        source: rustls::Error,
    },
}

/// The server configuration, or `None` when TLS is not configured.
pub fn server_config(settings: &ReceiverSettings) -> Result<Option<ServerConfig>, TlsError> {
    if settings.tls_cert_file.is_empty() && settings.tls_key_file.is_empty() {
        return Ok(None);
    }
    let cert_path = Path::new(&settings.tls_cert_file);
    let key_path = Path::new(&settings.tls_key_file);
    let certificates = certificates(cert_path)?;
    let key = private_key(key_path)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let unusable = |source| TlsError::Unusable {
        cert: cert_path.to_owned(),
        key: key_path.to_owned(),
        source,
    };
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(unusable)?
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .map_err(unusable)?;
    Ok(Some(config))
}

fn read(setting: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        setting,
        path: path.to_owned(),
        source,
    })
}

fn pem_problem(setting: &'static str, path: &Path, problem: String) -> TlsError {
    TlsError::Pem {
        setting,
        path: path.to_owned(),
        problem,
    }
}

/// Every certificate of a PEM chain file, leaf first.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(CERT_SETTING, path)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_problem(CERT_SETTING, path, format!("invalid PEM: {}", describe(&e))))?;
    if certificates.is_empty() {
        return Err(pem_problem(
            CERT_SETTING,
            path,
            "no PEM certificate (-----BEGIN CERTIFICATE-----) in the file".to_owned(),
        ));
    }
    Ok(certificates)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(KEY_SETTING, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        pem_problem(
            KEY_SETTING,
            path,
            format!(
                "no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {}",
                describe(&e)
            ),
        )
    })
}

/// A PEM error in words (pki-types prints the markers it looked for as byte arrays).
fn describe(error: &pem::Error) -> String {
    match error {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "a {:?} section has no END line (truncated file?)",
            String::from_utf8_lossy(end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => {
            format!("malformed BEGIN line {:?}", String::from_utf8_lossy(line))
        }
        other => other.to_string(),
    }
}
