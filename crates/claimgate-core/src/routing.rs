//! `DYNAMIC_ROUTING_BACKEND`: choosing a route's backend from the selector's value, as OCI
//! documents it (`reference/oci-policies.md` §F): an `ANY_OF` value (ASCII case-insensitive),
//! else the first `WILDCARD` rule in order that matches (case-sensitive), else the default rule;
//! nothing → 404. The gateway's backend phase and `check` both call [`choose_backend`], so what
//! `check` explains is what the gateway does.

use crate::dynamic::{host_without_port, select_key, Matched};
use crate::path::{expand_backend_url, percent_decode, PathRejection};
use crate::verdict::{context_value, Decision, Event, RequestView, Unrouted, Verdict};
use crate::Claims;
use claimgate_config::{
    Backend, ContextTable, ContextVariable, Deployment, DynamicRouting, RoutingRule, Template,
};
use std::borrow::Cow;

/// The status and body of a request no rule matched (OCI leaves them undocumented; SPEC settles
/// 404 `{"message":"Not Found","code":404}`).
pub const NO_RULE_STATUS: u16 = 404;

/// The rule chosen for one request, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingChoice {
    /// Index into `routingBackends`; `None` when nothing matched and no rule is the default.
    pub rule: Option<usize>,
    pub matched: Matched,
    /// The selector's value in this request (absent = empty, as OCI renders a missing variable).
    pub value: String,
}

/// Chooses the rule for `value`, the selector's value in the request
/// ([`RoutingInput::selector_value`]). Pure.
pub fn choose_backend(routing: &DynamicRouting, value: String) -> RoutingChoice {
    let (rule, matched) = select_key(
        routing.rules.iter().map(|r| (&r.key, r.is_default)),
        Some(&value),
    );
    RoutingChoice {
        rule,
        matched,
        value,
    }
}

impl RoutingChoice {
    /// The chosen rule.
    pub fn rule<'d>(&self, routing: &'d DynamicRouting) -> Option<&'d RoutingRule> {
        self.rule.and_then(|i| routing.rules.get(i))
    }

    /// The execution-log record: `dynamicRouting.backendMatched` or `.defaultBackendMatched`
    /// (INFO) naming the rule, or `.backendRejected` (WARN).
    pub fn event(&self, routing: &DynamicRouting) -> Event {
        let selector = &routing.selector;
        let value = shown(&self.value);
        let (code, level, message) = match (self.rule(routing), self.matched) {
            (Some(rule), Matched::Default) => (
                "dynamicRouting.defaultBackendMatched",
                "INFO",
                format!(
                    "No rule matched {selector} = '{value}'; the default backend rule '{}' was \
                     selected.",
                    rule.name
                ),
            ),
            (Some(rule), _) => (
                "dynamicRouting.backendMatched",
                "INFO",
                format!(
                    "Backend rule '{}' matched {selector} = '{value}'.",
                    rule.name
                ),
            ),
            (None, _) => (
                "dynamicRouting.backendRejected",
                "WARN",
                format!(
                    "The request failed because the request did not match a back end rule, and \
                     no default rule was defined ({selector} = '{value}')."
                ),
            ),
        };
        Event {
            code: code.into(),
            level,
            message: message.into(),
            check: None,
        }
    }
}

/// At most 128 characters of a selector value in a message: a header can be kilobytes long.
fn shown(value: &str) -> Cow<'_, str> {
    match value.char_indices().nth(128) {
        Some((end, _)) => format!("{}...", &value[..end]).into(),
        None => value.into(),
    }
}

/// What the gateway knows about a request by the backend phase, for a selector or a backend
/// URL: the request itself, the route's path parameters, `request.auth` (verified claims or an
/// authorizer's context; none when the request is anonymous) and the usage plan it counts
/// under.
#[derive(Clone, Copy)]
pub struct RoutingInput<'a> {
    pub request: &'a dyn RequestView,
    pub params: &'a [(String, String)],
    pub auth: Option<&'a Claims>,
    pub usage_plan: Option<&'a str>,
    /// `request.cert[client_base64]`, for backend URLs.
    pub client_cert: Option<&'a str>,
}

impl std::fmt::Debug for RoutingInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutingInput")
            .field("path", &self.request.path())
            .field("params", &self.params)
            .field("usage_plan", &self.usage_plan)
            .finish_non_exhaustive()
    }
}

impl RoutingInput<'_> {
    /// The selector's value: a repeated header's or parameter's first value (OCI), a query
    /// value percent-decoded, the host without its port, and empty when absent.
    pub fn selector_value(&self, selector: &ContextVariable) -> String {
        let key = selector.key.as_deref().unwrap_or("");
        match selector.table {
            ContextTable::Headers => self
                .request
                .first_header(key)
                .map(|v| v.trim().to_owned())
                .unwrap_or_default(),
            ContextTable::Query => self
                .request
                .query()
                .unwrap_or("")
                .split('&')
                .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
                .find(|(name, _)| *name == key)
                .map(|(_, v)| String::from_utf8_lossy(&percent_decode(v)).into_owned())
                .unwrap_or_default(),
            ContextTable::Host => self
                .host()
                .map(|h| host_without_port(h).to_owned())
                .unwrap_or_default(),
            ContextTable::UsagePlan => self.usage_plan.unwrap_or_default().to_owned(),
            _ => self.variable(selector),
        }
    }

    /// A variable's text as a backend URL receives it (before [`expand_backend_url`] escapes
    /// it): as [`context_value`] renders it for every HTTP backend.
    pub fn variable(&self, variable: &ContextVariable) -> String {
        match variable.table {
            ContextTable::UsagePlan => self.usage_plan.unwrap_or_default().to_owned(),
            ContextTable::Cert => self.client_cert.unwrap_or_default().to_owned(),
            _ => context_value(
                variable,
                self.params,
                self.auth,
                self.request.query(),
                |name| self.request.first_header(name),
            ),
        }
    }

    fn host(&self) -> Option<&str> {
        self.request.first_header("host")
    }

    /// An HTTP backend's URL with this request's values ([`expand_backend_url`]).
    pub fn backend_url(&self, url: &str) -> Result<String, PathRejection> {
        match Template::parse(url) {
            Ok(template) => expand_backend_url(&template, |v| self.variable(v)),
            Err(_) => Ok(url.to_owned()),
        }
    }
}

/// What `check` reports for a route with a `DYNAMIC_ROUTING_BACKEND`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingJudgement {
    pub choice: RoutingChoice,
    /// The chosen HTTP backend's URL with the request's values, when it is one and they fit.
    pub url: Option<String>,
    /// Why the chosen HTTP backend's URL refused the request's values (400).
    pub url_rejected: Option<PathRejection>,
}

impl Verdict {
    /// For an allowed request to a route with a `DYNAMIC_ROUTING_BACKEND`: the rule the gateway
    /// would choose, with the verdict's status set as the gateway would answer (the stock
    /// response's, 404 for no rule, 400 when the selector's value does not fit the URL, `None`
    /// when an HTTP or functions backend answers). `None` for any other request.
    pub fn judge_routing(
        &mut self,
        deployment: &Deployment,
        input: &RoutingInput<'_>,
    ) -> Option<RoutingJudgement> {
        if self.decision != Decision::Allow {
            return None;
        }
        let route = deployment.routes.get(self.route.as_ref()?.index)?;
        let Backend::Dynamic(routing) = &route.backend else {
            return None;
        };
        let choice = choose_backend(routing, input.selector_value(&routing.selector));
        let mut judgement = RoutingJudgement {
            choice,
            url: None,
            url_rejected: None,
        };
        match judgement.choice.rule(routing).map(|r| &r.backend) {
            None => {
                self.decision = Decision::Deny;
                self.status = Some(NO_RULE_STATUS);
            }
            Some(Backend::Stock(stock)) => self.status = Some(stock.status),
            Some(Backend::Http(http)) => match input.backend_url(&http.url) {
                Ok(url) => {
                    self.status = None;
                    judgement.url = Some(url);
                }
                Err(why) => {
                    self.decision = Decision::Deny;
                    self.status = Some(400);
                    self.unrouted = Some(Unrouted::PathRejected(why));
                    judgement.url_rejected = Some(why);
                }
            },
            Some(Backend::Functions(_)) => self.status = None,
            Some(Backend::Dynamic(_) | Backend::OAuth2Login | Backend::OAuth2Logout(_)) => {
                self.status = Some(502)
            }
        }
        Some(judgement)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use claimgate_config::{SelectionKey, StockResponse};

    fn rule(name: &str, key: SelectionKey, is_default: bool) -> RoutingRule {
        RoutingRule {
            name: name.into(),
            key,
            is_default,
            backend: Backend::Stock(StockResponse {
                status: 200,
                body: None,
                headers: vec![],
            }),
        }
    }

    fn routing(default: bool) -> DynamicRouting {
        DynamicRouting {
            selector: ContextVariable::parse("request.headers[X-Vehicle]").unwrap(),
            rules: vec![
                rule("trucks", SelectionKey::Wildcard("truck*".into()), false),
                rule("cars", SelectionKey::AnyOf(vec!["Car".into()]), default),
                rule("any-truck", SelectionKey::Wildcard("tr+".into()), false),
                rule("vans", SelectionKey::Wildcard("+-van".into()), false),
            ],
        }
    }

    fn chosen<'r>(routing: &'r DynamicRouting, value: &str) -> (Option<&'r str>, Matched) {
        let choice = choose_backend(routing, value.to_owned());
        (
            choice.rule(routing).map(|r| r.name.as_str()),
            choice.matched,
        )
    }

    #[test]
    fn any_of_first_case_insensitively_then_wildcards_in_order_case_sensitively_then_default() {
        let with_default = routing(true);
        let without = routing(false);
        // ANY_OF wins over an earlier WILDCARD, ASCII case-insensitively.
        assert_eq!(chosen(&without, "CAR"), (Some("cars"), Matched::AnyOf));
        // The first WILDCARD in order: `truck*` before `tr+`.
        assert_eq!(
            chosen(&without, "truck"),
            (Some("trucks"), Matched::Wildcard)
        );
        assert_eq!(
            chosen(&without, "trx"),
            (Some("any-truck"), Matched::Wildcard)
        );
        // `+` is one or more: `tr` alone does not match `tr+`; `*` is zero or more.
        assert_eq!(chosen(&without, "tr"), (None, Matched::None));
        assert_eq!(chosen(&without, "x-van"), (Some("vans"), Matched::Wildcard));
        assert_eq!(chosen(&without, "-van"), (None, Matched::None));
        // WILDCARD is case-sensitive.
        assert_eq!(chosen(&without, "TRUCK"), (None, Matched::None));
        assert_eq!(
            chosen(&with_default, "TRUCK"),
            (Some("cars"), Matched::Default)
        );
        // Absent is the empty string: only a default (or a `*` alone) takes it.
        assert_eq!(chosen(&without, ""), (None, Matched::None));
        assert_eq!(chosen(&with_default, ""), (Some("cars"), Matched::Default));
        // Unicode look-alikes never fold (the Kelvin sign is not `k`).
        let kelvin = DynamicRouting {
            rules: vec![rule("k", SelectionKey::AnyOf(vec!["k".into()]), false)],
            ..routing(false)
        };
        assert_eq!(choose_backend(&kelvin, "\u{212A}".into()).rule, None);
    }

    #[test]
    fn records_name_the_rule_and_bound_the_value() {
        let routing = routing(true);
        let event = choose_backend(&routing, "car".into()).event(&routing);
        assert_eq!(
            (event.code.as_ref(), event.level, event.message.as_ref()),
            (
                "dynamicRouting.backendMatched",
                "INFO",
                "Backend rule 'cars' matched request.headers[X-Vehicle] = 'car'."
            )
        );
        let event = choose_backend(&routing, "boat".into()).event(&routing);
        assert_eq!(event.code, "dynamicRouting.defaultBackendMatched");
        assert!(event.message.contains("'cars'"), "{}", event.message);
        let long = "b".repeat(10_000);
        let event = choose_backend(&self::routing(false), long).event(&self::routing(false));
        assert_eq!(
            (event.code.as_ref(), event.level),
            ("dynamicRouting.backendRejected", "WARN")
        );
        assert!(event.message.len() < 400, "{}", event.message.len());
    }
}
