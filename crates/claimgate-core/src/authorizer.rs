//! `CUSTOM_AUTHENTICATION`: what an authorizer function is sent (OCI's input), what its answer
//! means (OCI's output contract), and the checks `token`, `function` and `scope` it leads to.
//! Pure: the caller calls the function and passes the answer in
//! ([`crate::Introspection::Function`]); the same answer gives the same verdict in the gateway
//! and in `claimgate check --function-response`.

use crate::check::{Check, CheckId, Failure, Outcome};
use crate::claims::Claims;
use crate::route::{self, RouteMatch};
use crate::time::UnixTime;
use crate::verdict::{
    finish, judge_scope, Explain, Introspection, RequestView, RouteInfo, Verdict,
};
use claimgate_config::{
    AuthFlavor, Authentication, Authorization, AuthorizerInput, ContextTable, ContextVariable,
    CustomAuthentication, Deployment, Route, ServerPolicy, TokenLocation,
};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The largest answer read from a function (1 MiB); a bigger one is a 502.
pub const MAX_FUNCTION_ANSWER_BYTES: usize = 1024 * 1024;

/// How long an active answer is kept at least, at most, and an inactive one (OCI's bounds;
/// SPEC: 60-3600 s, 60 s without a valid `expiresAt`, 10 s for `"active": false`).
const MIN_CACHE_SECONDS: i64 = 60;
const MAX_CACHE_SECONDS: i64 = 3600;
const INACTIVE_CACHE_SECONDS: i64 = 10;

/// What a request gives an authorizer function.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthorizerArguments {
    /// The JSON the gateway POSTs: `{"type":"USER_DEFINED","data":{...}}` or
    /// `{"type":"TOKEN","token":"..."}`.
    pub input: Value,
    /// The text answers are cached under: the `cacheKey` arguments (or all but `request.body`)
    /// as canonical JSON. The caller hashes it with the function's identity.
    pub cache_key: String,
}

/// The arguments of `policy` found in `request`; `Err` with what was looked for when none is
/// there (the function is then not called: 401).
pub fn authorizer_arguments(
    policy: &CustomAuthentication,
    request: &dyn RequestView,
) -> Result<AuthorizerArguments, Vec<String>> {
    match &policy.input {
        AuthorizerInput::Single(location) => {
            let token = match location {
                TokenLocation::Header { name, .. } => request.first_header_value(name),
                TokenLocation::Query { name } => query_values(request.query(), name).next(),
            };
            match token {
                Some(token) if !token.is_empty() => Ok(AuthorizerArguments {
                    cache_key: json!(token).to_string(),
                    input: json!({"type": "TOKEN", "token": token}),
                }),
                _ => Err(vec![location.to_string()]),
            }
        }
        AuthorizerInput::Multi(arguments) => {
            let mut data = Map::new();
            let mut key = Map::new();
            for (name, variable) in arguments {
                let Some(value) = variable_value(variable, request) else {
                    continue;
                };
                let counts = match &policy.cache_key {
                    Some(names) => names.iter().any(|n| n == name),
                    None => variable.table != ContextTable::Body,
                };
                if counts {
                    key.insert(name.clone(), value.clone());
                }
                data.insert(name.clone(), value);
            }
            if data.is_empty() {
                return Err(arguments.iter().map(|(_, v)| describe(v)).collect());
            }
            Ok(AuthorizerArguments {
                cache_key: Value::Object(key).to_string(),
                input: json!({"type": "USER_DEFINED", "data": data}),
            })
        }
    }
}

/// The arguments present in `request` (described when `describe_found`), or, when none is,
/// all of them described: what the `token` check says, without building the input.
fn found_arguments(
    policy: &CustomAuthentication,
    request: &dyn RequestView,
    describe_found: bool,
) -> Result<Vec<String>, Vec<String>> {
    match &policy.input {
        AuthorizerInput::Single(location) => {
            let present = match location {
                TokenLocation::Header { name, .. } => request
                    .first_header_value(name)
                    .is_some_and(|v| !v.is_empty()),
                TokenLocation::Query { name } => query_values(request.query(), name)
                    .next()
                    .is_some_and(|v| !v.is_empty()),
            };
            match present {
                true if describe_found => Ok(vec![location.to_string()]),
                true => Ok(Vec::new()),
                false => Err(vec![location.to_string()]),
            }
        }
        AuthorizerInput::Multi(arguments) => {
            let mut found = Vec::new();
            let mut any = false;
            for (_, variable) in arguments {
                if variable_present(variable, request) {
                    any = true;
                    if !describe_found {
                        break;
                    }
                    found.push(describe(variable));
                }
            }
            if any {
                Ok(found)
            } else {
                Err(arguments.iter().map(|(_, v)| describe(v)).collect())
            }
        }
    }
}

/// Whether [`variable_value`] would find a value.
fn variable_present(variable: &ContextVariable, request: &dyn RequestView) -> bool {
    let key = variable.key.as_deref().unwrap_or("");
    match variable.table {
        ContextTable::Headers => request.first_header_value(key).is_some(),
        ContextTable::Query => query_values(request.query(), key).next().is_some(),
        ContextTable::Host => request.first_header_value("host").is_some(),
        ContextTable::Cert => request.client_cert().is_some(),
        _ => false,
    }
}

/// A context variable as written (`request.headers[X-Api-Key]`).
fn describe(variable: &ContextVariable) -> String {
    match &variable.key {
        Some(key) => format!("{}[{key}]", variable.table.name()),
        None => variable.table.name().to_owned(),
    }
}

/// An argument's value: a string, an array for a repeated header or parameter, `None` when
/// absent (OCI omits it rather than sending null).
fn variable_value(variable: &ContextVariable, request: &dyn RequestView) -> Option<Value> {
    let key = variable.key.as_deref().unwrap_or("");
    let values: Vec<&str> = match variable.table {
        ContextTable::Headers => request.header_values(key),
        ContextTable::Query => query_values(request.query(), key).collect(),
        ContextTable::Host => request.first_header_value("host").into_iter().collect(),
        ContextTable::Cert => request.client_cert().into_iter().collect(),
        // An empty body is not passed, as an absent header is not.
        ContextTable::Body => request
            .body_text()
            .filter(|body| !body.is_empty())
            .into_iter()
            .collect(),
        // Any other table is refused by the loader.
        _ => Vec::new(),
    };
    match values.as_slice() {
        [] => None,
        [one] => Some(json!(one)),
        many => Some(json!(many)),
    }
}

/// The values of query parameter `name`, as sent (still percent-encoded: OCI preserves
/// encoding in context variables).
fn query_values<'q>(query: Option<&'q str>, name: &'q str) -> impl Iterator<Item = &'q str> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .filter(move |(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The policy and arguments of the function the caller must call before the verdict, if any:
/// the request reaches a route of a `CUSTOM_AUTHENTICATION` policy (or of the selected
/// `dynamicAuthentication` server) and carries at least one argument.
pub fn authorizer_to_call<'d>(
    deployment: &'d Deployment,
    request: &dyn RequestView,
) -> Option<(&'d CustomAuthentication, AuthorizerArguments)> {
    let policy = match &deployment.authentication {
        Authentication::Custom(policy) => policy,
        Authentication::Dynamic(dynamic) => {
            let selection = crate::dynamic::select_for_request(deployment, request)?;
            match &dynamic.servers[selection.server?].policy {
                ServerPolicy::Custom(policy) => policy,
                ServerPolicy::Jwt(_) => return None,
            }
        }
        _ => return None,
    };
    let path = crate::path::normalize(request.path()).ok()?;
    if !matches!(
        route::find(deployment, request.method(), &path),
        RouteMatch::Found { .. }
    ) {
        return None;
    }
    let arguments = authorizer_arguments(policy, request).ok()?;
    Some((policy, arguments))
}

/// An authorizer function's answer, read per OCI's contract.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthorizerAnswer {
    /// The HTTP status the function answered.
    pub status: u16,
    /// `"active": true` with a 2xx status.
    pub active: bool,
    /// What was found for `active` (`None`: absent, which means false).
    pub active_found: Option<Value>,
    /// `{"scope": <the answer's scope>}` when it has one, for `ANY_OF`.
    pub scope: Option<Arc<Claims>>,
    /// `request.auth`: the `context` entries, then `principal` and `clientId`.
    pub claims: Arc<Claims>,
    /// `wwwAuthenticate`: sent to the client with the 401.
    pub www_authenticate: Option<String>,
    /// `expiresAt`, when it is a valid ISO-8601 date.
    pub expires_at: Option<i64>,
    pub principal: Option<String>,
}

/// Why an answer is not one: the function is treated as unavailable (502).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionError {
    pub reason: String,
    /// It answered, but not with OCI's contract (`customAuthentication.unexpectedResponse`);
    /// otherwise the call failed (`customAuthentication.failedFunctionInvocation`).
    pub unexpected: bool,
}

impl FunctionError {
    /// A call that failed (timeout, refused connection, 5xx).
    pub fn failed(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            unexpected: false,
        }
    }

    /// An answer that breaks the contract (not JSON, a non-boolean `active`, too large).
    pub fn unexpected(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            unexpected: true,
        }
    }
}

impl AuthorizerAnswer {
    /// Reads a function's answer: 5xx is a failed call; 4xx a denial (`wwwAuthenticate` is
    /// taken from a JSON body when there is one); 2xx must be a JSON object whose `active`, if
    /// present, is a boolean (absent means false); anything else breaks the contract.
    pub fn parse(status: u16, body: &[u8]) -> Result<Self, FunctionError> {
        if status >= 500 {
            return Err(FunctionError::failed(format!("it answered HTTP {status}")));
        }
        if body.len() > MAX_FUNCTION_ANSWER_BYTES {
            return Err(FunctionError::unexpected(format!(
                "its answer is larger than {MAX_FUNCTION_ANSWER_BYTES} bytes"
            )));
        }
        let object = claimgate_jose::json::parse_object(body, 16);
        if (400..500).contains(&status) {
            let www_authenticate = object
                .ok()
                .and_then(|o| o.get("wwwAuthenticate")?.as_str().map(str::to_owned));
            return Ok(Self {
                status,
                active: false,
                active_found: None,
                scope: None,
                claims: Arc::new(Claims::default()),
                www_authenticate,
                expires_at: None,
                principal: None,
            });
        }
        if !(200..300).contains(&status) {
            return Err(FunctionError::unexpected(format!(
                "it answered HTTP {status}"
            )));
        }
        let object = object.map_err(|e| {
            FunctionError::unexpected(format!("its answer is not a JSON object ({e})"))
        })?;
        let active_found = object.get("active").cloned();
        let active = match &active_found {
            None => false,
            Some(Value::Bool(active)) => *active,
            Some(other) => {
                return Err(FunctionError::unexpected(format!(
                    "'active' is {}, not a boolean",
                    crate::check::json_type(other)
                )))
            }
        };
        let text = |name: &str| object.get(name).and_then(Value::as_str).map(str::to_owned);
        let mut auth = match object.get("context") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(context)) => context.clone(),
            Some(other) => {
                return Err(FunctionError::unexpected(format!(
                    "'context' is {}, not an object",
                    crate::check::json_type(other)
                )))
            }
        };
        for name in ["principal", "clientId"] {
            if let Some(value) = object.get(name) {
                auth.insert(name.to_owned(), value.clone());
            }
        }
        let too_big = || FunctionError::unexpected("its answer is too large to keep");
        let scope = match object.get("scope") {
            None | Some(Value::Null) => None,
            Some(scope) => {
                let mut map = Map::new();
                map.insert("scope".into(), scope.clone());
                Some(Arc::new(Claims::from_map(&map).ok_or_else(too_big)?))
            }
        };
        Ok(Self {
            status,
            active,
            active_found,
            scope,
            claims: Arc::new(Claims::from_map(&auth).ok_or_else(too_big)?),
            www_authenticate: text("wwwAuthenticate"),
            expires_at: object
                .get("expiresAt")
                .and_then(Value::as_str)
                .and_then(parse_iso8601),
            principal: text("principal"),
        })
    }

    /// How long the answer may be kept from `now`: `expiresAt` − now clamped to 60-3600 s (60
    /// without a valid `expiresAt`); 10 s for a refusal.
    pub fn cache_seconds(&self, now: UnixTime) -> u64 {
        let seconds = if !self.active {
            INACTIVE_CACHE_SECONDS
        } else {
            self.expires_at.map_or(MIN_CACHE_SECONDS, |at| {
                at.saturating_sub(now.0)
                    .clamp(MIN_CACHE_SECONDS, MAX_CACHE_SECONDS)
            })
        };
        seconds.unsigned_abs()
    }

    /// About how many bytes of heap this holds, for bounding a cache by memory.
    pub fn approximate_size(&self) -> usize {
        const ALLOCATION: usize = 16;
        let claims = |c: &Claims| ALLOCATION * 3 + std::mem::size_of::<Claims>() + c.heap_size();
        std::mem::size_of::<Self>()
            + claims(&self.claims)
            + self.scope.as_deref().map_or(0, claims)
            + self
                .www_authenticate
                .as_ref()
                .map_or(0, |w| w.len() + ALLOCATION)
            + self.principal.as_ref().map_or(0, |p| p.len() + ALLOCATION)
            + self
                .active_found
                .as_ref()
                .map_or(0, |v| v.to_string().len() + ALLOCATION)
    }
}

/// `expiresAt` as OCI documents it (ISO-8601, e.g. `2025-01-01T12:00:00+00:00`).
fn parse_iso8601(text: &str) -> Option<i64> {
    use time::format_description::well_known::{Iso8601, Rfc3339};
    time::OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| time::OffsetDateTime::parse(text, &Iso8601::DEFAULT))
        .ok()
        .map(|t| t.unix_timestamp())
}

/// What the caller learned from calling the function.
#[derive(Debug, Clone, Copy)]
pub enum FunctionOutcome<'a> {
    Answer(&'a AuthorizerAnswer),
    Unavailable(&'a FunctionError),
}

const FUNCTION_SETTING: &str = "functionId";

/// The checks `token`, `function` and `scope` of a `CUSTOM_AUTHENTICATION` policy, and the
/// decision.
pub(crate) fn evaluate_custom(
    policy: &CustomAuthentication,
    route: &Route,
    info: RouteInfo,
    request: &dyn RequestView,
    outcome: Introspection<'_>,
    explain: Explain,
) -> Verdict {
    let quiet = explain == Explain::Failures;
    let anonymous = route.authorization == Authorization::Anonymous;
    let flavor = Some(AuthFlavor::CustomAuthentication);
    let setting = |member: &str| format!("{}.{member}", policy.path);
    let mut checks = Vec::with_capacity(3);
    // Which arguments are there (the caller built the input already; this builds no JSON).
    let found = match found_arguments(policy, request, !quiet) {
        Ok(found) => found,
        Err(expected) => {
            let no_call = "no argument: the function was not called";
            if anonymous {
                let why = "no argument; the route allows anonymous access";
                checks.push(Check::skip(CheckId::Token, why));
                checks.push(Check::skip(CheckId::Function, why));
                checks.push(Check::skip(CheckId::Scope, why));
                return finish(route, info, checks, flavor, None, true);
            }
            let member = match policy.input {
                AuthorizerInput::Multi(_) => "parameters",
                AuthorizerInput::Single(TokenLocation::Header { .. }) => "tokenHeader",
                AuthorizerInput::Single(TokenLocation::Query { .. }) => "tokenQueryParam",
            };
            checks.push(
                Check::new(
                    CheckId::Token,
                    Outcome::fail(Failure::ArgumentsMissing {
                        expected: expected.clone(),
                    }),
                )
                .values(Some(json!(expected)), None)
                .setting(setting(member)),
            );
            checks.push(Check::skip(CheckId::Function, no_call));
            checks.push(Check::skip(CheckId::Scope, no_call));
            return finish(route, info, checks, flavor, None, false);
        }
    };
    checks.push(if quiet {
        Check::passed(CheckId::Token)
    } else {
        Check::new(
            CheckId::Token,
            Outcome::Pass(format!("found {}", found.join(", ")).into()),
        )
    });
    let not_called;
    let outcome = match outcome {
        Introspection::Function(outcome) => outcome,
        _ => {
            not_called = FunctionError::failed("it was not called here");
            FunctionOutcome::Unavailable(&not_called)
        }
    };
    let answer = match outcome {
        FunctionOutcome::Answer(answer) if answer.active => {
            checks.push(if quiet {
                Check::passed(CheckId::Function)
            } else {
                let who = answer
                    .principal
                    .as_deref()
                    .map(|p| format!(" (principal '{p}')"))
                    .unwrap_or_default();
                Check::new(
                    CheckId::Function,
                    Outcome::Pass(format!("the function says the request is active{who}").into()),
                )
                .values(Some(json!(true)), Some(json!(true)))
            });
            Some(answer)
        }
        FunctionOutcome::Answer(answer) => {
            let actual = if answer.status >= 400 {
                json!({"status": answer.status})
            } else {
                json!({"active": answer.active_found})
            };
            checks.push(
                Check::new(
                    CheckId::Function,
                    Outcome::fail(Failure::FunctionDenied {
                        status: answer.status,
                        active: answer.active_found.clone(),
                    }),
                )
                .values(Some(json!({"active": true})), Some(actual))
                .setting(setting(FUNCTION_SETTING)),
            );
            None
        }
        FunctionOutcome::Unavailable(error) => {
            checks.push(
                Check::new(
                    CheckId::Function,
                    Outcome::fail(Failure::FunctionUnavailable {
                        reason: error.reason.clone(),
                        unexpected: error.unexpected,
                    }),
                )
                .setting(setting(FUNCTION_SETTING)),
            );
            None
        }
    };
    let scope_check = match (&route.authorization, answer) {
        (Authorization::AnyOf(allowed), Some(answer)) => {
            let empty = Claims::default();
            let scopes = answer.scope.as_deref().unwrap_or(&empty);
            let check = judge_scope(scopes, allowed, quiet);
            if quiet && check.passes() {
                check
            } else {
                check.setting(format!(
                    "routes[{}].requestPolicies.authorization.allowedScope",
                    info.index
                ))
            }
        }
        (Authorization::AnyOf(_), None) => Check::skip(CheckId::Scope, "authentication failed"),
        _ => Check::skip(CheckId::Scope, "the route does not ask for scopes (ANY_OF)"),
    };
    let scope_ok = scope_check.failure().is_none();
    checks.push(scope_check);
    let claims = answer.map(|a| Arc::clone(&a.claims));
    let allow = anonymous || (claims.is_some() && scope_ok);
    finish(route, info, checks, flavor, claims, allow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_follow_ocis_contract() {
        let ok = AuthorizerAnswer::parse(
            200,
            br#"{"active":true,"scope":"a b","context":{"n":1,"s":"x"},"principal":"p","expiresAt":"2030-01-01T00:00:00+00:00"}"#,
        )
        .unwrap();
        assert!(ok.active);
        assert_eq!(ok.claims.get("n"), Some(json!(1)));
        assert_eq!(ok.claims.get("principal"), Some(json!("p")));
        assert_eq!(ok.expires_at, Some(1_893_456_000));
        let denied = AuthorizerAnswer::parse(200, br#"{"wwwAuthenticate":"Bearer"}"#).unwrap();
        assert!(!denied.active);
        assert_eq!(denied.www_authenticate.as_deref(), Some("Bearer"));
        let four = AuthorizerAnswer::parse(401, b"not json").unwrap();
        assert!(!four.active);
        for (status, body) in [
            (500, &b"{}"[..]),
            (200, b"nope"),
            (200, br#"{"active":"true"}"#),
            (200, br#"[true]"#),
            (200, b"{\"active\":true,\"x\":\"\xff\"}"),
            (302, b"{}"),
            (200, br#"{"active":true,"context":"x"}"#),
        ] {
            assert!(
                AuthorizerAnswer::parse(status, body).is_err(),
                "{status} {body:?}"
            );
        }
    }

    #[test]
    fn cache_lifetimes_are_clamped() {
        let now = UnixTime(1_000_000);
        let answer = |expires: Option<i64>, active: bool| AuthorizerAnswer {
            status: 200,
            active,
            active_found: Some(json!(active)),
            scope: None,
            claims: Arc::new(Claims::default()),
            www_authenticate: None,
            expires_at: expires,
            principal: None,
        };
        assert_eq!(answer(None, true).cache_seconds(now), 60);
        assert_eq!(answer(Some(now.0 + 5), true).cache_seconds(now), 60);
        assert_eq!(answer(Some(now.0 - 500), true).cache_seconds(now), 60);
        assert_eq!(answer(Some(now.0 + 600), true).cache_seconds(now), 600);
        assert_eq!(answer(Some(now.0 + 86_400), true).cache_seconds(now), 3600);
        assert_eq!(answer(Some(i64::MAX), true).cache_seconds(now), 3600);
        assert_eq!(answer(Some(now.0 + 600), false).cache_seconds(now), 10);
    }
}
