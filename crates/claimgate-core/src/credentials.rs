//! Which query parameters carry credentials, so that no log and no printed request shows them:
//! the one rule the gateway's access log (`requestUri`) and `claimgate check` both apply.

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
    query_name_is(raw, "access_token")
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

/// Whether the query parameter name `raw`, as sent, is `wanted` once percent-decoded (ASCII
/// case-insensitively), without allocating.
pub fn query_name_is(raw: &str, wanted: &str) -> bool {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let (raw, wanted) = (raw.as_bytes(), wanted.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < raw.len() {
        let byte = match raw[i] {
            b'%' if i + 2 < raw.len() => match (hex(raw[i + 1]), hex(raw[i + 2])) {
                (Some(high), Some(low)) => {
                    i += 2;
                    high << 4 | low
                }
                _ => b'%',
            },
            other => other,
        };
        i += 1;
        if wanted.get(j).is_none_or(|w| !w.eq_ignore_ascii_case(&byte)) {
            return false;
        }
        j += 1;
    }
    j == wanted.len()
}

#[cfg(test)]
mod tests {
    use super::query_name_is;

    #[test]
    fn query_names_are_compared_decoded_and_case_insensitively() {
        for raw in [
            "access_token",
            "ACCESS_TOKEN",
            "access%5Ftoken",
            "%61ccess%5ftoken",
        ] {
            assert!(query_name_is(raw, "access_token"), "{raw}");
        }
        for raw in [
            "access_tokens",
            "access_toke",
            "",
            "access%5",
            "access%5Gtoken",
            "%",
        ] {
            assert!(!query_name_is(raw, "access_token"), "{raw}");
        }
        assert!(query_name_is("jw%74", "jwt"));
        assert!(!query_name_is("jwt", "jwt%"));
    }
}
