//! Authentication policies: `JWT_AUTHENTICATION`, `TOKEN_AUTHENTICATION` (keys and
//! `REMOTE_DISCOVERY`), `CUSTOM_AUTHENTICATION`, their validation failure policies, and
//! `dynamicAuthentication`.

use super::notes::{Notes, RouteRef};
use super::transform::{read_transformations, Target};
use crate::context::{
    read_expression, read_selection_key, read_selection_source, read_template, KeyRules, Scope,
};
use crate::model::*;
use crate::reader::{
    join, not_one_of, optional, read_enum, read_kind, required_list, Cx, Field, Obj,
};
use claimgate_jose::{KeyKind, KeySet, PublicKey};
use serde_json::{Map, Value};

/// An authentication policy as read, with what routes and selectors need to know about it.
#[derive(Debug)]
pub(crate) struct PolicyRead {
    pub(crate) authentication: Authentication,
    pub(crate) kind: &'static str,
    /// Where the token is read from (`None` for a multi-argument authorizer).
    pub(crate) location: Option<TokenLocation>,
    /// `isAnonymousAccessAllowed` of the policy: `ANONYMOUS` routes need it.
    pub(crate) anonymous_allowed: Option<bool>,
}

const AUTHENTICATION_TYPES: &[&str] = &[
    "JWT_AUTHENTICATION",
    "TOKEN_AUTHENTICATION",
    "CUSTOM_AUTHENTICATION",
];

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

/// Reads an authentication policy (`requestPolicies.authentication`, or a server of
/// `dynamicAuthentication`).
pub(crate) fn read_authentication(
    cx: &mut Cx,
    field: &Field<'_>,
    notes: &mut Notes,
) -> Option<PolicyRead> {
    let mut obj = field.object(cx)?;
    let kind = read_kind(cx, &mut obj, AUTHENTICATION_TYPES, "an authentication type")?;
    match kind {
        "JWT_AUTHENTICATION" => read_jwt_policy(cx, obj, AuthFlavor::JwtAuthentication, notes),
        "TOKEN_AUTHENTICATION" => read_jwt_policy(cx, obj, AuthFlavor::TokenAuthentication, notes),
        _ => read_custom_policy(cx, obj, notes),
    }
}

const CUSTOM_MEMBERS: &[&str] = &[
    "type",
    "isAnonymousAccessAllowed",
    "functionId",
    "tokenHeader",
    "tokenQueryParam",
    "parameters",
    "cacheKey",
    "validationFailurePolicy",
];

/// Tables an authorizer function's `parameters` may read (OCI's list).
const AUTHORIZER_TABLES: &[ContextTable] = &[
    ContextTable::Query,
    ContextTable::Headers,
    ContextTable::Cert,
    ContextTable::Host,
    ContextTable::Body,
];

/// `CUSTOM_AUTHENTICATION`: an authorizer function, called by the gateway with OCI's input.
fn read_custom_policy(cx: &mut Cx, mut obj: Obj<'_>, notes: &mut Notes) -> Option<PolicyRead> {
    let policy_path = obj.path.clone();
    let function = obj.require(cx, "functionId").and_then(|f| {
        let id = f.non_empty_str(cx)?;
        notes.function_refs.push(FunctionRef {
            function_id: id.to_owned(),
            path: f.path.clone(),
        });
        Some(id.to_owned())
    });
    // OCI's AuthenticationPolicy requires it for ANONYMOUS routes whatever the type.
    let anonymous_allowed = obj
        .take("isAnonymousAccessAllowed")
        .and_then(|f| f.bool(cx))
        .unwrap_or(false);
    let header = obj.take("tokenHeader");
    let query = obj.take("tokenQueryParam");
    let header_name = header.as_ref().and_then(|f| f.non_empty_str(cx));
    let query_name = query.as_ref().and_then(|f| f.non_empty_str(cx));
    if let (Some(_), Some(q)) = (&header, &query) {
        cx.error(
            &q.path,
            "tokenHeader and tokenQueryParam cannot both be set",
        );
    }
    let parameters = obj.take("parameters");
    let mut arguments = Vec::new();
    let mut parameters_ok = true;
    if let Some(f) = &parameters {
        if header.is_some() || query.is_some() {
            cx.error(
                &f.path,
                "parameters (multi-argument) and tokenHeader/tokenQueryParam (single-argument) \
                 cannot both be set: choose one way to call the function",
            );
            parameters_ok = false;
        }
        match f.entries(cx) {
            Some(entries) => {
                if entries.len() > 10 {
                    cx.error(
                        &f.path,
                        format!("{} entries is above the maximum 10", entries.len()),
                    );
                    parameters_ok = false;
                }
                if entries.is_empty() {
                    cx.error(&f.path, "at least one parameter is required");
                    parameters_ok = false;
                }
                let scope = Scope::authorizer();
                for (name, value) in entries {
                    if name.is_empty() {
                        cx.error(&value.path, "a parameter name must not be empty");
                        parameters_ok = false;
                    }
                    if value.value.is_null() {
                        cx.error(&value.path, "expected a context variable, found null");
                        parameters_ok = false;
                        continue;
                    }
                    match read_expression(cx, &value, &scope) {
                        Some(variable) if !AUTHORIZER_TABLES.contains(&variable.table) => {
                            cx.error(
                                &value.path,
                                format!(
                                    "{} cannot be passed to an authorizer function (request.query, \
                                     request.headers, request.cert, request.host or request.body)",
                                    variable.table.name()
                                ),
                            );
                            parameters_ok = false;
                        }
                        Some(variable) => {
                            arguments.push((name.to_owned(), variable));
                        }
                        None => parameters_ok = false,
                    }
                }
            }
            None => parameters_ok = false,
        }
    }
    if header.is_none() && query.is_none() && parameters.is_none() {
        cx.error(
            &obj.member_path(cx, "tokenHeader"),
            "is required (or tokenQueryParam, or parameters): what should the authorizer \
             function receive?",
        );
    }
    let mut cache_key = None;
    let mut cache_key_ok = true;
    if let Some(f) = obj.take("cacheKey") {
        match f.array_max(cx, 10) {
            Some(items) => {
                let mut keys = Vec::with_capacity(items.len());
                for item in items {
                    let Some(key) = item.str(cx) else {
                        cache_key_ok = false;
                        continue;
                    };
                    if parameters_ok && !arguments.iter().any(|(name, _)| name == key) {
                        cx.error(&item.path, format!("'{key}' is not a key of parameters"));
                        cache_key_ok = false;
                    }
                    keys.push(key.to_owned());
                }
                cache_key = Some(keys);
            }
            None => cache_key_ok = false,
        }
    }
    let mut failure_response = None;
    let mut failure_ok = true;
    if let Some(f) = obj.take("validationFailurePolicy") {
        match read_failure_policy(cx, &f, FailureHost::Custom, notes) {
            Some(failure) => {
                let in_effect = failure.in_effect();
                if let Failure::ModifyResponse(modify) = failure {
                    failure_response = Some(modify).filter(|_| in_effect);
                }
            }
            None => failure_ok = false,
        }
    }
    obj.finish(cx, CUSTOM_MEMBERS);
    let function_id = function?;
    let location = match (header_name, query_name) {
        (Some(name), None) => Some(TokenLocation::Header {
            name: name.to_owned(),
            scheme: None,
        }),
        (None, Some(name)) => Some(TokenLocation::Query {
            name: name.to_owned(),
        }),
        _ => None,
    };
    if !(parameters_ok && cache_key_ok && failure_ok) {
        return None;
    }
    let input = match (&location, parameters.is_some()) {
        (_, true) => AuthorizerInput::Multi(arguments),
        (Some(location), false) => AuthorizerInput::Single(location.clone()),
        (None, false) => return None,
    };
    let custom = CustomAuthentication {
        function_id,
        input,
        cache_key,
        anonymous_allowed,
        failure_response,
        path: policy_path,
    };
    Some(PolicyRead {
        authentication: Authentication::Custom(Box::new(custom)),
        kind: "CUSTOM_AUTHENTICATION",
        location,
        anonymous_allowed: Some(anonymous_allowed),
    })
}

fn read_jwt_policy(
    cx: &mut Cx,
    mut obj: Obj<'_>,
    flavor: AuthFlavor,
    notes: &mut Notes,
) -> Option<PolicyRead> {
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
                        &obj.member_path(cx, "tokenAuthScheme"),
                        "is required with tokenHeader (OCI supports 'Bearer')",
                    );
                    None
                }
                None => None,
            };
            if let Some(s) = &scheme {
                if s != "Bearer" {
                    cx.warn(
                        &obj.member_path(cx, "tokenAuthScheme"),
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
                &obj.member_path(cx, "tokenHeader"),
                "is required (or tokenQueryParam): where should the token be read from?",
            );
            None
        }
    };
    let skew = obj
        .take("maxClockSkewInSeconds")
        .map(|f| f.number_in(cx, 0.0, 120.0))
        .unwrap_or(Some(0.0));
    let mut failure_response = None;
    let mut oauth2 = None;
    let mut failure_ok = true;
    let (issuers, audiences, verify_claims, keys) = match flavor {
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
        AuthFlavor::TokenAuthentication | AuthFlavor::CustomAuthentication => {
            let validation_field = obj.require(cx, "validationPolicy");
            let validation_path = validation_field
                .as_ref()
                .map(|f| f.path.clone())
                .unwrap_or_default();
            let validation = validation_field.and_then(|f| read_validation_policy(cx, &f, notes));
            let failure_field = obj.take("validationFailurePolicy");
            obj.finish(cx, TOKEN_MEMBERS);
            let discovery = validation
                .as_ref()
                .map(|v| matches!(v, ValidationPolicy::Discovery { .. }));
            if let Some(f) = &failure_field {
                match read_failure_policy(cx, f, FailureHost::Token { discovery }, notes) {
                    Some(failure) => match failure {
                        Failure::ModifyResponse(modify) => {
                            let in_effect = Failure::ModifyResponse(modify.clone()).in_effect();
                            failure_response = Some(modify).filter(|_| in_effect);
                        }
                        Failure::OAuth2(policy) => oauth2 = Some(policy),
                    },
                    None => failure_ok = false,
                }
            }
            match validation? {
                ValidationPolicy::Keys {
                    keys,
                    issuers,
                    audiences,
                    claims,
                } => (Some(issuers), Some(audiences), claims, Some(keys)),
                ValidationPolicy::Discovery {
                    discovery,
                    issuers,
                    audiences,
                    claims,
                } => {
                    let _ = &validation_path;
                    (
                        Some(issuers),
                        Some(audiences),
                        claims,
                        Some(KeySource::Discovery(discovery)),
                    )
                }
            }
        }
    };
    failure_ok.then_some(())?;
    let location = location?;
    let authentication = Authentication::Jwt(Box::new(JwtPolicy {
        flavor,
        anonymous_allowed,
        location: location.clone(),
        issuers: issuers?,
        audiences: audiences?,
        verify_claims: verify_claims?,
        max_clock_skew_seconds: skew?,
        keys: keys?,
        path: policy_path,
        failure_response,
        oauth2,
    }));
    Some(PolicyRead {
        authentication,
        kind: match flavor {
            AuthFlavor::JwtAuthentication => "JWT_AUTHENTICATION",
            AuthFlavor::TokenAuthentication | AuthFlavor::CustomAuthentication => {
                "TOKEN_AUTHENTICATION"
            }
        },
        location: Some(location),
        anonymous_allowed: Some(anonymous_allowed),
    })
}

enum ValidationPolicy {
    Keys {
        keys: KeySource,
        issuers: Option<Vec<String>>,
        audiences: Option<Vec<String>>,
        claims: Option<Vec<ClaimRule>>,
    },
    Discovery {
        discovery: RemoteDiscovery,
        issuers: Option<Vec<String>>,
        audiences: Option<Vec<String>>,
        claims: Option<Vec<ClaimRule>>,
    },
}

fn read_validation_policy(
    cx: &mut Cx,
    field: &Field<'_>,
    notes: &mut Notes,
) -> Option<ValidationPolicy> {
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
            let client = obj
                .require(cx, "clientDetails")
                .and_then(|f| read_client_details(cx, &f, false, notes));
            let source = obj
                .require(cx, "sourceUriDetails")
                .and_then(|f| read_source_uri(cx, &f, false));
            let ssl = obj
                .take("isSslVerifyDisabled")
                .map(|f| f.bool(cx))
                .unwrap_or(Some(false));
            let hours = obj
                .take("maxCacheDurationInHours")
                .map(|f| f.integer_in(cx, 1, 24))
                .unwrap_or(Some(1));
            obj.finish(
                cx,
                &[
                    "type",
                    "additionalValidationPolicy",
                    "clientDetails",
                    "sourceUriDetails",
                    "isSslVerifyDisabled",
                    "maxCacheDurationInHours",
                ],
            );
            // Outside OAUTH2, VALIDATION_BLOCK was refused above, so both are CUSTOM/URI here.
            let (client_id, client_secret) = client??;
            let uri = source??;
            Some(ValidationPolicy::Discovery {
                discovery: RemoteDiscovery {
                    uri,
                    ssl_verify_disabled: ssl?,
                    max_cache_hours: hours? as u32,
                    client_id,
                    client_secret,
                },
                issuers,
                audiences,
                claims: Some(claims?),
            })
        }
        other => {
            cx.error(
                &join(&obj.path, "type"),
                not_one_of(
                    other,
                    &["STATIC_KEYS", "REMOTE_JWKS", "REMOTE_DISCOVERY"],
                    "a validation policy type",
                ),
            );
            None
        }
    }
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
                check_remote_uri(cx, &f.path, uri, "keys")
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
                not_one_of(other, &["REMOTE_JWKS", "STATIC_KEYS"], "a key set type"),
            );
            // The other members belong to the type meant: one error for one typo, not
            // "unknown member" for each of them.
            return None;
        }
    };
    obj.finish(cx, &known);
    source
}

/// An `https://` (or, with a warning off loopback, `http://`) URL with a host; `what` names what
/// travels over it, for the warning.
fn check_remote_uri(cx: &mut Cx, path: &str, uri: &str, what: &str) -> Option<String> {
    let rest = if let Some(rest) = uri.strip_prefix("https://") {
        rest
    } else if let Some(rest) = uri.strip_prefix("http://") {
        let host = rest.split(['/', ':']).next().unwrap_or_default();
        if !matches!(host, "localhost" | "127.0.0.1" | "[::1]") {
            cx.warn(
                path,
                format!(
                    "plain http:// to a non-loopback host: {what} can be tampered with in transit"
                ),
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
                    let kind = key.kind().to_string();
                    let article = if kind.starts_with(['A', 'E', 'I', 'O', 'U']) {
                        "an"
                    } else {
                        "a"
                    };
                    cx.warn(
                        &item.path,
                        format!("{article} {kind} key: claimgate accepts it, OCI accepts only RSA"),
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
            obj.ignore(STATIC_KEY_MEMBERS);
            obj.finish(cx, STATIC_KEY_MEMBERS);
            cx.error(
                &join(&item.path, "format"),
                not_one_of(other, &["JSON_WEB_KEY", "PEM"], "a key format"),
            );
            return None;
        }
        None => {
            obj.ignore(STATIC_KEY_MEMBERS);
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

/// Where a `validationFailurePolicy` sits: OAUTH2 needs a TOKEN policy with REMOTE_DISCOVERY.
#[derive(Debug, Clone, Copy)]
enum FailureHost {
    Custom,
    /// `discovery`: whether the validation policy is REMOTE_DISCOVERY (`None`: it is invalid).
    Token {
        discovery: Option<bool>,
    },
}

#[derive(Debug)]
enum Failure {
    ModifyResponse(ModifyResponse),
    OAuth2(Box<OAuth2Policy>),
}

impl Failure {
    fn in_effect(&self) -> bool {
        match self {
            Self::ModifyResponse(m) => {
                m.response_code.is_some()
                    || m.response_message.is_some()
                    || m.header_transformations
                        .as_ref()
                        .is_some_and(|t| !t.is_empty())
            }
            Self::OAuth2(_) => true,
        }
    }
}

const MODIFY_RESPONSE_MEMBERS: &[&str] = &[
    "type",
    "responseCode",
    "responseMessage",
    "responseHeaderTransformations",
];
const OAUTH2_MEMBERS: &[&str] = &[
    "type",
    "clientDetails",
    "sourceUriDetails",
    "scopes",
    "maxExpiryDurationInHours",
    "useCookiesForSession",
    "useCookiesForIntermediateSteps",
    "usePkce",
    "responseType",
    "fallbackRedirectPath",
    "logoutPath",
    "loginPath",
];

fn read_failure_policy(
    cx: &mut Cx,
    field: &Field<'_>,
    host: FailureHost,
    notes: &mut Notes,
) -> Option<Failure> {
    let mut obj = field.object(cx)?;
    let kind = read_kind(
        cx,
        &mut obj,
        &["MODIFY_RESPONSE", "OAUTH2"],
        "a validation failure policy type",
    )?;
    if kind == "MODIFY_RESPONSE" {
        let scope = Scope::deployment();
        let code = obj
            .take("responseCode")
            .map(|f| read_response_code(cx, &f, &scope));
        let message = obj
            .take("responseMessage")
            .map(|f| read_template(cx, &f, &scope));
        let headers = obj
            .take("responseHeaderTransformations")
            .map(|f| read_transformations(cx, &f, Target::ResponseHeaders, &scope));
        obj.finish(cx, MODIFY_RESPONSE_MEMBERS);
        return Some(Failure::ModifyResponse(ModifyResponse {
            response_code: optional(code)?,
            response_message: optional(message)?,
            header_transformations: optional(headers)?.filter(|t| !t.is_empty()),
        }));
    }
    let type_path = join(&obj.path, "type");
    match host {
        FailureHost::Custom => cx.error(
            &type_path,
            "OAUTH2 is only for TOKEN_AUTHENTICATION with a REMOTE_DISCOVERY validationPolicy \
             (CUSTOM_AUTHENTICATION takes MODIFY_RESPONSE)",
        ),
        FailureHost::Token {
            discovery: Some(false),
        } => cx.error(
            &type_path,
            "OAUTH2 needs a REMOTE_DISCOVERY validationPolicy",
        ),
        FailureHost::Token { .. } => {}
    }
    let client = obj
        .require(cx, "clientDetails")
        .and_then(|f| read_client_details(cx, &f, true, notes));
    let source = obj
        .require(cx, "sourceUriDetails")
        .and_then(|f| read_source_uri(cx, &f, true));
    let scopes = obj.require(cx, "scopes").and_then(|f| {
        let scopes = required_list(cx, &f, usize::MAX)?;
        if !scopes.iter().any(|s| s == "openid") {
            cx.error(&f.path, "must include 'openid'");
            return None;
        }
        Some(scopes)
    });
    let response_type = obj
        .require(cx, "responseType")
        .and_then(|f| read_enum(cx, &f, &["CODE"], "a response type"));
    let hours = obj
        .take("maxExpiryDurationInHours")
        .map(|f| f.integer_in(cx, 1, i64::MAX))
        .unwrap_or(Some(1));
    let mut flags_ok = true;
    let mut flags = [false; 3];
    for (i, flag) in [
        "useCookiesForSession",
        "useCookiesForIntermediateSteps",
        "usePkce",
    ]
    .into_iter()
    .enumerate()
    {
        if let Some(f) = obj.take(flag) {
            match f.bool(cx) {
                Some(value) => flags[i] = value,
                None => flags_ok = false,
            }
        }
    }
    let mut paths_ok = true;
    let mut paths: [Option<String>; 3] = [None, None, None];
    for (i, (member, backend)) in [
        ("fallbackRedirectPath", None),
        ("logoutPath", Some("OAUTH2_LOGOUT_BACKEND")),
        ("loginPath", Some("OAUTH2_LOGIN_BACKEND")),
    ]
    .into_iter()
    .enumerate()
    {
        let Some(f) = obj.take(member) else { continue };
        let Some(path) = f.non_empty_str(cx) else {
            paths_ok = false;
            continue;
        };
        if !path.starts_with('/') || path.starts_with("//") {
            cx.error(&f.path, format!("'{path}' must start with '/'"));
            paths_ok = false;
            continue;
        }
        // These are redirect targets (fallbackRedirectPath) or redirect URIs: "/\\evil" and
        // "/<TAB>/evil" are "//evil" to a browser, another host (an open redirect).
        if path.contains('\\') || path.chars().any(char::is_control) {
            cx.error(
                &f.path,
                format!(
                    "'{}' must be a path of this gateway: browsers read a backslash as '/' and drop control characters, so it could send them to another host",
                    path.escape_debug()
                ),
            );
            paths_ok = false;
            continue;
        }
        paths[i] = Some(path.to_owned());
        if let Some(backend) = backend {
            notes.route_refs.push(RouteRef {
                at: f.path.clone(),
                path: path.to_owned(),
                backend,
            });
        }
    }
    let source_path = obj.member_path(cx, "sourceUriDetails");
    let client_path = obj.member_path(cx, "clientDetails");
    obj.finish(cx, OAUTH2_MEMBERS);
    let client = client?;
    if client.is_some() {
        // A second client for the login alone: not served (use VALIDATION_BLOCK).
        notes.unenforced(&client_path, true);
    }
    if source?.is_some() {
        // A second discovery document for the login alone: not served (the validation
        // policy's is; use VALIDATION_BLOCK).
        notes.unenforced(&source_path, true);
    }
    let scopes = scopes?;
    response_type?;
    let hours = hours?;
    (flags_ok && paths_ok).then_some(())?;
    let [fallback, logout, login] = paths;
    Some(Failure::OAuth2(Box::new(OAuth2Policy {
        client,
        scopes,
        max_expiry_hours: hours as u64,
        use_cookies_for_session: flags[0],
        use_cookies_for_intermediate_steps: flags[1],
        use_pkce: flags[2],
        fallback_redirect_path: fallback,
        logout_path: logout,
        login_path: login,
    })))
}

/// `responseCode`: a status as a string (`"302"`), or a context variable holding one.
fn read_response_code(cx: &mut Cx, field: &Field<'_>, scope: &Scope<'_>) -> Option<ResponseCode> {
    let text = field.str(cx)?;
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u16>() {
            Ok(code) if (100..=599).contains(&code) => Some(ResponseCode::Status(code)),
            _ => {
                cx.error(
                    &field.path,
                    format!("'{text}' is not an HTTP status code (100-599)"),
                );
                None
            }
        };
    }
    if !text.starts_with("request.") && !text.starts_with("${") {
        cx.error(
            &field.path,
            format!("'{text}' is neither an HTTP status code (100-599) nor a context variable"),
        );
        return None;
    }
    read_expression(cx, field, scope).map(ResponseCode::Variable)
}

/// `clientDetails`: `CUSTOM` credentials, or `VALIDATION_BLOCK` (inside OAUTH2: reuse the
/// validation policy's).
fn read_client_details(
    cx: &mut Cx,
    field: &Field<'_>,
    in_oauth2: bool,
    notes: &mut Notes,
) -> Option<Option<(String, SecretRef)>> {
    let mut obj = field.object(cx)?;
    let kind = read_kind(
        cx,
        &mut obj,
        &["CUSTOM", "VALIDATION_BLOCK"],
        "a client details type",
    )?;
    if kind == "VALIDATION_BLOCK" {
        obj.finish(cx, &["type"]);
        if !in_oauth2 {
            cx.error(
                &join(&field.path, "type"),
                "VALIDATION_BLOCK reuses the validationPolicy's details: it only applies inside \
                 an OAUTH2 validationFailurePolicy",
            );
            return None;
        }
        return Some(None);
    }
    let id = obj
        .require(cx, "clientId")
        .and_then(|f| f.non_empty_str(cx));
    let secret = obj
        .require(cx, "clientSecretId")
        .and_then(|f| f.non_empty_str(cx).map(|id| (id, f.path.clone())));
    let version = match obj.take("clientSecretVersionNumber") {
        Some(f) => f.integer_in(cx, 1, i64::MAX).map(|v| Some(v as u64)),
        None => {
            cx.warn(
                &obj.member_path(cx, "clientSecretVersionNumber"),
                "OCI requires it; claimgate uses the highest version in the secrets file",
            );
            Some(None)
        }
    };
    obj.finish(
        cx,
        &[
            "type",
            "clientId",
            "clientSecretId",
            "clientSecretVersionNumber",
        ],
    );
    let id = id?;
    let (secret_id, path) = secret?;
    let secret = SecretRef {
        secret_id: secret_id.to_owned(),
        version: version?,
        path,
    };
    notes.secret_refs.push(secret.clone());
    Some(Some((id.to_owned(), secret)))
}

/// `sourceUriDetails`: a `DISCOVERY_URI`, or `VALIDATION_BLOCK` (inside OAUTH2).
fn read_source_uri(cx: &mut Cx, field: &Field<'_>, in_oauth2: bool) -> Option<Option<String>> {
    let mut obj = field.object(cx)?;
    let kind = read_kind(
        cx,
        &mut obj,
        &["DISCOVERY_URI", "VALIDATION_BLOCK"],
        "a source URI type",
    )?;
    if kind == "VALIDATION_BLOCK" {
        obj.finish(cx, &["type"]);
        if !in_oauth2 {
            cx.error(
                &join(&field.path, "type"),
                "VALIDATION_BLOCK reuses the validationPolicy's details: it only applies inside \
                 an OAUTH2 validationFailurePolicy",
            );
            return None;
        }
        return Some(None);
    }
    let uri = obj.require(cx, "uri").and_then(|f| {
        let uri = f.non_empty_str(cx)?;
        check_remote_uri(cx, &f.path, uri, "the discovery document")
    });
    obj.finish(cx, &["type", "uri"]);
    uri.map(Some)
}

/// Tables a `dynamicAuthentication` selector may read.
const DYNAMIC_AUTHENTICATION_TABLES: &[ContextTable] = &[
    ContextTable::Auth,
    ContextTable::Headers,
    ContextTable::Host,
    ContextTable::Path,
    ContextTable::Query,
    ContextTable::Subdomain,
];

/// `dynamicAuthentication`: the selector and the servers (`Some(None)` is never returned any
/// more: every server type is evaluated; the shape is kept for the caller).
pub(crate) fn read_dynamic_authentication(
    cx: &mut Cx,
    field: &Field<'_>,
    notes: &mut Notes,
) -> Option<DynamicAuthentication> {
    let mut obj = field.object(cx)?;
    let selector = obj
        .require(cx, "selectionSource")
        .and_then(|f| read_selection_source(cx, &f, DYNAMIC_AUTHENTICATION_TABLES));
    let servers = obj.require(cx, "authenticationServers");
    obj.finish(cx, &["selectionSource", "authenticationServers"]);
    let servers = servers?;
    let items = servers.array_max(cx, 100)?;
    if items.is_empty() {
        cx.error(
            &servers.path,
            "at least one authentication server is required",
        );
        return None;
    }
    let mut rules = KeyRules::default();
    let mut read = Vec::new();
    let mut keys = Vec::new();
    let mut ok = true;
    for item in &items {
        let Some(mut server) = item.object(cx) else {
            ok = false;
            continue;
        };
        let key = server
            .require(cx, "key")
            .and_then(|f| read_selection_key(cx, &f, &mut rules));
        let detail = server
            .require(cx, "authenticationServerDetail")
            .and_then(|f| read_authentication(cx, &f, notes).map(|p| (f.path.clone(), p)));
        server.finish(cx, &["key", "authenticationServerDetail"]);
        ok &= key.is_some() && detail.is_some();
        keys.extend(key);
        read.extend(detail);
    }
    if selector
        .as_ref()
        .is_some_and(|s| s.table == ContextTable::Auth)
    {
        let mut first: Option<(&str, &TokenLocation)> = None;
        for (path, policy) in &read {
            if policy.kind == "CUSTOM_AUTHENTICATION" {
                cx.error(
                    path,
                    // The selector reads the token's claims before a server is chosen; an
                    // authorizer function's context exists only after it is called.
                    "with a request.auth selector every server must validate JWTs \
                     (JWT_AUTHENTICATION or TOKEN_AUTHENTICATION)",
                );
                ok = false;
                continue;
            }
            let Some(location) = &policy.location else {
                continue;
            };
            match first {
                None => first = Some((path, location)),
                Some((first_path, first_location)) if first_location != location => {
                    cx.error(
                        path,
                        format!(
                            "with a request.auth selector every server must read the token from \
                             the same place ({first_path} reads it from the {first_location})"
                        ),
                    );
                    ok = false;
                }
                Some(_) => {}
            }
        }
    }
    let selector = selector?;
    if !ok {
        return None;
    }
    let mut servers = Vec::with_capacity(read.len());
    for (key, (path, policy)) in keys.into_iter().zip(read) {
        match policy.authentication {
            Authentication::Jwt(jwt) => {
                // The gateway applies MODIFY_RESPONSE of the deployment's own policy only.
                if jwt.failure_response.is_some() || jwt.oauth2.is_some() {
                    notes.unenforced(&cx.member(&jwt.path, "validationFailurePolicy"), true);
                }
                servers.push(AuthServer {
                    name: key.name,
                    key: key.key,
                    is_default: key.is_default,
                    policy: ServerPolicy::Jwt(*jwt),
                })
            }
            Authentication::Custom(custom) => {
                if custom.failure_response.is_some() {
                    notes.unenforced(&cx.member(&custom.path, "validationFailurePolicy"), true);
                }
                servers.push(AuthServer {
                    name: key.name,
                    key: key.key,
                    is_default: key.is_default,
                    policy: ServerPolicy::Custom(*custom),
                })
            }
            // read_authentication yields JWT or custom policies only; fail closed if that changes.
            _ => {
                cx.error(&path, "not an authentication server policy");
                return None;
            }
        }
    }
    Some(DynamicAuthentication { selector, servers })
}
