//! Usage plans and subscribers as the gateway uses them (SPEC "Usage plans and subscribers";
//! OCI's `UsagePlan`, `Subscriber`, `Entitlement`, `RateLimit`, `Quota`, `Client`). The files
//! they are read from are another module's business; these are the validated values.

use crate::model::ContextVariable;
use std::collections::HashMap;
use std::fmt;

/// `requestPolicies.usagePlans` of a deployment: where a request carries its client token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsagePlansPolicy {
    /// `tokenLocations`, in order; the first present in a request is used.
    pub token_locations: Vec<ContextVariable>,
}

/// A `UsagePlan` resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsagePlan {
    /// The plan's OCID (or any id the files agree on): what subscribers name.
    pub id: String,
    /// `displayName`, else the id.
    pub name: String,
    pub entitlements: Vec<Entitlement>,
}

/// An `Entitlement`: limits for the deployments it targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entitlement {
    /// Unique within its plan.
    pub name: String,
    /// `rateLimit`: requests per second (OCI's only unit); `None` is unlimited.
    pub rate_limit: Option<u64>,
    /// `quota`; `None` is unlimited.
    pub quota: Option<Quota>,
    /// `targets[].deploymentId`: the deployments (their `id`) this entitlement applies to.
    pub targets: Vec<String>,
}

/// A `Quota`: at most `value` requests per UTC calendar `unit` (`resetPolicy` `CALENDAR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub value: u64,
    pub unit: QuotaUnit,
    pub on_breach: OnBreach,
}

/// `Quota.unit`: the calendar period (UTC) a quota counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaUnit {
    Minute,
    Hour,
    Day,
    /// ISO week, from Monday 00:00 UTC.
    Week,
    /// From the 1st, 00:00 UTC.
    Month,
}

impl QuotaUnit {
    /// OCI's spelling (`configuredUnit` in the execution log).
    pub fn name(self) -> &'static str {
        match self {
            Self::Minute => "MINUTE",
            Self::Hour => "HOUR",
            Self::Day => "DAY",
            Self::Week => "WEEK",
            Self::Month => "MONTH",
        }
    }
}

/// `Quota.operationOnBreach`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBreach {
    /// `REJECT`: 429 until the next period.
    Reject,
    /// `ALLOW`: served, and logged as breached.
    Allow,
}

/// A `Subscriber` resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub id: String,
    /// `displayName`, else the id.
    pub name: String,
    pub clients: Vec<Client>,
    /// `usagePlans`: plan ids, in the subscriber's order (the first plan that entitles a
    /// deployment is the one used).
    pub usage_plans: Vec<String>,
}

/// A subscriber's `Client`: a name and the client token it sends.
#[derive(Clone, PartialEq, Eq)]
pub struct Client {
    pub name: String,
    /// The client token. Never logged, shown or used as a metric label.
    pub token: String,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("name", &self.name)
            .field("token", &"[redacted]")
            .finish()
    }
}

/// Plans and subscribers together, indexed for the request path: the subscriber of a client
/// token is one hash lookup, built once when the files are loaded. Its `Debug` leaves the
/// token index out (its keys are the tokens).
#[derive(Clone, Default)]
pub struct Subscriptions {
    plans: Vec<UsagePlan>,
    subscribers: Vec<Subscriber>,
    /// Client token → (subscriber, client) indexes.
    by_token: HashMap<String, (usize, usize)>,
    /// Plan id → plan index.
    by_plan: HashMap<String, usize>,
}

/// The plan and entitlement a subscriber has for one deployment.
#[derive(Debug, Clone, Copy)]
pub struct Entitled<'a> {
    pub plan: &'a UsagePlan,
    pub entitlement: &'a Entitlement,
}

impl fmt::Debug for Subscriptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriptions")
            .field("plans", &self.plans)
            .field("subscribers", &self.subscribers)
            .finish_non_exhaustive()
    }
}

impl Subscriptions {
    /// Indexes `plans` and `subscribers`; every problem is reported (a client token used twice,
    /// a subscriber naming an unknown plan, two plans or subscribers with one id).
    pub fn new(plans: Vec<UsagePlan>, subscribers: Vec<Subscriber>) -> Result<Self, Vec<String>> {
        let mut errors = Vec::new();
        let mut by_plan = HashMap::new();
        for (i, plan) in plans.iter().enumerate() {
            if by_plan.insert(plan.id.clone(), i).is_some() {
                errors.push(format!("two usage plans have the id '{}'", plan.id));
            }
        }
        let mut by_token = HashMap::new();
        let mut subscriber_ids = HashMap::new();
        for (s, subscriber) in subscribers.iter().enumerate() {
            if subscriber_ids.insert(subscriber.id.as_str(), s).is_some() {
                errors.push(format!("two subscribers have the id '{}'", subscriber.id));
            }
            for plan in &subscriber.usage_plans {
                if !by_plan.contains_key(plan) {
                    errors.push(format!(
                        "subscriber '{}' names the usage plan '{plan}', which no usage plan file defines",
                        subscriber.id
                    ));
                }
            }
            for (c, client) in subscriber.clients.iter().enumerate() {
                if let Some((other, other_client)) = by_token.insert(client.token.clone(), (s, c)) {
                    // Names only: the token itself is never repeated.
                    let other: &Subscriber = &subscribers[other];
                    errors.push(format!(
                        "the client token of '{}' in subscriber '{}' is also the token of '{}' in subscriber '{}' (client tokens must be unique)",
                        client.name, subscriber.id, other.clients[other_client].name, other.id
                    ));
                }
            }
        }
        if errors.is_empty() {
            Ok(Self {
                plans,
                subscribers,
                by_token,
                by_plan,
            })
        } else {
            Err(errors)
        }
    }

    /// The subscriber and client whose token is exactly `token`.
    pub fn client(&self, token: &str) -> Option<(&Subscriber, &Client)> {
        let &(s, c) = self.by_token.get(token)?;
        let subscriber = &self.subscribers[s];
        Some((subscriber, &subscriber.clients[c]))
    }

    /// The plan with this id.
    pub fn plan(&self, id: &str) -> Option<&UsagePlan> {
        self.by_plan.get(id).map(|&i| &self.plans[i])
    }

    /// OCI's resolution: the subscriber's plans in order, the first with an entitlement
    /// targeting `deployment_id`.
    pub fn entitled<'a>(
        &'a self,
        subscriber: &'a Subscriber,
        deployment_id: &str,
    ) -> Option<Entitled<'a>> {
        subscriber.usage_plans.iter().find_map(|id| {
            let plan = self.plan(id)?;
            let entitlement = plan
                .entitlements
                .iter()
                .find(|e| e.targets.iter().any(|t| t == deployment_id))?;
            Some(Entitled { plan, entitlement })
        })
    }

    pub fn plans(&self) -> &[UsagePlan] {
        &self.plans
    }

    pub fn subscribers(&self) -> &[Subscriber] {
        &self.subscribers
    }

    pub fn is_empty(&self) -> bool {
        self.plans.is_empty() && self.subscribers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(id: &str, entitlements: &[(&str, &[&str])]) -> UsagePlan {
        UsagePlan {
            id: id.into(),
            name: id.into(),
            entitlements: entitlements
                .iter()
                .map(|(name, targets)| Entitlement {
                    name: (*name).into(),
                    rate_limit: None,
                    quota: None,
                    targets: targets.iter().map(|t| (*t).into()).collect(),
                })
                .collect(),
        }
    }

    fn subscriber(id: &str, tokens: &[&str], plans: &[&str]) -> Subscriber {
        Subscriber {
            id: id.into(),
            name: id.into(),
            clients: tokens
                .iter()
                .enumerate()
                .map(|(i, t)| Client {
                    name: format!("client-{i}"),
                    token: (*t).into(),
                })
                .collect(),
            usage_plans: plans.iter().map(|p| (*p).into()).collect(),
        }
    }

    #[test]
    fn the_first_plan_of_the_subscriber_that_entitles_the_deployment_is_used() {
        let subs = Subscriptions::new(
            vec![
                plan("free", &[("basic", &["orders"])]),
                plan("premium", &[("all", &["orders", "users"])]),
            ],
            vec![subscriber("acme", &["t1", "t2"], &["free", "premium"])],
        )
        .unwrap();
        let (acme, client) = subs.client("t2").unwrap();
        assert_eq!(client.name, "client-1");
        let orders = subs.entitled(acme, "orders").unwrap();
        assert_eq!(
            (orders.plan.id.as_str(), orders.entitlement.name.as_str()),
            ("free", "basic")
        );
        let users = subs.entitled(acme, "users").unwrap();
        assert_eq!(users.plan.id, "premium");
        assert!(subs.entitled(acme, "billing").is_none());
        assert!(subs.client("T1").is_none(), "tokens match exactly");
    }

    #[test]
    fn duplicate_tokens_unknown_plans_and_ids_are_all_reported_without_the_token() {
        let errors = Subscriptions::new(
            vec![plan("free", &[]), plan("free", &[])],
            vec![
                subscriber("a", &["s3cret-token"], &["free", "gold"]),
                subscriber("b", &["s3cret-token"], &["free"]),
            ],
        )
        .unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors.iter().all(|e| !e.contains("s3cret")), "{errors:?}");
        assert!(format!("{:?}", subscriber("a", &["s3cret-token"], &[])).contains("[redacted]"));
        let index = Subscriptions::new(vec![], vec![subscriber("a", &["s3cret-token"], &[])]);
        assert!(!format!("{index:?}").contains("s3cret"), "{index:?}");
    }
}
