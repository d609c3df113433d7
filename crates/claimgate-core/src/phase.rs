//! The names of the request path's phases, in the order OCI runs its policies
//! (`reference/oci-policies.md` §0.3, settled in SPEC): the gateway runs them in this order,
//! `check` judges the offline ones in it, and logs and metrics can name them.
//!
//! Where OCI's documentation leaves the order open, claimgate's choice is written here:
//! deployment-wide rate limiting comes first (it protects the gateway, so nothing else runs for
//! a refused request), then CORS preflights (sent without credentials), then mutual TLS.

use std::fmt;

/// One phase of the request path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PhaseId {
    /// The deployment (path prefix) and route (path, method) of the request.
    Route,
    /// The deployment's `rateLimiting`.
    RateLimit,
    /// `cors`: preflights answered, actual answers decorated.
    Cors,
    /// `mutualTls`: the client certificate.
    MutualTls,
    /// `authentication` / `dynamicAuthentication`: who the caller is.
    Authentication,
    /// The route's `authorization`: whether that caller may use the route.
    Authorization,
    /// `usagePlans`: subscriber, entitlement, rate limit and quota.
    UsagePlan,
    /// `headerValidations`, `queryParameterValidations`, `bodyValidation`.
    Validation,
    /// `responseCacheLookup`.
    CacheLookup,
    /// Request `headerTransformations` and `queryParameterTransformations`.
    Transformations,
    /// The route's backend (HTTP, stock response, ...).
    Backend,
    /// `responsePolicies.headerTransformations`.
    ResponseTransformations,
    /// `responseCacheStore`.
    CacheStore,
    /// Metrics and the access log, for every request however it ended.
    Logs,
}

impl PhaseId {
    /// Every phase, in the order the gateway runs them.
    pub const ORDER: [PhaseId; 14] = [
        PhaseId::Route,
        PhaseId::RateLimit,
        PhaseId::Cors,
        PhaseId::MutualTls,
        PhaseId::Authentication,
        PhaseId::Authorization,
        PhaseId::UsagePlan,
        PhaseId::Validation,
        PhaseId::CacheLookup,
        PhaseId::Transformations,
        PhaseId::Backend,
        PhaseId::ResponseTransformations,
        PhaseId::CacheStore,
        PhaseId::Logs,
    ];

    /// The phase's name in logs, metrics and `check`.
    pub fn name(self) -> &'static str {
        match self {
            PhaseId::Route => "route",
            PhaseId::RateLimit => "rateLimit",
            PhaseId::Cors => "cors",
            PhaseId::MutualTls => "mutualTls",
            PhaseId::Authentication => "authentication",
            PhaseId::Authorization => "authorization",
            PhaseId::UsagePlan => "usagePlan",
            PhaseId::Validation => "validation",
            PhaseId::CacheLookup => "cacheLookup",
            PhaseId::Transformations => "transformations",
            PhaseId::Backend => "backend",
            PhaseId::ResponseTransformations => "responseTransformations",
            PhaseId::CacheStore => "cacheStore",
            PhaseId::Logs => "logs",
        }
    }
}

impl fmt::Display for PhaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::PhaseId;

    #[test]
    fn the_order_is_ocis_and_each_phase_appears_once() {
        let names: Vec<&str> = PhaseId::ORDER.iter().map(|p| p.name()).collect();
        assert_eq!(
            names,
            [
                "route",
                "rateLimit",
                "cors",
                "mutualTls",
                "authentication",
                "authorization",
                "usagePlan",
                "validation",
                "cacheLookup",
                "transformations",
                "backend",
                "responseTransformations",
                "cacheStore",
                "logs"
            ]
        );
        // The derived order is the declared one, so phases compare by position.
        let mut sorted = PhaseId::ORDER;
        sorted.sort();
        assert_eq!(sorted, PhaseId::ORDER);
        assert!(PhaseId::UsagePlan < PhaseId::Validation);
        assert!(PhaseId::Validation < PhaseId::CacheLookup);
    }
}
