//! Which subscriber, client, usage plan and entitlement a request is counted under, or why it
//! gets 403 (SPEC "Usage plans and subscribers"; OCI's resolution order). Pure: the caller
//! reads the token locations (`context_value`), and counting against the limits is the
//! gateway's (`check` knows no counters and never answers 429).

use claimgate_config::{
    Client, ContextVariable, Entitlement, Subscriber, Subscriptions, UsagePlan, UsagePlansPolicy,
};

/// The usage plan a request is counted under.
#[derive(Debug, Clone, Copy)]
pub struct UsagePlanMatch<'a> {
    pub subscriber: &'a Subscriber,
    pub client: &'a Client,
    pub plan: &'a UsagePlan,
    pub entitlement: &'a Entitlement,
    /// Where the client token was found.
    pub location: &'a ContextVariable,
}

/// Why a request is refused by the usage-plan policy (always 403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsagePlanRefusal {
    /// The execution-log code: `usagePlans.requestRejected` (no token, or nobody's) or
    /// `usagePlans.eligibleNotEntitled` (a subscriber without an entitlement here).
    pub code: &'static str,
    /// What happened, never quoting the token.
    pub reason: String,
    /// The subscriber, when the token was one's: (id, name).
    pub subscriber: Option<(String, String)>,
}

/// The outcome of the usage-plan policy for one request.
#[derive(Debug, Clone)]
pub enum UsagePlanDecision<'a> {
    Entitled(UsagePlanMatch<'a>),
    Refused(UsagePlanRefusal),
}

/// The status of a refusal.
pub const USAGE_PLAN_REFUSED_STATUS: u16 = 403;

/// Resolves the request's client token (the first of `tokenLocations` with a non-empty value,
/// as `value_at` reads it) to its subscriber and client, then the subscriber's plans in their
/// order to the first entitlement targeting `deployment_id`. `value_at` may lend the value (a
/// header's text) rather than copy it.
pub fn resolve_usage_plan<'a, V: AsRef<str>>(
    policy: &'a UsagePlansPolicy,
    subscriptions: &'a Subscriptions,
    deployment_id: &str,
    mut value_at: impl FnMut(&ContextVariable) -> V,
) -> UsagePlanDecision<'a> {
    let found = policy.token_locations.iter().find_map(|location| {
        let value = value_at(location);
        (!value.as_ref().is_empty()).then_some((location, value))
    });
    let Some((location, token)) = found else {
        return UsagePlanDecision::Refused(UsagePlanRefusal {
            code: "usagePlans.requestRejected",
            reason: format!(
                "no client token in {}",
                locations_text(&policy.token_locations)
            ),
            subscriber: None,
        });
    };
    let Some((subscriber, client)) = subscriptions.client(token.as_ref()) else {
        return UsagePlanDecision::Refused(UsagePlanRefusal {
            code: "usagePlans.requestRejected",
            reason: format!("the client token in {location} is no subscriber's"),
            subscriber: None,
        });
    };
    match subscriptions.entitled(subscriber, deployment_id) {
        Some(entitled) => UsagePlanDecision::Entitled(UsagePlanMatch {
            subscriber,
            client,
            plan: entitled.plan,
            entitlement: entitled.entitlement,
            location,
        }),
        None => UsagePlanDecision::Refused(UsagePlanRefusal {
            code: "usagePlans.eligibleNotEntitled",
            reason: format!(
                "subscriber '{}' has no usage plan with an entitlement for the deployment '{deployment_id}' (its plans: {})",
                subscriber.name,
                if subscriber.usage_plans.is_empty() {
                    "none".to_owned()
                } else {
                    subscriber.usage_plans.join(", ")
                }
            ),
            subscriber: Some((subscriber.id.clone(), subscriber.name.clone())),
        }),
    }
}

fn locations_text(locations: &[ContextVariable]) -> String {
    let names: Vec<String> = locations.iter().map(ToString::to_string).collect();
    names.join(" or ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use claimgate_config::{Client, Quota};

    fn subscriptions() -> Subscriptions {
        let plan = |id: &str, targets: &[&str]| UsagePlan {
            id: id.into(),
            name: format!("{id} plan"),
            entitlements: vec![Entitlement {
                name: format!("{id}-entitlement"),
                rate_limit: Some(10),
                quota: None::<Quota>,
                targets: targets.iter().map(|t| (*t).into()).collect(),
            }],
        };
        Subscriptions::new(
            vec![
                plan("free", &["orders"]),
                plan("gold", &["orders", "users"]),
            ],
            vec![Subscriber {
                id: "ocid1.subscriber.acme".into(),
                name: "acme".into(),
                clients: vec![Client {
                    name: "mobile".into(),
                    token: "tok-123".into(),
                }],
                usage_plans: vec!["free".into(), "gold".into()],
            }],
        )
        .unwrap()
    }

    fn policy() -> UsagePlansPolicy {
        UsagePlansPolicy {
            token_locations: vec![
                ContextVariable::parse("request.headers[x-api-key]").unwrap(),
                ContextVariable::parse("request.query[key]").unwrap(),
            ],
        }
    }

    #[test]
    fn the_first_location_present_and_the_first_plan_entitling_the_deployment_are_used() {
        let (subs, policy) = (subscriptions(), policy());
        let decision = resolve_usage_plan(&policy, &subs, "users", |l| {
            if l.to_string() == "request.query[key]" {
                "tok-123".into()
            } else {
                String::new()
            }
        });
        let UsagePlanDecision::Entitled(e) = decision else {
            panic!("{decision:?}")
        };
        assert_eq!(
            (
                e.subscriber.name.as_str(),
                e.client.name.as_str(),
                e.plan.id.as_str()
            ),
            ("acme", "mobile", "gold")
        );
        assert_eq!(e.location.to_string(), "request.query[key]");
        let decision = resolve_usage_plan(&policy, &subs, "orders", |_| "tok-123");
        let UsagePlanDecision::Entitled(e) = decision else {
            panic!("{decision:?}")
        };
        assert_eq!(e.plan.id, "free");
    }

    #[test]
    fn no_token_an_unknown_token_and_no_entitlement_are_403_without_the_token() {
        let (subs, policy) = (subscriptions(), policy());
        let refused = |deployment: &str, token: &str| match resolve_usage_plan(
            &policy,
            &subs,
            deployment,
            |_| token.to_owned(),
        ) {
            UsagePlanDecision::Refused(r) => r,
            other => panic!("{other:?}"),
        };
        let none = refused("orders", "");
        assert_eq!(none.code, "usagePlans.requestRejected");
        assert_eq!(
            none.reason,
            "no client token in request.headers[x-api-key] or request.query[key]"
        );
        let unknown = refused("orders", "guessed-token");
        assert_eq!(unknown.code, "usagePlans.requestRejected");
        assert!(!unknown.reason.contains("guessed"), "{}", unknown.reason);
        let other = refused("billing", "tok-123");
        assert_eq!(other.code, "usagePlans.eligibleNotEntitled");
        assert_eq!(
            other.subscriber,
            Some(("ocid1.subscriber.acme".into(), "acme".into()))
        );
        assert!(!other.reason.contains("tok-123"));
    }
}
