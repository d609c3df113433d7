//! Prometheus metrics, with the names and labels SPEC.md "Operations" fixes. Label values are
//! low-cardinality by construction: deployments and route templates come from configuration,
//! never from the raw request path, and a method outside the standard ones is `_OTHER`.
//!
//! The per-request metrics are updated through handles kept by their labels and found with
//! borrowed label values, so a request builds no owned label set (three `String`s) to find its
//! series; the owned set is made once, when the series is created.

use indexmap::{Equivalent, IndexMap};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::hash::Hash;
use std::sync::{PoisonError, RwLock};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    deployment: String,
    route: String,
    method: String,
    status: u16,
}

/// `RequestLabels` borrowed. The derived `Hash` hashes the same values in the same order as
/// `RequestLabels`' (a `String` hashes as its `str`), as `Equivalent` lookups need.
#[derive(Hash)]
struct RequestKey<'a> {
    deployment: &'a str,
    route: &'a str,
    method: &'a str,
    status: u16,
}

impl Equivalent<RequestLabels> for RequestKey<'_> {
    fn equivalent(&self, key: &RequestLabels) -> bool {
        self.status == key.status
            && self.route == key.route
            && self.method == key.method
            && self.deployment == key.deployment
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    deployment: String,
    decision: &'static str,
}

/// `DecisionLabels` borrowed (hashed alike, see `RequestKey`).
#[derive(Hash)]
struct DecisionKey<'a> {
    deployment: &'a str,
    decision: &'static str,
}

impl Equivalent<DecisionLabels> for DecisionKey<'_> {
    fn equivalent(&self, key: &DecisionLabels) -> bool {
        self.decision == key.decision && self.deployment == key.deployment
    }
}

/// Handles of the series of one family already created (a histogram or counter handle shares
/// its series' state), found by borrowed labels.
#[derive(Debug)]
struct Handles<S, M> {
    series: RwLock<IndexMap<S, M>>,
}

impl<S, M> Default for Handles<S, M> {
    fn default() -> Self {
        Self {
            series: RwLock::new(IndexMap::new()),
        }
    }
}

impl<S: Hash + Eq, M> Handles<S, M> {
    /// Applies `update` to the series `key` names; the first time, `create` makes its owned
    /// labels and its handle (from the family, so that the family exports it).
    fn update<Q>(&self, key: &Q, create: impl FnOnce() -> (S, M), update: impl FnOnce(&M))
    where
        Q: Hash + Equivalent<S>,
    {
        // Handles are only ever added: a panic elsewhere cannot leave the map inconsistent.
        if let Some(metric) = self
            .series
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
        {
            return update(metric);
        }
        let mut series = self.series.write().unwrap_or_else(PoisonError::into_inner);
        let (labels, metric) = create();
        update(series.entry(labels).or_insert(metric));
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    deployment: String,
    check: String,
}

/// `claimgate_request_validation_failures_total`: the route is its template and `kind`/`mode`
/// fixed words, so the set is bounded by configuration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ValidationLabels {
    deployment: String,
    route: String,
    kind: &'static str,
    mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FetchLabels {
    deployment: String,
    kind: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheResultLabels {
    deployment: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeploymentLabels {
    deployment: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UsageLabels {
    usage_plan: String,
    entitlement: String,
    subscriber: String,
}

/// `UsageLabels` borrowed (hashed alike, see `RequestKey`).
#[derive(Hash)]
struct UsageKey<'a> {
    usage_plan: &'a str,
    entitlement: &'a str,
    subscriber: &'a str,
}

impl Equivalent<UsageLabels> for UsageKey<'_> {
    fn equivalent(&self, key: &UsageLabels) -> bool {
        self.usage_plan == key.usage_plan
            && self.entitlement == key.entitlement
            && self.subscriber == key.subscriber
    }
}

impl UsageKey<'_> {
    fn owned(&self) -> UsageLabels {
        UsageLabels {
            usage_plan: self.usage_plan.to_owned(),
            entitlement: self.entitlement.to_owned(),
            subscriber: self.subscriber.to_owned(),
        }
    }
}

/// The counters of one (plan, entitlement, subscriber): permitted, rejected, breached_allowed.
#[derive(Debug, Clone)]
struct UsageSeries {
    actions: [Counter; 3],
    /// Only for entitlements with a quota.
    used: Option<prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UsageActionLabels {
    usage_plan: String,
    entitlement: String,
    subscriber: String,
    action: &'static str,
}

/// What the usage-plan policy did with a request (`action` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageAction {
    Permitted,
    Rejected,
    BreachedAllowed,
}

impl UsageAction {
    fn index(self) -> usize {
        match self {
            Self::Permitted => 0,
            Self::Rejected => 1,
            Self::BreachedAllowed => 2,
        }
    }
}

const USAGE_ACTIONS: [&str; 3] = ["permitted", "rejected", "breached_allowed"];

fn duration_histogram() -> Histogram {
    // OpenTelemetry's advisory boundaries for http.server.request.duration, in seconds.
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    ])
}

/// The `method` label of a request: the method itself when it is a standard one (RFC 9110
/// §9, and PATCH), else `_OTHER`, as OpenTelemetry's `http.request.method` does. The method is
/// the client's to choose (any token, any length): taken as it is, distinct methods would make
/// the series, and `/metrics`, grow without bound. Deployments can name only standard methods
/// (the configuration refuses others), so every method a route answers keeps its label.
fn method_label(method: &str) -> &str {
    const STANDARD: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
    ];
    if STANDARD.contains(&method) {
        method
    } else {
        "_OTHER"
    }
}

/// Every metric the gateway exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Histogram, fn() -> Histogram>,
    request_handles: Handles<RequestLabels, Histogram>,
    decisions: Family<DecisionLabels, Counter>,
    decision_handles: Handles<DecisionLabels, Counter>,
    failures: Family<CheckLabels, Counter>,
    key_fetches: Family<FetchLabels, Counter>,
    token_cache: Family<ResultLabels, Counter>,
    reloads: Family<ResultLabels, Counter>,
    rate_limited: Family<DeploymentLabels, Counter>,
    shared_state_errors: Family<OperationLabels, Counter>,
    shared_state_up: prometheus_client::metrics::gauge::Gauge,
    response_cache: Family<CacheResultLabels, Counter>,
    usage_requests: Family<UsageActionLabels, Counter>,
    usage_used: Family<
        UsageLabels,
        prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>,
    >,
    usage_handles: Handles<UsageLabels, UsageSeries>,
    validation_failures: Family<ValidationLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        let decisions = Family::default();
        let failures = Family::default();
        let key_fetches = Family::default();
        let token_cache = Family::default();
        let reloads = Family::default();
        let rate_limited = Family::default();
        let shared_state_errors = Family::default();
        let shared_state_up = prometheus_client::metrics::gauge::Gauge::default();
        registry.register(
            "http_server_request_duration_seconds",
            "Duration of HTTP server requests",
            requests.clone(),
        );
        registry.register(
            "claimgate_auth_decisions",
            "Authentication decisions by deployment",
            decisions.clone(),
        );
        registry.register(
            "claimgate_auth_check_failures",
            "Failed checks by deployment and check id",
            failures.clone(),
        );
        registry.register(
            "claimgate_key_fetches",
            "Key set, discovery and introspection fetches by result",
            key_fetches.clone(),
        );
        registry.register(
            "claimgate_token_cache",
            "Verified-token cache lookups by result",
            token_cache.clone(),
        );
        registry.register(
            "claimgate_config_reloads",
            "Configuration reloads by result",
            reloads.clone(),
        );
        registry.register(
            "claimgate_rate_limited",
            "Requests refused by rate limiting",
            rate_limited.clone(),
        );
        registry.register(
            "claimgate_shared_state_errors",
            "Shared state (Redis) operations that failed, by operation",
            shared_state_errors.clone(),
        );
        registry.register(
            "claimgate_shared_state_up",
            "1 while the shared state store (Redis) is used, 0 while this replica falls back",
            shared_state_up.clone(),
        );
        let response_cache = Family::default();
        registry.register(
            "claimgate_response_cache",
            "Requests on response-caching routes by deployment and X-Cache-Status (HIT, MISS, BYPASS)",
            response_cache.clone(),
        );
        let usage_requests = Family::default();
        let usage_used = Family::default();
        registry.register(
            "claimgate_usage_plan_requests",
            "Requests under usage plans by plan, entitlement, subscriber and action",
            usage_requests.clone(),
        );
        registry.register(
            "claimgate_usage_plan_quota_used_ratio",
            "Quota used in the current period over the quota, by plan, entitlement, subscriber",
            usage_used.clone(),
        );
        let validation_failures = Family::default();
        registry.register(
            "claimgate_request_validation_failures",
            "Request validations that failed, by deployment, route, kind (header, query, body) and mode (ENFORCING, PERMISSIVE)",
            validation_failures.clone(),
        );
        Self {
            validation_failures,
            usage_requests,
            usage_used,
            usage_handles: Handles::default(),
            registry,
            requests,
            request_handles: Handles::default(),
            decisions,
            decision_handles: Handles::default(),
            failures,
            key_fetches,
            token_cache,
            reloads,
            rate_limited,
            shared_state_errors,
            shared_state_up,
            response_cache,
        }
    }

    pub fn request(&self, deployment: &str, route: &str, method: &str, status: u16, seconds: f64) {
        let method = method_label(method);
        let key = RequestKey {
            deployment,
            route,
            method,
            status,
        };
        self.request_handles.update(
            &key,
            || {
                let labels = RequestLabels {
                    deployment: deployment.to_owned(),
                    route: route.to_owned(),
                    method: method.to_owned(),
                    status,
                };
                let histogram = self.requests.get_or_create(&labels).clone();
                (labels, histogram)
            },
            |histogram| histogram.observe(seconds),
        );
    }

    pub fn decision(&self, deployment: &str, decision: &'static str) {
        let key = DecisionKey {
            deployment,
            decision,
        };
        self.decision_handles.update(
            &key,
            || {
                let labels = DecisionLabels {
                    deployment: deployment.to_owned(),
                    decision,
                };
                let counter = self.decisions.get_or_create(&labels).clone();
                (labels, counter)
            },
            |counter| {
                counter.inc();
            },
        );
    }

    pub fn check_failure(&self, deployment: &str, check: String) {
        self.failures
            .get_or_create(&CheckLabels {
                deployment: deployment.to_owned(),
                check,
            })
            .inc();
    }

    /// One failed request validation (`kind`: `header`, `query`, `body`; `mode`: `ENFORCING`,
    /// `PERMISSIVE`). Only failures count, so owned labels cost nothing on allowed requests.
    pub fn validation_failure(
        &self,
        deployment: &str,
        route: &str,
        kind: &'static str,
        mode: &'static str,
    ) {
        self.validation_failures
            .get_or_create(&ValidationLabels {
                deployment: deployment.to_owned(),
                route: route.to_owned(),
                kind,
                mode,
            })
            .inc();
    }

    pub fn key_fetch(&self, deployment: &str, kind: &'static str, ok: bool) {
        self.key_fetches
            .get_or_create(&FetchLabels {
                deployment: deployment.to_owned(),
                kind,
                result: if ok { "ok" } else { "error" },
            })
            .inc();
    }

    /// The counter of cache hits (`true`) or misses.
    pub fn token_cache(&self, hit: bool) -> Counter {
        self.token_cache
            .get_or_create(&ResultLabels {
                result: if hit { "hit" } else { "miss" },
            })
            .clone()
    }

    pub fn reload(&self, ok: bool) {
        self.reloads
            .get_or_create(&ResultLabels {
                result: if ok { "ok" } else { "rejected" },
            })
            .inc();
    }

    pub fn rate_limited(&self, deployment: &str) {
        self.rate_limited
            .get_or_create(&DeploymentLabels {
                deployment: deployment.to_owned(),
            })
            .inc();
    }

    /// A shared-state operation that failed (`operation`: `rate_limit`, `usage_plan`,
    /// `introspection`, `response_cache`).
    pub fn shared_state_error(&self, operation: &'static str) {
        self.shared_state_errors
            .get_or_create(&OperationLabels { operation })
            .inc();
    }

    /// The `claimgate_response_cache_total` series of a deployment, for `HIT`, `MISS` and
    /// `BYPASS` in that order: made once when the deployment is loaded, so counting a request
    /// builds no labels.
    pub fn response_cache(&self, deployment: &str) -> [Counter; 3] {
        ["HIT", "MISS", "BYPASS"].map(|result| {
            self.response_cache
                .get_or_create(&CacheResultLabels {
                    deployment: deployment.to_owned(),
                    result,
                })
                .clone()
        })
    }

    /// Whether the shared state store is in use.
    pub fn shared_state_up(&self, up: bool) {
        self.shared_state_up.set(i64::from(up));
    }

    /// One request judged by a usage plan (ids, never the client token), and the quota used
    /// when the quota was counted; `quota`: the entitlement has one (the gauge exists).
    pub fn usage_plan(
        &self,
        usage_plan: &str,
        entitlement: &str,
        subscriber: &str,
        action: UsageAction,
        quota: bool,
        used_ratio: Option<f64>,
    ) {
        let key = UsageKey {
            usage_plan,
            entitlement,
            subscriber,
        };
        self.usage_handles.update(
            &key,
            || {
                let labels = key.owned();
                let actions = USAGE_ACTIONS.map(|action| {
                    self.usage_requests
                        .get_or_create(&UsageActionLabels {
                            usage_plan: labels.usage_plan.clone(),
                            entitlement: labels.entitlement.clone(),
                            subscriber: labels.subscriber.clone(),
                            action,
                        })
                        .clone()
                });
                let used = quota.then(|| self.usage_used.get_or_create(&labels).clone());
                (labels, UsageSeries { actions, used })
            },
            |series| {
                series.actions[action.index()].inc();
                if let (Some(used), Some(ratio)) = (&series.used, used_ratio) {
                    used.set(ratio);
                }
            },
        );
    }

    /// The quota used after a unit was given back (a 5xx answer).
    pub fn usage_plan_ratio(
        &self,
        usage_plan: &str,
        entitlement: &str,
        subscriber: &str,
        ratio: f64,
    ) {
        let key = UsageKey {
            usage_plan,
            entitlement,
            subscriber,
        };
        if let Some(series) = self
            .usage_handles
            .series
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            if let Some(used) = &series.used {
                used.set(ratio);
            }
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher as _;

    #[test]
    fn borrowed_keys_hash_like_the_labels() {
        let state = std::collections::hash_map::RandomState::new();
        let labels = RequestLabels {
            deployment: "orders".into(),
            route: "/items/{id}".into(),
            method: "GET".into(),
            status: 200,
        };
        let key = RequestKey {
            deployment: "orders",
            route: "/items/{id}",
            method: "GET",
            status: 200,
        };
        assert_eq!(state.hash_one(&labels), state.hash_one(&key));
        assert!(key.equivalent(&labels));
        assert!(!RequestKey { status: 404, ..key }.equivalent(&labels));
        let labels = DecisionLabels {
            deployment: "orders".into(),
            decision: "allow",
        };
        let key = DecisionKey {
            deployment: "orders",
            decision: "allow",
        };
        assert_eq!(state.hash_one(&labels), state.hash_one(&key));
        assert!(key.equivalent(&labels));
    }

    #[test]
    fn requests_and_decisions_are_exported_per_label_set() {
        let metrics = Metrics::new();
        for _ in 0..3 {
            metrics.request("orders", "/items", "GET", 200, 0.001);
        }
        metrics.request("orders", "/items", "GET", 404, 0.001);
        metrics.request("orders", "", "POST", 405, 0.001);
        metrics.decision("orders", "allow");
        metrics.decision("orders", "allow");
        metrics.decision("orders", "deny");
        let text = metrics.encode();
        for expected in [
            r#"http_server_request_duration_seconds_count{deployment="orders",route="/items",method="GET",status="200"} 3"#,
            r#"http_server_request_duration_seconds_count{deployment="orders",route="/items",method="GET",status="404"} 1"#,
            r#"http_server_request_duration_seconds_count{deployment="orders",route="",method="POST",status="405"} 1"#,
            r#"claimgate_auth_decisions_total{deployment="orders",decision="allow"} 2"#,
            r#"claimgate_auth_decisions_total{deployment="orders",decision="deny"} 1"#,
        ] {
            assert!(text.contains(expected), "{expected} not in\n{text}");
        }
        assert_eq!(metrics.request_handles.series.read().unwrap().len(), 3);
    }

    #[test]
    fn methods_outside_the_standard_ones_share_one_label() {
        let metrics = Metrics::new();
        for i in 0..50 {
            let method = format!("X{i}{}", "M".repeat(200));
            metrics.request("orders", "/items", &method, 405, 0.001);
        }
        // Methods are case-sensitive: `get` is not `GET`.
        metrics.request("orders", "/items", "get", 405, 0.001);
        for method in [
            "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
        ] {
            metrics.request("orders", "/items", method, 200, 0.001);
        }
        let text = metrics.encode();
        assert!(!text.contains("MMMM"), "a client's method is a label");
        assert!(!text.contains(r#"method="get""#));
        assert!(text.contains(
            r#"http_server_request_duration_seconds_count{deployment="orders",route="/items",method="_OTHER",status="405"} 51"#
        ));
        assert!(text.contains(r#"method="TRACE",status="200"} 1"#));
        assert_eq!(metrics.request_handles.series.read().unwrap().len(), 10);
    }
}
