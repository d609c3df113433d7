//! `dynamicAuthentication`: choosing the authentication server for a request, as OCI documents
//! it: exact `ANY_OF` matches first (ASCII case-insensitive), then the first `WILDCARD` match in
//! order (case-sensitive), then the default server.

use crate::route::{self, RouteMatch};
use crate::verdict::{extract_token, HeaderValues, RequestView};
use claimgate_config::{
    ContextTable, ContextVariable, Deployment, DynamicAuthentication, SelectionKey, TokenLocation,
};
use claimgate_jose::Jws;
use serde_json::Value;

/// How the server was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matched {
    /// The value is one of an `ANY_OF` key's values.
    AnyOf,
    /// The value matches a `WILDCARD` expression.
    Wildcard,
    /// Nothing matched; the default server was taken.
    Default,
    /// Nothing matched and no server is the default.
    None,
}

/// Why a `request.auth[...]` selector has no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorToken {
    /// `dynamicAuthentication.jwtTokenNotFound`.
    NotFound,
    /// `dynamicAuthentication.jwtTokenInvalid`.
    Invalid,
}

impl SelectorToken {
    /// The execution-log code.
    pub fn log_code(self) -> &'static str {
        match self {
            Self::NotFound => "dynamicAuthentication.jwtTokenNotFound",
            Self::Invalid => "dynamicAuthentication.jwtTokenInvalid",
        }
    }

    /// The execution-log message (OCI's words, with the claim named).
    pub fn message(self, selector: &str) -> String {
        match self {
            Self::NotFound => format!(
                "The selected context variable was {selector} but no JWT token was sent with the \
                 request."
            ),
            Self::Invalid => format!(
                "The selected context variable was {selector} but an invalid JWT token was sent \
                 with the request."
            ),
        }
    }
}

/// The authentication server chosen for one request, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Index into `authenticationServers`; `None` when nothing matched and there is no default.
    pub server: Option<usize>,
    /// The selected server's `key.name`.
    pub server_name: Option<String>,
    pub matched: Matched,
    /// The selector as written (`request.headers[X-Tenant]`).
    pub selector: String,
    /// The selector's value in this request, if it has one.
    pub value: Option<String>,
    /// The keys the value was compared with, in order: `ANY_OF` values, then `WILDCARD`
    /// expressions.
    pub keys_tried: Vec<String>,
    /// For a `request.auth[...]` selector: why the token gave no value.
    pub token_problem: Option<SelectorToken>,
}

/// Chooses the server for a request. `params` are the matched route's path parameters (for
/// `request.path[...]`). Pure.
pub fn select_server(
    dynamic: &DynamicAuthentication,
    request: &dyn RequestView,
    params: &[(String, String)],
) -> Selection {
    let (value, token_problem) = selector_value(dynamic, request, params);
    let mut keys_tried = Vec::new();
    for server in &dynamic.servers {
        if let SelectionKey::AnyOf(values) = &server.key {
            keys_tried.extend(values.iter().cloned());
        }
    }
    for server in &dynamic.servers {
        if let SelectionKey::Wildcard(expression) = &server.key {
            keys_tried.push(expression.clone());
        }
    }
    let (server, matched) = select_key(
        dynamic.servers.iter().map(|s| (&s.key, s.is_default)),
        value.as_deref(),
    );
    Selection {
        server,
        server_name: server.map(|i| dynamic.servers[i].name.clone()),
        matched,
        selector: dynamic.selector.to_string(),
        value,
        keys_tried,
        token_problem,
    }
}

/// [`select_server`] for a deployment with `dynamicAuthentication`, when the request reaches a
/// route (its path normalised as the verdict normalises it); `None` otherwise.
pub fn select_for_request(deployment: &Deployment, request: &dyn RequestView) -> Option<Selection> {
    let claimgate_config::Authentication::Dynamic(dynamic) = &deployment.authentication else {
        return None;
    };
    let path = crate::path::normalize(request.path()).ok()?;
    match route::find(deployment, request.method(), &path) {
        RouteMatch::Found { params, .. } => Some(select_server(dynamic, request, &params)),
        _ => None,
    }
}

/// The JWT policy that judges `request`: the deployment's own, or under
/// `dynamicAuthentication` the selected server's (none for an authorizer, no match, no route).
/// What `check` and the admin API read key material for.
pub fn jwt_policy_for<'d>(
    deployment: &'d Deployment,
    request: &dyn RequestView,
) -> Option<&'d claimgate_config::JwtPolicy> {
    match &deployment.authentication {
        claimgate_config::Authentication::Jwt(policy) => Some(policy),
        claimgate_config::Authentication::Dynamic(dynamic) => {
            select_for_request(deployment, request)
                .and_then(|s| s.server)
                .and_then(|i| dynamic.servers.get(i))
                .and_then(|server| server.policy.jwt())
        }
        _ => None,
    }
}

/// OCI's matching order over selection keys (each with whether it is the default), shared by
/// dynamic authentication and dynamic routing: an `ANY_OF` value equal to `value` (ASCII
/// case-insensitively), else the first `WILDCARD` expression in order that matches it
/// (case-sensitively), else the default. `None` (no value) matches only the default.
pub fn select_key<'k, I>(keys: I, value: Option<&str>) -> (Option<usize>, Matched)
where
    I: Iterator<Item = (&'k SelectionKey, bool)> + Clone,
{
    // ASCII case-insensitively only: Unicode folding would let a look-alike (the Kelvin sign
    // U+212A folds to `k`) select another tenant's server.
    let exact = value.and_then(|v| {
        keys.clone().position(|(key, _)| match key {
            SelectionKey::AnyOf(values) => values.iter().any(|x| x.eq_ignore_ascii_case(v)),
            SelectionKey::Wildcard(_) => false,
        })
    });
    if let Some(i) = exact {
        return (Some(i), Matched::AnyOf);
    }
    let wildcard = value.and_then(|v| {
        keys.clone().position(|(key, _)| match key {
            SelectionKey::Wildcard(expression) => wildcard_matches(expression, v),
            SelectionKey::AnyOf(_) => false,
        })
    });
    if let Some(i) = wildcard {
        return (Some(i), Matched::Wildcard);
    }
    match keys.clone().position(|(_, is_default)| is_default) {
        Some(i) => (Some(i), Matched::Default),
        None => (None, Matched::None),
    }
}

/// A `WILDCARD` expression: one `*` (zero or more characters) or `+` (one or more) at the start
/// or the end; the rest compares case-sensitively.
pub fn wildcard_matches(expression: &str, value: &str) -> bool {
    if let Some(prefix) = expression.strip_suffix('*') {
        if !prefix.contains(['*', '+']) {
            return value.starts_with(prefix);
        }
    }
    if let Some(prefix) = expression.strip_suffix('+') {
        if !prefix.contains(['*', '+']) {
            return value.len() > prefix.len() && value.starts_with(prefix);
        }
    }
    if let Some(suffix) = expression.strip_prefix('*') {
        return value.ends_with(suffix);
    }
    if let Some(suffix) = expression.strip_prefix('+') {
        return value.len() > suffix.len() && value.ends_with(suffix);
    }
    expression == value
}

fn selector_value(
    dynamic: &DynamicAuthentication,
    request: &dyn RequestView,
    params: &[(String, String)],
) -> (Option<String>, Option<SelectorToken>) {
    let selector: &ContextVariable = &dynamic.selector;
    let key = selector.key.as_deref().unwrap_or("");
    let value = match selector.table {
        // A repeated header or parameter counts by its first value, as OCI documents for
        // dynamic routing (never as none: that would fall to the default server).
        ContextTable::Headers => request.first_header(key).map(|v| v.trim().to_owned()),
        ContextTable::Query => request
            .query()
            .unwrap_or("")
            .split('&')
            .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
            .find(|(name, _)| *name == key)
            .map(|(_, v)| v.to_owned()),
        ContextTable::Host => host(request).map(str::to_owned),
        ContextTable::Subdomain => host(request)
            .and_then(|h| subdomain(h, key))
            .map(str::to_owned),
        ContextTable::Path => params
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, v)| v.clone()),
        ContextTable::Auth => {
            // Every server reads the token from the same place (the loader checks it).
            let location: Option<&TokenLocation> = dynamic
                .servers
                .first()
                .and_then(|s| s.policy.jwt())
                .map(|p| &p.location);
            let Some(raw) = location.and_then(|l| extract_token(l, request).ok()) else {
                return (None, Some(SelectorToken::NotFound));
            };
            let Ok(token) = Jws::parse(raw) else {
                return (None, Some(SelectorToken::Invalid));
            };
            let mut claim = token.claims.get(key);
            if let Some(sub) = &selector.sub_key {
                claim = claim.and_then(|c| c.get(sub).cloned());
            }
            claim.and_then(|c| match c {
                Value::String(s) => Some(s),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            })
        }
        _ => None,
    };
    (value, None)
}

/// `request.subdomain[<suffix>]`: what precedes `.<suffix>` in the host (`cars` for
/// `cars.example.com` and `example.com`; the suffix compared ASCII case-insensitively).
pub(crate) fn subdomain<'h>(host: &'h str, suffix: &str) -> Option<&'h str> {
    let cut = host.len().checked_sub(suffix.len() + 1)?;
    let (head, tail) = (host.get(..cut)?, host.get(cut..)?);
    (tail.starts_with('.') && tail[1..].eq_ignore_ascii_case(suffix) && !head.is_empty())
        .then_some(head)
}

/// The `Host` header without its port.
pub(crate) fn host(request: &dyn RequestView) -> Option<&str> {
    let HeaderValues::One(host) = request.header("host") else {
        return None;
    };
    Some(host_without_port(host))
}

/// A host (`Host` header) without its port: `cars.example.com:8443` → `cars.example.com`,
/// `[::1]:80` → `[::1]`.
pub(crate) fn host_without_port(host: &str) -> &str {
    let host = host.trim();
    if host.starts_with('[') {
        host.split_once(']')
            .map_or(host, |(h, _)| &host[..h.len() + 1])
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    }
}
