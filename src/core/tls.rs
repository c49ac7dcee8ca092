//! TLS configuration for both sides, with rustls and the `ring` provider.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use super::error::{CoreError, CoreResult, ErrorCode};

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
        let builder = match &self.ca {
            _ if self.insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider()))),
            Some(ca) => {
                let roots = Arc::new(root_store(Some(ca), true)?);
                let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider())
                    .build()
                    .map_err(|e| config_err(format!("CA {}: {e}", ca.display())))?;
                let verifier = PinnedSelfSigned {
                    webpki,
                    pinned: load_certs(ca)?,
                };
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(verifier))
            }
            None => builder.with_root_certificates(root_store(None, true)?),
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

/// `--ca FILE` verification, plus the one case curl, socat and ncat also
/// accept: a self-signed certificate made with `openssl req -x509` marks
/// itself a CA (CA:TRUE), so a server presenting it as its own is refused
/// by WebPKI (`CaUsedAsEndEntity`). It is accepted when the presented
/// certificate is byte for byte one given in `--ca` and its name and
/// dates check; every other CA used as a leaf stays refused.
#[derive(Debug)]
struct PinnedSelfSigned {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl PinnedSelfSigned {
    fn name_and_dates(
        end_entity: &CertificateDer<'_>,
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        use rustls::CertificateError;
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        cert.verify_is_valid_for_subject_name(server_name)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::NotValidForName))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(end_entity.as_ref())
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let at = x509_parser::time::ASN1Time::from_timestamp(now.as_secs() as i64)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::Expired))?;
        if !parsed.validity().is_valid_at(at) {
            let error = if at < parsed.validity().not_before {
                CertificateError::NotValidYet
            } else {
                CertificateError::Expired
            };
            return Err(rustls::Error::InvalidCertificate(error));
        }
        Ok(())
    }
}

impl ServerCertVerifier for PinnedSelfSigned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict =
            self.webpki
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now);
        match verdict {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)))
                if other.0.downcast_ref::<webpki::Error>() == Some(&webpki::Error::CaUsedAsEndEntity)
                    && self.pinned.iter().any(|p| p.as_ref() == end_entity.as_ref()) =>
            {
                Self::name_and_dates(end_entity, server_name, now)?;
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
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
