//! `CUSTOM_AUTHENTICATION` in the authentication phase: the gateway calls the authorizer
//! function (I/O, cached, single flight: [`crate::authorizer::Authorizers`]) and the core judges
//! its answer (pure), as introspection does for opaque tokens.

use super::{wall_clock, Gateway, PartsView, Served, ServedSet, EXPLAIN};
use crate::authorizer::CallContext;
use crate::logs::{Context, Level};
use crate::respond::{self, Body};
use claimgate_config::{Authentication, Deployment, ServerPolicy};
use claimgate_core::authorizer::{
    authorizer_to_call, AuthorizerAnswer, FunctionError, FunctionOutcome,
};
use claimgate_core::{evaluate_with, select_for_request, Introspection, KeyMaterial, Verdict};
use http::Response;
use std::sync::Arc;

/// The answer of a function that refused the request, kept in the request's extensions for
/// the refusal: its `wwwAuthenticate` and, for `MODIFY_RESPONSE`, its `context`
/// (`request.auth[responseCode]`).
#[derive(Debug, Clone)]
pub(crate) struct FunctionRefusal(pub(crate) Arc<AuthorizerAnswer>);

impl Gateway {
    /// The verdict of a request whose deployment (or selected authentication server) is an
    /// authorizer function; `None` when it is not, and the JWT path judges it. A request with
    /// none of the function's arguments, or that reaches no route, is judged without a call.
    pub(super) async fn judge_authorizer(
        &self,
        state: &ServedSet,
        served: &Served,
        parts: &mut http::request::Parts,
        (body, text): (bool, Option<&str>),
        context: Context<'_>,
        threshold: Level,
    ) -> Option<Verdict> {
        let deployment = &served.deployment;
        if !has_authorizer(deployment) {
            return None;
        }
        let now = wall_clock();
        let view = PartsView { parts, body, text };
        let no_keys = KeyMaterial::Unavailable {
            reason: "an authorizer function judges the request",
        };
        let Some((policy, arguments)) = authorizer_to_call(deployment, &view) else {
            // No call to make (no argument, no route, or a JWT server was selected): the
            // verdict says why, or the JWT path judges it.
            if !custom_server_selected(deployment, &view) {
                return None;
            }
            return Some(evaluate_with(
                deployment,
                &view,
                no_keys,
                Introspection::NotDone,
                now,
                None,
                EXPLAIN,
            ));
        };
        let answer = match state.functions.url(&policy.function_id) {
            // serve refuses unmapped functions; a reload that drops one leaves this.
            None => Err(FunctionError::failed(format!(
                "function '{}' is not in the functions file (--functions)",
                policy.function_id
            ))),
            Some(url) => {
                let call = CallContext {
                    logs: &self.logs,
                    context,
                    threshold,
                    function_id: &policy.function_id,
                    now,
                };
                self.authorizers
                    .answer(served.scope, url, &arguments, call)
                    .await
            }
        };
        let outcome = match &answer {
            Ok(answer) => FunctionOutcome::Answer(answer),
            Err(error) => FunctionOutcome::Unavailable(error),
        };
        let verdict = evaluate_with(
            deployment,
            &view,
            no_keys,
            Introspection::Function(outcome),
            now,
            None,
            EXPLAIN,
        );
        if let Ok(answer) = answer {
            if !answer.active {
                parts.extensions.insert(FunctionRefusal(answer));
            }
        }
        Some(verdict)
    }
}

/// Whether the deployment, or one of its authentication servers, calls a function.
pub(super) fn has_authorizer(deployment: &Deployment) -> bool {
    match &deployment.authentication {
        Authentication::Custom(_) => true,
        Authentication::Dynamic(dynamic) => dynamic
            .servers
            .iter()
            .any(|s| matches!(s.policy, ServerPolicy::Custom(_))),
        _ => false,
    }
}

/// Whether the request is judged by an authorizer function: the deployment's policy is one, or
/// the authentication server selected for the request is.
fn custom_server_selected(deployment: &Deployment, view: &PartsView<'_>) -> bool {
    match &deployment.authentication {
        Authentication::Custom(_) => true,
        Authentication::Dynamic(dynamic) => select_for_request(deployment, view)
            .and_then(|s| s.server)
            .and_then(|i| dynamic.servers.get(i))
            .is_some_and(|s| matches!(s.policy, ServerPolicy::Custom(_))),
        _ => false,
    }
}

/// The gateway's refusal: the stock answer, with the authorizer function's `wwwAuthenticate`
/// as `WWW-Authenticate` on a 401 it caused (a value that is not a valid header value, CR/LF
/// say, is never sent: the stock challenge stays).
pub(super) fn refused(status: u16, parts: &http::request::Parts) -> Response<Body> {
    let mut response = respond::error(status);
    if status == 401 {
        let challenge = parts
            .extensions
            .get::<FunctionRefusal>()
            .and_then(|r| r.0.www_authenticate.as_deref())
            .and_then(|w| http::HeaderValue::from_str(w).ok());
        if let Some(challenge) = challenge {
            response
                .headers_mut()
                .insert(http::header::WWW_AUTHENTICATE, challenge);
        }
    }
    response
}
