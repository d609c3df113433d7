//! Route backends: every type OCI has, checked in full; claimgate serves stock responses, HTTP
//! backends, functions (through `--functions`) and dynamic routing among those.

use super::notes::Notes;
use super::transform::is_token;
use crate::context::{parse_template, read_selection_key, read_selection_source, KeyRules, Scope};
use crate::model::*;
use crate::reader::{read_kind, Cx, Field};

const BACKEND_TYPES: &[&str] = &[
    "HTTP_BACKEND",
    "STOCK_RESPONSE_BACKEND",
    "ORACLE_FUNCTIONS_BACKEND",
    "DYNAMIC_ROUTING_BACKEND",
    "OAUTH2_LOGIN_BACKEND",
    "OAUTH2_LOGOUT_BACKEND",
];
/// What a `DYNAMIC_ROUTING_BACKEND` may route to.
const ROUTING_BACKEND_TYPES: &[&str] = &[
    "HTTP_BACKEND",
    "ORACLE_FUNCTIONS_BACKEND",
    "STOCK_RESPONSE_BACKEND",
];
/// Tables a dynamic routing selector may read.
const ROUTING_TABLES: &[ContextTable] = &[
    ContextTable::Auth,
    ContextTable::Headers,
    ContextTable::Host,
    ContextTable::Path,
    ContextTable::Query,
    ContextTable::Subdomain,
    ContextTable::UsagePlan,
];

/// A route's `backend` (or, with `nested`, a backend of a `DYNAMIC_ROUTING_BACKEND`).
pub(crate) fn read_backend(
    cx: &mut Cx,
    field: &Field<'_>,
    scope: &Scope<'_>,
    notes: &mut Notes,
    nested: bool,
) -> Option<Backend> {
    let mut obj = field.object(cx)?;
    let (allowed, what) = if nested {
        (ROUTING_BACKEND_TYPES, "a routing backend type")
    } else {
        (BACKEND_TYPES, "a backend type")
    };
    let kind = read_kind(cx, &mut obj, allowed, what)?.to_owned();
    match kind.as_str() {
        "STOCK_RESPONSE_BACKEND" => {
            let status = obj
                .require(cx, "status")
                .and_then(|f| f.integer_in(cx, 100, 599));
            let body = obj.take("body").and_then(|f| {
                let body = f.str(cx)?;
                if body.len() > 5 * 1024 {
                    cx.error(
                        &f.path,
                        format!("{} bytes is above the maximum 5120", body.len()),
                    );
                } else if body.len() > 4096 {
                    cx.warn(
                        &f.path,
                        format!("{} bytes: OCI's limits page allows 4096", body.len()),
                    );
                }
                Some(body.to_owned())
            });
            let headers = match obj.take("headers") {
                None => Some(Vec::new()),
                Some(f) => read_stock_headers(cx, &f),
            };
            obj.finish(cx, &["type", "status", "body", "headers"]);
            Some(Backend::Stock(StockResponse {
                status: status? as u16,
                body,
                headers: headers?,
            }))
        }
        "HTTP_BACKEND" => {
            let url = obj.require(cx, "url").and_then(|f| {
                let url = f.non_empty_str(cx)?;
                check_backend_url(cx, &f.path, url, scope, nested)
            });
            let mut timeout = |name: &str, default: f64, max: f64| {
                obj.take(name)
                    .map(|f| f.number_in(cx, 1.0, max))
                    .unwrap_or(Some(default))
            };
            let connect = timeout("connectTimeoutInSeconds", 60.0, 75.0);
            let read = timeout("readTimeoutInSeconds", 10.0, 300.0);
            let send = timeout("sendTimeoutInSeconds", 10.0, 300.0);
            let ssl = obj
                .take("isSslVerifyDisabled")
                .map(|f| f.bool(cx))
                .unwrap_or(Some(false));
            obj.finish(
                cx,
                &[
                    "type",
                    "url",
                    "connectTimeoutInSeconds",
                    "readTimeoutInSeconds",
                    "sendTimeoutInSeconds",
                    "isSslVerifyDisabled",
                ],
            );
            Some(Backend::Http(HttpBackend {
                url: url?,
                connect_timeout_seconds: connect?,
                read_timeout_seconds: read?,
                send_timeout_seconds: send?,
                ssl_verify_disabled: ssl?,
            }))
        }
        "ORACLE_FUNCTIONS_BACKEND" => {
            let function = obj.require(cx, "functionId").and_then(|f| {
                let id = f.non_empty_str(cx)?;
                notes.function_refs.push(FunctionRef {
                    function_id: id.to_owned(),
                    path: f.path.clone(),
                });
                Some(id)
            });
            obj.finish(cx, &["type", "functionId"]);
            let function_id = function?.to_owned();
            Some(Backend::Functions(FunctionsBackend { function_id }))
        }
        "DYNAMIC_ROUTING_BACKEND" => {
            let selector = obj
                .require(cx, "selectionSource")
                .and_then(|f| read_selection_source(cx, &f, ROUTING_TABLES));
            let backends = obj.require(cx, "routingBackends");
            obj.finish(cx, &["type", "selectionSource", "routingBackends"]);
            let backends = backends?;
            let items = backends.array_max(cx, 100)?;
            if items.is_empty() {
                cx.error(&backends.path, "at least one routing backend is required");
                return None;
            }
            let mut keys = KeyRules::default();
            let mut rules = Vec::with_capacity(items.len());
            let mut ok = true;
            for item in &items {
                let Some(mut routing) = item.object(cx) else {
                    ok = false;
                    continue;
                };
                let key = routing
                    .require(cx, "key")
                    .and_then(|f| read_selection_key(cx, &f, &mut keys));
                let backend = routing.require(cx, "backend").and_then(|f| {
                    let backend = read_backend(cx, &f, scope, notes, true)?;
                    if let (Backend::Http(http), Some(selector)) = (&backend, &selector) {
                        warn_other_variables(cx, &f.path, &http.url, selector);
                    }
                    Some(backend)
                });
                routing.finish(cx, &["key", "backend"]);
                match (key, backend) {
                    (Some(key), Some(backend)) => rules.push(RoutingRule {
                        name: key.name,
                        key: key.key,
                        is_default: key.is_default,
                        backend,
                    }),
                    _ => ok = false,
                }
            }
            let selector = selector?;
            ok.then_some(())?;
            Some(Backend::Dynamic(Box::new(DynamicRouting {
                selector,
                rules,
            })))
        }
        "OAUTH2_LOGIN_BACKEND" => {
            obj.finish(cx, &["type"]);
            Some(Backend::OAuth2Login)
        }
        _ => {
            // OAUTH2_LOGOUT_BACKEND
            let uris = obj.take("allowedPostLogoutUris").map(|f| {
                let uris = f.strings(cx, 10)?;
                let mut ok = true;
                for (i, uri) in uris.iter().enumerate() {
                    let relative = uri.starts_with('/') && !uri.starts_with("//");
                    if !(relative || uri.starts_with("https://") || uri.starts_with("http://")) {
                        cx.error(
                            &format!("{}[{i}]", f.path),
                            format!(
                                "'{uri}' must be an https:// (or http://) URL or a path in the deployment"
                            ),
                        );
                        ok = false;
                    }
                }
                ok.then_some(uris)
            });
            let state = obj.take("postLogoutState").map(|f| f.str(cx));
            let uris_path = obj.member_path(cx, "allowedPostLogoutUris");
            obj.finish(cx, &["type", "allowedPostLogoutUris", "postLogoutState"]);
            if matches!(uris, Some(None)) || matches!(state, Some(None)) {
                return None;
            }
            if uris
                .as_ref()
                .is_none_or(|u| u.as_ref().is_some_and(Vec::is_empty))
            {
                cx.warn(
                    &uris_path,
                    "empty: claimgate allows only paths in the deployment as postLogoutUrl (OCI allows any URL)",
                );
            }
            Some(Backend::OAuth2Logout(OAuth2Logout {
                allowed_post_logout_uris: uris.flatten().unwrap_or_default(),
                post_logout_state: state.flatten().map(str::to_owned),
            }))
        }
    }
}

/// OCI: "You can only modify the back end url using the context variable specified for
/// `selector`". claimgate expands the others too, so a warning, not an error.
fn warn_other_variables(cx: &mut Cx, path: &str, url: &str, selector: &ContextVariable) {
    let Ok(template) = Template::parse(url) else {
        return;
    };
    for variable in template.variables() {
        if variable != selector {
            cx.warn(
                &format!("{path}.url"),
                format!(
                    "'{url}' uses {variable}: OCI lets a routing backend's url use only the \
                     selector, {selector}"
                ),
            );
            return;
        }
    }
}

/// An `HTTP_BACKEND` url: `http(s)://host/path`, with `${...}` context variables in the path but
/// not in the query. `routed` is a backend of a `DYNAMIC_ROUTING_BACKEND`, whose OCI
/// documentation puts a variable in the host (`https://${request.subdomain[example.com]}-api...`).
fn check_backend_url(
    cx: &mut Cx,
    path: &str,
    url: &str,
    scope: &Scope<'_>,
    routed: bool,
) -> Option<String> {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        cx.error(path, format!("'{url}' must start with http:// or https://"));
        return None;
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if authority.is_empty() {
        cx.error(path, format!("'{url}' has no host"));
        return None;
    }
    let bare_brace = url
        .char_indices()
        .any(|(i, c)| c == '{' && !url[..i].ends_with('$'));
    if bare_brace {
        cx.error(
            path,
            format!("'{url}': write a path parameter as ${{request.path[name]}}, not {{name}}"),
        );
        return None;
    }
    parse_template(cx, path, url, scope)?;
    let after_path = &rest[authority_end..];
    if let Some(query_start) = after_path.find('?') {
        if after_path[query_start..].contains("${") {
            cx.error(
                path,
                "context variables cannot be used in the query of url; set query parameters \
                 with queryParameterTransformations",
            );
            return None;
        }
    }
    if authority.contains("${") && !routed {
        cx.warn(
            path,
            format!("'{url}': OCI documents context variables in url path segments only, not in the host"),
        );
    }
    Some(url.to_owned())
}

fn read_stock_headers(cx: &mut Cx, field: &Field<'_>) -> Option<Vec<(String, String)>> {
    let items = field.array_max(cx, 50)?;
    let mut headers = Vec::new();
    let mut ok = true;
    for item in items {
        let Some(mut obj) = item.object(cx) else {
            ok = false;
            continue;
        };
        let name = obj.require(cx, "name").and_then(|f| {
            let name = f.non_empty_str(cx)?;
            if name.len() > 1024 {
                cx.error(
                    &f.path,
                    format!("{} bytes is above the maximum 1024", name.len()),
                );
                return None;
            }
            if !is_token(name) {
                cx.error(&f.path, format!("'{name}' is not a valid header name"));
                return None;
            }
            Some(name.to_owned())
        });
        let value = obj.require(cx, "value").and_then(|f| {
            let value = f.str(cx)?;
            if value.len() > 4096 {
                cx.error(
                    &f.path,
                    format!("{} bytes is above the maximum 4096", value.len()),
                );
                return None;
            }
            if value.contains(['\r', '\n', '\0']) {
                cx.error(&f.path, "a header value cannot contain CR, LF or NUL");
                return None;
            }
            Some(value.to_owned())
        });
        obj.finish(cx, &["name", "value"]);
        match (name, value) {
            (Some(name), Some(value)) => headers.push((name, value)),
            _ => ok = false,
        }
    }
    ok.then_some(headers)
}
