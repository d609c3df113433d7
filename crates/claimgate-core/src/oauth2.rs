//! The `OAUTH2` browser login flow as pure steps (SPEC "OAUTH2: the browser login flow"):
//! what the gateway sends the browser to, what it checks when the browser comes back, what a
//! session holds and when it ends, and where logout may lead.
//!
//! Nothing here does I/O, reads a clock or draws random bytes: the gateway passes `now`, the
//! random values, the discovery document's endpoints and the key set, and seals what this
//! module serializes ([`FlowState`], [`Session`]) with its `--session-key`.

use crate::check::{Check, CheckId, TimeContext};
use crate::claims::Claims;
use crate::path::query_name_is;
use crate::time::UnixTime;
use crate::verdict::KeyMaterial;
use claimgate_config::JwtPolicy;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// How long a login may take between the redirect to the provider and the callback.
pub const FLOW_TTL_SECONDS: i64 = 600;
/// The name of the session cookie (split into `_1`, `_2`, ... above [`COOKIE_CHUNK`] bytes).
pub const SESSION_COOKIE: &str = "claimgate_session";
/// The start of a per-flow cookie's name; the rest is the flow id (the `state`'s start).
pub const FLOW_COOKIE_PREFIX: &str = "claimgate_flow_";
/// How many characters of `state` name its flow cookie.
pub const FLOW_ID_LEN: usize = 12;
/// The largest cookie value written; longer sessions are split.
pub const COOKIE_CHUNK: usize = 4000;
/// The most session cookie chunks read (a session is a few KiB).
pub const MAX_CHUNKS: usize = 8;

/// What the gateway remembers of one login while the browser is at the provider: sealed into
/// the flow cookie, so any replica can take the callback.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowState {
    /// The `state` sent to the provider (its first [`FLOW_ID_LEN`] characters name the cookie).
    pub state: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE verifier, when `usePkce`.
    pub verifier: Option<String>,
    /// The redirect URI sent (the code exchange repeats it).
    pub redirect_uri: String,
    /// Where the browser goes once logged in: a path (and query) in this gateway, never a URL.
    pub resume: String,
    /// When the flow began (unix seconds).
    pub created: i64,
}

/// A logged-in browser: sealed into the session cookie or the `X-APIGW-TOKEN` header.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id_token: String,
    pub access_token: String,
    /// The session ends then (unix seconds): `maxExpiryDurationInHours`, never past the access
    /// token's own end.
    pub expires: i64,
    /// The `X-CSRF-TOKEN` non-safe methods must send back.
    pub csrf: String,
}

// Secrets never reach a log through `{:?}`.
impl std::fmt::Debug for FlowState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowState")
            .field("resume", &self.resume)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl FlowState {
    /// Whether the flow is still young enough to finish at `now`.
    pub fn is_fresh(&self, now: UnixTime) -> bool {
        now.0 >= self.created && now.0 - self.created <= FLOW_TTL_SECONDS
    }

    /// The name of this flow's cookie.
    pub fn cookie_name(&self) -> String {
        flow_cookie_name(&self.state).unwrap_or_default()
    }
}

impl Session {
    /// Whether the session is still valid at `now`.
    pub fn is_live(&self, now: UnixTime) -> bool {
        now.0 < self.expires
    }
}

/// The flow cookie's name for a `state` value; `None` when `state` is too short or holds
/// characters a cookie name may not.
pub fn flow_cookie_name(state: &str) -> Option<String> {
    let id = state.get(..FLOW_ID_LEN)?;
    id.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        .then(|| format!("{FLOW_COOKIE_PREFIX}{id}"))
}

/// Whether a request that failed authentication is sent to the provider (a navigation) or
/// answered 401: `Sec-Fetch-Mode` present and not `navigate` means script (`fetch`, XHR).
pub fn wants_redirect(sec_fetch_mode: Option<&str>) -> bool {
    sec_fetch_mode.is_none_or(|mode| mode.trim().eq_ignore_ascii_case("navigate"))
}

/// Where a login that began with `method` on `original` (a path and query) resumes: GET and
/// HEAD return to it, other methods go to `fallbackRedirectPath` in the deployment (or its
/// root without one).
pub fn resume_target(method: &str, original: &str, prefix: &str, fallback: Option<&str>) -> String {
    // Only a path of this gateway: `//host` or a backslash would let a crafted link send the
    // browser elsewhere once logged in (an open redirect).
    let local = original.starts_with('/')
        && !original.starts_with("//")
        && !original.contains('\\')
        && !original.chars().any(char::is_control);
    if (method == "GET" || method == "HEAD") && local {
        return original.to_owned();
    }
    let fallback = if method == "GET" || method == "HEAD" {
        None
    } else {
        fallback
    };
    deployment_path(prefix, fallback.unwrap_or("/"))
}

/// A path of the deployment as a path of the gateway (`/` prefix adds nothing).
pub fn deployment_path(prefix: &str, path: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    format!("{prefix}{path}")
}

/// The redirect status: 303 after a request with a body-bearing method (the browser then
/// GETs), 302 otherwise.
pub fn redirect_status(method: &str) -> u16 {
    if method == "GET" || method == "HEAD" {
        302
    } else {
        303
    }
}

/// The authorization request: the provider's `authorization_endpoint` with the code-flow
/// parameters (`code_challenge` is the S256 challenge of the flow's verifier, when PKCE).
pub fn authorization_url(
    endpoint: &str,
    client_id: &str,
    scopes: &[String],
    flow: &FlowState,
    code_challenge: Option<&str>,
) -> String {
    let mut url = String::with_capacity(endpoint.len() + 256);
    url.push_str(endpoint);
    url.push(if endpoint.contains('?') { '&' } else { '?' });
    let scope = scopes.join(" ");
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", flow.redirect_uri.as_str()),
        ("scope", scope.as_str()),
        ("state", flow.state.as_str()),
        ("nonce", flow.nonce.as_str()),
    ];
    if let Some(challenge) = code_challenge {
        pairs.push(("code_challenge", challenge));
        pairs.push(("code_challenge_method", "S256"));
    }
    push_query(&mut url, &pairs);
    url
}

/// Appends `name=value&...` (form-encoded) to `url`.
pub fn push_query(url: &mut String, pairs: &[(&str, &str)]) {
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            url.push('&');
        }
        url.push_str(&form_encode(name));
        url.push('=');
        url.push_str(&form_encode(value));
    }
}

/// `application/x-www-form-urlencoded` / query encoding of one value (unreserved kept).
pub fn form_encode(value: &str) -> String {
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

/// The value of query parameter `name` in `query`, percent-decoded; `None` when absent, not
/// UTF-8, or given twice (a callback with two `state`s is refused, not guessed at).
pub fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    let mut found = None;
    for pair in query?.split('&') {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        if query_name_is(raw_name, name) {
            if found.is_some() {
                return None;
            }
            found = Some(percent_decode(raw_value)?);
        }
    }
    found
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Why a callback was refused: each is a `validationFailurePolicyOAuthStepFailed` record and
/// never a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackFailure {
    /// No `state`, or no flow cookie for it: the login route was called directly (400).
    NoFlow,
    /// The flow cookie did not open or is older than [`FLOW_TTL_SECONDS`].
    FlowExpired,
    /// `state` differs from the flow's.
    StateMismatch,
    /// The provider answered with `error` (and maybe `error_description`).
    ProviderError { error: String },
    /// `iss` differs from the discovery document's issuer (or is missing although the
    /// provider says it sends it): a mix-up attack or a misconfiguration.
    IssuerMismatch { found: Option<String> },
    /// No `code`.
    NoCode,
}

impl CallbackFailure {
    /// The answer's status.
    pub fn status(&self) -> u16 {
        match self {
            Self::NoFlow | Self::NoCode => 400,
            _ => 401,
        }
    }

    /// Says what failed, for the record and the error page (never a value of the request).
    pub fn reason(&self) -> String {
        match self {
            Self::NoFlow => "the login route was called without a login in progress (no state, or no flow cookie for it)".into(),
            Self::FlowExpired => "the login in progress expired or its cookie does not open".into(),
            Self::StateMismatch => "the state parameter does not match the login in progress".into(),
            Self::ProviderError { error } => format!("the identity provider answered error '{}'", crate::escape(error)),
            Self::IssuerMismatch { found: Some(found) } => format!("the iss parameter '{}' is not the provider's issuer", crate::escape(found)),
            Self::IssuerMismatch { found: None } => "the iss parameter is missing although the provider sends it".into(),
            Self::NoCode => "the callback has no code".into(),
        }
    }
}

/// Judges the callback's query against the opened flow: `error`, `state`, `iss`, then `code`
/// (returned). `issuer` is the discovery document's; `iss_required` when it advertises
/// `authorization_response_iss_parameter_supported`.
pub fn judge_callback(
    query: Option<&str>,
    flow: &FlowState,
    now: UnixTime,
    issuer: &str,
    iss_required: bool,
) -> Result<String, CallbackFailure> {
    if !flow.is_fresh(now) {
        return Err(CallbackFailure::FlowExpired);
    }
    let state = query_value(query, "state").ok_or(CallbackFailure::NoFlow)?;
    if !constant_time_eq(state.as_bytes(), flow.state.as_bytes()) {
        return Err(CallbackFailure::StateMismatch);
    }
    if let Some(error) = query_value(query, "error") {
        return Err(CallbackFailure::ProviderError { error });
    }
    match query_value(query, "iss") {
        Some(iss) if iss != issuer => {
            return Err(CallbackFailure::IssuerMismatch { found: Some(iss) })
        }
        None if iss_required => return Err(CallbackFailure::IssuerMismatch { found: None }),
        _ => {}
    }
    query_value(query, "code")
        .filter(|c| !c.is_empty())
        .ok_or(CallbackFailure::NoCode)
}

/// Compares secrets without an early exit on the first differing byte.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Validates the ID token of a code exchange with the core's JOSE and claim checks: the
/// signature by `keys` (the discovery document's `jwks_uri`), `iss` = the provider's issuer,
/// `aud` = the client id, `exp` (with the policy's clock skew), `nonce` = the flow's, and
/// `azp`, when present, = the client id.
/// Returns its claims, or the checks that failed.
pub fn verify_id_token(
    policy: &JwtPolicy,
    raw: &str,
    keys: KeyMaterial<'_>,
    issuer: &str,
    client_id: &str,
    nonce: &str,
    now: UnixTime,
) -> Result<Arc<Claims>, Vec<Check>> {
    let mut id_policy = policy.clone();
    id_policy.issuers = Some(vec![issuer.to_owned()]);
    id_policy.audiences = Some(vec![client_id.to_owned()]);
    id_policy.verify_claims = Vec::new();
    let (checks, payload, verified) = crate::verdict::verify_token_for(&id_policy, raw, keys);
    let mut failed: Vec<Check> = checks
        .into_iter()
        .filter(|c| matches!(c.outcome, crate::check::Outcome::Fail(_)))
        .collect();
    let Some(payload) = payload.filter(|_| verified) else {
        if failed.is_empty() {
            failed.push(Check::skip(
                CheckId::Signature,
                "the ID token did not verify",
            ));
        }
        return Err(failed);
    };
    let time = TimeContext {
        now,
        skew_seconds: policy.max_clock_skew_seconds,
        kebab: false,
    };
    for check in [
        crate::verdict::judge_exp_for(&payload, time),
        crate::verdict::judge_iss_for(&payload, id_policy.issuers.as_deref()),
        crate::verdict::judge_aud_for(&payload, id_policy.audiences.as_deref()),
    ] {
        if matches!(check.outcome, crate::check::Outcome::Fail(_)) {
            failed.push(check);
        }
    }
    let nonce_ok = payload
        .get("nonce")
        .and_then(|n| {
            n.as_str()
                .map(|s| constant_time_eq(s.as_bytes(), nonce.as_bytes()))
        })
        .unwrap_or(false);
    if !nonce_ok {
        failed.push(Check::new(
            CheckId::Claim("nonce".into()),
            crate::check::Outcome::fail(crate::check::Failure::ClaimMismatch {
                key: "nonce".into(),
                actual: serde_json::Value::Null,
                expected: vec!["the login's nonce".into()],
            }),
        ));
    }
    // A token the provider issued to another client (its authorized party) may list this
    // client among several audiences: it is still not this login's (OpenID Connect Core
    // 3.1.3.7, items 4 and 5).
    if let Some(azp) = payload.get("azp") {
        if azp.as_str() != Some(client_id) {
            failed.push(Check::new(
                CheckId::Claim("azp".into()),
                crate::check::Outcome::fail(crate::check::Failure::ClaimMismatch {
                    key: "azp".into(),
                    actual: azp,
                    expected: vec![client_id.into()],
                }),
            ));
        }
    }
    if failed.is_empty() {
        Ok(payload)
    } else {
        Err(failed)
    }
}

/// When a session made at `now` ends: `maxExpiryDurationInHours` from now, never past the
/// access token's `exp` (a JWT or the introspection answer) nor its `expires_in`.
pub fn session_expiry(
    now: UnixTime,
    max_hours: u64,
    access_exp: Option<i64>,
    expires_in: Option<i64>,
) -> i64 {
    let cap = now
        .0
        .saturating_add(i64::try_from(max_hours.saturating_mul(3600)).unwrap_or(i64::MAX));
    let mut end = cap;
    if let Some(exp) = access_exp {
        end = end.min(exp);
    }
    if let Some(seconds) = expires_in.filter(|s| *s > 0) {
        end = end.min(now.0.saturating_add(seconds));
    }
    end
}

/// Whether a non-safe request from a cookie session carries its CSRF token.
pub fn csrf_ok(method: &str, sent: Option<&str>, session: &Session) -> bool {
    if matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE") {
        return true;
    }
    sent.is_some_and(|s| constant_time_eq(s.trim().as_bytes(), session.csrf.as_bytes()))
}

/// Where logout leads, judged against `allowedPostLogoutUris`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostLogout {
    /// No `postLogoutUrl`.
    None,
    /// An absolute URL as given, or a deployment path made a gateway path.
    Allowed(String),
    /// Not allowed (`logoutBackend.redirectError`).
    Refused,
}

/// `postLogoutUrl` against `allowedPostLogoutUris`: listed entries match exactly (a path entry
/// is a path in the deployment); with an empty list only paths in the deployment are allowed.
/// Paths that could leave the gateway (`//host`, backslashes, control characters) never are.
pub fn post_logout_target(url: Option<&str>, allowed: &[String], prefix: &str) -> PostLogout {
    let Some(url) = url else {
        return PostLogout::None;
    };
    let is_path = url.starts_with('/')
        && !url.starts_with("//")
        && !url.contains('\\')
        && !url.chars().any(char::is_control);
    let listed = allowed.iter().any(|a| a == url);
    if is_path && (allowed.is_empty() || listed) {
        return PostLogout::Allowed(deployment_path(prefix, url));
    }
    let absolute = (url.starts_with("https://") || url.starts_with("http://"))
        && !url.chars().any(|c| c.is_control() || c == ' ');
    if absolute && listed {
        return PostLogout::Allowed(url.to_owned());
    }
    PostLogout::Refused
}

/// The values of the cookie `name` in `Cookie` header values (each `a=b; c=d`).
pub fn cookie<'h>(headers: &[&'h str], name: &str) -> Option<&'h str> {
    headers.iter().flat_map(|h| h.split(';')).find_map(|pair| {
        let (n, v) = pair.trim().split_once('=')?;
        (n.trim() == name).then(|| v.trim())
    })
}

/// The session cookie's value: `claimgate_session`, or its chunks `_1`, `_2`, ... joined.
pub fn session_cookie(headers: &[&str]) -> Option<String> {
    if let Some(whole) = cookie(headers, SESSION_COOKIE) {
        return Some(whole.to_owned());
    }
    let mut joined = String::new();
    for i in 1..=MAX_CHUNKS {
        match cookie(headers, &format!("{SESSION_COOKIE}_{i}")) {
            Some(part) => joined.push_str(part),
            None => break,
        }
    }
    (!joined.is_empty()).then_some(joined)
}

/// The session cookie's `(name, value)` pairs for a sealed session: one cookie, or chunks.
/// An empty value clears that cookie: with chunks, the whole cookie an earlier, shorter
/// session left (it is read first, so the new session would never be; a login loop).
pub fn session_cookie_chunks(sealed: &str) -> Vec<(String, &str)> {
    if sealed.len() <= COOKIE_CHUNK {
        return vec![(SESSION_COOKIE.to_owned(), sealed)];
    }
    let chunks = sealed
        .as_bytes()
        .chunks(COOKIE_CHUNK)
        .enumerate()
        .map(|(i, chunk)| {
            (
                format!("{SESSION_COOKIE}_{}", i + 1),
                std::str::from_utf8(chunk).unwrap_or_default(),
            )
        });
    std::iter::once((SESSION_COOKIE.to_owned(), ""))
        .chain(chunks)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow() -> FlowState {
        FlowState {
            state: "abcdefghijklmnopqrstuvwxyz".into(),
            nonce: "n0nce".into(),
            verifier: Some("v".into()),
            redirect_uri: "http://127.0.0.1:8080/app/callback".into(),
            resume: "/app/page?x=1".into(),
            created: 1000,
        }
    }

    #[test]
    fn a_callback_passes_only_with_its_state_issuer_and_code() {
        let f = flow();
        let now = UnixTime(1010);
        let ok = "code=c1&state=abcdefghijklmnopqrstuvwxyz&iss=http%3A%2F%2Fidp";
        assert_eq!(
            judge_callback(Some(ok), &f, now, "http://idp", true),
            Ok("c1".into())
        );
        let wrong_state = "code=c1&state=abcdefghijklmnopqrstuvwxyZ&iss=http%3A%2F%2Fidp";
        assert_eq!(
            judge_callback(Some(wrong_state), &f, now, "http://idp", true),
            Err(CallbackFailure::StateMismatch)
        );
        let two_states = format!("{ok}&state=x");
        assert_eq!(
            judge_callback(Some(&two_states), &f, now, "http://idp", true),
            Err(CallbackFailure::NoFlow)
        );
        let mixed_up = "code=c1&state=abcdefghijklmnopqrstuvwxyz&iss=http%3A%2F%2Fevil";
        assert!(matches!(
            judge_callback(Some(mixed_up), &f, now, "http://idp", true),
            Err(CallbackFailure::IssuerMismatch { .. })
        ));
        let no_iss = "code=c1&state=abcdefghijklmnopqrstuvwxyz";
        assert!(judge_callback(Some(no_iss), &f, now, "http://idp", true).is_err());
        assert!(judge_callback(Some(no_iss), &f, now, "http://idp", false).is_ok());
        let error = "error=access_denied&state=abcdefghijklmnopqrstuvwxyz";
        assert_eq!(
            judge_callback(Some(error), &f, now, "http://idp", false),
            Err(CallbackFailure::ProviderError {
                error: "access_denied".into()
            })
        );
        assert_eq!(
            judge_callback(
                Some(ok),
                &f,
                UnixTime(1000 + FLOW_TTL_SECONDS + 1),
                "http://idp",
                true
            ),
            Err(CallbackFailure::FlowExpired)
        );
    }

    #[test]
    fn navigations_are_redirected_and_scripts_get_401() {
        assert!(wants_redirect(None));
        assert!(wants_redirect(Some("navigate")));
        assert!(!wants_redirect(Some("cors")));
        assert!(!wants_redirect(Some("same-origin")));
    }

    #[test]
    fn only_get_and_head_resume_where_they_began() {
        assert_eq!(
            resume_target("GET", "/app/a?b", "/app", Some("/home")),
            "/app/a?b"
        );
        assert_eq!(
            resume_target("POST", "/app/a", "/app", Some("/home")),
            "/app/home"
        );
        assert_eq!(resume_target("PUT", "/a", "/", None), "/");
        // Never anywhere but this gateway.
        assert_eq!(
            resume_target("GET", "//evil.example/x", "/", Some("/home")),
            "/"
        );
        assert_eq!(
            resume_target("GET", "/\\evil.example", "/app", None),
            "/app/"
        );
        assert_eq!(redirect_status("POST"), 303);
        assert_eq!(redirect_status("GET"), 302);
    }

    #[test]
    fn post_logout_urls_are_listed_or_paths_in_the_deployment() {
        let none: Vec<String> = vec![];
        assert_eq!(
            post_logout_target(Some("/bye"), &none, "/app"),
            PostLogout::Allowed("/app/bye".into())
        );
        assert_eq!(
            post_logout_target(Some("//evil.example/"), &none, "/app"),
            PostLogout::Refused
        );
        assert_eq!(
            post_logout_target(Some("https://evil.example/"), &none, "/app"),
            PostLogout::Refused
        );
        assert_eq!(
            post_logout_target(Some("/\\evil"), &none, "/app"),
            PostLogout::Refused
        );
        let listed = vec!["https://app.example/bye".to_owned(), "/out".to_owned()];
        assert_eq!(
            post_logout_target(Some("https://app.example/bye"), &listed, "/app"),
            PostLogout::Allowed("https://app.example/bye".into())
        );
        assert_eq!(
            post_logout_target(Some("/bye"), &listed, "/app"),
            PostLogout::Refused
        );
        assert_eq!(
            post_logout_target(Some("/out"), &listed, "/"),
            PostLogout::Allowed("/out".into())
        );
        assert_eq!(post_logout_target(None, &listed, "/"), PostLogout::None);
    }

    #[test]
    fn sessions_end_at_the_first_of_their_limits() {
        let now = UnixTime(1_000);
        assert_eq!(session_expiry(now, 1, None, None), 4_600);
        assert_eq!(session_expiry(now, 1, Some(2_000), None), 2_000);
        assert_eq!(session_expiry(now, 1, None, Some(600)), 1_600);
        assert_eq!(session_expiry(now, u64::MAX, None, None), i64::MAX);
    }

    #[test]
    fn csrf_is_required_on_non_safe_methods_only() {
        let session = Session {
            id_token: String::new(),
            access_token: String::new(),
            expires: 0,
            csrf: "token".into(),
        };
        assert!(csrf_ok("GET", None, &session));
        assert!(!csrf_ok("POST", None, &session));
        assert!(!csrf_ok("POST", Some("tokem"), &session));
        assert!(!csrf_ok("DELETE", Some(""), &session));
        assert!(csrf_ok("POST", Some("token"), &session));
    }

    #[test]
    fn sessions_split_into_chunks_and_join_back() {
        let long = "x".repeat(COOKIE_CHUNK * 2 + 5);
        let chunks = session_cookie_chunks(&long);
        // Three chunks, and the whole cookie of an earlier, shorter session cleared: it would
        // be read before the chunks (a new login that never takes).
        assert_eq!(chunks.len(), 4);
        assert_eq!(chunks[0], (SESSION_COOKIE.to_owned(), ""));
        let header: String = chunks
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        assert_eq!(session_cookie(&[&header, "other=1"]).unwrap(), long);
        assert_eq!(
            session_cookie(&["claimgate_session=abc; a=b"]).unwrap(),
            "abc"
        );
        assert_eq!(session_cookie(&["a=b"]), None);
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let text = format!("{:?}", flow());
        assert!(
            !text.contains("n0nce") && !text.contains("abcdefghij"),
            "{text}"
        );
        let session = Session {
            id_token: "idtok".into(),
            access_token: "acctok".into(),
            expires: 5,
            csrf: "csrftok".into(),
        };
        let text = format!("{session:?}");
        assert!(!text.contains("tok"), "{text}");
    }

    #[test]
    fn flow_cookie_names_come_from_safe_states_only() {
        assert_eq!(
            flow_cookie_name("abcdefghijklmnop").as_deref(),
            Some("claimgate_flow_abcdefghijkl")
        );
        assert_eq!(flow_cookie_name("short"), None);
        assert_eq!(flow_cookie_name("abc;defghijklmn"), None);
    }

    #[test]
    fn the_authorization_url_carries_the_flow() {
        let url = authorization_url(
            "http://idp/auth",
            "web",
            &["openid".into(), "profile".into()],
            &flow(),
            Some("chal"),
        );
        assert!(url.starts_with("http://idp/auth?response_type=code&client_id=web&redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fapp%2Fcallback&scope=openid%20profile&state=abcdefghijklmnopqrstuvwxyz&nonce=n0nce"));
        assert!(url.ends_with("&code_challenge=chal&code_challenge_method=S256"));
    }
}
