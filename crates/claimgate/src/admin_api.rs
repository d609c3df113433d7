//! The admin API's judgements, lent to the gateway ([`claimgate_gateway::admin::AdminApi`]):
//! `POST /api/check` answers with exactly the document `check -o json` prints, made by
//! `check`'s own code on a deployment the gateway serves, with the key material it already
//! holds (never fetched, and never an introspection or function call: those checks say so);
//! `/api/requests/<id>` carries `logs`' diagnosis.

use crate::check::{judge, CheckArgs, CliRequest, KeysFrom, Obtained, Source, Unavailable};
use crate::Format;
use claimgate_config::{Deployment, KeySource};
use claimgate_gateway::admin::{AdminApi, LoadedDeployment};
use claimgate_gateway::discovery::IntrospectError;
use claimgate_jose::JwksParse;
use serde_json::{json, Value};

/// Why an opaque token is not judged here.
const NO_INTROSPECTION: &str = "the troubleshooting page never calls the introspection endpoint: judge an opaque token with `claimgate introspect` or `claimgate check --introspection FILE`";

#[derive(Debug, Default)]
pub(crate) struct CliAdminApi;

impl AdminApi for CliAdminApi {
    fn check(&self, deployments: &[LoadedDeployment], input: &Value) -> (u16, Value) {
        match check(deployments, input) {
            Ok(document) => (200, crate::output::versioned(document)),
            Err(error) => (
                400,
                json!({"version": 1, "error": {"message": error.message, "details": error.details}}),
            ),
        }
    }

    fn diagnosis(&self, records: &[Value]) -> Vec<Value> {
        crate::logs::diagnosis(records)
    }
}

/// The page's request document, strictly: unknown members are refused.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckInput {
    /// A path prefix, `deploymentId` or label; may be left out when one deployment is served.
    #[serde(default)]
    deployment: Option<String>,
    request: String,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    token: Option<String>,
    /// RFC 3339, or seconds since 1970 (a number or a string), as `check --now` takes it.
    #[serde(default)]
    now: Option<Value>,
}

fn check(
    deployments: &[LoadedDeployment],
    input: &Value,
) -> Result<Value, crate::input::InputError> {
    use crate::input::InputError;
    let input: CheckInput = serde_json::from_value(input.clone())
        .map_err(|e| InputError::new(format!("the request document is not valid: {e}")))?;
    let served = find(deployments, input.deployment.as_deref())?;
    let mut headers = Vec::with_capacity(input.headers.len());
    for (name, value) in &input.headers {
        let valid_name =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
        if !valid_name || value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(InputError::new(format!(
                "the header '{}' is not a valid header name and value",
                claimgate_core::escape(name)
            )));
        }
        headers.push(format!("{name}: {value}"));
    }
    let token = input
        .token
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    let args = CheckArgs {
        deployment: String::new(),
        request: input.request,
        // Placed by `Source::Served`: never read as @FILE or stdin.
        token: None,
        now: match input.now {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text),
            Some(Value::Number(seconds)) => Some(seconds.to_string()),
            Some(other) => {
                return Err(InputError::new(format!(
                    "\"now\" must be an RFC 3339 time or seconds since 1970, not {other}"
                )))
            }
        },
        jwks: None,
        introspection: None,
        secrets: None,
        headers,
        host: None,
        // Never read as @FILE either: the page sends no body.
        data: None,
        path_prefix: None,
        allow_endpoints: Vec::new(),
        usage_plans: Vec::new(),
        subscribers: Vec::new(),
        functions: None,
        function_response: None,
        output: Format::Json,
    };
    let obtain = |deployment: &Deployment, request: &CliRequest| held(served, deployment, request);
    let (_, document) = judge(
        &args,
        Source::Served {
            deployment: &served.deployment,
            token,
            obtain: &obtain,
        },
    )?;
    document.ok_or_else(|| InputError::new("no document was made"))
}

/// The deployment a page names: by path prefix, `deploymentId` or label (in that order); the
/// only one when none is named.
fn find<'d>(
    deployments: &'d [LoadedDeployment],
    name: Option<&str>,
) -> Result<&'d LoadedDeployment, crate::input::InputError> {
    use crate::input::InputError;
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return match deployments {
            [only] => Ok(only),
            _ => Err(InputError::new(
                "name the deployment: \"deployment\" is a path prefix or deploymentId (see /api/deployments)",
            )),
        };
    };
    let trimmed = |p: &str| p.trim_end_matches('/').to_owned();
    deployments
        .iter()
        .find(|d| trimmed(&d.deployment.path_prefix) == trimmed(name))
        .or_else(|| deployments.iter().find(|d| d.deployment.id == name))
        .or_else(|| deployments.iter().find(|d| d.deployment.label() == name))
        .ok_or_else(|| {
            InputError::new(format!(
                "no deployment served has the path prefix, deploymentId or label '{}' (see /api/deployments)",
                claimgate_core::escape(name)
            ))
        })
}

/// The key material the gateway holds for the policy that judges `request` (as `check`'s own
/// `obtain` would choose it), or why there is none.
fn held(served: &LoadedDeployment, deployment: &Deployment, request: &CliRequest) -> Obtained {
    let policy = claimgate_core::jwt_policy_for(deployment, request);
    let mut obtained = Obtained {
        jwks: None,
        keys_from: KeysFrom::None,
        unavailable: None,
        introspection: None,
    };
    let uri = match policy.map(|p| &p.keys) {
        None => return obtained,
        Some(KeySource::Static(_)) => {
            obtained.keys_from = KeysFrom::Static;
            return obtained;
        }
        Some(KeySource::RemoteJwks(remote)) => &remote.uri,
        Some(KeySource::Discovery(config)) => {
            if claimgate_core::token_to_introspect(deployment, request).is_some() {
                obtained.introspection = Some(Err(IntrospectError::Introspection(
                    NO_INTROSPECTION.to_owned(),
                )));
                return obtained;
            }
            &config.uri
        }
    };
    obtained.keys_from = KeysFrom::Fetched(uri.clone());
    match served.keys.iter().find(|(source, _)| source == uri) {
        Some((_, Ok(keys))) => {
            obtained.jwks = Some(JwksParse {
                keys: keys.clone(),
                skipped: Vec::new(),
            })
        }
        Some((_, Err(reason))) => obtained.unavailable = Some(Unavailable::Keys(reason.clone())),
        None => {
            obtained.unavailable = Some(Unavailable::Keys(format!(
                "the gateway holds no key set from {uri}"
            )))
        }
    }
    obtained
}

/// Why an authorizer function is not judged here.
const NO_FUNCTION_CALL: &str = "the troubleshooting page never calls an authorizer function: judge this request with `claimgate check --functions FILE` (a live call) or `--function-response FILE` (a recorded answer)";

/// The authorizer call `check` would make for `request`, not made: its check says why.
pub(crate) fn function_not_called(
    deployment: &Deployment,
    request: &CliRequest,
) -> Option<crate::check_function::FunctionCall> {
    let (policy, arguments) = claimgate_core::authorizer::authorizer_to_call(deployment, request)?;
    Some(crate::check_function::FunctionCall {
        function_id: policy.function_id.clone(),
        input: arguments.input,
        source: crate::check_function::Source::Called(String::new()),
        answer: Err(claimgate_core::authorizer::FunctionError::failed(
            NO_FUNCTION_CALL,
        )),
        body: None,
    })
}
