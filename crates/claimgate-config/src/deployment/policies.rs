//! Request and response policies other than authentication: rate limiting, CORS, mutual TLS,
//! usage plans (deployment-wide), and per route the transformations, validations and the
//! response cache.

use super::auth::{read_authentication, read_dynamic_authentication};
use super::notes::{AuthRead, Notes};
use super::transform::{is_token, Target};
use crate::context::{parse_template, read_expression, Scope};
use crate::model::*;
use crate::reader::{optional, read_enum, read_kind, Cx, Field, Obj};
use crate::usage::UsagePlansPolicy;

const REQUEST_POLICY_MEMBERS: &[&str] = &[
    "authentication",
    "rateLimiting",
    "cors",
    "mutualTls",
    "usagePlans",
    "dynamicAuthentication",
];

/// The deployment-wide policies enforced by the gateway besides authentication.
#[derive(Debug, Default)]
pub(crate) struct DeploymentPolicies {
    pub(crate) rate_limiting: Option<RateLimiting>,
    pub(crate) usage_plans: Option<UsagePlansPolicy>,
    pub(crate) cors: Option<Cors>,
    pub(crate) mutual_tls: Option<MutualTls>,
}

/// The deployment-wide `requestPolicies`; the policies other than authentication go to
/// `policies`.
pub(crate) fn read_request_policies(
    cx: &mut Cx,
    field: &Field<'_>,
    notes: &mut Notes,
    policies: &mut DeploymentPolicies,
) -> Option<AuthRead> {
    let mut obj = field.object(cx)?;
    let authentication = obj
        .take("authentication")
        .map(|f| read_authentication(cx, &f, notes));
    let dynamic = obj
        .take("dynamicAuthentication")
        .map(|f| (read_dynamic_authentication(cx, &f, notes), f.path));
    // Rate limiting, CORS, mutual TLS and usage plans are enforced by the gateway: never reported as
    // unenforced.
    if let Some(f) = obj.take("rateLimiting") {
        policies.rate_limiting = read_rate_limiting(cx, &f);
    }
    if let Some(f) = obj.take("cors") {
        policies.cors = read_cors(cx, &f).flatten();
    }
    if let Some(f) = obj.take("mutualTls") {
        policies.mutual_tls = read_mutual_tls(cx, &f).flatten();
    }
    if let Some(f) = obj.take("usagePlans") {
        if let Some(policy) = read_usage_plans(cx, &f) {
            policies.usage_plans = Some(policy).filter(|p| !p.token_locations.is_empty());
        }
    }
    obj.finish(cx, REQUEST_POLICY_MEMBERS);
    match (authentication, dynamic) {
        (Some(_), Some((_, at))) => {
            cx.error(
                &at,
                "authentication and dynamicAuthentication cannot both be set (put the policy in \
                 dynamicAuthentication.authenticationServers)",
            );
            None
        }
        (None, Some((read, _))) => read.map(|dynamic| AuthRead {
            authentication: Authentication::Dynamic(Box::new(dynamic)),
            anonymous_allowed: None,
        }),
        (Some(read), None) => read.map(|p| AuthRead {
            authentication: p.authentication,
            anonymous_allowed: p.anonymous_allowed,
        }),
        (None, None) => Some(AuthRead {
            authentication: Authentication::None,
            anonymous_allowed: None,
        }),
    }
}

/// `rateLimiting`; always in effect when valid.
fn read_rate_limiting(cx: &mut Cx, field: &Field<'_>) -> Option<RateLimiting> {
    let mut obj = field.object(cx)?;
    let rate = obj
        .require(cx, "rateInRequestsPerSecond")
        .and_then(|f| f.integer_in(cx, 1, i64::MAX));
    let key = obj
        .require(cx, "rateKey")
        .and_then(|f| read_enum(cx, &f, &["CLIENT_IP", "TOTAL"], "a rate key"));
    obj.finish(cx, &["rateInRequestsPerSecond", "rateKey"]);
    Some(RateLimiting {
        requests_per_second: u64::try_from(rate?).ok()?,
        key: match key? {
            "TOTAL" => RateKey::Total,
            _ => RateKey::ClientIp,
        },
    })
}

const CORS_MEMBERS: &[&str] = &[
    "allowedOrigins",
    "allowedMethods",
    "allowedHeaders",
    "exposedHeaders",
    "isAllowCredentialsEnabled",
    "maxAgeInSeconds",
];

/// `cors` (deployment-wide or per route): `None` when invalid, `Some(None)` when it allows no
/// origin (inert, as read-backs print it).
pub(crate) fn read_cors(cx: &mut Cx, field: &Field<'_>) -> Option<Option<Cors>> {
    let mut obj = field.object(cx)?;
    let origins = obj.require(cx, "allowedOrigins").and_then(|f| {
        let origins = f.strings(cx, usize::MAX)?;
        let mut ok = true;
        for (i, origin) in origins.iter().enumerate() {
            let at = format!("{}[{i}]", f.path);
            if origin.is_empty() {
                cx.error(&at, "must not be empty");
                ok = false;
            } else if origin != "*" && origin != "null" {
                match origin.split_once("://") {
                    Some((_, rest)) if rest.contains('/') => cx.warn(
                        &at,
                        format!(
                            "'{origin}' has a path: browsers send origins without one, so it \
                             never matches"
                        ),
                    ),
                    Some((_, rest)) if !rest.is_empty() => {}
                    _ => {
                        cx.error(
                            &at,
                            format!(
                                "'{origin}' is not an origin (scheme://host[:port], '*' or 'null')"
                            ),
                        );
                        ok = false;
                    }
                }
            }
        }
        ok.then_some(origins)
    });
    let mut ok = true;
    let mut lists: [Vec<String>; 3] = Default::default();
    for ((member, what), list) in [
        ("allowedMethods", "method"),
        ("allowedHeaders", "header name"),
        ("exposedHeaders", "header name"),
    ]
    .into_iter()
    .zip(&mut lists)
    {
        let Some(f) = obj.take(member) else { continue };
        let Some(items) = f.strings(cx, 50) else {
            ok = false;
            continue;
        };
        for (i, item) in items.iter().enumerate() {
            if item != "*" && !is_token(item) {
                cx.error(
                    &format!("{}[{i}]", f.path),
                    format!("'{item}' is not a valid {what}"),
                );
                ok = false;
            }
        }
        *list = items;
    }
    let mut allow_credentials = false;
    if let Some(f) = obj.take("isAllowCredentialsEnabled") {
        match f.bool(cx) {
            Some(value) => allow_credentials = value,
            None => ok = false,
        }
        let any_origin = origins
            .as_ref()
            .is_some_and(|o| o.iter().any(|origin| origin == "*"));
        if allow_credentials && any_origin {
            cx.warn(
                &f.path,
                "with allowedOrigins '*' every origin is echoed with \
                 Access-Control-Allow-Credentials: true, so any web page can read answers made \
                 with the visitor's cookies or client certificate; list the origins instead \
                 (serve refuses it on a deployment with mutualTls)",
            );
        }
    }
    let mut max_age_seconds = 0;
    if let Some(f) = obj.take("maxAgeInSeconds") {
        match f.integer_in(cx, 0, i64::MAX) {
            Some(value) => max_age_seconds = value.unsigned_abs(),
            None => ok = false,
        }
    }
    obj.finish(cx, CORS_MEMBERS);
    let origins = origins?;
    ok.then_some(())?;
    if origins.is_empty() {
        return Some(None);
    }
    let [allowed_methods, allowed_headers, exposed_headers] = lists;
    Some(Some(Cors {
        allowed_origins: origins,
        allowed_methods,
        allowed_headers,
        exposed_headers,
        allow_credentials,
        max_age_seconds,
    }))
}

/// `mutualTls`: `None` when invalid, `Some(None)` when it neither requires a certificate nor
/// names SANs (inert, as read-backs print it).
fn read_mutual_tls(cx: &mut Cx, field: &Field<'_>) -> Option<Option<MutualTls>> {
    let mut obj = field.object(cx)?;
    let required = obj
        .take("isVerifiedCertificateRequired")
        .map(|f| f.bool(cx))
        .unwrap_or(Some(false));
    let sans = obj
        .take("allowedSans")
        .map(|f| {
            let sans = f.strings(cx, 10)?;
            for (i, san) in sans.iter().enumerate() {
                if san.is_empty() {
                    cx.error(&format!("{}[{i}]", f.path), "must not be empty");
                }
            }
            Some(sans)
        })
        .unwrap_or(Some(Vec::new()));
    obj.finish(cx, &["isVerifiedCertificateRequired", "allowedSans"]);
    let (required, sans) = (required?, sans?);
    Some((required || !sans.is_empty()).then_some(MutualTls {
        verified_certificate_required: required,
        allowed_sans: sans,
    }))
}

/// `usagePlans`; in effect when it names a token location.
fn read_usage_plans(cx: &mut Cx, field: &Field<'_>) -> Option<UsagePlansPolicy> {
    let mut obj = field.object(cx)?;
    let locations = obj.require(cx, "tokenLocations").and_then(|f| {
        let items = f.array(cx)?;
        let mut locations = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in &items {
            match read_expression(cx, item, &Scope::deployment()) {
                Some(variable) => locations.push(variable),
                None => ok = false,
            }
        }
        ok.then_some(locations)
    });
    obj.finish(cx, &["tokenLocations"]);
    locations.map(|token_locations| UsagePlansPolicy { token_locations })
}

const VALIDATION_MODES: &[&str] = &["ENFORCING", "PERMISSIVE", "DISABLED"];

/// `headerValidations` (`items_member` `headers`) or `queryParameterValidations`
/// (`parameters`); `Some(None)` when disabled or empty.
pub(crate) fn read_item_validations(
    cx: &mut Cx,
    field: &Field<'_>,
    items_member: &str,
    target: Target,
) -> Option<Option<ItemValidation>> {
    let mut obj = field.object(cx)?;
    let mut ok = true;
    let mut items = Vec::new();
    if let Some(f) = obj.take(items_member) {
        match f.array(cx) {
            Some(fields) => {
                let mut seen: Vec<String> = Vec::new();
                for item in fields {
                    let Some(mut item) = item.object(cx) else {
                        ok = false;
                        continue;
                    };
                    let name = item.require(cx, "name").and_then(|n| {
                        let name = n.non_empty_str(cx)?;
                        if target.headers() && !is_token(name) {
                            cx.error(&n.path, format!("'{name}' is not a valid header name"));
                            return None;
                        }
                        // OCI compares both header and query parameter names here without
                        // regard to case.
                        let folded = name.to_ascii_lowercase();
                        if seen.contains(&folded) {
                            cx.error(&n.path, format!("'{name}' is listed twice"));
                            return None;
                        }
                        seen.push(folded);
                        Some(name.to_owned())
                    });
                    let required = optional(item.take("required").map(|r| r.bool(cx)));
                    item.finish(cx, &["name", "required"]);
                    match (name, required) {
                        (Some(name), Some(required)) => items.push(ValidationItem {
                            name,
                            required: required.unwrap_or(false),
                        }),
                        _ => ok = false,
                    }
                }
            }
            None => ok = false,
        }
    }
    let mode = read_validation_mode(cx, &mut obj);
    obj.finish(cx, &[items_member, "validationMode"]);
    let mode = mode?;
    ok.then_some(())?;
    Some(
        mode.filter(|_| !items.is_empty())
            .map(|mode| ItemValidation {
                mode,
                items,
                path: field.path.clone(),
            }),
    )
}

/// `validationMode` (default `ENFORCING`): `Some(None)` for `DISABLED`.
fn read_validation_mode(cx: &mut Cx, obj: &mut Obj<'_>) -> Option<Option<ValidationMode>> {
    let mode = optional(
        obj.take("validationMode")
            .map(|f| read_enum(cx, &f, VALIDATION_MODES, "a validation mode")),
    )?;
    Some(match mode {
        Some("DISABLED") => None,
        Some("PERMISSIVE") => Some(ValidationMode::Permissive),
        _ => Some(ValidationMode::Enforcing),
    })
}

/// `bodyValidation`; `Some(None)` when disabled.
pub(crate) fn read_body_validation(
    cx: &mut Cx,
    field: &Field<'_>,
) -> Option<Option<BodyValidation>> {
    let mut obj = field.object(cx)?;
    let required = optional(obj.take("required").map(|f| f.bool(cx)));
    let content = obj.require(cx, "content").and_then(|f| {
        let entries = f.entries(cx)?;
        let mut ok = true;
        let mut ranges = Vec::new();
        for (media, value) in entries {
            match media_range(media) {
                Some(range) if ranges.contains(&range) => {
                    cx.error(&value.path, format!("'{media}' is listed twice"));
                    ok = false;
                }
                Some(range) => ranges.push(range),
                None => {
                    cx.error(
                        &value.path,
                        format!(
                            "'{media}' is not a media type range (type/subtype, type/* or */*)"
                        ),
                    );
                    ok = false;
                }
            }
            if value.value.is_null() {
                cx.error(&value.path, "expected an object, found null");
                ok = false;
                continue;
            }
            let Some(mut validation) = value.object(cx) else {
                ok = false;
                continue;
            };
            let kind = validation
                .require(cx, "validationType")
                .and_then(|t| read_enum(cx, &t, &["NONE"], "a content validation type"));
            validation.finish(cx, &["validationType"]);
            ok &= kind.is_some();
        }
        ok.then_some(ranges)
    });
    let mode = read_validation_mode(cx, &mut obj);
    obj.finish(cx, &["required", "content", "validationMode"]);
    let required = required?;
    let content = content?;
    Some(mode?.map(|mode| BodyValidation {
        mode,
        required: required.unwrap_or(false),
        content,
        path: field.path.clone(),
    }))
}

/// A `content` key: `type/subtype`, `type/*` or `*/*`, both parts HTTP tokens; lower-cased.
fn media_range(text: &str) -> Option<MediaRange> {
    match text.split_once('/')? {
        ("*", "*") => Some(MediaRange::Any),
        (kind, "*") if is_token(kind) && kind != "*" => {
            Some(MediaRange::Type(kind.to_ascii_lowercase()))
        }
        (kind, subtype) if is_token(kind) && is_token(subtype) && kind != "*" && subtype != "*" => {
            Some(MediaRange::Exact {
                kind: kind.to_ascii_lowercase(),
                subtype: subtype.to_ascii_lowercase(),
            })
        }
        _ => None,
    }
}

/// `responseCacheLookup`; `Some(None)` when `isEnabled` is false.
pub(crate) fn read_cache_lookup(
    cx: &mut Cx,
    field: &Field<'_>,
    scope: &Scope<'_>,
) -> Option<Option<ResponseCacheLookup>> {
    let mut obj = field.object(cx)?;
    let kind = read_kind(
        cx,
        &mut obj,
        &["SIMPLE_LOOKUP_POLICY"],
        "a cache lookup policy type",
    );
    let enabled = optional(obj.take("isEnabled").map(|f| f.bool(cx)));
    let private = optional(obj.take("isPrivateCachingEnabled").map(|f| f.bool(cx)));
    let additions = optional(obj.take("cacheKeyAdditions").map(|f| {
        let items = f.array(cx)?;
        if items.len() > 10 {
            cx.warn(
                &f.path,
                format!(
                    "{} entries: OCI's limits allow 10 cache-key values",
                    items.len()
                ),
            );
        }
        let mut ok = true;
        let mut additions = Vec::new();
        for item in &items {
            let Some(text) = item.str(cx) else {
                ok = false;
                continue;
            };
            // OCI's cache page writes the variable bare (`request.headers[Accept]`), the SDK's
            // docstring as `${request.headers[Accept]}`: both are accepted.
            if !text.contains("${") {
                match read_expression(cx, item, scope) {
                    Some(_) => match Template::parse(&format!("${{{text}}}")) {
                        Ok(template) => additions.push(template),
                        Err(reason) => {
                            cx.error(&item.path, reason);
                            ok = false;
                        }
                    },
                    None => ok = false,
                }
                continue;
            }
            match parse_template(cx, &item.path, text, scope) {
                Some(t) if t.variables().next().is_none() => {
                    cx.error(
                        &item.path,
                        format!("'{text}' has no ${{...}} context variable"),
                    );
                    ok = false;
                }
                Some(template) => additions.push(template),
                None => ok = false,
            }
        }
        ok.then_some(additions)
    }));
    obj.finish(
        cx,
        &[
            "type",
            "isEnabled",
            "isPrivateCachingEnabled",
            "cacheKeyAdditions",
        ],
    );
    kind?;
    let private = private?;
    let additions = additions?;
    Some((enabled? != Some(false)).then(|| ResponseCacheLookup {
        private_caching: private.unwrap_or(false),
        key_additions: additions.unwrap_or_default(),
    }))
}

/// `responsePolicies.responseCacheStore`.
pub(crate) fn read_cache_store(cx: &mut Cx, field: &Field<'_>) -> Option<ResponseCacheStore> {
    let mut obj = field.object(cx)?;
    let kind = read_kind(
        cx,
        &mut obj,
        &["FIXED_TTL_STORE_POLICY"],
        "a cache store policy type",
    );
    let ttl = obj
        .require(cx, "timeToLiveInSeconds")
        .and_then(|f| f.integer_in(cx, 1, i64::from(u32::MAX)));
    obj.finish(cx, &["type", "timeToLiveInSeconds"]);
    kind?;
    Some(ResponseCacheStore {
        time_to_live_seconds: u32::try_from(ttl?).ok()?,
    })
}
