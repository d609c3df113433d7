//! One invalid file per rule: each must be refused with exactly the listed errors (path and
//! message), and nothing else.

mod common;

use common::*;
use serde_json::{json, Value};

const AUTH: &str = "/requestPolicies/authentication";
const ROUTE: &str = "/routes/0";

/// A file that must be refused with exactly `expected`.
struct Case {
    rule: &'static str,
    file: Value,
    expected: Vec<&'static str>,
}

fn case(rule: &'static str, file: Value, expected: &'static str) -> Case {
    Case {
        rule,
        file,
        expected: vec![expected],
    }
}

fn spec_with(pointer: &str, value: Value) -> Value {
    with(jwt_spec(), pointer, value)
}

fn route_with(pointer: &str, value: Value) -> Value {
    with(jwt_spec(), &format!("{ROUTE}{pointer}"), value)
}

fn token_with(pointer: &str, value: Value) -> Value {
    let spec = spec_with(AUTH, token_policy());
    with(spec, &format!("{AUTH}{pointer}"), value)
}

fn discovery_with(pointer: &str, value: Value) -> Value {
    let spec = spec_with(AUTH, discovery_policy());
    with(spec, &format!("{AUTH}{pointer}"), value)
}

fn custom_with(pointer: &str, value: Value) -> Value {
    let spec = spec_with(AUTH, custom_policy());
    with(spec, &format!("{AUTH}{pointer}"), value)
}

/// A valid `DYNAMIC_ROUTING_BACKEND` on header `X-Region`: `eu` (ANY_OF), `us` (ANY_OF, an
/// HTTP backend), `rest` (WILDCARD `*`, stock).
fn routing() -> Value {
    json!({
        "type": "DYNAMIC_ROUTING_BACKEND",
        "selectionSource": {"type": "SINGLE", "selector": "request.headers[X-Region]"},
        "routingBackends": [
            {"key": {"type": "ANY_OF", "name": "eu", "values": ["eu"]},
             "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200}},
            {"key": {"type": "ANY_OF", "name": "us", "values": ["us"]},
             "backend": {"type": "HTTP_BACKEND", "url": "https://us.example"}},
            {"key": {"type": "WILDCARD", "name": "rest", "expression": "*"},
             "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 404}}
        ]
    })
}

fn routing_with(pointer: &str, value: Value) -> Value {
    with(
        route_with("/backend", routing()),
        &format!("{ROUTE}/backend{pointer}"),
        value,
    )
}

/// `dynamicAuthentication` with two servers keyed by header `X-Tenant`.
fn dynamic() -> Value {
    let spec = without(jwt_spec(), AUTH);
    let server = |name: &str, values: Value| {
        json!({
            "key": {"type": "ANY_OF", "name": name, "values": values},
            "authenticationServerDetail": jwt_spec()["requestPolicies"]["authentication"].clone()
        })
    };
    with(
        spec,
        "/requestPolicies/dynamicAuthentication",
        json!({
            "selectionSource": {"type": "SINGLE", "selector": "request.headers[X-Tenant]"},
            "authenticationServers": [server("a", json!(["acme"])), server("b", json!(["globex"]))]
        }),
    )
}

fn dynamic_with(pointer: &str, value: Value) -> Value {
    with(
        dynamic(),
        &format!("/requestPolicies/dynamicAuthentication{pointer}"),
        value,
    )
}

fn set_headers(items: Value) -> Value {
    json!({"setHeaders": {"items": items}})
}

fn set_item(name: &str, value: &str) -> Value {
    json!({"name": name, "values": [value]})
}

fn cases() -> Vec<Case> {
    let headers = |n| many(n, |i| json!(format!("X-H{i}")));
    vec![
        // --- deployment and routes -------------------------------------------------------
        case(
            "pathPrefix: no parameters",
            json!({"pathPrefix": "/v1/{tenant}", "specification": jwt_spec()}),
            "pathPrefix: '/v1/{tenant}' has a parameter; a path prefix cannot",
        ),
        case(
            "pathPrefix: at most 255 characters",
            json!({"pathPrefix": format!("/{}", "a".repeat(255)), "specification": jwt_spec()}),
            "pathPrefix: 256 characters is above the maximum 255",
        ),
        case(
            "pathPrefix: no adjacent slashes",
            json!({"pathPrefix": "/v1//x", "specification": jwt_spec()}),
            "pathPrefix: '/v1//x' has adjacent slashes",
        ),
        case(
            "pathPrefix: required in a CreateDeploymentDetails",
            json!({"specification": jwt_spec()}),
            "pathPrefix: is required",
        ),
        case(
            "routes: at most 50",
            spec_with(
                "/routes",
                many(51, |i| {
                    json!({"path": format!("/r{i}"), "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200}})
                }),
            ),
            "routes: 51 entries is above the maximum 50",
        ),
        case(
            "routes: at least one",
            spec_with("/routes", json!([])),
            "routes: at least one route is required",
        ),
        case(
            "route path: parameter names",
            route_with("/path", json!("/orders/{order-id}")),
            "routes[0].path: parameter '{order-id}' must be named with letters, digits and '_' only",
        ),
        case(
            "route path: a wildcard parameter is last",
            route_with("/path", json!("/files/{rest*}/meta")),
            "routes[0].path: wildcard parameter '{rest*}' must be the last segment",
        ),
        case(
            "route path: at most 2000 characters",
            route_with("/path", json!(format!("/{}", "a".repeat(2000)))),
            "routes[0].path: 2001 characters is above the maximum 2000",
        ),
        case(
            "route path: allowed characters",
            route_with("/path", json!("/orders/<id>")),
            "routes[0].path: character '<' is not allowed in a route path",
        ),
        case(
            "routes: the same path template and method twice",
            spec_with(
                "/routes/1",
                json!({"path": "/orders/{orderId}", "methods": ["POST", "GET"], "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 201}}),
            ),
            "routes[1].path: '/orders/{orderId}' is already routed for GET by routes[0] ('/orders/{id}')",
        ),
        case(
            "routes: ANY overlaps every method",
            spec_with(
                "/routes/1",
                json!({"path": "/orders/{id}", "methods": ["ANY"], "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 201}}),
            ),
            "routes[1].path: '/orders/{id}' is already routed for GET by routes[0] ('/orders/{id}')",
        ),
        case(
            "methods: enum",
            route_with("/methods", json!(["GET", "FETCH"])),
            "routes[0].methods[1]: 'FETCH' is not a method (ANY, HEAD, GET, POST, PUT, PATCH, DELETE, OPTIONS)",
        ),
        case(
            "methods: no repeats",
            route_with("/methods", json!(["GET", "GET"])),
            "routes[0].methods[1]: 'GET' is listed twice",
        ),
        case(
            "authorization: type enum",
            route_with("/requestPolicies/authorization", json!({"type": "SCOPES"})),
            "routes[0].requestPolicies.authorization.type: 'SCOPES' is not an authorization type (ANONYMOUS, AUTHENTICATION_ONLY, ANY_OF)",
        ),
        case(
            "authorization: ANY_OF needs allowedScope",
            route_with("/requestPolicies/authorization", json!({"type": "ANY_OF"})),
            "routes[0].requestPolicies.authorization.allowedScope: is required",
        ),
        case(
            "authorization: ANONYMOUS needs isAnonymousAccessAllowed",
            route_with("/requestPolicies/authorization", json!({"type": "ANONYMOUS"})),
            "routes[0].requestPolicies.authorization: ANONYMOUS needs isAnonymousAccessAllowed: true in the authentication policy",
        ),
        case(
            "authorization: ANONYMOUS needs isAnonymousAccessAllowed (CUSTOM_AUTHENTICATION, absent)",
            with(
                spec_with(AUTH, custom_policy()),
                "/routes/0/requestPolicies/authorization",
                json!({"type": "ANONYMOUS"}),
            ),
            "routes[0].requestPolicies.authorization: ANONYMOUS needs isAnonymousAccessAllowed: true in the authentication policy",
        ),
        case(
            "authorization: ANONYMOUS needs isAnonymousAccessAllowed (CUSTOM_AUTHENTICATION, false)",
            with(
                custom_with("/isAnonymousAccessAllowed", json!(false)),
                "/routes/0/requestPolicies/authorization",
                json!({"type": "ANONYMOUS"}),
            ),
            "routes[0].requestPolicies.authorization: ANONYMOUS needs isAnonymousAccessAllowed: true in the authentication policy",
        ),
        case(
            "authorization: ANONYMOUS needs isAnonymousAccessAllowed (REMOTE_DISCOVERY too)",
            with(
                spec_with(AUTH, discovery_policy()),
                "/routes/0/requestPolicies/authorization",
                json!({"type": "ANONYMOUS"}),
            ),
            "routes[0].requestPolicies.authorization: ANONYMOUS needs isAnonymousAccessAllowed: true in the authentication policy",
        ),
        case(
            "authorization: a route that requires authentication needs a policy",
            with(
                without(jwt_spec(), "/requestPolicies"),
                "/routes/0/requestPolicies/authorization",
                json!({"type": "AUTHENTICATION_ONLY"}),
            ),
            "routes[0].requestPolicies.authorization: this route requires authentication but the deployment has no authentication policy",
        ),
        case(
            "loggingPolicies: log level enum",
            spec_with("/loggingPolicies", json!({"executionLog": {"logLevel": "DEBUG"}})),
            "loggingPolicies.executionLog.logLevel: 'DEBUG' is not a log level (INFO, WARN, ERROR)",
        ),
        case(
            "route loggingPolicies: isEnabled is a boolean",
            route_with("/loggingPolicies", json!({"accessLog": {"isEnabled": "yes"}})),
            "routes[0].loggingPolicies.accessLog.isEnabled: expected true or false, found a string",
        ),
        case(
            "unknown members are refused, with a suggestion",
            spec_with("/requestPolicies/rateLimting", json!({})),
            "requestPolicies.rateLimting: unknown member (did you mean 'rateLimiting'?)",
        ),
        // --- JWT_AUTHENTICATION / TOKEN_AUTHENTICATION ---------------------------------
        case(
            "authentication: type enum",
            spec_with(&format!("{AUTH}/type"), json!("OIDC_AUTHENTICATION")),
            "requestPolicies.authentication.type: 'OIDC_AUTHENTICATION' is not an authentication type (JWT_AUTHENTICATION, TOKEN_AUTHENTICATION, CUSTOM_AUTHENTICATION)",
        ),
        case(
            "issuers: at most 5",
            spec_with(&format!("{AUTH}/issuers"), many(6, |i| json!(format!("https://i{i}/")))),
            "requestPolicies.authentication.issuers: 6 entries is above the maximum 5",
        ),
        case(
            "audiences: at most 5",
            spec_with(&format!("{AUTH}/audiences"), many(6, |i| json!(format!("a{i}")))),
            "requestPolicies.authentication.audiences: 6 entries is above the maximum 5",
        ),
        case(
            "audiences: required",
            without(jwt_spec(), &format!("{AUTH}/audiences")),
            "requestPolicies.authentication.audiences: is required",
        ),
        case(
            "verifyClaims: at most 10",
            spec_with(
                &format!("{AUTH}/verifyClaims"),
                many(11, |i| json!({"key": format!("c{i}")})),
            ),
            "requestPolicies.authentication.verifyClaims: 11 entries is above the maximum 10",
        ),
        case(
            "maxClockSkewInSeconds: 0-120",
            spec_with(&format!("{AUTH}/maxClockSkewInSeconds"), json!(300)),
            "requestPolicies.authentication.maxClockSkewInSeconds: 300 is above the maximum 120",
        ),
        case(
            "maxCacheDurationInHours: 1-24",
            spec_with(&format!("{AUTH}/publicKeys/maxCacheDurationInHours"), json!(0)),
            "requestPolicies.authentication.publicKeys.maxCacheDurationInHours: 0 is below the minimum 1",
        ),
        case(
            "static keys: at most 10",
            spec_with(
                &format!("{AUTH}/publicKeys"),
                json!({"type": "STATIC_KEYS", "keys": many(11, |i| json!({"kid": format!("k{i}"), "format": "PEM", "key": RSA_PEM}))}),
            ),
            "requestPolicies.authentication.publicKeys.keys: 11 entries is above the maximum 10",
        ),
        case(
            "static keys: format enum",
            spec_with(
                &format!("{AUTH}/publicKeys"),
                json!({"type": "STATIC_KEYS", "keys": [{"kid": "k1", "format": "X509", "key": RSA_PEM}]}),
            ),
            "requestPolicies.authentication.publicKeys.keys[0].format: 'X509' is not a key format (JSON_WEB_KEY, PEM)",
        ),
        case(
            "tokenHeader and tokenQueryParam: not both",
            spec_with(&format!("{AUTH}/tokenQueryParam"), json!("access_token")),
            "requestPolicies.authentication.tokenQueryParam: tokenHeader and tokenQueryParam cannot both be set",
        ),
        case(
            "JWT_AUTHENTICATION has no validationFailurePolicy",
            spec_with(
                &format!("{AUTH}/validationFailurePolicy"),
                json!({"type": "MODIFY_RESPONSE"}),
            ),
            "requestPolicies.authentication.validationFailurePolicy: unknown member",
        ),
        case(
            "validationPolicy: type enum",
            token_with("/validationPolicy/type", json!("JWKS")),
            "requestPolicies.authentication.validationPolicy.type: 'JWKS' is not a validation policy type (STATIC_KEYS, REMOTE_JWKS, REMOTE_DISCOVERY)",
        ),
        case(
            "additionalValidationPolicy: issuers at most 5",
            token_with(
                "/validationPolicy/additionalValidationPolicy/issuers",
                many(6, |i| json!(format!("https://i{i}/"))),
            ),
            "requestPolicies.authentication.validationPolicy.additionalValidationPolicy.issuers: 6 entries is above the maximum 5",
        ),
        // --- REMOTE_DISCOVERY ------------------------------------------------------------
        case(
            "discovery: clientDetails required",
            without(
                spec_with(AUTH, discovery_policy()),
                &format!("{AUTH}/validationPolicy/clientDetails"),
            ),
            "requestPolicies.authentication.validationPolicy.clientDetails: is required",
        ),
        case(
            "discovery: clientDetails type enum",
            discovery_with("/validationPolicy/clientDetails/type", json!("CONFIDENTIAL")),
            "requestPolicies.authentication.validationPolicy.clientDetails.type: 'CONFIDENTIAL' is not a client details type (CUSTOM, VALIDATION_BLOCK)",
        ),
        case(
            "discovery: CUSTOM client needs clientId",
            without(
                spec_with(AUTH, discovery_policy()),
                &format!("{AUTH}/validationPolicy/clientDetails/clientId"),
            ),
            "requestPolicies.authentication.validationPolicy.clientDetails.clientId: is required",
        ),
        case(
            "discovery: CUSTOM client needs clientSecretId",
            without(
                spec_with(AUTH, discovery_policy()),
                &format!("{AUTH}/validationPolicy/clientDetails/clientSecretId"),
            ),
            "requestPolicies.authentication.validationPolicy.clientDetails.clientSecretId: is required",
        ),
        case(
            "discovery: clientSecretVersionNumber is a positive whole number",
            discovery_with("/validationPolicy/clientDetails/clientSecretVersionNumber", json!(0)),
            "requestPolicies.authentication.validationPolicy.clientDetails.clientSecretVersionNumber: 0 is below the minimum 1",
        ),
        case(
            "discovery: VALIDATION_BLOCK client only inside OAUTH2",
            discovery_with("/validationPolicy/clientDetails", json!({"type": "VALIDATION_BLOCK"})),
            "requestPolicies.authentication.validationPolicy.clientDetails.type: VALIDATION_BLOCK reuses the validationPolicy's details: it only applies inside an OAUTH2 validationFailurePolicy",
        ),
        case(
            "discovery: sourceUriDetails type enum",
            discovery_with("/validationPolicy/sourceUriDetails/type", json!("ISSUER")),
            "requestPolicies.authentication.validationPolicy.sourceUriDetails.type: 'ISSUER' is not a source URI type (DISCOVERY_URI, VALIDATION_BLOCK)",
        ),
        case(
            "discovery: DISCOVERY_URI needs uri",
            discovery_with("/validationPolicy/sourceUriDetails", json!({"type": "DISCOVERY_URI"})),
            "requestPolicies.authentication.validationPolicy.sourceUriDetails.uri: is required",
        ),
        case(
            "discovery: uri is an http(s) URL",
            discovery_with("/validationPolicy/sourceUriDetails/uri", json!("idp.example.com")),
            "requestPolicies.authentication.validationPolicy.sourceUriDetails.uri: 'idp.example.com' must be an https:// (or http://) URL",
        ),
        case(
            "discovery: maxCacheDurationInHours 1-24",
            discovery_with("/validationPolicy/maxCacheDurationInHours", json!(25)),
            "requestPolicies.authentication.validationPolicy.maxCacheDurationInHours: 25 is above the maximum 24",
        ),
        case(
            "discovery: isSslVerifyDisabled is a boolean",
            discovery_with("/validationPolicy/isSslVerifyDisabled", json!("false")),
            "requestPolicies.authentication.validationPolicy.isSslVerifyDisabled: expected true or false, found a string",
        ),
        // --- validationFailurePolicy -------------------------------------------------------
        case(
            "validationFailurePolicy: type enum",
            token_with("/validationFailurePolicy", json!({"type": "REDIRECT"})),
            "requestPolicies.authentication.validationFailurePolicy.type: 'REDIRECT' is not a validation failure policy type (MODIFY_RESPONSE, OAUTH2)",
        ),
        case(
            "MODIFY_RESPONSE: responseCode is a status",
            token_with(
                "/validationFailurePolicy",
                json!({"type": "MODIFY_RESPONSE", "responseCode": "700"}),
            ),
            "requestPolicies.authentication.validationFailurePolicy.responseCode: '700' is not an HTTP status code (100-599)",
        ),
        case(
            "MODIFY_RESPONSE: responseCode is a status or a context variable",
            token_with(
                "/validationFailurePolicy",
                json!({"type": "MODIFY_RESPONSE", "responseCode": "found"}),
            ),
            "requestPolicies.authentication.validationFailurePolicy.responseCode: 'found' is neither an HTTP status code (100-599) nor a context variable",
        ),
        case(
            "MODIFY_RESPONSE: responseCode is a string",
            token_with(
                "/validationFailurePolicy",
                json!({"type": "MODIFY_RESPONSE", "responseCode": 302}),
            ),
            "requestPolicies.authentication.validationFailurePolicy.responseCode: expected a string, found a number",
        ),
        case(
            "MODIFY_RESPONSE: responseMessage cannot read request.body",
            token_with(
                "/validationFailurePolicy",
                json!({"type": "MODIFY_RESPONSE", "responseMessage": "You sent ${request.body}"}),
            ),
            "requestPolicies.authentication.validationFailurePolicy.responseMessage: request.body can only be passed to an authorizer function (CUSTOM_AUTHENTICATION parameters)",
        ),
        case(
            "MODIFY_RESPONSE: protected response headers",
            token_with(
                "/validationFailurePolicy",
                json!({"type": "MODIFY_RESPONSE", "responseHeaderTransformations": set_headers(json!([set_item("Retry-After", "60")]))}),
            ),
            "requestPolicies.authentication.validationFailurePolicy.responseHeaderTransformations.setHeaders.items[0].name: 'Retry-After' is a protected header: OCI does not let policies change it",
        ),
        case(
            "OAUTH2: only with REMOTE_DISCOVERY",
            token_with("/validationFailurePolicy", oauth2_policy()),
            "requestPolicies.authentication.validationFailurePolicy.type: OAUTH2 needs a REMOTE_DISCOVERY validationPolicy",
        ),
        case(
            "OAUTH2: scopes include openid",
            discovery_with(
                "/validationFailurePolicy",
                with(oauth2_policy(), "/scopes", json!(["orders"])),
            ),
            "requestPolicies.authentication.validationFailurePolicy.scopes: must include 'openid'",
        ),
        case(
            "OAUTH2: responseType enum",
            discovery_with(
                "/validationFailurePolicy",
                with(oauth2_policy(), "/responseType", json!("code")),
            ),
            "requestPolicies.authentication.validationFailurePolicy.responseType: 'code' is not a response type (CODE); did you mean 'CODE'?",
        ),
        case(
            "OAUTH2: scopes required",
            discovery_with("/validationFailurePolicy", without(oauth2_policy(), "/scopes")),
            "requestPolicies.authentication.validationFailurePolicy.scopes: is required",
        ),
        case(
            "OAUTH2: loginPath is an OAUTH2_LOGIN_BACKEND route",
            discovery_with(
                "/validationFailurePolicy",
                with(oauth2_policy(), "/loginPath", json!("/login")),
            ),
            "requestPolicies.authentication.validationFailurePolicy.loginPath: '/login' must be the path of a route with an OAUTH2_LOGIN_BACKEND, and no route is",
        ),
        case(
            "OAUTH2: paths start with /",
            discovery_with(
                "/validationFailurePolicy",
                with(oauth2_policy(), "/fallbackRedirectPath", json!("home")),
            ),
            "requestPolicies.authentication.validationFailurePolicy.fallbackRedirectPath: 'home' must start with '/'",
        ),
        // Browsers read '\' as '/' and drop tabs: "/\evil" and "/<TAB>/evil" are "//evil".
        case(
            "OAUTH2: a backslash in a path would redirect off the gateway",
            discovery_with(
                "/validationFailurePolicy",
                with(oauth2_policy(), "/fallbackRedirectPath", json!("/\\evil.example")),
            ),
            "requestPolicies.authentication.validationFailurePolicy.fallbackRedirectPath: '/\\\\evil.example' must be a path of this gateway: browsers read a backslash as '/' and drop control characters, so it could send them to another host",
        ),
        case(
            "OAUTH2: a control character in a path would redirect off the gateway",
            discovery_with(
                "/validationFailurePolicy",
                with(oauth2_policy(), "/fallbackRedirectPath", json!("/\t/evil.example")),
            ),
            "requestPolicies.authentication.validationFailurePolicy.fallbackRedirectPath: '/\\t/evil.example' must be a path of this gateway: browsers read a backslash as '/' and drop control characters, so it could send them to another host",
        ),
        case(
            "OAUTH2: maxExpiryDurationInHours is at least 1",
            discovery_with(
                "/validationFailurePolicy",
                with(oauth2_policy(), "/maxExpiryDurationInHours", json!(0)),
            ),
            "requestPolicies.authentication.validationFailurePolicy.maxExpiryDurationInHours: 0 is below the minimum 1",
        ),
        // --- CUSTOM_AUTHENTICATION ---------------------------------------------------------
        case(
            "custom: functionId required",
            without(spec_with(AUTH, custom_policy()), &format!("{AUTH}/functionId")),
            "requestPolicies.authentication.functionId: is required",
        ),
        case(
            "custom: parameters at most 10",
            custom_with(
                "/parameters",
                Value::Object(
                    (0..11)
                        .map(|i| (if i == 0 { "token".to_owned() } else { format!("p{i}") }, json!(format!("request.headers[h{i}]"))))
                        .collect(),
                ),
            ),
            "requestPolicies.authentication.parameters: 11 entries is above the maximum 10",
        ),
        case(
            "custom: parameters are context variables",
            custom_with("/parameters/token", json!("request.header[Authorization]")),
            "requestPolicies.authentication.parameters.token: 'request.header' is not a context table (request.path, request.query, request.headers, request.auth, request.cert, request.host, request.subdomain, request.usage_plan)",
        ),
        case(
            "custom: cacheKey at most 10",
            custom_with("/cacheKey", many(11, |_| json!("token"))),
            "requestPolicies.authentication.cacheKey: 11 entries is above the maximum 10",
        ),
        case(
            "custom: cacheKey names parameters",
            custom_with("/cacheKey", json!(["token", "tenant"])),
            "requestPolicies.authentication.cacheKey[1]: 'tenant' is not a key of parameters",
        ),
        case(
            "custom: something to pass to the function",
            with(custom_with("/parameters", Value::Null), &format!("{AUTH}/cacheKey"), Value::Null),
            "requestPolicies.authentication.tokenHeader: is required (or tokenQueryParam, or parameters): what should the authorizer function receive?",
        ),
        case(
            "custom: parameters read what OCI passes to functions",
            custom_with("/parameters/token", json!("request.path[id]")),
            "requestPolicies.authentication.parameters.token: request.path cannot be passed to an authorizer function (request.query, request.headers, request.cert, request.host or request.body)",
        ),
        case(
            "custom: parameters or a token location, not both",
            custom_with("/tokenHeader", json!("Authorization")),
            "requestPolicies.authentication.parameters: parameters (multi-argument) and tokenHeader/tokenQueryParam (single-argument) cannot both be set: choose one way to call the function",
        ),
        case(
            "custom: parameters not empty",
            with(custom_with("/parameters", json!({})), &format!("{AUTH}/cacheKey"), Value::Null),
            "requestPolicies.authentication.parameters: at least one parameter is required",
        ),
        case(
            "custom: validationFailurePolicy is MODIFY_RESPONSE",
            custom_with("/validationFailurePolicy", oauth2_policy()),
            "requestPolicies.authentication.validationFailurePolicy.type: OAUTH2 is only for TOKEN_AUTHENTICATION with a REMOTE_DISCOVERY validationPolicy (CUSTOM_AUTHENTICATION takes MODIFY_RESPONSE)",
        ),
        // --- deployment-wide policies --------------------------------------------------------
        case(
            "rateLimiting: rate at least 1",
            spec_with("/requestPolicies/rateLimiting", json!({"rateInRequestsPerSecond": 0, "rateKey": "CLIENT_IP"})),
            "requestPolicies.rateLimiting.rateInRequestsPerSecond: 0 is below the minimum 1",
        ),
        case(
            "rateLimiting: rate is a whole number",
            spec_with("/requestPolicies/rateLimiting", json!({"rateInRequestsPerSecond": 2.5, "rateKey": "TOTAL"})),
            "requestPolicies.rateLimiting.rateInRequestsPerSecond: expected a whole number, found a number",
        ),
        case(
            "rateLimiting: rateKey enum",
            spec_with("/requestPolicies/rateLimiting", json!({"rateInRequestsPerSecond": 5, "rateKey": "IP"})),
            "requestPolicies.rateLimiting.rateKey: 'IP' is not a rate key (CLIENT_IP, TOTAL)",
        ),
        case(
            "rateLimiting: rateKey required",
            spec_with("/requestPolicies/rateLimiting", json!({"rateInRequestsPerSecond": 5})),
            "requestPolicies.rateLimiting.rateKey: is required",
        ),
        case(
            "cors: allowedOrigins required",
            spec_with("/requestPolicies/cors", json!({"allowedMethods": ["GET"]})),
            "requestPolicies.cors.allowedOrigins: is required",
        ),
        case(
            "cors: allowedMethods at most 50",
            spec_with("/requestPolicies/cors", json!({"allowedOrigins": ["*"], "allowedMethods": many(51, |_| json!("GET"))})),
            "requestPolicies.cors.allowedMethods: 51 entries is above the maximum 50",
        ),
        case(
            "cors: allowedHeaders at most 50",
            spec_with("/requestPolicies/cors", json!({"allowedOrigins": ["*"], "allowedHeaders": headers(51)})),
            "requestPolicies.cors.allowedHeaders: 51 entries is above the maximum 50",
        ),
        case(
            "cors: exposedHeaders at most 50",
            spec_with("/requestPolicies/cors", json!({"allowedOrigins": ["*"], "exposedHeaders": headers(51)})),
            "requestPolicies.cors.exposedHeaders: 51 entries is above the maximum 50",
        ),
        case(
            "cors: maxAgeInSeconds at least 0",
            spec_with("/requestPolicies/cors", json!({"allowedOrigins": ["*"], "maxAgeInSeconds": -1})),
            "requestPolicies.cors.maxAgeInSeconds: -1 is below the minimum 0",
        ),
        case(
            "cors: isAllowCredentialsEnabled is a boolean",
            spec_with("/requestPolicies/cors", json!({"allowedOrigins": ["*"], "isAllowCredentialsEnabled": "true"})),
            "requestPolicies.cors.isAllowCredentialsEnabled: expected true or false, found a string",
        ),
        case(
            "cors: origins are origins",
            spec_with("/requestPolicies/cors", json!({"allowedOrigins": ["app.example.com"]})),
            "requestPolicies.cors.allowedOrigins[0]: 'app.example.com' is not an origin (scheme://host[:port], '*' or 'null')",
        ),
        case(
            "cors: header names",
            spec_with("/requestPolicies/cors", json!({"allowedOrigins": ["*"], "allowedHeaders": ["X Tenant"]})),
            "requestPolicies.cors.allowedHeaders[0]: 'X Tenant' is not a valid header name",
        ),
        case(
            "route cors: same rules",
            route_with("/requestPolicies/cors", json!({"allowedOrigins": ["*"], "allowedMethods": many(51, |_| json!("GET"))})),
            "routes[0].requestPolicies.cors.allowedMethods: 51 entries is above the maximum 50",
        ),
        case(
            "mutualTls: allowedSans at most 10",
            spec_with("/requestPolicies/mutualTls", json!({"isVerifiedCertificateRequired": true, "allowedSans": many(11, |i| json!(format!("c{i}.example")))})),
            "requestPolicies.mutualTls.allowedSans: 11 entries is above the maximum 10",
        ),
        case(
            "mutualTls: isVerifiedCertificateRequired is a boolean",
            spec_with("/requestPolicies/mutualTls", json!({"isVerifiedCertificateRequired": 1})),
            "requestPolicies.mutualTls.isVerifiedCertificateRequired: expected true or false, found a number",
        ),
        case(
            "usagePlans: tokenLocations required",
            spec_with("/requestPolicies/usagePlans", json!({})),
            "requestPolicies.usagePlans.tokenLocations: is required",
        ),
        case(
            "usagePlans: tokenLocations are context variables",
            spec_with("/requestPolicies/usagePlans", json!({"tokenLocations": ["headers[X-Api-Key]"]})),
            "requestPolicies.usagePlans.tokenLocations[0]: 'headers[X-Api-Key]' is not a context variable (request.<table>[<key>])",
        ),
        case(
            "context variables: a table needs a key",
            spec_with("/requestPolicies/usagePlans", json!({"tokenLocations": ["request.query"]})),
            "requestPolicies.usagePlans.tokenLocations[0]: request.query needs a key: request.query[<key>]",
        ),
        case(
            "context variables: request.body only for authorizers",
            spec_with("/requestPolicies/usagePlans", json!({"tokenLocations": ["request.body"]})),
            "requestPolicies.usagePlans.tokenLocations[0]: request.body can only be passed to an authorizer function (CUSTOM_AUTHENTICATION parameters)",
        ),
        // --- dynamicAuthentication --------------------------------------------------------------
        case(
            "dynamicAuthentication: not with authentication",
            with(
                dynamic(),
                AUTH,
                jwt_spec()["requestPolicies"]["authentication"].clone(),
            ),
            "requestPolicies.dynamicAuthentication: authentication and dynamicAuthentication cannot both be set (put the policy in dynamicAuthentication.authenticationServers)",
        ),
        case(
            "dynamicAuthentication: selectionSource type enum",
            dynamic_with("/selectionSource/type", json!("MULTIPLE")),
            "requestPolicies.dynamicAuthentication.selectionSource.type: 'MULTIPLE' is not a selection source type (SINGLE)",
        ),
        case(
            "dynamicAuthentication: selector tables",
            dynamic_with("/selectionSource/selector", json!("request.usage_plan[id]")),
            "requestPolicies.dynamicAuthentication.selectionSource.selector: a selector reads request.auth, request.headers, request.host, request.path, request.query, request.subdomain, not request.usage_plan",
        ),
        case(
            "dynamicAuthentication: at most 100 servers",
            dynamic_with(
                "/authenticationServers",
                many(101, |i| {
                    json!({"key": {"type": "ANY_OF", "name": format!("s{i}"), "values": [format!("t{i}")]},
                           "authenticationServerDetail": jwt_spec()["requestPolicies"]["authentication"].clone()})
                }),
            ),
            "requestPolicies.dynamicAuthentication.authenticationServers: 101 entries is above the maximum 100",
        ),
        case(
            "dynamicAuthentication: at least one server",
            dynamic_with("/authenticationServers", json!([])),
            "requestPolicies.dynamicAuthentication.authenticationServers: at least one authentication server is required",
        ),
        case(
            "selection keys: ANY_OF values unique across rules, case-insensitively",
            dynamic_with("/authenticationServers/1/key/values", json!(["ACME"])),
            "requestPolicies.dynamicAuthentication.authenticationServers[1].key.values[0]: 'ACME' is already matched by requestPolicies.dynamicAuthentication.authenticationServers[0].key.values[0] (ANY_OF values are matched case-insensitively and must be unique across rules)",
        ),
        case(
            "selection keys: names unique",
            dynamic_with("/authenticationServers/1/key/name", json!("a")),
            "requestPolicies.dynamicAuthentication.authenticationServers[1].key.name: name 'a' is already used by requestPolicies.dynamicAuthentication.authenticationServers[0].key.name",
        ),
        case(
            "selection keys: name required",
            without(dynamic(), "/requestPolicies/dynamicAuthentication/authenticationServers/0/key/name"),
            "requestPolicies.dynamicAuthentication.authenticationServers[0].key.name: is required",
        ),
        case(
            "selection keys: type enum",
            dynamic_with("/authenticationServers/0/key/type", json!("EXACT")),
            "requestPolicies.dynamicAuthentication.authenticationServers[0].key.type: 'EXACT' is not a selection key type (ANY_OF, WILDCARD)",
        ),
        case(
            "selection keys: one default",
            with(
                dynamic_with("/authenticationServers/0/key/isDefault", json!(true)),
                "/requestPolicies/dynamicAuthentication/authenticationServers/1/key/isDefault",
                json!(true),
            ),
            "requestPolicies.dynamicAuthentication.authenticationServers[1].key.isDefault: only one rule can be the default, and requestPolicies.dynamicAuthentication.authenticationServers[0].key.isDefault already is",
        ),
        case(
            "selection keys: a wildcard at the start or end",
            dynamic_with("/authenticationServers/1/key", json!({"type": "WILDCARD", "name": "b", "expression": "a*z"})),
            "requestPolicies.dynamicAuthentication.authenticationServers[1].key.expression: 'a*z': the wildcard must be at the start or the end",
        ),
        case(
            "selection keys: one wildcard",
            dynamic_with("/authenticationServers/1/key", json!({"type": "WILDCARD", "name": "b", "expression": "*.example.+"})),
            "requestPolicies.dynamicAuthentication.authenticationServers[1].key.expression: '*.example.+' has more than one wildcard; OCI allows one",
        ),
        case(
            "selection keys: a WILDCARD has a wildcard",
            dynamic_with("/authenticationServers/1/key", json!({"type": "WILDCARD", "name": "b", "expression": "globex"})),
            "requestPolicies.dynamicAuthentication.authenticationServers[1].key.expression: 'globex' has no wildcard ('*' or '+'); use an ANY_OF key for exact values",
        ),
        case(
            "dynamicAuthentication: servers are authentication policies",
            dynamic_with("/authenticationServers/1/authenticationServerDetail/maxClockSkewInSeconds", json!(121)),
            "requestPolicies.dynamicAuthentication.authenticationServers[1].authenticationServerDetail.maxClockSkewInSeconds: 121 is above the maximum 120",
        ),
        case(
            "dynamicAuthentication: request.auth selectors need JWT servers",
            with(
                dynamic_with("/selectionSource/selector", json!("request.auth[tenant]")),
                "/requestPolicies/dynamicAuthentication/authenticationServers/1/authenticationServerDetail",
                custom_policy(),
            ),
            "requestPolicies.dynamicAuthentication.authenticationServers[1].authenticationServerDetail: with a request.auth selector every server must validate JWTs (JWT_AUTHENTICATION or TOKEN_AUTHENTICATION)",
        ),
        case(
            "dynamicAuthentication: request.auth selectors need one token location",
            with(
                dynamic_with("/selectionSource/selector", json!("request.auth[tenant]")),
                "/requestPolicies/dynamicAuthentication/authenticationServers/1/authenticationServerDetail/tokenHeader",
                json!("X-Token"),
            ),
            "requestPolicies.dynamicAuthentication.authenticationServers[1].authenticationServerDetail: with a request.auth selector every server must read the token from the same place (requestPolicies.dynamicAuthentication.authenticationServers[0].authenticationServerDetail reads it from the header 'Authorization' (Bearer scheme))",
        ),
        // --- route transformations ----------------------------------------------------------------
        case(
            "setHeaders: at most 20",
            route_with("/requestPolicies/headerTransformations", set_headers(many(21, |i| set_item(&format!("X-H{i}"), "v")))),
            "routes[0].requestPolicies.headerTransformations.setHeaders.items: 21 entries is above the maximum 20",
        ),
        case(
            "renameHeaders: at most 20",
            route_with("/requestPolicies/headerTransformations", json!({"renameHeaders": {"items": many(21, |i| json!({"from": format!("X-A{i}"), "to": format!("X-B{i}")}))}})),
            "routes[0].requestPolicies.headerTransformations.renameHeaders.items: 21 entries is above the maximum 20",
        ),
        case(
            "filterHeaders: at most 50",
            route_with("/requestPolicies/headerTransformations", json!({"filterHeaders": {"type": "BLOCK", "items": many(51, |i| json!({"name": format!("X-H{i}")}))}})),
            "routes[0].requestPolicies.headerTransformations.filterHeaders.items: 51 entries is above the maximum 50",
        ),
        case(
            "setHeaders: at most 10 values",
            route_with("/requestPolicies/headerTransformations", set_headers(json!([{"name": "X-A", "values": many(11, |i| json!(format!("v{i}")))}]))),
            "routes[0].requestPolicies.headerTransformations.setHeaders.items[0].values: 11 entries is above the maximum 10",
        ),
        case(
            "setHeaders: at least one value",
            route_with("/requestPolicies/headerTransformations", set_headers(json!([{"name": "X-A", "values": []}]))),
            "routes[0].requestPolicies.headerTransformations.setHeaders.items[0].values: at least one value is required",
        ),
        case(
            "setHeaders: ifExists enum",
            route_with("/requestPolicies/headerTransformations", set_headers(json!([{"name": "X-A", "values": ["v"], "ifExists": "REPLACE"}]))),
            "routes[0].requestPolicies.headerTransformations.setHeaders.items[0].ifExists: 'REPLACE' is not an ifExists behaviour (OVERWRITE, APPEND, SKIP)",
        ),
        case(
            "filterHeaders: type enum",
            route_with("/requestPolicies/headerTransformations", json!({"filterHeaders": {"type": "DENY", "items": [{"name": "X-A"}]}})),
            "routes[0].requestPolicies.headerTransformations.filterHeaders.type: 'DENY' is not a filter type (ALLOW, BLOCK)",
        ),
        case(
            "headerTransformations: protected request headers",
            route_with("/requestPolicies/headerTransformations", set_headers(json!([set_item("X-Forwarded-For", "10.0.0.1")]))),
            "routes[0].requestPolicies.headerTransformations.setHeaders.items[0].name: 'X-Forwarded-For' is a protected header: OCI does not let policies change it",
        ),
        case(
            "headerTransformations: a name in one transformation only (case-insensitive)",
            route_with("/requestPolicies/headerTransformations", json!({
                "setHeaders": {"items": [set_item("X-User", "${request.auth[sub]}")]},
                "renameHeaders": {"items": [{"from": "x-user", "to": "X-Caller"}]}
            })),
            "routes[0].requestPolicies.headerTransformations.renameHeaders.items[0].from: header 'x-user' is already used at routes[0].requestPolicies.headerTransformations.setHeaders.items[0].name; a name may appear in only one transformation (ALLOW filters excepted)",
        ),
        case(
            "headerTransformations: header names",
            route_with("/requestPolicies/headerTransformations", set_headers(json!([set_item("X User", "v")]))),
            "routes[0].requestPolicies.headerTransformations.setHeaders.items[0].name: 'X User' is not a valid header name",
        ),
        case(
            "headerTransformations: values cannot read request.body",
            route_with("/requestPolicies/headerTransformations", set_headers(json!([set_item("X-Body", "${request.body}")]))),
            "routes[0].requestPolicies.headerTransformations.setHeaders.items[0].values[0]: request.body can only be passed to an authorizer function (CUSTOM_AUTHENTICATION parameters)",
        ),
        case(
            "headerTransformations: context tables",
            route_with("/requestPolicies/headerTransformations", set_headers(json!([set_item("X-A", "${request.claims[sub]}")]))),
            "routes[0].requestPolicies.headerTransformations.setHeaders.items[0].values[0]: 'request.claims' is not a context table (request.path, request.query, request.headers, request.auth, request.cert, request.host, request.subdomain, request.usage_plan)",
        ),
        case(
            "headerTransformations: ${ is closed",
            route_with("/requestPolicies/headerTransformations", set_headers(json!([set_item("X-A", "Bearer ${request.auth[sub]")]))),
            "routes[0].requestPolicies.headerTransformations.setHeaders.items[0].values[0]: '${' at '${request.auth[sub]' is not closed by '}'",
        ),
        case(
            "context variables: request.cert has only client_base64",
            route_with("/requestPolicies/headerTransformations", set_headers(json!([set_item("X-Cert", "${request.cert[pem]}")]))),
            "routes[0].requestPolicies.headerTransformations.setHeaders.items[0].values[0]: request.cert has only the key 'client_base64', not 'pem'",
        ),
        case(
            "context variables: request.host takes no key",
            route_with("/requestPolicies/headerTransformations", set_headers(json!([set_item("X-Host", "${request.host[name]}")]))),
            "routes[0].requestPolicies.headerTransformations.setHeaders.items[0].values[0]: request.host takes no key",
        ),
        case(
            "queryParameterTransformations: at most 20 set",
            route_with("/requestPolicies/queryParameterTransformations", json!({"setQueryParameters": {"items": many(21, |i| set_item(&format!("p{i}"), "v"))}})),
            "routes[0].requestPolicies.queryParameterTransformations.setQueryParameters.items: 21 entries is above the maximum 20",
        ),
        case(
            "queryParameterTransformations: a name in one transformation only (case-sensitive)",
            route_with("/requestPolicies/queryParameterTransformations", json!({
                "setQueryParameters": {"items": [set_item("tenant", "acme")]},
                "filterQueryParameters": {"type": "BLOCK", "items": [{"name": "tenant"}]}
            })),
            "routes[0].requestPolicies.queryParameterTransformations.filterQueryParameters.items[0].name: query parameter 'tenant' is already used at routes[0].requestPolicies.queryParameterTransformations.setQueryParameters.items[0].name; a name may appear in only one transformation (ALLOW filters excepted)",
        ),
        case(
            "responsePolicies.headerTransformations: protected response headers",
            route_with("/responsePolicies/headerTransformations", set_headers(json!([set_item("Strict-Transport-Security", "max-age=0")]))),
            "routes[0].responsePolicies.headerTransformations.setHeaders.items[0].name: 'Strict-Transport-Security' is a protected header: OCI does not let policies change it",
        ),
        // --- validations and the response cache -------------------------------------------------
        case(
            "headerValidations: validationMode enum",
            route_with("/requestPolicies/headerValidations", json!({"headers": [{"name": "X-Tenant", "required": true}], "validationMode": "STRICT"})),
            "routes[0].requestPolicies.headerValidations.validationMode: 'STRICT' is not a validation mode (ENFORCING, PERMISSIVE, DISABLED)",
        ),
        case(
            "headerValidations: a name per header",
            route_with("/requestPolicies/headerValidations", json!({"headers": [{"required": true}]})),
            "routes[0].requestPolicies.headerValidations.headers[0].name: is required",
        ),
        case(
            "queryParameterValidations: no repeats",
            route_with("/requestPolicies/queryParameterValidations", json!({"parameters": [{"name": "page"}, {"name": "page", "required": true}]})),
            "routes[0].requestPolicies.queryParameterValidations.parameters[1].name: 'page' is listed twice",
        ),
        case(
            "bodyValidation: content required",
            route_with("/requestPolicies/bodyValidation", json!({"required": true, "validationMode": "ENFORCING"})),
            "routes[0].requestPolicies.bodyValidation.content: is required",
        ),
        case(
            "bodyValidation: media type ranges",
            route_with("/requestPolicies/bodyValidation", json!({"required": true, "content": {"json": {"validationType": "NONE"}}})),
            "routes[0].requestPolicies.bodyValidation.content.json: 'json' is not a media type range (type/subtype, type/* or */*)",
        ),
        case(
            "bodyValidation: validationType enum",
            route_with("/requestPolicies/bodyValidation", json!({"content": {"application/json": {"validationType": "JSON_SCHEMA"}}})),
            "routes[0].requestPolicies.bodyValidation.content.application/json.validationType: 'JSON_SCHEMA' is not a content validation type (NONE)",
        ),
        case(
            "responseCacheLookup: type enum",
            route_with("/requestPolicies/responseCacheLookup", json!({"type": "SIMPLE", "isEnabled": true})),
            "routes[0].requestPolicies.responseCacheLookup.type: 'SIMPLE' is not a cache lookup policy type (SIMPLE_LOOKUP_POLICY)",
        ),
        case(
            "responseCacheLookup: cache key additions are expressions",
            route_with("/requestPolicies/responseCacheLookup", json!({"type": "SIMPLE_LOOKUP_POLICY", "isEnabled": true, "cacheKeyAdditions": ["tenant"]})),
            "routes[0].requestPolicies.responseCacheLookup.cacheKeyAdditions[0]: 'tenant' is not a context variable (request.<table>[<key>])",
        ),
        case(
            "cacheKeyAdditions: a ${...} value must be well formed",
            route_with("/requestPolicies/responseCacheLookup", json!({"type": "SIMPLE_LOOKUP_POLICY", "isEnabled": true, "cacheKeyAdditions": ["${request.headers[Accept]}", "tenant-${x"]})),
            "routes[0].requestPolicies.responseCacheLookup.cacheKeyAdditions[1]: '${' at '${x' is not closed by '}'",
        ),
        case(
            "responseCacheStore: timeToLiveInSeconds at least 1",
            route_with("/responsePolicies/responseCacheStore", json!({"type": "FIXED_TTL_STORE_POLICY", "timeToLiveInSeconds": 0})),
            "routes[0].responsePolicies.responseCacheStore.timeToLiveInSeconds: 0 is below the minimum 1",
        ),
        case(
            "responseCacheStore: a negative timeToLiveInSeconds",
            route_with("/responsePolicies/responseCacheStore", json!({"type": "FIXED_TTL_STORE_POLICY", "timeToLiveInSeconds": -5})),
            "routes[0].responsePolicies.responseCacheStore.timeToLiveInSeconds: -5 is below the minimum 1",
        ),
        case(
            "bodyValidation: a media type range listed twice (case-insensitively)",
            route_with("/requestPolicies/bodyValidation", json!({"content": {"application/json": {"validationType": "NONE"}, "Application/JSON": {"validationType": "NONE"}}})),
            "routes[0].requestPolicies.bodyValidation.content.Application/JSON: 'Application/JSON' is listed twice",
        ),
        case(
            "queryParameterValidations: names compare case-insensitively",
            route_with("/requestPolicies/queryParameterValidations", json!({"parameters": [{"name": "page", "required": true}, {"name": "Page"}]})),
            "routes[0].requestPolicies.queryParameterValidations.parameters[1].name: 'Page' is listed twice",
        ),
        case(
            "responseCacheStore: type enum",
            route_with("/responsePolicies/responseCacheStore", json!({"type": "TTL", "timeToLiveInSeconds": 60})),
            "routes[0].responsePolicies.responseCacheStore.type: 'TTL' is not a cache store policy type (FIXED_TTL_STORE_POLICY)",
        ),
        // --- backends -----------------------------------------------------------------------------
        case(
            "backend: type enum",
            route_with("/backend", json!({"type": "LAMBDA_BACKEND"})),
            "routes[0].backend.type: 'LAMBDA_BACKEND' is not a backend type (HTTP_BACKEND, STOCK_RESPONSE_BACKEND, ORACLE_FUNCTIONS_BACKEND, DYNAMIC_ROUTING_BACKEND, OAUTH2_LOGIN_BACKEND, OAUTH2_LOGOUT_BACKEND)",
        ),
        case(
            "ORACLE_FUNCTIONS_BACKEND: functionId required",
            route_with("/backend", json!({"type": "ORACLE_FUNCTIONS_BACKEND"})),
            "routes[0].backend.functionId: is required",
        ),
        case(
            "HTTP_BACKEND: connectTimeoutInSeconds at most 75",
            route_with("/backend", json!({"type": "HTTP_BACKEND", "url": "https://orders.internal/", "connectTimeoutInSeconds": 76})),
            "routes[0].backend.connectTimeoutInSeconds: 76 is above the maximum 75",
        ),
        case(
            "HTTP_BACKEND: readTimeoutInSeconds at most 300",
            route_with("/backend", json!({"type": "HTTP_BACKEND", "url": "https://orders.internal/", "readTimeoutInSeconds": 300.5})),
            "routes[0].backend.readTimeoutInSeconds: 300.5 is above the maximum 300",
        ),
        case(
            "HTTP_BACKEND: sendTimeoutInSeconds at least 1",
            route_with("/backend", json!({"type": "HTTP_BACKEND", "url": "https://orders.internal/", "sendTimeoutInSeconds": 0.5})),
            "routes[0].backend.sendTimeoutInSeconds: 0.5 is below the minimum 1",
        ),
        case(
            "HTTP_BACKEND: url scheme",
            route_with("/backend", json!({"type": "HTTP_BACKEND", "url": "orders.internal/x"})),
            "routes[0].backend.url: 'orders.internal/x' must start with http:// or https://",
        ),
        case(
            "HTTP_BACKEND: no context variables in the query",
            route_with("/backend", json!({"type": "HTTP_BACKEND", "url": "https://orders.internal/orders?id=${request.path[id]}"})),
            "routes[0].backend.url: context variables cannot be used in the query of url; set query parameters with queryParameterTransformations",
        ),
        case(
            "HTTP_BACKEND: no bare {param}",
            route_with("/backend", json!({"type": "HTTP_BACKEND", "url": "https://orders.internal/orders/{id}"})),
            "routes[0].backend.url: 'https://orders.internal/orders/{id}': write a path parameter as ${request.path[name]}, not {name}",
        ),
        case(
            "STOCK_RESPONSE_BACKEND: status 100-599",
            route_with("/backend/status", json!(600)),
            "routes[0].backend.status: 600 is above the maximum 599",
        ),
        case(
            "STOCK_RESPONSE_BACKEND: body at most 5 KB",
            route_with("/backend/body", json!("x".repeat(5121))),
            "routes[0].backend.body: 5121 bytes is above the maximum 5120",
        ),
        case(
            "STOCK_RESPONSE_BACKEND: at most 50 headers",
            route_with("/backend/headers", many(51, |i| json!({"name": format!("X-H{i}"), "value": "v"}))),
            "routes[0].backend.headers: 51 entries is above the maximum 50",
        ),
        case(
            "STOCK_RESPONSE_BACKEND: header names at most 1 KB",
            route_with("/backend/headers", json!([{"name": "X".repeat(1025), "value": "v"}])),
            "routes[0].backend.headers[0].name: 1025 bytes is above the maximum 1024",
        ),
        case(
            "STOCK_RESPONSE_BACKEND: header values at most 4 KB",
            route_with("/backend/headers", json!([{"name": "X-A", "value": "v".repeat(4097)}])),
            "routes[0].backend.headers[0].value: 4097 bytes is above the maximum 4096",
        ),
        case(
            "DYNAMIC_ROUTING_BACKEND: at most 100 routing backends",
            route_with("/backend", json!({
                "type": "DYNAMIC_ROUTING_BACKEND",
                "selectionSource": {"type": "SINGLE", "selector": "request.headers[X-Region]"},
                "routingBackends": many(101, |i| json!({"key": {"type": "ANY_OF", "name": format!("r{i}"), "values": [format!("v{i}")]}, "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200}}))
            })),
            "routes[0].backend.routingBackends: 101 entries is above the maximum 100",
        ),
        case(
            "DYNAMIC_ROUTING_BACKEND: routes to HTTP, functions or stock",
            route_with("/backend", json!({
                "type": "DYNAMIC_ROUTING_BACKEND",
                "selectionSource": {"type": "SINGLE", "selector": "request.usage_plan[id]"},
                "routingBackends": [{"key": {"type": "ANY_OF", "name": "a", "values": ["a"]}, "backend": {"type": "OAUTH2_LOGIN_BACKEND"}}]
            })),
            "routes[0].backend.routingBackends[0].backend.type: 'OAUTH2_LOGIN_BACKEND' is not a routing backend type (HTTP_BACKEND, ORACLE_FUNCTIONS_BACKEND, STOCK_RESPONSE_BACKEND)",
        ),
        case(
            "DYNAMIC_ROUTING_BACKEND: selector tables",
            route_with("/backend", json!({
                "type": "DYNAMIC_ROUTING_BACKEND",
                "selectionSource": {"type": "SINGLE", "selector": "request.cert[client_base64]"},
                "routingBackends": [{"key": {"type": "ANY_OF", "name": "a", "values": ["a"]}, "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200}}]
            })),
            "routes[0].backend.selectionSource.selector: a selector reads request.auth, request.headers, request.host, request.path, request.query, request.subdomain, request.usage_plan, not request.cert",
        ),
        case(
            "DYNAMIC_ROUTING_BACKEND: ANY_OF values unique across rules, case-insensitively",
            routing_with("/routingBackends/1/key/values", json!(["x", "EU"])),
            "routes[0].backend.routingBackends[1].key.values[1]: 'EU' is already matched by routes[0].backend.routingBackends[0].key.values[0] (ANY_OF values are matched case-insensitively and must be unique across rules)",
        ),
        case(
            "DYNAMIC_ROUTING_BACKEND: ANY_OF values unique within a rule",
            routing_with("/routingBackends/0/key/values", json!(["eu", "Eu"])),
            "routes[0].backend.routingBackends[0].key.values[1]: 'Eu' is already matched by routes[0].backend.routingBackends[0].key.values[0] (ANY_OF values are matched case-insensitively and must be unique across rules)",
        ),
        case(
            "DYNAMIC_ROUTING_BACKEND: one default rule",
            with(
                routing_with("/routingBackends/0/key/isDefault", json!(true)),
                "/routes/0/backend/routingBackends/2/key/isDefault",
                json!(true),
            ),
            "routes[0].backend.routingBackends[2].key.isDefault: only one rule can be the default, and routes[0].backend.routingBackends[0].key.isDefault already is",
        ),
        case(
            "DYNAMIC_ROUTING_BACKEND: rule names unique",
            routing_with("/routingBackends/2/key/name", json!("eu")),
            "routes[0].backend.routingBackends[2].key.name: name 'eu' is already used by routes[0].backend.routingBackends[0].key.name",
        ),
        case(
            "DYNAMIC_ROUTING_BACKEND: a wildcard at the start or end",
            routing_with("/routingBackends/2/key/expression", json!("a*z")),
            "routes[0].backend.routingBackends[2].key.expression: 'a*z': the wildcard must be at the start or the end",
        ),
        case(
            "DYNAMIC_ROUTING_BACKEND: routing backends are checked in full",
            routing_with("/routingBackends/1/backend/url", json!("ftp://us.example")),
            "routes[0].backend.routingBackends[1].backend.url: 'ftp://us.example' must start with http:// or https://",
        ),
        case(
            "DYNAMIC_ROUTING_BACKEND: no nested dynamic routing",
            routing_with("/routingBackends/2/backend", routing()),
            "routes[0].backend.routingBackends[2].backend.type: 'DYNAMIC_ROUTING_BACKEND' is not a routing backend type (HTTP_BACKEND, ORACLE_FUNCTIONS_BACKEND, STOCK_RESPONSE_BACKEND)",
        ),
        case(
            "DYNAMIC_ROUTING_BACKEND: at least one routing backend",
            routing_with("/routingBackends", json!([])),
            "routes[0].backend.routingBackends: at least one routing backend is required",
        ),
        case(
            "OAUTH2_LOGOUT_BACKEND: at most 10 post-logout URIs",
            route_with("/backend", json!({"type": "OAUTH2_LOGOUT_BACKEND", "allowedPostLogoutUris": many(11, |i| json!(format!("https://app.example/{i}")))})),
            "routes[0].backend.allowedPostLogoutUris: 11 entries is above the maximum 10",
        ),
        case(
            "OAUTH2_LOGIN_BACKEND: no members",
            route_with("/backend", json!({"type": "OAUTH2_LOGIN_BACKEND", "redirectUri": "https://app.example/"})),
            "routes[0].backend.redirectUri: unknown member",
        ),
    ]
}

#[test]
fn every_rule_refuses_its_file_with_the_exact_path_and_message() {
    let mut failures = Vec::new();
    let all = cases();
    for case in &all {
        let actual = errors(&case.file);
        if actual != case.expected {
            failures.push(format!(
                "{}\n    expected {:#?}\n    actual   {:#?}",
                case.rule, case.expected, actual
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rules failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

#[test]
fn the_base_files_of_the_table_are_valid() {
    for file in [
        jwt_spec(),
        spec_with(AUTH, token_policy()),
        spec_with(AUTH, discovery_policy()),
        spec_with(AUTH, custom_policy()),
        with(
            custom_with("/isAnonymousAccessAllowed", json!(true)),
            "/routes/0/requestPolicies/authorization",
            json!({"type": "ANONYMOUS"}),
        ),
        dynamic(),
        discovery_with("/validationFailurePolicy", oauth2_policy()),
    ] {
        assert_eq!(errors(&file), Vec::<String>::new(), "{file:#}");
    }
}

/// CORS `*` with credentials is valid (OCI accepts it) but lets every page read answers made
/// with the browser's credentials: a warning, deployment-wide and per route; listed origins, or
/// `*` without credentials, draw none.
#[test]
fn cors_any_origin_with_credentials_is_warned_about() {
    let message = "isAllowCredentialsEnabled: with allowedOrigins '*' every origin is echoed with \
                   Access-Control-Allow-Credentials: true, so any web page can read answers made \
                   with the visitor's cookies or client certificate; list the origins instead \
                   (serve refuses it on a deployment with mutualTls)";
    let cors = |origins: Value, credentials: bool| json!({"allowedOrigins": origins, "isAllowCredentialsEnabled": credentials});
    let deployment_wide = spec_with("/requestPolicies/cors", cors(json!(["*"]), true));
    assert_eq!(
        warnings(&deployment_wide),
        [format!("requestPolicies.cors.{message}")]
    );
    let per_route = route_with(
        "/requestPolicies/cors",
        cors(json!(["https://a.example", "*"]), true),
    );
    assert_eq!(
        warnings(&per_route),
        [format!("routes[0].requestPolicies.cors.{message}")]
    );
    for quiet in [
        cors(json!(["https://a.example"]), true),
        cors(json!(["*"]), false),
    ] {
        let file = spec_with("/requestPolicies/cors", quiet);
        assert_eq!(warnings(&file), Vec::<String>::new(), "{file:#}");
    }
}
