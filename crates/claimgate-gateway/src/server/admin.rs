//! The admin listener's troubleshooting page and its API (SPEC "Troubleshooting in the
//! browser"): `GET /` (the page, its CSS and JavaScript built into the binary),
//! `GET /api/deployments`, `POST /api/check`, `GET /api/requests` (recent refusals) and
//! `GET /api/requests/<opc-request-id>`.
//!
//! The verdict document of `/api/check` is `claimgate check`'s, made by the command line's own
//! code: this crate cannot depend on it, so it is handed in as an [`AdminApi`]. The page and API
//! are served only on a loopback admin address unless `--admin-ui` is given
//! ([`ui_allowed`]); every one of their requests must name the admin address or a loopback name
//! as its `Host` (DNS rebinding), and a `POST` body must be JSON (a cross-site form cannot send
//! it without a preflight the listener never answers).

use super::Gateway;
use crate::recent::RecentRequests;
use crate::respond::{self, Body};
use claimgate_config::{Authentication, Deployment, KeySource, TokenLocation};
use claimgate_jose::KeySet;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;

const PAGE_HTML: &str = include_str!("../../assets/troubleshoot.html");
const PAGE_CSS: &str = include_str!("../../assets/troubleshoot.css");
const PAGE_JS: &str = include_str!("../../assets/troubleshoot.js");
const FAVICON: &str = include_str!("../../assets/favicon.svg");

/// The largest `/api/check` body read (a token is at most a few KiB; headers too).
const MAX_API_BODY: usize = 256 * 1024;

/// How many recent refusals `GET /api/requests` lists.
const MAX_LISTED: usize = 100;

/// What the command line lends the admin API: `check`'s verdict document and `logs`'
/// diagnosis, computed by the same code as those commands.
pub trait AdminApi: Send + Sync + std::fmt::Debug {
    /// Judges `input` (`{"deployment", "request", "headers", "token", "now"}`) against the
    /// deployments served now, with the key material they hold; the status (200 whatever the
    /// decision, 4xx for a bad input) and the document (`check -o json`'s, or `{"error"}`).
    fn check(&self, deployments: &[LoadedDeployment], input: &Value) -> (u16, Value);
    /// The failed checks among one request's records, as `logs -o json` lists them.
    fn diagnosis(&self, records: &[Value]) -> Vec<Value>;
}

/// One served deployment and the remote key material it holds now (never fetched for the
/// admin API).
#[derive(Debug, Clone)]
pub struct LoadedDeployment {
    pub deployment: Deployment,
    /// By the policy's URI (`REMOTE_JWKS`' uri, or `REMOTE_DISCOVERY`'s discovery URL): the
    /// keys, or why there are none.
    pub keys: Vec<(String, Result<KeySet, String>)>,
}

/// The troubleshooting page and API of one admin listener.
#[derive(Debug, Clone)]
pub struct AdminUi {
    pub api: Arc<dyn AdminApi>,
    /// The admin listener's address: a `Host` naming it (or the address a connection reached,
    /// when it listens on every interface) is accepted besides loopback names.
    pub address: SocketAddr,
    /// The recent requests' records (also handed to the log sinks).
    pub recent: Arc<RecentRequests>,
}

/// Whether the page and `/api/*` may be served on `address`: on a loopback address, or when
/// `--admin-ui` says so (a pod address answering Kubernetes probes exposes no claims).
pub fn ui_allowed(address: SocketAddr, admin_ui: bool) -> bool {
    admin_ui || address.ip().is_loopback()
}

/// Whether a `Host` header names the admin address or a loopback name (`localhost`,
/// `127.0.0.1`, `[::1]`, with any port): a page of another site whose name was made to resolve
/// to this address (DNS rebinding) sends its own name and is refused.
pub fn host_allowed(host: Option<&str>, admin: SocketAddr) -> bool {
    let Some(host) = host.map(str::trim) else {
        return false;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((inside, "")) => inside,
            Some((inside, port)) if port.strip_prefix(':').is_some_and(is_port) => inside,
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return false,
            None => host,
        }
    };
    if name.is_empty() {
        return false;
    }
    claimgate_keys::is_loopback_host(name)
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip == admin.ip())
}

/// [`host_allowed`] for a whole request: exactly one `Host` header, and it is allowed; a
/// request target in absolute form (`GET http://name/...`) must name an allowed host too, since
/// HTTP says its authority, not `Host`, is the host asked for.
pub fn request_host_allowed(headers: &http::HeaderMap, uri: &http::Uri, admin: SocketAddr) -> bool {
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (Some(host), None) => host.to_str().ok(),
        _ => None,
    };
    host_allowed(host, admin)
        && uri
            .authority()
            .is_none_or(|authority| host_allowed(Some(authority.as_str()), admin))
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

/// Whether a `Content-Type` is `application/json`, with at most a `charset` parameter.
pub fn is_json_content_type(value: Option<&str>) -> bool {
    let Some(value) = value else {
        return false;
    };
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        && parts.all(|p| {
            p.trim()
                .split_once('=')
                .is_some_and(|(name, _)| name.trim().eq_ignore_ascii_case("charset"))
        })
}

/// The `error` document of the command line (`{"version": 1, "error": {"message", "details"}}`).
fn error_document(status: u16, message: &str) -> Response<Body> {
    json_response(
        status,
        &json!({"version": 1, "error": {"message": message, "details": []}}),
    )
}

fn json_response(status: u16, document: &Value) -> Response<Body> {
    let body = serde_json::to_vec(document).unwrap_or_default();
    let mut response = Response::new(respond::full(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response<Body> {
    let mut response = Response::new(respond::full(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The headers every page and API answer carries: same-origin assets only, never framed,
/// never cached (answers may hold claims), no referrer.
fn harden(mut response: Response<Body>) -> Response<Body> {
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", "default-src 'self'"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
        ("cross-origin-resource-policy", "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// `%XX` escapes decoded (an id given in a URL); `None` when the result is not UTF-8.
fn percent_decoded(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl Gateway {
    /// The deployments served now with the key material they hold (for `/api/check`).
    pub fn loaded_deployments(&self) -> Vec<LoadedDeployment> {
        let state = self.state.load();
        state
            .served
            .iter()
            .map(|served| {
                let mut keys = Vec::new();
                for remote in served.all_keys() {
                    let held = match remote.current() {
                        Some(snapshot) => Ok(snapshot.keys.clone()),
                        None => Err(remote.load_failure().unwrap_or_else(|| {
                            format!("the gateway has not loaded {} yet", remote.uri())
                        })),
                    };
                    keys.push((remote.uri().to_owned(), held));
                }
                for discovery in served.all_discovery() {
                    let held = match discovery.remote_keys().and_then(|r| r.current()) {
                        Some(snapshot) => Ok(snapshot.keys.clone()),
                        None => Err(format!(
                            "the gateway has not loaded the key set of {} yet",
                            discovery.uri()
                        )),
                    };
                    keys.push((discovery.uri().to_owned(), held));
                }
                LoadedDeployment {
                    deployment: served.deployment.clone(),
                    keys,
                }
            })
            .collect()
    }

    /// `GET /api/deployments`: each deployment's prefix, id, label, routes and where it reads
    /// its token.
    fn deployments_document(&self) -> Value {
        let state = self.state.load();
        let deployments: Vec<Value> = state
            .served
            .iter()
            .map(|served| describe(&served.deployment))
            .collect();
        json!({"version": 1, "deployments": deployments})
    }

    /// Answers one admin request: the probes and metrics as before, then (when `ui` is given)
    /// the page and its API.
    pub(super) async fn admin_or_ui(
        &self,
        request: Request<Incoming>,
        ui: Option<&AdminUi>,
        local: Option<SocketAddr>,
    ) -> Response<Body> {
        let path = request.uri().path();
        let Some(ui) = ui.filter(|_| !matches!(path, "/livez" | "/readyz" | "/metrics")) else {
            let mut response = self.admin(&request);
            // The probes' and metrics' text is never to be sniffed into HTML either.
            response.headers_mut().insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            return response;
        };
        if !request_host_allowed(
            request.headers(),
            request.uri(),
            local.unwrap_or(ui.address),
        ) {
            return harden(error_document(
                403,
                "the Host is neither the admin address nor a loopback name (DNS rebinding protection): open the page at http://127.0.0.1:PORT/ or http://localhost:PORT/",
            ));
        }
        harden(self.ui(request, ui).await)
    }

    async fn ui(&self, request: Request<Incoming>, ui: &AdminUi) -> Response<Body> {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let get = method == Method::GET || method == Method::HEAD;
        match path.as_str() {
            "/" | "/index.html" if get => asset("text/html; charset=utf-8", PAGE_HTML),
            "/troubleshoot.css" if get => asset("text/css; charset=utf-8", PAGE_CSS),
            "/troubleshoot.js" if get => asset("text/javascript; charset=utf-8", PAGE_JS),
            "/favicon.svg" | "/favicon.ico" if get => asset("image/svg+xml", FAVICON),
            "/api/deployments" if get => json_response(200, &self.deployments_document()),
            "/api/requests" if get => json_response(200, &self.recent_refusals(&ui.recent)),
            "/api/check" if method == Method::POST => self.api_check(request, ui).await,
            "/" | "/index.html" | "/troubleshoot.css" | "/troubleshoot.js" | "/favicon.svg"
            | "/favicon.ico" | "/api/deployments" | "/api/requests" => {
                respond::method_not_allowed(&["GET", "HEAD"])
            }
            "/api/check" => respond::method_not_allowed(&["POST"]),
            _ => match path.strip_prefix("/api/requests/") {
                Some(id) if get => request_document(ui, id),
                Some(_) => respond::method_not_allowed(&["GET", "HEAD"]),
                None => error_document(404, "no such page: the troubleshooting page is at /"),
            },
        }
    }

    async fn api_check(&self, request: Request<Incoming>, ui: &AdminUi) -> Response<Body> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if !is_json_content_type(content_type) {
            return error_document(
                415,
                "the body must be application/json (a form or text body is refused)",
            );
        }
        let limited = http_body_util::Limited::new(request.into_body(), MAX_API_BODY);
        // A body sent a byte at a time would hold the connection and its task for ever: it gets
        // the read timeout the request's headers had.
        let collected =
            match tokio::time::timeout(self.options.read_timeout, limited.collect()).await {
                Ok(collected) => collected,
                Err(_) => {
                    let mut response =
                        error_document(408, "the body did not arrive within the read timeout");
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                    return response;
                }
            };
        let bytes = match collected {
            Ok(collected) => collected.to_bytes(),
            Err(_) => {
                // The rest of the body is not read: the connection cannot be used again.
                let mut response =
                    error_document(413, "the body is larger than 256 KiB, or could not be read");
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return response;
            }
        };
        let input: Value = match serde_json::from_slice(&bytes) {
            Ok(value @ Value::Object(_)) => value,
            Ok(_) => return error_document(400, "the body must be a JSON object"),
            Err(e) => return error_document(400, &format!("the body is not JSON: {e}")),
        };
        let deployments = self.loaded_deployments();
        let (status, document) = ui.api.check(&deployments, &input);
        json_response(status, &document)
    }
}

/// `GET /api/requests/<id>`: the records the gateway wrote for that request, with `logs`'
/// diagnosis.
fn request_document(ui: &AdminUi, raw_id: &str) -> Response<Body> {
    let Some(id) = percent_decoded(raw_id).filter(|id| !id.is_empty()) else {
        return error_document(400, "the request id is not valid");
    };
    let Some(lines) = ui.recent.get(&id) else {
        return error_document(
            404,
            &format!(
                "no record of request '{}' among the last {} requests (older ones are in the log files: claimgate logs --request-id)",
                claimgate_core::escape(&id),
                crate::recent::MAX_REQUESTS
            ),
        );
    };
    let records: Vec<Value> = lines
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let diagnosis = ui.api.diagnosis(&records);
    json_response(
        200,
        &json!({"version": 1, "requestId": id, "records": records, "diagnosis": diagnosis}),
    )
}

impl Gateway {
    /// `GET /api/requests`: the most recent refused requests (4xx and 5xx answers), newest
    /// first, each with its time, deployment, method, URI (as logged), the route it reached
    /// (in the deployments served now), status and failed checks.
    fn recent_refusals(&self, recent: &RecentRequests) -> Value {
        let state = self.state.load();
        let route_of = |method: &str, uri: &str| -> Option<String> {
            let path = uri.split('?').next().unwrap_or(uri);
            let served = super::find(&state, path)?;
            match claimgate_core::route::find(&served.deployment, method, path) {
                claimgate_core::route::RouteMatch::Found { route, .. } => Some(format!(
                    "{}{}",
                    served.deployment.path_prefix.trim_end_matches('/'),
                    route.path.as_str()
                )),
                _ => None,
            }
        };
        recent_refusals(recent, &route_of)
    }
}

fn recent_refusals(
    recent: &RecentRequests,
    route_of: &dyn Fn(&str, &str) -> Option<String>,
) -> Value {
    let mut listed = Vec::new();
    recent.newest_first(|id, lines| {
        let records: Vec<Value> = lines
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect();
        let access = records
            .iter()
            .find(|r| r["type"].as_str().is_some_and(|t| t.ends_with(".access")));
        let Some(access) = access else {
            return true;
        };
        let status = access["data"]["status"].as_u64().unwrap_or(0);
        if status < 400 {
            return true;
        }
        let checks: Vec<&Value> = records
            .iter()
            .filter_map(|r| r["data"].get("check"))
            .collect();
        let method = access["data"]["httpMethod"].as_str().unwrap_or("");
        let uri = access["data"]["requestUri"].as_str().unwrap_or("");
        listed.push(json!({
            "requestId": id,
            "time": access["time"],
            "deployment": access["source"],
            "method": method,
            "uri": uri,
            "route": route_of(method, uri),
            "status": status,
            "checks": checks,
        }));
        listed.len() < MAX_LISTED
    });
    json!({"version": 1, "requests": listed})
}

/// One deployment for `/api/deployments`.
fn describe(deployment: &Deployment) -> Value {
    let prefix = deployment.path_prefix.trim_end_matches('/');
    let routes: Vec<Value> = deployment
        .routes
        .iter()
        .map(|route| {
            json!({
                "methods": route.methods.names(),
                "path": format!("{prefix}{}", route.path.as_str()),
                "anonymous": matches!(route.authorization, claimgate_config::Authorization::Anonymous),
            })
        })
        .collect();
    let (kind, location) = match &deployment.authentication {
        Authentication::None => ("none", None),
        Authentication::Jwt(policy) => (
            match policy.keys {
                KeySource::Discovery(_) => "REMOTE_DISCOVERY",
                _ => "JWT",
            },
            Some(&policy.location),
        ),
        Authentication::Dynamic(dynamic) => (
            "dynamicAuthentication",
            dynamic
                .servers
                .first()
                .and_then(|s| s.policy.jwt())
                .map(|p| &p.location),
        ),
        // The function reads what its `parameters` name: no single token place.
        Authentication::Custom(_) => ("CUSTOM_AUTHENTICATION", None),
        Authentication::Unsupported { .. } => ("unsupported", None),
    };
    let token = match location {
        Some(TokenLocation::Header { name, scheme }) => json!({"header": name, "scheme": scheme}),
        Some(TokenLocation::Query { name }) => json!({"query": name}),
        None => Value::Null,
    };
    json!({
        "pathPrefix": deployment.path_prefix,
        "deploymentId": deployment.id,
        "label": deployment.label(),
        "authentication": kind,
        "token": token,
        "routes": routes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_ui_is_served_on_loopback_or_with_admin_ui_only() {
        assert!(ui_allowed(addr("127.0.0.1:9091"), false));
        assert!(ui_allowed(addr("127.0.0.2:9091"), false));
        assert!(ui_allowed(addr("[::1]:9091"), false));
        assert!(!ui_allowed(addr("0.0.0.0:9091"), false));
        assert!(!ui_allowed(addr("10.1.2.3:9091"), false));
        assert!(ui_allowed(addr("10.1.2.3:9091"), true));
    }

    #[test]
    fn loopback_names_and_the_admin_address_are_accepted_hosts() {
        let admin = addr("127.0.0.1:9091");
        for host in [
            "127.0.0.1:9091",
            "127.0.0.1",
            "localhost:9091",
            "LOCALHOST",
            "[::1]:9091",
            "[::1]",
        ] {
            assert!(host_allowed(Some(host), admin), "{host}");
        }
        let pod = addr("10.1.2.3:9091");
        assert!(host_allowed(Some("10.1.2.3:9091"), pod));
    }

    #[test]
    fn foreign_hosts_are_refused() {
        let admin = addr("127.0.0.1:9091");
        for host in [
            "evil.example:9091",
            "evil.example",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "10.1.2.3:9091",
            "",
            ":9091",
            "[::1",
            "[::1]x",
            "localhost:90x1",
            "localhost:",
        ] {
            assert!(!host_allowed(Some(host), admin), "{host}");
        }
        assert!(!host_allowed(None, admin));
    }

    #[test]
    fn a_request_needs_one_allowed_host_and_an_allowed_absolute_target() {
        let admin = addr("127.0.0.1:9091");
        let headers = |hosts: &[&str]| {
            let mut map = http::HeaderMap::new();
            for host in hosts {
                map.append(header::HOST, HeaderValue::from_str(host).unwrap());
            }
            map
        };
        let origin: http::Uri = "/api/deployments".parse().unwrap();
        assert!(request_host_allowed(
            &headers(&["localhost:9091"]),
            &origin,
            admin
        ));
        assert!(!request_host_allowed(&headers(&[]), &origin, admin));
        // Which of two Host headers a proxy or browser cache in between would use is unknown.
        for two in [["localhost", "evil.example"], ["evil.example", "localhost"]] {
            assert!(
                !request_host_allowed(&headers(&two), &origin, admin),
                "{two:?}"
            );
        }
        let absolute: http::Uri = "http://evil.example:9091/api/deployments".parse().unwrap();
        assert!(!request_host_allowed(
            &headers(&["localhost"]),
            &absolute,
            admin
        ));
        let absolute: http::Uri = "http://127.0.0.1:9091/api/deployments".parse().unwrap();
        assert!(request_host_allowed(
            &headers(&["localhost"]),
            &absolute,
            admin
        ));
        let userinfo: http::Uri = "http://evil@127.0.0.1:9091/".parse().unwrap();
        assert!(!request_host_allowed(
            &headers(&["localhost"]),
            &userinfo,
            admin
        ));
    }

    #[test]
    fn only_json_bodies_are_accepted() {
        assert!(is_json_content_type(Some("application/json")));
        assert!(is_json_content_type(Some(
            "Application/JSON; charset=utf-8"
        )));
        for refused in [
            "application/x-www-form-urlencoded",
            "text/plain",
            "multipart/form-data; boundary=x",
            "application/json; boundary=x",
            "application/jsonp",
            "",
        ] {
            assert!(!is_json_content_type(Some(refused)), "{refused}");
        }
        assert!(!is_json_content_type(None));
    }

    #[test]
    fn ids_in_the_path_are_percent_decoded() {
        assert_eq!(percent_decoded("ABC%2FDEF").as_deref(), Some("ABC/DEF"));
        assert_eq!(percent_decoded("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decoded("%ZZ"), None);
        assert_eq!(percent_decoded("%F").as_deref(), Some("%F"));
    }
}
