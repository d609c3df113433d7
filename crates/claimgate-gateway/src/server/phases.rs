//! The request path as named phases, in OCI's order ([`PhaseId::ORDER`]): each policy is one
//! method here that a reader can find and a test can target. A request phase either lets the
//! request go on ([`Step::Next`]) or answers it ([`Step::Answer`]); after an early answer only
//! the `logs` phase runs (CORS decoration, `opc-request-id`, metrics, access log). Response
//! phases run on answers that came from the backend (or, for response transformations, from
//! the cache).
//!
//! Per-request state is one [`Exchange`] on `handle`'s stack (pingora's per-request `CTX`),
//! borrowing the deployment as served: no phase allocates to pass state to the next.
//!
//! | phase | where |
//! |---|---|
//! | route | [`Gateway::handle`]: the target is settled, the deployment found; the route is matched with authentication, in the verdict |
//! | rateLimit, cors, mutualTls | [`Gateway::before_authentication`] (`server/edge.rs`) |
//! | authentication | [`Gateway::authentication`] |
//! | authorization | [`Gateway::authorization`] |
//! | usagePlan | [`Gateway::usage_plan_phase`] (`server.rs`), settled by `usage_plan_settle` |
//! | validation | [`Gateway::validation`] |
//! | cacheLookup | [`Gateway::cache_lookup`] |
//! | transformations, backend | [`Gateway::backend`]: request transformations apply as the backend request is built |
//! | responseTransformations | [`Gateway::response_transformations`] |
//! | cacheStore | [`Gateway::cache_store`] |
//! | logs | [`Gateway::logs_phase`] |

use super::{level, Gateway, PartsView, Served, ServedSet, UsageCounted};
use crate::logs::{Context, Level};
use crate::respond::{self, Body};
use claimgate_core::{Decision, PhaseId, Unrouted, Verdict};
use http::{HeaderValue, Response};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::time::Instant;

/// What a request phase decided.
pub(super) enum Step {
    /// The request goes on to the next phase.
    Next,
    /// The phase answered the request (a refusal, a preflight, a cached answer).
    Answer(Response<Body>),
}

/// The request body: streaming from the client, or read whole before authentication because
/// an authorizer function takes `request.body` (then forwarded from memory).
pub(super) enum RequestBody {
    Streaming(Incoming),
    Read(bytes::Bytes),
}

impl RequestBody {
    /// Whether a body follows the head: hyper knows from `Content-Length` or chunked coding
    /// over HTTP/1.1, and from the HEADERS frame's END_STREAM over HTTP/2.
    fn is_present(&self) -> bool {
        match self {
            RequestBody::Streaming(body) => !hyper::body::Body::is_end_stream(body),
            RequestBody::Read(bytes) => !bytes.is_empty(),
        }
    }

    /// `request.body` as an authorizer function is given it: the body read whole, if UTF-8.
    fn text(&self) -> Option<&str> {
        match self {
            RequestBody::Read(bytes) => std::str::from_utf8(bytes).ok(),
            RequestBody::Streaming(_) => None,
        }
    }

    /// The body to send to the backend: a streaming one cut off at [`super::MAX_BODY_BYTES`].
    fn into_backend_body(self) -> Body {
        match self {
            RequestBody::Streaming(body) => crate::proxy::client_body(body, super::MAX_BODY_BYTES),
            RequestBody::Read(bytes) => respond::full(bytes),
        }
    }
}

/// One request on its way through the phases.
pub(super) struct Exchange<'a> {
    pub(super) state: &'a ServedSet,
    pub(super) served: &'a Served,
    pub(super) parts: http::request::Parts,
    /// The request body, until the backend phase takes it.
    pub(super) body: Option<RequestBody>,
    pub(super) peer: SocketAddr,
    /// The request's id as the header value it is sent in (its text is `context.request_id`).
    pub(super) request_id_header: &'a HeaderValue,
    pub(super) started: Instant,
    pub(super) context: Context<'a>,
    /// The execution log's threshold: the route's `loggingPolicies` once it is known, else
    /// the deployment's.
    pub(super) threshold: Level,
    /// Set by the authentication phase (route, checks, claims), read by every later phase.
    pub(super) verdict: Option<Verdict>,
    /// The quota unit the usage-plan phase took, settled once the answer's status is known.
    pub(super) usage: Option<UsageCounted<'a>>,
    /// The client certificate of the TLS connection, when the listener asks for one.
    pub(super) client: Option<&'a crate::mtls::PeerCertificate>,
    /// Whether the answer came from the route's backend (or the cache), not from the gateway:
    /// only such answers get response transformations.
    pub(super) backend_answered: bool,
    /// The CSRF token of the request's OAUTH2 cookie session, returned as `X-CSRF-TOKEN`.
    pub(super) csrf: Option<String>,
    /// What the cache lookup said (`X-Cache-Status`), when the request reached it on a caching
    /// route.
    pub(super) cache_status: Option<crate::response_cache::CacheStatus>,
    /// On a miss: where the backend's answer is stored.
    pub(super) cache_pending: Option<crate::response_cache::Pending>,
}

impl<'a> Exchange<'a> {
    /// The verdict of the authentication phase: the phases after it rely on it (the `logs`
    /// phase, which also runs after an early answer, reads `verdict` itself).
    pub(super) fn verdict(&self) -> &Verdict {
        self.verdict
            .as_ref()
            .expect("the authentication phase runs before the phases that read its verdict")
    }

    /// The index of the matched route in the deployment, once authentication has routed.
    pub(super) fn route_index(&self) -> Option<usize> {
        self.verdict
            .as_ref()
            .and_then(|v| v.route.as_ref())
            .map(|r| r.index)
    }
}

/// Runs one request phase: returns its answer from the enclosing function when it gives one.
/// The phase's id is written where it runs, so the order reads as `PhaseId::ORDER` does.
macro_rules! phase {
    ($id:expr, $step:expr) => {{
        let _: PhaseId = $id;
        if let Step::Answer(response) = $step {
            return response;
        }
    }};
}

impl Gateway {
    /// The phases after mutual TLS, up to the answer: authentication, authorization, usage
    /// plan, validation, cache lookup, then (on a miss) transformations, backend and cache
    /// store, and response transformations on whatever answer came from the backend or cache.
    pub(super) async fn request_phases<'a>(&self, x: &mut Exchange<'a>) -> Response<Body> {
        phase!(PhaseId::Authentication, self.authentication(x).await);
        phase!(PhaseId::Authorization, self.authorization(x));
        phase!(PhaseId::UsagePlan, self.usage_plan(x).await);
        phase!(PhaseId::Validation, self.validation(x));
        let response = match self.cache_lookup(x).await {
            Step::Answer(hit) => hit,
            Step::Next => {
                let response = self.backend(x).await;
                self.cache_store(x, response).await
            }
        };
        self.response_transformations(x, response)
    }

    /// `authentication` (and route matching, which the verdict does with it): judges the
    /// request with the keys at hand and writes the verdict's records.
    async fn authentication(&self, x: &mut Exchange<'_>) -> Step {
        crate::mtls::ClientCertificate::attach(
            x.served.deployment.mutual_tls.as_ref(),
            x.client,
            &mut x.parts.extensions,
        );
        if x.served.authorizer_reads_body {
            if let Err(refused) = self.read_body_for_authorizer(x).await {
                return Step::Answer(refused);
            }
        }
        // OAUTH2: a session stands for the token (server/oauth2.rs).
        let prepared = self.oauth2_prepare(x);
        let body = x.body.as_ref().is_some_and(RequestBody::is_present);
        let text = x.body.as_ref().and_then(RequestBody::text);
        // The authorizer's and OAUTH2's futures are boxed, and only built for deployments that
        // have them: the request's future is as large as its largest phase, and hyper moves it
        // whole, byte for byte, into the connection's state on every request.
        let authorized = if super::custom::has_authorizer(&x.served.deployment) {
            Box::pin(self.judge_authorizer(
                x.state,
                x.served,
                &mut x.parts,
                (body, text),
                x.context,
                x.threshold,
            ))
            .await
        } else {
            None
        };
        let verdict = match authorized {
            Some(verdict) => verdict,
            None => {
                let view = PartsView {
                    parts: &x.parts,
                    body,
                    text: None,
                };
                self.judge(x.served, &view).await
            }
        };
        x.threshold = verdict
            .route
            .as_ref()
            .and_then(|r| x.served.deployment.routes.get(r.index))
            .and_then(|r| r.execution_log_level)
            .map_or(x.served.threshold, |l| level(Some(l)));
        let oauth2_route = verdict
            .route
            .as_ref()
            .and_then(|r| x.served.deployment.routes.get(r.index))
            .is_some_and(|r| {
                matches!(
                    r.backend,
                    claimgate_config::Backend::OAuth2Login
                        | claimgate_config::Backend::OAuth2Logout(_)
                )
            });
        // The login and logout routes skip authentication: their verdict is not reported.
        if !oauth2_route {
            self.log_verdict(&verdict, x.context, x.threshold);
        }
        x.verdict = Some(verdict);
        if Self::without_oauth2(x) {
            return Step::Next;
        }
        Box::pin(self.oauth2_answer(x, prepared)).await
    }

    /// Reads the request body whole for an authorizer function that takes `request.body`: at
    /// most [`claimgate_config::AUTHORIZER_BODY_LIMIT`] (413 beyond), a malformed body 400,
    /// both recorded as `request.bodyInvalid`. The backend then gets the body from memory.
    async fn read_body_for_authorizer(&self, x: &mut Exchange<'_>) -> Result<(), Response<Body>> {
        use http_body_util::BodyExt as _;
        let limit = claimgate_config::AUTHORIZER_BODY_LIMIT;
        // A declared length above the limit is refused before a byte is read.
        let declared = x
            .parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let refusal = match x.body.take() {
            Some(RequestBody::Streaming(_)) if declared.is_some_and(|n| n > limit as u64) => None,
            Some(RequestBody::Streaming(incoming)) => {
                match http_body_util::Limited::new(incoming, limit)
                    .collect()
                    .await
                {
                    Ok(collected) => {
                        x.body = Some(RequestBody::Read(collected.to_bytes()));
                        return Ok(());
                    }
                    Err(cause) if cause.is::<http_body_util::LengthLimitError>() => None,
                    Err(cause) => Some(cause.to_string()),
                }
            }
            other => {
                x.body = other;
                return Ok(());
            }
        };
        let (status, message) = match refusal {
            None => (
                413,
                format!(
                    "The request body is larger than {limit} bytes, the most an authorizer \
                     function is given as request.body."
                ),
            ),
            Some(cause) => (400, format!("The request body is invalid: {cause}.")),
        };
        self.logs
            .execution(x.context, x.threshold, super::body_invalid(&message));
        Err(respond::error(status))
    }

    /// The route's `authorization`, with the verdict's other refusals: no route (404), a method
    /// the route does not allow (405), a failed authentication (401, or the `MODIFY_RESPONSE`
    /// answer), a missing scope (403); and a declared body above 20 MB (413) before anything
    /// counts the request.
    fn authorization(&self, x: &mut Exchange<'_>) -> Step {
        let verdict = x.verdict();
        match (&verdict.decision, &verdict.unrouted) {
            (Decision::Deny, Some(Unrouted::MethodNotAllowed { allow })) => {
                Step::Answer(respond::method_not_allowed(allow))
            }
            // A request only its validations refuse goes on: its usage plan counts it first.
            (Decision::Deny, _) if !verdict.passed_access() => {
                let status = verdict.status.unwrap_or(401);
                Step::Answer(match super::failure_policy(&x.served.deployment) {
                    Some(modify) if status == 401 => {
                        self.modified_failure(modify, verdict.route.as_ref(), &x.parts)
                    }
                    _ => super::custom::refused(status, &x.parts),
                })
            }
            _ if super::declares_too_large_body(&x.parts) => {
                self.logs.execution(
                    x.context,
                    x.threshold,
                    super::body_invalid(&format!(
                        "The request body is larger than {} bytes.",
                        super::MAX_BODY_BYTES
                    )),
                );
                Step::Answer(respond::error(413))
            }
            _ => Step::Next,
        }
    }

    /// `usagePlans`: see [`Gateway::usage_plan_phase`].
    async fn usage_plan<'a>(&self, x: &mut Exchange<'a>) -> Step {
        let verdict = x.verdict.as_ref().expect("authentication ran");
        let result = self
            .usage_plan_phase(
                x.state,
                x.served,
                verdict,
                &mut x.parts,
                x.context,
                x.threshold,
            )
            .await;
        match result {
            Ok(counted) => {
                x.usage = counted;
                Step::Next
            }
            Err(refused) => Step::Answer(refused),
        }
    }

    /// `headerValidations`, `queryParameterValidations`, `bodyValidation`: the verdict judged
    /// them; see [`crate::validation::phase`] (records, metric, 400/415).
    fn validation(&self, x: &mut Exchange<'_>) -> Step {
        match crate::validation::phase(
            &self.logs,
            &self.metrics,
            x.verdict(),
            x.context,
            x.threshold,
        ) {
            Some(refused) => Step::Answer(refused),
            None => Step::Next,
        }
    }

    /// `responseCacheLookup` (`response_cache.rs`): a hit answers the request (response
    /// transformations and CORS still apply to it); a miss notes where to store the backend's
    /// answer. Routes without the policy cost one field read.
    async fn cache_lookup(&self, x: &mut Exchange<'_>) -> Step {
        use crate::response_cache::{CacheRequest, Looked};
        let verdict = x.verdict();
        let Some(route_info) = &verdict.route else {
            return Step::Next;
        };
        let Some(route) = x.served.deployment.routes.get(route_info.index) else {
            return Step::Next;
        };
        if route.response_cache_lookup.is_none() {
            return Step::Next;
        }
        let context = crate::context::RequestContext::new(
            &x.parts,
            &route_info.params,
            verdict.claims.as_deref(),
        );
        let request = CacheRequest {
            deployment_id: &x.served.deployment.id,
            method: &x.parts.method,
            path: x.parts.uri.path(),
            query: x.parts.uri.query(),
            headers: &x.parts.headers,
            client_certificate: context.client_cert.is_some(),
            has_body: x.body.as_ref().is_some_and(RequestBody::is_present),
            session: context.oauth2.is_some(),
            context: &context,
        };
        let looked = self
            .response_cache
            .lookup(
                x.served.cache.as_ref(),
                route,
                &request,
                x.context,
                x.threshold,
            )
            .await;
        x.cache_status = looked.status();
        match looked {
            Looked::Hit(response) => {
                x.backend_answered = true;
                Step::Answer(response)
            }
            Looked::Miss(pending) => {
                x.cache_pending = Some(pending);
                Step::Next
            }
            Looked::Bypass | Looked::NotCaching => Step::Next,
        }
    }

    /// Request transformations and the backend: the answer of the route's backend.
    async fn backend(&self, x: &mut Exchange<'_>) -> Response<Body> {
        let Some(body) = x.body.take() else {
            return respond::error(500);
        };
        let body = body.into_backend_body();
        let answer = self.forward(x, body).await;
        match answer {
            Ok(response) => {
                x.backend_answered = true;
                response
            }
            Err(gateway_error) => gateway_error,
        }
    }

    /// `responseCacheStore`: on a miss, the backend's own answer (before response
    /// transformations and CORS) is stored while it streams to the client; the gateway's own
    /// error answers never are. Every answer that reached the lookup gets `X-Cache-Status`
    /// here (a hit has it already), before response transformations, which may remove it.
    async fn cache_store(
        &self,
        x: &mut Exchange<'_>,
        mut response: Response<Body>,
    ) -> Response<Body> {
        if let Some(pending) = x.cache_pending.take() {
            if x.backend_answered {
                response = self
                    .response_cache
                    .store(pending, response, x.context, x.threshold);
            }
        }
        if let Some(status) = x.cache_status {
            crate::response_cache::mark(&mut response, status);
        }
        response
    }

    /// The route's response `headerTransformations`, on answers from the backend or the cache.
    fn response_transformations(
        &self,
        x: &mut Exchange<'_>,
        mut response: Response<Body>,
    ) -> Response<Body> {
        let verdict = x.verdict();
        let Some(route_info) = &verdict.route else {
            return response;
        };
        let Some(rules) = x
            .served
            .deployment
            .routes
            .get(route_info.index)
            .and_then(|r| r.response_header_transformations.as_ref())
        else {
            return response;
        };
        // Gateway errors (a failed backend call) are the gateway's own answers: untouched.
        if !x.backend_answered {
            return response;
        }
        let context = crate::context::RequestContext::new(
            &x.parts,
            &route_info.params,
            verdict.claims.as_deref(),
        );
        for problem in crate::transform::headers(rules, response.headers_mut(), &context) {
            self.logs.execution(x.context, x.threshold, problem);
        }
        response
    }

    /// Settles the usage plan (5xx refunds), then CORS decoration, `opc-request-id`, the
    /// metrics and the access log: for every request that reached a deployment.
    pub(super) async fn logs_phase<'a>(
        &self,
        x: &mut Exchange<'a>,
        response: Response<Body>,
    ) -> Response<Body> {
        if let Some(counted) = x.usage.take() {
            self.usage_plan_settle(counted, response.status().as_u16())
                .await;
        }
        let route_index = x.route_index();
        let response = x.served.edge.with_cors(&x.parts, route_index, response);
        let mut response = super::with_request_id(response, x.request_id_header);
        if let Some(csrf) = x.csrf.as_deref() {
            if let Ok(value) = http::HeaderValue::from_str(csrf) {
                response.headers_mut().insert("x-csrf-token", value);
            }
        }
        let status = response.status().as_u16();
        // Authentication may answer before it has a verdict (a body too large to give an
        // authorizer function): counted and logged as a request of the deployment.
        let logged = match &x.verdict {
            Some(verdict) => {
                self.record(verdict, &x.served.deployment, &x.parts, status, x.started);
                verdict.route.is_some() || verdict.unrouted.is_some()
            }
            None => {
                self.metrics.request(
                    x.served.deployment.label(),
                    "",
                    x.parts.method.as_str(),
                    status,
                    x.started.elapsed().as_secs_f64(),
                );
                true
            }
        };
        if logged {
            self.access_log(
                x.context,
                &x.parts,
                &response,
                x.peer,
                x.started,
                &x.served.deployment,
            );
        }
        response
    }
}
