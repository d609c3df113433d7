//! `claimgate try`: the troubleshooting loop's verify step in one command. It sends one request
//! to a running gateway, prints the status, then the records the gateway wrote for the answer's
//! `opc-request-id` (from the admin API or the log files) and the diagnosis, as `logs` does.

use crate::input::{read_file, read_token, InputError, DATA_LIMIT};
use crate::output::{colour_enabled, print_json, report_error, Paint};
use crate::{exit, Format};
use claimgate_core::Escaped;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub(crate) struct TryArgs {
    /// The URL to send the request to (the gateway's listener, the deployment's path).
    #[arg(value_name = "URL")]
    url: String,
    /// The method (default GET, or POST with --data).
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    method: Option<String>,
    /// A request header, 'Name: value' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "'Name: value'")]
    headers: Vec<String>,
    /// The token: the token itself, @FILE, or - for stdin. Sent where the deployment reads it
    /// when --admin is given, else as `Authorization: Bearer`.
    #[arg(long, value_name = "TOKEN|@FILE|-")]
    token: Option<String>,
    /// The request body: the data itself or @FILE.
    #[arg(short = 'd', long = "data", value_name = "DATA|@FILE")]
    data: Option<String>,
    /// The gateway's admin listener (e.g. http://127.0.0.1:9091): records are read from its
    /// /api/requests/<id>.
    #[arg(long, value_name = "URL", conflicts_with = "log")]
    admin: Option<String>,
    /// The gateway's log files (execution and access; repeatable): records are read from them.
    #[arg(long = "log", visible_alias = "file", value_name = "FILE", value_parser = crate::input::file_arg)]
    log: Vec<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
}

/// How long records are waited for after the answer: the gateway's log writer batches.
const RECORDS_WAIT: Duration = Duration::from_secs(2);

/// The statuses a gateway answers itself when it refuses a request (SPEC "`claimgate try`").
const REFUSALS: [u16; 9] = [400, 401, 403, 404, 405, 413, 415, 429, 431];

/// Where the deployment reads its token, from `/api/deployments`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TokenPlace {
    Header {
        name: String,
        scheme: Option<String>,
    },
    Query {
        name: String,
    },
}

/// The request as sent, for the report (credentials replaced by `[redacted]`).
struct Sent {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
}

pub(crate) fn run(args: &TryArgs) -> u8 {
    let json_output = args.output == Format::Json;
    match run_inner(args) {
        Ok(code) => code,
        Err(Failure::Usage(error)) => {
            report_error(&error, json_output);
            exit::USAGE
        }
        Err(Failure::Unreachable(error)) => {
            report_error(&error, json_output);
            exit::UNKNOWN
        }
    }
}

/// Why `try` could not finish: a bad argument (exit 2), or the gateway or its records out of
/// reach (exit 3).
enum Failure {
    Usage(InputError),
    Unreachable(InputError),
}

impl From<InputError> for Failure {
    fn from(error: InputError) -> Self {
        Self::Usage(error)
    }
}

fn client() -> Result<reqwest::blocking::Client, InputError> {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| InputError::new(format!("cannot start the HTTP client: {e}")))
}

fn run_inner(args: &TryArgs) -> Result<u8, Failure> {
    let mut url = reqwest::Url::parse(&args.url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| {
            InputError::new(format!(
                "'{}' is not an http:// or https:// URL (e.g. http://127.0.0.1:8080/v1/orders)",
                args.url
            ))
        })?;
    let admin = match &args.admin {
        Some(admin) => Some(
            reqwest::Url::parse(admin.trim_end_matches('/'))
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| {
                    InputError::new(format!(
                        "--admin '{admin}' is not an http:// URL (e.g. http://127.0.0.1:9091)"
                    ))
                })?,
        ),
        None => None,
    };
    let body = match &args.data {
        Some(data) => Some(match data.strip_prefix('@') {
            Some(path) => read_file(path, "--data file", DATA_LIMIT).map_err(InputError::new)?,
            None => data.clone().into_bytes(),
        }),
        None => None,
    };
    let method = match &args.method {
        Some(m) => m.to_ascii_uppercase(),
        None if body.is_some() => "POST".to_owned(),
        None => "GET".to_owned(),
    };
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| InputError::new(format!("-X '{method}' is not an HTTP method")))?;
    let mut headers = Vec::new();
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| InputError::new(format!("-H '{header}' must be 'Name: value'")))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let client = client()?;
    // Credentials never reach the report: the names they travel under are remembered.
    let mut secret_header: Option<String> = None;
    let mut secret_query: Option<String> = None;
    if let Some(arg) = &args.token {
        let token = read_token(arg)?;
        let place = match &admin {
            Some(admin) => token_place(&client, admin, url.path())?,
            None => TokenPlace::Header {
                name: "Authorization".into(),
                scheme: Some("Bearer".into()),
            },
        };
        match place {
            TokenPlace::Header { name, scheme } => {
                headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
                let value = match scheme {
                    Some(scheme) => format!("{scheme} {token}"),
                    None => token,
                };
                headers.push((name.clone(), value));
                secret_header = Some(name);
            }
            TokenPlace::Query { name } => {
                url.query_pairs_mut().append_pair(&name, &token);
                secret_query = Some(name);
            }
        }
    }
    let sent = Sent {
        method: method.to_string(),
        url: redact_url(&url, secret_query.as_deref()),
        headers: headers
            .iter()
            .map(|(n, v)| {
                let secret = n.eq_ignore_ascii_case("authorization")
                    || n.eq_ignore_ascii_case("cookie")
                    || secret_header
                        .as_deref()
                        .is_some_and(|s| s.eq_ignore_ascii_case(n));
                let v = if secret {
                    "[redacted]".to_owned()
                } else {
                    v.clone()
                };
                (n.clone(), v)
            })
            .collect(),
    };

    let mut request = client.request(method, url.clone());
    for (name, value) in &headers {
        request = request.header(name.as_str(), value.as_str());
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let answer = match request.send() {
        Ok(answer) => answer,
        Err(e) => {
            let error = InputError::new(format!("cannot reach {}: {}", sent.url, error_chain(&e)));
            report_failure(args, &sent, None, None, &error);
            return Ok(exit::UNKNOWN);
        }
    };
    let status = answer.status().as_u16();
    let request_id = answer
        .headers()
        .get("opc-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // The gateway's own answers are small; a backend's may not be: 64 KiB is enough to tell.
    let answer_body = read_prefix(answer, 64 * 1024);
    let own_error = is_gateway_error(&answer_body, status);

    let fetched = match (&admin, args.log.is_empty(), &request_id) {
        (None, true, _) => Ok(None),
        (_, _, None) => Err(Failure::Unreachable(InputError::new(format!(
            "the answer ({status}) carries no opc-request-id: is {} a claimgate gateway?",
            sent.url
        )))),
        (Some(admin), _, Some(id)) => poll(|| records_from_admin(&client, admin, id)).map(Some),
        (None, false, Some(id)) => poll(|| records_from_logs(&args.log, id)).map(Some),
    };
    let records = match fetched {
        Ok(records) => records,
        Err(Failure::Unreachable(error)) => {
            report_failure(args, &sent, Some(status), request_id.as_deref(), &error);
            return Ok(exit::UNKNOWN);
        }
        Err(usage) => return Err(usage),
    };
    let code = exit_code(status, own_error, records.as_deref());
    report(args, &sent, status, request_id.as_deref(), records, code);
    Ok(code)
}

/// The exit code (SPEC "Settled details, second round", `claimgate try`): without records,
/// 0 for 2xx/3xx; with them, 1 when the gateway refused the request itself, 3 when it failed
/// itself with a 5xx, else 0 (the backend or a stock response answered).
fn exit_code(status: u16, own_error: bool, records: Option<&[Value]>) -> u8 {
    let Some(records) = records else {
        return if (200..400).contains(&status) {
            exit::OK
        } else {
            exit::DENIED
        };
    };
    let refused_in_records = records.iter().any(|r| {
        crate::logs::is_failure(r) && !r["data"]["code"].as_str().is_some_and(is_backend_code)
    });
    let backend_failed = records
        .iter()
        .any(|r| r["data"]["code"].as_str().is_some_and(is_backend_code));
    if REFUSALS.contains(&status) && (own_error || refused_in_records) {
        exit::DENIED
    } else if status >= 500 && (own_error || backend_failed) {
        exit::UNKNOWN
    } else {
        exit::OK
    }
}

fn is_backend_code(code: &str) -> bool {
    code.starts_with("httpBackend.")
}

/// Whether a body is the gateway's own error document, `{"message":"...","code":N}`.
fn is_gateway_error(body: &[u8], status: u16) -> bool {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    map.len() == 2 && map["message"].is_string() && map["code"].as_u64() == Some(u64::from(status))
}

/// How long an answer's body may take once its head has come: each read waits at most the
/// client's timeout, so without this a server dripping a byte a second could hold `try` for
/// hours.
const BODY_WAIT: Duration = Duration::from_secs(10);

/// The first `limit` bytes of an answer's body, or what came of them within [`BODY_WAIT`].
fn read_prefix(mut answer: reqwest::blocking::Response, limit: u64) -> Vec<u8> {
    use std::io::Read as _;
    let deadline = Instant::now() + BODY_WAIT;
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut body = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    while body.len() < limit && Instant::now() < deadline {
        match answer.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(read) => body.extend_from_slice(&chunk[..read.min(limit - body.len())]),
        }
    }
    body
}

/// Asks `fetch` for the request's records until its access record (written last) is among
/// them or [`RECORDS_WAIT`] has passed; what is there then is the answer.
fn poll(mut fetch: impl FnMut() -> Result<Vec<Value>, Failure>) -> Result<Vec<Value>, Failure> {
    let deadline = Instant::now() + RECORDS_WAIT;
    loop {
        let mut records = fetch()?;
        let complete = records
            .iter()
            .any(|r| r["type"].as_str().is_some_and(|t| t.ends_with(".access")));
        if complete || Instant::now() >= deadline {
            crate::logs::sort_by_time(&mut records);
            return Ok(records);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn records_from_logs(files: &[String], id: &str) -> Result<Vec<Value>, Failure> {
    let mut records = Vec::new();
    for file in files {
        records.extend(crate::logs::read_records(file, id).map_err(Failure::Unreachable)?);
    }
    Ok(records)
}

fn admin_url(admin: &reqwest::Url, path: &str) -> String {
    format!("{}{path}", admin.as_str().trim_end_matches('/'))
}

/// GETs an admin API document; any failure is the gateway's records being out of reach.
fn admin_get(
    client: &reqwest::blocking::Client,
    admin: &reqwest::Url,
    path: &str,
) -> Result<(u16, Value), Failure> {
    let url = admin_url(admin, path);
    let unreachable =
        |why: String| Failure::Unreachable(InputError::new(format!("cannot read {url}: {why}")));
    let answer = client
        .get(&url)
        .send()
        .map_err(|e| unreachable(error_chain(&e)))?;
    let status = answer.status().as_u16();
    let body = read_prefix(answer, 64 * 1024 * 1024);
    let document = serde_json::from_slice(&body)
        .map_err(|_| unreachable(format!("the answer ({status}) is not JSON")))?;
    Ok((status, document))
}

fn records_from_admin(
    client: &reqwest::blocking::Client,
    admin: &reqwest::Url,
    id: &str,
) -> Result<Vec<Value>, Failure> {
    let path = format!("/api/requests/{}", percent_encode(id));
    match admin_get(client, admin, &path)? {
        (200, document) => Ok(document["records"].as_array().cloned().unwrap_or_default()),
        // Not recorded yet (or never): polled again until the wait ends.
        (404, _) => Ok(Vec::new()),
        (status, document) => Err(Failure::Unreachable(InputError::new(format!(
            "cannot read {}: {status} {}",
            admin_url(admin, &path),
            document["error"].as_str().unwrap_or("")
        )))),
    }
}

/// Where the deployment serving `path` reads its token, from `/api/deployments` (the longest
/// matching path prefix).
fn token_place(
    client: &reqwest::blocking::Client,
    admin: &reqwest::Url,
    path: &str,
) -> Result<TokenPlace, Failure> {
    let (status, document) = admin_get(client, admin, "/api/deployments")?;
    if status != 200 {
        return Err(Failure::Unreachable(InputError::new(format!(
            "cannot read {}: {status}",
            admin_url(admin, "/api/deployments")
        ))));
    }
    let deployments = document["deployments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let serving = deployments
        .iter()
        .filter(|d| {
            d["pathPrefix"]
                .as_str()
                .is_some_and(|prefix| under_prefix(path, prefix))
        })
        .max_by_key(|d| d["pathPrefix"].as_str().map_or(0, str::len));
    let default = TokenPlace::Header {
        name: "Authorization".into(),
        scheme: Some("Bearer".into()),
    };
    let Some(token) = serving.map(|d| &d["token"]) else {
        return Ok(default);
    };
    Ok(match (token["header"].as_str(), token["query"].as_str()) {
        (Some(name), _) => TokenPlace::Header {
            name: name.to_owned(),
            scheme: token["scheme"].as_str().map(str::to_owned),
        },
        (None, Some(name)) => TokenPlace::Query {
            name: name.to_owned(),
        },
        _ => default,
    })
}

/// Whether `path` is under the deployment prefix `prefix` (segment-wise).
fn under_prefix(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The URL with the token parameter's value replaced.
fn redact_url(url: &reqwest::Url, secret: Option<&str>) -> String {
    // RFC 6750's parameter is a token wherever it comes from (a URL typed with it included),
    // as the gateway's own logs treat it.
    let is_secret = |name: &str| name == "access_token" || secret == Some(name);
    if !url.query_pairs().any(|(name, _)| is_secret(&name)) {
        return url.to_string();
    }
    let mut redacted = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(n, v)| {
            let v = if is_secret(&n) {
                "[redacted]".into()
            } else {
                v.into_owned()
            };
            (n.into_owned(), v)
        })
        .collect();
    redacted.query_pairs_mut().clear().extend_pairs(pairs);
    redacted.to_string()
}

/// An error with its causes (`reqwest` hides the useful part, e.g. "Connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The gateway, or its records, out of reach (exit 3): with `-o json` the usual document, its
/// `status` null when no answer came, and the `error`.
fn report_failure(
    args: &TryArgs,
    sent: &Sent,
    status: Option<u16>,
    request_id: Option<&str>,
    error: &InputError,
) {
    if args.output != Format::Json {
        if let Some(status) = status {
            outln!(
                "{} {} → {status}",
                Escaped(&sent.method),
                Escaped(&sent.url)
            );
        }
        report_error(error, false);
        return;
    }
    print_json(json!({
        "version": 1,
        "request": request_json(sent),
        "status": status,
        "requestId": request_id,
        "records": [],
        "diagnosis": [],
        "error": {"message": error.message, "details": error.details},
        "exit": exit::UNKNOWN,
    }));
}

fn request_json(sent: &Sent) -> Value {
    json!({
        "method": sent.method,
        "url": sent.url,
        "headers": sent.headers.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>(),
    })
}

fn report(
    args: &TryArgs,
    sent: &Sent,
    status: u16,
    request_id: Option<&str>,
    records: Option<Vec<Value>>,
    code: u8,
) {
    if args.output == Format::Json {
        let diagnosis = records.as_deref().map(crate::logs::diagnosis);
        print_json(json!({
            "version": 1,
            "request": request_json(sent),
            "status": status,
            "requestId": request_id,
            "records": records.unwrap_or_default(),
            "diagnosis": diagnosis.unwrap_or_default(),
            "exit": code,
        }));
        return;
    }
    let p = Paint(colour_enabled());
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let shown = format!("{status} {reason}");
    let shown = if (200..400).contains(&status) {
        p.green(&shown)
    } else {
        p.red(&shown)
    };
    outln!("{} {} → {shown}", Escaped(&sent.method), Escaped(&sent.url));
    if let Some(id) = request_id {
        outln!("opc-request-id {}", Escaped(id));
    }
    match &records {
        None => {
            outln!();
            outln!(
                "{}",
                p.dim("(give --admin URL or --log FILE to see the gateway's records and the diagnosis)")
            );
        }
        Some(records) if records.is_empty() => {
            outln!();
            outln!("no record of this request was found within 2 s");
        }
        Some(records) => {
            outln!();
            crate::logs::print_records(request_id.unwrap_or(""), records);
        }
    }
    outln!();
    let verdict = match code {
        exit::OK if records.is_some() => {
            "verified: the gateway let the request through to its backend"
        }
        exit::OK => "ok: 2xx/3xx",
        exit::DENIED if records.is_some() => "refused by the gateway itself",
        exit::DENIED => "not 2xx/3xx",
        _ => "the gateway failed to answer it (5xx of its own)",
    };
    outln!("{} (exit {code})", p.bold(verdict));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_records_only_2xx_and_3xx_exit_zero() {
        assert_eq!(exit_code(200, false, None), exit::OK);
        assert_eq!(exit_code(302, false, None), exit::OK);
        assert_eq!(exit_code(401, true, None), exit::DENIED);
        assert_eq!(exit_code(502, true, None), exit::DENIED);
    }

    #[test]
    fn a_backends_own_401_is_not_a_refusal_of_the_gateway() {
        assert_eq!(exit_code(401, false, Some(&[])), exit::OK);
        assert_eq!(exit_code(401, true, Some(&[])), exit::DENIED);
        let failure = json!({"data": {"code": "jwtAuthentication.authenticationFailed"}});
        assert_eq!(exit_code(401, false, Some(&[failure])), exit::DENIED);
    }

    #[test]
    fn the_gateways_own_5xx_exits_three_and_a_backends_zero() {
        assert_eq!(exit_code(502, true, Some(&[])), exit::UNKNOWN);
        let backend = json!({"data": {"code": "httpBackend.requestError"}});
        assert_eq!(exit_code(502, false, Some(&[backend])), exit::UNKNOWN);
        assert_eq!(exit_code(500, false, Some(&[])), exit::OK);
    }

    #[test]
    fn the_gateway_error_document_is_recognised_exactly() {
        assert!(is_gateway_error(
            br#"{"message":"Unauthorized","code":401}"#,
            401
        ));
        assert!(!is_gateway_error(
            br#"{"message":"Unauthorized","code":401}"#,
            403
        ));
        assert!(!is_gateway_error(
            br#"{"message":"x","code":401,"more":1}"#,
            401
        ));
        assert!(!is_gateway_error(b"Unauthorized", 401));
    }

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(under_prefix("/v1/orders", "/v1"));
        assert!(under_prefix("/v1", "/v1/"));
        assert!(!under_prefix("/v10/orders", "/v1"));
        assert!(under_prefix("/anything", "/"));
    }

    #[test]
    fn the_token_parameter_is_redacted_in_the_report() {
        let url = reqwest::Url::parse("http://h/p?a=1&access_token=SECRET").unwrap();
        let shown = redact_url(&url, Some("access_token"));
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("a=1"));
        // Typed into the URL rather than given with --token: redacted too.
        let shown = redact_url(&url, None);
        assert!(!shown.contains("SECRET"), "{shown}");
        let shown = redact_url(&url, Some("token"));
        assert!(!shown.contains("SECRET"), "{shown}");
        // A URL with no secret is shown as given.
        let plain = reqwest::Url::parse("http://h/p?q=a%20b").unwrap();
        assert_eq!(redact_url(&plain, None), "http://h/p?q=a%20b");
    }
}
