//! TLS to backends whose servers a private CA signs (PostgreSQL's
//! `sslrootcert`, NATS's `ca_file`): certificates and keys read from PEM
//! files, the checks made of a server's certificate, and its failures in
//! words an operator can act on.

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The certificates of a PEM file; an error if it has none, so a file of
/// the wrong kind (a key, DER) is caught when the configuration loads.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not a PEM file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{} has no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

/// The CA certificates of a PEM file, as the only roots to trust.
pub fn read_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots
            .add(cert)
            .map_err(|e| format!("{} holds a certificate that cannot be a root: {e}", path.display()))?;
    }
    Ok(roots)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1), decrypted with
/// `passphrase` if it is an encrypted PKCS#8 key (`ENCRYPTED PRIVATE KEY`,
/// what `openssl genpkey -aes256` and OpenSSL 3's `genrsa -aes256` write).
pub fn read_key(path: &Path, passphrase: Option<&str>) -> Result<PrivateKeyDer<'static>, KeyError> {
    let bytes = std::fs::read(path).map_err(|e| KeyError::Unusable(format!("cannot read {}: {e}", path.display())))?;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(KeyError::Unusable(format!(
            "{} holds a key encrypted the way older OpenSSL did (Proc-Type: 4,ENCRYPTED), which Atoll does not read: convert it to an encrypted PKCS#8 key (`openssl pkcs8 -topk8 -v2 aes-256-cbc -in {} -out FILE`) or write a decrypted copy (`openssl pkey -in {} -out FILE`)",
            path.display(),
            path.display(),
            path.display()
        )));
    }
    if let Some(block) = pem_block(&text, "ENCRYPTED PRIVATE KEY") {
        let Some(passphrase) = passphrase else {
            return Err(KeyError::Locked(path.display().to_string()));
        };
        return decrypt(path, block, passphrase);
    }
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        KeyError::Unusable(format!(
            "{} has no private key in it (expected PEM): {e}",
            path.display()
        ))
    })
}

/// Why a key file cannot be used.
#[derive(Debug)]
pub enum KeyError {
    /// The key is encrypted and no passphrase was given (its path).
    Locked(String),
    /// Anything else, in words.
    Unusable(String),
}

impl KeyError {
    /// In words; for a locked key, what to do about it: `unlock` names the
    /// setting its passphrase goes in, where there is one.
    pub fn explain(self, unlock: Option<&str>) -> String {
        let path = match self {
            KeyError::Unusable(message) => return message,
            KeyError::Locked(path) => path,
        };
        let decrypt = format!(
            "write a decrypted copy readable only by Atoll's user (`openssl pkey -in {path} -out FILE`, which asks for the passphrase) and name that"
        );
        match unlock {
            Some(setting) => {
                format!("{path} holds an encrypted private key: give its passphrase as {setting}, or {decrypt}")
            }
            None => {
                format!("{path} holds an encrypted private key, and Atoll reads only unencrypted ones here: {decrypt}")
            }
        }
    }
}

/// The text of the first PEM block labelled `label`, its markers included.
fn pem_block<'t>(text: &'t str, label: &str) -> Option<&'t str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let from = text.find(&begin)?;
    let to = from + text[from..].find(&end)? + end.len();
    Some(&text[from..to])
}

/// An encrypted PKCS#8 key (PBES2: PBKDF2 or scrypt, with AES-CBC), as the
/// plain PKCS#8 key it holds.
fn decrypt(path: &Path, block: &str, passphrase: &str) -> Result<PrivateKeyDer<'static>, KeyError> {
    const READ: &str = "Atoll reads PBES2 with PBKDF2 or scrypt and AES-CBC, what OpenSSL 3 writes; convert another with `openssl pkcs8 -topk8 -v2 aes-256-cbc`";
    let unusable = |why: String| KeyError::Unusable(format!("{}: {why}", path.display()));
    let (_, der) = pkcs8::der::pem::decode_vec(block.as_bytes())
        .map_err(|e| unusable(format!("its encrypted private key is not valid PEM: {e}")))?;
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
        .map_err(|e| unusable(format!("its encrypted private key cannot be read ({e}): {READ}")))?;
    match info.decrypt(passphrase) {
        Ok(plain) => Ok(PrivateKeyDer::Pkcs8(plain.as_bytes().to_vec().into())),
        // A wrong passphrase shows as bad padding (which pkcs5 0.7 reports
        // as `EncryptFailed`), or as bytes that are not a key when the
        // padding happens to pass.
        Err(
            pkcs8::Error::EncryptedPrivateKey(pkcs8::pkcs5::Error::DecryptFailed | pkcs8::pkcs5::Error::EncryptFailed)
            | pkcs8::Error::Asn1(_),
        ) => Err(unusable("the passphrase given does not decrypt its private key".into())),
        Err(e) => Err(unusable(format!(
            "its private key is encrypted in a way Atoll does not read ({e}): {READ}"
        ))),
    }
}

/// Checks that `key`, read from `key_path`, belongs to the certificate in
/// `cert`: a mismatched pair is otherwise found only by the server, at
/// connect, as a handshake failure that names neither file.
pub fn check_pair(cert: &Path, key_path: &Path, key: PrivateKeyDer<'static>) -> Result<(), String> {
    let provider = rustls::crypto::ring::default_provider();
    rustls::sign::CertifiedKey::from_der(read_certs(cert)?, key, &provider)
        .map(drop)
        .map_err(|e| pair_error(&e, cert, key_path))
}

/// Why the certificate in `cert` and the key in `key` do not make a pair,
/// in words: what rustls says when it pairs them (here, or in a
/// configuration builder that checks the same).
pub fn pair_error(e: &rustls::Error, cert: &Path, key: &Path) -> String {
    match e {
        rustls::Error::InconsistentKeys(_) => format!(
            "the private key in {} is not the key of the certificate in {}",
            key.display(),
            cert.display()
        ),
        e => format!("{} cannot be used as a private key: {e}", key.display()),
    }
}

/// What is checked of a server's certificate, beyond that it is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Signed by the roots, and for the host name connected to.
    ChainAndName,
    /// Signed by the roots, for whatever name (libpq's `verify-ca`): for
    /// servers reached by an address their certificate does not name.
    ChainOnly,
}

/// The checks of a server's certificate against `roots` only.
pub fn verifier(roots: RootCertStore, check: Check) -> Result<Arc<dyn ServerCertVerifier>, String> {
    crate::http::use_ring_for_tls();
    let webpki = WebPkiServerVerifier::builder(Arc::new(roots))
        .build()
        .map_err(|e| format!("cannot check certificates against these roots: {e}"))?;
    Ok(match check {
        Check::ChainAndName => webpki,
        Check::ChainOnly => Arc::new(Judged {
            inner: webpki,
            // The chain is checked before the name, so a name mismatch is
            // the only error that can hide behind it.
            judge: |verdict: Verdict| match verdict {
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
                )) => Ok(ServerCertVerified::assertion()),
                other => other,
            },
        }),
    })
}

/// The system's checks, as PostgreSQL's `sslmode=require` and outbound
/// HTTP make them.
pub fn platform_verifier() -> Result<Arc<dyn ServerCertVerifier>, String> {
    crate::http::use_ring_for_tls();
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let verifier = rustls_platform_verifier::Verifier::new(provider).map_err(|e| format!("cannot set up TLS: {e}"))?;
    Ok(Arc::new(verifier))
}

/// Why the last server certificate was refused, while no later one has
/// been accepted: for a client that reconnects by itself in the
/// background and reports only that it is not connected.
#[derive(Debug, Clone, Default)]
pub struct LastRefusal(Arc<Mutex<Option<rustls::Error>>>);

impl LastRefusal {
    pub fn get(&self) -> Option<rustls::Error> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, e: Option<rustls::Error>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = e;
    }
}

/// `inner`, remembering its verdicts in a [`LastRefusal`].
pub fn remembering(inner: Arc<dyn ServerCertVerifier>) -> (Arc<dyn ServerCertVerifier>, LastRefusal) {
    let last = LastRefusal::default();
    let kept = last.clone();
    let verifier = Judged {
        inner,
        judge: move |verdict: Verdict| {
            kept.set(verdict.as_ref().err().cloned());
            verdict
        },
    };
    (Arc::new(verifier), last)
}

type Verdict = Result<ServerCertVerified, rustls::Error>;

/// `inner`, its verdict on a server's certificate passed through `judge`
/// and its checks of signatures left as they are: the one shape of both
/// adjustments here (remembering a refusal, overlooking a name).
struct Judged<F> {
    inner: Arc<dyn ServerCertVerifier>,
    judge: F,
}

impl<F> std::fmt::Debug for Judged<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Judged")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<F: Fn(Verdict) -> Verdict + Send + Sync> ServerCertVerifier for Judged<F> {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Verdict {
        (self.judge)(
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now),
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The rustls error somewhere in `e`'s chain of causes, if any: clients
/// wrap it in an `io::Error`, whose `source()` skips the error it holds.
pub fn rustls_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(r) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(r);
        }
        next = e.source();
    }
    None
}

/// Why a server's certificate was refused, said plainly; `trusted` says
/// what it was checked against ("the CA in sslrootcert /etc/ca.pem").
pub fn explain(e: &rustls::Error, trusted: &str) -> String {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            format!("the server's certificate is not signed by {trusted}")
        }
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!("the server's certificate is not for the host name connected to ({e})"),
        rustls::Error::InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. }) => {
            format!("the server's certificate has expired ({e})")
        }
        other => format!("TLS handshake failed: {other}"),
    }
}

/// Why the server ended the handshake over the client's certificate, if
/// its alert says so; `presented` names the certificate sent ("sslcert
/// /etc/me.pem"), if any, and `how` says how to give one. A server
/// checks the client's certificate after the client thinks the handshake
/// is done, so this is an alert received, not an error of rustls's own.
pub fn explain_client_refusal(e: &rustls::Error, presented: Option<&str>, how: &str) -> Option<String> {
    use rustls::AlertDescription as Alert;
    let rustls::Error::AlertReceived(alert) = e else {
        return None;
    };
    match (alert, presented) {
        (Alert::CertificateRequired, None) => Some(format!("the server requires a client certificate: {how}")),
        (Alert::UnknownCA, Some(cert)) => Some(format!(
            "the server does not trust the CA that signed the client certificate in {cert} ({e})"
        )),
        (
            Alert::CertificateRequired
            | Alert::BadCertificate
            | Alert::UnsupportedCertificate
            | Alert::CertificateRevoked
            | Alert::CertificateExpired
            | Alert::CertificateUnknown
            | Alert::AccessDenied,
            Some(cert),
        ) => Some(format!("the server refused the client certificate in {cert} ({e})")),
        _ => None,
    }
}
