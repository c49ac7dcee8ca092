//! TLS configuration for both sides, with rustls and the `ring` provider.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use super::events::{CoreError, CoreResult, ErrorCode};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn config_err(text: String) -> CoreError {
    CoreError::new(ErrorCode::TlsConfigInvalid, text)
}

/// Reads every certificate of a PEM file.
pub fn load_certs(path: &Path) -> CoreResult<Vec<CertificateDer<'static>>> {
    let data = super::files::read_capped(path, super::files::PEM_MAX)
        .map_err(|e| config_err(format!("cannot read certificate file {}: {e}", path.display())))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut data.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| config_err(format!("bad PEM in {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(config_err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(certs)
}

/// Reads the first private key of a PEM file.
pub fn load_key(path: &Path) -> CoreResult<PrivateKeyDer<'static>> {
    let data = super::files::read_capped(path, super::files::PEM_MAX)
        .map_err(|e| config_err(format!("cannot read key file {}: {e}", path.display())))?;
    rustls_pemfile::private_key(&mut data.as_slice())
        .map_err(|e| config_err(format!("bad PEM in {}: {e}", path.display())))?
        .ok_or_else(|| config_err(format!("{} holds no PEM private key", path.display())))
}

fn root_store(ca: Option<&Path>, with_platform_roots: bool) -> CoreResult<RootCertStore> {
    let mut roots = RootCertStore::empty();
    if with_platform_roots {
        // Unreadable platform certificates are skipped, as every TLS client does.
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
    }
    if let Some(ca) = ca {
        for cert in load_certs(ca)? {
            roots
                .add(cert)
                .map_err(|e| config_err(format!("bad CA certificate in {}: {e}", ca.display())))?;
        }
    }
    Ok(roots)
}

/// Options of a TLS client.
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    pub ca: Option<std::path::PathBuf>,
    pub sni: Option<String>,
    pub insecure: bool,
    /// A client certificate and key (PEM) for servers that ask for one.
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
}

impl ClientTls {
    pub fn config(&self) -> CoreResult<Arc<ClientConfig>> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| config_err(e.to_string()))?;
        let builder = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider())))
        } else {
            builder.with_root_certificates(root_store(self.ca.as_deref(), true)?)
        };
        let config = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
                .map_err(|e| {
                    config_err(format!(
                        "client certificate {} and key {} do not fit together: {e}",
                        cert.display(),
                        key.display()
                    ))
                })?,
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(config_err("--cert and --key go together".into())),
        };
        Ok(Arc::new(config))
    }

    pub fn server_name(&self, host: &str) -> CoreResult<ServerName<'static>> {
        let name = self.sni.as_deref().unwrap_or(host);
        ServerName::try_from(name.to_string()).map_err(|e| {
            CoreError::new(
                ErrorCode::TlsConfigInvalid,
                format!("bad TLS server name {name:?}: {e}"),
            )
        })
    }
}

/// Options of a TLS listener.
#[derive(Clone, Debug, Default)]
pub struct ServerTls {
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
    /// Require client certificates signed by this CA.
    pub client_ca: Option<std::path::PathBuf>,
}

/// A ready server config, and the fingerprint of the self-signed
/// certificate when one was made.
pub struct ServerSetup {
    pub config: Arc<ServerConfig>,
    pub fingerprint: Option<String>,
}

impl ServerTls {
    pub fn config(&self) -> CoreResult<ServerSetup> {
        let (certs, key, fingerprint) = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => (load_certs(cert)?, load_key(key)?, None),
            (None, None) => {
                let (cert, key) = self_signed()?;
                let fp = fingerprint(&cert);
                (vec![cert], key, Some(fp))
            }
            _ => {
                return Err(config_err(
                    "--cert and --key go together (or give neither for a self-signed certificate)".into(),
                ));
            }
        };
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| config_err(e.to_string()))?;
        let builder = match &self.client_ca {
            Some(ca) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(root_store(Some(ca), false)?),
                    provider(),
                )
                .build()
                .map_err(|e| config_err(format!("client CA {}: {e}", ca.display())))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder.with_single_cert(certs, key).map_err(|e| {
            config_err(format!(
                "certificate {} and key {} do not fit together: {e}",
                self.cert
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                self.key
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ))
        })?;
        Ok(ServerSetup {
            config: Arc::new(config),
            fingerprint,
        })
    }
}

/// A certificate for `localhost`, `127.0.0.1` and `::1`, made on the spot.
pub fn self_signed() -> CoreResult<(CertificateDer<'static>, PrivateKeyDer<'static>)> {
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let ck = rcgen::generate_simple_self_signed(names)
        .map_err(|e| config_err(format!("cannot make a self-signed certificate: {e}")))?;
    let key = PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    Ok((ck.cert.der().clone(), key))
}

/// SHA-256 of a certificate, as `AB:CD:…` like `openssl x509 -fingerprint`.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Maps a failed handshake to `TLS_HANDSHAKE_FAILED` with rustls's reason.
pub fn handshake_error(peer: &str, err: std::io::Error) -> CoreError {
    let reason = match err.get_ref() {
        Some(inner) => inner.to_string(),
        None => err.to_string(),
    };
    CoreError::new(
        ErrorCode::TlsHandshakeFailed,
        format!("TLS handshake with {peer} failed: {reason}"),
    )
}

/// `--insecure`: accepts any server certificate, but still checks the
/// handshake signatures so the connection itself is sound.
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
