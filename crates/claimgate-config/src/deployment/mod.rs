//! Reading deployment files: the four shapes OCI users have, every member checked against the
//! SDK's names, types and limits, turned into [`Deployment`].
//!
//! The sections are read by the submodules, each importing only what lies below it:
//! `notes` and `transform` at the bottom, then `backend` and `auth`, then `policies`, and this
//! module (the file, its routes) on top. All of them read through [`crate::reader`] and
//! [`crate::context`].

mod auth;
mod backend;
mod notes;
mod policies;
mod transform;

use crate::context::Scope;
use crate::model::*;
use crate::reader::{
    join, kebab, not_one_of, required_list, spelled_kebab, Cx, Diagnostic, Field, Rejected,
};
use backend::read_backend;
use claimgate_jose::json;
use notes::{AuthRead, Notes, RouteRef};
use policies::{
    read_body_validation, read_cache_lookup, read_cache_store, read_cors, read_item_validations,
    read_request_policies, DeploymentPolicies,
};
use serde_json::Value;
use transform::{read_transformations, Target};

/// Largest deployment specification OCI accepts (2 MB); files beyond it are refused unread.
pub const MAX_FILE_BYTES: usize = 2 * 1024 * 1024;

/// How a file is loaded.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The prefix for a bare specification (default `/`), from `--path-prefix`.
    pub path_prefix: Option<String>,
    /// The file name without extension: the `deploymentId` when the file has no `id`.
    pub name: String,
}

/// A loaded deployment and the warnings about it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub deployment: Deployment,
    pub warnings: Vec<Diagnostic>,
}

/// Loads a deployment file from its text.
pub fn load_str(text: &str, options: &LoadOptions) -> Result<Loaded, Rejected> {
    let mut cx = Cx::default();
    if text.len() > MAX_FILE_BYTES {
        cx.error(
            "",
            format!(
                "the file is {} bytes; OCI accepts specifications up to {MAX_FILE_BYTES}",
                text.len()
            ),
        );
        return Err(Rejected {
            errors: cx.errors,
            warnings: cx.warnings,
        });
    }
    let value = match json::parse_value(text.as_bytes(), 64) {
        Ok(value) => value,
        Err(error) => {
            cx.error("", format!("not a deployment file: {error}"));
            return Err(Rejected {
                errors: cx.errors,
                warnings: cx.warnings,
            });
        }
    };
    cx.kebab = spelled_kebab(&value);
    let deployment = read_file(&mut cx, &value, options);
    match deployment {
        Some(deployment) if cx.errors.is_empty() => Ok(Loaded {
            deployment,
            warnings: cx.warnings,
        }),
        _ => {
            if cx.errors.is_empty() {
                cx.error("", "not a deployment file");
            }
            Err(Rejected {
                errors: cx.errors,
                warnings: cx.warnings,
            })
        }
    }
}

const DEPLOYMENT_MEMBERS: &[&str] = &[
    "displayName",
    "gatewayId",
    "compartmentId",
    "pathPrefix",
    "specification",
    "locks",
    "freeformTags",
    "definedTags",
];
/// Members `oci api-gateway deployment get` adds to a deployment; read back, never used.
const READ_BACK_MEMBERS: &[&str] = &[
    "id",
    "endpoint",
    "lifecycleState",
    "lifecycleDetails",
    "timeCreated",
    "timeUpdated",
    "systemTags",
];
const SPECIFICATION_MEMBERS: &[&str] = &["requestPolicies", "loggingPolicies", "routes"];

fn read_file(cx: &mut Cx, value: &Value, options: &LoadOptions) -> Option<Deployment> {
    let Some(top) = value.as_object() else {
        cx.error("", "not a deployment file: expected a JSON object");
        return None;
    };
    if top.contains_key("data") {
        // `oci api-gateway deployment get`: {"data": {...}, "etag": "..."}
        let data = crate::reader::read_back(cx, &Field::root(value, ""))?;
        return read_deployment(cx, &data, options, true);
    }
    if top.contains_key("specification") {
        return read_deployment(cx, &Field::root(value, ""), options, false);
    }
    let looks_like_spec = top.keys().any(|k| {
        SPECIFICATION_MEMBERS
            .iter()
            .any(|m| k == m || *k == kebab(m))
    });
    if !looks_like_spec {
        cx.error(
            "",
            "not a deployment file: expected a deployment (with 'specification'), a bare \
             specification (with 'routes'), or 'oci api-gateway deployment get' output (with 'data')",
        );
        return None;
    }
    let prefix = options
        .path_prefix
        .clone()
        .unwrap_or_else(|| "/".to_owned());
    let prefix = check_prefix(cx, "--path-prefix", &prefix)?;
    let mut spec = read_specification(cx, &Field::root(value, ""))?;
    spec.path_prefix = prefix;
    spec.id = options.name.clone();
    Some(spec)
}

fn read_deployment(
    cx: &mut Cx,
    field: &Field<'_>,
    options: &LoadOptions,
    read_back: bool,
) -> Option<Deployment> {
    let mut obj = field.object(cx)?;
    let display_name = obj
        .take("displayName")
        .and_then(|f| f.str(cx))
        .map(str::to_owned);
    // SPEC: a camelCase deployment file may carry `id` (OCI's `Deployment` GET shape), which
    // usage-plan entitlements target.
    let id = obj.take("id").and_then(|f| f.str(cx)).map(str::to_owned);
    let prefix = match (obj.take("pathPrefix"), &options.path_prefix) {
        (Some(f), _) => f.str(cx).and_then(|p| check_prefix(cx, &f.path, p)),
        (None, Some(p)) => check_prefix(cx, "--path-prefix", p),
        (None, None) => {
            let path = obj.member_path(cx, "pathPrefix");
            cx.error(&path, "is required");
            None
        }
    };
    let spec = obj
        .require(cx, "specification")
        .and_then(|f| read_specification(cx, &f));
    obj.ignore(DEPLOYMENT_MEMBERS);
    let mut known: Vec<&str> = DEPLOYMENT_MEMBERS.to_vec();
    known.push("id");
    if read_back {
        obj.ignore(READ_BACK_MEMBERS);
        known.extend_from_slice(READ_BACK_MEMBERS);
    }
    obj.finish(cx, &known);
    let mut spec = spec?;
    spec.path_prefix = prefix?;
    spec.display_name = display_name;
    spec.id = id.unwrap_or_else(|| options.name.clone());
    Some(spec)
}

fn check_prefix(cx: &mut Cx, path: &str, prefix: &str) -> Option<String> {
    let problem = if !prefix.starts_with('/') {
        Some(format!("'{prefix}' must start with '/'"))
    } else if prefix.len() > 255 {
        Some(format!(
            "{} characters is above the maximum 255",
            prefix.len()
        ))
    } else if prefix.contains("//") {
        Some(format!("'{prefix}' has adjacent slashes"))
    } else if prefix.contains(['{', '}']) {
        Some(format!("'{prefix}' has a parameter; a path prefix cannot"))
    } else {
        prefix
            .chars()
            .find(|c| *c != '/' && !is_path_char(*c))
            .map(|c| format!("character '{c}' is not allowed in a path prefix"))
    };
    if let Some(problem) = problem {
        cx.error(path, problem);
        return None;
    }
    let trimmed = prefix.trim_end_matches('/');
    Some(if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    })
}

fn read_specification(cx: &mut Cx, field: &Field<'_>) -> Option<Deployment> {
    let mut obj = field.object(cx)?;
    let mut notes = Notes::default();
    let mut policies = DeploymentPolicies::default();
    let auth = match obj.take("requestPolicies") {
        Some(f) => read_request_policies(cx, &f, &mut notes, &mut policies),
        None => Some(AuthRead {
            authentication: Authentication::None,
            anonymous_allowed: None,
        }),
    };
    let execution_log_level = obj
        .take("loggingPolicies")
        .and_then(|f| read_logging(cx, &f))
        .flatten();
    let routes_field = obj.require(cx, "routes");
    obj.finish(cx, SPECIFICATION_MEMBERS);
    // Routes are read even when the policy is invalid, so every error is reported at once.
    let routes_field = routes_field?;
    let items = routes_field.array_max(cx, 50)?;
    if items.is_empty() {
        cx.error(&routes_field.path, "at least one route is required");
    }
    let mut routes: Vec<(String, Route)> = Vec::with_capacity(items.len());
    let mut route_keys: Vec<RouteKey> = Vec::with_capacity(items.len());
    for item in &items {
        if let Some(route) = read_route(cx, item, auth.as_ref(), &mut notes, &mut route_keys) {
            routes.push((item.path.clone(), route));
        }
    }
    if routes.len() == items.len() {
        check_route_refs(cx, &notes.route_refs, &routes);
    }
    let auth = auth?;
    for path in &notes.unenforced {
        cx.warn(
            path,
            "is not enforced by claimgate yet ('serve' refuses this file)",
        );
    }
    Some(Deployment {
        id: String::new(),
        display_name: None,
        path_prefix: "/".into(),
        authentication: auth.authentication,
        routes: routes.into_iter().map(|(_, r)| r).collect(),
        execution_log_level,
        rate_limiting: policies.rate_limiting,
        usage_plans: policies.usage_plans,
        cors: policies.cors,
        mutual_tls: policies.mutual_tls,
        unenforced: notes.unenforced,
        secret_refs: notes.secret_refs,
        function_refs: notes.function_refs,
    })
}

/// A route's path and methods, kept for the overlap rule even when the rest of it is invalid.
#[derive(Debug)]
struct RouteKey {
    /// The route's JSON path (`routes[0]`).
    at: String,
    path: RoutePath,
    methods: Methods,
}

/// Two routes with the same path template (parameter names aside) must not share a method.
fn check_overlap(cx: &mut Cx, mine: &RouteKey, earlier: &[RouteKey]) {
    let shape = |path: &RoutePath| -> Vec<String> {
        path.segments()
            .iter()
            .map(|s| match s {
                PathSegment::Literal(text) => format!("={text}"),
                PathSegment::Param(_) => "{}".to_owned(),
                PathSegment::Wildcard(_) => "{*}".to_owned(),
            })
            .collect()
    };
    let my_shape = shape(&mine.path);
    for other in earlier {
        if shape(&other.path) != my_shape {
            continue;
        }
        let shared: Vec<&str> = match (&mine.methods, &other.methods) {
            (Methods::Any, Methods::Any) => vec!["any method"],
            (Methods::Any, Methods::Only(list)) | (Methods::Only(list), Methods::Any) => {
                list.iter().map(|m| m.name()).collect()
            }
            (Methods::Only(a), Methods::Only(b)) => a
                .iter()
                .filter(|m| b.contains(m))
                .map(|m| m.name())
                .collect(),
        };
        if !shared.is_empty() {
            cx.error(
                &join(&mine.at, "path"),
                format!(
                    "'{}' is already routed for {} by {} ('{}')",
                    mine.path.as_str(),
                    shared.join(", "),
                    other.at,
                    other.path.as_str()
                ),
            );
            return;
        }
    }
}

fn check_route_refs(cx: &mut Cx, refs: &[RouteRef], routes: &[(String, Route)]) {
    for r in refs {
        let found = routes
            .iter()
            .any(|(_, route)| route.path.as_str() == r.path && route.backend.kind() == r.backend);
        if !found {
            cx.error(
                &r.at,
                format!(
                    "'{}' must be the path of a route with an {}, and no route is",
                    r.path, r.backend
                ),
            );
        }
    }
}

fn read_logging(cx: &mut Cx, field: &Field<'_>) -> Option<Option<LogLevel>> {
    let mut obj = field.object(cx)?;
    if let Some(access) = obj.take("accessLog") {
        if let Some(mut access) = access.object(cx) {
            let _ = access.take("isEnabled").map(|f| f.bool(cx));
            access.finish(cx, &["isEnabled"]);
        }
    }
    let mut level = None;
    if let Some(execution) = obj.take("executionLog") {
        if let Some(mut execution) = execution.object(cx) {
            let _ = execution.take("isEnabled").map(|f| f.bool(cx));
            level = execution.take("logLevel").and_then(|f| match f.str(cx)? {
                "INFO" => Some(LogLevel::Info),
                "WARN" => Some(LogLevel::Warn),
                "ERROR" => Some(LogLevel::Error),
                other => {
                    cx.error(
                        &f.path,
                        not_one_of(other, &["INFO", "WARN", "ERROR"], "a log level"),
                    );
                    None
                }
            });
            execution.finish(cx, &["isEnabled", "logLevel"]);
        }
    }
    obj.finish(cx, &["accessLog", "executionLog"]);
    Some(level)
}

const ROUTE_MEMBERS: &[&str] = &[
    "path",
    "methods",
    "backend",
    "requestPolicies",
    "responsePolicies",
    "loggingPolicies",
];
const ROUTE_REQUEST_POLICY_MEMBERS: &[&str] = &[
    "authorization",
    "cors",
    "queryParameterValidations",
    "headerValidations",
    "bodyValidation",
    "headerTransformations",
    "queryParameterTransformations",
    "responseCacheLookup",
];

/// Whether two context variables name the same value (header names without regard to case).
fn same_variable(a: &ContextVariable, b: &ContextVariable) -> bool {
    let keys = match (a.key.as_deref(), b.key.as_deref()) {
        (Some(x), Some(y)) if a.table == ContextTable::Headers => x.eq_ignore_ascii_case(y),
        (x, y) => x == y,
    };
    a.table == b.table && keys && a.sub_key == b.sub_key
}

fn read_route(
    cx: &mut Cx,
    field: &Field<'_>,
    auth: Option<&AuthRead>,
    notes: &mut Notes,
    route_keys: &mut Vec<RouteKey>,
) -> Option<Route> {
    let mut obj = field.object(cx)?;
    let path = obj.require(cx, "path").and_then(|f| {
        let text = f.str(cx)?;
        RoutePath::parse(text)
            .map_err(|e| cx.error(&f.path, e))
            .ok()
    });
    let params: Option<Vec<String>> = path.as_ref().map(|p| {
        p.segments()
            .iter()
            .filter_map(|s| match s {
                PathSegment::Param(name) | PathSegment::Wildcard(name) => Some(name.clone()),
                PathSegment::Literal(_) => None,
            })
            .collect()
    });
    let scope = Scope::route(params.as_deref());
    let methods = match obj.take("methods") {
        None => Some(Methods::Any),
        Some(f) => read_methods(cx, &f),
    };
    if let (Some(path), Some(methods)) = (&path, &methods) {
        let key = RouteKey {
            at: field.path.clone(),
            path: path.clone(),
            methods: methods.clone(),
        };
        check_overlap(cx, &key, route_keys);
        route_keys.push(key);
    }
    let backend = obj
        .require(cx, "backend")
        .and_then(|f| read_backend(cx, &f, &scope, notes, false));
    let mut authorization = Some(Authorization::AuthenticationOnly);
    let mut explicit_authorization = None;
    let mut policies_ok = true;
    let mut header_transformations = None;
    let mut query_parameter_transformations = None;
    let mut response_header_transformations = None;
    let mut cors = None;
    let mut validations = RequestValidations::default();
    let mut response_cache_lookup = None;
    let mut cache_lookup_path = None;
    let mut response_cache_store = None;
    if let Some(policies) = obj.take("requestPolicies") {
        if let Some(mut policies) = policies.object(cx) {
            if let Some(f) = policies.take("authorization") {
                authorization = read_authorization(cx, &f);
                explicit_authorization = Some(f.path);
            }
            // Every request policy of a route is enforced by the gateway: none is reported as
            // unenforced; one that does not read makes the route invalid.
            if let Some(f) = policies.take("cors") {
                // Enforced by the gateway: never reported as unenforced.
                let read = read_cors(cx, &f);
                policies_ok &= read.is_some();
                cors = read.flatten();
            }
            if let Some(f) = policies.take("queryParameterValidations") {
                // Enforced by the gateway: never reported as unenforced.
                let read = read_item_validations(cx, &f, "parameters", Target::QueryParameters);
                policies_ok &= read.is_some();
                validations.query_parameters = read.flatten();
            }
            if let Some(f) = policies.take("headerValidations") {
                let read = read_item_validations(cx, &f, "headers", Target::RequestHeaders);
                policies_ok &= read.is_some();
                validations.headers = read.flatten();
            }
            if let Some(f) = policies.take("bodyValidation") {
                let read = read_body_validation(cx, &f);
                policies_ok &= read.is_some();
                validations.body = read.flatten();
            }
            if let Some(f) = policies.take("headerTransformations") {
                // Enforced by the gateway: never reported as unenforced.
                let read = read_transformations(cx, &f, Target::RequestHeaders, &scope);
                policies_ok &= read.is_some();
                header_transformations = read.filter(|t| !t.is_empty());
            }
            if let Some(f) = policies.take("queryParameterTransformations") {
                let read = read_transformations(cx, &f, Target::QueryParameters, &scope);
                policies_ok &= read.is_some();
                query_parameter_transformations = read.filter(|t| !t.is_empty());
            }
            if let Some(f) = policies.take("responseCacheLookup") {
                // Enforced by the gateway (with the gateway resource's cache server).
                let read = read_cache_lookup(cx, &f, &scope);
                policies_ok &= read.is_some();
                response_cache_lookup = read.flatten();
                cache_lookup_path = Some(f.path.clone());
            }
            policies.finish(cx, ROUTE_REQUEST_POLICY_MEMBERS);
        }
    }
    if let Some(f) = obj.take("responsePolicies") {
        if let Some(mut policies) = f.object(cx) {
            if let Some(f) = policies.take("headerTransformations") {
                match read_transformations(cx, &f, Target::ResponseHeaders, &scope) {
                    Some(t) => {
                        response_header_transformations = Some(t).filter(|t| !t.is_empty());
                    }
                    None => policies_ok = false,
                }
            }
            // The SDK's `responseCacheStore`, or the documentation's `responseCacheStorage`
            // (reference/oci-policies.md §0.2); both at once could disagree.
            let store = match (
                policies.take("responseCacheStore"),
                policies.take("responseCacheStorage"),
            ) {
                (Some(sdk), Some(docs)) => {
                    cx.error(
                        &docs.path,
                        format!("is the same policy as {}; give one of them", sdk.path),
                    );
                    policies_ok = false;
                    None
                }
                (Some(f), None) | (None, Some(f)) => Some(f),
                (None, None) => None,
            };
            if let Some(f) = store {
                match read_cache_store(cx, &f) {
                    // Enforced by the gateway: never reported as unenforced.
                    Some(store) => response_cache_store = Some(store),
                    None => policies_ok = false,
                }
            }
            policies.finish(
                cx,
                &[
                    "headerTransformations",
                    "responseCacheStore",
                    "responseCacheStorage",
                ],
            );
        }
    }
    let execution_log_level = obj
        .take("loggingPolicies")
        .and_then(|f| read_logging(cx, &f))
        .flatten();
    obj.finish(cx, ROUTE_MEMBERS);
    if let (Some(Backend::Dynamic(routing)), Some(lookup), Some(at)) =
        (&backend, &response_cache_lookup, &cache_lookup_path)
    {
        let keyed = lookup
            .key_additions
            .iter()
            .any(|t| t.variables().any(|v| same_variable(v, &routing.selector)));
        if !keyed {
            cx.warn(
                at,
                format!(
                    "the backend is chosen by {} but the cache key does not include it: an \
                     answer of one backend can be served to requests routed to another; add \
                     '{}' to cacheKeyAdditions",
                    routing.selector, routing.selector
                ),
            );
        }
    }
    let authorization = authorization?;
    if let (Some(at), Some(auth)) = (&explicit_authorization, auth) {
        match &authorization {
            Authorization::Anonymous if auth.anonymous_allowed == Some(false) => {
                cx.error(
                    at,
                    "ANONYMOUS needs isAnonymousAccessAllowed: true in the authentication policy",
                );
            }
            Authorization::AuthenticationOnly | Authorization::AnyOf(_)
                if matches!(auth.authentication, Authentication::None) =>
            {
                cx.error(
                    at,
                    "this route requires authentication but the deployment has no authentication policy",
                );
            }
            _ => {}
        }
    }
    let authorization = match auth.map(|a| &a.authentication) {
        Some(Authentication::None) => Authorization::Anonymous,
        _ => authorization,
    };
    policies_ok.then_some(())?;
    Some(Route {
        path: path?,
        methods: methods?,
        backend: backend?,
        authorization,
        execution_log_level,
        cors,
        header_transformations,
        query_parameter_transformations,
        response_header_transformations,
        validations,
        response_cache_lookup,
        response_cache_store,
    })
}

fn read_methods(cx: &mut Cx, field: &Field<'_>) -> Option<Methods> {
    let items = field.array(cx)?;
    if items.is_empty() {
        cx.error(&field.path, "at least one method is required");
        return None;
    }
    let mut list = Vec::new();
    let mut any = false;
    for item in &items {
        match item.str(cx)? {
            "ANY" => any = true,
            name => match Method::from_name(name) {
                Some(m) if !list.contains(&m) => list.push(m),
                Some(_) => cx.error(&item.path, format!("'{name}' is listed twice")),
                None => cx.error(
                    &item.path,
                    not_one_of(
                        name,
                        &[
                            "ANY", "HEAD", "GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS",
                        ],
                        "a method",
                    ),
                ),
            },
        }
    }
    Some(if any {
        Methods::Any
    } else {
        Methods::Only(list)
    })
}

fn read_authorization(cx: &mut Cx, field: &Field<'_>) -> Option<Authorization> {
    let mut obj = field.object(cx)?;
    let kind = obj.require(cx, "type").and_then(|f| f.str(cx))?.to_owned();
    let result = match kind.as_str() {
        "ANONYMOUS" => Some(Authorization::Anonymous),
        "AUTHENTICATION_ONLY" => Some(Authorization::AuthenticationOnly),
        "ANY_OF" => obj
            .require(cx, "allowedScope")
            .and_then(|f| required_list(cx, &f, 100))
            .map(Authorization::AnyOf),
        other => {
            cx.error(
                &join(&obj.path, "type"),
                not_one_of(
                    other,
                    &["ANONYMOUS", "AUTHENTICATION_ONLY", "ANY_OF"],
                    "an authorization type",
                ),
            );
            None
        }
    };
    obj.finish(cx, &["type", "allowedScope"]);
    result
}
