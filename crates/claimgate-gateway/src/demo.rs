//! The bundled demo: a deployment with a static RSA key made at start-up, and tokens signed
//! with it, so `claimgate serve` with no arguments shows an accepted and a refused request.
//! The private key lives only in memory for the life of the process.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::json;

/// The demo's path prefix.
pub const PREFIX: &str = "/demo";
const ISSUER: &str = "https://issuer.demo.claimgate.local/";
const AUDIENCE: &str = "api://demo";

/// A demo deployment file and tokens for it.
#[derive(Debug)]
pub struct Demo {
    /// The deployment file's text (CreateDeploymentDetails, camelCase).
    pub deployment: String,
    /// Accepted on `/demo/hello`.
    pub good_token: String,
    /// Refused: issued for another audience.
    pub wrong_audience_token: String,
    /// Accepted, with the `demo:admin` scope that `/demo/admin` asks for.
    pub admin_token: String,
}

impl Demo {
    /// Makes a key pair and signs the demo tokens, valid for `lifetime_seconds` from `now`.
    pub fn generate(now: i64, lifetime_seconds: i64) -> Result<Self, String> {
        let key = KeyPair::generate(KeySize::Rsa2048).map_err(|e| e.to_string())?;
        let public = key.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let deployment = json!({
            "displayName": "claimgate demo",
            "pathPrefix": PREFIX,
            "specification": {
                "requestPolicies": {
                    "authentication": {
                        "type": "JWT_AUTHENTICATION",
                        "isAnonymousAccessAllowed": true,
                        "tokenHeader": "Authorization",
                        "tokenAuthScheme": "Bearer",
                        "issuers": [ISSUER],
                        "audiences": [AUDIENCE],
                        "maxClockSkewInSeconds": 30,
                        "verifyClaims": [{"key": "tenant", "values": ["acme"], "isRequired": true}],
                        "publicKeys": {"type": "STATIC_KEYS", "keys": [
                            {"kid": "demo-1", "format": "JSON_WEB_KEY", "kty": "RSA", "use": "sig", "alg": "RS256", "n": n, "e": e}
                        ]}
                    }
                },
                "routes": [
                    {"path": "/hello", "methods": ["GET"],
                     "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "{\"hello\":\"world\"}",
                                 "headers": [{"name": "Content-Type", "value": "application/json"}]}},
                    {"path": "/admin", "methods": ["GET"],
                     "requestPolicies": {"authorization": {"type": "ANY_OF", "allowedScope": ["demo:admin"]}},
                     "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "{\"admin\":true}",
                                 "headers": [{"name": "Content-Type", "value": "application/json"}]}},
                    {"path": "/public", "methods": ["GET"],
                     "requestPolicies": {"authorization": {"type": "ANONYMOUS"}},
                     "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "{\"public\":true}",
                                 "headers": [{"name": "Content-Type", "value": "application/json"}]}}
                ]
            }
        });
        let claims = |aud: &str, scope: &str| {
            json!({"iss": ISSUER, "aud": aud, "sub": "alice", "tenant": "acme", "scope": scope,
                   "iat": now, "exp": now + lifetime_seconds})
        };
        let sign = |claims: serde_json::Value| -> Result<String, String> {
            let header = URL_SAFE_NO_PAD
                .encode(json!({"alg": "RS256", "typ": "JWT", "kid": "demo-1"}).to_string());
            let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
            let input = format!("{header}.{payload}");
            let mut signature = vec![0; key.public_modulus_len()];
            key.sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .map_err(|e| e.to_string())?;
            Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
        };
        Ok(Self {
            deployment: serde_json::to_string_pretty(&deployment).map_err(|e| e.to_string())?,
            good_token: sign(claims(AUDIENCE, "demo:read"))?,
            wrong_audience_token: sign(claims("api://billing", "demo:read"))?,
            admin_token: sign(claims(AUDIENCE, "demo:read demo:admin"))?,
        })
    }
}
