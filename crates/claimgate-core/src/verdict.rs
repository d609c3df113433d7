//! The verdict: one pure function from a request, a deployment, key material and `now` to a
//! decision that lists every check.

use crate::check::{json_type, Check, CheckId, Failure, Note, Outcome, TimeContext};
use crate::claims::{ClaimRef, Claims, Registered};
use crate::dynamic::{select_server, Matched, Selection};
use crate::route::{self, PathParams, RouteMatch};
use crate::time::UnixTime;
use crate::validation::Validation;
use claimgate_config::{
    AuthFlavor, Authentication, Authorization, Backend, ClaimRule, Deployment, JwtPolicy,
    KeySource, Route, ServerPolicy, TokenLocation,
};
use claimgate_jose::{Algorithm, Jws, KeySet, PublicKey};
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::sync::Arc;

/// What the verdict needs to know of a request. The gateway implements it over its HTTP
/// request; the CLI over `--request`/`--header`/`--token`.
pub trait RequestView {
    fn method(&self) -> &str;
    /// The path without the query string.
    fn path(&self) -> &str;
    /// The raw query string, without `?`.
    fn query(&self) -> Option<&str>;
    /// The header's values (names are case-insensitive).
    fn header(&self, name: &str) -> HeaderValues<'_>;
    /// The header's first value, for selectors (OCI takes a repeated header's first value in
    /// dynamic routing). Views that can hold repeated headers override this default, which
    /// knows only a single value.
    fn first_header(&self, name: &str) -> Option<&str> {
        match self.header(name) {
            HeaderValues::One(value) => Some(value),
            _ => None,
        }
    }
    /// Whether the request carries a body (SPEC "Request validation"): by default, whether its
    /// headers declare one ([`body_declared`]). A view that sees the body itself overrides this
    /// (over HTTP/2 a body is present when DATA arrives).
    fn has_body(&self) -> bool {
        body_declared(self)
    }
    /// Every value of the header, in order (an authorizer function gets a repeated header as
    /// an array). Views that can hold repeated headers override this default.
    fn header_values(&self, name: &str) -> Vec<&str> {
        match self.header(name) {
            HeaderValues::One(value) => vec![value],
            _ => Vec::new(),
        }
    }
    /// The first of [`Self::header_values`]: what presence checks and single-value arguments
    /// read. Views on the request path override it so that nothing is collected for that.
    fn first_header_value(&self, name: &str) -> Option<&str> {
        self.header_values(name).into_iter().next()
    }
    /// `request.cert`: the verified client certificate (base64 DER), when there is one.
    fn client_cert(&self) -> Option<&str> {
        None
    }
    /// `request.body` as text, when the caller has read the body (the gateway does only for
    /// an authorizer function that takes it) and it is UTF-8.
    fn body_text(&self) -> Option<&str> {
        None
    }
}

/// Whether the request's headers declare a body: `Content-Length` above 0 (a value that is not
/// a number, or several, declare one too: the backend may read one) or a `Transfer-Encoding`
/// that ends in `chunked`.
pub fn body_declared<R: RequestView + ?Sized>(request: &R) -> bool {
    let length = match request.header("content-length") {
        HeaderValues::Absent => false,
        HeaderValues::One(value) => value.trim().parse::<u64>().map_or(true, |n| n > 0),
        HeaderValues::Many(_) => true,
    };
    length
        || match request.header("transfer-encoding") {
            HeaderValues::Absent => false,
            HeaderValues::One(value) => value
                .split(',')
                .any(|coding| coding.trim().eq_ignore_ascii_case("chunked")),
            HeaderValues::Many(_) => true,
        }
}

/// How many values a header has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderValues<'a> {
    Absent,
    One(&'a str),
    Many(usize),
}

/// The keys to verify with, or why there are none.
#[derive(Debug, Clone, Copy)]
pub enum KeyMaterial<'a> {
    Keys(&'a KeySet),
    Unavailable {
        reason: &'a str,
    },
    /// REMOTE_DISCOVERY: the discovery document itself could not be obtained.
    DiscoveryUnavailable {
        reason: &'a str,
    },
}

/// What introspection said about an opaque token (REMOTE_DISCOVERY), as the caller obtained it.
#[derive(Debug, Clone, Copy)]
pub enum Introspection<'a> {
    /// The caller did not introspect (no opaque token, or not asked).
    NotDone,
    /// The endpoint's JSON answer (shared: an allowed request's claims are this answer).
    Answer(&'a Arc<Claims>),
    Unavailable {
        reason: &'a str,
    },
    /// The discovery document could not be had, or names an endpoint the client secret must
    /// not go to: judged as `badDiscoveryEndpointResponse`.
    DiscoveryUnavailable {
        reason: &'a str,
    },
    /// `CUSTOM_AUTHENTICATION`: what the authorizer function answered.
    Function(crate::authorizer::FunctionOutcome<'a>),
}

impl<'a> KeyMaterial<'a> {
    /// The policy's own keys when they are static; `remote` otherwise.
    pub fn for_policy(policy: &'a JwtPolicy, remote: KeyMaterial<'a>) -> Self {
        match &policy.keys {
            KeySource::Static(keys) => KeyMaterial::Keys(keys),
            KeySource::RemoteJwks(_) | KeySource::Discovery(_) => remote,
        }
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
}

impl Decision {
    pub fn name(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// How much a verdict explains. The decision, the status, the failed and skipped checks, the
/// claims and the events are the same either way; only what is said about passed checks
/// differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Explain {
    /// Every check with its note, expected and actual values: `claimgate check`.
    Everything,
    /// Passed checks by id only, without note, values or setting: a gateway, whose logs record
    /// failures only, does not build explanations of allowed requests that nobody reads.
    /// Passed validation checks are not listed at all (their ids name headers and parameters,
    /// which would cost an allocation each), nor the checks of a deployment without
    /// authentication (all of them would be skipped).
    Failures,
}

impl Explain {
    fn quiet(self) -> bool {
        self == Self::Failures
    }
}

/// The route a request reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub path: String,
    pub path_prefix: String,
    pub methods: Vec<&'static str>,
    pub index: usize,
    pub params: Vec<(String, String)>,
}

/// Why a request was answered without reaching authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unrouted {
    /// The path breaks a rule of [`crate::path::normalize`]: 400 before any route is matched.
    PathRejected(crate::path::PathRejection),
    NotFound,
    MethodNotAllowed {
        allow: Vec<&'static str>,
    },
}

/// A decision with every check that led to it.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct Verdict {
    pub decision: Decision,
    /// The HTTP status: the gateway's own answer, the stock response's, or `None` when an HTTP
    /// backend will answer.
    pub status: Option<u16>,
    pub route: Option<RouteInfo>,
    pub unrouted: Option<Unrouted>,
    pub checks: Vec<Check>,
    /// Set when the deployment has a JWT policy.
    pub flavor: Option<AuthFlavor>,
    /// Verified claims (`request.auth`), only when authentication succeeded. Shared with the
    /// verification cache, not copied.
    pub claims: Option<Arc<Claims>>,
    /// Set when the policy cannot be evaluated at all.
    pub unsupported: Option<String>,
    /// `dynamicAuthentication`: the server chosen for the request (set once a route matched).
    pub selection: Option<Selection>,
    /// What the route's request validations concluded (judged only for a request that
    /// authentication and authorization allowed).
    pub validation: Validation,
}

/// One execution-log event the verdict implies.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub code: Cow<'static, str>,
    pub level: &'static str,
    pub message: Cow<'static, str>,
    /// The check this event reports, for failures.
    pub check: Option<usize>,
}

const NO_ROUTE: &str = "no route matched the request";
const PATH_REJECTED: &str = "the request path was refused before routing";

/// The result of the token-only stages (format, alg, key, signature) for one token and one key
/// set. A gateway may keep the verified ones, keyed by a hash of the token and the key set's
/// identity; the claim and time checks are never cached. It holds the decoded payload and, for
/// a token that did not verify or when made with [`Explain::Everything`], the stages' checks;
/// not the token, its header or its signature.
#[derive(Debug)]
pub struct TokenVerification {
    /// Empty for a verified token made with [`Explain::Failures`]: all four stages passed.
    checks: Vec<Check>,
    /// The decoded payload, when the token could be decoded.
    payload: Option<Arc<Claims>>,
    verified: bool,
}

impl TokenVerification {
    /// Whether the signature verified.
    pub fn is_verified(&self) -> bool {
        self.verified
    }

    /// The token's `exp`, if it is a number: a cache need not keep the entry past it (plus skew).
    pub fn exp(&self) -> Option<f64> {
        self.payload.as_ref()?.get("exp")?.as_f64()
    }

    /// About how many bytes of heap this holds (with the allocator's overhead), for bounding a
    /// cache by memory.
    pub fn approximate_size(&self) -> u32 {
        /// What one heap allocation costs beyond what it holds: glibc malloc's header and
        /// rounding.
        const ALLOCATION: usize = 16;
        let payload = self.payload.as_deref().map_or(0, |claims| {
            ALLOCATION + std::mem::size_of::<(usize, usize, Claims)>() + claims.heap_size()
        });
        let checks = self.checks.capacity() * std::mem::size_of::<Check>();
        let size = ALLOCATION + std::mem::size_of::<(usize, usize, Self)>() + payload + checks;
        u32::try_from(size).unwrap_or(u32::MAX)
    }
}

/// A store of verifications. Implementations decide hashing, bounds and expiry; they must scope
/// entries to one key set (a verification is only valid for the keys it was made with).
pub trait VerificationCache: Send + Sync {
    /// The kept verification of `token`, or the result of `verify` (kept if it verified).
    fn get_or_verify(
        &self,
        token: &str,
        verify: &mut dyn FnMut() -> Arc<TokenVerification>,
    ) -> Arc<TokenVerification>;
}

/// Judges a request against a deployment, explaining every check. Pure: same inputs, same
/// verdict.
pub fn evaluate(
    deployment: &Deployment,
    request: &dyn RequestView,
    keys: KeyMaterial<'_>,
    now: UnixTime,
) -> Verdict {
    evaluate_cached(deployment, request, keys, now, None, Explain::Everything)
}

/// [`evaluate`], reusing verifications from `cache` (which must belong to `keys`) and explaining
/// as much as `explain` asks. The verdict is the same as without the cache.
pub fn evaluate_cached(
    deployment: &Deployment,
    request: &dyn RequestView,
    keys: KeyMaterial<'_>,
    now: UnixTime,
    cache: Option<&dyn VerificationCache>,
    explain: Explain,
) -> Verdict {
    evaluate_with(
        deployment,
        request,
        keys,
        Introspection::NotDone,
        now,
        cache,
        explain,
    )
}

/// Whether a token is judged by introspection: under REMOTE_DISCOVERY, anything that is not a
/// well-formed compact JWS (SPEC "Settled details").
fn is_opaque(policy: &JwtPolicy, raw: &str) -> bool {
    matches!(policy.keys, KeySource::Discovery(_)) && Jws::parse(raw).is_err()
}

/// The token the caller must introspect before [`evaluate_with`], if any: the request reaches a
/// route of a REMOTE_DISCOVERY policy and carries an opaque token.
pub fn token_to_introspect<'r>(
    deployment: &Deployment,
    request: &'r dyn RequestView,
) -> Option<&'r str> {
    prepare(deployment, request).introspect
}

/// What a gateway decides before it can judge a request, made once: the authentication server
/// `dynamicAuthentication` selects (whose key material the gateway must fetch) and, under
/// REMOTE_DISCOVERY, whether the token is opaque and must be introspected. Handed to
/// [`evaluate_prepared`], the verdict reuses these choices instead of routing, selecting and
/// parsing the token again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prepared<'r> {
    /// The selected server, when the deployment has `dynamicAuthentication` and the request
    /// reaches a route.
    pub selection: Option<Selection>,
    /// The opaque token to introspect (REMOTE_DISCOVERY), when there is one.
    pub introspect: Option<&'r str>,
    /// Under REMOTE_DISCOVERY, whether the token is opaque (not a well-formed compact JWS).
    opaque: Option<bool>,
    /// The route found (its index and the path's parameters), when routing was needed here:
    /// the verdict does not normalize and match the path again.
    routed: Option<(usize, PathParams)>,
}

/// What a gateway already knows of a token before [`prepare_knowing`] parses it to tell a JWT
/// from an opaque token (REMOTE_DISCOVERY): a token its verification cache holds as verified
/// was parsed as a compact JWS then, and the parse would succeed again. On a cached request
/// that parse is most of the verdict's cost (callgrind: 16,861 of the 19,197 instructions of
/// `prepare`, BENCHMARKS.md, issue 20).
pub trait VerifiedTokens {
    /// Whether `token` is held as verified under the current keys of the policy of `server`
    /// (the `dynamicAuthentication` server selected), or of the deployment's own policy for
    /// `None`. A wrong `true` for a token that is not a JWS makes its verdict a refusal (it
    /// then fails the format check), never an introspection skipped into an allow.
    fn holds(&self, server: Option<usize>, token: &str) -> bool;
}

/// Knows no token: every token is parsed ([`prepare`]).
struct NoneVerified;

impl VerifiedTokens for NoneVerified {
    fn holds(&self, _server: Option<usize>, _token: &str) -> bool {
        false
    }
}

/// Prepares the judgement of `request` ([`Prepared`]). Pure.
pub fn prepare<'r>(deployment: &Deployment, request: &'r dyn RequestView) -> Prepared<'r> {
    prepare_knowing(deployment, request, &NoneVerified)
}

/// [`prepare`], asking `known` before parsing a REMOTE_DISCOVERY token: a token it holds as
/// verified is a JWT, not an opaque token to introspect. Pure given `known`.
pub fn prepare_knowing<'r>(
    deployment: &Deployment,
    request: &'r dyn RequestView,
    known: &dyn VerifiedTokens,
) -> Prepared<'r> {
    let mut prepared = Prepared::default();
    // Nothing to decide for most deployments: no routing here then (the verdict routes).
    let needed = match &deployment.authentication {
        Authentication::Jwt(policy) => matches!(policy.keys, KeySource::Discovery(_)),
        Authentication::Dynamic(_) => true,
        _ => false,
    };
    if !needed {
        return prepared;
    }
    let Ok(path) = crate::path::normalize(request.path()) else {
        return prepared;
    };
    let RouteMatch::Found { index, params, .. } = route::find(deployment, request.method(), &path)
    else {
        return prepared;
    };
    let (policy, server): (Option<&JwtPolicy>, _) = match &deployment.authentication {
        Authentication::Jwt(policy) => (Some(policy), None),
        Authentication::Dynamic(dynamic) => {
            let selection = select_server(dynamic, request, &params);
            let server = selection.server;
            let policy = server.and_then(|index| dynamic.servers[index].policy.jwt());
            prepared.selection = Some(selection);
            (policy, server)
        }
        _ => (None, None),
    };
    prepared.routed = Some((index, params));
    let Some(policy) = policy.filter(|p| matches!(p.keys, KeySource::Discovery(_))) else {
        return prepared;
    };
    let Ok(raw) = extract_token(&policy.location, request) else {
        return prepared;
    };
    let opaque = !known.holds(server, raw) && is_opaque(policy, raw);
    prepared.opaque = Some(opaque);
    let in_query = matches!(policy.location, TokenLocation::Query { .. });
    if opaque && crate::check::bearer_value_failure(raw, in_query).is_none() {
        prepared.introspect = Some(raw);
    }
    prepared
}

/// [`evaluate_with`] reusing what [`prepare`] decided for this very request and deployment.
/// The verdict is the same as [`evaluate_with`]'s.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_prepared(
    deployment: &Deployment,
    request: &dyn RequestView,
    prepared: Prepared<'_>,
    keys: KeyMaterial<'_>,
    introspection: Introspection<'_>,
    now: UnixTime,
    cache: Option<&dyn VerificationCache>,
    explain: Explain,
) -> Verdict {
    let context = Context {
        keys,
        introspection,
        now,
        cache,
        explain,
        selection: prepared.selection,
        opaque: prepared.opaque,
        routed: prepared.routed,
    };
    evaluate_in(deployment, request, context)
}

/// One evaluation's inputs besides the deployment and the request.
struct Context<'a> {
    keys: KeyMaterial<'a>,
    introspection: Introspection<'a>,
    now: UnixTime,
    cache: Option<&'a dyn VerificationCache>,
    explain: Explain,
    /// The server already selected for this request ([`Prepared`]).
    selection: Option<Selection>,
    /// Whether the token is opaque, when [`prepare`] already parsed it.
    opaque: Option<bool>,
    /// The route [`prepare`] found, if it routed.
    routed: Option<(usize, PathParams)>,
}

/// [`evaluate_cached`] with an introspection answer for an opaque token.
pub fn evaluate_with(
    deployment: &Deployment,
    request: &dyn RequestView,
    keys: KeyMaterial<'_>,
    introspection: Introspection<'_>,
    now: UnixTime,
    cache: Option<&dyn VerificationCache>,
    explain: Explain,
) -> Verdict {
    // Nothing prepared: the verdict routes, selects and classifies for itself.
    evaluate_prepared(
        deployment,
        request,
        Prepared::default(),
        keys,
        introspection,
        now,
        cache,
        explain,
    )
}

fn evaluate_in(
    deployment: &Deployment,
    request: &dyn RequestView,
    mut context: Context<'_>,
) -> Verdict {
    let prepared_route = context.routed.take().and_then(|(index, params)| {
        let route = deployment.routes.get(index)?;
        Some(RouteMatch::Found {
            route,
            index,
            params,
        })
    });
    let found = match prepared_route {
        Some(found) => found,
        None => {
            // The same normal form the gateway routes and forwards (idempotent: borrowed there).
            let path = match crate::path::normalize(request.path()) {
                Ok(path) => path,
                Err(why) => return unrouted(deployment, Unrouted::PathRejected(why), 400),
            };
            route::find(deployment, request.method(), &path)
        }
    };
    let (route, info) = match found {
        RouteMatch::Found {
            route,
            index,
            params,
        } => (
            route,
            RouteInfo {
                path: route.path.as_str().to_owned(),
                path_prefix: deployment.path_prefix.clone(),
                methods: route.methods.names(),
                index,
                params,
            },
        ),
        RouteMatch::MethodNotAllowed { allow } => {
            return unrouted(deployment, Unrouted::MethodNotAllowed { allow }, 405)
        }
        RouteMatch::NotFound => return unrouted(deployment, Unrouted::NotFound, 404),
    };
    let explain = context.explain;
    let mut verdict = judge_access(deployment, route, info, request, context);
    crate::validation::apply(&mut verdict, &route.validations, request, explain);
    verdict
}

/// Authentication and authorization of a request that reached `route`.
fn judge_access(
    deployment: &Deployment,
    route: &Route,
    info: RouteInfo,
    request: &dyn RequestView,
    context: Context<'_>,
) -> Verdict {
    let Context {
        keys,
        introspection,
        now,
        cache,
        explain,
        selection: selected,
        opaque,
        routed: _,
    } = context;
    match &deployment.authentication {
        Authentication::None => {
            // Every check would be listed as skipped; a gateway reads none of them.
            let checks = if explain.quiet() {
                Vec::new()
            } else {
                all_skipped("the deployment has no authentication policy", &[])
            };
            finish(route, info, checks, None, None, true)
        }
        Authentication::Unsupported { kind, reason } => Verdict {
            decision: Decision::Deny,
            status: Some(500),
            checks: all_skipped(format!("{kind} cannot be evaluated"), &[]),
            route: Some(info),
            unrouted: None,
            flavor: None,
            claims: None,
            unsupported: Some(format!("{kind}: {reason}")),
            selection: None,
            validation: Validation::NotJudged,
        },
        Authentication::Custom(policy) => {
            crate::authorizer::evaluate_custom(policy, route, info, request, introspection, explain)
        }
        Authentication::Jwt(policy) => evaluate_jwt(
            policy,
            route,
            info,
            request,
            keys,
            introspection,
            now,
            cache,
            explain,
            opaque,
        ),
        Authentication::Dynamic(dynamic) => {
            // Selected once: by [`prepare`] when the caller did, else here.
            let selection =
                selected.unwrap_or_else(|| select_server(dynamic, request, &info.params));
            let Some(index) = selection.server else {
                let mut checks = vec![Check::new(
                    CheckId::Server,
                    Outcome::fail(Failure::NoServerMatched {
                        selector: selection.selector.clone(),
                        value: selection.value.clone(),
                        tried: selection.keys_tried.clone(),
                    }),
                )
                .values(
                    Some(json!(selection.keys_tried)),
                    Some(json!(selection.value)),
                )
                .setting(DYNAMIC_SETTING)];
                checks.extend(all_skipped("no authentication server was selected", &[]));
                // The first server's flavor, so the refusal counts as an authentication decision.
                let flavor = dynamic.servers.first().map(|s| s.policy.flavor());
                let mut verdict = finish(route, info, checks, flavor, None, false);
                verdict.selection = Some(selection);
                return verdict;
            };
            let mut verdict = match &dynamic.servers[index].policy {
                ServerPolicy::Jwt(policy) => evaluate_jwt(
                    policy,
                    route,
                    info,
                    request,
                    keys,
                    introspection,
                    now,
                    cache,
                    explain,
                    opaque,
                ),
                ServerPolicy::Custom(policy) => crate::authorizer::evaluate_custom(
                    policy,
                    route,
                    info,
                    request,
                    introspection,
                    explain,
                ),
            };
            let server = if explain.quiet() {
                Check::passed(CheckId::Server)
            } else {
                server_check(&selection)
            };
            verdict.checks.insert(0, server);
            verdict.selection = Some(selection);
            verdict
        }
    }
}

const DYNAMIC_SETTING: &str = "dynamicAuthentication.authenticationServers";

/// The passed `server` check: which server and why.
fn server_check(selection: &Selection) -> Check {
    let name = selection.server_name.as_deref().unwrap_or("");
    let value = selection.value.as_deref();
    let detail = match (selection.matched, value) {
        (Matched::AnyOf | Matched::Wildcard, Some(value)) => {
            format!(
                "server '{name}' selected by {} = '{value}'",
                selection.selector
            )
        }
        (_, Some(value)) => format!(
            "server '{name}' selected as the default: {} = '{value}' matched no key",
            selection.selector
        ),
        (_, None) => format!(
            "server '{name}' selected as the default: the request has no {}",
            selection.selector
        ),
    };
    Check::new(CheckId::Server, Outcome::Pass(detail.into()))
        .values(Some(json!(name)), Some(json!(value)))
}

fn unrouted(deployment: &Deployment, why: Unrouted, status: u16) -> Verdict {
    let note = match why {
        Unrouted::PathRejected(_) => PATH_REJECTED,
        _ => NO_ROUTE,
    };
    let checks = match &deployment.authentication {
        Authentication::Jwt(policy) => all_skipped(note, &policy.verify_claims),
        Authentication::Custom(_) => [CheckId::Token, CheckId::Function, CheckId::Scope]
            .map(|id| Check::skip(id, note))
            .into(),
        Authentication::Dynamic(_) => {
            let mut checks = vec![Check::skip(CheckId::Server, note)];
            checks.extend(all_skipped(note, &[]));
            checks
        }
        Authentication::None | Authentication::Unsupported { .. } => all_skipped(note, &[]),
    };
    Verdict {
        decision: Decision::Deny,
        status: Some(status),
        route: None,
        unrouted: Some(why),
        checks,
        flavor: None,
        claims: None,
        unsupported: None,
        selection: None,
        validation: Validation::NotJudged,
    }
}

fn all_skipped(why: impl Into<Note>, rules: &[ClaimRule]) -> Vec<Check> {
    let why = why.into();
    let before_claims = [
        CheckId::Token,
        CheckId::Format,
        CheckId::Alg,
        CheckId::Key,
        CheckId::Signature,
        CheckId::Exp,
        CheckId::Nbf,
        CheckId::Iss,
        CheckId::Aud,
    ];
    let ids = before_claims
        .into_iter()
        .chain(rules.iter().map(|r| CheckId::Claim(r.key.clone())))
        .chain([CheckId::Active, CheckId::Scope]);
    ids.map(|id| Check::skip(id, why.clone())).collect()
}

pub(crate) fn finish(
    route: &Route,
    info: RouteInfo,
    checks: Vec<Check>,
    flavor: Option<AuthFlavor>,
    claims: Option<Arc<Claims>>,
    allow: bool,
) -> Verdict {
    let status = if allow {
        match &route.backend {
            Backend::Stock(stock) => Some(stock.status),
            // Chosen (dynamic routing) or answered (HTTP, functions) after the verdict.
            Backend::Http(_) | Backend::Functions(_) | Backend::Dynamic(_) => None,
            // Answered by the gateway's OAUTH2 flow before the verdict is enforced.
            Backend::OAuth2Login | Backend::OAuth2Logout(_) => None,
        }
    } else {
        Some(deny_status(&checks))
    };
    Verdict {
        decision: if allow {
            Decision::Allow
        } else {
            Decision::Deny
        },
        status,
        route: Some(info),
        unrouted: None,
        checks,
        flavor,
        claims,
        unsupported: None,
        selection: None,
        validation: Validation::NotJudged,
    }
}

/// The one place a denial becomes a status: keys unavailable 500, authentication 401, scope 403.
fn deny_status(checks: &[Check]) -> u16 {
    let failures: Vec<&Failure> = checks.iter().filter_map(Check::failure).collect();
    if failures
        .iter()
        .any(|f| matches!(f, Failure::FunctionUnavailable { .. }))
    {
        502
    } else if failures.iter().any(|f| f.is_outage()) {
        500
    } else if failures.iter().all(|f| {
        matches!(
            f,
            Failure::ScopeMissing { .. }
                | Failure::ScopeInvalid { .. }
                | Failure::ScopeMismatch { .. }
        )
    }) && !failures.is_empty()
    {
        403
    } else {
        401
    }
}

#[allow(clippy::too_many_arguments)]
fn evaluate_jwt(
    policy: &JwtPolicy,
    route: &Route,
    info: RouteInfo,
    request: &dyn RequestView,
    remote: KeyMaterial<'_>,
    introspection: Introspection<'_>,
    now: UnixTime,
    cache: Option<&dyn VerificationCache>,
    explain: Explain,
    opaque: Option<bool>,
) -> Verdict {
    // Every JWT policy, top-level or a dynamic server's, picks its keys here once.
    let keys = KeyMaterial::for_policy(policy, remote);
    let anonymous = route.authorization == Authorization::Anonymous;
    let flavor = Some(policy.flavor);
    let mut checks = Vec::with_capacity(12 + policy.verify_claims.len());
    let setting = |member: &str| format!("{}.{}", policy.path, spelled(policy, member));

    // token
    let raw = match extract_token(&policy.location, request) {
        Ok(raw) => raw,
        Err(found) if anonymous && found.is_none() => {
            let mut checks = all_skipped(
                "no token; the route allows anonymous access",
                &policy.verify_claims,
            );
            checks[0] = Check::skip(
                CheckId::Token,
                "no token; the route allows anonymous access",
            );
            return finish(route, info, checks, flavor, None, true);
        }
        Err(found) => {
            checks.push(
                Check::new(
                    CheckId::Token,
                    Outcome::fail(Failure::TokenMissing {
                        location: policy.location.clone(),
                        found,
                    }),
                )
                .setting(setting(match policy.location {
                    TokenLocation::Header { .. } => "tokenHeader",
                    TokenLocation::Query { .. } => "tokenQueryParam",
                })),
            );
            return finish_after_stop(policy, route, info, checks, "there is no token", anonymous);
        }
    };
    checks.push(if explain.quiet() {
        Check::passed(CheckId::Token)
    } else {
        Check::new(
            CheckId::Token,
            Outcome::Pass(format!("found in {}", policy.location).into()),
        )
    });

    // Under REMOTE_DISCOVERY, [`prepare`] may have parsed this token already.
    if opaque.unwrap_or_else(|| is_opaque(policy, raw)) {
        return evaluate_opaque(
            policy,
            route,
            info,
            checks,
            raw,
            introspection,
            now,
            anonymous,
            explain,
        );
    }

    // format, alg, key, signature: the part that depends only on the token and the keys
    let mut stage = match cache {
        Some(cache) => cache.get_or_verify(raw, &mut || {
            Arc::new(verify_token(policy, raw, keys, explain))
        }),
        None => Arc::new(verify_token(policy, raw, keys, explain)),
    };
    if stage.verified && stage.checks.is_empty() && !explain.quiet() {
        // Kept by a gateway without its explanation: verify again for the notes.
        stage = Arc::new(verify_token(policy, raw, keys, explain));
    }
    if stage.verified && explain.quiet() {
        checks.extend(
            [
                CheckId::Format,
                CheckId::Alg,
                CheckId::Key,
                CheckId::Signature,
            ]
            .map(Check::passed),
        );
    } else {
        checks.extend(stage.checks.iter().cloned());
    }
    let Some(payload) = stage.payload.as_ref() else {
        return finish_after_stop(
            policy,
            route,
            info,
            checks,
            "the token could not be decoded",
            anonymous,
        );
    };
    let claims = Judged {
        payload,
        verified: stage.verified,
        active: None,
    };
    judge_claims(policy, route, info, checks, claims, now, anonymous, explain)
}

/// What the claim checks judge: a JWT's payload (verified or not) or an introspection answer
/// (`active` is then the passed `active` check).
struct Judged<'a> {
    payload: &'a Arc<Claims>,
    verified: bool,
    active: Option<Check>,
}

/// The claim, `active` and `scope` checks, on a JWT's payload or an introspection answer,
/// and the decision.
#[allow(clippy::too_many_arguments)]
fn judge_claims(
    policy: &JwtPolicy,
    route: &Route,
    info: RouteInfo,
    mut checks: Vec<Check>,
    claims: Judged<'_>,
    now: UnixTime,
    anonymous: bool,
    explain: Explain,
) -> Verdict {
    let Judged {
        payload,
        verified,
        active,
    } = claims;
    let quiet = explain.quiet();
    let flavor = Some(policy.flavor);
    // The policy member a check enforces, named for fixes; not for a quiet pass.
    let with_setting = |check: Check, member: &'static str| {
        if quiet && check.passes() {
            check
        } else {
            check.setting(format!("{}.{}", policy.path, iss_member(policy, member)))
        }
    };
    // Claims are marked unverified unless the signature passed; they run on every request, so
    // an expiry is honoured to the second even when the verification came from a cache.
    let time = TimeContext {
        now,
        skew_seconds: policy.max_clock_skew_seconds,
        kebab: is_kebab(policy),
    };
    let first_claim = checks.len();
    checks.push(judge_exp(payload, time, quiet));
    checks.push(judge_nbf(payload, time, quiet));
    checks.push(with_setting(
        judge_iss(payload, policy.issuers.as_deref(), quiet),
        "issuers",
    ));
    checks.push(with_setting(
        judge_aud(payload, policy.audiences.as_deref(), quiet),
        "audiences",
    ));
    for rule in &policy.verify_claims {
        checks.push(with_setting(
            judge_claim(payload, rule, quiet),
            "verifyClaims",
        ));
    }
    if !verified {
        for check in &mut checks[first_claim..] {
            if !matches!(check.outcome, Outcome::Skip(_)) {
                check.unverified = true;
            }
        }
    }
    checks.push(active.unwrap_or_else(|| {
        Check::skip(
            CheckId::Active,
            "applies to opaque tokens checked by introspection",
        )
    }));
    let authenticated = verified && checks.iter().all(|c| c.failure().is_none());

    // scope
    let scope_check = match &route.authorization {
        Authorization::AnyOf(allowed) if authenticated => {
            let check = judge_scope(payload, allowed, quiet);
            if quiet && check.passes() {
                check
            } else {
                check.setting(format!(
                    "routes[{}].{}",
                    info.index,
                    spelled(policy, "requestPolicies.authorization.allowedScope")
                ))
            }
        }
        Authorization::AnyOf(_) => Check::skip(CheckId::Scope, "authentication failed"),
        _ => Check::skip(CheckId::Scope, "the route does not ask for scopes (ANY_OF)"),
    };
    let scope_ok = scope_check.failure().is_none();
    checks.push(scope_check);

    let allow = anonymous || (authenticated && scope_ok);
    let claims = authenticated.then(|| Arc::clone(payload));
    finish(route, info, checks, flavor, claims, allow)
}

/// An opaque token under REMOTE_DISCOVERY: the JWS stages are skipped, `active` is judged,
/// and the claim checks run on the introspection answer.
#[allow(clippy::too_many_arguments)]
fn evaluate_opaque(
    policy: &JwtPolicy,
    route: &Route,
    info: RouteInfo,
    mut checks: Vec<Check>,
    raw: &str,
    introspection: Introspection<'_>,
    now: UnixTime,
    anonymous: bool,
    explain: Explain,
) -> Verdict {
    const OPAQUE: &str = "an opaque token (not a compact JWS): introspection judges it";
    let in_query = matches!(policy.location, TokenLocation::Query { .. });
    if let Some(failure) = crate::check::bearer_value_failure(raw, in_query) {
        checks.push(Check::new(CheckId::Format, Outcome::fail(failure)));
        return finish_after_stop(
            policy,
            route,
            info,
            checks,
            "the token is not a bearer token",
            anonymous,
        );
    }
    for id in [
        CheckId::Format,
        CheckId::Alg,
        CheckId::Key,
        CheckId::Signature,
    ] {
        checks.push(Check::skip(id, OPAQUE));
    }
    let answer = match introspection {
        Introspection::Answer(answer) => answer,
        Introspection::Unavailable { reason } => {
            return stop_at_active(
                policy,
                route,
                info,
                checks,
                Failure::IntrospectionUnavailable {
                    reason: reason.to_owned(),
                },
                None,
                anonymous,
            )
        }
        Introspection::DiscoveryUnavailable { reason } => {
            let failure = Failure::DiscoveryUnavailable {
                reason: reason.to_owned(),
            };
            return stop_at_active(policy, route, info, checks, failure, None, anonymous);
        }
        Introspection::NotDone | Introspection::Function(_) => {
            let failure = Failure::IntrospectionUnavailable {
                reason: "the token was not introspected".into(),
            };
            return stop_at_active(policy, route, info, checks, failure, None, anonymous);
        }
    };
    let found = answer.get("active");
    if found != Some(Value::Bool(true)) {
        let failure = Failure::Inactive {
            found: found.clone(),
        };
        return stop_at_active(policy, route, info, checks, failure, found, anonymous);
    }
    let active = if explain.quiet() {
        Check::passed(CheckId::Active)
    } else {
        Check::new(
            CheckId::Active,
            Outcome::Pass("the identity provider says the token is active".into()),
        )
        .values(Some(json!(true)), Some(json!(true)))
    };
    let claims = Judged {
        payload: answer,
        verified: true,
        active: Some(active),
    };
    judge_claims(policy, route, info, checks, claims, now, anonymous, explain)
}

/// `active` failed or could not be judged: the claim checks are skipped, the decision is deny.
fn stop_at_active(
    policy: &JwtPolicy,
    route: &Route,
    info: RouteInfo,
    mut checks: Vec<Check>,
    failure: Failure,
    found: Option<Value>,
    anonymous: bool,
) -> Verdict {
    let why = if failure.is_outage() {
        "introspection gave no usable answer"
    } else {
        "the token is not active"
    };
    let rest = all_skipped(why, &policy.verify_claims);
    let claims_end = rest.len() - 2;
    checks.extend(rest.into_iter().skip(checks.len()).take(claims_end - 5));
    checks
        .push(Check::new(CheckId::Active, Outcome::fail(failure)).values(Some(json!(true)), found));
    checks.push(Check::skip(CheckId::Scope, why));
    finish(route, info, checks, Some(policy.flavor), None, anonymous)
}

/// The stages that depend only on the token and the keys (format, alg, key, signature), which
/// is what a verification cache may keep.
fn verify_token(
    policy: &JwtPolicy,
    raw: &str,
    keys: KeyMaterial<'_>,
    explain: Explain,
) -> TokenVerification {
    let quiet = explain.quiet();
    let token = match Jws::parse(raw) {
        Ok(token) => token,
        Err(error) => {
            return TokenVerification {
                checks: vec![Check::new(
                    CheckId::Format,
                    Outcome::fail(Failure::Malformed(error)),
                )],
                payload: None,
                verified: false,
            }
        }
    };
    let format = if quiet {
        Check::passed(CheckId::Format)
    } else {
        Check::new(CheckId::Format, Outcome::Pass("compact JWS".into()))
    };
    let algorithm = Algorithm::from_name(&token.alg);
    let ([alg_check, key_check], key) = judge_alg_and_key(
        policy,
        keys,
        &token.alg,
        algorithm,
        token.kid.as_deref(),
        quiet,
    );
    let (signature_check, verified) = match (key, algorithm) {
        (Some(key), Some(alg)) => {
            let ok = key.verify(alg, token.signing_input(), token.signature());
            let outcome = if ok && quiet {
                Outcome::Pass(Cow::Borrowed(""))
            } else if ok {
                Outcome::Pass(
                    format!(
                        "verified with key '{}' ({})",
                        key.kid().unwrap_or(""),
                        key.kind()
                    )
                    .into(),
                )
            } else {
                Outcome::fail(Failure::BadSignature {
                    kid: key.kid().map(str::to_owned),
                    key: key.kind().to_string(),
                })
            };
            let check = Check::new(CheckId::Signature, outcome);
            let check = if ok && quiet {
                check
            } else {
                check.setting(keys_setting(policy))
            };
            (check, ok)
        }
        _ => (
            Check::skip(CheckId::Signature, "no usable key was found"),
            false,
        ),
    };
    // All four passed: a cache keeps nothing it would not say (and nothing is allocated).
    let checks = if verified && quiet {
        Vec::new()
    } else {
        vec![format, alg_check, key_check, signature_check]
    };
    TokenVerification {
        checks,
        verified,
        payload: Some(Arc::new(token.claims)),
    }
}

/// [`verify_token`] with every check explained, for the OAUTH2 ID token.
pub(crate) fn verify_token_for(
    policy: &JwtPolicy,
    raw: &str,
    keys: KeyMaterial<'_>,
) -> (Vec<Check>, Option<Arc<Claims>>, bool) {
    let v = verify_token(policy, raw, keys, Explain::Everything);
    (v.checks, v.payload, v.verified)
}

/// The `exp`, `iss` and `aud` checks, for the OAUTH2 ID token.
pub(crate) fn judge_exp_for(payload: &Claims, time: TimeContext) -> Check {
    judge_exp(payload, time, false)
}

pub(crate) fn judge_iss_for(payload: &Claims, issuers: Option<&[String]>) -> Check {
    judge_iss(payload, issuers, false)
}

pub(crate) fn judge_aud_for(payload: &Claims, audiences: Option<&[String]>) -> Check {
    judge_aud(payload, audiences, false)
}

fn iss_member(policy: &JwtPolicy, member: &'static str) -> String {
    let member = match policy.flavor {
        AuthFlavor::JwtAuthentication => member.to_owned(),
        AuthFlavor::TokenAuthentication | AuthFlavor::CustomAuthentication => {
            format!("validationPolicy.additionalValidationPolicy.{member}")
        }
    };
    spelled(policy, &member)
}

fn keys_setting(policy: &JwtPolicy) -> String {
    let member = match policy.flavor {
        AuthFlavor::JwtAuthentication => "publicKeys",
        AuthFlavor::TokenAuthentication | AuthFlavor::CustomAuthentication => "validationPolicy",
    };
    format!("{}.{}", policy.path, spelled(policy, member))
}

/// Whether the policy's file is spelled in kebab-case (as `oci ... get` prints deployments): its
/// path, as the file writes it, says so.
fn is_kebab(policy: &JwtPolicy) -> bool {
    policy.path.contains("request-policies")
}

/// Member names after the policy's path, in the file's spelling: the path is as the file
/// writes it, and a kebab-case file (`request-policies...`) is told `public-keys`.
fn spelled(policy: &JwtPolicy, members: &str) -> String {
    if !is_kebab(policy) {
        return members.to_owned();
    }
    let mut out = String::with_capacity(members.len() + 8);
    for c in members.chars() {
        if c.is_ascii_uppercase() {
            out.push('-');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// After `token` or `format` fails, every later check is skipped.
fn finish_after_stop(
    policy: &JwtPolicy,
    route: &Route,
    info: RouteInfo,
    mut checks: Vec<Check>,
    why: &'static str,
    anonymous: bool,
) -> Verdict {
    let rest = all_skipped(why, &policy.verify_claims);
    checks.extend(rest.into_iter().skip(checks.len()));
    finish(route, info, checks, Some(policy.flavor), None, anonymous)
}

/// Reads the token where the policy says. `Err(Some(what))` describes what was there instead.
pub(crate) fn extract_token<'r>(
    location: &TokenLocation,
    request: &'r dyn RequestView,
) -> Result<&'r str, Option<String>> {
    match location {
        TokenLocation::Header { name, scheme } => {
            let value = match request.header(name) {
                HeaderValues::Absent => return Err(None),
                HeaderValues::Many(n) => {
                    return Err(Some(format!(
                        "{n} '{name}' headers (exactly one is accepted)"
                    )))
                }
                HeaderValues::One(value) => value.trim(),
            };
            let token = match scheme {
                None => value,
                Some(scheme) => {
                    let (found, rest) = value.split_once(' ').unwrap_or((value, ""));
                    if !found.eq_ignore_ascii_case(scheme) {
                        return Err(Some(if rest.is_empty() {
                            format!("header '{name}' without the '{scheme}' scheme")
                        } else if looks_like_a_credential(found) {
                            // Tokens never reach a log: the fix names what was sent, not the text.
                            format!("header '{name}' with something other than the '{scheme}' scheme where the scheme should be (not shown: it looks like a credential)")
                        } else {
                            format!("header '{name}' with scheme '{found}' instead of '{scheme}'")
                        }));
                    }
                    rest.trim_start_matches(' ')
                }
            };
            if token.is_empty() {
                return Err(Some(format!("header '{name}' with an empty token")));
            }
            Ok(token)
        }
        TokenLocation::Query { name } => {
            let mut found = request
                .query()
                .unwrap_or("")
                .split('&')
                .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
                .filter(|(key, _)| key == name)
                .map(|(_, value)| value);
            match (found.next(), found.next()) {
                (None, _) => Err(None),
                (Some(_), Some(_)) => Err(Some(format!("query parameter '{name}' more than once"))),
                (Some(""), None) => Err(Some(format!(
                    "query parameter '{name}' with an empty token"
                ))),
                (Some(value), None) => Ok(value),
            }
        }
    }
}

/// Whether the text found where a header's scheme should be may be a credential rather than a
/// scheme name (`Authorization: <jwt> x` puts the token there), so that a verdict, which is
/// logged, does not quote it: longer than 16 characters, two dots (a JWS or JWE), or a run of
/// 8 or more letters and digits that is not a plain word (mixed case after the first letter,
/// or digits: base64 and hex). Scheme names (`Basic`, `Bearer`, `DPoP`, `Negotiate`,
/// `AWS4-HMAC-SHA256`) are still named, so the operator sees what was sent.
fn looks_like_a_credential(found: &str) -> bool {
    if found.len() > 16 || found.matches('.').count() >= 2 {
        return true;
    }
    found
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|run| run.len() >= 8)
        .any(|run| {
            let plain = run.bytes().all(|b| b.is_ascii_uppercase())
                || (run.as_bytes()[0].is_ascii_alphabetic()
                    && run.bytes().skip(1).all(|b| b.is_ascii_lowercase()));
            !plain
        })
}

fn judge_alg_and_key<'k>(
    policy: &JwtPolicy,
    keys: KeyMaterial<'k>,
    header_alg: &str,
    algorithm: Option<Algorithm>,
    kid: Option<&str>,
    quiet: bool,
) -> ([Check; 2], Option<&'k PublicKey>) {
    let setting = || keys_setting(policy);
    let actual_alg = || Some(json!(header_alg));
    let alg_failure = if header_alg
        .trim()
        .trim_end_matches('\0')
        .eq_ignore_ascii_case("none")
    {
        Some(Failure::AlgNone {
            alg: header_alg.to_owned(),
        })
    } else if algorithm.is_none() {
        Some(Failure::AlgUnknown {
            alg: header_alg.to_owned(),
        })
    } else {
        None
    };
    let key_set = match keys {
        KeyMaterial::Keys(set) => set,
        KeyMaterial::Unavailable { reason } | KeyMaterial::DiscoveryUnavailable { reason } => {
            let alg = match alg_failure {
                Some(f) => Check::new(CheckId::Alg, Outcome::fail(f)).values(None, actual_alg()),
                None => Check::skip(CheckId::Alg, "the key set is not available"),
            };
            let failure = match keys {
                KeyMaterial::DiscoveryUnavailable { .. } => Failure::DiscoveryUnavailable {
                    reason: reason.to_owned(),
                },
                _ => Failure::KeysUnavailable {
                    reason: reason.to_owned(),
                },
            };
            let key = Check::new(CheckId::Key, Outcome::fail(failure))
                .values(None, Some(json!(kid)))
                .setting(setting());
            return ([alg, key], None);
        }
    };
    let allowed = key_set.algorithms();
    let expected_algs = || Some(json!(allowed.names()));
    if let Some(failure) = alg_failure {
        return (
            [
                Check::new(CheckId::Alg, Outcome::fail(failure))
                    .values(expected_algs(), actual_alg()),
                Check::skip(CheckId::Key, "the algorithm is not allowed"),
            ],
            None,
        );
    }
    let alg = algorithm.expect("checked above: known algorithm");
    if !allowed.contains(alg) {
        let failure = Failure::AlgNotAllowed {
            alg: header_alg.to_owned(),
            allowed: allowed.names(),
        };
        return (
            [
                Check::new(CheckId::Alg, Outcome::fail(failure))
                    .values(expected_algs(), actual_alg())
                    .setting(setting()),
                Check::skip(CheckId::Key, "the algorithm is not allowed"),
            ],
            None,
        );
    }
    let alg_check = if quiet {
        Check::passed(CheckId::Alg)
    } else {
        Check::new(
            CheckId::Alg,
            Outcome::Pass(format!("{alg} is allowed by the configured keys").into()),
        )
        .values(expected_algs(), actual_alg())
    };
    let known = || -> Vec<String> {
        key_set
            .keys()
            .iter()
            .filter_map(|k| k.kid().map(str::to_owned))
            .collect()
    };
    let (outcome, key) = match kid {
        Some(kid) => {
            // Counted, not collected: the allowed request's key is found without allocating.
            let mut named = key_set.keys().iter().filter(|k| k.kid() == Some(kid));
            let first_named = named.clone().next();
            let mut usable = named.clone().filter(|k| k.allowed().contains(alg));
            let (first_usable, more_usable) = (usable.next(), usable.next().is_some());
            match (first_named, first_usable, more_usable) {
                (None, _, _) => (
                    Outcome::fail(Failure::KeyUnknownKid {
                        kid: kid.to_owned(),
                        known: known(),
                        keys: key_set.keys().len(),
                    }),
                    None,
                ),
                (_, Some(key), false) if quiet => (Outcome::Pass(Cow::Borrowed("")), Some(key)),
                (_, Some(key), false) => (
                    Outcome::Pass(format!("kid '{kid}' is the {} key", key.kind()).into()),
                    Some(key),
                ),
                (Some(first), None, _) => (
                    Outcome::fail(Failure::KeyNotForAlg {
                        kid: Some(kid.to_owned()),
                        alg: alg.name().to_owned(),
                        key: format!(
                            "{} (allows {})",
                            first.kind(),
                            first.allowed().names().join(", ")
                        ),
                    }),
                    None,
                ),
                (Some(_), Some(_), true) => (
                    Outcome::fail(Failure::KeyAmbiguous {
                        kid: Some(kid.to_owned()),
                        count: named.by_ref().filter(|k| k.allowed().contains(alg)).count(),
                    }),
                    None,
                ),
            }
        }
        None => {
            let usable = key_set.keys().iter().filter(|k| k.allowed().contains(alg));
            let mut first_two = usable.clone();
            match (first_two.next(), first_two.next()) {
                (Some(key), None) if quiet => (Outcome::Pass(Cow::Borrowed("")), Some(key)),
                (Some(key), None) => (
                    Outcome::Pass(
                        format!("no kid; the only {alg} key is the {} key", key.kind()).into(),
                    ),
                    Some(key),
                ),
                (None, _) => (
                    Outcome::fail(Failure::KeyNoKidNoMatch {
                        alg: alg.name().to_owned(),
                    }),
                    None,
                ),
                (Some(_), Some(_)) => (
                    Outcome::fail(Failure::KeyAmbiguous {
                        kid: None,
                        count: usable.count(),
                    }),
                    None,
                ),
            }
        }
    };
    let key_check = if quiet && key.is_some() {
        Check::new(CheckId::Key, outcome)
    } else {
        Check::new(CheckId::Key, outcome)
            .values(Some(json!(known())), Some(json!(kid)))
            .setting(setting())
    };
    ([alg_check, key_check], key)
}

/// The latest NumericDate accepted: 9999-12-31T23:59:59Z.
const MAX_NUMERIC_DATE: f64 = 253_402_300_799.0;

/// Reads a NumericDate claim, rounding toward refusal (`floor` for exp, `ceil` for nbf).
fn numeric_date(
    actual: Option<&Value>,
    claim: &'static str,
    round: fn(f64) -> f64,
) -> Result<Option<i64>, Failure> {
    match actual {
        None => Ok(None),
        Some(Value::Number(n)) => {
            let v = n.as_f64().unwrap_or(f64::NAN);
            if !(0.0..=MAX_NUMERIC_DATE).contains(&v) {
                return Err(Failure::TimeOutOfRange { claim });
            }
            Ok(Some(round(v) as i64))
        }
        Some(other) => Err(Failure::TimeNotNumber {
            claim,
            found: json_type(other),
        }),
    }
}

fn time_check(
    id: CheckId,
    outcome: Outcome,
    expected: Option<Value>,
    actual: Option<Value>,
    time: TimeContext,
) -> Check {
    let mut check = Check::new(id, outcome).values(expected, actual);
    check.time = Some(time);
    check
}

/// A NumericDate read in place when it is a non-negative integer in range (nearly every
/// token's; an integer needs none of [`numeric_date`]'s rounding): `None` when it is anything
/// else, for the full reading.
fn plain_numeric_date(payload: &Claims, claim: Registered) -> Option<f64> {
    match payload.registered(claim)? {
        ClaimRef::Uint(n) if n as f64 <= MAX_NUMERIC_DATE => Some(n as f64),
        _ => None,
    }
}

fn judge_exp(payload: &Claims, time: TimeContext, quiet: bool) -> Check {
    // The allowed request's reading: no value decoded, nothing allocated.
    if quiet {
        if let Some(exp) = plain_numeric_date(payload, Registered::Exp) {
            if (time.now.0 as f64) <= exp + time.skew_seconds {
                return Check::passed(CheckId::Exp);
            }
        }
    }
    let actual = payload.get("exp");
    let skew = time.skew_seconds;
    let outcome = match numeric_date(actual.as_ref(), "exp", f64::floor) {
        Err(failure) => Outcome::fail(failure),
        Ok(None) => Outcome::fail(Failure::TimeMissing { claim: "exp" }),
        Ok(Some(exp)) if (time.now.0 as f64) <= exp as f64 + skew && quiet => {
            return Check::passed(CheckId::Exp)
        }
        Ok(Some(exp)) if (time.now.0 as f64) <= exp as f64 + skew => Outcome::Pass(
            format!(
                "expires {} ({})",
                UnixTime(exp),
                crate::time::relative(exp, time.now)
            )
            .into(),
        ),
        Ok(Some(exp)) => Outcome::fail(Failure::Expired {
            exp,
            now: time.now,
            skew,
        }),
    };
    let expected = json!(format!("now <= exp + {}", crate::time::skew_text(skew)));
    time_check(CheckId::Exp, outcome, Some(expected), actual, time)
}

fn judge_nbf(payload: &Claims, time: TimeContext, quiet: bool) -> Check {
    if quiet {
        if let Some(nbf) = plain_numeric_date(payload, Registered::Nbf) {
            if (time.now.0 as f64) >= nbf - time.skew_seconds {
                return Check::passed(CheckId::Nbf);
            }
        }
    }
    let actual = payload.get("nbf");
    let skew = time.skew_seconds;
    let outcome = match numeric_date(actual.as_ref(), "nbf", f64::ceil) {
        Err(failure) => Outcome::fail(failure),
        Ok(None) => return Check::skip(CheckId::Nbf, "the token has no 'nbf' claim"),
        Ok(Some(nbf)) if (time.now.0 as f64) >= nbf as f64 - skew && quiet => {
            return Check::passed(CheckId::Nbf)
        }
        Ok(Some(nbf)) if (time.now.0 as f64) >= nbf as f64 - skew => Outcome::Pass(
            format!(
                "valid since {} ({})",
                UnixTime(nbf),
                crate::time::relative(nbf, time.now)
            )
            .into(),
        ),
        Ok(Some(nbf)) => Outcome::fail(Failure::NotYetValid {
            nbf,
            now: time.now,
            skew,
        }),
    };
    let expected = json!(format!("now >= nbf - {}", crate::time::skew_text(skew)));
    time_check(CheckId::Nbf, outcome, Some(expected), actual, time)
}

fn judge_iss(payload: &Claims, issuers: Option<&[String]>, quiet: bool) -> Check {
    let Some(issuers) = issuers else {
        return Check::skip(CheckId::Iss, "the policy does not check issuers");
    };
    if quiet && plain_string_in(payload, Registered::Iss, issuers) {
        return Check::passed(CheckId::Iss);
    }
    let actual = payload.get("iss");
    let outcome = match &actual {
        None => Outcome::fail(Failure::IssMissing),
        Some(Value::String(iss)) if issuers.iter().any(|i| i == iss) => {
            if quiet {
                return Check::passed(CheckId::Iss);
            }
            Outcome::Pass(format!("`{iss}` is a configured issuer").into())
        }
        Some(Value::String(iss)) => Outcome::fail(Failure::IssMismatch {
            actual: iss.clone(),
            expected: issuers.to_vec(),
        }),
        Some(other) => Outcome::fail(Failure::IssNotString {
            found: json_type(other),
        }),
    };
    Check::new(CheckId::Iss, outcome).values(Some(json!(issuers)), actual)
}

fn judge_aud(payload: &Claims, audiences: Option<&[String]>, quiet: bool) -> Check {
    let Some(audiences) = audiences else {
        return Check::skip(CheckId::Aud, "the policy does not check audiences");
    };
    // A single audience as a plain string; an array takes the full reading.
    if quiet && plain_string_in(payload, Registered::Aud, audiences) {
        return Check::passed(CheckId::Aud);
    }
    let actual = payload.get("aud");
    let presented: Result<Vec<&str>, String> = match &actual {
        None => Err(String::new()),
        Some(Value::String(s)) => Ok(vec![s.as_str()]),
        Some(Value::Array(items)) if items.is_empty() => Err("is an empty array".into()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .ok_or_else(|| format!("has {} where strings belong", json_type(i)))
            })
            .collect(),
        Some(other) => Err(format!(
            "is {}, not a string or an array of strings",
            json_type(other)
        )),
    };
    let outcome = match presented {
        Err(why) if why.is_empty() => Outcome::fail(Failure::AudMissing),
        Err(why) => Outcome::fail(Failure::AudInvalid { why }),
        Ok(list) => match list.iter().find(|a| audiences.iter().any(|b| b == *a)) {
            Some(_) if quiet => return Check::passed(CheckId::Aud),
            Some(hit) => Outcome::Pass(format!("`{hit}` is a configured audience").into()),
            None => Outcome::fail(Failure::AudMismatch {
                actual: list.into_iter().map(str::to_owned).collect(),
                expected: audiences.to_vec(),
            }),
        },
    };
    Check::new(CheckId::Aud, outcome).values(Some(json!(audiences)), actual)
}

/// Whether member `claim` is a string without escapes equal to one of `accepted` (read in place).
fn plain_string_in(payload: &Claims, claim: Registered, accepted: &[String]) -> bool {
    matches!(payload.registered(claim), Some(ClaimRef::Str(s)) if accepted.iter().any(|a| a == s))
}

/// The passed `verifyClaims` check read in place, when the claim is present as a string without
/// escapes, a non-negative integer or a boolean (compared by its JSON text, as the full
/// reading compares them).
fn plain_claim_passes(payload: &Claims, rule: &ClaimRule) -> bool {
    let Some(text) = payload.raw_value(&rule.key) else {
        return false;
    };
    if rule.values.is_empty() {
        return true;
    }
    let text = match ClaimRef::of_text(text) {
        ClaimRef::Str(s) => s,
        ClaimRef::Uint(_) => text,
        ClaimRef::Other(literal @ ("true" | "false")) => literal,
        ClaimRef::Other(_) => return false,
    };
    rule.values.iter().any(|v| v == text)
}

fn judge_claim(payload: &Claims, rule: &ClaimRule, quiet: bool) -> Check {
    if quiet && plain_claim_passes(payload, rule) {
        return Check::passed(CheckId::Claim(rule.key.clone()));
    }
    let id = CheckId::Claim(rule.key.clone());
    let actual = payload.get(&rule.key);
    let outcome = match &actual {
        None if rule.required => Outcome::fail(Failure::ClaimMissing {
            key: rule.key.clone(),
        }),
        None if quiet => return Check::passed(id),
        None => Outcome::Pass("absent, and not required".into()),
        Some(_) if rule.values.is_empty() && quiet => return Check::passed(id),
        Some(_) if rule.values.is_empty() => Outcome::Pass("present".into()),
        Some(value) => {
            // OCI: "simply handled as strings, and must match exactly". Numbers and booleans
            // compare by their JSON text; arrays, objects and null never match.
            let text: Option<Cow<'_, str>> = match value {
                Value::String(s) => Some(Cow::Borrowed(s)),
                Value::Number(n) => Some(Cow::Owned(n.to_string())),
                Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
                _ => None,
            };
            match text {
                Some(t) if rule.values.iter().any(|v| *v == *t) => {
                    if quiet {
                        return Check::passed(id);
                    }
                    Outcome::Pass(format!("`{t}` is an expected value").into())
                }
                _ => Outcome::fail(Failure::ClaimMismatch {
                    key: rule.key.clone(),
                    actual: value.clone(),
                    expected: rule.values.clone(),
                }),
            }
        }
    };
    let expected = (!rule.values.is_empty()).then(|| json!(rule.values));
    Check::new(id, outcome).values(expected, actual)
}

pub(crate) fn judge_scope(payload: &Claims, allowed: &[String], quiet: bool) -> Check {
    // A space-separated string without escapes, read in place.
    if quiet {
        if let Some(ClaimRef::Str(scopes)) = payload.registered(Registered::Scope) {
            if scopes
                .split(' ')
                .any(|s| !s.is_empty() && allowed.iter().any(|a| a == s))
            {
                return Check::passed(CheckId::Scope);
            }
        }
    }
    let actual = payload.get("scope");
    let outcome = match &actual {
        None => Outcome::fail(Failure::ScopeMissing {
            allowed: allowed.to_vec(),
        }),
        Some(value) => {
            let scopes: Option<Vec<&str>> = match value {
                Value::String(s) => Some(s.split(' ').filter(|s| !s.is_empty()).collect()),
                Value::Array(items) => items.iter().map(Value::as_str).collect(),
                _ => None,
            };
            match scopes {
                None => Outcome::fail(Failure::ScopeInvalid {
                    found: json_type(value),
                }),
                Some(scopes) => match scopes.iter().find(|s| allowed.iter().any(|a| a == *s)) {
                    Some(_) if quiet => return Check::passed(CheckId::Scope),
                    Some(hit) => Outcome::Pass(format!("`{hit}` is an allowed scope").into()),
                    None => Outcome::fail(Failure::ScopeMismatch {
                        actual: scopes.into_iter().map(str::to_owned).collect(),
                        allowed: allowed.to_vec(),
                    }),
                },
            }
        }
    };
    Check::new(CheckId::Scope, outcome).values(Some(json!(allowed)), actual)
}

impl Verdict {
    /// The execution-log events this verdict implies, in order: one per failed check, then the
    /// success record when authentication passed; then the request validation records (one per
    /// failed validation, or `validationPermitted`).
    pub fn events(&self) -> Vec<Event> {
        let mut events = self.access_events();
        for (index, check) in self.checks.iter().enumerate() {
            if let Some(failure @ Failure::Validation { .. }) = check.failure() {
                events.push(Event {
                    code: crate::check::VALIDATION_ERROR.into(),
                    level: "WARN",
                    message: failure.message(&check.id).into(),
                    check: Some(index),
                });
            }
        }
        if self.validation == Validation::Passed {
            events.push(Event {
                code: "requestValidation.validationPermitted".into(),
                level: "INFO",
                message: "Request passed a validation policy.".into(),
                check: None,
            });
        }
        events
    }

    /// Whether authentication and authorization allowed the request: its decision is allow,
    /// or only an `ENFORCING` request validation refuses it (a gateway counts it toward its
    /// usage plan first).
    pub fn passed_access(&self) -> bool {
        self.decision == Decision::Allow || self.validation.refused().is_some()
    }

    /// The request is refused before validation (a usage plan's 403, which `check` judges
    /// after the verdict): the validation checks become skips and conclude nothing.
    pub fn skip_validation(&mut self, why: &'static str) {
        for check in &mut self.checks {
            if matches!(
                check.id,
                CheckId::Header(_) | CheckId::Query(_) | CheckId::Body
            ) {
                *check = Check::skip(check.id.clone(), why);
            }
        }
        self.validation = Validation::NotJudged;
    }

    /// The authentication and authorization events: [`Verdict::events`] without request
    /// validation's, which a gateway records in its own phase, after usage plans.
    pub fn access_events(&self) -> Vec<Event> {
        let mut events = Vec::new();
        if let Some(selection) = &self.selection {
            if let Some(problem) = selection.token_problem {
                events.push(Event {
                    code: problem.log_code().into(),
                    level: "WARN",
                    message: problem.message(&selection.selector).into(),
                    check: None,
                });
            }
            let name = selection.server_name.as_deref().unwrap_or("");
            let matched = match selection.matched {
                Matched::AnyOf | Matched::Wildcard => Some((
                    "dynamicAuthentication.authenticationServerMatched",
                    format!(
                        "Authentication server '{name}' matched {} = '{}'.",
                        selection.selector,
                        selection.value.as_deref().unwrap_or("")
                    ),
                )),
                Matched::Default => Some((
                    "dynamicAuthentication.defaultAuthenticationServerMatched",
                    format!(
                        "No key matched {}; default authentication server '{name}' selected.",
                        selection.selector
                    ),
                )),
                Matched::None => None,
            };
            if let Some((code, message)) = matched {
                events.push(Event {
                    code: code.into(),
                    level: "INFO",
                    message: message.into(),
                    check: None,
                });
            }
        }
        // A request no server was selected for has no flavor; its one failure names its code.
        let Some(flavor) = self.flavor.or(self
            .selection
            .as_ref()
            .map(|_| AuthFlavor::JwtAuthentication))
        else {
            return events;
        };
        for (index, check) in self.checks.iter().enumerate() {
            if let Some(failure) = check
                .failure()
                .filter(|f| !matches!(f, Failure::Validation { .. }))
            {
                let level = if failure.is_outage() { "ERROR" } else { "WARN" };
                events.push(Event {
                    code: failure.log_code(flavor).into(),
                    level,
                    message: failure.message(&check.id).into(),
                    check: Some(index),
                });
            }
        }
        if self.claims.is_some() {
            let (code, message) = match flavor {
                AuthFlavor::JwtAuthentication => (
                    "jwtAuthentication.successfulAuthentication",
                    "JWT Authentication successful.",
                ),
                AuthFlavor::TokenAuthentication => (
                    "tokenAuthentication.successfulAuthentication",
                    "Token authentication successful.",
                ),
                AuthFlavor::CustomAuthentication => (
                    "customAuthentication.successfulAuthentication",
                    "Custom authentication successful.",
                ),
            };
            let position = events
                .iter()
                .position(|e| e.code == "authorization.unauthorizedRequest")
                .unwrap_or(events.len());
            events.insert(
                position,
                Event {
                    code: code.into(),
                    level: "INFO",
                    message: message.into(),
                    check: None,
                },
            );
        }
        events
    }

    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.failure().is_some())
    }

    /// Whether the answer is unknown because key material was unavailable.
    pub fn keys_unavailable(&self) -> bool {
        self.failures()
            .any(|c| c.failure().is_some_and(Failure::is_outage))
    }

    /// The stable JSON form (`check --output json`), without the envelope's `version`.
    pub fn to_json(&self) -> Value {
        let route = self.route.as_ref().map(|r| {
            json!({
                "path": r.path,
                "pathPrefix": r.path_prefix,
                "methods": r.methods,
                "index": r.index,
                "params": r.params.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<Map<_, _>>(),
            })
        });
        let checks: Vec<Value> = self.checks.iter().map(check_json).collect();
        let events: Vec<Value> = self
            .events()
            .into_iter()
            .map(|e| {
                let mut event = json!({"code": e.code, "level": e.level, "message": e.message});
                if let Some(i) = e.check {
                    event["check"] = json!(self.checks[i].id.to_string());
                }
                event
            })
            .collect();
        let mut out = json!({
            "decision": self.decision.name(),
            "status": self.status,
            "route": route,
            "checks": checks,
            "events": events,
        });
        if let Some(Unrouted::MethodNotAllowed { allow }) = &self.unrouted {
            out["allow"] = json!(allow);
        }
        if let Some(Unrouted::PathRejected(why)) = &self.unrouted {
            out["pathRejected"] = json!(why.reason());
        }
        if let Some(why) = &self.unsupported {
            out["unsupported"] = json!(why);
        }
        if let Some(selection) = &self.selection {
            out["server"] = json!({
                "selected": selection.server_name,
                "matched": match selection.matched {
                    Matched::AnyOf => "ANY_OF",
                    Matched::Wildcard => "WILDCARD",
                    Matched::Default => "DEFAULT",
                    Matched::None => "NONE",
                },
                "selector": selection.selector,
                "value": selection.value,
                "keysTried": selection.keys_tried,
            });
        }
        out
    }
}

fn check_json(check: &Check) -> Value {
    let mut out = Map::new();
    out.insert("check".into(), json!(check.id.to_string()));
    out.insert("result".into(), json!(check.outcome.name()));
    match &check.outcome {
        Outcome::Fail(_) => {
            out.insert("message".into(), json!(check.message()));
        }
        Outcome::Pass(note) => {
            out.insert("detail".into(), json!(note));
        }
        Outcome::Skip(why) => {
            out.insert("reason".into(), json!(why));
        }
    }
    if let Some(expected) = &check.expected {
        out.insert("expected".into(), Value::clone(expected));
    }
    if let Some(actual) = &check.actual {
        out.insert("actual".into(), Value::clone(actual));
    }
    if let Some(time) = &check.time {
        out.insert("now".into(), json!(time.now.0));
        out.insert("skew".into(), json!(time.skew_seconds));
    }
    if check.unverified {
        out.insert("unverified".into(), json!(true));
    }
    if let Some(fix) = check.fix() {
        out.insert("fix".into(), json!(fix));
    }
    if check.failure().is_some() {
        if let Some(setting) = &check.setting {
            out.insert("setting".into(), json!(setting));
        }
    }
    Value::Object(out)
}

impl Verdict {
    /// The URL the gateway would call for an allowed request to an HTTP backend, built by
    /// [`crate::path::expand_backend_url`] from the same values the gateway uses. When a value
    /// would change the backend path's shape or host, the verdict becomes the gateway's answer:
    /// deny, 400, [`Unrouted::PathRejected`]. `None` when no HTTP backend would be called.
    pub fn judge_backend_url(
        &mut self,
        deployment: &Deployment,
        request: &dyn RequestView,
    ) -> Option<String> {
        if self.decision != Decision::Allow {
            return None;
        }
        let route = self.route.as_ref()?;
        let claimgate_config::Backend::Http(backend) = &deployment.routes.get(route.index)?.backend
        else {
            return None;
        };
        let template = claimgate_config::Template::parse(&backend.url).ok()?;
        let claims = self.claims.clone();
        let result = crate::path::expand_backend_url(&template, |variable| {
            context_value(
                variable,
                &route.params,
                claims.as_deref(),
                request.query(),
                |name| request.first_header(name),
            )
        });
        match result {
            Ok(url) => Some(url),
            Err(why) => {
                self.decision = Decision::Deny;
                self.status = Some(400);
                self.unrouted = Some(Unrouted::PathRejected(why));
                None
            }
        }
    }
}

/// A context variable's text, as the gateway substitutes it and `check` explains it:
/// `request.path` (the route's parameters), `request.auth` (verified claims: strings as they
/// are, other values as JSON), `request.headers` (a repeated header's first value),
/// `request.query` (as sent, still percent-encoded), `request.host` and
/// `request.subdomain[...]` (from the host without its port); empty when missing, as OCI
/// renders a missing variable, and for tables the caller supplies itself (`request.cert`).
pub fn context_value<'h>(
    variable: &claimgate_config::ContextVariable,
    params: &[(String, String)],
    claims: Option<&Claims>,
    query: Option<&str>,
    header: impl FnOnce(&str) -> Option<&'h str>,
) -> String {
    use claimgate_config::ContextTable;
    let key = variable.key.as_deref().unwrap_or("");
    match variable.table {
        ContextTable::Path => params
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default(),
        ContextTable::Auth if variable.sub_key.is_none() => claims
            .and_then(|c| c.get(key))
            .map(|value| crate::claims::claim_text(&value))
            .unwrap_or_default(),
        ContextTable::Headers => header(key).unwrap_or_default().to_owned(),
        ContextTable::Query => query
            .unwrap_or("")
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(name, _)| *name == key)
            .map(|(_, v)| v.to_owned())
            .unwrap_or_default(),
        ContextTable::Host => header("host").unwrap_or_default().to_owned(),
        ContextTable::Subdomain => header("host")
            .and_then(|h| crate::dynamic::subdomain(crate::dynamic::host_without_port(h), key))
            .unwrap_or_default()
            .to_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request with one `Authorization` header.
    #[derive(Debug)]
    struct Authorization(&'static str);

    impl RequestView for Authorization {
        fn method(&self) -> &str {
            "GET"
        }
        fn path(&self) -> &str {
            "/"
        }
        fn query(&self) -> Option<&str> {
            None
        }
        fn header(&self, name: &str) -> HeaderValues<'_> {
            if name.eq_ignore_ascii_case("authorization") {
                HeaderValues::One(self.0)
            } else {
                HeaderValues::Absent
            }
        }
    }

    fn found(value: &'static str) -> String {
        let bearer = TokenLocation::Header {
            name: "Authorization".into(),
            scheme: Some("Bearer".into()),
        };
        extract_token(&bearer, &Authorization(value))
            .expect_err("refused")
            .expect("described")
    }

    #[test]
    fn a_token_where_the_scheme_should_be_is_not_quoted() {
        for value in [
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ x",
            // Short, but shaped like a token or a password.
            "a.b.c x",
            "dXNlcjpwYXNz x",
            "deadbeef42 x",
            "s3cr3tpassword x",
            // Long, whatever it looks like.
            "averyveryverylongschemename x",
        ] {
            let text = found(value);
            let sent = value.split(' ').next().unwrap();
            assert!(!text.contains(sent), "{value}: {text}");
            assert!(text.contains("not shown"), "{text}");
        }
    }

    #[test]
    fn a_scheme_name_is_still_quoted() {
        for (value, scheme) in [
            ("Basic dXNlcjpwYXNz", "Basic"),
            ("DPoP abc", "DPoP"),
            ("Negotiate YIIB", "Negotiate"),
            ("AWS4-HMAC-SHA256 Credential=x", "AWS4-HMAC-SHA256"),
            ("TOKEN abc", "TOKEN"),
        ] {
            let text = found(value);
            assert_eq!(
                text,
                format!("header 'Authorization' with scheme '{scheme}' instead of 'Bearer'"),
            );
        }
        assert_eq!(
            found("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"),
            "header 'Authorization' without the 'Bearer' scheme"
        );
    }
}
