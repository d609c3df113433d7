//! `mutualTls`: client certificates, verified against `--client-ca`, judged per deployment.
//!
//! Deployments on one listener differ, so the TLS layer asks every client for a certificate but
//! requires none, and accepts any chain the client can prove it holds the key of (the handshake
//! signature is still checked). Right after the handshake the chain is verified once against
//! the client CAs and the result kept with the connection; each request to a deployment with
//! `mutualTls` is then judged on it: a missing or unverified certificate where one is required
//! is `mutualTls.clientCertificateInvalid`, a verified one whose subject CN and alternative
//! names are all outside `allowedSans` is `mutualTls.clientCertificateSanInvalid`. Deployments
//! without `mutualTls` never look at it.

use claimgate_config::MutualTls;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use std::net::IpAddr;
use std::sync::Arc;

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
            Ok(_) => PeerCertificate::Verified {
                names: names(end_entity),
            },
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
    /// Verified; its subject CNs and alternative names.
    Verified { names: Vec<CertName> },
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

    /// Whether an `allowedSans` entry names this: DNS names, CNs and e-mail addresses compare
    /// case-insensitively, URIs exactly, IP addresses as addresses.
    fn matches(&self, allowed: &str) -> bool {
        match self {
            Self::CommonName(s) | Self::Dns(s) | Self::Email(s) => s.eq_ignore_ascii_case(allowed),
            Self::Uri(s) => s == allowed,
            Self::Ip(ip) => allowed.parse::<IpAddr>().is_ok_and(|a| a == *ip),
        }
    }
}

/// The subject CNs and subject alternative names of a (verified) certificate.
fn names(der: &CertificateDer<'_>) -> Vec<CertName> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return Vec::new();
    };
    let mut names: Vec<CertName> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .map(|cn| CertName::CommonName(cn.to_owned()))
        .collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
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
/// deployment's `mutualTls`. `isVerifiedCertificateRequired: false` makes the certificate
/// optional: a request without one passes, a presented one must still verify and match
/// `allowedSans`.
pub(crate) fn check(policy: &MutualTls, cert: Option<&PeerCertificate>) -> Result<(), Refusal> {
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
        PeerCertificate::Verified { names } => {
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

    fn policy(required: bool, sans: &[&str]) -> MutualTls {
        MutualTls {
            verified_certificate_required: required,
            allowed_sans: sans.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn verified(names: Vec<CertName>) -> PeerCertificate {
        PeerCertificate::Verified { names }
    }

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
        assert!(check(&required, Some(&verified(vec![]))).is_ok());
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
        let wrong = verified(vec![CertName::Dns("client.z.apigw".into())]);
        assert_eq!(
            check(&optional, Some(&wrong)).unwrap_err().code,
            SAN_INVALID
        );
    }

    #[test]
    fn sans_match_the_cn_or_any_alternative_name() {
        let p = policy(
            true,
            &[
                "client.a.apigw",
                "ops@example.com",
                "10.1.2.3",
                "spiffe://x/y",
            ],
        );
        let ok = |names: Vec<CertName>| check(&p, Some(&verified(names))).is_ok();
        assert!(ok(vec![CertName::CommonName("CLIENT.A.apigw".into())]));
        assert!(ok(vec![
            CertName::CommonName("someone".into()),
            CertName::Dns("client.a.apigw".into())
        ]));
        assert!(ok(vec![CertName::Email("OPS@example.com".into())]));
        assert!(ok(vec![CertName::Ip("10.1.2.3".parse().unwrap())]));
        assert!(ok(vec![CertName::Uri("spiffe://x/y".into())]));
        assert!(!ok(vec![CertName::Uri("SPIFFE://x/y".into())]));
        assert!(!ok(vec![CertName::Dns("client.b.apigw".into())]));
        let refusal = check(&p, Some(&verified(vec![CertName::Dns("b".into())]))).unwrap_err();
        assert_eq!(refusal.message, "SAN validation failure");
        assert_eq!(refusal.names, ["b"]);
        assert!(!ok(vec![]));
    }
}
