//! Prometheus metrics, with the names and labels SPEC.md "Operations" fixes. Label values are
//! low-cardinality by construction: deployments and route templates come from configuration,
//! never from the raw request path.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    deployment: String,
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    deployment: String,
    decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    deployment: String,
    check: String,
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
struct DeploymentLabels {
    deployment: String,
}

fn duration_histogram() -> Histogram {
    // OpenTelemetry's advisory boundaries for http.server.request.duration, in seconds.
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    ])
}

/// Every metric the gateway exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Histogram, fn() -> Histogram>,
    decisions: Family<DecisionLabels, Counter>,
    failures: Family<CheckLabels, Counter>,
    key_fetches: Family<FetchLabels, Counter>,
    token_cache: Family<ResultLabels, Counter>,
    reloads: Family<ResultLabels, Counter>,
    rate_limited: Family<DeploymentLabels, Counter>,
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
        Self {
            registry,
            requests,
            decisions,
            failures,
            key_fetches,
            token_cache,
            reloads,
            rate_limited,
        }
    }

    pub fn request(&self, deployment: &str, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                deployment: deployment.to_owned(),
                route: route.to_owned(),
                method: method.to_owned(),
                status,
            })
            .observe(seconds);
    }

    pub fn decision(&self, deployment: &str, decision: &'static str) {
        self.decisions
            .get_or_create(&DecisionLabels {
                deployment: deployment.to_owned(),
                decision,
            })
            .inc();
    }

    pub fn check_failure(&self, deployment: &str, check: String) {
        self.failures
            .get_or_create(&CheckLabels {
                deployment: deployment.to_owned(),
                check,
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

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
