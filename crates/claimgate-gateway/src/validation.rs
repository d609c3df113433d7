//! The request validation phase (SPEC "Request validation"): after usage plans, before
//! transformations and the backend. The verdict has judged the route's validations already
//! (pure, in claimgate-core); this phase records what it concluded, counts the failures and
//! answers an `ENFORCING` refusal (400, or 415 for a media type).

use crate::logs::{Context, ExecutionRecord, Level, Logs};
use crate::metrics::Metrics;
use crate::respond::{self, Body};
use claimgate_core::{Failure, Validation, Verdict};
use http::Response;
use serde_json::{json, Value};

/// One `requestValidation.validationError` (WARN) and one metric per failed validation (in
/// `PERMISSIVE` mode too), or `requestValidation.validationPermitted` (INFO) when all passed;
/// then the refusal, if an `ENFORCING` validation failed. Nothing is built for a route without
/// validations, nor for a permitted request below the deployment's log level.
pub(crate) fn phase(
    logs: &Logs,
    metrics: &Metrics,
    verdict: &Verdict,
    context: Context<'_>,
    threshold: Level,
) -> Option<Response<Body>> {
    match verdict.validation {
        Validation::NotJudged => return None,
        Validation::Passed => {
            if Level::Info >= threshold {
                logs.execution(
                    context,
                    threshold,
                    ExecutionRecord::new(
                        "requestValidation.validationPermitted",
                        Level::Info,
                        "Request passed a validation policy.",
                    ),
                );
            }
            return None;
        }
        Validation::Failed { .. } => {}
    }
    let route = verdict.route.as_ref().map_or("", |r| r.path.as_str());
    for check in &verdict.checks {
        let Some(failure @ Failure::Validation { mode, problem }) = check.failure() else {
            continue;
        };
        let kind = problem.kind().name();
        metrics.validation_failure(context.source, route, kind, mode.name());
        if Level::Warn < threshold {
            continue;
        }
        let value = |v: &Option<Box<Value>>| v.as_deref().cloned().unwrap_or(Value::Null);
        let record = ExecutionRecord::new(
            "requestValidation.validationError",
            Level::Warn,
            failure.message(&check.id),
        )
        .with("check", json!(check.id.to_string()))
        .with("validation", json!(kind))
        .with("name", json!(problem.name()))
        .with("validationMode", json!(mode.name()))
        .with("expected", value(&check.expected))
        .with("actual", value(&check.actual))
        .with("fix", json!(check.fix()));
        logs.execution(context, threshold, record);
    }
    verdict.validation.refused().map(respond::error)
}
