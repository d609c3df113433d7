//! Helpers shared by the deployment-file tests.

#![allow(dead_code)]

use claimgate_config::{load_str, LoadOptions, Loaded, Rejected};
use serde_json::{json, Value};

/// Loads a JSON value as a deployment file (a bare specification gets the prefix `/`).
pub(crate) fn load(file: &Value) -> Result<Loaded, Rejected> {
    load_str(
        &file.to_string(),
        &LoadOptions {
            path_prefix: None,
            name: "test".into(),
        },
    )
}

/// Every error of a file that must be refused, as `path: message`.
pub(crate) fn errors(file: &Value) -> Vec<String> {
    match load(file) {
        Ok(_) => Vec::new(),
        Err(rejected) => rejected.errors.iter().map(ToString::to_string).collect(),
    }
}

/// Every warning of a file, loaded or not, as `path: message`.
pub(crate) fn warnings(file: &Value) -> Vec<String> {
    let list = match load(file) {
        Ok(loaded) => loaded.warnings,
        Err(rejected) => rejected.warnings,
    };
    list.iter().map(ToString::to_string).collect()
}

/// `file` with the member at a JSON pointer (`/routes/0/backend`) replaced, creating objects on
/// the way.
pub(crate) fn with(mut file: Value, pointer: &str, value: Value) -> Value {
    let tokens: Vec<&str> = pointer.split('/').skip(1).collect();
    let (last, parents) = tokens.split_last().expect("a pointer");
    let mut at = &mut file;
    for token in parents {
        at = match at {
            Value::Array(items) => &mut items[token.parse::<usize>().expect("array index")],
            Value::Object(map) => map.entry(token.to_string()).or_insert(json!({})),
            other => panic!("cannot descend into {other} at {token}"),
        };
    }
    match at {
        Value::Array(items) => {
            let i = last.parse::<usize>().expect("array index");
            if i == items.len() {
                items.push(value);
            } else {
                items[i] = value;
            }
        }
        Value::Object(map) => {
            map.insert(last.to_string(), value);
        }
        other => panic!("cannot set {last} in {other}"),
    }
    file
}

/// `file` without the member at a JSON pointer.
pub(crate) fn without(mut file: Value, pointer: &str) -> Value {
    let (parent, name) = pointer.rsplit_once('/').unwrap();
    file.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .expect("parent object")
        .remove(name);
    file
}

pub(crate) const ISSUER: &str = "https://idp.example.com/";
pub(crate) const JWKS: &str = "https://idp.example.com/.well-known/jwks.json";

/// A 2048-bit RSA public key (PEM and JWK members).
pub(crate) const RSA_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEApK9UOGlINkCqAgDPqISh
m704+jQPExthbrvVYnjshyl5oXzTTwqz1b+pCDBUYmASn4aufYe3ptxO6CKEjkax
79Qtm6xlgUeG9J8AV3AyeC6VVAVKvv8JVqya+u3IAWtwCDXCfZwMA8VQiu4Dhx2E
yj2FOaL9LPx/XxKDGxAEbz+XG4Nlj4p1GCPN0FOdIQnpXAKvK+xhjGvg4v/8WMXa
XCDRehDmPNHHpkOUMIU57Occv8ShOjliLMd2qxYkYqKRbHwOaKTk8wPGh4784tE3
MhVyc7MvEZcfRJm6rjFF0k+6gCR9Unp9WOWI84fZel2Sgijmc9qs67cFJfZwOdHb
nQIDAQAB
-----END PUBLIC KEY-----
";
pub(crate) const RSA_N: &str = "pK9UOGlINkCqAgDPqIShm704-jQPExthbrvVYnjshyl5oXzTTwqz1b-pCDBUYmASn4aufYe3ptxO6CKEjkax79Qtm6xlgUeG9J8AV3AyeC6VVAVKvv8JVqya-u3IAWtwCDXCfZwMA8VQiu4Dhx2Eyj2FOaL9LPx_XxKDGxAEbz-XG4Nlj4p1GCPN0FOdIQnpXAKvK-xhjGvg4v_8WMXaXCDRehDmPNHHpkOUMIU57Occv8ShOjliLMd2qxYkYqKRbHwOaKTk8wPGh4784tE3MhVyc7MvEZcfRJm6rjFF0k-6gCR9Unp9WOWI84fZel2Sgijmc9qs67cFJfZwOdHbnQ";

/// A valid bare specification: JWT_AUTHENTICATION with a remote key set, one stock route.
pub(crate) fn jwt_spec() -> Value {
    json!({
        "requestPolicies": {
            "authentication": {
                "type": "JWT_AUTHENTICATION",
                "tokenHeader": "Authorization",
                "tokenAuthScheme": "Bearer",
                "issuers": [ISSUER],
                "audiences": ["orders-api"],
                "publicKeys": {"type": "REMOTE_JWKS", "uri": JWKS, "maxCacheDurationInHours": 1}
            }
        },
        "routes": [{
            "path": "/orders/{id}",
            "methods": ["GET"],
            "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200}
        }]
    })
}

/// A valid TOKEN_AUTHENTICATION policy with a remote key set.
pub(crate) fn token_policy() -> Value {
    json!({
        "type": "TOKEN_AUTHENTICATION",
        "tokenHeader": "Authorization",
        "tokenAuthScheme": "Bearer",
        "validationPolicy": {
            "type": "REMOTE_JWKS",
            "uri": JWKS,
            "additionalValidationPolicy": {"issuers": [ISSUER], "audiences": ["orders-api"]}
        }
    })
}

/// A valid TOKEN_AUTHENTICATION policy with OIDC discovery and introspection.
pub(crate) fn discovery_policy() -> Value {
    json!({
        "type": "TOKEN_AUTHENTICATION",
        "tokenHeader": "Authorization",
        "tokenAuthScheme": "Bearer",
        "validationPolicy": {
            "type": "REMOTE_DISCOVERY",
            "clientDetails": {
                "type": "CUSTOM",
                "clientId": "orders-gateway",
                "clientSecretId": "ocid1.vaultsecret.oc1..aaaaexample",
                "clientSecretVersionNumber": 1
            },
            "sourceUriDetails": {
                "type": "DISCOVERY_URI",
                "uri": "https://idp.example.com/.well-known/openid-configuration"
            },
            "isSslVerifyDisabled": false,
            "maxCacheDurationInHours": 2
        }
    })
}

/// A valid OAUTH2 validation failure policy.
pub(crate) fn oauth2_policy() -> Value {
    json!({
        "type": "OAUTH2",
        "clientDetails": {"type": "VALIDATION_BLOCK"},
        "sourceUriDetails": {"type": "VALIDATION_BLOCK"},
        "scopes": ["openid", "orders"],
        "responseType": "CODE",
        "maxExpiryDurationInHours": 1,
        "useCookiesForSession": true,
        "useCookiesForIntermediateSteps": true,
        "usePkce": true,
        "fallbackRedirectPath": "/"
    })
}

/// A valid CUSTOM_AUTHENTICATION policy (multi-argument authorizer).
pub(crate) fn custom_policy() -> Value {
    json!({
        "type": "CUSTOM_AUTHENTICATION",
        "functionId": "ocid1.fnfunc.oc1..aaaaexample",
        "parameters": {"token": "request.headers[Authorization]", "body": "request.body"},
        "cacheKey": ["token"]
    })
}

/// `n` distinct strings made by `f`.
pub(crate) fn many(n: usize, f: impl Fn(usize) -> Value) -> Value {
    Value::Array((0..n).map(f).collect())
}
