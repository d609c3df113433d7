//! Gateway resource files (`serve --gateway`): OCI's three shapes, both spellings of the TLS
//! flags, and each bad input with the path and message it is reported at.

use claimgate_config::*;
use serde_json::{json, Value};
use std::time::Duration;

fn secrets() -> Secrets {
    Secrets::parse(
        r#"{
            "ocid1.vaultsecret.oc1..cache": {"1": "{\"username\": \"app\", \"password\": \"p4ss\"}",
                                            "2": {"password": "only-pw"}},
            "ocid1.vaultsecret.oc1..notjson": "p4ss",
            "ocid1.vaultsecret.oc1..nopw": {"username": "app"}
        }"#,
    )
    .unwrap()
}

fn cache(overrides: Value) -> Value {
    let mut details = json!({
        "type": "EXTERNAL_RESP_CACHE",
        "servers": [{"host": "127.0.0.1", "port": 6380}],
        "authenticationSecretId": "ocid1.vaultsecret.oc1..cache",
        "authenticationSecretVersionNumber": 1
    });
    for (k, v) in overrides.as_object().unwrap() {
        details[k] = v.clone();
    }
    json!({"compartmentId": "ocid1.compartment.oc1..x", "endpointType": "PUBLIC",
           "subnetId": "ocid1.subnet.oc1..x", "responseCacheDetails": details})
}

fn load(value: &Value) -> LoadedGateway {
    load_gateway_str(&value.to_string(), &secrets())
        .unwrap_or_else(|r| panic!("refused: {:#?}", r.errors))
}

fn errors(value: &Value) -> Vec<String> {
    match load_gateway_str(&value.to_string(), &secrets()) {
        Ok(loaded) => panic!("accepted: {loaded:?}"),
        Err(r) => r.errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn create_details_with_defaults() {
    let loaded = load(&cache(json!({})));
    let server = loaded.gateway.response_cache.unwrap();
    assert_eq!(server.host, "127.0.0.1");
    assert_eq!(server.port, 6380);
    assert_eq!(server.username.as_deref(), Some("app"));
    assert_eq!(server.password, "p4ss");
    assert!(!server.tls);
    assert!(server.verify_tls);
    assert_eq!(server.connect_timeout, Duration::from_millis(1000));
    assert_eq!(server.read_timeout, Duration::from_millis(1000));
    assert_eq!(server.send_timeout, Duration::from_millis(1000));
    assert_eq!(server.shown(), "redis://127.0.0.1:6380");
    // endpointType and subnetId are named in one warning; compartmentId is metadata.
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "endpointType, subnetId are not used by claimgate (its listener, certificates and \
          trusted CAs come from serve's flags); only responseCacheDetails is"
        ]
    );
}

#[test]
fn the_get_shape_with_every_documented_member() {
    // reference/oci-policies.md §G.3 plus the GET shape's own members.
    let gateway = json!({
        "id": "ocid1.apigateway.oc1..gw", "displayName": "gw", "lifecycleState": "ACTIVE",
        "compartmentId": "ocid1.compartment.oc1..example", "endpointType": "PUBLIC",
        "subnetId": "ocid1.subnet.oc1..example",
        "networkSecurityGroupIds": ["ocid1.networksecuritygroup.oc1..example"],
        "certificateId": "ocid1.certificate.oc1..example", "hostname": "x.apigateway.oci.example",
        "ipAddresses": [{"ipAddress": "10.0.0.5"}], "timeCreated": "2026-01-01T00:00:00Z",
        "timeUpdated": "2026-01-01T00:00:00Z", "lifecycleDetails": null, "locks": [],
        "freeformTags": {}, "definedTags": {}, "systemTags": {},
        "responseCacheDetails": { "type": "EXTERNAL_RESP_CACHE",
            "servers": [ { "host": "cache.example.com", "port": 6379 } ],
            "authenticationSecretId": "ocid1.vaultsecret.oc1..cache", "authenticationSecretVersionNumber": 2,
            "isSslEnabled": true, "isSslVerifyDisabled": true,
            "connectTimeoutInMs": 200, "readTimeoutInMs": 300, "sendTimeoutInMs": 400 },
        "caBundles": [ { "type": "CA_BUNDLE", "caBundleId": "ocid1.cabundle.oc1..example" } ],
        "ipMode": "IPV4", "ipv4AddressConfiguration": {"reservedIpIds": []},
        "ipv6AddressConfiguration": {"addresses": [], "subnetCidrs": []}
    });
    let loaded = load(&gateway);
    assert_eq!(
        loaded.gateway.id.as_deref(),
        Some("ocid1.apigateway.oc1..gw")
    );
    assert_eq!(loaded.gateway.display_name.as_deref(), Some("gw"));
    let server = loaded.gateway.response_cache.unwrap();
    assert_eq!(
        (server.host.as_str(), server.port),
        ("cache.example.com", 6379)
    );
    assert_eq!(server.username, None);
    assert_eq!(server.password, "only-pw");
    assert!(server.tls && !server.verify_tls);
    assert_eq!(server.connect_timeout, Duration::from_millis(200));
    assert_eq!(server.read_timeout, Duration::from_millis(300));
    assert_eq!(server.send_timeout, Duration::from_millis(400));
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    let warning = loaded.warnings[0].to_string();
    for name in [
        "endpointType",
        "certificateId",
        "caBundles",
        "ipMode",
        "hostname",
    ] {
        assert!(warning.contains(name), "{warning}");
    }
}

#[test]
fn the_cli_read_back_in_kebab_case() {
    let read_back = json!({"etag": "abc", "data": {
        "id": "ocid1.apigateway.oc1..gw", "display-name": "gw", "lifecycle-state": "ACTIVE",
        "compartment-id": "ocid1.compartment.oc1..x", "endpoint-type": "PRIVATE",
        "response-cache-details": {"type": "EXTERNAL_RESP_CACHE",
            "servers": [{"host": "10.0.0.9", "port": 6379}],
            "authentication-secret-id": "ocid1.vaultsecret.oc1..cache",
            "authentication-secret-version-number": 1,
            "is-ssl-enabled": true, "is-ssl-verify-disabled": false,
            "connect-timeout-in-ms": 1000, "read-timeout-in-ms": 1000, "send-timeout-in-ms": 50}}});
    let loaded = load(&read_back);
    let server = loaded.gateway.response_cache.unwrap();
    assert_eq!(server.shown(), "rediss://10.0.0.9:6379");
    assert!(server.verify_tls);
    assert_eq!(server.send_timeout, Duration::from_millis(50));
    assert_eq!(
        loaded.warnings[0].to_string(),
        "data: endpointType is not used by claimgate (its listener, certificates and trusted \
         CAs come from serve's flags); only responseCacheDetails is"
    );
}

#[test]
fn the_documentation_spelling_of_the_tls_flags() {
    let loaded = load(&cache(
        json!({"isSSLEnabled": true, "isSSLVerifyDisabled": true}),
    ));
    let server = loaded.gateway.response_cache.unwrap();
    assert!(server.tls && !server.verify_tls);
    assert_eq!(
        errors(&cache(json!({"isSSLEnabled": true, "isSslEnabled": false}))),
        ["responseCacheDetails.isSSLEnabled: is the same flag as \
          responseCacheDetails.isSslEnabled; give one of them"]
    );
}

#[test]
fn none_and_absent_mean_no_cache() {
    let none = json!({"responseCacheDetails": {"type": "NONE"}});
    assert_eq!(load(&none).gateway.response_cache, None);
    let absent = json!({"displayName": "gw"});
    let loaded = load(&absent);
    assert_eq!(loaded.gateway.response_cache, None);
    assert!(loaded.warnings.is_empty());
}

#[test]
fn bad_inputs_are_reported_at_their_paths() {
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            cache(json!({"servers": [{"host": "127.0.0.1", "port": 6379}, {"host": "127.0.0.2", "port": 6379}]})),
            vec!["responseCacheDetails.servers: 2 servers given; OCI supports a single cache server (not a cluster)"],
        ),
        (
            cache(json!({"servers": []})),
            vec!["responseCacheDetails.servers: one cache server is required"],
        ),
        (
            cache(json!({"authenticationSecretId": "ocid1.vaultsecret.oc1..missing"})),
            vec!["responseCacheDetails.authenticationSecretId: secret 'ocid1.vaultsecret.oc1..missing' is not in the secrets file (give it with --secrets FILE)"],
        ),
        (
            cache(json!({"authenticationSecretVersionNumber": 3})),
            vec!["responseCacheDetails.authenticationSecretId: secret 'ocid1.vaultsecret.oc1..cache' has no version 3 in the secrets file (it has 1, 2) (give it with --secrets FILE)"],
        ),
        (
            cache(json!({"authenticationSecretId": "ocid1.vaultsecret.oc1..notjson"})),
            vec!["responseCacheDetails.authenticationSecretId: secret 'ocid1.vaultsecret.oc1..notjson' version 1 is not a JSON object; expected {\"username\": \"...\", \"password\": \"...\"} (username optional)"],
        ),
        (
            cache(json!({"authenticationSecretId": "ocid1.vaultsecret.oc1..nopw"})),
            vec!["responseCacheDetails.authenticationSecretId: secret 'ocid1.vaultsecret.oc1..nopw' version 1 has no password; expected {\"username\": \"...\", \"password\": \"...\"} (username optional)"],
        ),
        (
            cache(json!({"servers": [{"host": "127.0.0.1", "port": 70000}]})),
            vec!["responseCacheDetails.servers[0].port: 70000 is above the maximum 65535"],
        ),
        (
            cache(json!({"servers": [{"host": "127.0.0.1", "port": 0}]})),
            vec!["responseCacheDetails.servers[0].port: 0 is below the minimum 1"],
        ),
        (
            cache(json!({"servers": [{"host": "::1", "port": 6379}]})),
            vec!["responseCacheDetails.servers[0].host: '::1' is an IPv6 address; OCI takes a host name or an IPv4 address"],
        ),
        (
            cache(json!({"servers": [{"port": 6379}]})),
            vec!["responseCacheDetails.servers[0].host: is required"],
        ),
        (
            cache(json!({"isSslEnabled": "yes"})),
            vec!["responseCacheDetails.isSslEnabled: expected true or false, found a string"],
        ),
        (
            cache(json!({"readTimeoutInMs": -5})),
            vec!["responseCacheDetails.readTimeoutInMs: -5 is below the minimum 1"],
        ),
        (
            cache(json!({"servers": {"host": "127.0.0.1", "port": 6379}})),
            vec!["responseCacheDetails.servers: expected an array, found an object"],
        ),
        (
            cache(json!({"type": "EXTERNAL_CACHE"})),
            vec!["responseCacheDetails.type: 'EXTERNAL_CACHE' is not a response cache type (EXTERNAL_RESP_CACHE, NONE)"],
        ),
        (
            cache(json!({"readTimeoutMs": 5})),
            vec!["responseCacheDetails.readTimeoutMs: unknown member (did you mean 'readTimeoutInMs'?)"],
        ),
        (
            json!({"responseCacheDetails": "EXTERNAL_RESP_CACHE"}),
            vec!["responseCacheDetails: expected an object, found a string"],
        ),
        (
            json!([{"displayName": "gw"}]),
            vec!["not a gateway file: expected a JSON object (OCI's CreateGatewayDetails or Gateway) or the CLI's {\"data\": ...}"],
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(errors(&input), expected, "{input}");
    }
}

#[test]
fn secret_values_never_appear_in_messages() {
    let value = cache(json!({"authenticationSecretId": "ocid1.vaultsecret.oc1..notjson"}));
    let all = errors(&value).join("\n");
    assert!(!all.contains("p4ss"), "{all}");
}

#[test]
fn the_documented_example_loads() {
    let dir = format!(
        "{}/../../examples/response-cache",
        env!("CARGO_MANIFEST_DIR")
    );
    let read = |name: &str| std::fs::read_to_string(format!("{dir}/{name}")).unwrap();
    let secrets = Secrets::parse(&read("secrets.json")).unwrap();
    let loaded = load_gateway_str(&read("gateway.json"), &secrets).unwrap();
    let server = loaded.gateway.response_cache.unwrap();
    assert_eq!(server.shown(), "redis://127.0.0.1:6390");
    assert_eq!(server.username.as_deref(), Some("claimgate"));
    assert_eq!(server.read_timeout, Duration::from_millis(250));
    let deployment = load_str(&read("deployment.json"), &LoadOptions::default()).unwrap();
    assert!(deployment.deployment.unenforced.is_empty());
    let routes = &deployment.deployment.routes;
    assert_eq!(
        routes[0]
            .response_cache_store
            .map(|s| s.time_to_live_seconds),
        Some(30)
    );
    let me = routes[1].response_cache_lookup.as_ref().unwrap();
    assert!(me.private_caching);
    assert_eq!(
        me.key_additions[0].as_str(),
        "${request.headers[Authorization]}"
    );
}

#[test]
fn the_route_store_policy_in_the_documentations_spelling_too() {
    let route = |policies: Value| {
        json!({"pathPrefix": "/v1", "specification": {"routes": [{"path": "/a", "methods": ["GET"],
            "requestPolicies": {"responseCacheLookup": {"type": "SIMPLE_LOOKUP_POLICY"}},
            "responsePolicies": policies,
            "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200}}]}})
        .to_string()
    };
    let store = json!({"type": "FIXED_TTL_STORE_POLICY", "timeToLiveInSeconds": 9});
    let loaded = load_str(
        &route(json!({"responseCacheStorage": store})),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(
        loaded.deployment.routes[0]
            .response_cache_store
            .map(|s| s.time_to_live_seconds),
        Some(9)
    );
    let both = load_str(
        &route(json!({"responseCacheStore": store, "responseCacheStorage": store})),
        &LoadOptions::default(),
    )
    .unwrap_err();
    let errors: Vec<String> = both.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        [
            "specification.routes[0].responsePolicies.responseCacheStorage: is the same policy as \
          specification.routes[0].responsePolicies.responseCacheStore; give one of them"
        ]
    );
}
