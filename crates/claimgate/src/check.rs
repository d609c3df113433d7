//! `claimgate check`: the verdict the gateway would give one request.

use crate::input::{
    load_deployment, parse_now, plural, read_file, read_token, InputError, DATA_LIMIT,
};
use crate::output::{colour_enabled, print_json, print_pretty_json, report_error, Paint};
use crate::{exit, Format};
use claimgate_config::{
    Authentication, Backend, Deployment, DynamicRouting, KeySource, SelectionKey, TokenLocation,
};
use claimgate_core::authorizer::FunctionOutcome;
use claimgate_core::{
    escape, evaluate_with, token_to_introspect, CheckId, Claims, Decision, Escaped, Explain,
    HeaderValues, Introspection, KeyMaterial, Matched, Outcome, RequestView, RoutingInput,
    RoutingJudgement, UnixTime, Unrouted, Verdict,
};
use claimgate_gateway::discovery::IntrospectError;
use claimgate_jose::{parse_jwks, JwksParse};
use serde_json::{json, Value};

#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// The deployment file (CreateDeploymentDetails, bare specification, or `oci ... deployment get` output).
    #[arg(long, value_name = "FILE", value_parser = crate::input::file_arg)]
    pub(crate) deployment: String,
    /// The request, as 'METHOD /full/path[?query]' or 'METHOD https://host/full/path[?query]'
    /// (the URL's host is the request's Host unless --host is given).
    #[arg(long, value_name = "'METHOD /path'")]
    pub(crate) request: String,
    /// The token: the token itself, @FILE, or - for stdin. Without it, the request carries none.
    #[arg(long, value_name = "TOKEN|@FILE|-")]
    pub(crate) token: Option<String>,
    /// The moment to judge at: seconds since 1970 or RFC 3339 (default: now).
    #[arg(long, value_name = "UNIX|RFC3339")]
    pub(crate) now: Option<String>,
    /// A recorded JWKS to use instead of fetching REMOTE_JWKS (or discovery's jwks_uri).
    #[arg(long, value_name = "FILE", value_parser = crate::input::file_arg)]
    pub(crate) jwks: Option<String>,
    /// A recorded RFC 7662 introspection answer (JSON) to use instead of calling the endpoint.
    #[arg(long, value_name = "FILE", value_parser = crate::input::file_arg)]
    pub(crate) introspection: Option<String>,
    /// Secrets file resolving the introspection client's clientSecretId.
    #[arg(long, value_name = "FILE", value_parser = crate::input::file_arg)]
    pub(crate) secrets: Option<String>,
    /// An extra request header, 'Name: value' (repeatable).
    #[arg(long = "header", value_name = "'Name: value'")]
    pub(crate) headers: Vec<String>,
    /// The Host the request is sent to.
    #[arg(long, value_name = "NAME")]
    pub(crate) host: Option<String>,
    /// A request body, as curl's --data: the text itself or @FILE. Its length declares
    /// Content-Length (unless a --header does), its text is request.body for an authorizer
    /// function that takes it; bodyValidation judges the
    /// Content-Type given with --header. `--header 'Content-Length: N'` or
    /// `--header 'Transfer-Encoding: chunked'` declare a body too.
    #[arg(long, value_name = "DATA|@FILE")]
    pub(crate) data: Option<String>,
    /// The path prefix of a bare specification (default /).
    #[arg(long, value_name = "PREFIX")]
    pub(crate) path_prefix: Option<String>,
    /// A host besides the discovery URL's own that may receive the client secret as an
    /// introspection_endpoint (repeatable).
    #[arg(long = "allow-endpoint", value_name = "HOST")]
    pub(crate) allow_endpoints: Vec<String>,
    /// Usage plans (OCI's UsagePlan resources): a file or a directory of *.json files
    /// (repeatable). With --subscribers, judges the deployment's requestPolicies.usagePlans.
    #[arg(long = "usage-plans", value_name = "FILE|DIR", value_parser = crate::input::file_arg)]
    pub(crate) usage_plans: Vec<String>,
    /// Subscribers (OCI's Subscriber resources): a file or a directory of *.json files
    /// (repeatable).
    #[arg(long = "subscribers", value_name = "FILE|DIR", value_parser = crate::input::file_arg)]
    pub(crate) subscribers: Vec<String>,
    /// The URL that invokes each OCI function the deployment names (a JSON object, function
    /// OCID -> URL): `check` calls the authorizer function there.
    #[arg(long = "functions", value_name = "FILE", value_parser = crate::input::file_arg)]
    pub(crate) functions: Option<String>,
    /// A recorded authorizer-function answer (its JSON body, judged as HTTP 200) to use instead
    /// of calling the function.
    #[arg(long = "function-response", value_name = "FILE", value_parser = crate::input::file_arg)]
    pub(crate) function_response: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub(crate) output: Format,
}

/// The request as the CLI describes it.
#[derive(Debug)]
pub(crate) struct CliRequest {
    method: String,
    path: String,
    query: Option<String>,
    headers: Vec<(String, String)>,
    /// `--data`'s text, read when an authorizer function takes `request.body`.
    body: Option<String>,
}

impl RequestView for CliRequest {
    fn body_text(&self) -> Option<&str> {
        self.body.as_deref()
    }
    fn method(&self) -> &str {
        &self.method
    }
    fn path(&self) -> &str {
        &self.path
    }
    fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }
    fn header(&self, name: &str) -> HeaderValues<'_> {
        let mut values = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name));
        match (values.next(), values.clone().count()) {
            (None, _) => HeaderValues::Absent,
            (Some((_, v)), 0) => HeaderValues::One(v),
            (Some(_), more) => HeaderValues::Many(more + 1),
        }
    }
    fn first_header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

fn parse_request(args: &CheckArgs, deployment: &Deployment) -> Result<CliRequest, InputError> {
    let (method, target) = args.request.trim().split_once(' ').ok_or_else(|| {
        InputError::new(format!(
            "--request '{}' must be 'METHOD /path', e.g. 'GET /v1/orders'",
            args.request
        ))
    })?;
    let (url_host, target) = split_url(target.trim());
    let target = target.as_ref();
    if !target.starts_with('/') {
        return Err(InputError::new(format!(
            "--request path '{target}' must start with '/'"
        )));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target.to_owned(), None),
    };
    let mut request = CliRequest {
        method: method.to_ascii_uppercase(),
        path,
        query,
        headers: Vec::new(),
        body: None,
    };
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| InputError::new(format!("--header '{header}' must be 'Name: value'")))?;
        request
            .headers
            .push((name.trim().to_owned(), value.trim().to_owned()));
    }
    if let Some(data) = &args.data {
        let length = match data.strip_prefix('@') {
            Some(path) => {
                let path = crate::input::strip_file_url(path);
                std::fs::metadata(path)
                    .ok()
                    .filter(std::fs::Metadata::is_file)
                    .ok_or_else(|| {
                        InputError::new(format!("--data '@{path}' is not a readable file"))
                    })?
                    .len()
            }
            None => data.len() as u64,
        };
        let declared = |name: &str| {
            request
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
        };
        if !declared("content-length") && !declared("transfer-encoding") {
            request
                .headers
                .push(("Content-Length".into(), length.to_string()));
        }
        if deployment.authentication.authorizer_reads_body() {
            let limit = claimgate_config::AUTHORIZER_BODY_LIMIT as u64;
            request.body = Some(match data.strip_prefix('@') {
                Some(path) => {
                    crate::input::read_text(path, "--data", limit).map_err(InputError::new)?
                }
                None => data.clone(),
            });
        }
    }
    // --host wins over the URL's host: one Host header, as a client sends.
    if let Some(host) = args.host.as_deref().or(url_host) {
        request.headers.push(("host".into(), host.to_owned()));
    }
    if let Some(arg) = &args.token {
        let token = read_token(arg)?;
        place_token(&mut request, deployment, token);
    }
    Ok(request)
}

/// A full URL as `--request` target (`https://host/path?q`, as copied from a browser or curl):
/// its host (user information dropped) and its path and query (`/` when it has no path); any
/// other target is returned as it is, with no host.
fn split_url(target: &str) -> (Option<&str>, std::borrow::Cow<'_, str>) {
    let scheme = ["https://", "http://"].into_iter().find(|scheme| {
        target
            .get(..scheme.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(scheme))
    });
    let Some(scheme) = scheme else {
        return (None, target.into());
    };
    let rest = &target[scheme.len()..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let path = rest[end..].split('#').next().unwrap_or("");
    if path.starts_with('/') {
        (Some(host), path.into())
    } else {
        // Only a query (or nothing) after the host: the path is `/`.
        (Some(host), format!("/{path}").into())
    }
}

/// Puts the token where the deployment's policy reads it.
fn place_token(request: &mut CliRequest, deployment: &Deployment, token: String) {
    let location = match &deployment.authentication {
        Authentication::Jwt(policy) => policy.location.clone(),
        // With dynamicAuthentication the first server's location (with a request.auth
        // selector every server reads the same one).
        Authentication::Dynamic(dynamic)
            if dynamic
                .servers
                .first()
                .and_then(|s| s.policy.jwt())
                .is_some() =>
        {
            dynamic.servers[0]
                .policy
                .jwt()
                .map(|p| p.location.clone())
                .unwrap_or(TokenLocation::Header {
                    name: "Authorization".into(),
                    scheme: Some("Bearer".into()),
                })
        }
        // A single-argument authorizer: the raw value, where the policy reads it.
        Authentication::Custom(policy) => match &policy.input {
            claimgate_config::AuthorizerInput::Single(location) => location.clone(),
            claimgate_config::AuthorizerInput::Multi(_) => TokenLocation::Header {
                name: "Authorization".into(),
                scheme: Some("Bearer".into()),
            },
        },
        _ => TokenLocation::Header {
            name: "Authorization".into(),
            scheme: Some("Bearer".into()),
        },
    };
    match location {
        TokenLocation::Header { name, scheme } => {
            request
                .headers
                .retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
            let value = match scheme {
                Some(scheme) => format!("{scheme} {token}"),
                None => token,
            };
            request.headers.push((name, value));
        }
        TokenLocation::Query { name } => {
            let pair = format!("{name}={token}");
            request.query = Some(match request.query.take() {
                Some(q) if !q.is_empty() => format!("{q}&{pair}"),
                _ => pair,
            });
        }
    }
}

/// Where the keys came from, for the report.
pub(crate) enum KeysFrom {
    Static,
    Recorded(String),
    Fetched(String),
    None,
}

pub(crate) fn run(args: &CheckArgs) -> u8 {
    let json_output = args.output == Format::Json;
    match run_inner(args) {
        Ok(code) => code,
        Err(error) => {
            report_error(&error, json_output);
            exit::USAGE
        }
    }
}

fn run_inner(args: &CheckArgs) -> Result<u8, InputError> {
    let (code, document) = judge(args, Source::Files)?;
    if let Some(document) = document {
        print_json(document);
    }
    Ok(code)
}

/// What a verdict is judged with: the files the command line names, or (the admin API's
/// `/api/check`) a deployment the gateway serves, the token given apart, and the key material
/// the gateway already holds.
pub(crate) enum Source<'a> {
    Files,
    Served {
        deployment: &'a Deployment,
        token: Option<String>,
        obtain: &'a dyn Fn(&Deployment, &CliRequest) -> Obtained,
    },
}

/// The verdict, printed as text, or with `-o json` returned as the document `check` prints.
pub(crate) fn judge(
    args: &CheckArgs,
    source: Source<'_>,
) -> Result<(u8, Option<Value>), InputError> {
    let loaded;
    let (deployment, mut notes) = match &source {
        Source::Files => {
            loaded = load_deployment(&args.deployment, args.path_prefix.as_deref())?;
            let notes: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
            (&loaded.deployment, notes)
        }
        Source::Served { deployment, .. } => (*deployment, Vec::new()),
    };
    if let Authentication::Unsupported { kind, reason } = &deployment.authentication {
        return Err(InputError::new(format!(
            "claimgate cannot evaluate {kind}: {reason}"
        )));
    }
    let now = parse_now(args.now.as_deref())?;
    let mut request = parse_request(args, deployment)?;
    let (obtained, function) = match source {
        Source::Files => {
            let functions = crate::input::read_functions(args.functions.as_deref())?;
            if let Some((_, warnings)) = &functions {
                notes.extend(warnings.iter().cloned());
            }
            // With a recorded answer, the authorizer is not called: only Functions backends
            // need URLs.
            notes.extend(
                crate::input::unmapped_functions(
                    deployment,
                    functions.as_ref().map(|(map, _)| map),
                )
                .iter()
                .map(ToString::to_string),
            );
            let functions = functions.map(|(map, _)| map).unwrap_or_default();
            let obtained = obtain(args, deployment, &request, &mut notes)?;
            let function = crate::check_function::obtain_answer(
                deployment,
                &request,
                &functions,
                args.function_response.as_deref(),
            )?;
            (obtained, function)
        }
        // The gateway serves no deployment with an unmapped function; the admin API never
        // calls one.
        Source::Served { token, obtain, .. } => {
            if let Some(token) = token {
                place_token(&mut request, deployment, token);
            }
            let function = crate::admin_api::function_not_called(deployment, &request);
            (obtain(deployment, &request), function)
        }
    };
    let keys_from = &obtained.keys_from;
    let material = match (&obtained.jwks, &obtained.unavailable) {
        (Some(parse), _) => KeyMaterial::Keys(&parse.keys),
        (None, Some(Unavailable::Discovery(reason))) => {
            KeyMaterial::DiscoveryUnavailable { reason }
        }
        (None, Some(Unavailable::Keys(reason))) => KeyMaterial::Unavailable { reason },
        (None, None) => KeyMaterial::Unavailable {
            reason: "no remote key set was loaded",
        },
    };
    let introspection = match &obtained.introspection {
        None => Introspection::NotDone,
        Some(Ok(answer)) => Introspection::Answer(answer),
        Some(Err(IntrospectError::Discovery(reason))) => {
            Introspection::DiscoveryUnavailable { reason }
        }
        Some(Err(IntrospectError::Introspection(reason))) => Introspection::Unavailable { reason },
    };
    let introspection = match function.as_ref().map(|f| &f.answer) {
        Some(Ok(answer)) => Introspection::Function(FunctionOutcome::Answer(answer)),
        Some(Err(error)) => Introspection::Function(FunctionOutcome::Unavailable(error)),
        None => introspection,
    };
    let mut verdict = evaluate_with(
        deployment,
        &request,
        material,
        introspection,
        now,
        None,
        Explain::Everything,
    );
    // Usage plans come after authentication and authorization, before the backend.
    let usage = judge_usage_plan(args, deployment, &request, &mut verdict, &mut notes)?;
    // A DYNAMIC_ROUTING_BACKEND chooses its backend after usage plans, as the gateway does.
    let routing = judge_routing(&mut verdict, deployment, &request, &usage);
    // What the gateway would call, with the values it would put there (or its 400).
    let backend_url = match &routing {
        Some((_, judged)) => judged.url.clone(),
        None => verdict.judge_backend_url(deployment, &request),
    };
    // No route has the path: both outputs list the routes there are, with a hint.
    let no_route =
        verdict.route.is_none() && matches!(verdict.unrouted, None | Some(Unrouted::NotFound));
    let code = if verdict.keys_unavailable() {
        exit::UNKNOWN
    } else if verdict.decision == Decision::Allow {
        exit::OK
    } else {
        exit::DENIED
    };
    if args.output == Format::Json {
        let mut doc = verdict.to_json();
        for (check, json) in verdict.checks.iter().zip(
            doc["checks"]
                .as_array_mut()
                .map(|a| a.iter_mut())
                .into_iter()
                .flatten(),
        ) {
            if let Some(fix) = check.fix() {
                json["fix"] = json!(with_offline_hint(fix, check, keys_from));
            }
        }
        doc["now"] = json!(now.0);
        doc["deployment"] = json!({"id": deployment.id, "displayName": deployment.display_name, "pathPrefix": deployment.path_prefix});
        doc["keys"] = json!(match &keys_from {
            KeysFrom::Static => json!({"source": "static"}),
            KeysFrom::Recorded(p) => json!({"source": "file", "path": p}),
            KeysFrom::Fetched(u) => json!({"source": "fetched", "uri": u}),
            KeysFrom::None => Value::Null,
        });
        if let Some(answer) = &obtained.introspection {
            doc["introspection"] = match answer {
                Ok(answer) => json!({"answer": answer.to_map()}),
                Err(error) => json!({"error": error.reason()}),
            };
        }
        if let Some(function) = &function {
            doc["function"] = function.to_json();
        }
        if let Some(url) = &backend_url {
            doc["backendUrl"] = json!(url);
        }
        if no_route {
            doc["routes"] = json!(deployment
                .routes
                .iter()
                .map(|r| json!({"methods": r.methods.names(), "path": full_path(deployment, r)}))
                .collect::<Vec<_>>());
            doc["hint"] = json!(prefix_hint(
                deployment,
                &request,
                args.path_prefix.is_some()
            ));
        }
        if let Some(json) = usage.to_json() {
            doc["usagePlan"] = json;
        }
        if let Some(event) = usage.event() {
            if let Some(events) = doc["events"].as_array_mut() {
                events.push(json!({"code": event.0, "level": "WARN", "message": event.1}));
            }
        }
        if let Some((dynamic, judged)) = &routing {
            doc["dynamicRouting"] = routing_json(dynamic, judged);
            let event = judged.choice.event(dynamic);
            if let Some(events) = doc["events"].as_array_mut() {
                events.push(
                    json!({"code": event.code, "level": event.level, "message": event.message}),
                );
            }
        }
        doc["warnings"] = json!(notes);
        return Ok((code, Some(doc)));
    } else {
        if let Some(answer) = &obtained.introspection {
            match answer {
                Ok(answer) => {
                    outln!("introspection answer (RFC 7662):");
                    print_pretty_json(&answer.to_map());
                    outln!();
                }
                Err(error) => outln!("introspection failed: {}\n", Escaped(error.reason())),
            }
        }
        if let Some(function) = &function {
            print_function(function);
        }
        print_text(
            &verdict,
            deployment,
            &request,
            now,
            keys_from,
            &usage,
            routing.as_ref().map(|(d, j)| (*d, j)),
            &notes,
        );
        if no_route {
            print_routes(deployment, &request, args.path_prefix.is_some());
        }
        if let Some(url) = &backend_url {
            outln!("  backend URL {}", Escaped(url));
        } else if let (Some(_), Some(Unrouted::PathRejected(why))) =
            (&verdict.route, &verdict.unrouted)
        {
            outln!("  backend URL refused with 400: {why}");
        }
    }
    Ok((code, None))
}

/// Why no key material could be had.
pub(crate) enum Unavailable {
    Keys(String),
    Discovery(String),
}

/// Key material and the introspection answer a verdict needs, and where they came from.
pub(crate) struct Obtained {
    pub(crate) jwks: Option<JwksParse>,
    pub(crate) keys_from: KeysFrom,
    pub(crate) unavailable: Option<Unavailable>,
    pub(crate) introspection: Option<Result<std::sync::Arc<Claims>, IntrospectError>>,
}

fn runtime() -> Result<tokio::runtime::Runtime, InputError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| InputError::new(format!("cannot start the HTTP client: {e}")))
}

/// Says which URL is fetched, before it is: the deployment file decides whom `check` calls.
fn announce(uri: &str) {
    eprintln!("fetching {uri}");
}

/// The client for identity-provider calls: 5 s per call, no redirects, bounded bodies.
fn provider_client() -> Result<claimgate_keys::ProviderClient, InputError> {
    claimgate_keys::ProviderClient::new(std::time::Duration::from_secs(5))
        .map_err(|e| InputError::new(e.to_string()))
}

fn read_recorded_jwks(path: &str) -> Result<JwksParse, InputError> {
    let bytes = read_file(path, "--jwks", DATA_LIMIT).map_err(InputError::new)?;
    parse_jwks(&bytes).map_err(|e| InputError::new(format!("--jwks '{path}': {e}")))
}

fn obtain(
    args: &CheckArgs,
    deployment: &Deployment,
    request: &CliRequest,
    notes: &mut Vec<String>,
) -> Result<Obtained, InputError> {
    // With dynamicAuthentication, --jwks / --introspection stand in for the selected server's.
    let policy = claimgate_core::jwt_policy_for(deployment, request);
    let keys = match policy {
        Some(policy) => &policy.keys,
        None => {
            return Ok(Obtained {
                jwks: None,
                keys_from: KeysFrom::None,
                unavailable: None,
                introspection: None,
            })
        }
    };
    let mut obtained = Obtained {
        jwks: None,
        keys_from: KeysFrom::Static,
        unavailable: None,
        introspection: None,
    };
    let result = match keys {
        KeySource::Static(_) => return Ok(obtained),
        KeySource::RemoteJwks(remote) => match &args.jwks {
            Some(path) => {
                obtained.keys_from = KeysFrom::Recorded(path.clone());
                Ok(read_recorded_jwks(path)?)
            }
            None => {
                obtained.keys_from = KeysFrom::Fetched(remote.uri.clone());
                let client = provider_client()?;
                announce(&remote.uri);
                runtime()?
                    .block_on(client.jwks(&remote.uri, remote.ssl_verify_disabled))
                    .map_err(|e| Unavailable::Keys(format!("fetching {} failed: {e}", remote.uri)))
            }
        },
        KeySource::Discovery(config) => {
            if let Some(token) = token_to_introspect(deployment, request) {
                obtained.keys_from = KeysFrom::None;
                let answer = match &args.introspection {
                    Some(path) => read_recorded_answer(path)?,
                    None => introspect_live(
                        config,
                        token,
                        args.secrets.as_deref(),
                        &args.allow_endpoints,
                    )?,
                };
                obtained.introspection = Some(answer.and_then(|answer| {
                    Claims::from_map(&answer)
                        .map(std::sync::Arc::new)
                        .ok_or_else(|| {
                            IntrospectError::Introspection(
                                "the introspection answer is too large".to_owned(),
                            )
                        })
                }));
                return Ok(obtained);
            }
            match &args.jwks {
                Some(path) => {
                    obtained.keys_from = KeysFrom::Recorded(path.clone());
                    Ok(read_recorded_jwks(path)?)
                }
                None => {
                    obtained.keys_from = KeysFrom::Fetched(config.uri.clone());
                    let client = provider_client()?;
                    runtime()?.block_on(async {
                        announce(&config.uri);
                        let document = client
                            .discovery(&config.uri, config.ssl_verify_disabled)
                            .await
                            .map_err(|e| {
                                Unavailable::Discovery(format!(
                                    "fetching {} failed: {e}",
                                    config.uri
                                ))
                            })?;
                        let jwks_uri = document.jwks_uri.ok_or_else(|| {
                            Unavailable::Discovery(format!(
                                "the discovery document at {} has no jwks_uri",
                                config.uri
                            ))
                        })?;
                        announce(&jwks_uri);
                        client
                            .jwks(&jwks_uri, config.ssl_verify_disabled)
                            .await
                            .map_err(|e| {
                                Unavailable::Keys(format!("fetching {jwks_uri} failed: {e}"))
                            })
                    })
                }
            }
        }
    };
    match result {
        Ok(parsed) => {
            for skipped in &parsed.skipped {
                notes.push(format!(
                    "key set: key #{} (kid {}) skipped: {}",
                    skipped.index,
                    skipped
                        .kid
                        .as_deref()
                        .map(|k| format!("'{k}'"))
                        .unwrap_or_else(|| "none".into()),
                    skipped.reason
                ));
            }
            obtained.jwks = Some(parsed);
        }
        Err(unavailable) => obtained.unavailable = Some(unavailable),
    }
    Ok(obtained)
}

/// A recorded introspection answer: a JSON object (strict), judged as the endpoint's would be.
fn read_recorded_answer(
    path: &str,
) -> Result<Result<serde_json::Map<String, Value>, IntrospectError>, InputError> {
    let bytes = read_file(path, "--introspection", DATA_LIMIT).map_err(InputError::new)?;
    claimgate_jose::json::parse_object(&bytes, 16)
        .map(Ok)
        .map_err(|e| InputError::new(format!("--introspection '{path}' is {e}")))
}

/// Calls the policy's introspection endpoint (through its discovery document), if the client
/// secret may go there (SPEC: the discovery URL's host, a scheme as strong, or `--allow-endpoint`).
pub(crate) fn introspect_live(
    config: &claimgate_config::RemoteDiscovery,
    token: &str,
    secrets_file: Option<&str>,
    allowed_endpoints: &[String],
) -> Result<Result<serde_json::Map<String, Value>, IntrospectError>, InputError> {
    let Some(secrets_file) = secrets_file else {
        return Err(InputError::new(format!(
            "introspection needs the client secret '{}': pass --secrets FILE (or a recorded answer with --introspection FILE)",
            config.client_secret.secret_id
        )));
    };
    let text =
        crate::input::read_text(secrets_file, "--secrets", DATA_LIMIT).map_err(InputError::new)?;
    let secrets = claimgate_config::Secrets::parse(&text)
        .map_err(|e| InputError::new(format!("--secrets '{secrets_file}': {e}")))?;
    let secret = secrets
        .resolve(
            &config.client_secret.secret_id,
            config.client_secret.version,
        )
        .map_err(InputError::new)?
        .to_owned();
    let client = provider_client()?;
    Ok(runtime()?.block_on(async {
        announce(&config.uri);
        let document = client
            .discovery(&config.uri, config.ssl_verify_disabled)
            .await
            .map_err(|e| {
                IntrospectError::Discovery(format!("fetching {} failed: {e}", config.uri))
            })?;
        let endpoint = document.introspection_endpoint.clone().ok_or_else(|| {
            IntrospectError::Discovery(format!(
                "the discovery document at {} has no introspection_endpoint",
                config.uri
            ))
        })?;
        claimgate_keys::secret_endpoint_allowed(&config.uri, &endpoint, allowed_endpoints)
            .map_err(IntrospectError::Discovery)?;
        announce(&endpoint);
        client
            .introspect(
                &endpoint,
                token,
                &config.client_id,
                &secret,
                document.introspection_uses_post(),
                config.ssl_verify_disabled,
            )
            .await
            .map_err(|e| {
                IntrospectError::Introspection(format!("introspection at {endpoint} failed: {e}"))
            })
    }))
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        415 => "Unsupported Media Type",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        _ => "",
    }
}

/// A value as one line of JSON, escaped for the terminal (serde leaves DEL, C1 and the
/// bidirectional controls raw).
fn compact(value: &Value) -> String {
    escape(&serde_json::to_string(value).unwrap_or_default()).into_owned()
}

#[allow(clippy::too_many_arguments)]
fn print_text(
    verdict: &Verdict,
    deployment: &Deployment,
    request: &CliRequest,
    now: UnixTime,
    keys_from: &KeysFrom,
    usage: &UsageJudged,
    routing: Option<(&DynamicRouting, &RoutingJudgement)>,
    notes: &[String],
) {
    let p = Paint(colour_enabled());
    let chosen = match routing {
        Some((dynamic, judged)) => judged.choice.rule(dynamic).map(|r| &r.backend),
        None => verdict
            .route
            .as_ref()
            .and_then(|r| deployment.routes.get(r.index))
            .map(|r| &r.backend),
    };
    let status = match (verdict.status, chosen) {
        (Some(s), _) => format!("{s} {}", reason_phrase(s)).trim_end().to_owned(),
        (None, Some(Backend::Functions(_))) => "forwarded to the function".to_owned(),
        (None, _) => "forwarded to the HTTP backend".to_owned(),
    };
    let headline = match verdict.decision {
        Decision::Allow => p.green(&format!("ALLOW  {status}")),
        Decision::Deny => p.red(&format!("DENY  {status}")),
    };
    outln!("{headline}");
    let target = match &request.query {
        Some(q) => format!(
            "{}?{}",
            request.path,
            redact_query(q, |name| claimgate_core::is_credential_parameter(
                deployment, name
            ))
        ),
        None => request.path.clone(),
    };
    outln!(
        "  request     {} {}",
        Escaped(&request.method),
        Escaped(&target)
    );
    if let Ok(normal) = claimgate_core::path::normalize(&request.path) {
        if normal != request.path {
            outln!(
                "  path        {} (normalised, as the gateway routes and forwards it)",
                Escaped(&normal)
            );
        }
    }
    match (&verdict.route, &verdict.unrouted) {
        (Some(route), _) => {
            let backend = match deployment.routes.get(route.index).map(|r| &r.backend) {
                Some(Backend::Dynamic(d)) => format!(
                    "dynamic routing on {} ({} rule{})",
                    Escaped(&d.selector.to_string()),
                    d.rules.len(),
                    plural(d.rules.len())
                ),
                Some(backend) => backend_text(backend),
                None => String::new(),
            };
            outln!(
                "  route       {} (routes[{}], prefix {}, methods {}) → {backend}",
                Escaped(&route.path),
                route.index,
                Escaped(&route.path_prefix),
                route.methods.join(",")
            );
        }
        (None, Some(Unrouted::PathRejected(why))) => {
            outln!("  route       none: the path is refused before routing ({why})")
        }
        (None, Some(Unrouted::MethodNotAllowed { allow })) => {
            outln!(
                "  route       a route matches the path but not {}; allowed: {}",
                Escaped(&request.method),
                allow.join(", ")
            )
        }
        _ => outln!(
            "  route       none matches (prefix {})",
            Escaped(&deployment.path_prefix)
        ),
    }
    if let Some((dynamic, judged)) = routing {
        print_routing(dynamic, judged);
    }
    if let Some(selection) = &verdict.selection {
        let value = match &selection.value {
            Some(value) => format!("'{}'", Escaped(value)),
            None => "(absent)".to_owned(),
        };
        let why = match selection.matched {
            claimgate_core::Matched::AnyOf => "matched its ANY_OF key".to_owned(),
            claimgate_core::Matched::Wildcard => "matched its WILDCARD key".to_owned(),
            claimgate_core::Matched::Default => "no key matched; the default server".to_owned(),
            claimgate_core::Matched::None => format!(
                "no key matched and no server is the default; keys tried: {}",
                Escaped(&selection.keys_tried.join(", "))
            ),
        };
        outln!(
            "  server      {} ({} = {value}: {why})",
            Escaped(selection.server_name.as_deref().unwrap_or("none")),
            Escaped(&selection.selector)
        );
    }
    let policy = match &deployment.authentication {
        Authentication::Jwt(policy) => Some(&**policy),
        Authentication::Dynamic(dynamic) => verdict
            .selection
            .as_ref()
            .and_then(|s| s.server)
            .and_then(|i| dynamic.servers[i].policy.jwt()),
        _ => None,
    };
    let custom = match &deployment.authentication {
        Authentication::Custom(policy) => Some(&**policy),
        Authentication::Dynamic(dynamic) => verdict
            .selection
            .as_ref()
            .and_then(|s| s.server)
            .and_then(|i| match &dynamic.servers[i].policy {
                claimgate_config::ServerPolicy::Custom(policy) => Some(policy),
                claimgate_config::ServerPolicy::Jwt(_) => None,
            }),
        _ => None,
    };
    if let Some(custom) = custom {
        let input = match &custom.input {
            claimgate_config::AuthorizerInput::Single(location) => {
                format!("the token in {location}")
            }
            claimgate_config::AuthorizerInput::Multi(arguments) => arguments
                .iter()
                .map(|(name, v)| match &v.key {
                    Some(key) => format!("{name} = {}[{key}]", v.table.name()),
                    None => format!("{name} = {}", v.table.name()),
                })
                .collect::<Vec<_>>()
                .join(", "),
        };
        outln!(
            "  policy      CUSTOM_AUTHENTICATION, function {}, given {}",
            Escaped(&custom.function_id),
            Escaped(&input)
        );
    }
    if let Some(policy) = policy {
        let flavor = match policy.flavor {
            claimgate_config::AuthFlavor::JwtAuthentication => "JWT_AUTHENTICATION",
            claimgate_config::AuthFlavor::TokenAuthentication => "TOKEN_AUTHENTICATION",
            claimgate_config::AuthFlavor::CustomAuthentication => "CUSTOM_AUTHENTICATION",
        };
        let keys = match keys_from {
            KeysFrom::Static => "static keys".to_owned(),
            KeysFrom::Recorded(path) => format!("keys from {}", Escaped(path)),
            KeysFrom::Fetched(uri) => format!("keys fetched from {}", Escaped(uri)),
            KeysFrom::None => String::new(),
        };
        outln!(
            "  policy      {flavor}, token in {}, {keys}",
            Escaped(&policy.location.to_string())
        );
    }
    outln!("  evaluated   {now}");
    outln!();
    let width = verdict
        .checks
        .iter()
        .map(|c| escape(&c.id.to_string()).chars().count())
        .max()
        .unwrap_or(6)
        .max(if matches!(usage, UsageJudged::NoPolicy) {
            9
        } else {
            USAGE_LABEL.len()
        });
    for check in &verdict.checks {
        let id = format!("{:<width$}", escape(&check.id.to_string()));
        let unverified = if check.unverified {
            p.yellow(" (unverified)")
        } else if matches!(
            check.failure(),
            Some(claimgate_core::Failure::Validation {
                mode: claimgate_config::ValidationMode::Permissive,
                ..
            })
        ) {
            p.yellow(" (PERMISSIVE: logged, the request is served)")
        } else {
            String::new()
        };
        match &check.outcome {
            Outcome::Pass(note) => {
                outln!("  {} {id}  {}{unverified}", p.green("pass"), Escaped(note))
            }
            Outcome::Skip(why) => outln!(
                "  {} {}",
                p.dim("skip"),
                p.dim(&format!("{id}  {}", Escaped(why)))
            ),
            Outcome::Fail(_) => {
                outln!(
                    "  {} {id}  {}{unverified}",
                    p.red("FAIL"),
                    Escaped(&check.message().unwrap_or_default())
                );
                let pad = " ".repeat(width + 9);
                if let Some(expected) = &check.expected {
                    outln!("{pad}expected  {}", compact(expected));
                }
                match (&check.actual, &check.id) {
                    (Some(actual), id) => {
                        outln!("{pad}actual    {}{}", compact(actual), as_utc(id, actual))
                    }
                    (
                        None,
                        CheckId::Exp
                        | CheckId::Iss
                        | CheckId::Aud
                        | CheckId::Claim(_)
                        | CheckId::Scope,
                    ) => {
                        outln!("{pad}actual    (absent)")
                    }
                    _ => {}
                }
                if let Some(setting) = &check.setting {
                    outln!("{pad}policy    {}", Escaped(setting));
                }
                if let Some(fix) = check.fix() {
                    let fix = with_offline_hint(fix, check, keys_from);
                    outln!("{pad}{}       {}", p.bold("fix"), Escaped(&fix));
                }
            }
        }
    }
    print_usage(usage, width, &p);
    if verdict.checks.iter().any(|c| c.unverified) {
        outln!();
        outln!("  (unverified) = judged on claims whose signature did not verify; shown so every mismatch is visible at once.");
    }
    let events = verdict.events();
    let usage_event = usage.event();
    if !events.is_empty() || usage_event.is_some() || routing.is_some() {
        outln!();
        outln!("execution log (what the gateway would record):");
        for event in events {
            outln!(
                "  {:<5} {}  {}",
                event.level,
                Escaped(&event.code),
                Escaped(&event.message)
            );
        }
        if let Some((code, message)) = usage_event {
            outln!("  {:<5} {}  {}", "WARN", code, Escaped(message));
        }
        if let Some((dynamic, judged)) = routing {
            let event = judged.choice.event(dynamic);
            outln!(
                "  {:<5} {}  {}",
                event.level,
                Escaped(&event.code),
                Escaped(&event.message)
            );
        }
    }
    if !notes.is_empty() {
        eprintln!();
        eprintln!("{} warning{}:", notes.len(), plural(notes.len()));
        for note in notes {
            eprintln!("  {}", Escaped(note));
        }
    }
}

/// A key set `check` could not fetch: the fix also says how to judge without the network.
fn with_offline_hint(fix: String, check: &claimgate_core::Check, keys_from: &KeysFrom) -> String {
    let unreachable = matches!(
        check.failure(),
        Some(
            claimgate_core::Failure::KeysUnavailable { .. }
                | claimgate_core::Failure::DiscoveryUnavailable { .. }
        )
    );
    if unreachable && matches!(keys_from, KeysFrom::Fetched(_)) {
        format!("{fix} To check offline, give the key set as a file: --jwks FILE.")
    } else {
        fix
    }
}

/// A route's path as requests reach it: the deployment's prefix, then the route's template.
fn full_path(deployment: &Deployment, route: &claimgate_config::Route) -> String {
    format!(
        "{}{}",
        deployment.path_prefix.trim_end_matches('/'),
        route.path.as_str()
    )
}

/// The prefix under which the request's path would reach a route: the request's segments
/// before the last ones a route (without `{name*}`) matches.
fn prefix_that_matches<'d>(
    deployment: &'d Deployment,
    path: &str,
) -> Option<(String, &'d claimgate_config::Route)> {
    use claimgate_config::PathSegment;
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    deployment.routes.iter().find_map(|route| {
        let template = route.path.segments();
        if template.is_empty()
            || segments.len() <= template.len()
            || template
                .iter()
                .any(|s| matches!(s, PathSegment::Wildcard(_)))
        {
            return None;
        }
        let split = segments.len() - template.len();
        let tail_matches = template
            .iter()
            .zip(&segments[split..])
            .all(|(t, s)| match t {
                PathSegment::Literal(l) => l == s,
                _ => !s.is_empty(),
            });
        tail_matches.then(|| (format!("/{}", segments[..split].join("/")), route))
    })
}

/// Why a path reaches no route, when the usual cause shows: a bare specification checked
/// without the prefix it is deployed under, or a request under another prefix.
fn prefix_hint(
    deployment: &Deployment,
    request: &CliRequest,
    prefix_given: bool,
) -> Option<String> {
    let bare = deployment.path_prefix == "/" && !prefix_given;
    match prefix_that_matches(deployment, &request.path) {
        Some((prefix, route)) if bare || prefix_given => Some(format!(
            "with --path-prefix {prefix} the path matches {} (a bare specification has no prefix of its own)",
            route.path.as_str()
        )),
        Some((prefix, route)) => Some(format!(
            "the path would match {} under the prefix {prefix}, but the deployment's pathPrefix is {}",
            route.path.as_str(),
            deployment.path_prefix
        )),
        None if bare => Some(
            "a bare specification is checked under / : if it is deployed under a prefix, give it with --path-prefix PREFIX".to_owned(),
        ),
        None => None,
    }
}

/// After the skipped checks of a request no route matches: the routes there are, and a hint.
fn print_routes(deployment: &Deployment, request: &CliRequest, prefix_given: bool) {
    let p = Paint(colour_enabled());
    outln!();
    outln!(
        "no route matches {}; the deployment's routes:",
        Escaped(&request.path)
    );
    for route in &deployment.routes {
        outln!(
            "  {:<7} {}",
            route.methods.names().join(","),
            Escaped(&full_path(deployment, route))
        );
    }
    if let Some(hint) = prefix_hint(deployment, request, prefix_given) {
        outln!("{}   {}", p.bold("hint"), Escaped(&hint));
    }
}

/// ` (2026-11-28T16:27:04Z)` after a time claim's seconds (`exp`, `nbf`, `iat`), so a reader
/// need not convert the epoch; empty for any other value.
fn as_utc(id: &CheckId, value: &Value) -> String {
    let time_claim = match id {
        CheckId::Exp | CheckId::Nbf => true,
        CheckId::Claim(name) => matches!(name.as_str(), "exp" | "nbf" | "iat"),
        _ => false,
    };
    match value.as_i64() {
        Some(seconds) if time_claim => format!(" ({})", UnixTime(seconds)),
        _ => String::new(),
    }
}

/// What `check` says of the authorizer function's call before the checks.
fn print_function(function: &crate::check_function::FunctionCall) {
    use crate::check_function::Source;
    match &function.source {
        Source::Recorded(path) => outln!(
            "authorizer function {} (answer recorded in {}), sent:",
            Escaped(&function.function_id),
            Escaped(path)
        ),
        Source::Called(url) if !url.is_empty() => outln!(
            "authorizer function {} at {}, sent:",
            Escaped(&function.function_id),
            Escaped(url)
        ),
        Source::Called(_) => outln!(
            "authorizer function {}, would be sent:",
            Escaped(&function.function_id)
        ),
    }
    print_pretty_json(&function.input);
    match (&function.answer, &function.body) {
        (Ok(answer), Some(body)) => {
            outln!("it answered HTTP {}:", answer.status);
            print_pretty_json(body);
        }
        (Ok(answer), None) => outln!("it answered HTTP {} (no JSON body)", answer.status),
        (Err(error), _) => outln!("no usable answer: {}", Escaped(&error.reason)),
    }
    outln!();
}

/// Query values may hold a token; show names only (always for `credentials`).
fn redact_query(query: &str, is_credential: impl Fn(&str) -> bool) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_credential(name) => format!("{name}=[redacted]"),
            Some((name, value)) if value.len() > 24 => format!("{name}=…"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The label of the usage-plan line among the checks.
const USAGE_LABEL: &str = "usage plan";

/// What `check` says about the deployment's usage plans (SPEC "Usage plans and subscribers").
/// Never holds the client token: only where it was read and the client's name.
enum UsageJudged {
    /// The deployment has no `usagePlans`.
    NoPolicy,
    /// It has, but no `--usage-plans`/`--subscribers` were given.
    NoFiles,
    /// The request is refused before usage plans (they count nothing for it).
    NotReached,
    Entitled {
        text: String,
        json: Value,
    },
    Refused {
        code: &'static str,
        reason: String,
        fix: String,
    },
}

/// A route's `DYNAMIC_ROUTING_BACKEND` and the rule the gateway would choose (see
/// [`Verdict::judge_routing`]); `None` for other routes and refused requests.
fn judge_routing<'d>(
    verdict: &mut Verdict,
    deployment: &'d Deployment,
    request: &CliRequest,
    usage: &UsageJudged,
) -> Option<(&'d DynamicRouting, RoutingJudgement)> {
    let route = verdict.route.as_ref()?;
    let Backend::Dynamic(dynamic) = &deployment.routes.get(route.index)?.backend else {
        return None;
    };
    let params = route.params.clone();
    let auth = verdict.claims.clone();
    let input = RoutingInput {
        request,
        params: &params,
        auth: auth.as_deref(),
        usage_plan: usage.plan_id(),
        client_cert: None,
    };
    let judged = verdict.judge_routing(deployment, &input)?;
    Some((dynamic, judged))
}

/// A backend in words: `HTTP backend <url>`, `stock response 200`, `function <ocid>`.
fn backend_text(backend: &Backend) -> String {
    match backend {
        Backend::Stock(s) => format!("stock response {}", s.status),
        Backend::Http(h) => format!("HTTP backend {}", Escaped(&h.url)),
        Backend::Functions(f) => format!("function {}", Escaped(&f.function_id)),
        other => escape(other.kind()).into_owned(),
    }
}

/// How a selection key matched, in words.
fn matched_text(matched: Matched) -> &'static str {
    match matched {
        Matched::AnyOf => "matched its ANY_OF key",
        Matched::Wildcard => "matched its WILDCARD key",
        Matched::Default => "no key matched; the default rule",
        Matched::None => "no key matched and no rule is the default",
    }
}

/// The `backend` line of a dynamically routed request: the rule, why, and the backend chosen.
fn print_routing(dynamic: &DynamicRouting, judged: &RoutingJudgement) {
    let choice = &judged.choice;
    let selector = dynamic.selector.to_string();
    let value = format!("'{}'", Escaped(&choice.value));
    match choice.rule(dynamic) {
        Some(rule) => {
            let backend = match (&rule.backend, &judged.url, &judged.url_rejected) {
                (Backend::Http(_), Some(url), _) => format!("HTTP backend {}", Escaped(url)),
                (Backend::Http(h), None, Some(why)) => {
                    format!("HTTP backend {}, refused with 400: {why}", Escaped(&h.url))
                }
                (backend, _, _) => backend_text(backend),
            };
            outln!(
                "  backend     rule '{}' ({} = {value}: {}) → {backend}",
                Escaped(&rule.name),
                Escaped(&selector),
                matched_text(choice.matched)
            );
        }
        None => {
            let keys: Vec<&str> = dynamic
                .rules
                .iter()
                .flat_map(|r| match &r.key {
                    SelectionKey::AnyOf(values) => values.iter().map(String::as_str).collect(),
                    SelectionKey::Wildcard(expression) => vec![expression.as_str()],
                })
                .collect();
            outln!(
                "  backend     none ({} = {value}: {}; keys tried: {}) → {}",
                Escaped(&selector),
                matched_text(choice.matched),
                Escaped(&keys.join(", ")),
                claimgate_core::NO_RULE_STATUS
            );
        }
    }
}

/// `check`'s `"dynamicRouting"`: the selector and its value, the rule chosen (`null` when none)
/// and how, and the backend chosen (`null` when none: the gateway answers 404).
fn routing_json(dynamic: &DynamicRouting, judged: &RoutingJudgement) -> Value {
    let choice = &judged.choice;
    let rule = choice.rule(dynamic);
    let matched = match choice.matched {
        Matched::AnyOf => json!("ANY_OF"),
        Matched::Wildcard => json!("WILDCARD"),
        Matched::Default => json!("DEFAULT"),
        Matched::None => Value::Null,
    };
    let backend = rule.map(|r| {
        let mut backend = json!({"type": r.backend.kind()});
        match &r.backend {
            Backend::Http(h) => {
                backend["url"] = json!(judged.url.as_deref().unwrap_or(&h.url));
                if let Some(why) = judged.url_rejected {
                    backend["refused"] = json!({"status": 400, "reason": why.reason()});
                }
            }
            Backend::Stock(s) => backend["status"] = json!(s.status),
            Backend::Functions(f) => backend["functionId"] = json!(f.function_id),
            _ => {}
        }
        backend
    });
    json!({
        "selector": dynamic.selector.to_string(),
        "value": choice.value,
        "rule": rule.map(|r| r.name.as_str()),
        "matched": matched,
        "backend": backend,
    })
}

impl UsageJudged {
    /// The plan's OCID for `request.usage_plan[id]`, when the request is entitled.
    fn plan_id(&self) -> Option<&str> {
        match self {
            Self::Entitled { json, .. } => json["plan"]["id"].as_str(),
            _ => None,
        }
    }

    /// `"usagePlan"`: only when the plans were judged.
    fn to_json(&self) -> Option<Value> {
        match self {
            Self::Entitled { json, .. } => Some(json.clone()),
            Self::Refused { code, reason, .. } => Some(json!({"refused": {
                "status": claimgate_core::USAGE_PLAN_REFUSED_STATUS,
                "code": code,
                "reason": reason,
            }})),
            _ => None,
        }
    }

    /// The execution-log record of a refusal (code, message).
    fn event(&self) -> Option<(&'static str, &str)> {
        match self {
            Self::Refused { code, reason, .. } => Some((code, reason)),
            _ => None,
        }
    }
}

/// Resolves the usage plan a request allowed so far would be counted under, or its 403 (which
/// then becomes the verdict). Counters are the gateway's: `check` never answers 429.
fn judge_usage_plan(
    args: &CheckArgs,
    deployment: &Deployment,
    request: &CliRequest,
    verdict: &mut Verdict,
    notes: &mut Vec<String>,
) -> Result<UsageJudged, InputError> {
    let given = !args.usage_plans.is_empty() || !args.subscribers.is_empty();
    let Some(policy) = &deployment.usage_plans else {
        if given {
            notes.push(
                "--usage-plans and --subscribers are ignored: the deployment has no requestPolicies.usagePlans".to_owned(),
            );
        }
        return Ok(UsageJudged::NoPolicy);
    };
    if !given {
        notes.push(
            "the usage plan is not judged: the deployment has requestPolicies.usagePlans; give --usage-plans FILE and --subscribers FILE".to_owned(),
        );
        return Ok(UsageJudged::NoFiles);
    }
    if args.usage_plans.is_empty() || args.subscribers.is_empty() {
        return Err(InputError::new(
            "--usage-plans and --subscribers go together: a client token is found through the subscribers, and their plans in the usage plan files",
        ));
    }
    let loaded = crate::subscriptions::load(&args.usage_plans, &args.subscribers)?;
    notes.extend(loaded.warnings);
    // Usage plans come before request validation: a request only its validations refuse is
    // counted (and may be refused with 403 first).
    let Some(route) = verdict.route.as_ref().filter(|_| verdict.passed_access()) else {
        return Ok(UsageJudged::NotReached);
    };
    let mut found = None;
    let claims = verdict.claims.clone();
    let decision = claimgate_core::resolve_usage_plan(
        policy,
        &loaded.subscriptions,
        &deployment.id,
        |location| {
            let value = claimgate_core::context_value(
                location,
                &route.params,
                claims.as_deref(),
                request.query(),
                |name| request.first_header(name),
            );
            if found.is_none() && !value.is_empty() {
                found = Some(location.clone());
            }
            value
        },
    );
    let judged = match decision {
        claimgate_core::UsagePlanDecision::Entitled(m) => {
            let limits = format!(
                "{}, {}",
                match m.entitlement.rate_limit {
                    Some(rate) => format!("rate limit {rate}/s"),
                    None => "no rate limit".to_owned(),
                },
                match &m.entitlement.quota {
                    Some(q) => format!(
                        "quota {} per {} ({})",
                        q.value,
                        q.unit.name(),
                        on_breach(q.on_breach)
                    ),
                    None => "no quota".to_owned(),
                }
            );
            UsageJudged::Entitled {
                text: format!(
                    "subscriber {} ({}), client {} (token in {}), plan {} ({}), entitlement {}: {limits}",
                    m.subscriber.name,
                    m.subscriber.id,
                    m.client.name,
                    m.location,
                    m.plan.name,
                    m.plan.id,
                    m.entitlement.name
                ),
                json: json!({
                    "subscriber": {"id": m.subscriber.id, "name": m.subscriber.name},
                    "client": m.client.name,
                    "plan": {"id": m.plan.id, "name": m.plan.name},
                    "entitlement": m.entitlement.name,
                    "rateLimit": m.entitlement.rate_limit.map(|value| json!({"value": value, "unit": "SECOND"})),
                    "quota": m.entitlement.quota.map(|q| json!({
                        "value": q.value,
                        "unit": q.unit.name(),
                        "resetPolicy": "CALENDAR",
                        "operationOnBreach": on_breach(q.on_breach),
                    })),
                }),
            }
        }
        claimgate_core::UsagePlanDecision::Refused(refusal) => {
            let fix = match (&found, &refusal.subscriber) {
                (None, _) => format!(
                    "Send a subscriber's client token in {}.",
                    policy
                        .token_locations
                        .iter()
                        .map(describe_location)
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
                (Some(location), None) => format!(
                    "The client token in {location} belongs to no subscriber: check the clients' tokens in the --subscribers files (they match exactly, case included)."
                ),
                (Some(_), Some((_, name))) => format!(
                    "Add an entitlement targeting the deployment '{}' to one of subscriber '{name}''s usage plans, or subscribe '{name}' to a plan that has one.",
                    deployment.id
                ),
            };
            verdict.decision = Decision::Deny;
            verdict.status = Some(claimgate_core::USAGE_PLAN_REFUSED_STATUS);
            verdict.skip_validation("the usage plan refuses the request before validation");
            UsageJudged::Refused {
                code: refusal.code,
                reason: refusal.reason,
                fix,
            }
        }
    };
    Ok(judged)
}

fn on_breach(on_breach: claimgate_config::OnBreach) -> &'static str {
    match on_breach {
        claimgate_config::OnBreach::Reject => "REJECT",
        claimgate_config::OnBreach::Allow => "ALLOW",
    }
}

/// Where a client sends a token in a location, in words, with the flag that puts it there.
fn describe_location(location: &claimgate_config::ContextVariable) -> String {
    use claimgate_config::ContextTable;
    let key = location.key.as_deref().unwrap_or("");
    match location.table {
        ContextTable::Headers => format!("the header '{key}' (--header '{key}: TOKEN')"),
        ContextTable::Query => format!("the query parameter '{key}' (?{key}=TOKEN in --request)"),
        ContextTable::Path => format!("the path parameter '{key}'"),
        ContextTable::Auth => format!("the claim '{key}' of the authentication token"),
        ContextTable::Host => "the Host (--host)".to_owned(),
        _ => location.to_string(),
    }
}

/// The usage-plan line after the checks: pass, FAIL with its fix, or skip and why.
fn print_usage(usage: &UsageJudged, width: usize, p: &Paint) {
    let id = format!("{USAGE_LABEL:<width$}");
    match usage {
        UsageJudged::NoPolicy => {}
        UsageJudged::NoFiles => outln!(
            "  {} {}",
            p.dim("skip"),
            p.dim(&format!(
                "{id}  not judged: give --usage-plans FILE and --subscribers FILE"
            ))
        ),
        UsageJudged::NotReached => outln!(
            "  {} {}",
            p.dim("skip"),
            p.dim(&format!(
                "{id}  not judged: the request is refused before usage plans (it counts toward none)"
            ))
        ),
        UsageJudged::Entitled { text, .. } => {
            outln!("  {} {id}  {}", p.green("pass"), Escaped(text))
        }
        UsageJudged::Refused { code, reason, fix } => {
            outln!(
                "  {} {id}  {} {code}: {}",
                p.red("FAIL"),
                claimgate_core::USAGE_PLAN_REFUSED_STATUS,
                Escaped(reason)
            );
            let pad = " ".repeat(width + 9);
            outln!("{pad}{}       {}", p.bold("fix"), Escaped(fix));
        }
    }
}
