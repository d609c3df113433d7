//! Reading deployment files: the four shapes OCI users have, every member checked against the
//! SDK's names, types and limits, turned into [`Deployment`].

use crate::model::*;
use crate::reader::{join, Cx, Diagnostic, Field, Obj};
use claimgate_jose::{json, KeyKind, KeySet, PublicKey};
use serde_json::{Map, Value};

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

/// Every problem of a file that cannot be used, and the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub errors: Vec<Diagnostic>,
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
        let mut envelope = Field::root(value, "").object(cx)?;
        let data = envelope.require(cx, "data")?;
        envelope.ignore(&["etag", "opcRequestId"]);
        envelope.finish(cx, &["data", "etag"]);
        return read_deployment(cx, &data, options, true);
    }
    if top.contains_key("specification") {
        return read_deployment(cx, &Field::root(value, ""), options, false);
    }
    let looks_like_spec = top.keys().any(|k| {
        SPECIFICATION_MEMBERS
            .iter()
            .any(|m| k == m || *k == crate::reader::kebab(m))
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
    let id = if read_back {
        obj.take("id").and_then(|f| f.str(cx)).map(str::to_owned)
    } else {
        None
    };
    let prefix = match (obj.take("pathPrefix"), &options.path_prefix) {
        (Some(f), _) => f.str(cx).and_then(|p| check_prefix(cx, &f.path, p)),
        (None, Some(p)) => check_prefix(cx, "--path-prefix", p),
        (None, None) => {
            cx.error(&join(&obj.path, "pathPrefix"), "is required");
            None
        }
    };
    let spec = obj
        .require(cx, "specification")
        .and_then(|f| read_specification(cx, &f));
    obj.ignore(DEPLOYMENT_MEMBERS);
    let mut known: Vec<&str> = DEPLOYMENT_MEMBERS.to_vec();
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
    let mut unenforced = Vec::new();
    let authentication = match obj.take("requestPolicies") {
        Some(f) => read_request_policies(cx, &f, &mut unenforced),
        None => Some(Authentication::None),
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
    let mut routes = Vec::with_capacity(items.len());
    for item in &items {
        if let Some(route) = read_route(cx, item, authentication.as_ref(), &mut unenforced) {
            routes.push(route);
        }
    }
    let authentication = authentication?;
    for path in &unenforced {
        cx.warn(
            path,
            "is not enforced by claimgate yet ('serve' refuses this file)",
        );
    }
    Some(Deployment {
        id: String::new(),
        display_name: None,
        path_prefix: "/".into(),
        authentication,
        routes,
        execution_log_level,
        unenforced,
    })
}

/// Members claimgate parses but does not enforce yet. A null or inert member is not reported.
fn note_unenforced(obj: &mut Obj<'_>, names: &[&str], unenforced: &mut Vec<String>) {
    for name in names {
        if let Some(f) = obj.take(name) {
            if !is_inert(name, f.value) {
                unenforced.push(f.path);
            }
        }
    }
}

/// A member that changes nothing as written (read-backs print such defaults).
fn is_inert(name: &str, value: &Value) -> bool {
    let Some(map) = value.as_object() else {
        return false;
    };
    let falsy = |v: Option<&Value>| match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => true,
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    };
    match name {
        "mutualTls" => {
            falsy(
                map.get("isVerifiedCertificateRequired")
                    .or(map.get("is-verified-certificate-required")),
            ) && falsy(map.get("allowedSans").or(map.get("allowed-sans")))
        }
        _ => map.values().all(Value::is_null),
    }
}

const REQUEST_POLICY_MEMBERS: &[&str] = &[
    "authentication",
    "rateLimiting",
    "cors",
    "mutualTls",
    "usagePlans",
    "dynamicAuthentication",
];

fn read_request_policies(
    cx: &mut Cx,
    field: &Field<'_>,
    unenforced: &mut Vec<String>,
) -> Option<Authentication> {
    let mut obj = field.object(cx)?;
    let authentication = match obj.take("authentication") {
        None => Some(Authentication::None),
        Some(f) => read_authentication(cx, &f),
    };
    note_unenforced(
        &mut obj,
        &[
            "rateLimiting",
            "cors",
            "mutualTls",
            "usagePlans",
            "dynamicAuthentication",
        ],
        unenforced,
    );
    obj.finish(cx, REQUEST_POLICY_MEMBERS);
    authentication
}

const JWT_MEMBERS: &[&str] = &[
    "type",
    "isAnonymousAccessAllowed",
    "tokenHeader",
    "tokenQueryParam",
    "tokenAuthScheme",
    "maxClockSkewInSeconds",
    "issuers",
    "audiences",
    "verifyClaims",
    "publicKeys",
];
const TOKEN_MEMBERS: &[&str] = &[
    "type",
    "isAnonymousAccessAllowed",
    "tokenHeader",
    "tokenQueryParam",
    "tokenAuthScheme",
    "maxClockSkewInSeconds",
    "validationPolicy",
    "validationFailurePolicy",
];

fn read_authentication(cx: &mut Cx, field: &Field<'_>) -> Option<Authentication> {
    let mut obj = field.object(cx)?;
    let kind = obj.require(cx, "type").and_then(|f| f.str(cx))?;
    match kind {
        "JWT_AUTHENTICATION" => read_jwt_policy(cx, obj, AuthFlavor::JwtAuthentication),
        "TOKEN_AUTHENTICATION" => read_jwt_policy(cx, obj, AuthFlavor::TokenAuthentication),
        "CUSTOM_AUTHENTICATION" => {
            obj.ignore(&[
                "functionId",
                "tokenHeader",
                "tokenQueryParam",
                "parameters",
                "cacheKey",
                "validationFailurePolicy",
                "isAnonymousAccessAllowed",
            ]);
            obj.finish(cx, &[]);
            cx.warn(
                &field.path,
                "CUSTOM_AUTHENTICATION calls an OCI Functions authorizer: claimgate cannot evaluate it",
            );
            Some(Authentication::Unsupported {
                kind: kind.to_owned(),
                reason: "it calls an OCI Functions authorizer, which only OCI can run".into(),
            })
        }
        other => {
            cx.error(
                &join(&obj.path, "type"),
                format!(
                    "'{other}' is not an authentication type (JWT_AUTHENTICATION, \
                     TOKEN_AUTHENTICATION, CUSTOM_AUTHENTICATION)"
                ),
            );
            None
        }
    }
}

fn read_jwt_policy(cx: &mut Cx, mut obj: Obj<'_>, flavor: AuthFlavor) -> Option<Authentication> {
    let policy_path = obj.path.clone();
    let anonymous_allowed = obj
        .take("isAnonymousAccessAllowed")
        .and_then(|f| f.bool(cx))
        .unwrap_or(false);
    let header = obj.take("tokenHeader");
    let query = obj.take("tokenQueryParam");
    let scheme = obj.take("tokenAuthScheme");
    let location = match (&header, &query) {
        (Some(h), None) => {
            let name = h.non_empty_str(cx);
            let scheme = match &scheme {
                Some(s) => s.non_empty_str(cx).map(str::to_owned),
                None if flavor == AuthFlavor::JwtAuthentication => {
                    cx.error(
                        &join(&policy_path, "tokenAuthScheme"),
                        "is required with tokenHeader (OCI supports 'Bearer')",
                    );
                    None
                }
                None => None,
            };
            if let Some(s) = &scheme {
                if s != "Bearer" {
                    cx.warn(
                        &join(&policy_path, "tokenAuthScheme"),
                        format!("'{s}': OCI supports only 'Bearer'"),
                    );
                }
            }
            name.map(|name| TokenLocation::Header {
                name: name.to_owned(),
                scheme,
            })
        }
        (None, Some(q)) => {
            if let Some(s) = &scheme {
                cx.error(&s.path, "only applies with tokenHeader");
            }
            q.non_empty_str(cx).map(|name| TokenLocation::Query {
                name: name.to_owned(),
            })
        }
        (Some(_), Some(q)) => {
            cx.error(
                &q.path,
                "tokenHeader and tokenQueryParam cannot both be set",
            );
            None
        }
        (None, None) => {
            cx.error(
                &join(&policy_path, "tokenHeader"),
                "is required (or tokenQueryParam): where should the token be read from?",
            );
            None
        }
    };
    let skew = obj
        .take("maxClockSkewInSeconds")
        .map(|f| f.number_in(cx, 0.0, 120.0))
        .unwrap_or(Some(0.0));
    let (issuers, audiences, verify_claims, keys) =
        match flavor {
            AuthFlavor::JwtAuthentication => {
                let issuers = obj
                    .require(cx, "issuers")
                    .and_then(|f| required_list(cx, &f, 5));
                let audiences = obj
                    .require(cx, "audiences")
                    .and_then(|f| required_list(cx, &f, 5));
                let claims = read_verify_claims(cx, obj.take("verifyClaims"));
                let keys = obj
                    .require(cx, "publicKeys")
                    .and_then(|f| read_key_source(cx, &f, None));
                obj.finish(cx, JWT_MEMBERS);
                (issuers.map(Some), audiences.map(Some), claims, keys)
            }
            AuthFlavor::TokenAuthentication => {
                let failure = obj.take("validationFailurePolicy");
                let result = obj
                    .require(cx, "validationPolicy")
                    .and_then(|f| read_validation_policy(cx, &f));
                obj.finish(cx, TOKEN_MEMBERS);
                if let Some(f) = failure {
                    cx.error(
                        &f.path,
                        "validationFailurePolicy is not supported by claimgate yet",
                    );
                }
                match result? {
                    ValidationPolicy::Keys {
                        keys,
                        issuers,
                        audiences,
                        claims,
                    } => (Some(issuers), Some(audiences), claims, Some(keys)),
                    ValidationPolicy::Discovery => return Some(Authentication::Unsupported {
                        kind: "TOKEN_AUTHENTICATION with REMOTE_DISCOVERY".into(),
                        reason:
                            "OIDC discovery and introspection are not supported by claimgate yet"
                                .into(),
                    }),
                }
            }
        };
    Some(Authentication::Jwt(Box::new(JwtPolicy {
        flavor,
        anonymous_allowed,
        location: location?,
        issuers: issuers?,
        audiences: audiences?,
        verify_claims: verify_claims?,
        max_clock_skew_seconds: skew?,
        keys: keys?,
        path: policy_path,
    })))
}

enum ValidationPolicy {
    Keys {
        keys: KeySource,
        issuers: Option<Vec<String>>,
        audiences: Option<Vec<String>>,
        claims: Option<Vec<ClaimRule>>,
    },
    Discovery,
}

fn read_validation_policy(cx: &mut Cx, field: &Field<'_>) -> Option<ValidationPolicy> {
    let mut obj = field.object(cx)?;
    let kind = obj.require(cx, "type").and_then(|f| f.str(cx))?.to_owned();
    let (mut issuers, mut audiences, mut claims) = (None, None, Some(Vec::new()));
    if let Some(extra) = obj.take("additionalValidationPolicy") {
        if let Some(mut extra_obj) = extra.object(cx) {
            issuers = extra_obj
                .take("issuers")
                .and_then(|f| required_list(cx, &f, 5));
            audiences = extra_obj
                .take("audiences")
                .and_then(|f| required_list(cx, &f, 5));
            claims = read_verify_claims(cx, extra_obj.take("verifyClaims"));
            extra_obj.finish(cx, &["issuers", "audiences", "verifyClaims"]);
        }
    }
    match kind.as_str() {
        "STATIC_KEYS" | "REMOTE_JWKS" => {
            let keys = read_key_source(cx, field, Some(obj))?;
            Some(ValidationPolicy::Keys {
                keys,
                issuers,
                audiences,
                claims: Some(claims?),
            })
        }
        "REMOTE_DISCOVERY" => {
            obj.ignore(&[
                "clientDetails",
                "sourceUriDetails",
                "isSslVerifyDisabled",
                "maxCacheDurationInHours",
            ]);
            obj.finish(
                cx,
                &[
                    "type",
                    "additionalValidationPolicy",
                    "clientDetails",
                    "sourceUriDetails",
                ],
            );
            Some(ValidationPolicy::Discovery)
        }
        other => {
            cx.error(
                &join(&obj.path, "type"),
                format!("'{other}' is not a validation policy type (STATIC_KEYS, REMOTE_JWKS, REMOTE_DISCOVERY)"),
            );
            None
        }
    }
}

fn required_list(cx: &mut Cx, field: &Field<'_>, max: usize) -> Option<Vec<String>> {
    let list = field.strings(cx, max)?;
    if list.is_empty() {
        cx.error(&field.path, "at least one value is required");
        return None;
    }
    for (i, value) in list.iter().enumerate() {
        if value.is_empty() {
            cx.error(&format!("{}[{i}]", field.path), "must not be empty");
        }
    }
    Some(list)
}

fn read_verify_claims(cx: &mut Cx, field: Option<Field<'_>>) -> Option<Vec<ClaimRule>> {
    let Some(field) = field else {
        return Some(Vec::new());
    };
    let items = field.array_max(cx, 10)?;
    let mut rules = Vec::new();
    let mut ok = true;
    for item in items {
        let Some(mut obj) = item.object(cx) else {
            ok = false;
            continue;
        };
        let key = obj
            .require(cx, "key")
            .and_then(|f| f.non_empty_str(cx))
            .map(str::to_owned);
        let values = obj
            .take("values")
            .map(|f| f.strings(cx, usize::MAX))
            .unwrap_or(Some(Vec::new()));
        let required = obj
            .take("isRequired")
            .map(|f| f.bool(cx))
            .unwrap_or(Some(false));
        obj.finish(cx, &["key", "values", "isRequired"]);
        match (key, values, required) {
            (Some(key), Some(values), Some(required)) => {
                if rules.iter().any(|r: &ClaimRule| r.key == key) {
                    cx.error(&item.path, format!("claim '{key}' is listed twice"));
                    ok = false;
                }
                rules.push(ClaimRule {
                    key,
                    values,
                    required,
                });
            }
            _ => ok = false,
        }
    }
    ok.then_some(rules)
}

const STATIC_KEY_MEMBERS: &[&str] = &[
    "kid", "format", "kty", "n", "e", "use", "key_ops", "alg", "crv", "x", "y", "key",
];

/// Reads `publicKeys` (JWT_AUTHENTICATION) or a keyed `validationPolicy` (TOKEN_AUTHENTICATION,
/// whose object is already open as `open`).
fn read_key_source(cx: &mut Cx, field: &Field<'_>, open: Option<Obj<'_>>) -> Option<KeySource> {
    let nested = open.is_some();
    let mut obj = match open {
        Some(obj) => obj,
        None => field.object(cx)?,
    };
    let kind = obj.require(cx, "type").and_then(|f| f.str(cx))?.to_owned();
    let mut known = vec!["type"];
    if nested {
        known.push("additionalValidationPolicy");
    }
    let source = match kind.as_str() {
        "REMOTE_JWKS" => {
            let uri = obj.require(cx, "uri").and_then(|f| {
                let uri = f.non_empty_str(cx)?;
                check_remote_uri(cx, &f.path, uri)
            });
            let ssl_verify_disabled = obj
                .take("isSslVerifyDisabled")
                .and_then(|f| f.bool(cx))
                .unwrap_or(false);
            let hours = obj
                .take("maxCacheDurationInHours")
                .map(|f| f.integer_in(cx, 1, 24))
                .unwrap_or(Some(1));
            known.extend(["uri", "isSslVerifyDisabled", "maxCacheDurationInHours"]);
            Some(KeySource::RemoteJwks(RemoteJwks {
                uri: uri?,
                ssl_verify_disabled,
                max_cache_hours: hours? as u32,
            }))
        }
        "STATIC_KEYS" => {
            known.push("keys");
            obj.require(cx, "keys")
                .and_then(|f| read_static_keys(cx, &f))
                .map(KeySource::Static)
        }
        other => {
            cx.error(
                &join(&obj.path, "type"),
                format!("'{other}' is not a key set type (REMOTE_JWKS, STATIC_KEYS)"),
            );
            None
        }
    };
    obj.finish(cx, &known);
    source
}

fn check_remote_uri(cx: &mut Cx, path: &str, uri: &str) -> Option<String> {
    let rest = if let Some(rest) = uri.strip_prefix("https://") {
        rest
    } else if let Some(rest) = uri.strip_prefix("http://") {
        let host = rest.split(['/', ':']).next().unwrap_or_default();
        if !matches!(host, "localhost" | "127.0.0.1" | "[::1]") {
            cx.warn(
                path,
                "plain http:// to a non-loopback host: keys can be tampered with in transit",
            );
        }
        rest
    } else {
        cx.error(
            path,
            format!("'{uri}' must be an https:// (or http://) URL"),
        );
        return None;
    };
    if rest.is_empty() || rest.starts_with('/') {
        cx.error(path, format!("'{uri}' has no host"));
        return None;
    }
    Some(uri.to_owned())
}

fn read_static_keys(cx: &mut Cx, field: &Field<'_>) -> Option<KeySet> {
    let items = field.array_max(cx, 10)?;
    if items.is_empty() {
        cx.error(&field.path, "at least one key is required");
        return None;
    }
    let mut keys: Vec<PublicKey> = Vec::new();
    let mut ok = true;
    for item in items {
        match read_static_key(cx, &item) {
            Some(key) => {
                if keys.iter().any(|k| k.kid() == key.kid()) {
                    cx.error(
                        &join(&item.path, "kid"),
                        format!(
                            "kid '{}' is used by another key",
                            key.kid().unwrap_or_default()
                        ),
                    );
                    ok = false;
                }
                if !matches!(key.kind(), KeyKind::Rsa { .. }) {
                    cx.warn(
                        &item.path,
                        format!(
                            "a {} key: claimgate accepts it, OCI accepts only RSA",
                            key.kind()
                        ),
                    );
                }
                keys.push(key);
            }
            None => ok = false,
        }
    }
    ok.then(|| KeySet::new(keys))
}

fn read_static_key(cx: &mut Cx, item: &Field<'_>) -> Option<PublicKey> {
    let mut obj = item.object(cx)?;
    let kid = obj
        .require(cx, "kid")
        .and_then(|f| f.non_empty_str(cx))
        .map(str::to_owned);
    let format = obj
        .require(cx, "format")
        .and_then(|f| f.str(cx))
        .map(str::to_owned);
    let result = match format.as_deref() {
        Some("JSON_WEB_KEY") => {
            let mut jwk = Map::new();
            for member in ["kty", "n", "e", "use", "key_ops", "alg", "crv", "x", "y"] {
                if let Some(f) = obj.take(member) {
                    jwk.insert(member.to_owned(), f.value.clone());
                }
            }
            if let Some(kid) = &kid {
                jwk.insert("kid".into(), Value::String(kid.clone()));
            }
            if let Some(alg) = jwk.get("alg").and_then(Value::as_str) {
                if !matches!(alg, "RS256" | "RS384" | "RS512") {
                    cx.warn(
                        &join(&item.path, "alg"),
                        format!("'{alg}': OCI accepts only RS256, RS384, RS512"),
                    );
                }
            }
            obj.finish(
                cx,
                &[
                    "kid", "format", "kty", "n", "e", "use", "key_ops", "alg", "crv", "x", "y",
                ],
            );
            PublicKey::from_jwk(&jwk).map_err(|e| e.to_string())
        }
        Some("PEM") => {
            let pem = obj.require(cx, "key").and_then(|f| f.str(cx));
            obj.finish(cx, &["kid", "format", "key"]);
            match pem {
                Some(pem) => PublicKey::from_pem(pem, kid.clone()).map_err(|e| e.to_string()),
                None => return None,
            }
        }
        Some(other) => {
            obj.finish(cx, STATIC_KEY_MEMBERS);
            cx.error(
                &join(&item.path, "format"),
                format!("'{other}' is not a key format (JSON_WEB_KEY, PEM)"),
            );
            return None;
        }
        None => {
            obj.finish(cx, STATIC_KEY_MEMBERS);
            return None;
        }
    };
    match result {
        Ok(key) => Some(key),
        Err(reason) => {
            cx.error(&item.path, reason);
            None
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
                        format!("'{other}' is not a log level (INFO, WARN, ERROR)"),
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

fn read_route(
    cx: &mut Cx,
    field: &Field<'_>,
    authentication: Option<&Authentication>,
    unenforced: &mut Vec<String>,
) -> Option<Route> {
    let mut obj = field.object(cx)?;
    let path = obj.require(cx, "path").and_then(|f| {
        let text = f.str(cx)?;
        RoutePath::parse(text)
            .map_err(|e| cx.error(&f.path, e))
            .ok()
    });
    let methods = match obj.take("methods") {
        None => Some(Methods::Any),
        Some(f) => read_methods(cx, &f),
    };
    let backend = obj
        .require(cx, "backend")
        .and_then(|f| read_backend(cx, &f));
    let mut authorization = Some(Authorization::AuthenticationOnly);
    let mut explicit_authorization = None;
    if let Some(policies) = obj.take("requestPolicies") {
        if let Some(mut policies) = policies.object(cx) {
            if let Some(f) = policies.take("authorization") {
                authorization = read_authorization(cx, &f);
                explicit_authorization = Some(f.path);
            }
            note_unenforced(
                &mut policies,
                &ROUTE_REQUEST_POLICY_MEMBERS[1..],
                unenforced,
            );
            policies.finish(cx, ROUTE_REQUEST_POLICY_MEMBERS);
        }
    }
    if let Some(f) = obj.take("responsePolicies") {
        if let Some(mut policies) = f.object(cx) {
            note_unenforced(
                &mut policies,
                &["headerTransformations", "responseCacheStore"],
                unenforced,
            );
            policies.finish(cx, &["headerTransformations", "responseCacheStore"]);
        }
    }
    let execution_log_level = obj
        .take("loggingPolicies")
        .and_then(|f| read_logging(cx, &f))
        .flatten();
    obj.finish(cx, ROUTE_MEMBERS);
    let authorization = authorization?;
    if let Some(at) = &explicit_authorization {
        match (authentication, &authorization) {
            (Some(Authentication::Jwt(policy)), Authorization::Anonymous)
                if !policy.anonymous_allowed =>
            {
                cx.error(
                    at,
                    "ANONYMOUS needs isAnonymousAccessAllowed: true in the authentication policy",
                );
            }
            (
                Some(Authentication::None),
                Authorization::AuthenticationOnly | Authorization::AnyOf(_),
            ) => {
                cx.error(
                    at,
                    "this route requires authentication but the deployment has no authentication policy",
                );
            }
            _ => {}
        }
    }
    let authorization = match authentication {
        Some(Authentication::None) => Authorization::Anonymous,
        _ => authorization,
    };
    Some(Route {
        path: path?,
        methods: methods?,
        backend: backend?,
        authorization,
        execution_log_level,
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
                    format!("'{name}' is not a method (ANY, HEAD, GET, POST, PUT, PATCH, DELETE, OPTIONS)"),
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
                format!("'{other}' is not an authorization type (ANONYMOUS, AUTHENTICATION_ONLY, ANY_OF)"),
            );
            None
        }
    };
    obj.finish(cx, &["type", "allowedScope"]);
    result
}

fn read_backend(cx: &mut Cx, field: &Field<'_>) -> Option<Backend> {
    let mut obj = field.object(cx)?;
    let kind = obj.require(cx, "type").and_then(|f| f.str(cx))?.to_owned();
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
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    cx.error(
                        &f.path,
                        format!("'{url}' must start with http:// or https://"),
                    );
                    return None;
                }
                Some(url.to_owned())
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
                .and_then(|f| f.bool(cx))
                .unwrap_or(false);
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
                ssl_verify_disabled: ssl,
            }))
        }
        "ORACLE_FUNCTIONS_BACKEND"
        | "DYNAMIC_ROUTING_BACKEND"
        | "OAUTH2_LOGIN_BACKEND"
        | "OAUTH2_LOGOUT_BACKEND" => {
            obj.ignore(&[
                "functionId",
                "selectionSource",
                "routingBackends",
                "allowedPostLogoutUris",
                "postLogoutState",
            ]);
            obj.finish(cx, &["type"]);
            cx.warn(
                &field.path,
                format!("{kind} is never served by claimgate (routes to it answer 502)"),
            );
            Some(Backend::Unsupported { kind })
        }
        other => {
            cx.error(
                &join(&obj.path, "type"),
                format!("'{other}' is not a backend type (HTTP_BACKEND, STOCK_RESPONSE_BACKEND, ORACLE_FUNCTIONS_BACKEND, ...)"),
            );
            None
        }
    }
}

fn read_stock_headers(cx: &mut Cx, field: &Field<'_>) -> Option<Vec<(String, String)>> {
    let items = field.array_max(cx, 50)?;
    let mut headers = Vec::new();
    for item in items {
        let mut obj = item.object(cx)?;
        let name = obj
            .require(cx, "name")
            .and_then(|f| f.non_empty_str(cx))
            .map(str::to_owned);
        let value = obj
            .require(cx, "value")
            .and_then(|f| f.str(cx))
            .map(str::to_owned);
        obj.finish(cx, &["name", "value"]);
        headers.push((name?, value?));
    }
    Some(headers)
}
