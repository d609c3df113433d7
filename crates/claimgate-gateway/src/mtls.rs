//! `mutualTls`: client certificates, verified against `--client-ca`, judged per deployment.
//!
//! Deployments on one listener differ, so the TLS layer asks every client for a certificate but
//! requires none, and accepts any chain the client can prove it holds the key of (the handshake
//! signature is still checked). Right after the handshake the chain is verified once against
//! the client CAs and the result kept with the connection; each request to a deployment with
//! `mutualTls` is then judged on it: a missing or unverified certificate where one is required,
//! or one outside its validity period at the time of the request (a connection may outlive its
//! certificate), is `mutualTls.clientCertificateInvalid`; a verified one whose names are all
//! outside `allowedSans` is `mutualTls.clientCertificateSanInvalid`. Deployments without
//! `mutualTls` never look at it.
//!
//! `allowedSans` entries match names of their own type only, so that a DNS-looking entry
//! cannot be met by an e-mail or URI name the CA let the client choose: an IP literal matches
//! an IP SAN, an entry with `://` a URI SAN (exactly), one with `@` an e-mail SAN, anything else
//! a DNS SAN (ASCII case-insensitively). The subject CN counts, as a DNS name, only when the
//! certificate has no SAN (RFC 6125: a CN is the legacy place for a name, ignored once SANs
//! exist).

use claimgate_config::MutualTls;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// What the TLS listener serves: its configuration, and the client CAs when `--client-ca` is
/// set.
#[derive(Debug, Clone)]
pub struct TlsServer {
    pub config: Arc<rustls::ServerConfig>,
    pub client_auth: Option<Arc<ClientAuth>>,
}

/// The client CAs (`--client-ca`), as the TLS layer's verifier and the per-connection check.
#[derive(Debug)]
pub struct ClientAuth {
    inner: Arc<dyn ClientCertVerifier>,
    /// The CA certificates (DER), to tell whether a reload changed them.
    cas: Vec<CertificateDer<'static>>,
}

impl ClientAuth {
    /// The CAs in a PEM file (one or more certificates).
    pub fn from_pem_file(path: &str) -> Result<Arc<Self>, String> {
        use rustls::pki_types::pem::PemObject as _;
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("cannot read certificates from --client-ca '{path}': {e}"))?;
        if certs.is_empty() {
            return Err(format!("--client-ca '{path}' holds no certificate"));
        }
        let mut roots = RootCertStore::empty();
        let cas = certs.clone();
        for (i, cert) in certs.into_iter().enumerate() {
            roots.add(cert).map_err(|e| {
                format!(
                    "--client-ca '{path}': certificate {} is not a usable CA: {e}",
                    i + 1
                )
            })?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .allow_unauthenticated()
            .build()
            .map_err(|e| format!("--client-ca '{path}': {e}"))?;
        Ok(Arc::new(Self { inner, cas }))
    }

    /// Whether `other` trusts exactly the same CAs.
    pub fn same_cas(&self, other: &Self) -> bool {
        self.cas == other.cas
    }

    /// What a client presented on one connection (its chain, end entity first), verified
    /// against the client CAs now.
    pub fn inspect(&self, chain: Option<&[CertificateDer<'_>]>) -> PeerCertificate {
        let Some((end_entity, intermediates)) = chain.and_then(<[_]>::split_first) else {
            return PeerCertificate::Absent;
        };
        match self
            .inner
            .verify_client_cert(end_entity, intermediates, UnixTime::now())
        {
            Ok(_) => verified(end_entity),
            Err(error) => PeerCertificate::Invalid {
                reason: error.to_string(),
            },
        }
    }
}

impl ClientCertVerifier for ClientAuth {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    /// Every chain passes here; [`ClientAuth::inspect`] judges it after the handshake, so that
    /// a deployment can answer a bad certificate with OCI's 4xx and log code instead of a
    /// broken handshake, and deployments without `mutualTls` are not affected.
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
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

/// The client certificate of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerCertificate {
    /// None was presented.
    Absent,
    /// One was presented but does not chain to the client CAs (or is expired, or not for
    /// client authentication).
    Invalid { reason: String },
    /// Verified at the handshake; what each request needs of it.
    Verified(Box<VerifiedCertificate>),
}

impl PeerCertificate {
    /// `request.cert[client_base64]`: the verified certificate as base64 DER.
    pub(crate) fn client_base64(&self) -> Option<&Arc<str>> {
        match self {
            Self::Verified(cert) => Some(cert.client_base64()),
            _ => None,
        }
    }
}

/// `request.cert[client_base64]` of one request, in its extensions: set only for a deployment
/// with `mutualTls` whose judgement the certificate passed, so a backend never receives a
/// certificate its deployment did not check.
#[derive(Debug, Clone)]
pub(crate) struct ClientCertificate(pub(crate) Arc<str>);

impl ClientCertificate {
    /// Puts the certificate a request passed `mutualTls` with into its extensions.
    pub(crate) fn attach(
        policy: Option<&MutualTls>,
        cert: Option<&PeerCertificate>,
        extensions: &mut http::Extensions,
    ) {
        if let (Some(_), Some(base64)) = (policy, cert.and_then(PeerCertificate::client_base64)) {
            extensions.insert(Self(base64.clone()));
        }
    }
}

/// A client certificate that chained to the client CAs at the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCertificate {
    /// Its alternative names, or its subject CNs when it has none (see the module doc).
    pub names: Vec<CertName>,
    /// `notBefore` and `notAfter`, in seconds since the Unix epoch: every request is judged
    /// against them, since a connection can stay open past the certificate's expiry.
    pub not_before: i64,
    pub not_after: i64,
    /// The certificate's DER.
    der: Box<[u8]>,
    /// `der` in base64 (standard alphabet, padded), made on the first request that needs it:
    /// a connection to deployments without `mutualTls` never pays for it.
    client_base64: std::sync::OnceLock<Arc<str>>,
}

impl VerifiedCertificate {
    /// The certificate's DER in base64 (standard alphabet, padded), made once per connection.
    pub fn client_base64(&self) -> &Arc<str> {
        use base64::Engine as _;
        self.client_base64.get_or_init(|| {
            base64::engine::general_purpose::STANDARD
                .encode(&self.der)
                .into()
        })
    }
}

/// A name a certificate carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertName {
    CommonName(String),
    Dns(String),
    Email(String),
    Uri(String),
    Ip(IpAddr),
}

impl CertName {
    fn text(&self) -> String {
        match self {
            Self::CommonName(s) | Self::Dns(s) | Self::Email(s) | Self::Uri(s) => s.clone(),
            Self::Ip(ip) => ip.to_string(),
        }
    }

    /// Whether an `allowedSans` entry names this, each entry matching names of its own type:
    /// an IP literal an IP address, an entry with `://` a URI (exactly), one with `@` an
    /// e-mail address, anything else a DNS name or CN (ASCII case-insensitively).
    fn matches(&self, allowed: &str) -> bool {
        if let Ok(ip) = allowed.parse::<IpAddr>() {
            return matches!(self, Self::Ip(own) if *own == ip);
        }
        if allowed.contains("://") {
            return matches!(self, Self::Uri(own) if own == allowed);
        }
        if allowed.contains('@') {
            return matches!(self, Self::Email(own) if own.eq_ignore_ascii_case(allowed));
        }
        matches!(self, Self::Dns(own) | Self::CommonName(own) if own.eq_ignore_ascii_case(allowed))
    }
}

/// What a request needs of a certificate verified at the handshake.
fn verified(der: &CertificateDer<'_>) -> PeerCertificate {
    // The verifier parsed it; should this parser not, it is refused like an unverified one.
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return PeerCertificate::Invalid {
            reason: "the certificate's names and validity cannot be read".to_owned(),
        };
    };
    PeerCertificate::Verified(Box::new(VerifiedCertificate {
        names: names(&cert),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        der: der.as_ref().into(),
        client_base64: std::sync::OnceLock::new(),
    }))
}

/// The subject alternative names of a (verified) certificate, or its subject CNs when it has
/// no SAN at all (a SAN of a type not listed here still hides the CN).
fn names(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<CertName> {
    use x509_parser::extensions::GeneralName;
    let mut names = Vec::new();
    let san = cert.subject_alternative_name();
    let has_san = match &san {
        Ok(Some(san)) => !san.value.general_names.is_empty(),
        Ok(None) => false,
        // A SAN extension that does not parse (or is repeated): the CN does not stand in.
        Err(_) => true,
    };
    if !has_san {
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(|cn| CertName::CommonName(cn.to_owned())),
        );
    }
    if let Ok(Some(san)) = san {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(s) => names.push(CertName::Dns((*s).to_owned())),
                GeneralName::RFC822Name(s) => names.push(CertName::Email((*s).to_owned())),
                GeneralName::URI(s) => names.push(CertName::Uri((*s).to_owned())),
                GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                        _ => None,
                    };
                    names.extend(ip.map(CertName::Ip));
                }
                _ => {}
            }
        }
    }
    names
}

/// Why a request was refused by `mutualTls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The execution log code.
    pub(crate) code: &'static str,
    /// OCI's message for it.
    pub(crate) message: &'static str,
    /// What was wrong, for the log record.
    pub(crate) detail: String,
    /// The certificate's names (SAN failures only).
    pub(crate) names: Vec<String>,
}

pub(crate) const CERTIFICATE_INVALID: &str = "mutualTls.clientCertificateInvalid";
pub(crate) const SAN_INVALID: &str = "mutualTls.clientCertificateSanInvalid";

/// Judges a connection's certificate (`None` when the listener has no client CAs) against a
/// deployment's `mutualTls`, now. `isVerifiedCertificateRequired: false` makes the certificate
/// optional: a request without one passes, a presented one must still verify, be within its
/// validity period and match `allowedSans`.
pub(crate) fn check(policy: &MutualTls, cert: Option<&PeerCertificate>) -> Result<(), Refusal> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    check_at(policy, cert, now)
}

/// [`check`] at `now` (seconds since the Unix epoch).
pub(crate) fn check_at(
    policy: &MutualTls,
    cert: Option<&PeerCertificate>,
    now: i64,
) -> Result<(), Refusal> {
    let invalid = |detail: String| Refusal {
        code: CERTIFICATE_INVALID,
        message: "Client certificate is invalid for this gateway.",
        detail,
        names: Vec::new(),
    };
    match cert.unwrap_or(&PeerCertificate::Absent) {
        PeerCertificate::Absent if policy.verified_certificate_required => {
            Err(invalid("no client certificate was presented".to_owned()))
        }
        PeerCertificate::Absent => Ok(()),
        PeerCertificate::Invalid { reason } => Err(invalid(format!(
            "the client certificate does not verify against --client-ca: {reason}"
        ))),
        PeerCertificate::Verified(cert) if now > cert.not_after => Err(invalid(format!(
            "the client certificate expired at {} (Unix time), after the connection was opened",
            cert.not_after
        ))),
        PeerCertificate::Verified(cert) if now < cert.not_before => Err(invalid(format!(
            "the client certificate is not valid before {} (Unix time)",
            cert.not_before
        ))),
        PeerCertificate::Verified(cert) => {
            let names = &cert.names;
            if policy.allowed_sans.is_empty()
                || names
                    .iter()
                    .any(|n| policy.allowed_sans.iter().any(|a| n.matches(a)))
            {
                return Ok(());
            }
            let mut texts: Vec<String> = Vec::with_capacity(names.len());
            for text in names.iter().map(CertName::text) {
                if !texts.contains(&text) {
                    texts.push(text);
                }
            }
            let names = texts;
            Err(Refusal {
                code: SAN_INVALID,
                message: "SAN validation failure",
                detail: format!(
                    "the client certificate names {} and allowedSans lists none of them",
                    if names.is_empty() {
                        "nothing".to_owned()
                    } else {
                        names.join(", ")
                    }
                ),
                names,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

    fn policy(required: bool, sans: &[&str]) -> MutualTls {
        MutualTls {
            verified_certificate_required: required,
            allowed_sans: sans.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// A verified certificate with these names, valid from 1000 to 2000 (Unix time).
    fn with_names(names: Vec<CertName>) -> PeerCertificate {
        PeerCertificate::Verified(Box::new(VerifiedCertificate {
            names,
            not_before: 1000,
            not_after: 2000,
            der: Box::default(),
            client_base64: std::sync::OnceLock::new(),
        }))
    }

    const NOW: i64 = 1500;

    #[test]
    fn a_required_certificate_must_be_present_and_verified() {
        let required = policy(true, &[]);
        assert_eq!(
            check(&required, None).unwrap_err().code,
            CERTIFICATE_INVALID
        );
        assert_eq!(
            check(&required, Some(&PeerCertificate::Absent))
                .unwrap_err()
                .message,
            "Client certificate is invalid for this gateway."
        );
        let invalid = PeerCertificate::Invalid {
            reason: "invalid peer certificate: UnknownIssuer".into(),
        };
        assert!(check(&required, Some(&invalid))
            .unwrap_err()
            .detail
            .contains("UnknownIssuer"));
        assert!(check_at(&required, Some(&with_names(vec![])), NOW).is_ok());
    }

    #[test]
    fn an_optional_certificate_may_be_absent_but_not_wrong() {
        let optional = policy(false, &["client.a.apigw"]);
        assert!(check(&optional, Some(&PeerCertificate::Absent)).is_ok());
        let invalid = PeerCertificate::Invalid { reason: "x".into() };
        assert_eq!(
            check(&optional, Some(&invalid)).unwrap_err().code,
            CERTIFICATE_INVALID
        );
        let wrong = with_names(vec![CertName::Dns("client.z.apigw".into())]);
        assert_eq!(
            check_at(&optional, Some(&wrong), NOW).unwrap_err().code,
            SAN_INVALID
        );
    }

    #[test]
    fn sans_match_names_of_their_own_type_only() {
        let p = policy(
            true,
            &[
                "client.a.apigw",
                "ops@example.com",
                "10.1.2.3",
                "spiffe://x/y",
            ],
        );
        let ok = |names: Vec<CertName>| check_at(&p, Some(&with_names(names)), NOW).is_ok();
        assert!(ok(vec![CertName::CommonName("CLIENT.A.apigw".into())]));
        assert!(ok(vec![CertName::Dns("client.A.apigw".into())]));
        assert!(ok(vec![CertName::Email("OPS@example.com".into())]));
        assert!(ok(vec![CertName::Ip("10.1.2.3".parse().unwrap())]));
        assert!(ok(vec![CertName::Uri("spiffe://x/y".into())]));
        assert!(!ok(vec![CertName::Uri("SPIFFE://x/y".into())]));
        assert!(!ok(vec![CertName::Dns("client.b.apigw".into())]));
        // The same text under another type is not the allowed name.
        assert!(!ok(vec![CertName::Email("client.a.apigw".into())]));
        assert!(!ok(vec![CertName::Uri("client.a.apigw".into())]));
        assert!(!ok(vec![CertName::Dns("10.1.2.3".into())]));
        assert!(!ok(vec![CertName::CommonName("10.1.2.3".into())]));
        assert!(!ok(vec![CertName::Dns("ops@example.com".into())]));
        assert!(!ok(vec![CertName::Dns("spiffe://x/y".into())]));
        assert!(!ok(vec![CertName::Email("spiffe://x/y".into())]));
        let refusal =
            check_at(&p, Some(&with_names(vec![CertName::Dns("b".into())])), NOW).unwrap_err();
        assert_eq!(refusal.message, "SAN validation failure");
        assert_eq!(refusal.names, ["b"]);
        assert!(!ok(vec![]));
    }

    /// A CA made in the test, its PEM in a file the test removes.
    struct TestCa {
        issuer: Issuer<'static, KeyPair>,
        file: std::path::PathBuf,
    }

    impl Drop for TestCa {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.file);
        }
    }

    fn test_ca(tag: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "test CA");
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let file =
            std::env::temp_dir().join(format!("claimgate-mtls-{tag}-{}.pem", std::process::id()));
        std::fs::write(&file, cert.pem()).unwrap();
        TestCa {
            issuer: Issuer::new(params, key),
            file,
        }
    }

    /// A client certificate from `ca`, with subject CN `cn` and these SANs, valid for an hour
    /// from now; returns its DER.
    fn client_cert(ca: &TestCa, cn: &str, sans: Vec<SanType>) -> CertificateDer<'static> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names = sans;
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(1);
        params.not_after = now + time::Duration::hours(1);
        let key = KeyPair::generate().unwrap();
        params.signed_by(&key, &ca.issuer).unwrap().der().clone()
    }

    fn inspect(ca: &TestCa, der: &CertificateDer<'static>) -> PeerCertificate {
        let auth = ClientAuth::from_pem_file(ca.file.to_str().unwrap()).unwrap();
        auth.inspect(Some(std::slice::from_ref(der)))
    }

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    #[test]
    fn a_certificate_that_expires_on_an_open_connection_is_refused_from_then_on() {
        let ca = test_ca("expiry");
        let der = client_cert(&ca, "client.a.apigw", vec![]);
        let peer = inspect(&ca, &der);
        let PeerCertificate::Verified(cert) = &peer else {
            panic!("{peer:?}")
        };
        let expected = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der);
        assert_eq!(&**cert.client_base64(), expected);
        assert!(cert.not_after - now() > 3500 && cert.not_after - now() <= 3600);
        let p = policy(true, &["client.a.apigw"]);
        assert!(check_at(&p, Some(&peer), now()).is_ok());
        assert!(check_at(&p, Some(&peer), cert.not_after).is_ok());
        let expired = check_at(&p, Some(&peer), cert.not_after + 1).unwrap_err();
        assert_eq!(expired.code, CERTIFICATE_INVALID);
        assert!(expired.detail.contains("expired"), "{}", expired.detail);
        let early = check_at(&p, Some(&peer), cert.not_before - 1).unwrap_err();
        assert_eq!(early.code, CERTIFICATE_INVALID);
        // An optional certificate that expired is not an absent one.
        let optional = policy(false, &["client.a.apigw"]);
        assert!(check_at(&optional, Some(&peer), cert.not_after + 1).is_err());
    }

    #[test]
    fn the_subject_cn_counts_only_without_sans_and_each_san_by_its_type() {
        let ca = test_ca("sans");
        let ia5 = |s: &str| s.to_owned().try_into().unwrap();
        let by_cn = policy(true, &["client.a.apigw"]);
        let judge = |p: &MutualTls, der: &CertificateDer<'static>| {
            check_at(p, Some(&inspect(&ca, der)), now())
        };
        // CN alone: it counts.
        let cn_only = client_cert(&ca, "client.a.apigw", vec![]);
        assert!(judge(&by_cn, &cn_only).is_ok());
        // The same CN next to another DNS SAN: only the SAN counts.
        let cn_and_san = client_cert(
            &ca,
            "client.a.apigw",
            vec![SanType::DnsName(ia5("other.apigw"))],
        );
        let refusal = judge(&by_cn, &cn_and_san).unwrap_err();
        assert_eq!(refusal.code, SAN_INVALID);
        assert_eq!(refusal.names, ["other.apigw"]);
        // An e-mail SAN whose text is the allowed DNS name does not match it.
        let as_email = client_cert(
            &ca,
            "someone",
            vec![SanType::Rfc822Name(ia5("client.a.apigw"))],
        );
        assert_eq!(judge(&by_cn, &as_email).unwrap_err().code, SAN_INVALID);
        // Each type by its own entries.
        let typed = client_cert(
            &ca,
            "client.a.apigw",
            vec![
                SanType::IpAddress("10.1.2.3".parse().unwrap()),
                SanType::Rfc822Name(ia5("ops@example.com")),
                SanType::URI(ia5("spiffe://x/y")),
                SanType::DnsName(ia5("API.example")),
            ],
        );
        for entry in ["10.1.2.3", "OPS@example.com", "spiffe://x/y", "api.EXAMPLE"] {
            assert!(judge(&policy(true, &[entry]), &typed).is_ok(), "{entry}");
        }
        for entry in [
            "client.a.apigw",
            "10.1.2.4",
            "spiffe://x/Y",
            "ops@example.org",
        ] {
            assert!(judge(&policy(true, &[entry]), &typed).is_err(), "{entry}");
        }
    }
}
