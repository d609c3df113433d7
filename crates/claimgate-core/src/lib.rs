//! The verdict: token + authentication policy + route authorization + key material + `now` →
//! a decision that lists every check, passed or failed, with what was expected, what the token
//! presented, the execution-log message and a fix.
//!
//! Everything here is pure. It does no I/O, reads no clock and keeps no global state: the
//! gateway and the CLI pass the request, the keys they obtained and the time, and both get the
//! same [`Verdict`]. Fetching keys, caching, HTTP and logging live outside this crate.

#![forbid(unsafe_code)]

pub mod authorizer;
mod check;
mod claims;
mod credentials;
mod dynamic;
mod escape;
pub mod oauth2;
pub mod path;
mod phase;
pub mod route;
mod routing;
mod time;
mod usage;
mod validation;
mod verdict;

pub use check::{Check, CheckId, Failure, Note, Outcome, TimeContext};
pub use claims::{claim_text, ClaimRef, Claims, Registered};
pub use credentials::is_credential_parameter;
pub use dynamic::{
    jwt_policy_for, select_for_request, select_key, select_server, wildcard_matches, Matched,
    Selection, SelectorToken,
};
pub use escape::{escape, is_escaped, Escaped};
pub use path::query_name_is;
pub use path::PathRejection;
pub use phase::PhaseId;
pub use routing::{choose_backend, RoutingChoice, RoutingInput, RoutingJudgement, NO_RULE_STATUS};
pub use time::{human_duration, relative, skew_text, UnixTime};
pub use usage::{
    resolve_usage_plan, UsagePlanDecision, UsagePlanMatch, UsagePlanRefusal,
    USAGE_PLAN_REFUSED_STATUS,
};
pub use validation::{Validation, ValidationKind, ValidationProblem, SHOWN_MEDIA_TYPE};
pub use verdict::{
    body_declared, context_value, evaluate, evaluate_cached, evaluate_prepared, evaluate_with,
    prepare, prepare_knowing, token_to_introspect, Decision, Event, Explain, HeaderValues,
    Introspection, KeyMaterial, Prepared, RequestView, RouteInfo, TokenVerification, Unrouted,
    Verdict, VerificationCache, VerifiedTokens,
};
