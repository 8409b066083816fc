//! Checks on TLS files, so that `check-config` and start-up say what is wrong with one (Pingora
//! would panic in its listener setup instead).

use std::path::Path;

use pingora::tls::sign::CertifiedKey;
use pingora::tls::{CryptoProvider, RootCertStore};

/// Parses a listener's certificate chain and key and checks that the key is the certificate's.
/// The error names the file it is about (`"cert"` or `"key"`) and the reason.
pub(crate) fn check_cert_and_key(cert: &Path, key: &Path) -> Result<(), (&'static str, String)> {
    let (cert_s, key_s) = (cert.display().to_string(), key.display().to_string());
    let parsed = pingora::tls::load_certs_and_key_files(&cert_s, &key_s)
        .map_err(|e| ("cert", format!("cannot read {cert_s} or {key_s}: {e}")))?;
    let Some((certs, private_key)) = parsed else {
        // Say which of the two holds nothing usable.
        let holds_cert =
            std::fs::read_to_string(cert).is_ok_and(|t| t.contains("-----BEGIN CERTIFICATE-----"));
        return Err(if holds_cert {
            ("key", format!("{key_s} holds no PEM private key"))
        } else {
            ("cert", format!("{cert_s} holds no PEM certificate"))
        });
    };
    pingora::tls::install_default_crypto_provider();
    let provider = CryptoProvider::get_default()
        .ok_or(("key", "no TLS crypto provider is installed".to_string()))?;
    let signing = provider
        .key_provider
        .load_private_key(private_key)
        .map_err(|e| ("key", format!("{key_s}: not a usable private key: {e}")))?;
    CertifiedKey::new(certs, signing)
        .keys_match()
        .map_err(|e| match e {
            pingora::tls::RusTlsError::InconsistentKeys(_) => (
                "key",
                format!("{key_s} is not the private key of the certificate in {cert_s}"),
            ),
            other => ("cert", format!("{cert_s}: {other}")),
        })
}

/// Parses `upstream.ca_file`: at least one certificate, every PEM item a certificate.
pub(crate) fn check_ca_file(path: &Path) -> Result<(), String> {
    let mut store = RootCertStore::empty();
    pingora::tls::load_ca_file_into_store(path, &mut store)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if store.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(())
}

/// What to do about a TLS failure with the upstream, when rustls's reason has a known fix.
pub(crate) fn upstream_hint(error: &str) -> Option<&'static str> {
    error.contains("CaUsedAsEndEntity").then_some(
        "Onezone's certificate is a CA certificate (basicConstraints CA:TRUE, which \
         `openssl req -x509` sets by default), and rustls refuses a CA as a server's own \
         certificate. Give Onezone a server certificate signed by a CA and put that CA in \
         upstream.ca_file, or re-create the certificate with \
         `-addext basicConstraints=critical,CA:FALSE`",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    #[test]
    fn a_matching_pair_passes() {
        assert_eq!(
            check_cert_and_key(&fixture("test-cert.pem"), &fixture("test-key.pem")),
            Ok(())
        );
    }

    #[test]
    fn mismatched_swapped_and_empty_files_are_named() {
        let (which, why) =
            check_cert_and_key(&fixture("test-cert.pem"), &fixture("other-key.pem")).unwrap_err();
        assert_eq!(which, "key");
        assert!(why.contains("is not the private key"), "{why}");
        let (which, _) =
            check_cert_and_key(&fixture("test-key.pem"), &fixture("test-key.pem")).unwrap_err();
        assert_eq!(which, "cert");
        let (which, _) =
            check_cert_and_key(&fixture("test-cert.pem"), &fixture("test-cert.pem")).unwrap_err();
        assert_eq!(which, "key");
        let (which, _) =
            check_cert_and_key(&fixture("README.md"), &fixture("test-key.pem")).unwrap_err();
        assert_eq!(which, "cert");
    }

    #[test]
    fn ca_files_need_a_certificate() {
        assert_eq!(check_ca_file(&fixture("test-ca.pem")), Ok(()));
        assert!(check_ca_file(&fixture("README.md")).is_err());
        assert!(check_ca_file(&fixture("test-key.pem")).is_err());
    }

    #[test]
    fn the_self_signed_ca_refusal_has_a_hint() {
        assert!(upstream_hint("invalid peer certificate: Other(CaUsedAsEndEntity)").is_some());
        assert!(upstream_hint("UnknownIssuer").is_none());
    }
}
