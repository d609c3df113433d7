//! Which query parameters carry credentials, so that no log and no printed request shows them:
//! the one rule the gateway's access log (`requestUri`) and `claimgate check` both apply.

use crate::path::query_name_is;
use claimgate_config::{
    Authentication, ContextTable, CustomAuthentication, Deployment, ServerPolicy, TokenLocation,
};

/// Whether query parameter `raw` (the name as sent) carries a credential for `deployment`:
/// RFC 6750's `access_token` (a backend may read it whatever the deployment says), the
/// parameter a token policy reads (every server's with `dynamicAuthentication`), the
/// parameters an authorizer function is given, and usage-plan token locations. Names are
/// compared percent-decoded and ASCII case-insensitively (`access%5Ftoken` is `access_token` to
/// a backend; redacting too much costs nothing). Allocates nothing.
pub fn is_credential_parameter(deployment: &Deployment, raw: &str) -> bool {
    let token_reads = |location: &TokenLocation| matches!(location, TokenLocation::Query { name } if query_name_is(raw, name));
    let authorizer_reads = |policy: &CustomAuthentication| {
        policy
            .query_parameters()
            .any(|name| query_name_is(raw, name))
    };
    let usage_token = deployment.usage_plans.iter().any(|policy| {
        policy.token_locations.iter().any(|location| {
            location.table == ContextTable::Query
                && location
                    .key
                    .as_deref()
                    .is_some_and(|key| query_name_is(raw, key))
        })
    });
    // The OAUTH2 callback's code and state (on the login route, or any route without one).
    let oauth2_callback = matches!(&deployment.authentication, Authentication::Jwt(p) if p.oauth2.is_some())
        && (query_name_is(raw, "code") || query_name_is(raw, "state"));
    query_name_is(raw, "access_token")
        || oauth2_callback
        || usage_token
        || match &deployment.authentication {
            Authentication::Jwt(policy) => token_reads(&policy.location),
            Authentication::Custom(policy) => authorizer_reads(policy),
            Authentication::Dynamic(dynamic) => dynamic.servers.iter().any(|s| match &s.policy {
                ServerPolicy::Jwt(policy) => token_reads(&policy.location),
                ServerPolicy::Custom(policy) => authorizer_reads(policy),
            }),
            _ => false,
        }
}
