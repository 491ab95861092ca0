//! rustls configurations for NTS-KE: TLS 1.3 only (RFC 8915 §3), ALPN `ntske/1`, the ring
//! provider given explicitly (so no process-wide default is needed).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use sundial_proto::nts::ke::ALPN;

/// The system CA bundle (Debian's ca-certificates), used when no `ca` is configured.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The largest PEM file read: Debian's whole CA bundle is about 220 KiB.
const MAX_PEM: u64 = 4 << 20;

/// Reads a PEM file the way the configuration is read ([`crate::safefile::read_config`]):
/// links are followed, as `/etc/ssl/certs` and certbot's `live/` directories need, but a FIFO
/// is refused instead of blocking start-up and a device or a huge file stops at [`MAX_PEM`].
fn read_pem(path: &Path) -> Result<Vec<u8>, String> {
    crate::safefile::read_config(path, MAX_PEM).map_err(|e| e.to_string())
}

/// Every certificate in the PEM file at `path`.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(&read_pem(path)?)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[expect(
    deprecated,
    reason = "ring offers no post-quantum key exchange; NTS-KE needs none, and ring builds in seconds"
)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// The NTS-KE server's TLS configuration from a PEM certificate chain and private key.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let chain = certificates(cert)?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_slice(&read_pem(key)?)
        .map_err(|e| format!("{}: {e}", key.display()))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(Arc::new(config))
}

/// The TLS configuration of a key exchange with a server verified against the CAs in `ca`
/// (PEM), or with no verification at all when `noval` (tests only).
pub fn client_config(ca: &Path, noval: bool) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?;
    let mut config = if noval {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(
                provider().signature_verification_algorithms,
            )))
            .with_no_client_auth()
    } else {
        let certs = certificates(ca)?;
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(format!("{}: no usable CA certificate", ca.display()));
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(Arc::new(config))
}

/// `noval`: accepts any certificate, but still checks the handshake signatures (so the peer
/// at least holds the key of the certificate it sent).
struct NoVerification(WebPkiSupportedAlgorithms);

impl fmt::Debug for NoVerification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NoVerification")
    }
}

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safefile::tests::{mkfifo, scratch};

    #[test]
    fn a_fifo_as_certificate_key_or_ca_is_refused_without_waiting() {
        let dir = scratch("tls-fifo");
        let fifo = dir.join("fifo.pem");
        mkfifo(&fifo);
        let started = std::time::Instant::now();
        let cert = server_config(&fifo, &fifo).expect_err("a FIFO is no certificate");
        let ca = client_config(&fifo, false).expect_err("a FIFO is no CA file");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        for err in [cert, ca] {
            assert!(err.contains("is not a regular file"), "{err}");
        }
        std::fs::remove_dir_all(dir).expect("clean up");
    }

    #[test]
    fn an_endless_device_as_ca_file_is_read_only_up_to_the_limit() {
        let err = client_config(Path::new("/dev/zero"), false).expect_err("not PEM");
        assert!(err.contains("/dev/zero"), "{err}");
        assert!(err.contains(&MAX_PEM.to_string()), "{err}");
    }

    #[test]
    fn certificate_key_and_ca_reached_through_symbolic_links_are_read() {
        // Debian's CA bundle lies behind links in /etc/ssl/certs, certbot's files behind
        // links in live/: configuration files are root's, and links in them are followed.
        let dir = scratch("tls-link");
        let (cert, key) = (dir.join("real-cert.pem"), dir.join("real-key.pem"));
        let status = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
            .args(["-subj", "/CN=127.0.0.1", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl");
        assert!(status.success());
        let (cert_link, key_link) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::os::unix::fs::symlink(&cert, &cert_link).expect("symlink");
        std::os::unix::fs::symlink(&key, &key_link).expect("symlink");
        server_config(&cert_link, &key_link).expect("certificate and key through links");
        client_config(&cert_link, false).expect("a CA file through a link");
        std::fs::remove_dir_all(dir).expect("clean up");
    }
}
