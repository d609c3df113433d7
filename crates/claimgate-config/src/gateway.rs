//! The gateway resource file (`serve --gateway FILE`): OCI's `CreateGatewayDetails`, the GET
//! `Gateway` (with `id`), or the CLI's `{"data": ...}` read-back (kebab-case).
//!
//! claimgate uses one member of it, `responseCacheDetails`: where the response cache lives
//! (SPEC.md "Response caching", `reference/oci-policies.md` §C.1.1 and §G). Every other
//! documented member is accepted and ignored, with one warning naming those that would change
//! behaviour on OCI (network, certificates, CA bundles); metadata (ids, names, tags, lifecycle)
//! is ignored silently. Unknown members are errors, as in every other file.

use crate::deployment::MAX_FILE_BYTES;
use crate::reader::{read_back, read_kind, spelled_kebab, Cx, Diagnostic, Field, Obj, Rejected};
use crate::secrets::Secrets;
use claimgate_jose::json;
use serde_json::Value;
use std::fmt;
use std::time::Duration;

/// A gateway file that was read, and its warnings.
#[derive(Debug, Clone)]
pub struct LoadedGateway {
    pub gateway: Gateway,
    pub warnings: Vec<Diagnostic>,
}

/// What claimgate takes from OCI's gateway resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    /// `id` (GET shape and read-back only).
    pub id: Option<String>,
    /// `displayName`.
    pub display_name: Option<String>,
    /// `responseCacheDetails` of type `EXTERNAL_RESP_CACHE`; `None` for `NONE` or absent.
    pub response_cache: Option<ResponseCacheServer>,
}

/// The one cache server of `EXTERNAL_RESP_CACHE`, with its credentials resolved from the
/// secrets file. Its `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ResponseCacheServer {
    /// An IPv4 address or a host name.
    pub host: String,
    pub port: u16,
    /// `username` of the secret (Redis 6 ACL user); `None` authenticates as `default`.
    pub username: Option<String>,
    pub password: String,
    /// `isSslEnabled`: `rediss://`.
    pub tls: bool,
    /// `!isSslVerifyDisabled`.
    pub verify_tls: bool,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub send_timeout: Duration,
    /// `authenticationSecretId` and version, for messages.
    pub secret_id: String,
    pub secret_version: u64,
}

impl fmt::Debug for ResponseCacheServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseCacheServer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("tls", &self.tls)
            .field("verify_tls", &self.verify_tls)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("send_timeout", &self.send_timeout)
            .field("secret_id", &self.secret_id)
            .field("secret_version", &self.secret_version)
            .finish()
    }
}

impl ResponseCacheServer {
    /// `redis://host:port` or `rediss://...`, never with credentials: for messages.
    pub fn shown(&self) -> String {
        format!(
            "{}://{}:{}",
            if self.tls { "rediss" } else { "redis" },
            self.host,
            self.port
        )
    }
}

/// OCI's timeouts default to 1000 ms; claimgate takes up to a minute (OCI documents no limit).
const DEFAULT_TIMEOUT_MS: i64 = 1000;
const MAX_TIMEOUT_MS: i64 = 60_000;

/// Members that change what OCI does but that a self-hosted gateway does not apply (its
/// listener, certificates and trust come from `serve`'s flags): named in one warning.
const IGNORED_MEMBERS: &[&str] = &[
    "endpointType",
    "subnetId",
    "networkSecurityGroupIds",
    "certificateId",
    "caBundles",
    "ipMode",
    "ipv4AddressConfiguration",
    "ipv6AddressConfiguration",
    "hostname",
    "ipAddresses",
];

/// Members that say nothing about behaviour: read back, never used, never warned about.
const METADATA_MEMBERS: &[&str] = &[
    "id",
    "displayName",
    "compartmentId",
    "lifecycleState",
    "lifecycleDetails",
    "timeCreated",
    "timeUpdated",
    "locks",
    "freeformTags",
    "definedTags",
    "systemTags",
];

/// Reads a gateway file; every problem is reported at once, with its path. Secrets named by
/// `responseCacheDetails` are resolved from `secrets` (errors name the id, never a value).
pub fn load_gateway_str(text: &str, secrets: &Secrets) -> Result<LoadedGateway, Rejected> {
    load(text, Some(secrets))
}

/// Checks a gateway file without a secrets file (`validate` without `--secrets`): everything
/// but whether the secret resolves. What it returns is for its warnings only: the server's
/// credentials are left empty.
pub fn check_gateway_str(text: &str) -> Result<LoadedGateway, Rejected> {
    load(text, None)
}

fn load(text: &str, secrets: Option<&Secrets>) -> Result<LoadedGateway, Rejected> {
    let mut cx = Cx::default();
    if text.len() > MAX_FILE_BYTES {
        cx.error(
            "",
            format!(
                "the file is {} bytes; claimgate reads gateway files up to {MAX_FILE_BYTES}",
                text.len()
            ),
        );
        return Err(cx.rejected());
    }
    let value = match json::parse_value(text.as_bytes(), 32) {
        Ok(value) => value,
        Err(error) => {
            cx.error("", format!("not a gateway file: {error}"));
            return Err(cx.rejected());
        }
    };
    cx.kebab = spelled_kebab(&value);
    let root = Field::root(&value, "");
    let gateway = match &value {
        Value::Object(map) if map.contains_key("data") => {
            read_back(&mut cx, &root).and_then(|data| read_gateway(&mut cx, &data, secrets))
        }
        Value::Object(_) => read_gateway(&mut cx, &root, secrets),
        _ => {
            cx.error(
                "",
                "not a gateway file: expected a JSON object (OCI's CreateGatewayDetails or \
                 Gateway) or the CLI's {\"data\": ...}",
            );
            None
        }
    };
    match gateway {
        Some(gateway) if cx.errors.is_empty() => Ok(LoadedGateway {
            gateway,
            warnings: cx.warnings,
        }),
        _ => Err(cx.rejected()),
    }
}

fn read_gateway(cx: &mut Cx, field: &Field<'_>, secrets: Option<&Secrets>) -> Option<Gateway> {
    let mut obj = field.object(cx)?;
    let id = obj.take("id").and_then(|f| f.str(cx)).map(str::to_owned);
    let display_name = obj
        .take("displayName")
        .and_then(|f| f.str(cx))
        .map(str::to_owned);
    let response_cache = match obj.take("responseCacheDetails") {
        None => Some(None),
        Some(f) => read_cache_details(cx, &f, secrets),
    };
    let ignored: Vec<&str> = IGNORED_MEMBERS
        .iter()
        .copied()
        .filter(|camel| obj.take(camel).is_some())
        .collect();
    if !ignored.is_empty() {
        cx.warn(
            &obj.path,
            format!(
                "{} {} not used by claimgate (its listener, certificates and trusted CAs come \
                 from serve's flags); only responseCacheDetails is",
                ignored.join(", "),
                if ignored.len() == 1 { "is" } else { "are" }
            ),
        );
    }
    obj.ignore(METADATA_MEMBERS);
    let mut known = vec!["responseCacheDetails"];
    known.extend_from_slice(IGNORED_MEMBERS);
    known.extend_from_slice(METADATA_MEMBERS);
    obj.finish(cx, &known);
    Some(Gateway {
        id,
        display_name,
        response_cache: response_cache?,
    })
}

/// `responseCacheDetails`: `Some(None)` for `NONE`, `None` when invalid.
fn read_cache_details(
    cx: &mut Cx,
    field: &Field<'_>,
    secrets: Option<&Secrets>,
) -> Option<Option<ResponseCacheServer>> {
    let mut obj = field.object(cx)?;
    let kind = read_kind(
        cx,
        &mut obj,
        &["EXTERNAL_RESP_CACHE", "NONE"],
        "a response cache type",
    );
    match kind? {
        "NONE" => {
            obj.finish(cx, &["type"]);
            Some(None)
        }
        _ => read_external(cx, obj, secrets).map(Some),
    }
}

fn read_external(
    cx: &mut Cx,
    mut obj: Obj<'_>,
    secrets: Option<&Secrets>,
) -> Option<ResponseCacheServer> {
    let server = obj.require(cx, "servers").and_then(|f| {
        let servers = f.array(cx)?;
        match servers.as_slice() {
            [] => {
                cx.error(&f.path, "one cache server is required");
                None
            }
            [one] => read_server(cx, one),
            more => {
                // Every server is still checked, so all problems show at once.
                for server in more {
                    let _ = read_server(cx, server);
                }
                cx.error(
                    &f.path,
                    format!(
                        "{} servers given; OCI supports a single cache server (not a cluster)",
                        more.len()
                    ),
                );
                None
            }
        }
    });
    let secret_id = obj
        .require(cx, "authenticationSecretId")
        .and_then(|f| f.non_empty_str(cx).map(|id| (id, f.path.clone())));
    let version = obj
        .require(cx, "authenticationSecretVersionNumber")
        .and_then(|f| f.integer_in(cx, 1, i64::MAX))
        .map(|v| v as u64);
    let credentials = match (&secret_id, version, secrets) {
        (Some((id, path)), Some(version), Some(secrets)) => {
            read_credentials(cx, secrets, id, version, path)
        }
        // Not resolved: only the file is being checked.
        (Some(_), Some(_), None) => Some((None, String::new())),
        _ => None,
    };
    let tls = either_spelling(cx, &mut obj, "isSslEnabled", "isSSLEnabled");
    let verify_disabled =
        either_spelling(cx, &mut obj, "isSslVerifyDisabled", "isSSLVerifyDisabled");
    let mut timeout = |camel: &str| match obj.take(camel) {
        None => Some(Duration::from_millis(DEFAULT_TIMEOUT_MS as u64)),
        Some(f) => f
            .integer_in(cx, 1, MAX_TIMEOUT_MS)
            .map(|ms| Duration::from_millis(ms as u64)),
    };
    let connect_timeout = timeout("connectTimeoutInMs");
    let read_timeout = timeout("readTimeoutInMs");
    let send_timeout = timeout("sendTimeoutInMs");
    obj.finish(
        cx,
        &[
            "type",
            "servers",
            "authenticationSecretId",
            "authenticationSecretVersionNumber",
            "isSslEnabled",
            "isSSLEnabled",
            "isSslVerifyDisabled",
            "isSSLVerifyDisabled",
            "connectTimeoutInMs",
            "readTimeoutInMs",
            "sendTimeoutInMs",
        ],
    );
    let (host, port) = server?;
    let (username, password) = credentials?;
    Some(ResponseCacheServer {
        host,
        port,
        username,
        password,
        tls: tls?.unwrap_or(false),
        verify_tls: !verify_disabled?.unwrap_or(false),
        connect_timeout: connect_timeout?,
        read_timeout: read_timeout?,
        send_timeout: send_timeout?,
        secret_id: secret_id?.0.to_owned(),
        secret_version: version?,
    })
}

/// A flag the SDK spells `isSsl...` and the documentation `isSSL...`: either is accepted, both
/// at once is an error (they could disagree). `Some(None)` when absent.
fn either_spelling(cx: &mut Cx, obj: &mut Obj<'_>, sdk: &str, docs: &str) -> Option<Option<bool>> {
    let first = obj.take(sdk);
    let second = obj.take(docs);
    match (first, second) {
        (Some(a), Some(b)) => {
            cx.error(
                &b.path,
                format!("is the same flag as {}; give one of them", a.path),
            );
            None
        }
        (Some(f), None) | (None, Some(f)) => f.bool(cx).map(Some),
        (None, None) => Some(None),
    }
}

/// `servers[i]`: `host` (IPv4 address or host name) and `port`.
fn read_server(cx: &mut Cx, field: &Field<'_>) -> Option<(String, u16)> {
    let mut obj = field.object(cx)?;
    let host = obj.require(cx, "host").and_then(|f| {
        let host = f.non_empty_str(cx)?;
        match host_problem(host) {
            None => Some(host.to_owned()),
            Some(problem) => {
                cx.error(&f.path, format!("'{host}' {problem}"));
                None
            }
        }
    });
    let port = obj
        .require(cx, "port")
        .and_then(|f| f.integer_in(cx, 1, 65535))
        .map(|p| p as u16);
    obj.finish(cx, &["host", "port"]);
    Some((host?, port?))
}

/// Why `host` is neither an IPv4 address nor a host name (OCI: "IPv4 only").
fn host_problem(host: &str) -> Option<&'static str> {
    if host.parse::<std::net::Ipv6Addr>().is_ok() || host.starts_with('[') {
        return Some("is an IPv6 address; OCI takes a host name or an IPv4 address");
    }
    if host.len() > 253 {
        return Some("is longer than a host name may be (253 characters)");
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if host.trim_end_matches('.').split('.').all(label_ok) {
        None
    } else {
        Some("is not a host name or an IPv4 address")
    }
}

/// The username and password of the secret: OCI keeps `{"username": ..., "password": ...}`
/// (username optional) as the secret's text. Messages name the id and version, never a value.
fn read_credentials(
    cx: &mut Cx,
    secrets: &Secrets,
    id: &str,
    version: u64,
    path: &str,
) -> Option<(Option<String>, String)> {
    let text = match secrets.resolve(id, Some(version)) {
        Ok(text) => text,
        Err(message) => {
            cx.error(path, format!("{message} (give it with --secrets FILE)"));
            return None;
        }
    };
    const FORM: &str = r#"{"username": "...", "password": "..."} (username optional)"#;
    let wrong = |cx: &mut Cx, what: &str| {
        cx.error(
            path,
            format!("secret '{id}' version {version} {what}; expected {FORM}"),
        );
    };
    let Ok(Value::Object(map)) = json::parse_value(text.as_bytes(), 4) else {
        wrong(cx, "is not a JSON object");
        return None;
    };
    if let Some(name) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "username" | "password"))
    {
        wrong(cx, &format!("has an unknown member '{name}'"));
        return None;
    }
    let username = match map.get("username") {
        None | Some(Value::Null) => None,
        Some(Value::String(u)) if u.is_empty() => None,
        Some(Value::String(u)) => Some(u.clone()),
        Some(_) => {
            wrong(cx, "has a username that is not a string");
            return None;
        }
    };
    match map.get("password") {
        Some(Value::String(p)) if !p.is_empty() => Some((username, p.clone())),
        Some(Value::String(_)) => {
            wrong(cx, "has an empty password");
            None
        }
        None | Some(Value::Null) => {
            wrong(cx, "has no password");
            None
        }
        Some(_) => {
            wrong(cx, "has a password that is not a string");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_names_or_ipv4() {
        for good in [
            "127.0.0.1",
            "cache.internal",
            "redis",
            "cache-1.example.com.",
        ] {
            assert_eq!(host_problem(good), None, "{good}");
        }
        for bad in [
            "::1",
            "[::1]",
            "cache host",
            "-bad.example",
            "a..b",
            "cache:6379",
        ] {
            assert!(host_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn the_password_is_never_in_debug() {
        let secrets = Secrets::parse(r#"{"s": {"1": {"password": "hunter2"}}}"#).unwrap();
        let loaded = load_gateway_str(
            r#"{"responseCacheDetails": {"type": "EXTERNAL_RESP_CACHE",
                "servers": [{"host": "127.0.0.1", "port": 6379}],
                "authenticationSecretId": "s", "authenticationSecretVersionNumber": 1}}"#,
            &secrets,
        )
        .unwrap();
        let server = loaded.gateway.response_cache.unwrap();
        assert_eq!(server.password, "hunter2");
        assert!(!format!("{server:?}").contains("hunter2"));
    }
}
