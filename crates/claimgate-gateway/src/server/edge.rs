//! What happens before authentication, and to every answer after: rate limiting, CORS and
//! mutual TLS, wired to the gateway's responses, logs and metrics. The policies themselves are
//! in `limit`, `cors` and `mtls`.
//!
//! Order: rate limiting first (it protects the gateway, so nothing else runs for a refused
//! request), then CORS preflights (browsers send them without credentials or client
//! certificates), then `mutualTls`, then authentication.

use super::{Gateway, Served};
use crate::cors::{self, CorsPolicies};
use crate::limit::{Admission, LimitKey, RateLimitStore, RateLimiter};
use crate::logs::{Context, ExecutionRecord, Level};
use crate::mtls::{self, PeerCertificate};
use crate::respond::{self, Body};
use claimgate_config::{Deployment, RateKey, RateLimiting};
use http::request::Parts;
use http::Response;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// A deployment's rate limiter and CORS policies, prepared when its configuration is built.
#[derive(Debug)]
pub(super) struct Edge {
    rate: Option<(RateLimiting, Arc<dyn RateLimiter>)>,
    cors: Option<CorsPolicies>,
}

impl Edge {
    pub(super) fn new(deployment: &Deployment, store: &dyn RateLimitStore) -> Self {
        Self {
            rate: deployment
                .rate_limiting
                .map(|policy| (policy, store.limiter(&deployment.path_prefix, policy))),
            cors: CorsPolicies::new(deployment),
        }
    }

    /// The CORS headers of the policy for route `route` (or the deployment's) on a response.
    pub(super) fn with_cors(
        &self,
        parts: &Parts,
        route: Option<usize>,
        mut response: Response<Body>,
    ) -> Response<Body> {
        if let Some(policy) = self.cors.as_ref().and_then(|c| c.for_route(route)) {
            policy.decorate(&parts.headers, response.headers_mut());
        }
        response
    }

    /// The same for an answer given before routing.
    fn with_cors_unrouted(
        &self,
        deployment: &Deployment,
        parts: &Parts,
        mut response: Response<Body>,
    ) -> Response<Body> {
        let policy = self
            .cors
            .as_ref()
            .and_then(|c| c.for_request(deployment, parts.method.as_str(), parts.uri.path()));
        if let Some(policy) = policy {
            policy.decorate(&parts.headers, response.headers_mut());
        }
        response
    }
}

impl Gateway {
    /// Rate limiting, a CORS preflight, `mutualTls`: the answer when one of them ends the
    /// request (already counted in the metrics and written to the access log), else `None`.
    pub(super) async fn before_authentication(
        &self,
        served: &Served,
        parts: &Parts,
        peer: SocketAddr,
        client: Option<&PeerCertificate>,
        context: Context<'_>,
        started: Instant,
    ) -> Option<Response<Body>> {
        let deployment = &served.deployment;
        let edge = &served.edge;
        let threshold = served.threshold;
        let response = 'answer: {
            if let Some((policy, limiter)) = &edge.rate {
                let client_ip = match policy.key {
                    RateKey::ClientIp => self
                        .options
                        .trusted_proxies
                        .client(peer.ip(), &parts.headers),
                    RateKey::Total => peer.ip(),
                };
                let key = LimitKey::new(policy.key, client_ip);
                if let Admission::Denied { retry_after } = limiter.acquire(key).admission().await {
                    self.metrics.rate_limited(deployment.label());
                    let per = match key {
                        LimitKey::Total => "for the whole deployment".to_owned(),
                        LimitKey::Client(client) => format!("for client {client}"),
                    };
                    self.logs.execution(
                        context,
                        threshold,
                        ExecutionRecord::new(
                            "rateLimiting.requestDenied",
                            Level::Warn,
                            format!(
                                "Request denied: more than {} requests per second {per}.",
                                policy.requests_per_second
                            ),
                        )
                        .with("configuredLimit", json!(policy.requests_per_second))
                        .with("configuredUnit", json!("SECOND"))
                        .with("limitingKey", json!(key.to_string())),
                    );
                    let seconds = Admission::retry_after_seconds(retry_after);
                    break 'answer edge.with_cors_unrouted(
                        deployment,
                        parts,
                        respond::too_many_requests(seconds),
                    );
                }
            }
            if let Some(policies) = &edge.cors {
                if cors::is_preflight(parts) {
                    if let Some(policy) = policies.for_preflight(deployment, parts) {
                        break 'answer match policy.preflight(&parts.headers) {
                            Ok(headers) => respond::preflight(headers),
                            Err(refusal) => {
                                self.logs.execution(
                                    context,
                                    threshold,
                                    ExecutionRecord::new(
                                        "cors.preflightRejected",
                                        Level::Warn,
                                        format!("CORS preflight rejected: {}.", refusal.message),
                                    ),
                                );
                                respond::preflight_refused()
                            }
                        };
                    }
                }
            }
            if let Some(policy) = &deployment.mutual_tls {
                if let Err(refusal) = mtls::check(policy, client) {
                    let mut record =
                        ExecutionRecord::new(refusal.code, Level::Warn, refusal.message)
                            .with("reason", json!(refusal.detail));
                    if !refusal.names.is_empty() {
                        record = record.with("certificateNames", json!(refusal.names));
                    }
                    self.logs.execution(context, threshold, record);
                    break 'answer edge.with_cors_unrouted(
                        deployment,
                        parts,
                        respond::client_certificate_refused(),
                    );
                }
            }
            return None;
        };
        self.metrics.request(
            deployment.label(),
            "",
            parts.method.as_str(),
            response.status().as_u16(),
            started.elapsed().as_secs_f64(),
        );
        self.access_log(context, parts, &response, peer, started, deployment);
        Some(response)
    }
}
