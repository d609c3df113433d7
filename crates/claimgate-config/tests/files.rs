//! Real deployment files as they are: the public examples in `tests/data/oci-examples/`, a CLI
//! read-back with `etag` and nulls, a bare kebab-case specification, files using every member,
//! what the loader models, what it warns about, and a file with several errors at once.

mod common;

use claimgate_config::*;
use common::*;
use serde_json::{json, Value};

const NOT_ENFORCED: &str = "is not enforced by claimgate yet ('serve' refuses this file)";

fn example(name: &str) -> String {
    let path = format!(
        "{}/../../tests/data/oci-examples/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/files/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn load_text(text: &str, prefix: Option<&str>) -> Result<Loaded, Rejected> {
    load_str(
        text,
        &LoadOptions {
            path_prefix: prefix.map(str::to_owned),
            name: "file".into(),
        },
    )
}

fn loads(text: &str, prefix: Option<&str>) -> Loaded {
    match load_text(text, prefix) {
        Ok(loaded) => loaded,
        Err(rejected) => panic!("refused: {:#?}", rejected.errors),
    }
}

fn strings(list: &[Diagnostic]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

const CUSTOM_EXAMPLE: &str = "custom-auth-modify-response-request-auth-headers.json";

/// The CUSTOM_AUTHENTICATION example with `isAnonymousAccessAllowed: true`, as its README entry,
/// the reference's excerpt and the repository's later version have it: the copy kept here says
/// `false` with six ANONYMOUS routes, which OCI's AuthenticationPolicy refuses.
fn custom_example() -> String {
    let text = example(CUSTOM_EXAMPLE);
    let flag = "\"isAnonymousAccessAllowed\": false";
    assert!(text.contains(flag));
    text.replace(flag, "\"isAnonymousAccessAllowed\": true")
}

/// As kept, the example's ANONYMOUS routes lack `isAnonymousAccessAllowed: true`: each is named.
#[test]
fn the_custom_example_as_kept_is_refused_for_its_anonymous_routes() {
    let rejected = load_text(&example(CUSTOM_EXAMPLE), None).unwrap_err();
    let expected: Vec<String> = [0, 1, 2, 3, 4, 6]
        .iter()
        .map(|i| {
            format!(
                "routes[{i}].requestPolicies.authorization: ANONYMOUS needs \
                 isAnonymousAccessAllowed: true in the authentication policy"
            )
        })
        .collect();
    assert_eq!(strings(&rejected.errors), expected);
}

fn not_enforced(path: &str) -> String {
    format!("{path}: {NOT_ENFORCED}")
}

#[test]
fn every_public_example_loads_with_exactly_the_expected_warnings() {
    let expected: Vec<(&str, Vec<String>)> = vec![
        // rateLimiting, cors and mutualTls are enforced by serve: no warning.
        (
            "cli-get-output-jwt-remote-jwks-request-auth-url.kebab.json",
            vec![],
        ),
        (
            "cli-get-output-jwt-remote-jwks-verify-claims.kebab.json",
            vec![],
        ),
        (
            "custom-auth-modify-response-request-auth-headers.json",
            vec![],
        ),
        ("mutual-tls-stock-response.json", vec![]),
        ("stock-response-and-http-path-param-rate-limit.json", vec![]),
        // ORACLE_FUNCTIONS_BACKEND is served (with --functions): no warning.
        ("three-backend-types-functions-stock-http.json", vec![]),
    ];
    let dir = format!(
        "{}/../../tests/data/oci-examples",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    on_disk.sort();
    let names: Vec<&str> = expected.iter().map(|(n, _)| *n).collect();
    assert_eq!(on_disk, names, "every example is covered");
    for (name, warnings) in expected {
        let text = if name == CUSTOM_EXAMPLE {
            custom_example()
        } else {
            example(name)
        };
        let loaded = loads(&text, None);
        assert_eq!(strings(&loaded.warnings), warnings, "{name}");
    }
}

#[test]
fn the_public_examples_become_the_expected_deployments() {
    let kebab = loads(
        &example("cli-get-output-jwt-remote-jwks-verify-claims.kebab.json"),
        Some("/admin"),
    )
    .deployment;
    assert_eq!(kebab.path_prefix, "/admin");
    let Authentication::Jwt(policy) = &kebab.authentication else {
        panic!("{:?}", kebab.authentication)
    };
    assert_eq!(policy.flavor, AuthFlavor::JwtAuthentication);
    assert_eq!(
        policy.max_clock_skew_seconds, 0.0,
        "null skew is the default 0"
    );
    assert_eq!(
        policy.verify_claims,
        [ClaimRule {
            key: "preferred_username".into(),
            values: vec!["Lucas.Jellema@amis.nl".into()],
            required: true
        }]
    );
    let KeySource::RemoteJwks(jwks) = &policy.keys else {
        panic!()
    };
    assert!(!jwks.ssl_verify_disabled, "null is false");
    assert_eq!(kebab.routes[0].methods, Methods::Any);
    assert_eq!(kebab.routes[0].execution_log_level, None);
    assert_eq!(kebab.execution_log_level, Some(LogLevel::Info));
    assert!(kebab.unenforced.is_empty(), "{:?}", kebab.unenforced);
    assert_eq!(
        kebab.cors,
        Some(Cors {
            allowed_origins: vec![
                "https://lucasjellema.github.io".into(),
                "http://localhost:5501".into()
            ],
            allowed_methods: vec!["*".into()],
            allowed_headers: vec![
                "Authorization".into(),
                "Content-Type".into(),
                "Asset-Path".into()
            ],
            exposed_headers: vec![],
            allow_credentials: true,
            max_age_seconds: 0,
        })
    );
    assert_eq!(kebab.mutual_tls, None, "an empty mutual-tls is inert");
    assert_eq!(kebab.rate_limiting, None);

    let mtls = loads(&example("mutual-tls-stock-response.json"), Some("/m")).deployment;
    assert!(mtls.unenforced.is_empty(), "{:?}", mtls.unenforced);
    assert_eq!(
        mtls.rate_limiting,
        Some(RateLimiting {
            requests_per_second: 1,
            key: RateKey::Total
        })
    );
    assert_eq!(
        mtls.mutual_tls,
        Some(MutualTls {
            verified_certificate_required: true,
            allowed_sans: vec![
                "client.a.apigw".into(),
                "client.b.apigw".into(),
                "client.c.apigw".into()
            ],
        })
    );

    let custom = loads(&custom_example(), None).deployment;
    let Authentication::Custom(policy) = &custom.authentication else {
        panic!("{:?}", custom.authentication)
    };
    assert_eq!(policy.function_id, "<apigw-authzr-fn-ocid>");
    assert!(policy.anonymous_allowed);
    assert_eq!(policy.cache_key, None);
    let AuthorizerInput::Multi(arguments) = &policy.input else {
        panic!("{:?}", policy.input)
    };
    let names: Vec<&str> = arguments.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["Cookie", "User-Agent"]);
    assert_eq!(arguments[0].1.table, ContextTable::Headers);
    assert_eq!(arguments[0].1.key.as_deref(), Some("Cookie"));
    let modify = policy.failure_response.as_ref().expect("MODIFY_RESPONSE");
    assert_eq!(modify.response_code, Some(ResponseCode::Status(302)));
    let set = &custom.routes[3]
        .header_transformations
        .as_ref()
        .unwrap()
        .set;
    assert_eq!(set.len(), 3);
    assert_eq!(set[0].name, "X-Query-Code");
    assert_eq!(set[0].if_exists, IfExists::Overwrite);
    assert_eq!(
        set[0].values[0].parts(),
        [TemplatePart::Variable(ContextVariable {
            table: ContextTable::Query,
            key: Some("code".into()),
            sub_key: None
        })]
    );

    let rate = loads(
        &example("stock-response-and-http-path-param-rate-limit.json"),
        None,
    )
    .deployment;
    let Backend::Http(http) = &rate.routes[1].backend else {
        panic!()
    };
    assert_eq!(
        http.url,
        "https://www.anapioficeandfire.com/api/characters/${request.path[characterId]}"
    );
    assert_eq!(
        (
            http.connect_timeout_seconds,
            http.read_timeout_seconds,
            http.send_timeout_seconds
        ),
        (60.0, 10.0, 10.0),
        "OCI's defaults"
    );
}

#[test]
fn a_cli_read_back_with_etag_nulls_and_server_defaults_loads_without_warnings() {
    let loaded = loads(&fixture("read-back.kebab.json"), None);
    assert_eq!(
        strings(&loaded.warnings),
        Vec::<String>::new(),
        "inert read-back defaults are not in effect"
    );
    let d = loaded.deployment;
    assert_eq!(d.id, "ocid1.apideployment.oc1.eu-frankfurt-1.aaaaexample");
    assert_eq!(d.display_name.as_deref(), Some("orders-v1"));
    assert_eq!(d.path_prefix, "/v1");
    assert_eq!(d.execution_log_level, Some(LogLevel::Warn));
    assert!(d.unenforced.is_empty(), "{:?}", d.unenforced);
    let Authentication::Jwt(policy) = &d.authentication else {
        panic!("{:?}", d.authentication)
    };
    assert_eq!(policy.flavor, AuthFlavor::TokenAuthentication);
    assert_eq!(policy.max_clock_skew_seconds, 30.0);
    assert_eq!(
        policy.issuers.as_deref(),
        Some(&["https://idp.example.com/".to_owned()][..])
    );
    assert_eq!(policy.failure_response, None);
    assert!(matches!(&policy.keys, KeySource::Static(keys) if keys.keys().len() == 1));
    let route = &d.routes[0];
    assert_eq!(
        route.authorization,
        Authorization::AnyOf(vec!["orders:read".into()])
    );
    assert_eq!(
        route.header_transformations, None,
        "empty set-headers is inert"
    );
    assert_eq!(route.query_parameter_transformations, None);
    assert_eq!(route.response_header_transformations, None);
}

#[test]
fn a_read_back_is_refused_with_kebab_paths() {
    let text = fixture("read-back.kebab.json").replace(
        "\"max-clock-skew-in-seconds\": 30.0",
        "\"max-clock-skew-in-seconds\": 300.0",
    );
    let rejected = load_text(&text, None).unwrap_err();
    assert_eq!(
        strings(&rejected.errors),
        [
            "data.specification.request-policies.authentication.max-clock-skew-in-seconds: 300.0 \
          is above the maximum 120"
        ]
    );
}

#[test]
fn a_bare_kebab_specification_takes_the_given_prefix_and_models_transformations() {
    let loaded = loads(&fixture("bare-specification.kebab.json"), Some("/shop/"));
    assert_eq!(
        strings(&loaded.warnings),
        Vec::<String>::new(),
        "transformations are enforced, so nothing is reported"
    );
    let d = loaded.deployment;
    assert_eq!(d.path_prefix, "/shop");
    assert_eq!(d.id, "file", "no id: the file name");
    let Authentication::Jwt(policy) = &d.authentication else {
        panic!()
    };
    assert_eq!(
        policy.location,
        TokenLocation::Query {
            name: "access_token".into()
        }
    );
    assert!(policy.anonymous_allowed);
    let route = &d.routes[0];
    assert_eq!(route.authorization, Authorization::Anonymous);
    let headers = route.header_transformations.as_ref().unwrap();
    assert_eq!(headers.set.len(), 1);
    let set = &headers.set[0];
    assert_eq!(set.name, "X-Caller");
    assert_eq!(set.if_exists, IfExists::Append);
    assert_eq!(set.values.len(), 2);
    assert_eq!(set.values[0].as_str(), "${request.auth[sub]}");
    assert_eq!(
        set.values[1].parts(),
        [TemplatePart::Literal("gateway".into())]
    );
    assert_eq!(
        headers.rename,
        [RenameItem {
            from: "X-Username".into(),
            to: "X-User-ID".into()
        }]
    );
    assert_eq!(
        headers.filter,
        Some(Filter {
            kind: FilterKind::Block,
            names: vec!["X-Debug".into()]
        })
    );
    let query = route.query_parameter_transformations.as_ref().unwrap();
    assert_eq!(query.set[0].name, "tenant");
    assert_eq!(
        query.set[0].if_exists,
        IfExists::Overwrite,
        "null is OVERWRITE"
    );
    assert!(
        d.unenforced.is_empty(),
        "transformations are enforced by serve"
    );
}

#[test]
fn a_file_with_every_member_loads_and_names_what_is_not_enforced() {
    let loaded = loads(&fixture("every-member.json"), None);
    // MODIFY_RESPONSE (validationFailurePolicy), the request validations and the response cache
    // are enforced by serve: nothing in this file is left unenforced, so nothing is warned.
    assert!(
        loaded.deployment.unenforced.is_empty(),
        "{:?}",
        loaded.deployment.unenforced
    );
    assert_eq!(strings(&loaded.warnings), Vec::<String>::new());

    let d = loaded.deployment;
    assert_eq!(d.display_name.as_deref(), Some("orders-v2"));
    assert_eq!(d.path_prefix, "/v2");
    // Rate limiting, CORS (deployment and route) and mutual TLS are modelled for serve.
    assert_eq!(
        d.rate_limiting,
        Some(RateLimiting {
            requests_per_second: 50,
            key: RateKey::ClientIp
        })
    );
    assert_eq!(
        d.cors,
        Some(Cors {
            allowed_origins: vec!["https://app.example.com".into()],
            allowed_methods: vec!["GET".into(), "POST".into()],
            allowed_headers: vec!["Authorization".into(), "Content-Type".into()],
            exposed_headers: vec!["opc-request-id".into()],
            allow_credentials: true,
            max_age_seconds: 600,
        })
    );
    assert_eq!(
        d.routes[0].cors,
        Some(Cors {
            allowed_origins: vec!["*".into()],
            ..Cors::default()
        })
    );
    assert_eq!(d.routes[1].cors, None);
    assert_eq!(
        d.mutual_tls,
        Some(MutualTls {
            verified_certificate_required: true,
            allowed_sans: vec!["client.example.com".into()],
        })
    );
    let Authentication::Jwt(policy) = &d.authentication else {
        panic!()
    };
    assert_eq!(
        policy.failure_response,
        Some(ModifyResponse {
            response_code: Some(ResponseCode::Status(302)),
            response_message: Some(
                Template::parse("Sign in first (request ${request.headers[opc-request-id]})")
                    .unwrap()
            ),
            header_transformations: Some(Transformations {
                set: vec![SetItem {
                    name: "Location".into(),
                    values: vec![Template::parse("https://app.example.com/login").unwrap()],
                    if_exists: IfExists::Overwrite,
                }],
                rename: vec![],
                filter: None,
            }),
        })
    );
    let route = &d.routes[0];
    let query = route.query_parameter_transformations.as_ref().unwrap();
    assert_eq!(query.set[0].if_exists, IfExists::Skip);
    assert_eq!(
        query.filter,
        Some(Filter {
            kind: FilterKind::Allow,
            names: vec!["tenant".into(), "fields".into()]
        })
    );
    assert_eq!(
        route.response_header_transformations,
        Some(Transformations {
            set: vec![],
            rename: vec![],
            filter: Some(Filter {
                kind: FilterKind::Block,
                names: vec!["Server".into()]
            })
        })
    );
    let Backend::Dynamic(routing) = &d.routes[1].backend else {
        panic!("{:?}", d.routes[1].backend)
    };
    assert_eq!(routing.selector.to_string(), "request.headers[X-Region]");
    let rules: Vec<_> = routing
        .rules
        .iter()
        .map(|r| (r.name.as_str(), &r.key, r.is_default, r.backend.kind()))
        .collect();
    assert_eq!(
        rules,
        [
            (
                "eu",
                &SelectionKey::AnyOf(vec!["eu".into(), "eu-west".into()]),
                true,
                "HTTP_BACKEND"
            ),
            (
                "us",
                &SelectionKey::Wildcard("us-*".into()),
                false,
                "ORACLE_FUNCTIONS_BACKEND"
            ),
        ]
    );
    assert!(
        matches!(&routing.rules[1].backend, Backend::Functions(f) if f.function_id == "ocid1.fnfunc.oc1..aaaaexample")
    );
}

#[test]
fn oidc_discovery_and_its_oauth2_failure_policy_are_modelled_and_served() {
    let loaded = loads(&fixture("oidc-discovery.json"), None);
    assert!(
        loaded.warnings.is_empty(),
        "{:?}",
        strings(&loaded.warnings)
    );
    assert!(loaded.deployment.unenforced.is_empty());
    let Authentication::Jwt(policy) = &loaded.deployment.authentication else {
        panic!("REMOTE_DISCOVERY is a token policy");
    };
    let oauth = policy.oauth2.as_deref().expect("the OAUTH2 policy");
    assert_eq!(oauth.scopes, ["openid", "orders"]);
    assert_eq!(oauth.client, None);
    assert!(oauth.use_cookies_for_session && oauth.use_pkce);
    assert_eq!(oauth.login_path.as_deref(), Some("/login"));
    assert_eq!(oauth.logout_path.as_deref(), Some("/logout"));
    assert_eq!(oauth.fallback_redirect_path.as_deref(), Some("/"));
    assert!(matches!(
        loaded.deployment.routes[0].backend,
        Backend::OAuth2Login
    ));
    let Backend::OAuth2Logout(logout) = &loaded.deployment.routes[1].backend else {
        panic!("{:?}", loaded.deployment.routes[1].backend)
    };
    assert_eq!(
        logout.allowed_post_logout_uris,
        ["https://app.example.com/bye"]
    );
    assert_eq!(logout.post_logout_state.as_deref(), Some("bye"));
    // Post-logout URLs: paths in the deployment are allowed entries; an empty list is a
    // warning (claimgate then allows deployment paths only); other schemes are refused.
    let relative =
        fixture("oidc-discovery.json").replace("\"https://app.example.com/bye\"", "\"/bye\"");
    assert!(loads(&relative, None).warnings.is_empty());
    let empty = fixture("oidc-discovery.json").replace("[\"https://app.example.com/bye\"]", "[]");
    assert_eq!(
        strings(&loads(&empty, None).warnings),
        ["routes[1].backend.allowedPostLogoutUris: empty: claimgate allows only paths in the deployment as postLogoutUrl (OCI allows any URL)"]
    );
    let ftp = fixture("oidc-discovery.json")
        .replace("\"https://app.example.com/bye\"", "\"ftp://x/bye\"");
    assert_eq!(
        strings(&load_text(&ftp, None).unwrap_err().errors),
        ["routes[1].backend.allowedPostLogoutUris[0]: 'ftp://x/bye' must be an https:// (or http://) URL or a path in the deployment"]
    );
    // A second client or discovery document for the login alone is not served.
    let custom = fixture("oidc-discovery.json").replacen(
        "\"clientDetails\": {\"type\": \"VALIDATION_BLOCK\"}",
        "\"clientDetails\": {\"type\": \"CUSTOM\", \"clientId\": \"web\", \"clientSecretId\": \"ocid1.vaultsecret.oc1..web\", \"clientSecretVersionNumber\": 1}",
        1,
    );
    let custom = loads(&custom, None);
    assert_eq!(
        custom.deployment.unenforced,
        ["requestPolicies.authentication.validationFailurePolicy.clientDetails"]
    );
    assert_eq!(
        strings(&custom.warnings),
        [not_enforced(
            "requestPolicies.authentication.validationFailurePolicy.clientDetails"
        )]
    );
    let KeySource::Discovery(discovery) = &policy.keys else {
        panic!("keys come from discovery");
    };
    assert!(
        discovery.uri.ends_with("/.well-known/openid-configuration"),
        "{}",
        discovery.uri
    );
    assert!(!discovery.client_id.is_empty());
    // The logout route must have the OAUTH2_LOGOUT_BACKEND the policy names.
    let text =
        fixture("oidc-discovery.json").replace("\"path\": \"/logout\"", "\"path\": \"/signout\"");
    let rejected = load_text(&text, None).unwrap_err();
    assert_eq!(
        strings(&rejected.errors),
        [
            "requestPolicies.authentication.validationFailurePolicy.logoutPath: '/logout' must be \
          the path of a route with an OAUTH2_LOGOUT_BACKEND, and no route is"
        ]
    );
}

#[test]
fn dynamic_authentication_loads_its_servers() {
    let file = with(
        without(jwt_spec(), "/requestPolicies/authentication"),
        "/requestPolicies/dynamicAuthentication",
        json!({
            "selectionSource": {"type": "SINGLE", "selector": "request.subdomain[example.com]"},
            "authenticationServers": [
                {"key": {"type": "WILDCARD", "name": "any", "expression": "*", "isDefault": true},
                 "authenticationServerDetail": jwt_spec()["requestPolicies"]["authentication"].clone()},
                {"key": {"type": "ANY_OF", "name": "partners", "values": ["partner-a", "partner-b"]},
                 "authenticationServerDetail": discovery_policy()}
            ]
        }),
    );
    let loaded = load(&file).unwrap();
    assert!(loaded.deployment.unenforced.is_empty());
    let Authentication::Dynamic(dynamic) = &loaded.deployment.authentication else {
        panic!("not dynamic: {:?}", loaded.deployment.authentication);
    };
    assert_eq!(
        dynamic.selector.to_string(),
        "request.subdomain[example.com]"
    );
    assert_eq!(dynamic.servers.len(), 2);
    assert_eq!(dynamic.servers[0].name, "any");
    assert_eq!(dynamic.servers[0].key, SelectionKey::Wildcard("*".into()));
    assert!(dynamic.servers[0].is_default);
    assert_eq!(dynamic.servers[1].name, "partners");
    assert_eq!(
        dynamic.servers[1].key,
        SelectionKey::AnyOf(vec!["partner-a".into(), "partner-b".into()])
    );
    assert!(!dynamic.servers[1].is_default);
    assert!(matches!(
        dynamic.servers[1].policy.jwt().map(|p| &p.keys),
        Some(KeySource::Discovery(_))
    ));
    // The route's AUTHENTICATION_ONLY default is satisfied by the servers.
    assert_eq!(
        loaded.deployment.routes[0].authorization,
        Authorization::AuthenticationOnly
    );
}

#[test]
fn dynamic_authentication_may_have_a_custom_server() {
    let file = with(
        without(jwt_spec(), "/requestPolicies/authentication"),
        "/requestPolicies/dynamicAuthentication",
        json!({
            "selectionSource": {"type": "SINGLE", "selector": "request.headers[X-Tenant]"},
            "authenticationServers": [
                {"key": {"type": "ANY_OF", "name": "a", "values": ["a"]},
                 "authenticationServerDetail": jwt_spec()["requestPolicies"]["authentication"].clone()},
                {"key": {"type": "ANY_OF", "name": "fn", "values": ["b"]},
                 "authenticationServerDetail": {"type": "CUSTOM_AUTHENTICATION",
                     "functionId": "ocid1.fnfunc.oc1..x", "tokenHeader": "X-Token"}}
            ]
        }),
    );
    let loaded = load(&file).unwrap();
    assert!(loaded.deployment.unenforced.is_empty());
    let Authentication::Dynamic(dynamic) = &loaded.deployment.authentication else {
        panic!("{:?}", loaded.deployment.authentication)
    };
    assert!(matches!(
        &dynamic.servers[1].policy,
        ServerPolicy::Custom(policy) if policy.input == AuthorizerInput::Single(TokenLocation::Header {
            name: "X-Token".into(),
            scheme: None
        })
    ));
    assert_eq!(loaded.deployment.function_refs.len(), 1);
}

#[test]
fn inert_members_are_not_in_effect() {
    let file = json!({
        "requestPolicies": {
            "authentication": token_policy(),
            "cors": {"allowedOrigins": []},
            "mutualTls": {"isVerifiedCertificateRequired": false, "allowedSans": []},
            "usagePlans": {"tokenLocations": []},
            "rateLimiting": null,
            "dynamicAuthentication": null
        },
        "routes": [{
            "path": "/a",
            "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 204},
            "requestPolicies": {
                "headerTransformations": {"setHeaders": null, "renameHeaders": {"items": []}, "filterHeaders": {"type": "BLOCK", "items": []}},
                "queryParameterTransformations": {"setQueryParameters": {"items": []}},
                "headerValidations": {"headers": [{"name": "X-A", "required": true}], "validationMode": "DISABLED"},
                "queryParameterValidations": {"parameters": []},
                "bodyValidation": {"content": {"*/*": {"validationType": "NONE"}}, "validationMode": "DISABLED"},
                "responseCacheLookup": {"type": "SIMPLE_LOOKUP_POLICY", "isEnabled": false}
            },
            "responsePolicies": {"headerTransformations": {"filterHeaders": null}}
        }]
    });
    let file = with(
        file,
        "/requestPolicies/authentication/validationFailurePolicy",
        json!({"type": "MODIFY_RESPONSE", "responseCode": null, "responseMessage": null, "responseHeaderTransformations": null}),
    );
    let loaded = load(&file).unwrap();
    assert_eq!(loaded.deployment.unenforced, Vec::<String>::new());
    assert_eq!(strings(&loaded.warnings), Vec::<String>::new());
    // Inert CORS and mutual TLS are not modelled: serve has nothing to enforce.
    assert_eq!(loaded.deployment.cors, None);
    assert_eq!(loaded.deployment.mutual_tls, None);
    assert_eq!(loaded.deployment.rate_limiting, None);
    // An empty ALLOW filter removes every header: it is in effect, and modelled (the gateway
    // enforces transformations, so it is not reported as unenforced).
    let allow = with(
        file,
        "/routes/0/requestPolicies/headerTransformations/filterHeaders/type",
        json!("ALLOW"),
    );
    let loaded = load(&allow).unwrap().deployment;
    assert!(loaded.unenforced.is_empty());
    assert!(loaded.routes[0].header_transformations.is_some());
}

#[test]
fn what_claimgate_accepts_but_oci_refuses_is_a_warning() {
    let ec_key = json!({
        "kid": "ec1", "format": "JSON_WEB_KEY", "kty": "EC", "crv": "P-256", "alg": "ES256",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
    });
    let ps_key = json!({"kid": "ps1", "format": "JSON_WEB_KEY", "kty": "RSA", "alg": "PS256", "n": RSA_N, "e": "AQAB"});
    let auth = "/requestPolicies/authentication";
    let cases: Vec<(Value, &[&str])> = vec![
        (
            with(jwt_spec(), &format!("{auth}/publicKeys"), json!({"type": "STATIC_KEYS", "keys": [ec_key]})),
            &[
                "requestPolicies.authentication.publicKeys.keys[0].alg: 'ES256': OCI accepts only RS256, RS384, RS512",
                "requestPolicies.authentication.publicKeys.keys[0]: an EC P-256 key: claimgate accepts it, OCI accepts only RSA",
            ],
        ),
        (
            with(jwt_spec(), &format!("{auth}/publicKeys"), json!({"type": "STATIC_KEYS", "keys": [ps_key]})),
            &["requestPolicies.authentication.publicKeys.keys[0].alg: 'PS256': OCI accepts only RS256, RS384, RS512"],
        ),
        (
            with(jwt_spec(), &format!("{auth}/publicKeys/uri"), json!("http://idp.example.com/jwks")),
            &["requestPolicies.authentication.publicKeys.uri: plain http:// to a non-loopback host: keys can be tampered with in transit"],
        ),
        (
            with(jwt_spec(), &format!("{auth}/tokenAuthScheme"), json!("Token")),
            &["requestPolicies.authentication.tokenAuthScheme: 'Token': OCI supports only 'Bearer'"],
        ),
        (
            with(jwt_spec(), "/routes/0/backend/body", json!("x".repeat(4097))),
            &["routes[0].backend.body: 4097 bytes: OCI's limits page allows 4096"],
        ),
        (
            with(
                with(jwt_spec(), auth, discovery_policy()),
                &format!("{auth}/validationPolicy/clientDetails/clientSecretVersionNumber"),
                Value::Null,
            ),
            &["requestPolicies.authentication.validationPolicy.clientDetails.clientSecretVersionNumber: OCI requires it; claimgate uses the highest version in the secrets file"],
        ),
        (
            with(
                with(jwt_spec(), auth, discovery_policy()),
                &format!("{auth}/validationPolicy/sourceUriDetails/uri"),
                json!("http://idp.example.com/.well-known/openid-configuration"),
            ),
            &["requestPolicies.authentication.validationPolicy.sourceUriDetails.uri: plain http:// to a non-loopback host: the discovery document can be tampered with in transit"],
        ),
        (
            with(jwt_spec(), "/routes/0/requestPolicies/responseCacheLookup", json!({
                "type": "SIMPLE_LOOKUP_POLICY", "isEnabled": true,
                "cacheKeyAdditions": many(11, |i| json!(format!("${{request.headers[X-K{i}]}}")))
            })),
            &["routes[0].requestPolicies.responseCacheLookup.cacheKeyAdditions: 11 entries: OCI's limits allow 10 cache-key values"],
        ),
        (
            with(jwt_spec(), "/requestPolicies/cors", json!({"allowedOrigins": ["https://app.example.com/"]})),
            &["requestPolicies.cors.allowedOrigins[0]: 'https://app.example.com/' has a path: browsers send origins without one, so it never matches"],
        ),
        (
            with(jwt_spec(), "/routes/0/requestPolicies/headerTransformations", json!({
                "setHeaders": {"items": [{"name": "X-Caller", "values": ["${request.auth[sub]}"]}]},
                "filterHeaders": {"type": "ALLOW", "items": [{"name": "Accept"}]}
            })),
            &["routes[0].requestPolicies.headerTransformations.filterHeaders: 'X-Caller' is set or renamed, but this ALLOW filter runs last and removes it (list it here to keep it)"],
        ),
        (
            with(jwt_spec(), "/routes/0/backend", json!({"type": "HTTP_BACKEND", "url": "https://orders.internal/${request.path[orderId]}"})),
            &["routes[0].backend.url: request.path[orderId]: the route path has no parameter 'orderId', so it is always empty"],
        ),
        (
            with(jwt_spec(), "/routes/0/backend", json!({"type": "HTTP_BACKEND", "url": "https://${request.headers[X-Region]}.orders.internal/"})),
            &["routes[0].backend.url: 'https://${request.headers[X-Region]}.orders.internal/': OCI documents context variables in url path segments only, not in the host"],
        ),
    ];
    for (file, expected) in cases {
        let loaded = match load(&file) {
            Ok(loaded) => loaded,
            Err(rejected) => panic!("{expected:?}: refused {:#?}", rejected.errors),
        };
        let warnings = strings(&loaded.warnings);
        let relevant: Vec<&String> = warnings
            .iter()
            .filter(|w| !w.ends_with(NOT_ENFORCED) && !w.contains("REMOTE_DISCOVERY"))
            .collect();
        assert_eq!(relevant, expected, "{expected:?}");
    }
}

#[test]
fn several_errors_are_reported_at_once() {
    let file = json!({
        "displayName": "orders",
        "pathPrefix": "v1",
        "compartmentId": "ocid1.compartment.oc1..aaaa",
        "specification": {
            "requestPolicies": {
                "authentication": {
                    "type": "JWT_AUTHENTICATION",
                    "tokenHeader": "Authorization",
                    "tokenAuthScheme": "Bearer",
                    "maxClockSkewInSeconds": 300,
                    "issuers": [ISSUER],
                    "audience": ["orders-api"],
                    "publicKeys": {"type": "REMOTE_JWKS", "uri": JWKS, "maxCacheDurationInHours": 48}
                },
                "rateLimiting": {"rateInRequestsPerSecond": 0, "rateKey": "PER_USER"},
                "cors": {"allowedOrigins": ["*"], "allowedMethods": many(60, |_| json!("GET"))}
            },
            "routes": [
                {
                    "path": "/orders/{id}",
                    "methods": ["GET"],
                    "backend": {"type": "HTTP_BACKEND", "url": "https://orders.internal/orders/{id}", "connectTimeoutInSeconds": 90},
                    "requestPolicies": {
                        "headerTransformations": {"setHeaders": {"items": [{"name": "Cookie", "values": ["a=b"]}]}}
                    }
                },
                {
                    "path": "/orders/{orderId}",
                    "methods": ["GET"],
                    "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "headers": [{"name": "X-A", "value": "v".repeat(5000)}]}
                }
            ]
        }
    });
    let auth = "specification.requestPolicies.authentication";
    assert_eq!(
        errors(&file),
        [
            "pathPrefix: 'v1' must start with '/'".to_owned(),
            format!("{auth}.maxClockSkewInSeconds: 300 is above the maximum 120"),
            format!("{auth}.audiences: is required"),
            format!("{auth}.publicKeys.maxCacheDurationInHours: 48 is above the maximum 24"),
            format!("{auth}.audience: unknown member (did you mean 'audiences'?)"),
            "specification.requestPolicies.rateLimiting.rateInRequestsPerSecond: 0 is below the minimum 1".to_owned(),
            "specification.requestPolicies.rateLimiting.rateKey: 'PER_USER' is not a rate key (CLIENT_IP, TOTAL)".to_owned(),
            "specification.requestPolicies.cors.allowedMethods: 60 entries is above the maximum 50".to_owned(),
            "specification.routes[0].backend.url: 'https://orders.internal/orders/{id}': write a path parameter as ${request.path[name]}, not {name}".to_owned(),
            "specification.routes[0].backend.connectTimeoutInSeconds: 90 is above the maximum 75".to_owned(),
            "specification.routes[0].requestPolicies.headerTransformations.setHeaders.items[0].name: 'Cookie' is a protected header: OCI does not let policies change it".to_owned(),
            "specification.routes[1].path: '/orders/{orderId}' is already routed for GET by specification.routes[0] ('/orders/{id}')".to_owned(),
            "specification.routes[1].backend.headers[0].value: 5000 bytes is above the maximum 4096".to_owned(),
        ]
    );
}

#[test]
fn route_templates_that_differ_only_in_methods_or_literals_are_fine() {
    let route = |path: &str, methods: Value| json!({"path": path, "methods": methods, "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200}});
    let file = with(
        jwt_spec(),
        "/routes",
        json!([
            route("/orders/{id}", json!(["GET"])),
            route("/orders/{id}", json!(["POST", "DELETE"])),
            route("/orders/{id}/", json!(["GET"])),
            route("/orders/latest", json!(["GET"])),
            route("/orders/{id}/{rest*}", json!(["ANY"])),
        ]),
    );
    assert_eq!(errors(&file), Vec::<String>::new());
}

#[test]
fn templates_parse_into_literals_and_variables() {
    let t = Template::parse("Bearer ${request.auth[id_token_claims][email]} via ${request.host}$")
        .unwrap();
    assert_eq!(
        t.parts(),
        [
            TemplatePart::Literal("Bearer ".into()),
            TemplatePart::Variable(ContextVariable {
                table: ContextTable::Auth,
                key: Some("id_token_claims".into()),
                sub_key: Some("email".into())
            }),
            TemplatePart::Literal(" via ".into()),
            TemplatePart::Variable(ContextVariable {
                table: ContextTable::Host,
                key: None,
                sub_key: None
            }),
            TemplatePart::Literal("$".into()),
        ]
    );
    assert_eq!(
        t.variables().map(ToString::to_string).collect::<Vec<_>>(),
        ["request.auth[id_token_claims][email]", "request.host"]
    );
    assert_eq!(
        ContextVariable::parse("request.auth[a][b]").unwrap_err(),
        "'request.auth[a][b]' has more than one key (only request.auth[id_token_claims][<claim>] \
         and request.auth[access_token_claims][<claim>] have two)"
    );
    assert_eq!(
        ContextVariable::parse("request.usage_plan[name]").unwrap_err(),
        "request.usage_plan has only the key 'id', not 'name'"
    );
}

/// The invalid file `docs/deployment-files.md` shows `claimgate validate` on.
#[test]
fn the_documented_invalid_file_has_exactly_the_documented_errors() {
    let rejected = load_text(&fixture("invalid-orders.json"), None).unwrap_err();
    let auth = "specification.requestPolicies.authentication";
    let route = "specification.routes";
    assert_eq!(
        strings(&rejected.errors),
        [
            format!("{auth}.maxClockSkewInSeconds: 300 is above the maximum 120"),
            format!("{auth}.audiences: is required"),
            format!("{auth}.publicKeys.maxCacheDurationInHours: 48 is above the maximum 24"),
            format!("{auth}.audience: unknown member (did you mean 'audiences'?)"),
            "specification.requestPolicies.rateLimiting.rateInRequestsPerSecond: 0 is below the \
             minimum 1"
                .to_owned(),
            "specification.requestPolicies.rateLimiting.rateKey: 'PER_USER' is not a rate key \
             (CLIENT_IP, TOTAL)"
                .to_owned(),
            format!(
                "{route}[0].backend.url: context variables cannot be used in the query of url; \
                 set query parameters with queryParameterTransformations"
            ),
            format!("{route}[0].backend.connectTimeoutInSeconds: 90 is above the maximum 75"),
            format!(
                "{route}[0].requestPolicies.headerTransformations.setHeaders.items[0].name: \
                 'Cookie' is a protected header: OCI does not let policies change it"
            ),
            format!(
                "{route}[1].path: '/orders/{{orderId}}' is already routed for GET by \
                 {route}[0] ('/orders/{{id}}')"
            ),
        ]
    );
    assert_eq!(strings(&rejected.warnings), Vec::<String>::new());
}

/// The file `docs/deployment-files.md` shows the OCI-would-refuse warnings on.
#[test]
fn the_documented_oci_would_refuse_file_has_exactly_the_documented_warnings() {
    let loaded = loads(&fixture("oci-would-refuse.json"), None);
    let auth = "requestPolicies.authentication";
    assert_eq!(
        strings(&loaded.warnings),
        [
            format!("{auth}.tokenAuthScheme: 'bearer': OCI supports only 'Bearer'"),
            format!("{auth}.publicKeys.keys[0].alg: 'ES256': OCI accepts only RS256, RS384, RS512"),
            format!(
                "{auth}.publicKeys.keys[0]: an EC P-256 key: claimgate accepts it, OCI accepts \
                 only RSA"
            ),
            format!("{auth}.publicKeys.keys[1].alg: 'PS256': OCI accepts only RS256, RS384, RS512"),
            "routes[0].backend.url: request.path[orderId]: the route path has no parameter \
             'orderId', so it is always empty"
                .to_owned(),
        ]
    );
}

#[test]
fn client_secrets_are_named_by_id_and_resolved_from_the_secrets_file() {
    let d = loads(&fixture("oidc-discovery.json"), None).deployment;
    let path = "requestPolicies.authentication.validationPolicy.clientDetails.clientSecretId";
    assert_eq!(
        d.secret_refs,
        [SecretRef {
            secret_id: "ocid1.vaultsecret.oc1..aaaaexample".into(),
            version: Some(2),
            path: path.into(),
        }]
    );
    let good =
        Secrets::parse(r#"{"ocid1.vaultsecret.oc1..aaaaexample": {"1": "a", "2": "b"}}"#).unwrap();
    assert_eq!(good.check(&d), []);
    let old = Secrets::parse(r#"{"ocid1.vaultsecret.oc1..aaaaexample": {"1": "a"}}"#).unwrap();
    assert_eq!(
        old.check(&d),
        [Diagnostic {
            path: path.into(),
            message: "secret 'ocid1.vaultsecret.oc1..aaaaexample' has no version 2 in the \
                      secrets file (it has 1)"
                .into()
        }]
    );
    assert_eq!(
        Secrets::default().check(&d)[0].message,
        "secret 'ocid1.vaultsecret.oc1..aaaaexample' is not in the secrets file"
    );
    // Files without client credentials name no secret.
    assert_eq!(
        loads(&fixture("every-member.json"), None)
            .deployment
            .secret_refs,
        []
    );
}

#[test]
fn a_servers_failure_policy_is_named_as_not_enforced() {
    let mut server = token_policy();
    server["validationFailurePolicy"] = json!({"type": "MODIFY_RESPONSE", "responseCode": "403"});
    let file = with(
        without(jwt_spec(), "/requestPolicies/authentication"),
        "/requestPolicies/dynamicAuthentication",
        json!({
            "selectionSource": {"type": "SINGLE", "selector": "request.headers[X-Tenant]"},
            "authenticationServers": [
                {"key": {"type": "ANY_OF", "name": "a", "values": ["a"]},
                 "authenticationServerDetail": server}
            ]
        }),
    );
    let loaded = load(&file).unwrap();
    assert!(matches!(
        loaded.deployment.authentication,
        Authentication::Dynamic(_)
    ));
    assert_eq!(
        loaded.deployment.unenforced,
        ["requestPolicies.dynamicAuthentication.authenticationServers[0].authenticationServerDetail.validationFailurePolicy"]
    );
}

/// What `oci api-gateway deployment get` prints for a deployment whose route renames a header
/// and a query parameter: the SDK's Python member `_from` comes out as `"-from"`.
fn read_back_with_renames() -> Value {
    json!({"data": {
        "display-name": "renames", "path-prefix": "/v1", "lifecycle-state": "ACTIVE",
        "specification": {
            "request-policies": {"authentication": null, "cors": null, "rate-limiting": null},
            "logging-policies": null,
            "routes": [{
                "path": "/orders", "methods": ["GET"],
                "backend": {"type": "HTTP_BACKEND", "url": "https://orders.internal/",
                            "connect-timeout-in-seconds": 60.0, "read-timeout-in-seconds": 10.0,
                            "send-timeout-in-seconds": 10.0, "is-ssl-verify-disabled": false},
                "request-policies": {
                    "header-transformations": {
                        "set-headers": null, "filter-headers": null,
                        "rename-headers": {"items": [{"-from": "X-Old", "to": "X-New"}]}
                    },
                    "query-parameter-transformations": {
                        "set-query-parameters": null, "filter-query-parameters": null,
                        "rename-query-parameters": {"items": [{"-from": "old", "to": "new"}]}
                    }
                }
            }]
        }
    }, "etag": "\"1\""})
}

/// The CLI's `"-from"` is the rename source in a read-back, for headers and query parameters.
#[test]
fn a_read_back_renames_from_the_clis_dash_from() {
    let loaded = loads(&read_back_with_renames().to_string(), None);
    let route = &loaded.deployment.routes[0];
    let headers = route.header_transformations.as_ref().expect("renames");
    assert_eq!(
        headers.rename,
        vec![RenameItem {
            from: "X-Old".into(),
            to: "X-New".into()
        }]
    );
    let query = route
        .query_parameter_transformations
        .as_ref()
        .expect("renames");
    assert_eq!(
        query.rename,
        vec![RenameItem {
            from: "old".into(),
            to: "new".into()
        }]
    );
    // Without a source at all, the path is the one the item has.
    let file = with(
        read_back_with_renames(),
        "/data/specification/routes/0/request-policies/header-transformations/rename-headers/items/0",
        json!({"to": "X-New"}),
    );
    assert_eq!(
        strings(&load_text(&file.to_string(), None).unwrap_err().errors),
        ["data.specification.routes[0].request-policies.header-transformations.rename-headers.items[0].from: is required"]
    );
}

/// A kebab-case file names a missing required member in kebab-case, whether the key is absent
/// or printed as null, like every other path of the file.
#[test]
fn a_kebab_file_names_missing_required_members_in_kebab_case() {
    let client =
        "/data/specification/request-policies/authentication/validation-policy/client-details";
    let base = json!({"data": {
        "display-name": "discovery", "path-prefix": "/v1",
        "specification": {
            "request-policies": {"authentication": {
                "type": "TOKEN_AUTHENTICATION", "token-header": "Authorization",
                "token-auth-scheme": "Bearer", "is-anonymous-access-allowed": false,
                "validation-policy": {
                    "type": "REMOTE_DISCOVERY", "max-cache-duration-in-hours": 2,
                    "client-details": {"type": "CUSTOM", "client-id": "gw",
                                       "client-secret-id": "ocid1.vaultsecret.oc1..aaaaexample",
                                       "client-secret-version-number": 1},
                    "source-uri-details": {"type": "DISCOVERY_URI",
                                           "uri": "https://idp.example.com/.well-known/openid-configuration"}
                }
            }},
            "routes": [{"path": "/x", "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200}}]
        }
    }});
    assert_eq!(errors(&base), Vec::<String>::new());
    let expected = "data.specification.request-policies.authentication.validation-policy.\
                    client-details.client-secret-id: is required";
    let null = with(
        base.clone(),
        &format!("{client}/client-secret-id"),
        Value::Null,
    );
    assert_eq!(errors(&null), [expected]);
    let absent = without(base.clone(), &format!("{client}/client-secret-id"));
    assert_eq!(errors(&absent), [expected]);
    // An object with no multi-word member takes the file's spelling.
    let bare = with(base.clone(), client, json!({"type": "CUSTOM"}));
    assert_eq!(
        errors(&bare),
        [
            "data.specification.request-policies.authentication.validation-policy.client-details.client-id: is required",
            expected
        ]
    );
    assert_eq!(
        errors(&without(base.clone(), "/data/path-prefix")),
        ["data.path-prefix: is required"]
    );
    assert_eq!(
        errors(&with(base.clone(), "/data/path-prefix", Value::Null)),
        ["data.path-prefix: is required"]
    );
    // The same file in camelCase keeps camelCase paths.
    let camel = with(
        jwt_spec(),
        "/requestPolicies/authentication",
        discovery_policy(),
    );
    let camel = without(
        camel,
        "/requestPolicies/authentication/validationPolicy/clientDetails/clientSecretId",
    );
    assert_eq!(
        errors(&camel),
        ["requestPolicies.authentication.validationPolicy.clientDetails.clientSecretId: is required"]
    );
}

/// `cacheKeyAdditions` as OCI's response-cache page writes them (bare) and as the SDK's docstring
/// does (`${...}`).
#[test]
fn cache_key_additions_take_the_documented_bare_form_and_the_sdk_form() {
    for additions in [
        json!(["request.headers[Accept]", "request.auth[sub]"]),
        json!(["${request.headers[Accept]}", "${request.auth[sub]}"]),
    ] {
        let file = with(
            jwt_spec(),
            "/routes/0/requestPolicies/responseCacheLookup",
            json!({"type": "SIMPLE_LOOKUP_POLICY", "isEnabled": true, "cacheKeyAdditions": additions}),
        );
        assert_eq!(errors(&file), Vec::<String>::new(), "{additions}");
    }
}

/// OCI documents a context variable in the host of a dynamic routing backend's URL
/// (`https://${request.subdomain[example.com]}-api.example.com`): no warning there, while a
/// route's own HTTP_BACKEND still gets one.
#[test]
fn a_dynamic_routing_backend_url_may_have_a_variable_in_its_host() {
    let file = with(
        jwt_spec(),
        "/routes/0/backend",
        json!({
            "type": "DYNAMIC_ROUTING_BACKEND",
            "selectionSource": {"type": "SINGLE", "selector": "request.subdomain[example.com]"},
            "routingBackends": [{
                "key": {"type": "WILDCARD", "name": "any", "expression": "*", "isDefault": true},
                "backend": {"type": "HTTP_BACKEND", "url": "https://${request.subdomain[example.com]}-api.example.com"}
            }]
        }),
    );
    let loaded = match load(&file) {
        Ok(loaded) => loaded,
        Err(rejected) => panic!("{:#?}", rejected.errors),
    };
    assert_eq!(strings(&loaded.warnings), Vec::<String>::new());
}

/// OCI: "You can only modify the back end url using the context variable specified for
/// selector". claimgate expands any variable, so another one is a warning, not an error.
#[test]
fn a_routing_backend_url_with_another_variable_than_the_selector_is_warned_about() {
    let file = with(
        jwt_spec(),
        "/routes/0/backend",
        json!({
            "type": "DYNAMIC_ROUTING_BACKEND",
            "selectionSource": {"type": "SINGLE", "selector": "request.headers[X-Region]"},
            "routingBackends": [
                {"key": {"type": "ANY_OF", "name": "eu", "values": ["eu"]},
                 "backend": {"type": "HTTP_BACKEND", "url": "https://${request.headers[X-Region]}.example/${request.auth[sub]}"}},
                {"key": {"type": "WILDCARD", "name": "rest", "expression": "*"},
                 "backend": {"type": "HTTP_BACKEND", "url": "https://${request.headers[X-Region]}.example/"}}
            ]
        }),
    );
    let loaded = match load(&file) {
        Ok(loaded) => loaded,
        Err(rejected) => panic!("{:#?}", rejected.errors),
    };
    assert_eq!(
        strings(&loaded.warnings),
        ["routes[0].backend.routingBackends[0].backend.url: 'https://${request.headers[X-Region]}.example/${request.auth[sub]}' uses request.auth[sub]: OCI lets a routing backend's url use only the selector, request.headers[X-Region]"]
    );
}

#[test]
fn validations_and_cache_policies_are_read_into_domain_types() {
    let mut spec = jwt_spec();
    spec["routes"][0]["requestPolicies"] = json!({
        "headerValidations": {"headers": [{"name": "X-Username", "required": true}, {"name": "X-Trace"}]},
        "queryParameterValidations": {"parameters": [{"name": "page", "required": true}], "validationMode": "PERMISSIVE"},
        "bodyValidation": {"required": true, "content": {
            "Application/JSON": {"validationType": "NONE"},
            "text/*": {"validationType": "NONE"},
            "*/*": {"validationType": "NONE"}}},
        "responseCacheLookup": {"type": "SIMPLE_LOOKUP_POLICY", "isPrivateCachingEnabled": true,
            "cacheKeyAdditions": ["request.headers[Accept]", "${request.auth[sub]}"]}
    });
    spec["routes"][0]["responsePolicies"] = json!({
        "responseCacheStore": {"type": "FIXED_TTL_STORE_POLICY", "timeToLiveInSeconds": 300}
    });
    let loaded = loads(&spec.to_string(), Some("/v1"));
    let route = &loaded.deployment.routes[0];
    let headers = route.validations.headers.as_ref().unwrap();
    assert_eq!(headers.mode, ValidationMode::Enforcing);
    assert_eq!(
        headers.items,
        vec![
            ValidationItem {
                name: "X-Username".into(),
                required: true
            },
            ValidationItem {
                name: "X-Trace".into(),
                required: false
            },
        ]
    );
    assert_eq!(headers.path, "routes[0].requestPolicies.headerValidations");
    let query = route.validations.query_parameters.as_ref().unwrap();
    assert_eq!(query.mode, ValidationMode::Permissive);
    assert_eq!(
        route.validations.body.as_ref().unwrap().path,
        "routes[0].requestPolicies.bodyValidation"
    );
    let body = route.validations.body.as_ref().unwrap();
    assert!(body.required);
    assert_eq!(
        body.content,
        vec![
            MediaRange::Exact {
                kind: "application".into(),
                subtype: "json".into()
            },
            MediaRange::Type("text".into()),
            MediaRange::Any,
        ]
    );
    let lookup = route.response_cache_lookup.as_ref().unwrap();
    assert!(lookup.private_caching);
    let additions: Vec<&str> = lookup.key_additions.iter().map(|t| t.as_str()).collect();
    assert_eq!(
        additions,
        ["${request.headers[Accept]}", "${request.auth[sub]}"]
    );
    assert_eq!(
        route.response_cache_store,
        Some(ResponseCacheStore {
            time_to_live_seconds: 300
        })
    );
}

#[test]
fn disabled_validations_and_a_disabled_lookup_are_not_kept() {
    let mut spec = jwt_spec();
    spec["routes"][0]["requestPolicies"] = json!({
        "headerValidations": {"headers": [{"name": "X-Username", "required": true}], "validationMode": "DISABLED"},
        "queryParameterValidations": {"parameters": []},
        "bodyValidation": {"required": true, "content": {"*/*": {"validationType": "NONE"}}, "validationMode": "DISABLED"},
        "responseCacheLookup": {"type": "SIMPLE_LOOKUP_POLICY", "isEnabled": false}
    });
    let loaded = loads(&spec.to_string(), Some("/v1"));
    let route = &loaded.deployment.routes[0];
    assert!(route.validations.is_empty());
    assert_eq!(route.response_cache_lookup, None);
}

/// A cached route whose backend is chosen per request: without the selector in the cache key,
/// one backend's answer would be served to requests routed to another.
#[test]
fn a_cached_dynamic_route_without_its_selector_in_the_cache_key_is_warned_about() {
    let routed = json!({
        "type": "DYNAMIC_ROUTING_BACKEND",
        "selectionSource": {"type": "SINGLE", "selector": "request.headers[X-Region]"},
        "routingBackends": [
            {"key": {"type": "ANY_OF", "name": "eu", "values": ["eu"]},
             "backend": {"type": "HTTP_BACKEND", "url": "https://eu.example/"}},
            {"key": {"type": "WILDCARD", "name": "rest", "expression": "*"},
             "backend": {"type": "HTTP_BACKEND", "url": "https://us.example/"}}
        ]
    });
    let file_with = |additions: Value| {
        let file = with(jwt_spec(), "/routes/0/backend", routed.clone());
        with(
            file,
            "/routes/0/requestPolicies/responseCacheLookup",
            json!({"type": "SIMPLE_LOOKUP_POLICY", "cacheKeyAdditions": additions}),
        )
    };
    let warnings = |file: &Value| match load(file) {
        Ok(loaded) => strings(&loaded.warnings),
        Err(rejected) => panic!("{:#?}", rejected.errors),
    };
    assert_eq!(
        warnings(&file_with(json!(["request.headers[Accept]"]))),
        ["routes[0].requestPolicies.responseCacheLookup: the backend is chosen by request.headers[X-Region] but the cache key does not include it: an answer of one backend can be served to requests routed to another; add 'request.headers[X-Region]' to cacheKeyAdditions"]
    );
    // Bare or ${...}, the selector in the key silences it.
    for addition in [
        "request.headers[X-Region]",
        "${request.headers[X-Region]}",
        "request.headers[x-region]",
    ] {
        assert_eq!(
            warnings(&file_with(json!([addition]))),
            Vec::<String>::new()
        );
    }
}
