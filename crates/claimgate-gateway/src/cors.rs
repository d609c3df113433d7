//! `cors`, deployment-wide and per route (a route's policy replaces the deployment's), as OCI
//! documents it and browsers check it (the Fetch standard's CORS protocol).
//!
//! - A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered by the
//!   gateway, without authentication, when a policy applies: 204 with the `Access-Control-*`
//!   headers when the origin, method and headers are allowed, else 403. The policy is the one of
//!   the route the preflighted request would reach (matched with the requested method), else
//!   the deployment's; a path that no route serves gets the deployment's policy, so the browser
//!   goes on to send the real request and sees its 404. Without any applicable policy a preflight
//!   is an ordinary `OPTIONS` request.
//! - Every other response of a request with an allowed `Origin` carries
//!   `Access-Control-Allow-Origin`, `-Allow-Credentials` and `-Expose-Headers`; the gateway owns
//!   these headers, so a backend's own are replaced.
//!
//! `*` in `allowedOrigins` answers `Access-Control-Allow-Origin: *`, except with credentials,
//! where the request's origin is echoed (browsers refuse `*` with credentials), and `null` is
//! then allowed only when listed. `*` in `allowedMethods` or `allowedHeaders` echoes what the
//! preflight asked for. Header values are prepared when the configuration is built.

use claimgate_config::{Cors, Deployment};
use claimgate_core::route::{self, RouteMatch};
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Method};

/// The CORS policies of one deployment, by route.
#[derive(Debug)]
pub(crate) struct CorsPolicies {
    deployment: Option<Policy>,
    /// By route index; `None` where the route has no policy of its own.
    routes: Vec<Option<Policy>>,
    any_route_policy: bool,
}

impl CorsPolicies {
    /// The deployment's policies, or `None` when neither it nor any route has one.
    pub(crate) fn new(deployment: &Deployment) -> Option<Self> {
        let routes: Vec<Option<Policy>> = deployment
            .routes
            .iter()
            .map(|r| r.cors.as_ref().map(Policy::new))
            .collect();
        let any_route_policy = routes.iter().any(Option::is_some);
        if deployment.cors.is_none() && !any_route_policy {
            return None;
        }
        Some(Self {
            deployment: deployment.cors.as_ref().map(Policy::new),
            routes,
            any_route_policy,
        })
    }

    /// The policy for a request that reached route `index` (or no route).
    pub(crate) fn for_route(&self, index: Option<usize>) -> Option<&Policy> {
        index
            .and_then(|i| self.routes.get(i))
            .and_then(Option::as_ref)
            .or(self.deployment.as_ref())
    }

    /// The policy for a request whose route is not known yet: routes it only when some route
    /// has a policy of its own.
    pub(crate) fn for_request(
        &self,
        deployment: &Deployment,
        method: &str,
        path: &str,
    ) -> Option<&Policy> {
        if !self.any_route_policy {
            return self.deployment.as_ref();
        }
        match route::find(deployment, method, path) {
            RouteMatch::Found { index, .. } => self.for_route(Some(index)),
            _ => self.deployment.as_ref(),
        }
    }

    /// The policy that answers a preflight: the route the preflighted method reaches.
    pub(crate) fn for_preflight(
        &self,
        deployment: &Deployment,
        parts: &http::request::Parts,
    ) -> Option<&Policy> {
        let method = parts
            .headers
            .get(ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        self.for_request(deployment, method, parts.uri.path())
    }
}

/// Whether a request is a CORS preflight.
pub(crate) fn is_preflight(parts: &http::request::Parts) -> bool {
    parts.method == Method::OPTIONS
        && parts.headers.contains_key(ORIGIN)
        && parts.headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}

/// Why a preflight was refused, for the execution log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) message: String,
}

/// One `cors` policy, ready to answer.
#[derive(Debug)]
pub(crate) struct Policy {
    any_origin: bool,
    null_origin: bool,
    /// Lower-cased, without `*` and `null`.
    origins: Vec<String>,
    any_method: bool,
    methods: Vec<String>,
    any_header: bool,
    /// Lower-cased, without `*`.
    headers: Vec<String>,
    credentials: bool,
    /// The allowed methods as a header value (without `*`).
    allow_methods: Option<HeaderValue>,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
}

const TRUE: HeaderValue = HeaderValue::from_static("true");
const ANY: HeaderValue = HeaderValue::from_static("*");
const VARY_ORIGIN: HeaderValue = HeaderValue::from_static("Origin");
const VARY_PREFLIGHT: HeaderValue = HeaderValue::from_static(
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
);

/// Methods a browser sends cross-origin without asking (the Fetch standard's CORS-safelisted
/// methods).
const SAFELISTED_METHODS: [&str; 3] = ["GET", "HEAD", "POST"];

fn joined(items: &[String]) -> Option<HeaderValue> {
    let list: Vec<&str> = items
        .iter()
        .map(String::as_str)
        .filter(|i| *i != "*")
        .collect();
    if list.is_empty() {
        return None;
    }
    HeaderValue::from_str(&list.join(", ")).ok()
}

impl Policy {
    pub(crate) fn new(cors: &Cors) -> Self {
        let has = |list: &[String], item: &str| list.iter().any(|i| i == item);
        Self {
            any_origin: has(&cors.allowed_origins, "*"),
            null_origin: has(&cors.allowed_origins, "null"),
            origins: cors
                .allowed_origins
                .iter()
                .filter(|o| *o != "*" && *o != "null")
                .map(|o| o.to_ascii_lowercase())
                .collect(),
            any_method: has(&cors.allowed_methods, "*"),
            methods: cors.allowed_methods.clone(),
            any_header: has(&cors.allowed_headers, "*"),
            headers: cors
                .allowed_headers
                .iter()
                .filter(|h| *h != "*")
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            credentials: cors.allow_credentials,
            allow_methods: joined(&cors.allowed_methods),
            allow_headers: joined(&cors.allowed_headers),
            expose_headers: joined(&cors.exposed_headers),
            max_age: (cors.max_age_seconds > 0).then(|| HeaderValue::from(cors.max_age_seconds)),
        }
    }

    /// Whether `Access-Control-Allow-Origin` is the constant `*` (no `Vary: Origin` needed).
    fn static_origin(&self) -> bool {
        self.any_origin && !self.credentials
    }

    fn allows_origin(&self, origin: &[u8]) -> bool {
        if origin == b"null" {
            return self.null_origin || self.static_origin();
        }
        self.any_origin
            || self
                .origins
                .iter()
                .any(|o| o.as_bytes().eq_ignore_ascii_case(origin))
    }

    /// `Access-Control-Allow-Origin` (and credentials) for an allowed `origin`.
    fn allow_origin(&self, origin: &HeaderValue, headers: &mut HeaderMap) {
        if self.static_origin() {
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, ANY);
        } else {
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        }
        if self.credentials {
            headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE);
        }
    }

    /// The headers of a preflight's answer, or why it is refused.
    pub(crate) fn preflight(&self, request: &HeaderMap) -> Result<HeaderMap, Refusal> {
        let mut headers = HeaderMap::with_capacity(8);
        let Some(origin) = request.get(ORIGIN) else {
            return Err(refusal("the preflight has no Origin"));
        };
        if !self.allows_origin(origin.as_bytes()) {
            return Err(refusal(format!(
                "origin '{}' is not in allowedOrigins",
                printable(origin)
            )));
        }
        let method = request
            .get(ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|v| v.to_str().ok())
            .filter(|m| is_token(m))
            .ok_or_else(|| refusal("Access-Control-Request-Method is not a method"))?;
        let method_allowed = self.any_method
            || self.methods.iter().any(|m| m == method)
            || SAFELISTED_METHODS.contains(&method);
        if !method_allowed {
            return Err(refusal(format!(
                "method '{method}' is not in allowedMethods"
            )));
        }
        let requested_headers = request.get_all(ACCESS_CONTROL_REQUEST_HEADERS);
        if !self.any_header {
            for value in &requested_headers {
                let Ok(text) = value.to_str() else {
                    return Err(refusal("Access-Control-Request-Headers is not readable"));
                };
                for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    if !self.headers.iter().any(|h| h.eq_ignore_ascii_case(name)) {
                        return Err(refusal(format!("header '{name}' is not in allowedHeaders")));
                    }
                }
            }
        }
        self.allow_origin(origin, &mut headers);
        if self.any_method {
            if let Some(requested) = request.get(ACCESS_CONTROL_REQUEST_METHOD) {
                headers.insert(ACCESS_CONTROL_ALLOW_METHODS, requested.clone());
            }
        } else if let Some(methods) = &self.allow_methods {
            headers.insert(ACCESS_CONTROL_ALLOW_METHODS, methods.clone());
        }
        if self.any_header {
            for requested in requested_headers {
                headers.append(ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
            }
        } else if let Some(allowed) = &self.allow_headers {
            headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, allowed.clone());
        }
        if let Some(max_age) = &self.max_age {
            headers.insert(ACCESS_CONTROL_MAX_AGE, max_age.clone());
        }
        headers.insert(VARY, VARY_PREFLIGHT);
        Ok(headers)
    }

    /// Puts the CORS headers on the response to an actual (not preflight) request. Any
    /// `Access-Control-*` header the backend sent is replaced: the policy decides.
    pub(crate) fn decorate(&self, request: &HeaderMap, response: &mut HeaderMap) {
        for name in [
            ACCESS_CONTROL_ALLOW_ORIGIN,
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            ACCESS_CONTROL_EXPOSE_HEADERS,
            ACCESS_CONTROL_ALLOW_METHODS,
            ACCESS_CONTROL_ALLOW_HEADERS,
            ACCESS_CONTROL_MAX_AGE,
        ] {
            response.remove(name);
        }
        if !self.static_origin() {
            response.append(VARY, VARY_ORIGIN);
        }
        let Some(origin) = request.get(ORIGIN) else {
            return;
        };
        if !self.allows_origin(origin.as_bytes()) {
            return;
        }
        self.allow_origin(origin, response);
        if let Some(expose) = &self.expose_headers {
            response.insert(ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
    }
}

fn refusal(message: impl Into<String>) -> Refusal {
    Refusal {
        message: message.into(),
    }
}

/// A header value for a log message, never longer than 256 characters.
fn printable(value: &HeaderValue) -> String {
    String::from_utf8_lossy(value.as_bytes())
        .chars()
        .take(256)
        .collect()
}

/// An RFC 9110 token (a method name).
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str], methods: &[&str], headers: &[&str], credentials: bool) -> Policy {
        let strings = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect();
        Policy::new(&Cors {
            allowed_origins: strings(origins),
            allowed_methods: strings(methods),
            allowed_headers: strings(headers),
            exposed_headers: vec!["X-Request-Id".into(), "X-Total".into()],
            allow_credentials: credentials,
            max_age_seconds: 600,
        })
    }

    fn request(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn get<'m>(map: &'m HeaderMap, name: &str) -> Option<&'m str> {
        map.get(name).map(|v| v.to_str().unwrap())
    }

    #[test]
    fn an_allowed_preflight_gets_every_header() {
        let p = policy(
            &["https://app.example.com"],
            &["GET", "PUT"],
            &["Authorization", "X-Tenant"],
            true,
        );
        let answer = p
            .preflight(&request(&[
                ("origin", "https://APP.example.com"),
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", "authorization, x-tenant"),
            ]))
            .unwrap();
        assert_eq!(
            get(&answer, "access-control-allow-origin"),
            Some("https://APP.example.com")
        );
        assert_eq!(
            get(&answer, "access-control-allow-credentials"),
            Some("true")
        );
        assert_eq!(
            get(&answer, "access-control-allow-methods"),
            Some("GET, PUT")
        );
        assert_eq!(
            get(&answer, "access-control-allow-headers"),
            Some("Authorization, X-Tenant")
        );
        assert_eq!(get(&answer, "access-control-max-age"), Some("600"));
        assert!(get(&answer, "vary").unwrap().starts_with("Origin"));
    }

    #[test]
    fn preflights_outside_the_policy_are_refused_with_the_reason() {
        let p = policy(&["https://app.example.com"], &["PUT"], &["X-Tenant"], false);
        let refused = |pairs: &[(&str, &str)]| p.preflight(&request(pairs)).unwrap_err().message;
        assert_eq!(
            refused(&[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "PUT")
            ]),
            "origin 'https://evil.example' is not in allowedOrigins"
        );
        assert_eq!(
            refused(&[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "DELETE")
            ]),
            "method 'DELETE' is not in allowedMethods"
        );
        assert_eq!(
            refused(&[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", "x-tenant, x-debug")
            ]),
            "header 'x-debug' is not in allowedHeaders"
        );
        assert_eq!(
            refused(&[("origin", "null"), ("access-control-request-method", "PUT")]),
            "origin 'null' is not in allowedOrigins"
        );
        // Safelisted methods need not be listed.
        assert!(p
            .preflight(&request(&[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "POST")
            ]))
            .is_ok());
    }

    #[test]
    fn wildcards_answer_star_or_echo_what_was_asked() {
        let open = policy(&["*"], &["*"], &["*"], false);
        let answer = open
            .preflight(&request(&[
                ("origin", "null"),
                ("access-control-request-method", "PATCH"),
                ("access-control-request-headers", "authorization,x-anything"),
            ]))
            .unwrap();
        assert_eq!(get(&answer, "access-control-allow-origin"), Some("*"));
        assert_eq!(get(&answer, "access-control-allow-methods"), Some("PATCH"));
        assert_eq!(
            get(&answer, "access-control-allow-headers"),
            Some("authorization,x-anything")
        );
        assert_eq!(get(&answer, "access-control-allow-credentials"), None);

        // With credentials, `*` cannot be answered: the origin is echoed, and `null` must be
        // listed to be allowed.
        let credentialed = policy(&["*"], &["GET"], &[], true);
        let answer = credentialed
            .preflight(&request(&[
                ("origin", "https://any.example"),
                ("access-control-request-method", "GET"),
            ]))
            .unwrap();
        assert_eq!(
            get(&answer, "access-control-allow-origin"),
            Some("https://any.example")
        );
        assert!(credentialed
            .preflight(&request(&[
                ("origin", "null"),
                ("access-control-request-method", "GET")
            ]))
            .is_err());
        let null_listed = policy(&["null"], &["GET"], &[], true);
        assert!(null_listed
            .preflight(&request(&[
                ("origin", "null"),
                ("access-control-request-method", "GET")
            ]))
            .is_ok());
    }

    #[test]
    fn actual_responses_get_the_policy_and_lose_the_backends_own() {
        let p = policy(&["https://app.example.com"], &["GET"], &[], true);
        let mut response = request(&[
            ("access-control-allow-origin", "*"),
            ("access-control-allow-methods", "DELETE"),
            ("vary", "Accept-Encoding"),
        ]);
        p.decorate(
            &request(&[("origin", "https://app.example.com")]),
            &mut response,
        );
        assert_eq!(
            get(&response, "access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(
            get(&response, "access-control-allow-credentials"),
            Some("true")
        );
        assert_eq!(
            get(&response, "access-control-expose-headers"),
            Some("X-Request-Id, X-Total")
        );
        assert_eq!(get(&response, "access-control-allow-methods"), None);
        let vary: Vec<&str> = response
            .get_all("vary")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(vary, ["Accept-Encoding", "Origin"]);

        let mut refused = request(&[("access-control-allow-origin", "*")]);
        p.decorate(
            &request(&[("origin", "https://evil.example")]),
            &mut refused,
        );
        assert_eq!(get(&refused, "access-control-allow-origin"), None);
        assert_eq!(get(&refused, "access-control-expose-headers"), None);
    }

    #[test]
    fn max_age_is_sent_only_when_positive() {
        let mut cors = Cors {
            allowed_origins: vec!["*".into()],
            ..Cors::default()
        };
        let ask = request(&[
            ("origin", "https://a.example"),
            ("access-control-request-method", "GET"),
        ]);
        let answer = Policy::new(&cors).preflight(&ask).unwrap();
        assert_eq!(get(&answer, "access-control-max-age"), None);
        cors.max_age_seconds = 5;
        let answer = Policy::new(&cors).preflight(&ask).unwrap();
        assert_eq!(get(&answer, "access-control-max-age"), Some("5"));
    }
}
