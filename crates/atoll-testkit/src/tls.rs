//! Certificates for TLS tests: a CA made by the test itself, and server
//! certificates it signs, as the PEM text real servers and Atoll read.
//! Nothing is committed: every run makes new keys.

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};

/// A certificate authority of the test's own.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its private key, both PEM.
pub struct Issued {
    pub cert: String,
    pub key: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("a CA key");
        TestCa {
            issuer: CertifiedIssuer::self_signed(params, key).expect("signing the CA certificate"),
        }
    }

    /// The CA's own certificate: what a client trusts.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A TLS client configuration trusting this CA only, offering `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> std::sync::Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.issuer.der().clone())
            .expect("the CA's certificate as a root");
        let mut config =
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("TLS 1.2 and 1.3 with ring")
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        std::sync::Arc::new(config)
    }

    /// A certificate for `names` (host names, or IP addresses such as
    /// `127.0.0.1`, which become IP address names as clients expect), for
    /// a server or a client.
    pub fn issue(&self, names: &[&str]) -> Issued {
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("certificate parameters");
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().expect("a key");
        let cert = params.signed_by(&key, &self.issuer).expect("signing a certificate");
        Issued {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// A certificate for `localhost` that a new test CA signed, written to
/// `dir` as `server.pem` and `server.key`: the CA and the two files' paths,
/// as a server under test is given them.
pub fn localhost_certificate(dir: &std::path::Path) -> (TestCa, String, String) {
    let ca = TestCa::new("atoll test CA");
    let issued = ca.issue(&["localhost"]);
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    std::fs::write(&cert, &issued.cert).expect("writing server.pem");
    std::fs::write(&key, &issued.key).expect("writing server.key");
    (ca, cert.display().to_string(), key.display().to_string())
}

impl Issued {
    /// The private key encrypted with `passphrase`, as `openssl genpkey
    /// -aes256` writes one: PKCS#8 `ENCRYPTED PRIVATE KEY`, PBES2 with
    /// PBKDF2-HMAC-SHA256 and AES-256-CBC.
    pub fn sealed_key(&self, passphrase: &str) -> String {
        use pkcs8::der::pem::LineEnding;
        use pkcs8::rand_core::{OsRng, RngCore};
        let (_, der) = pkcs8::der::pem::decode_vec(self.key.as_bytes()).expect("the key's PEM");
        let info = pkcs8::PrivateKeyInfo::try_from(der.as_slice()).expect("a PKCS#8 key");
        let (mut salt, mut iv) = ([0u8; 16], [0u8; 16]);
        OsRng.fill_bytes(&mut salt);
        OsRng.fill_bytes(&mut iv);
        let params =
            pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, &salt, &iv).expect("PBES2 parameters");
        info.encrypt_with_params(params, passphrase)
            .expect("encrypting the key")
            .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
            .expect("PEM")
            .to_string()
    }
}
