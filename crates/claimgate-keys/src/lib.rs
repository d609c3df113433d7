//! Identity-provider calls for claimgate: JWKS, discovery documents and RFC 7662 introspection
//! over HTTP(S), with bounded time and size.
//!
//! This is the I/O edge in front of the pure verdict: [`ProviderClient`] turns a URI into a
//! [`JwksParse`], a discovery document or an introspection answer, or into a [`FetchError`] that names the cause (DNS, connect, TLS, timeout, HTTP status, content type,
//! size, parse). Caching, refresh and single-flight belong to the gateway, not here.

#![forbid(unsafe_code)]

use claimgate_jose::{parse_jwks, JwksParse};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The largest JWKS body read (256 KiB); a bigger one is refused, not truncated.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Why a key set could not be obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    Dns(String),
    Connect(String),
    Tls(String),
    Timeout,
    Status(u16),
    ContentType(String),
    /// The body exceeded this many bytes.
    TooLarge(usize),
    Parse(String),
    /// Not attempted: the address or endpoint is one claimgate never calls.
    Refused(String),
    Other(String),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dns(d) => write!(f, "DNS lookup failed ({d})"),
            Self::Connect(d) => write!(f, "connection failed ({d})"),
            Self::Tls(d) => write!(f, "TLS handshake failed ({d})"),
            Self::Timeout => f.write_str("timed out"),
            Self::Status(code) => write!(f, "HTTP status {code}"),
            Self::ContentType(ct) => write!(f, "content type '{ct}' is not JSON"),
            Self::TooLarge(limit) => write!(f, "the body is larger than {limit} bytes"),
            Self::Parse(d) => f.write_str(d),
            Self::Refused(d) => write!(f, "refused: {d}"),
            Self::Other(d) => f.write_str(d),
        }
    }
}

impl std::error::Error for FetchError {}

fn classify(error: &reqwest::Error) -> FetchError {
    if error.is_timeout() {
        return FetchError::Timeout;
    }
    let mut chain = String::new();
    let mut innermost = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = source {
        innermost = e.to_string().to_lowercase();
        chain.push_str(&innermost);
        chain.push(' ');
        source = e.source();
    }
    // The cause itself ("connection refused"), not the chain of wrappers that repeat the URL
    // ("error sending request for url (...) client error (connect) tcp connect error ...").
    let detail = match innermost.rsplit_once(" (os error ") {
        Some((cause, _)) => cause.to_owned(),
        None => innermost,
    };
    if chain.contains("dns")
        || chain.contains("failed to lookup")
        || chain.contains("name or service")
    {
        FetchError::Dns(detail)
    } else if chain.contains("certificate") || chain.contains("tls") || chain.contains("handshake")
    {
        FetchError::Tls(detail)
    } else if error.is_connect() {
        FetchError::Connect(detail)
    } else {
        FetchError::Other(detail)
    }
}

/// What claimgate reads of a discovery document (OIDC Discovery 1.0 / RFC 8414).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryDocument {
    pub issuer: String,
    pub jwks_uri: Option<String>,
    pub introspection_endpoint: Option<String>,
    /// `introspection_endpoint_auth_methods_supported`, empty when absent.
    pub introspection_auth_methods: Vec<String>,
    /// The OAUTH2 login flow's endpoints.
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub end_session_endpoint: Option<String>,
    /// `token_endpoint_auth_methods_supported`, empty when absent.
    pub token_auth_methods: Vec<String>,
    /// `authorization_response_iss_parameter_supported` (RFC 9207).
    pub iss_parameter_supported: bool,
}

impl DiscoveryDocument {
    /// `client_secret_post` only when the provider lists it and not `client_secret_basic`.
    pub fn introspection_uses_post(&self) -> bool {
        let listed = |m: &str| self.introspection_auth_methods.iter().any(|x| x == m);
        listed("client_secret_post") && !listed("client_secret_basic")
    }
}

/// Whether `issuer` is the issuer a discovery document at `uri` must name: OIDC places the
/// document at `issuer + /.well-known/openid-configuration`; RFC 8414 inserts
/// `/.well-known/oauth-authorization-server` between the host and the issuer's path (the
/// suffix form is accepted too, as many providers publish it).
pub fn issuer_matches_uri(issuer: &str, uri: &str) -> bool {
    let base = issuer.trim_end_matches('/');
    if uri == format!("{base}/.well-known/openid-configuration")
        || uri == format!("{base}/.well-known/oauth-authorization-server")
    {
        return true;
    }
    let Some(scheme_end) = base.find("://") else {
        return false;
    };
    let after = &base[scheme_end + 3..];
    let (host, path) = match after.find('/') {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, ""),
    };
    uri == format!(
        "{}{host}/.well-known/oauth-authorization-server{path}",
        &base[..scheme_end + 3]
    )
}

/// Link-local addresses (169.254.0.0/16, fe80::/10, and IPv4 ones mapped into IPv6): cloud
/// metadata services live there, and a file that names one must not reach them.
pub fn is_link_local(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.is_link_local(),
            None => (v6.segments()[0] & 0xffc0) == 0xfe80,
        },
    }
}

/// The address `host` (as in a URL, IPv6 in brackets or not) is a literal of, if any.
fn address_literal(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Whether `host` (as in a URL, IPv6 in brackets or not) is a loopback address or `localhost`.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || address_literal(host).is_some_and(|ip| match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
            IpAddr::V4(v4) => v4.is_loopback(),
        })
}

/// Refuses, before any connection, a URI whose host is a link-local address literal (names
/// are checked where they resolve: [`NoLinkLocal`]).
fn refuse_link_local(uri: &str) -> Result<(), FetchError> {
    let url = reqwest::Url::parse(uri).map_err(|e| FetchError::Other(format!("'{uri}': {e}")))?;
    // The URL parser normalises address literals (`http://2852039166/` is 169.254.169.254).
    let Some(address) = address_literal(url.host_str().unwrap_or_default()) else {
        return Ok(());
    };
    if is_link_local(address) {
        return Err(FetchError::Refused(format!(
            "{address} is a link-local address (169.254.0.0/16, fe80::/10: cloud metadata services), never fetched from"
        )));
    }
    Ok(())
}

/// The resolver of identity-provider calls: the system's, without link-local addresses; a name
/// that resolves only to such addresses is an error, so nothing connects to them.
#[derive(Debug, Clone, Copy)]
struct NoLinkLocal;

impl reqwest::dns::Resolve for NoLinkLocal {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let usable: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| !is_link_local(a.ip()))
                .collect();
            if usable.is_empty() && !found.is_empty() {
                return Err(format!(
                    "refused: {host} resolves only to link-local addresses (169.254.0.0/16, fe80::/10: cloud metadata services), never fetched from"
                )
                .into());
            }
            Ok(Box::new(usable.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether the client secret may be sent to `endpoint`, an `introspection_endpoint` named by
/// the discovery document at `discovery_uri`: only over https (http on loopback only), never
/// weaker in scheme than the discovery URL, and only on the discovery URL's own host unless
/// `allowed` (`--allow-endpoint`) names the endpoint's host. The scheme rules hold whatever
/// `allowed` says: a secret never crosses the network in clear.
pub fn secret_endpoint_allowed(
    discovery_uri: &str,
    endpoint: &str,
    allowed: &[String],
) -> Result<(), String> {
    let parse = |uri: &str| {
        reqwest::Url::parse(uri)
            .ok()
            .filter(|u| u.host_str().is_some())
            .ok_or_else(|| format!("'{uri}' is not an absolute URL with a host"))
    };
    let discovery = parse(discovery_uri)?;
    let target = parse(endpoint)?;
    let host = target.host_str().unwrap_or_default();
    match (discovery.scheme(), target.scheme()) {
        ("https", "https") | ("http", "https") => {}
        ("https", _) => {
            return Err(format!(
                "the introspection_endpoint {endpoint} is weaker in scheme than the discovery URL {discovery_uri}; the client secret is not sent"
            ))
        }
        ("http", "http") if is_loopback_host(host) => {}
        _ => {
            return Err(format!(
                "the introspection_endpoint {endpoint} is not https (plain http only on loopback); the client secret is not sent"
            ))
        }
    }
    let home = discovery.host_str().unwrap_or_default();
    if host.eq_ignore_ascii_case(home) || allowed.iter().any(|a| a.eq_ignore_ascii_case(host)) {
        return Ok(());
    }
    Err(format!(
        "the introspection_endpoint {endpoint} is not on the discovery URL's host '{home}'; the client secret is sent there only with --allow-endpoint {host}"
    ))
}

/// A small HTTP client for the identity-provider calls (discovery, JWKS, introspection): no
/// redirects, bounded time, bodies capped, pooled connections. One for verified TLS, one for
/// `isSslVerifyDisabled`.
#[derive(Debug, Clone)]
pub struct ProviderClient {
    verified: reqwest::Client,
    unverified: reqwest::Client,
}

/// The largest discovery or introspection answer read (64 KiB).
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

impl ProviderClient {
    pub fn new(timeout: Duration) -> Result<Self, FetchError> {
        Self::with_roots(timeout, &[])
    }

    /// A client that also trusts the certificates in `extra_roots` (PEM bundles, from `--ca`)
    /// besides the system roots.
    pub fn with_roots(timeout: Duration, extra_roots: &[Vec<u8>]) -> Result<Self, FetchError> {
        let mut roots = Vec::new();
        for pem in extra_roots {
            roots.extend(
                reqwest::Certificate::from_pem_bundle(pem)
                    .map_err(|e| FetchError::Other(format!("a --ca file is not PEM: {e}")))?,
            );
        }
        let build = |insecure: bool| {
            reqwest::Client::builder()
                .tls_certs_merge(roots.clone())
                .timeout(timeout)
                .connect_timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
                .tls_danger_accept_invalid_certs(insecure)
                .dns_resolver(NoLinkLocal)
                .no_proxy()
                .build()
                .map_err(|e| FetchError::Other(e.to_string()))
        };
        Ok(Self {
            verified: build(false)?,
            unverified: build(true)?,
        })
    }

    fn client(&self, ssl_verify_disabled: bool) -> &reqwest::Client {
        if ssl_verify_disabled {
            &self.unverified
        } else {
            &self.verified
        }
    }

    /// Fetches a discovery document and checks that its `issuer` belongs to `uri`.
    pub async fn discovery(
        &self,
        uri: &str,
        ssl_verify_disabled: bool,
    ) -> Result<DiscoveryDocument, FetchError> {
        refuse_link_local(uri)?;
        let request = self
            .client(ssl_verify_disabled)
            .get(uri)
            .header("accept", "application/json");
        let body = read_json_body(request).await?;
        let document = claimgate_jose::json::parse_object(&body, 16)
            .map_err(|e| FetchError::Parse(format!("not a discovery document: {e}")))?;
        let text = |name: &str| {
            document
                .get(name)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        let issuer = text("issuer")
            .ok_or_else(|| FetchError::Parse("the discovery document has no 'issuer'".into()))?;
        if !issuer_matches_uri(&issuer, uri) {
            return Err(FetchError::Parse(format!(
                "the discovery document's issuer '{issuer}' does not belong to '{uri}'"
            )));
        }
        let list = |name: &str| -> Vec<String> {
            document
                .get(name)
                .and_then(|v| v.as_array())
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|i| i.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(DiscoveryDocument {
            issuer,
            jwks_uri: text("jwks_uri"),
            introspection_endpoint: text("introspection_endpoint"),
            introspection_auth_methods: list("introspection_endpoint_auth_methods_supported"),
            authorization_endpoint: text("authorization_endpoint"),
            token_endpoint: text("token_endpoint"),
            end_session_endpoint: text("end_session_endpoint"),
            token_auth_methods: list("token_endpoint_auth_methods_supported"),
            iss_parameter_supported: document
                .get("authorization_response_iss_parameter_supported")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
        })
    }

    /// Fetches and parses a JWKS with this client's pool.
    pub async fn jwks(
        &self,
        uri: &str,
        ssl_verify_disabled: bool,
    ) -> Result<JwksParse, FetchError> {
        refuse_link_local(uri)?;
        let request = self
            .client(ssl_verify_disabled)
            .get(uri)
            .header("accept", "application/json, application/jwk-set+json");
        let body = read_json_body_capped(request, MAX_JWKS_BYTES).await?;
        parse_jwks(&body).map_err(|e| FetchError::Parse(e.to_string()))
    }

    /// RFC 7662 introspection of `token`, authenticating as the client (`client_secret_basic`,
    /// or `client_secret_post` when `post`). The answer must be a JSON object whose `active`
    /// is a boolean; anything else is an error, never an answer.
    pub async fn introspect(
        &self,
        endpoint: &str,
        token: &str,
        client_id: &str,
        client_secret: &str,
        post: bool,
        ssl_verify_disabled: bool,
    ) -> Result<serde_json::Map<String, serde_json::Value>, FetchError> {
        let form = vec![("token", token), ("token_type_hint", "access_token")];
        let client = ClientCredentials {
            id: client_id,
            secret: client_secret,
            post,
        };
        let body = self
            .post_form_as_client(endpoint, form, &client, ssl_verify_disabled)
            .await?;
        let answer = claimgate_jose::json::parse_object(&body, 16)
            .map_err(|e| FetchError::Parse(format!("the introspection answer is {e}")))?;
        match answer.get("active") {
            Some(serde_json::Value::Bool(_)) => Ok(answer),
            Some(other) => Err(FetchError::Parse(format!(
                "'active' is {other}, not a boolean"
            ))),
            None => Err(FetchError::Parse(
                "the introspection answer has no 'active'".into(),
            )),
        }
    }
}

/// How a confidential client authenticates at a provider's endpoint.
struct ClientCredentials<'a> {
    id: &'a str,
    secret: &'a str,
    /// `client_secret_post` (in the form) rather than `client_secret_basic`.
    post: bool,
}

impl ProviderClient {
    /// POSTs `form` to `endpoint` as the client (introspection, the code exchange) and reads
    /// the answer's body, at most [`MAX_ANSWER_BYTES`]. Link-local addresses are never called.
    async fn post_form_as_client(
        &self,
        endpoint: &str,
        mut form: Vec<(&str, &str)>,
        client: &ClientCredentials<'_>,
        ssl_verify_disabled: bool,
    ) -> Result<Vec<u8>, FetchError> {
        refuse_link_local(endpoint)?;
        let mut request = self
            .client(ssl_verify_disabled)
            .post(endpoint)
            .header("accept", "application/json");
        if client.post {
            form.push(("client_id", client.id));
            form.push(("client_secret", client.secret));
        } else {
            // RFC 6749 §2.3.1: the id and secret are form-urlencoded before Basic encoding.
            request = request.basic_auth(form_encode(client.id), Some(form_encode(client.secret)));
        }
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let request = request
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        read_json_body(request).await
    }
}

impl ProviderClient {
    /// The OAUTH2 code exchange at `endpoint` (`client_secret_basic`, or `client_secret_post`
    /// when `post`): the provider's JSON object answer, or an error for any other status, a
    /// body that is not a JSON object, or one above [`MAX_ANSWER_BYTES`].
    #[allow(clippy::too_many_arguments)]
    pub async fn exchange_code(
        &self,
        endpoint: &str,
        code: &str,
        redirect_uri: &str,
        verifier: Option<&str>,
        client_id: &str,
        client_secret: &str,
        post: bool,
        ssl_verify_disabled: bool,
    ) -> Result<serde_json::Map<String, serde_json::Value>, FetchError> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ];
        if let Some(verifier) = verifier {
            form.push(("code_verifier", verifier));
        }
        let client = ClientCredentials {
            id: client_id,
            secret: client_secret,
            post,
        };
        let body = self
            .post_form_as_client(endpoint, form, &client, ssl_verify_disabled)
            .await?;
        claimgate_jose::json::parse_object(&body, 16)
            .map_err(|e| FetchError::Parse(format!("the token answer is {e}")))
    }

    /// Invokes a function over HTTP the way OCI calls an authorizer: `input` POSTed as JSON,
    /// within `timeout`. Returns the status and the body, whatever the status, read up to
    /// `limit` bytes (a bigger body is [`FetchError::TooLarge`], not truncated). Link-local
    /// addresses are never called.
    pub async fn invoke_function(
        &self,
        url: &str,
        input: Vec<u8>,
        timeout: Duration,
        limit: usize,
    ) -> Result<(u16, Vec<u8>), FetchError> {
        refuse_link_local(url)?;
        let request = self
            .client(false)
            .post(url)
            .timeout(timeout)
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(input);
        let mut response = request.send().await.map_err(|e| classify(&e))?;
        let status = response.status().as_u16();
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(FetchError::TooLarge(limit));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| classify(&e))? {
            if body.len() + chunk.len() > limit {
                return Err(FetchError::TooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }
}

fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

async fn read_json_body(request: reqwest::RequestBuilder) -> Result<Vec<u8>, FetchError> {
    read_json_body_capped(request, MAX_ANSWER_BYTES).await
}

async fn read_json_body_capped(
    request: reqwest::RequestBuilder,
    limit: usize,
) -> Result<Vec<u8>, FetchError> {
    let mut response = request.send().await.map_err(|e| classify(&e))?;
    if !response.status().is_success() {
        return Err(FetchError::Status(response.status().as_u16()));
    }
    if let Some(ct) = response.headers().get("content-type") {
        let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
        if !ct.contains("json") {
            return Err(FetchError::ContentType(ct));
        }
    }
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(FetchError::TooLarge(limit));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| classify(&e))? {
        if body.len() + chunk.len() > limit {
            return Err(FetchError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_issuers_must_belong_to_their_uri() {
        let oidc = "https://idp.example/.well-known/openid-configuration";
        assert!(issuer_matches_uri("https://idp.example", oidc));
        assert!(issuer_matches_uri("https://idp.example/", oidc));
        assert!(!issuer_matches_uri("https://evil.example", oidc));
        assert!(issuer_matches_uri(
            "https://idp.example/tenant",
            "https://idp.example/.well-known/oauth-authorization-server/tenant"
        ));
        assert!(issuer_matches_uri(
            "https://idp.example/tenant",
            "https://idp.example/tenant/.well-known/openid-configuration"
        ));
        assert!(!issuer_matches_uri(
            "https://idp.example/other",
            "https://idp.example/tenant/.well-known/openid-configuration"
        ));
    }

    #[test]
    fn link_local_addresses_are_known_in_every_spelling() {
        for address in [
            "169.254.169.254",
            "169.254.0.1",
            "fe80::1",
            "::ffff:169.254.169.254",
        ] {
            assert!(is_link_local(address.parse().unwrap()), "{address}");
        }
        for address in ["127.0.0.1", "10.0.0.1", "::1", "fec0::1", "2001:db8::1"] {
            assert!(!is_link_local(address.parse().unwrap()), "{address}");
        }
        assert!(matches!(
            refuse_link_local("http://169.254.169.254/latest/meta-data"),
            Err(FetchError::Refused(_))
        ));
        assert!(matches!(
            refuse_link_local("http://[fe80::1]:8080/jwks"),
            Err(FetchError::Refused(_))
        ));
        assert!(matches!(
            refuse_link_local("http://2852039166/"),
            Err(FetchError::Refused(_))
        ));
        assert!(refuse_link_local("https://idp.example/jwks").is_ok());
    }

    #[test]
    fn the_secret_goes_only_to_the_discovery_host_over_a_scheme_as_strong() {
        let allowed = |d: &str, e: &str, a: &[&str]| {
            let a: Vec<String> = a.iter().map(|s| s.to_string()).collect();
            secret_endpoint_allowed(d, e, &a)
        };
        let https = "https://idp.example/.well-known/openid-configuration";
        assert!(allowed(https, "https://idp.example/introspect", &[]).is_ok());
        assert!(allowed(https, "https://IDP.example:8443/introspect", &[]).is_ok());
        let other = allowed(https, "https://evil.example/introspect", &[]).unwrap_err();
        assert!(other.contains("--allow-endpoint evil.example"), "{other}");
        assert!(allowed(https, "https://evil.example/introspect", &["evil.example"]).is_ok());
        let weaker = allowed(https, "http://idp.example/introspect", &["idp.example"]).unwrap_err();
        assert!(weaker.contains("weaker in scheme"), "{weaker}");
        let loopback = "http://127.0.0.1:8080/.well-known/openid-configuration";
        assert!(allowed(loopback, "http://127.0.0.1:9090/introspect", &[]).is_ok());
        assert!(allowed(loopback, "http://127.0.0.2/introspect", &[]).is_err());
        assert!(allowed(loopback, "http://localhost:9/introspect", &["localhost"]).is_ok());
        // Plain http off loopback never carries the secret, allowed or not.
        assert!(allowed(loopback, "http://idp.example/introspect", &["idp.example"]).is_err());
        assert!(allowed(https, "not a url", &[]).is_err());
    }

    #[test]
    fn form_encoding_escapes_reserved_characters() {
        assert_eq!(form_encode("a b&c=d:é"), "a%20b%26c%3Dd%3A%C3%A9");
    }
}
