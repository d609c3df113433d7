//! `claimgate check` for authorizer functions (`CUSTOM_AUTHENTICATION`): the arguments the
//! gateway would send, and the function's answer — recorded (`--function-response FILE`,
//! judged offline) or obtained by calling the function the `--functions` file maps.

use crate::input::{read_file, InputError, DATA_LIMIT};
use claimgate_config::{Deployment, FunctionMap};
use claimgate_core::authorizer::{
    authorizer_to_call, AuthorizerAnswer, FunctionError, MAX_FUNCTION_ANSWER_BYTES,
};
use claimgate_core::RequestView;
use serde_json::{json, Value};

/// The function call `check` made (or judged from a recording), for the report.
pub(crate) struct FunctionCall {
    pub(crate) function_id: String,
    /// The JSON the gateway POSTs.
    pub(crate) input: Value,
    /// Where the answer came from: the URL called, or the recording.
    pub(crate) source: Source,
    pub(crate) answer: Result<AuthorizerAnswer, FunctionError>,
    /// The answer's body as JSON, when it was JSON.
    pub(crate) body: Option<Value>,
}

pub(crate) enum Source {
    Recorded(String),
    Called(String),
}

/// The function's answer for this request, when the deployment calls a function for it (the
/// request reaches a route and carries an argument). Without a recording and without the
/// function in the map, the answer is an error saying so (exit 3).
pub(crate) fn obtain_answer(
    deployment: &Deployment,
    request: &dyn RequestView,
    functions: &FunctionMap,
    recorded: Option<&str>,
) -> Result<Option<FunctionCall>, InputError> {
    let Some((policy, arguments)) = authorizer_to_call(deployment, request) else {
        return Ok(None);
    };
    let (source, status, body) = match recorded {
        Some(path) => {
            let body = read_file(path, "--function-response", DATA_LIMIT)
                .map_err(InputError::new)?;
            (Source::Recorded(path.to_owned()), Ok(200), body)
        }
        None => match functions.url(&policy.function_id) {
            None => (
                Source::Called(String::new()),
                Err(FunctionError::failed(format!(
                    "function '{}' is not in the functions file (give --functions FILE, or --function-response FILE with a recorded answer)",
                    policy.function_id
                ))),
                Vec::new(),
            ),
            Some(url) => {
                eprintln!("calling {url}");
                let called = call(url, &arguments.input)?;
                match called {
                    Ok((status, body)) => (Source::Called(url.to_owned()), Ok(status), body),
                    Err(error) => (Source::Called(url.to_owned()), Err(error), Vec::new()),
                }
            }
        },
    };
    let parsed_body = claimgate_jose::json::parse_value(&body, 16).ok();
    let answer = status.and_then(|status| AuthorizerAnswer::parse(status, &body));
    Ok(Some(FunctionCall {
        function_id: policy.function_id.clone(),
        input: arguments.input,
        source,
        answer,
        body: parsed_body,
    }))
}

/// POSTs the input to the function, as the gateway does (10 s, 1 MiB).
fn call(url: &str, input: &Value) -> Result<Result<(u16, Vec<u8>), FunctionError>, InputError> {
    let client = claimgate_keys::ProviderClient::new(std::time::Duration::from_secs(10))
        .map_err(|e| InputError::new(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| InputError::new(format!("cannot start the HTTP client: {e}")))?;
    let result = runtime.block_on(client.invoke_function(
        url,
        input.to_string().into_bytes(),
        std::time::Duration::from_secs(10),
        MAX_FUNCTION_ANSWER_BYTES,
    ));
    Ok(result.map_err(|error| match error {
        claimgate_keys::FetchError::TooLarge(limit) => {
            FunctionError::unexpected(format!("its answer is larger than {limit} bytes"))
        }
        error => FunctionError::failed(format!("calling {url} failed: {error}")),
    }))
}

impl FunctionCall {
    /// The `"function"` member of `check --output json`.
    pub(crate) fn to_json(&self) -> Value {
        let mut out = json!({
            "functionId": self.function_id,
            "input": self.input,
        });
        match &self.source {
            Source::Recorded(path) => out["recorded"] = json!(path),
            Source::Called(url) if !url.is_empty() => out["url"] = json!(url),
            Source::Called(_) => {}
        }
        match &self.answer {
            Ok(answer) => {
                out["status"] = json!(answer.status);
                out["answer"] = self.body.clone().unwrap_or(Value::Null);
            }
            Err(error) => out["error"] = json!(error.reason),
        }
        out
    }
}
