//! Request validation (SPEC "Request validation"; OCI's `headerValidations`,
//! `queryParameterValidations` and `bodyValidation`): the checks `header:<Name>`,
//! `query:<name>` and `body` after `scope`, and what they conclude.
//!
//! Judged only for a request that authentication and authorization allowed (their 401/403 come
//! first). A request whose validations all pass costs no allocation when the caller asks for
//! failures only ([`Explain::Failures`]): passed validation checks are then not listed at all,
//! since their ids name headers and parameters.

use crate::check::{Check, CheckId, Failure, Outcome};
use crate::verdict::{Decision, Explain, HeaderValues, RequestView, Verdict};
use claimgate_config::{
    BodyValidation, ItemValidation, MediaRange, RequestValidations, ValidationMode,
};
use serde_json::{json, Value};
use std::borrow::Cow;

/// What request validation concluded for a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Validation {
    /// The route validates nothing, or the request was refused before validation.
    #[default]
    NotJudged,
    /// Every validation passed (`requestValidation.validationPermitted`).
    Passed,
    /// At least one failed. `refused` is the status of an `ENFORCING` failure (400 before 415);
    /// `None` when only `PERMISSIVE` policies failed and the request is served.
    Failed { refused: Option<u16> },
}

impl Validation {
    /// The status the request is refused with because of its validations.
    pub fn refused(self) -> Option<u16> {
        match self {
            Self::Failed { refused } => refused,
            _ => None,
        }
    }
}

/// Which policy a validation check belongs to: the record's `validation` member and the
/// metric's `kind` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationKind {
    Header,
    Query,
    Body,
}

impl ValidationKind {
    /// `header`, `query` or `body`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Header => "header",
            Self::Query => "query",
            Self::Body => "body",
        }
    }
}

/// Why a validation failed.
#[derive(Debug, Clone, PartialEq)]
pub enum ValidationProblem {
    /// A `required` header is absent.
    HeaderMissing { name: String },
    /// A `required` query parameter is absent.
    QueryMissing { name: String },
    /// `bodyValidation.required` and the request has no body. `accepted` lists the `content`
    /// keys, for the fix.
    BodyMissing { accepted: Vec<String> },
    /// The body's media type matches no `content` key. `media_type` is what was judged (at
    /// most [`SHOWN_MEDIA_TYPE`] characters of it); `defaulted`: the request had no
    /// `Content-Type`, so `application/octet-stream` was judged.
    MediaTypeRefused {
        media_type: String,
        defaulted: bool,
        accepted: Vec<String>,
    },
}

impl ValidationProblem {
    /// The status an `ENFORCING` failure answers: 400 for what is missing, 415 for a media
    /// type.
    pub fn status(&self) -> u16 {
        match self {
            Self::MediaTypeRefused { .. } => 415,
            _ => 400,
        }
    }

    /// The kind of policy that failed.
    pub fn kind(&self) -> ValidationKind {
        match self {
            Self::HeaderMissing { .. } => ValidationKind::Header,
            Self::QueryMissing { .. } => ValidationKind::Query,
            Self::BodyMissing { .. } | Self::MediaTypeRefused { .. } => ValidationKind::Body,
        }
    }

    /// The header, parameter or media type the failure is about: the record's `name`.
    pub fn name(&self) -> &str {
        match self {
            Self::HeaderMissing { name } | Self::QueryMissing { name } => name,
            Self::BodyMissing { .. } => "body",
            Self::MediaTypeRefused { media_type, .. } => media_type,
        }
    }

    /// The detail after OCI's `Request failed a validation policy`.
    pub(crate) fn detail(&self) -> String {
        match self {
            Self::HeaderMissing { name } => format!("header '{name}' is required"),
            Self::QueryMissing { name } => format!("query parameter '{name}' is required"),
            Self::BodyMissing { .. } => "a request body is required".to_owned(),
            Self::MediaTypeRefused { media_type, .. } => {
                format!("content type '{media_type}' is not accepted")
            }
        }
    }

    pub(crate) fn fix(&self, setting: &str, mode: ValidationMode) -> String {
        let permissive = match mode {
            ValidationMode::Permissive => " (PERMISSIVE: the request was served anyway)",
            ValidationMode::Enforcing => "",
        };
        match self {
            Self::HeaderMissing { name } => format!(
                "Send the header '{name}' (any letter case), or make it optional (required: false) in {setting}{permissive}."
            ),
            Self::QueryMissing { name } => format!(
                "Send the query parameter '{name}' (names compare case-insensitively, percent-decoded), or make it optional (required: false) in {setting}{permissive}."
            ),
            Self::BodyMissing { accepted } => format!(
                "Send a request body ({}) with Content-Length above 0 or chunked transfer coding, or set required to false in {setting}{permissive}.",
                accepted.join(", ")
            ),
            Self::MediaTypeRefused { media_type, defaulted: true, accepted } => format!(
                "The request has a body but no Content-Type, which counts as {media_type}. Send Content-Type with one of {}, or add '{media_type}' to content in {setting}{permissive}.",
                accepted.join(", ")
            ),
            Self::MediaTypeRefused { media_type, defaulted: false, accepted } => format!(
                "Send the body as one of {} (the Content-Type header, parameters after ';' aside), or add a key matching '{media_type}' to content in {setting}{permissive}.",
                accepted.join(", ")
            ),
        }
    }
}

/// How much of a refused media type is kept for messages and logs: a client chooses it.
pub const SHOWN_MEDIA_TYPE: usize = 100;

const REFUSED_BEFORE: &str = "the request was refused before validation";

/// Adds the validation checks to a verdict that authentication and authorization have
/// decided, and their conclusion: an `ENFORCING` failure turns an allow into a deny with 400
/// (missing header, parameter or body) or else 415 (media type).
pub(crate) fn apply(
    verdict: &mut Verdict,
    validations: &RequestValidations,
    request: &dyn RequestView,
    explain: Explain,
) {
    if validations.is_empty() {
        return;
    }
    if verdict.decision != Decision::Allow {
        verdict.checks.extend(skipped(validations, REFUSED_BEFORE));
        return;
    }
    let quiet = explain == Explain::Failures;
    let first = verdict.checks.len();
    if let Some(policy) = &validations.headers {
        judge_items(verdict, policy, ValidationKind::Header, request, quiet);
    }
    if let Some(policy) = &validations.query_parameters {
        judge_items(verdict, policy, ValidationKind::Query, request, quiet);
    }
    if let Some(policy) = &validations.body {
        if let Some(check) = judge_body(policy, request, quiet) {
            verdict.checks.push(check);
        }
    }
    let mut failed = false;
    let mut refused: Option<u16> = None;
    for check in &verdict.checks[first..] {
        if let Some(Failure::Validation { mode, problem }) = check.failure() {
            failed = true;
            if *mode == ValidationMode::Enforcing {
                refused = Some(refused.map_or(problem.status(), |s| s.min(problem.status())));
            }
        }
    }
    verdict.validation = if failed {
        Validation::Failed { refused }
    } else {
        Validation::Passed
    };
    if let Some(status) = refused {
        verdict.decision = Decision::Deny;
        verdict.status = Some(status);
    }
}

/// Every validation check, skipped.
pub(crate) fn skipped(validations: &RequestValidations, why: &'static str) -> Vec<Check> {
    let items = |policy: &Option<ItemValidation>, id: fn(String) -> CheckId| {
        policy
            .iter()
            .flat_map(|p| &p.items)
            .map(move |item| Check::skip(id(item.name.clone()), why))
            .collect::<Vec<_>>()
    };
    let mut checks = items(&validations.headers, CheckId::Header);
    checks.extend(items(&validations.query_parameters, CheckId::Query));
    if validations.body.is_some() {
        checks.push(Check::skip(CheckId::Body, why));
    }
    checks
}

fn judge_items(
    verdict: &mut Verdict,
    policy: &ItemValidation,
    kind: ValidationKind,
    request: &dyn RequestView,
    quiet: bool,
) {
    for item in &policy.items {
        let found = match kind {
            ValidationKind::Query => query_count(request.query(), &item.name),
            _ => match request.header(&item.name) {
                HeaderValues::Absent => 0,
                HeaderValues::One(_) => 1,
                HeaderValues::Many(n) => n,
            },
        };
        // A gateway lists failures only: a present or optional item cannot fail.
        if quiet && (found > 0 || !item.required) {
            continue;
        }
        let id = match kind {
            ValidationKind::Query => CheckId::Query(item.name.clone()),
            _ => CheckId::Header(item.name.clone()),
        };
        let outcome = match (found, item.required) {
            (0, true) => Outcome::fail(Failure::Validation {
                mode: policy.mode,
                problem: match kind {
                    ValidationKind::Query => ValidationProblem::QueryMissing {
                        name: item.name.clone(),
                    },
                    _ => ValidationProblem::HeaderMissing {
                        name: item.name.clone(),
                    },
                },
            }),
            (0, false) => Outcome::Pass(Cow::Borrowed("absent, and not required")),
            (1, _) => Outcome::Pass(Cow::Borrowed("present")),
            (n, _) => Outcome::Pass(format!("present ({n} times)").into()),
        };
        let expected = if item.required { "present" } else { "optional" };
        let actual = match found {
            0 => Cow::Borrowed("absent"),
            1 => Cow::Borrowed("present"),
            n => Cow::Owned(format!("present ({n} times)")),
        };
        verdict.checks.push(
            Check::new(id, outcome)
                .values(Some(json!(expected)), Some(json!(actual)))
                .setting(policy.path.as_str()),
        );
    }
}

/// How many times the query string carries the parameter `name` (compared percent-decoded and
/// case-insensitively; `?name` without `=` counts).
fn query_count(query: Option<&str>, name: &str) -> usize {
    query
        .unwrap_or("")
        .split('&')
        .filter(|pair| {
            let raw = pair.split_once('=').map_or(*pair, |(n, _)| n);
            !raw.is_empty() && crate::path::query_name_is(raw, name)
        })
        .count()
}

/// What the request says of its body's media type.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Declared<'a> {
    /// No `Content-Type`: judged as `application/octet-stream`.
    Absent,
    /// `type/subtype` before any `;`, trimmed (letter case as sent).
    Type(&'a str, &'a str),
    /// Something that is not a media type, or several `Content-Type` headers (the backend's
    /// reading is anybody's guess): only `*/*` accepts it.
    Unreadable(Cow<'a, str>),
}

fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn declared(request: &dyn RequestView) -> Declared<'_> {
    match request.header("content-type") {
        HeaderValues::Absent => Declared::Absent,
        HeaderValues::Many(1) => {
            Declared::Unreadable(Cow::Borrowed("a Content-Type that is not visible ASCII"))
        }
        HeaderValues::Many(n) => {
            Declared::Unreadable(Cow::Owned(format!("{n} Content-Type headers")))
        }
        HeaderValues::One(value) => {
            let essence = value.split(';').next().unwrap_or("").trim();
            match essence.split_once('/') {
                Some((kind, subtype)) if is_token(kind) && is_token(subtype) => {
                    Declared::Type(kind, subtype)
                }
                _ => Declared::Unreadable(Cow::Borrowed(essence)),
            }
        }
    }
}

/// The most specific `content` key the media type matches: `type/subtype`, else `type/*`,
/// else `*/*`. Keys are lower-case; the request's type compares case-insensitively.
fn best_match<'c>(content: &'c [MediaRange], declared: &Declared<'_>) -> Option<&'c MediaRange> {
    let (kind, subtype) = match declared {
        Declared::Absent => ("application", "octet-stream"),
        Declared::Type(kind, subtype) => (*kind, *subtype),
        Declared::Unreadable(_) => return content.iter().find(|r| **r == MediaRange::Any),
    };
    let exact = content.iter().find(|r| {
        matches!(r, MediaRange::Exact { kind: k, subtype: s }
            if k.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(subtype))
    });
    exact
        .or_else(|| {
            content
                .iter()
                .find(|r| matches!(r, MediaRange::Type(k) if k.eq_ignore_ascii_case(kind)))
        })
        .or_else(|| content.iter().find(|r| **r == MediaRange::Any))
}

/// The media type as judged, lower-cased and bounded, for messages and logs.
fn shown(declared: &Declared<'_>) -> String {
    let text: Cow<'_, str> = match declared {
        Declared::Absent => "application/octet-stream".into(),
        Declared::Type(kind, subtype) => format!("{kind}/{subtype}").into(),
        Declared::Unreadable(text) => text.clone(),
    };
    let mut out: String = text.chars().take(SHOWN_MEDIA_TYPE).collect();
    out.make_ascii_lowercase();
    if text.chars().count() > SHOWN_MEDIA_TYPE {
        out.push('…');
    }
    out
}

fn judge_body(policy: &BodyValidation, request: &dyn RequestView, quiet: bool) -> Option<Check> {
    let accepted = || {
        policy
            .content
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    let expected = || Some(json!(accepted()));
    let check = |outcome, actual: Value| {
        Check::new(CheckId::Body, outcome)
            .values(expected(), Some(actual))
            .setting(policy.path.as_str())
    };
    if !request.has_body() {
        if !policy.required {
            return (!quiet).then(|| {
                check(
                    Outcome::Pass(Cow::Borrowed("no body, and none is required")),
                    json!("no body"),
                )
            });
        }
        let actual = match request.header("content-length") {
            HeaderValues::One(length) => format!("no body (Content-Length: {})", length.trim()),
            _ => "no body".to_owned(),
        };
        let failure = Failure::Validation {
            mode: policy.mode,
            problem: ValidationProblem::BodyMissing {
                accepted: accepted(),
            },
        };
        return Some(check(Outcome::fail(failure), json!(actual)));
    }
    let declared = declared(request);
    match best_match(&policy.content, &declared) {
        Some(_) if quiet => None,
        Some(key) => {
            let judged = shown(&declared);
            let note = match declared {
                Declared::Absent => {
                    format!("no Content-Type (counts as {judged}): accepted by '{key}'")
                }
                _ => format!("'{judged}' is accepted by '{key}'"),
            };
            Some(check(Outcome::Pass(note.into()), json!(judged)))
        }
        None => {
            let judged = shown(&declared);
            let failure = Failure::Validation {
                mode: policy.mode,
                problem: ValidationProblem::MediaTypeRefused {
                    media_type: judged.clone(),
                    defaulted: declared == Declared::Absent,
                    accepted: accepted(),
                },
            };
            Some(check(Outcome::fail(failure), json!(judged)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{evaluate, evaluate_cached, KeyMaterial};
    use crate::UnixTime;
    use claimgate_config::{load_str, LoadOptions};

    /// A request with headers and a query; the body is what its headers declare unless
    /// `body` says otherwise.
    #[derive(Debug, Default)]
    struct Request {
        query: Option<&'static str>,
        headers: Vec<(&'static str, String)>,
        body: Option<bool>,
    }

    impl Request {
        fn new() -> Self {
            Self::default()
        }
        fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
            self.headers.push((name, value.into()));
            self
        }
        fn query(mut self, query: &'static str) -> Self {
            self.query = Some(query);
            self
        }
        /// A body of `length` bytes with this Content-Type.
        fn body(self, content_type: &str) -> Self {
            self.header("Content-Type", content_type)
                .header("Content-Length", "2")
        }
    }

    impl RequestView for Request {
        fn method(&self) -> &str {
            "POST"
        }
        fn path(&self) -> &str {
            "/v1/orders"
        }
        fn query(&self) -> Option<&str> {
            self.query
        }
        fn header(&self, name: &str) -> HeaderValues<'_> {
            let mut values = self
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name));
            match (values.next(), values.count()) {
                (None, _) => HeaderValues::Absent,
                (Some((_, v)), 0) => HeaderValues::One(v),
                (Some(_), more) => HeaderValues::Many(more + 1),
            }
        }
        fn has_body(&self) -> bool {
            self.body
                .unwrap_or_else(|| crate::verdict::body_declared(self))
        }
    }

    /// An open deployment (no authentication) whose one route has these request policies.
    fn deployment(policies: Value) -> claimgate_config::Deployment {
        let spec = json!({
            "pathPrefix": "/v1",
            "specification": {"routes": [{
                "path": "/orders", "methods": ["POST"],
                "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 201},
                "requestPolicies": policies,
            }]}
        });
        load_str(&spec.to_string(), &LoadOptions::default())
            .expect("loads")
            .deployment
    }

    fn judge(policies: &Value, request: &Request) -> Verdict {
        let deployment = deployment(policies.clone());
        let no_keys = KeyMaterial::Unavailable { reason: "none" };
        let verdict = evaluate(&deployment, request, no_keys, UnixTime(0));
        // The gateway's quiet verdict decides the same and lists the same failures.
        let quiet = evaluate_cached(
            &deployment,
            request,
            no_keys,
            UnixTime(0),
            None,
            Explain::Failures,
        );
        assert_eq!(
            (quiet.decision, quiet.status, quiet.validation),
            (verdict.decision, verdict.status, verdict.validation)
        );
        let failures = |v: &Verdict| v.failures().cloned().collect::<Vec<_>>();
        assert_eq!(failures(&quiet), failures(&verdict));
        verdict
    }

    fn results(verdict: &Verdict) -> Vec<(String, &'static str)> {
        verdict
            .checks
            .iter()
            .map(|c| (c.id.to_string(), c.outcome.name()))
            .collect()
    }

    fn headers(mode: &str) -> Value {
        json!({"headerValidations": {"validationMode": mode, "headers": [
            {"name": "X-Username", "required": true},
            {"name": "X-Trace", "required": false}]}})
    }

    fn query(mode: &str) -> Value {
        json!({"queryParameterValidations": {"validationMode": mode, "parameters": [
            {"name": "page", "required": true}]}})
    }

    fn body(required: bool, keys: &[&str]) -> Value {
        let content: serde_json::Map<String, Value> = keys
            .iter()
            .map(|k| ((*k).to_owned(), json!({"validationType": "NONE"})))
            .collect();
        json!({"bodyValidation": {"required": required, "content": content}})
    }

    fn message(verdict: &Verdict) -> Vec<String> {
        verdict.failures().filter_map(|c| c.message()).collect()
    }

    #[test]
    fn a_required_header_passes_in_any_letter_case_and_fails_absent() {
        let policies = headers("ENFORCING");
        for name in ["X-Username", "x-username", "X-USERNAME"] {
            let verdict = judge(&policies, &Request::new().header(name, "alice"));
            assert_eq!(verdict.decision, Decision::Allow, "{name}");
            assert_eq!(verdict.validation, Validation::Passed);
        }
        let verdict = judge(&policies, &Request::new().header("X-Trace", "1"));
        assert_eq!(
            (verdict.decision, verdict.status),
            (Decision::Deny, Some(400))
        );
        assert_eq!(
            verdict.validation,
            Validation::Failed { refused: Some(400) }
        );
        assert_eq!(
            message(&verdict),
            ["Request failed a validation policy: header 'X-Username' is required."]
        );
        let check = verdict.failures().next().unwrap();
        assert_eq!(check.id.to_string(), "header:X-Username");
        assert_eq!(check.expected.as_deref(), Some(&json!("present")));
        assert_eq!(check.actual.as_deref(), Some(&json!("absent")));
        let fix = check.fix().unwrap();
        assert!(
            fix.contains("routes[0].requestPolicies.headerValidations"),
            "{fix}"
        );
        // The optional header is listed, passed, after the required one.
        let listed = results(&verdict);
        assert_eq!(
            &listed[listed.len() - 2..],
            [
                ("header:X-Username".to_owned(), "fail"),
                ("header:X-Trace".to_owned(), "pass")
            ]
        );
    }

    #[test]
    fn a_repeated_header_is_present() {
        let request = Request::new()
            .header("X-Username", "a")
            .header("x-username", "b");
        let verdict = judge(&headers("ENFORCING"), &request);
        assert_eq!(verdict.decision, Decision::Allow);
    }

    #[test]
    fn query_parameters_compare_decoded_and_case_insensitively() {
        let policies = query("ENFORCING");
        for q in ["page=2", "PAGE=2", "p%61ge=2", "a=1&Page", "page="] {
            let verdict = judge(&policies, &Request::new().query(q));
            assert_eq!(verdict.decision, Decision::Allow, "{q}");
        }
        for q in ["pages=2", "pag=2", "a=page", "", "=page", "p%6=1"] {
            let verdict = judge(&policies, &Request::new().query(q));
            assert_eq!(verdict.status, Some(400), "{q}");
            assert_eq!(
                message(&verdict),
                ["Request failed a validation policy: query parameter 'page' is required."]
            );
        }
        let verdict = judge(&policies, &Request::new());
        assert_eq!(verdict.status, Some(400));
        assert_eq!(
            verdict.failures().next().unwrap().id.to_string(),
            "query:page"
        );
    }

    #[test]
    fn a_required_body_must_be_declared() {
        let policies = body(true, &["application/json"]);
        let json_body = Request::new().body("application/json");
        assert_eq!(judge(&policies, &json_body).decision, Decision::Allow);
        let chunked = Request::new()
            .header("Content-Type", "application/json")
            .header("Transfer-Encoding", "gzip, Chunked");
        assert_eq!(judge(&policies, &chunked).decision, Decision::Allow);
        for request in [
            Request::new(),
            Request::new().header("Content-Length", "0"),
            Request::new()
                .header("Content-Type", "application/json")
                .header("Content-Length", " 0 "),
            Request::new().header("Transfer-Encoding", "gzip"),
        ] {
            let verdict = judge(&policies, &request);
            assert_eq!(verdict.status, Some(400), "{request:?}");
            assert_eq!(
                message(&verdict),
                ["Request failed a validation policy: a request body is required."]
            );
        }
        let verdict = judge(&policies, &Request::new().header("Content-Length", "0"));
        let check = verdict.failures().next().unwrap();
        assert_eq!(
            check.actual.as_deref(),
            Some(&json!("no body (Content-Length: 0)"))
        );
        assert_eq!(
            check.expected.as_deref(),
            Some(&json!(["application/json"]))
        );
        // A view that sees the body itself (HTTP/2 DATA) decides, whatever the headers say.
        let mut streamed = Request::new().header("Content-Type", "application/json");
        streamed.body = Some(true);
        assert_eq!(judge(&policies, &streamed).decision, Decision::Allow);
    }

    #[test]
    fn media_types_compare_without_parameters_or_letter_case() {
        let policies = body(true, &["application/json"]);
        for content_type in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON;charset=UTF-8",
            "  application/json  ; q=1",
            "\tapplication/json",
        ] {
            let verdict = judge(&policies, &Request::new().body(content_type));
            assert_eq!(verdict.decision, Decision::Allow, "{content_type:?}");
        }
        for (content_type, judged) in [
            ("application/xml", "application/xml"),
            ("application/jsonx", "application/jsonx"),
            ("application/json+x", "application/json+x"),
            ("text/json", "text/json"),
            ("application / json", "application / json"),
            ("json", "json"),
            ("", ""),
            (
                "application/json, text/plain",
                "application/json, text/plain",
            ),
        ] {
            let verdict = judge(&policies, &Request::new().body(content_type));
            assert_eq!(verdict.status, Some(415), "{content_type:?}");
            assert_eq!(
                message(&verdict),
                [format!(
                    "Request failed a validation policy: content type '{judged}' is not accepted."
                )],
            );
        }
    }

    #[test]
    fn type_wildcards_and_the_most_specific_key() {
        let text = body(true, &["text/*"]);
        assert_eq!(
            judge(&text, &Request::new().body("text/plain")).decision,
            Decision::Allow
        );
        assert_eq!(
            judge(&text, &Request::new().body("TEXT/csv")).decision,
            Decision::Allow
        );
        assert_eq!(
            judge(&text, &Request::new().body("application/text")).status,
            Some(415)
        );
        let any = body(true, &["*/*"]);
        for content_type in ["image/png", "nonsense", "application/json; x=y"] {
            assert_eq!(
                judge(&any, &Request::new().body(content_type)).decision,
                Decision::Allow,
                "{content_type}"
            );
        }
        // The note names the most specific key that accepted the type.
        let all = body(true, &["*/*", "text/*", "text/plain"]);
        let note = |content_type: &str| {
            let verdict = judge(&all, &Request::new().body(content_type));
            match &verdict.checks.last().unwrap().outcome {
                Outcome::Pass(note) => note.to_string(),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            note("text/plain"),
            "'text/plain' is accepted by 'text/plain'"
        );
        assert_eq!(note("text/html"), "'text/html' is accepted by 'text/*'");
        assert_eq!(note("image/png"), "'image/png' is accepted by '*/*'");
    }

    #[test]
    fn a_body_without_content_type_is_octet_stream() {
        let json_only = body(true, &["application/json"]);
        let request = Request::new().header("Content-Length", "5");
        let verdict = judge(&json_only, &request);
        assert_eq!(verdict.status, Some(415));
        assert_eq!(
            message(&verdict),
            ["Request failed a validation policy: content type 'application/octet-stream' is not accepted."]
        );
        let fix = verdict.failures().next().unwrap().fix().unwrap();
        assert!(fix.contains("no Content-Type"), "{fix}");
        let octets = body(true, &["application/octet-stream"]);
        assert_eq!(judge(&octets, &request).decision, Decision::Allow);
        let application = body(true, &["application/*"]);
        assert_eq!(judge(&application, &request).decision, Decision::Allow);
    }

    #[test]
    fn an_optional_body_may_be_absent_but_a_present_one_is_still_checked() {
        let policies = body(false, &["application/json"]);
        assert_eq!(judge(&policies, &Request::new()).decision, Decision::Allow);
        assert_eq!(
            judge(&policies, &Request::new().header("Content-Length", "0")).decision,
            Decision::Allow
        );
        assert_eq!(
            judge(&policies, &Request::new().body("application/json")).decision,
            Decision::Allow
        );
        assert_eq!(
            judge(&policies, &Request::new().body("application/xml")).status,
            Some(415)
        );
    }

    #[test]
    fn repeated_or_unreadable_content_types_are_accepted_only_by_any() {
        let request = Request::new()
            .body("application/json")
            .header("Content-Type", "application/json");
        let json_only = body(true, &["application/json"]);
        let verdict = judge(&json_only, &request);
        assert_eq!(verdict.status, Some(415));
        assert_eq!(
            message(&verdict),
            ["Request failed a validation policy: content type '2 content-type headers' is not accepted."]
        );
        assert_eq!(
            judge(&body(true, &["*/*"]), &request).decision,
            Decision::Allow
        );
    }

    #[test]
    fn a_huge_content_type_is_judged_and_shown_bounded() {
        let huge = format!("application/{}", "x".repeat(100_000));
        let verdict = judge(
            &body(true, &["application/json"]),
            &Request::new().body(&huge),
        );
        assert_eq!(verdict.status, Some(415));
        let check = verdict.failures().next().unwrap();
        let shown = check.actual.as_deref().unwrap().as_str().unwrap();
        assert_eq!(shown.chars().count(), SHOWN_MEDIA_TYPE + 1);
        assert!(check.message().unwrap().len() < 200);
    }

    #[test]
    fn missing_items_are_400_before_a_media_type_415() {
        let mut policies = headers("ENFORCING");
        policies["bodyValidation"] = body(true, &["application/json"])["bodyValidation"].clone();
        let verdict = judge(&policies, &Request::new().body("application/xml"));
        assert_eq!(verdict.status, Some(400));
        assert_eq!(message(&verdict).len(), 2, "both failures are listed");
        let listed: Vec<String> = verdict.failures().map(|c| c.id.to_string()).collect();
        assert_eq!(listed, ["header:X-Username", "body"]);
    }

    #[test]
    fn permissive_failures_are_listed_and_the_request_allowed() {
        let mut policies = headers("PERMISSIVE");
        policies["queryParameterValidations"] =
            query("PERMISSIVE")["queryParameterValidations"].clone();
        let verdict = judge(&policies, &Request::new());
        assert_eq!(verdict.decision, Decision::Allow);
        assert_eq!(verdict.status, Some(201));
        assert_eq!(verdict.validation, Validation::Failed { refused: None });
        assert_eq!(message(&verdict).len(), 2);
        let fix = verdict.failures().next().unwrap().fix().unwrap();
        assert!(fix.contains("PERMISSIVE"), "{fix}");
        // An enforcing failure elsewhere still refuses, with its own status.
        let mut mixed = headers("PERMISSIVE");
        mixed["bodyValidation"] = body(true, &["application/json"])["bodyValidation"].clone();
        let verdict = judge(&mixed, &Request::new().body("text/plain"));
        assert_eq!(
            verdict.status,
            Some(415),
            "the permissive 400 does not count"
        );
    }

    #[test]
    fn disabled_policies_are_not_judged() {
        let mut policies = headers("DISABLED");
        policies["bodyValidation"] = json!({"required": true, "validationMode": "DISABLED",
            "content": {"application/json": {"validationType": "NONE"}}});
        let verdict = judge(&policies, &Request::new());
        assert_eq!(verdict.decision, Decision::Allow);
        assert_eq!(verdict.validation, Validation::NotJudged);
        assert!(verdict
            .checks
            .iter()
            .all(|c| !matches!(c.id, CheckId::Header(_) | CheckId::Query(_) | CheckId::Body)));
    }

    #[test]
    fn checks_follow_scope_in_order_header_query_body() {
        let mut policies = headers("ENFORCING");
        policies["queryParameterValidations"] =
            query("ENFORCING")["queryParameterValidations"].clone();
        policies["bodyValidation"] = body(false, &["*/*"])["bodyValidation"].clone();
        let request = Request::new()
            .header("X-Username", "a")
            .query("page=1")
            .body("x/y");
        let verdict = judge(&policies, &request);
        let ids: Vec<String> = verdict.checks.iter().map(|c| c.id.to_string()).collect();
        let scope = ids.iter().position(|id| id == "scope").unwrap();
        assert_eq!(
            &ids[scope + 1..],
            ["header:X-Username", "header:X-Trace", "query:page", "body"]
        );
        assert!(verdict.checks[scope + 1..]
            .iter()
            .all(|c| c.outcome.name() == "pass"));
        let events: Vec<_> = verdict.events().into_iter().map(|e| e.code).collect();
        assert_eq!(events, ["requestValidation.validationPermitted"]);
    }

    #[test]
    fn a_quiet_verdict_lists_no_passed_validation_check() {
        let deployment = deployment(headers("ENFORCING"));
        let request = Request::new().header("X-Username", "a");
        let no_keys = KeyMaterial::Unavailable { reason: "none" };
        let verdict = evaluate_cached(
            &deployment,
            &request,
            no_keys,
            UnixTime(0),
            None,
            Explain::Failures,
        );
        assert_eq!(verdict.validation, Validation::Passed);
        assert!(verdict
            .checks
            .iter()
            .all(|c| !matches!(c.id, CheckId::Header(_))));
    }

    #[test]
    fn validation_failures_are_warn_events() {
        let verdict = judge(&headers("ENFORCING"), &Request::new());
        let events = verdict.events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].code, "requestValidation.validationError");
        assert_eq!(events[0].level, "WARN");
        assert!(verdict.access_events().is_empty());
        let json = verdict.to_json();
        assert_eq!(json["events"][0]["check"], "header:X-Username");
        let check = json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == "header:X-Username")
            .unwrap();
        assert_eq!(check["result"], "fail");
        assert_eq!(
            check["setting"],
            "specification.routes[0].requestPolicies.headerValidations"
        );
    }
}
