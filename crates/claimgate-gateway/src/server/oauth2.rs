//! The `OAUTH2` validation failure policy at the gateway (SPEC "OAUTH2: the browser login
//! flow"): the I/O around the pure steps of `claimgate_core::oauth2`.
//!
//! - Before the verdict ([`Gateway::oauth2_prepare`]): a session (cookie or `X-APIGW-TOKEN`)
//!   that opens under `--session-key` and is still live stands for the token: its access token
//!   is put where the policy reads tokens, judged like any bearer token, and taken out again
//!   before the backend.
//! - After it ([`Gateway::oauth2_answer`]): the login route (the callback: `state`, `iss`,
//!   code exchange, ID token, access token, session), the logout route, the CSRF check of
//!   cookie sessions, and the redirect of a failed navigation to the provider.
//!
//! Nothing secret is logged: records name the step and the reason, never a token, code,
//! verifier, state or cookie value.

use super::phases::{Exchange, Step};
use super::{wall_clock, Gateway, PartsView};
use crate::discovery::{DiscoveredKeys, DiscoveryPolicy};
use crate::keys::Lookup;
use crate::logs::{ExecutionRecord, Level};
use crate::respond::{self, Body};
use crate::session::{Purpose, SessionKeys};
use aws_lc_rs::rand::SecureRandom as _;
use base64::Engine as _;
use claimgate_config::{Authentication, Backend, JwtPolicy, OAuth2Policy, TokenLocation};
use claimgate_core::oauth2::{self as flow, CallbackFailure, FlowState, PostLogout, Session};
use claimgate_core::{Decision, KeyMaterial, UnixTime};
use http::{header, HeaderValue, Response};
use serde_json::json;

const OAUTH: &str = "authentication.validationFailurePolicyOAuth";
const STEP_FAILED: &str = "authentication.validationFailurePolicyOAuthStepFailed";
const IDP_SUCCESS: &str = "authentication.idpCallSuccess";
const IDP_FAILED: &str = "authentication.idpCallFailed";
const REDIRECT_ERROR: &str = "logoutBackend.redirectError";
/// Unfinished logins a browser may hold before their cookies are cleared.
const MAX_OPEN_FLOWS: usize = 4;

/// What the request brought of a session, found before the verdict.
#[derive(Debug, Default)]
pub(super) struct Prepared {
    session: Option<Session>,
    /// The session came as a cookie (then non-safe methods need `X-CSRF-TOKEN`).
    from_cookie: bool,
    /// The header or URI the session's token was put in, to take out again.
    injected: Option<Injected>,
}

#[derive(Debug)]
enum Injected {
    Header(http::HeaderName),
    /// The request's URI before, and the parameter the policy reads.
    Uri(http::Uri, String),
}

/// The deployment's `TOKEN_AUTHENTICATION` policy and its `OAUTH2` failure policy.
fn policies<'a>(x: &Exchange<'a>) -> Option<(&'a JwtPolicy, &'a OAuth2Policy)> {
    let served: &'a super::Served = x.served;
    match &served.deployment.authentication {
        Authentication::Jwt(policy) => policy.oauth2.as_deref().map(|o| (&**policy, o)),
        _ => None,
    }
}

/// What sealed flows and sessions are bound to: the deployment's path prefix and client id
/// (deployments sharing `--session-key` never take each other's sessions or callbacks).
fn binding(x: &Exchange<'_>) -> String {
    let client = x.served.discovery.as_deref().map_or("", |d| d.client_id());
    format!("{} {client}", x.served.deployment.path_prefix).replace(['\r', '\n'], " ")
}

fn random_text(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut buffer)
        .expect("the system's random source works");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buffer)
}

fn s256(verifier: &str) -> String {
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash.as_ref())
}

fn cookie_headers(parts: &http::request::Parts) -> Vec<&str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

/// `uri` without the query parameter `name` (the token parameter a session stood for).
fn without_parameter(uri: &http::Uri, name: &str) -> http::Uri {
    let Some(query) = uri.query() else {
        return uri.clone();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let raw = pair.split_once('=').map_or(*pair, |(n, _)| n);
            !claimgate_core::query_name_is(raw, name)
        })
        .collect();
    let text = if kept.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    text.parse().unwrap_or_else(|_| uri.clone())
}

/// `postLogoutState`: a context variable (`request.query[region]`, or `${...}`) is replaced by
/// its value for this request; anything else is passed as written.
fn post_logout_state(x: &Exchange<'_>, written: &str) -> String {
    let inner = written
        .strip_prefix("${")
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(written);
    if !inner.starts_with("request.") {
        return written.to_owned();
    }
    match claimgate_config::ContextVariable::parse(inner) {
        Ok(variable) => {
            let verdict = x.verdict();
            let params = verdict
                .route
                .as_ref()
                .map_or(&[][..], |r| r.params.as_slice());
            crate::context::RequestContext::new(&x.parts, params, verdict.claims.as_deref())
                .variable(&variable)
        }
        Err(_) => written.to_owned(),
    }
}

/// Takes the gateway's own cookies (the session, flows) out of the `Cookie` header the
/// backend gets: a backend never holds a session it could replay.
fn strip_own_cookies(headers: &mut http::HeaderMap) {
    let own = headers
        .get_all(header::COOKIE)
        .iter()
        .any(|v| v.as_bytes().windows(10).any(|w| w == b"claimgate_"));
    if !own {
        return;
    }
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && !pair.starts_with("claimgate_"))
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if kept.is_empty() {
        return;
    }
    if let Ok(value) = HeaderValue::from_str(&kept.join("; ")) {
        headers.insert(header::COOKIE, value);
    }
}

/// `Set-Cookie` attributes: `Secure` except over plain HTTP to a loopback host.
fn cookie_attributes(prefix: &str, secure: bool, max_age: Option<i64>) -> String {
    let path = if prefix.is_empty() { "/" } else { prefix };
    let mut text = format!("; Path={path}; HttpOnly; SameSite=Lax");
    if secure {
        text.push_str("; Secure");
    }
    if let Some(age) = max_age {
        text.push_str(&format!("; Max-Age={age}"));
    }
    text
}

fn add_header(response: &mut Response<Body>, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().append(name, value);
    }
}

fn redirect(status: u16, location: &str) -> Response<Body> {
    let mut response = Response::new(respond::full(""));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::FOUND);
    add_header(&mut response, header::LOCATION, location);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A short page for a login that could not finish: the status and what failed, no secrets.
/// It may echo the callback's `error` or `iss` (escaped), so no browser may sniff it as HTML.
fn failure_page(status: u16, reason: &str) -> Response<Body> {
    let body =
        json!({"message": format!("The login could not be completed: {reason}."), "code": status});
    let mut response = Response::new(respond::full(body.to_string()));
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

impl Gateway {
    fn session_keys(&self) -> Option<std::sync::Arc<SessionKeys>> {
        self.session_keys.load_full()
    }

    /// Replaces the `--session-key` keys (their files changed): sessions sealed under a key
    /// no longer given stop opening, and the first new key seals from now on.
    pub fn set_session_keys(&self, keys: Option<std::sync::Arc<SessionKeys>>) {
        self.session_keys.store(keys);
    }

    /// The scheme and host absolute URLs are built from: the listener's scheme and the
    /// request's `Host`, or `X-Forwarded-Proto`/`-Host` from a `--trusted-proxy` peer; and
    /// whether cookies get `Secure` (all but plain HTTP to a loopback host).
    fn origin(&self, x: &Exchange<'_>) -> (String, bool) {
        let parts = &x.parts;
        let forwarded = |name: &str| {
            self.options
                .trusted_proxies
                .trusts_peer(x.peer.ip())
                .then(|| parts.headers.get(name)?.to_str().ok())
                .flatten()
                .and_then(|v| v.split(',').next())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let mut scheme = if self.tls.load().is_some() {
            "https"
        } else {
            "http"
        };
        match forwarded("x-forwarded-proto") {
            Some(p) if p.eq_ignore_ascii_case("https") => scheme = "https",
            Some(p) if p.eq_ignore_ascii_case("http") => scheme = "http",
            _ => {}
        }
        let host_ok = |h: &&str| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        };
        let host = forwarded("x-forwarded-host")
            .filter(host_ok)
            .or_else(|| {
                parts
                    .headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .filter(host_ok)
            })
            .unwrap_or("localhost");
        let bare = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(v6),
            None => host.rsplit_once(':').map_or(host, |(h, _)| h),
        };
        let loopback = claimgate_keys::is_loopback_host(bare);
        (format!("{scheme}://{host}"), scheme == "https" || !loopback)
    }

    fn oauth_record(&self, x: &Exchange<'_>, record: ExecutionRecord) {
        self.logs.execution(x.context, x.threshold, record);
    }

    /// Before the verdict: a live session's access token is put where the policy reads tokens.
    pub(super) fn oauth2_prepare(&self, x: &mut Exchange<'_>) -> Prepared {
        let Some((policy, oauth)) = policies(x) else {
            return Prepared::default();
        };
        let (sealed, from_cookie) = if oauth.use_cookies_for_session {
            (flow::session_cookie(&cookie_headers(&x.parts)), true)
        } else {
            (
                x.parts
                    .headers
                    .get("x-apigw-token")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                false,
            )
        };
        let Some(sealed) = sealed else {
            return Prepared::default();
        };
        let Some(keys) = self.session_keys() else {
            return Prepared::default();
        };
        let session = keys
            .open(Purpose::Session, &binding(x), &sealed)
            .and_then(|plain| serde_json::from_slice::<Session>(&plain).ok());
        let now = wall_clock();
        let session = match session {
            Some(s) if s.is_live(now) => s,
            Some(_) => {
                self.oauth_record(
                    x,
                    ExecutionRecord::new(
                        OAUTH,
                        Level::Info,
                        "The session has expired: a new login is needed.",
                    ),
                );
                return Prepared::default();
            }
            None => {
                self.oauth_record(
                    x,
                    ExecutionRecord::new(
                        STEP_FAILED,
                        Level::Warn,
                        "The session does not open under --session-key (tampered, or sealed with a key no longer given): it is ignored.",
                    ),
                );
                return Prepared::default();
            }
        };
        let location = policy.location.clone();
        let injected = match location {
            TokenLocation::Header { name, scheme } => {
                let Ok(name) = http::HeaderName::from_bytes(name.as_bytes()) else {
                    return Prepared::default();
                };
                let value = match &scheme {
                    Some(scheme) => format!("{scheme} {}", session.access_token),
                    None => session.access_token.clone(),
                };
                let Ok(value) = HeaderValue::from_str(&value) else {
                    return Prepared::default();
                };
                x.parts.headers.insert(name.clone(), value);
                Injected::Header(name)
            }
            TokenLocation::Query { name } => {
                let before = x.parts.uri.clone();
                let param = name.clone();
                let path = before.path();
                let mut query = format!(
                    "{}={}",
                    flow::form_encode(&name),
                    flow::form_encode(&session.access_token)
                );
                if let Some(q) = before.query() {
                    query.push('&');
                    query.push_str(q);
                }
                match format!("{path}?{query}").parse::<http::Uri>() {
                    Ok(uri) => x.parts.uri = uri,
                    Err(_) => return Prepared::default(),
                }
                Injected::Uri(before, param)
            }
        };
        Prepared {
            session: Some(session),
            from_cookie,
            injected: Some(injected),
        }
    }

    /// After the verdict: the login and logout routes, CSRF, and the redirect to the provider.
    /// What [`Gateway::oauth2_answer`] does for a deployment without OAUTH2 (strips the
    /// gateway's cookies), without building its future; `false` for a deployment with it.
    pub(super) fn without_oauth2(x: &mut Exchange<'_>) -> bool {
        if policies(x).is_some() {
            return false;
        }
        strip_own_cookies(&mut x.parts.headers);
        true
    }

    pub(super) async fn oauth2_answer(&self, x: &mut Exchange<'_>, prepared: Prepared) -> Step {
        let Some((_, oauth)) = policies(x) else {
            // Browsers send a session cookie to every path below its deployment's prefix,
            // other deployments' included: their backends never get it.
            strip_own_cookies(&mut x.parts.headers);
            return Step::Next;
        };
        // The session's token is for the verdict only: the backend never sees it, nor a token
        // the client sent beside the session (it was not what was judged).
        match prepared.injected {
            Some(Injected::Header(name)) => {
                x.parts.headers.remove(name);
            }
            Some(Injected::Uri(uri, param)) => x.parts.uri = without_parameter(&uri, &param),
            None => {}
        }
        let route = x
            .route_index()
            .and_then(|i| x.served.deployment.routes.get(i));
        match route.map(|r| &r.backend) {
            Some(Backend::OAuth2Login) => return Step::Answer(self.oauth2_callback(x).await),
            Some(Backend::OAuth2Logout(logout)) => {
                return Step::Answer(
                    self.oauth2_logout(x, logout, prepared.session.as_ref())
                        .await,
                )
            }
            _ => {}
        }
        // Without loginPath the original route is the redirect URI.
        if oauth.login_path.is_none() && x.parts.method == http::Method::GET {
            if let Some(state) = flow::query_value(x.parts.uri.query(), "state") {
                let has_flow = flow::flow_cookie_name(&state)
                    .is_some_and(|name| flow::cookie(&cookie_headers(&x.parts), &name).is_some());
                if has_flow {
                    return Step::Answer(self.oauth2_callback(x).await);
                }
            }
        }
        let allowed = x.verdict().decision == Decision::Allow;
        if let (Some(session), true) = (&prepared.session, allowed) {
            if prepared.from_cookie {
                let sent = x
                    .parts
                    .headers
                    .get("x-csrf-token")
                    .and_then(|v| v.to_str().ok());
                if !flow::csrf_ok(x.parts.method.as_str(), sent, session) {
                    self.oauth_record(
                        x,
                        ExecutionRecord::new(
                            STEP_FAILED,
                            Level::Warn,
                            "The request was refused: a non-safe method from a cookie session must send the session's X-CSRF-TOKEN.",
                        )
                        .with("cause", json!("csrf")),
                    );
                    return Step::Answer(respond::error(403));
                }
                x.csrf = Some(session.csrf.clone());
                strip_own_cookies(&mut x.parts.headers);
            } else {
                // The sealed session is the client's credential, not the backend's.
                x.parts.headers.remove("x-apigw-token");
            }
            // OCI's request.auth[...] of the session, for transformations.
            x.parts.extensions.insert(crate::context::OAuth2Auth {
                csrf: prepared.from_cookie.then(|| session.csrf.clone()),
                id_token: session.id_token.clone(),
                access_token: session.access_token.clone(),
                id_claims: Default::default(),
            });
        }
        let verdict = x.verdict();
        let refused_authentication = verdict.decision == Decision::Deny
            && verdict.route.is_some()
            && verdict.unrouted.is_none()
            && !verdict.passed_access()
            && verdict.status.unwrap_or(401) == 401;
        if !refused_authentication {
            // Whether or not a session opened (an anonymous route, one that expired or is
            // another deployment's), the backend gets none of the gateway's cookies.
            strip_own_cookies(&mut x.parts.headers);
            return Step::Next;
        }
        let mode = x
            .parts
            .headers
            .get("sec-fetch-mode")
            .and_then(|v| v.to_str().ok());
        if !flow::wants_redirect(mode) {
            // Script requests cannot follow a login: they get the 401 (authorization phase).
            return Step::Next;
        }
        Step::Answer(self.oauth2_start(x, oauth).await)
    }

    /// Sends the browser to the provider's `authorization_endpoint` with a new flow, bound to
    /// it by a sealed flow cookie.
    async fn oauth2_start(&self, x: &Exchange<'_>, oauth: &OAuth2Policy) -> Response<Body> {
        let Some(discovery) = x.served.discovery.as_deref() else {
            return respond::error(500);
        };
        let Some(keys) = self.session_keys() else {
            return respond::error(500);
        };
        let document = match discovery.document().await {
            Ok(d) => d,
            Err(reason) => return self.idp_failed(x, "discovery", &reason, 502),
        };
        let Some(endpoint) = document.authorization_endpoint.as_deref() else {
            return self.idp_failed(
                x,
                "discovery",
                "the discovery document has no authorization_endpoint",
                502,
            );
        };
        let prefix = x.served.deployment.path_prefix.as_str();
        let (origin, secure) = self.origin(x);
        let path = x.parts.uri.path();
        let redirect_path = match &oauth.login_path {
            Some(login) => flow::deployment_path(prefix, login),
            None => path.to_owned(),
        };
        let original = x.parts.uri.path_and_query().map_or(path, |p| p.as_str());
        let verifier = oauth.use_pkce.then(|| random_text(32));
        let state = FlowState {
            state: random_text(32),
            nonce: random_text(32),
            verifier: verifier.clone(),
            redirect_uri: format!("{origin}{redirect_path}"),
            resume: flow::resume_target(
                x.parts.method.as_str(),
                original,
                prefix,
                oauth.fallback_redirect_path.as_deref(),
            ),
            created: wall_clock().0,
        };
        let Some(sealed) = serde_json::to_vec(&state)
            .ok()
            .and_then(|plain| keys.seal(Purpose::Flow, &binding(x), &plain))
        else {
            return respond::error(500);
        };
        let challenge = verifier.as_deref().map(s256);
        let url = flow::authorization_url(
            endpoint,
            discovery.client_id(),
            &oauth.scopes,
            &state,
            challenge.as_deref(),
        );
        self.oauth_record(
            x,
            ExecutionRecord::new(
                OAUTH,
                Level::Info,
                "The request is not authenticated: the browser is sent to the identity provider to log in.",
            )
            .with("pkce", json!(oauth.use_pkce)),
        );
        let mut response = redirect(flow::redirect_status(x.parts.method.as_str()), &url);
        let cookie = format!(
            "{}={sealed}{}",
            state.cookie_name(),
            cookie_attributes(prefix, secure, Some(flow::FLOW_TTL_SECONDS))
        );
        add_header(&mut response, header::SET_COOKIE, &cookie);
        // Logins begun and never finished leave their cookies for 10 minutes; past a few, they
        // are cleared so that the Cookie header cannot grow to the 8 KiB limit (431).
        let abandoned: Vec<&str> = cookie_headers(&x.parts)
            .into_iter()
            .flat_map(|h| h.split(';'))
            .filter_map(|pair| pair.trim().split_once('=').map(|(n, _)| n.trim()))
            .filter(|n| n.starts_with(flow::FLOW_COOKIE_PREFIX))
            .collect();
        if abandoned.len() >= MAX_OPEN_FLOWS {
            let clear = cookie_attributes(prefix, secure, Some(0));
            for name in abandoned {
                add_header(
                    &mut response,
                    header::SET_COOKIE,
                    &format!("{name}={clear}"),
                );
            }
        }
        response
    }

    fn idp_failed(
        &self,
        x: &Exchange<'_>,
        call: &str,
        reason: &str,
        status: u16,
    ) -> Response<Body> {
        self.oauth_record(
            x,
            ExecutionRecord::new(
                IDP_FAILED,
                Level::Error,
                format!("The identity provider call failed: {reason}."),
            )
            .with("call", json!(call)),
        );
        failure_page(status, "the identity provider could not be used")
    }

    fn step_failed(
        &self,
        x: &Exchange<'_>,
        status: u16,
        reason: &str,
        clear: Option<&str>,
    ) -> Response<Body> {
        self.oauth_record(
            x,
            ExecutionRecord::new(
                STEP_FAILED,
                Level::Warn,
                format!("The login failed: {reason}."),
            ),
        );
        let mut response = failure_page(status, reason);
        if let Some(name) = clear {
            let (_, secure) = self.origin(x);
            let prefix = x.served.deployment.path_prefix.as_str();
            add_header(
                &mut response,
                header::SET_COOKIE,
                &format!("{name}={}", cookie_attributes(prefix, secure, Some(0))),
            );
        }
        response
    }

    /// The callback: the flow cookie, `state`, `error`, `iss`, the code exchange, the ID token,
    /// the access token by the deployment's policy; then the session and the way back.
    async fn oauth2_callback(&self, x: &mut Exchange<'_>) -> Response<Body> {
        let Some((policy, oauth)) = policies(x) else {
            return respond::error(500);
        };
        let (Some(discovery), Some(keys)) = (x.served.discovery.clone(), self.session_keys())
        else {
            return respond::error(500);
        };
        let query = x.parts.uri.query();
        let Some(name) = flow::query_value(query, "state").and_then(|s| flow::flow_cookie_name(&s))
        else {
            return self.step_failed(x, 400, &CallbackFailure::NoFlow.reason(), None);
        };
        let Some(sealed) = flow::cookie(&cookie_headers(&x.parts), &name).map(str::to_owned) else {
            return self.step_failed(x, 400, &CallbackFailure::NoFlow.reason(), None);
        };
        let Some(state) = keys
            .open(Purpose::Flow, &binding(x), &sealed)
            .and_then(|plain| serde_json::from_slice::<FlowState>(&plain).ok())
        else {
            return self.step_failed(x, 401, &CallbackFailure::FlowExpired.reason(), Some(&name));
        };
        let document = match discovery.document().await {
            Ok(d) => d,
            Err(reason) => return self.idp_failed(x, "discovery", &reason, 502),
        };
        let now = wall_clock();
        let code = match flow::judge_callback(
            query,
            &state,
            now,
            &document.issuer,
            document.iss_parameter_supported,
        ) {
            Ok(code) => code,
            Err(failure) => {
                return self.step_failed(x, failure.status(), &failure.reason(), Some(&name))
            }
        };
        let Some(endpoint) = document.token_endpoint.as_deref() else {
            return self.idp_failed(
                x,
                "token",
                "the discovery document has no token_endpoint",
                502,
            );
        };
        if let Err(reason) = discovery.secret_endpoint_allowed(endpoint) {
            return self.idp_failed(x, "token", &reason, 502);
        }
        let listed = |m: &str| document.token_auth_methods.iter().any(|x| x == m);
        let post = listed("client_secret_post") && !listed("client_secret_basic");
        let answer = self
            .provider
            .exchange_code(
                endpoint,
                &code,
                &state.redirect_uri,
                state.verifier.as_deref(),
                discovery.client_id(),
                discovery.client_secret(),
                post,
                discovery.ssl_verify_disabled(),
            )
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(error) => {
                return self.idp_failed(
                    x,
                    "token",
                    &format!("the code exchange at {endpoint} failed: {error}"),
                    502,
                )
            }
        };
        let text = |name: &str| answer.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        let (Some(id_token), Some(access_token)) = (text("id_token"), text("access_token")) else {
            return self.idp_failed(
                x,
                "token",
                "the token answer has no id_token or access_token",
                502,
            );
        };
        let expires_in = match answer.get("expires_in") {
            None => None,
            Some(v) => match v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            {
                Some(n) => Some(n),
                None => {
                    self.oauth_record(
                        x,
                        ExecutionRecord::new(
                            "authentication.idpTokenExpiryNonNumeric",
                            Level::Warn,
                            "The token answer's expires_in is not a number: it is ignored.",
                        ),
                    );
                    None
                }
            },
        };
        self.oauth_record(
            x,
            ExecutionRecord::new(
                IDP_SUCCESS,
                Level::Info,
                "The identity provider issued the tokens.",
            )
            .with("call", json!("token")),
        );
        // The ID token, with the discovery keys and the core's checks.
        if let Err(reason) = self
            .verify_id_token(
                &discovery,
                policy,
                &id_token,
                &document.issuer,
                &state.nonce,
                now,
            )
            .await
        {
            return self.step_failed(x, 401, &reason, Some(&name));
        }
        // The access token, judged by the deployment's policy as any bearer token.
        let access_exp = match self.judge_access_token(x, policy, &access_token).await {
            Ok(exp) => exp,
            Err(reason) => return self.step_failed(x, 401, &reason, Some(&name)),
        };
        let session = Session {
            id_token,
            access_token,
            expires: flow::session_expiry(now, oauth.max_expiry_hours, access_exp, expires_in),
            csrf: random_text(32),
        };
        let Some(sealed_session) = serde_json::to_vec(&session)
            .ok()
            .and_then(|plain| keys.seal(Purpose::Session, &binding(x), &plain))
        else {
            return respond::error(500);
        };
        let prefix = x.served.deployment.path_prefix.as_str();
        let (_, secure) = self.origin(x);
        let mut response = redirect(302, &state.resume);
        add_header(
            &mut response,
            header::SET_COOKIE,
            &format!("{name}={}", cookie_attributes(prefix, secure, Some(0))),
        );
        let max_age = (session.expires - now.0).max(0);
        if oauth.use_cookies_for_session {
            for (cookie, value) in flow::session_cookie_chunks(&sealed_session) {
                // An empty value clears a cookie of an earlier session.
                let age = if value.is_empty() { 0 } else { max_age };
                add_header(
                    &mut response,
                    header::SET_COOKIE,
                    &format!(
                        "{cookie}={value}{}",
                        cookie_attributes(prefix, secure, Some(age))
                    ),
                );
            }
            add_header(
                &mut response,
                http::HeaderName::from_static("x-csrf-token"),
                &session.csrf,
            );
        } else {
            add_header(
                &mut response,
                http::HeaderName::from_static("x-apigw-token"),
                &sealed_session,
            );
        }
        self.oauth_record(
            x,
            ExecutionRecord::new(
                OAUTH,
                Level::Info,
                "The login succeeded: a session was issued.",
            )
            .with(
                "sessionExpires",
                json!(UnixTime(session.expires).to_string()),
            ),
        );
        response
    }

    async fn verify_id_token(
        &self,
        discovery: &DiscoveryPolicy,
        policy: &JwtPolicy,
        raw: &str,
        issuer: &str,
        nonce: &str,
        now: UnixTime,
    ) -> Result<(), String> {
        let lookup = match discovery.keys().await {
            DiscoveredKeys::Keys(lookup) => lookup,
            DiscoveredKeys::DiscoveryUnavailable(reason) => return Err(reason),
        };
        let mut snapshot = match lookup {
            Lookup::Keys(snapshot) => snapshot,
            Lookup::Unavailable(reason) => {
                return Err(format!("the provider's keys are unavailable: {reason}"))
            }
        };
        for attempt in 0..2 {
            let result = flow::verify_id_token(
                policy,
                raw,
                KeyMaterial::Keys(&snapshot.keys),
                issuer,
                discovery.client_id(),
                nonce,
                now,
            );
            match result {
                Ok(_) => return Ok(()),
                Err(checks) => {
                    let unknown_kid = checks.iter().any(|c| {
                        matches!(
                            c.failure(),
                            Some(claimgate_core::Failure::KeyUnknownKid { .. })
                        )
                    });
                    if unknown_kid && attempt == 0 {
                        if let Some(keys) = discovery.remote_keys() {
                            if let Some(newer) = keys
                                .refresh_for_unknown_kid(Some(snapshot.generation))
                                .await
                            {
                                snapshot = newer;
                                continue;
                            }
                        }
                    }
                    let what: Vec<String> = checks.iter().map(|c| c.id.to_string()).collect();
                    return Err(format!(
                        "the ID token failed its checks ({})",
                        what.join(", ")
                    ));
                }
            }
        }
        Err("the ID token did not verify".into())
    }

    /// Judges the access token with the deployment's policy, as the callback's request would
    /// carry it; its `exp` (a JWT's, or the introspection answer's) when it passes.
    async fn judge_access_token(
        &self,
        x: &mut Exchange<'_>,
        policy: &JwtPolicy,
        token: &str,
    ) -> Result<Option<i64>, String> {
        let mut parts = x.parts.clone();
        match &policy.location {
            TokenLocation::Header { name, scheme } => {
                let value = match scheme {
                    Some(scheme) => format!("{scheme} {token}"),
                    None => token.to_owned(),
                };
                let (Ok(name), Ok(value)) = (
                    http::HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(&value),
                ) else {
                    return Err("the access token cannot be carried in a header".into());
                };
                parts.headers.insert(name, value);
            }
            TokenLocation::Query { name } => {
                let uri = format!(
                    "{}?{}={}",
                    parts.uri.path(),
                    flow::form_encode(name),
                    flow::form_encode(token)
                );
                parts.uri = uri
                    .parse()
                    .map_err(|_| "the access token cannot be carried in the query".to_owned())?;
            }
        }
        let view = PartsView {
            parts: &parts,
            body: false,
            text: None,
        };
        let verdict = self.judge(x.served, &view).await;
        let token_failures: Vec<String> = verdict
            .failures()
            .filter(|c| !matches!(c.id, claimgate_core::CheckId::Scope))
            .map(|c| c.id.to_string())
            .collect();
        if !token_failures.is_empty() {
            return Err(format!(
                "the access token does not pass the deployment's policy ({})",
                token_failures.join(", ")
            ));
        }
        Ok(verdict
            .claims
            .as_deref()
            .and_then(|c| c.get("exp"))
            .and_then(|v| v.as_f64())
            .map(|e| e as i64))
    }

    /// `OAUTH2_LOGOUT_BACKEND`: clears the session and leads to the provider's end-session
    /// endpoint or straight to the allowed post-logout URL.
    async fn oauth2_logout(
        &self,
        x: &Exchange<'_>,
        logout: &claimgate_config::OAuth2Logout,
        session: Option<&Session>,
    ) -> Response<Body> {
        let prefix = x.served.deployment.path_prefix.as_str();
        let requested = flow::query_value(x.parts.uri.query(), "postLogoutUrl");
        let target = flow::post_logout_target(
            requested.as_deref(),
            &logout.allowed_post_logout_uris,
            prefix,
        );
        let (origin, secure) = self.origin(x);
        let target = match target {
            PostLogout::Refused => {
                self.oauth_record(
                    x,
                    ExecutionRecord::new(
                        REDIRECT_ERROR,
                        Level::Warn,
                        "The post logout redirect URL was not allowed.",
                    ),
                );
                return respond::error(400);
            }
            PostLogout::None => None,
            PostLogout::Allowed(url) if url.starts_with('/') => Some(format!("{origin}{url}")),
            PostLogout::Allowed(url) => Some(url),
        };
        let state = logout
            .post_logout_state
            .as_deref()
            .map(|written| post_logout_state(x, written));
        let state = state.as_deref();
        let end_session = match (session, x.served.discovery.as_deref()) {
            (Some(_), Some(discovery)) => discovery
                .document()
                .await
                .ok()
                .and_then(|d| d.end_session_endpoint.clone())
                .map(|e| (e, discovery.client_id().to_owned())),
            _ => None,
        };
        let mut response = match (session, end_session, &target) {
            (Some(session), Some((endpoint, client_id)), _) => {
                let mut url = endpoint.clone();
                url.push(if url.contains('?') { '&' } else { '?' });
                let mut pairs = vec![
                    ("id_token_hint", session.id_token.as_str()),
                    ("client_id", client_id.as_str()),
                ];
                if let Some(target) = &target {
                    pairs.push(("post_logout_redirect_uri", target.as_str()));
                }
                if let Some(state) = state {
                    pairs.push(("state", state));
                }
                flow::push_query(&mut url, &pairs);
                redirect(302, &url)
            }
            (_, _, Some(target)) => {
                let mut url = target.clone();
                if let (Some(_), Some(state)) = (session, state) {
                    url.push(if url.contains('?') { '&' } else { '?' });
                    flow::push_query(&mut url, &[("state", state)]);
                }
                redirect(302, &url)
            }
            _ => {
                let mut response = Response::new(respond::full("Logged out.\n"));
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            }
        };
        // Whatever led here, the session ends in this browser.
        let clear = cookie_attributes(prefix, secure, Some(0));
        add_header(
            &mut response,
            header::SET_COOKIE,
            &format!("{}={clear}", flow::SESSION_COOKIE),
        );
        for i in 1..=2 {
            add_header(
                &mut response,
                header::SET_COOKIE,
                &format!("{}_{i}={clear}", flow::SESSION_COOKIE),
            );
        }
        self.oauth_record(
            x,
            ExecutionRecord::new(OAUTH, Level::Info, "The session was ended (logout).")
                .with("authenticated", json!(session.is_some())),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_parameter_is_taken_out_and_the_rest_kept() {
        let uri: http::Uri = "/app/page?a=1&access=tok&b=2".parse().unwrap();
        assert_eq!(without_parameter(&uri, "access"), "/app/page?a=1&b=2");
        let only: http::Uri = "/app/page?access=tok".parse().unwrap();
        assert_eq!(without_parameter(&only, "access"), "/app/page");
        let none: http::Uri = "/app/page".parse().unwrap();
        assert_eq!(without_parameter(&none, "access"), "/app/page");
    }

    #[test]
    fn the_gateway_s_own_cookies_never_reach_the_backend() {
        let mut headers = http::HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; claimgate_session=xyz"),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("claimgate_flow_abc=1"),
        );
        strip_own_cookies(&mut headers);
        assert_eq!(headers.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(headers[header::COOKIE], "a=1");
        let mut only = http::HeaderMap::new();
        only.insert(
            header::COOKIE,
            HeaderValue::from_static("claimgate_session=x"),
        );
        strip_own_cookies(&mut only);
        assert!(only.get(header::COOKIE).is_none());
    }
}
