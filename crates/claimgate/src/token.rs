//! `claimgate token`: a signed JWT for testing a deployment locally, as `jwt encode` or
//! `step crypto jwt sign` make them. It signs with a PEM private key the user made for the
//! test; it is no token service (no key storage, no rotation).

use crate::exit;
use crate::input::{
    parse_duration, parse_now, read_file, read_text, InputError, DATA_LIMIT, TOKEN_LIMIT,
};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair};
use base64::Engine as _;
use serde_json::{json, Map, Value};

#[derive(Debug, clap::Args)]
pub(crate) struct TokenArgs {
    /// The private key to sign with (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC). A key made for
    /// testing: never a production key.
    #[arg(long, value_name = "FILE", value_parser = crate::input::file_arg)]
    key: String,
    /// The kid header, naming the key as the deployment's key set does.
    #[arg(long, value_name = "KID")]
    kid: Option<String>,
    /// The algorithm: RS256 (default for RSA), RS384, RS512, PS256, PS384, PS512; ES256, ES384
    /// or ES512 (by the EC key's curve); EdDSA (Ed25519).
    #[arg(long, value_name = "ALG")]
    alg: Option<String>,
    /// The claims: a JSON object, or @FILE holding one.
    #[arg(long, value_name = "JSON|@FILE")]
    claims: String,
    /// The token's lifetime: exp is now + TTL (default 1h when the claims have no exp); iat is
    /// now unless the claims set it.
    #[arg(long, value_name = "DURATION")]
    ttl: Option<String>,
    /// The moment taken as now: seconds since 1970 or RFC 3339 (default: now).
    #[arg(long, value_name = "UNIX|RFC3339")]
    now: Option<String>,
}

/// The loaded key, by kind.
enum Key {
    Rsa(aws_lc_rs::rsa::KeyPair),
    Ec(EcdsaKeyPair, &'static str),
    Ed(Ed25519KeyPair),
}

pub(crate) fn run(args: &TokenArgs) -> u8 {
    match make(args) {
        Ok(token) => {
            outln!("{token}");
            exit::OK
        }
        Err(error) => {
            crate::output::report_error(&error, false);
            exit::USAGE
        }
    }
}

fn make(args: &TokenArgs) -> Result<String, InputError> {
    let key = load_key(&args.key)?;
    let alg = choose_alg(&key, args.alg.as_deref())?;
    let mut claims = read_claims(&args.claims)?;
    let now = parse_now(args.now.as_deref())?.0;
    let ttl = match &args.ttl {
        Some(text) => Some(parse_duration(text).ok_or_else(|| {
            InputError::new(format!(
                "--ttl '{text}' is not a duration (e.g. 90s, 15m, 1h, 2d)"
            ))
        })?),
        None => None,
    };
    match ttl {
        Some(ttl) => {
            claims.insert("exp".into(), json!(now.saturating_add_unsigned(ttl)));
        }
        None => {
            claims.entry("exp").or_insert_with(|| json!(now + 3600));
        }
    }
    claims.entry("iat").or_insert_with(|| json!(now));
    let mut header = Map::new();
    header.insert("alg".into(), json!(alg));
    header.insert("typ".into(), json!("JWT"));
    if let Some(kid) = &args.kid {
        header.insert("kid".into(), json!(kid));
    }
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let input = format!(
        "{}.{}",
        b64(Value::Object(header).to_string().as_bytes()),
        b64(Value::Object(claims).to_string().as_bytes())
    );
    let signature = sign(&key, alg, input.as_bytes())?;
    Ok(format!("{input}.{}", b64(&signature)))
}

fn read_claims(arg: &str) -> Result<Map<String, Value>, InputError> {
    let text = match arg.strip_prefix('@') {
        Some(path) => read_text(path, "--claims file", TOKEN_LIMIT).map_err(InputError::new)?,
        None => arg.to_owned(),
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(InputError::new("--claims must be a JSON object")),
        Err(e) => Err(InputError::new(format!(
            "--claims is not JSON ({e}); write a JSON object or @FILE"
        ))),
    }
}

fn load_key(path: &str) -> Result<Key, InputError> {
    use rustls::pki_types::{pem::PemObject as _, PrivateKeyDer};
    let pem = read_file(path, "--key", DATA_LIMIT).map_err(InputError::new)?;
    let der = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        InputError::new(format!(
            "--key '{path}' holds no PEM private key ({e}); write PKCS#8 (BEGIN PRIVATE KEY), PKCS#1 (BEGIN RSA PRIVATE KEY) or SEC1 (BEGIN EC PRIVATE KEY)"
        ))
    })?;
    let curves: [(&'static signature::EcdsaSigningAlgorithm, &'static str); 3] = [
        (&signature::ECDSA_P256_SHA256_FIXED_SIGNING, "ES256"),
        (&signature::ECDSA_P384_SHA384_FIXED_SIGNING, "ES384"),
        (&signature::ECDSA_P521_SHA512_FIXED_SIGNING, "ES512"),
    ];
    let key = match &der {
        PrivateKeyDer::Pkcs1(k) => aws_lc_rs::rsa::KeyPair::from_der(k.secret_pkcs1_der())
            .ok()
            .map(Key::Rsa),
        PrivateKeyDer::Sec1(k) => curves.iter().find_map(|(alg, name)| {
            EcdsaKeyPair::from_private_key_der(alg, k.secret_sec1_der())
                .ok()
                .map(|pair| Key::Ec(pair, name))
        }),
        PrivateKeyDer::Pkcs8(k) => {
            let der = k.secret_pkcs8_der();
            aws_lc_rs::rsa::KeyPair::from_pkcs8(der)
                .ok()
                .map(Key::Rsa)
                .or_else(|| {
                    curves.iter().find_map(|(alg, name)| {
                        EcdsaKeyPair::from_pkcs8(alg, der)
                            .ok()
                            .map(|pair| Key::Ec(pair, name))
                    })
                })
                .or_else(|| {
                    Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                        .ok()
                        .map(Key::Ed)
                })
        }
        _ => None,
    };
    key.ok_or_else(|| {
        InputError::new(format!(
            "--key '{path}' is not an RSA, EC (P-256, P-384, P-521) or Ed25519 private key"
        ))
    })
}

/// `--alg`, or the key's own; refused when the key cannot make it.
fn choose_alg(key: &Key, asked: Option<&str>) -> Result<&'static str, InputError> {
    const RSA: [&str; 6] = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];
    let (default, allowed): (&'static str, Vec<&'static str>) = match key {
        Key::Rsa(_) => ("RS256", RSA.to_vec()),
        Key::Ec(_, alg) => (alg, vec![alg]),
        Key::Ed(_) => ("EdDSA", vec!["EdDSA"]),
    };
    match asked {
        None => Ok(default),
        Some(asked) => allowed
            .iter()
            .find(|a| a.eq_ignore_ascii_case(asked))
            .copied()
            .ok_or_else(|| {
                InputError::new(format!(
                    "--alg {asked} cannot be made with this key; it makes {}",
                    allowed.join(", ")
                ))
            }),
    }
}

fn sign(key: &Key, alg: &str, input: &[u8]) -> Result<Vec<u8>, InputError> {
    let failed = |_| InputError::new("signing failed");
    let rng = SystemRandom::new();
    match key {
        Key::Rsa(pair) => {
            let padding: &'static dyn signature::RsaEncoding = match alg {
                "RS384" => &signature::RSA_PKCS1_SHA384,
                "RS512" => &signature::RSA_PKCS1_SHA512,
                "PS256" => &signature::RSA_PSS_SHA256,
                "PS384" => &signature::RSA_PSS_SHA384,
                "PS512" => &signature::RSA_PSS_SHA512,
                _ => &signature::RSA_PKCS1_SHA256,
            };
            let mut out = vec![0; pair.public_modulus_len()];
            pair.sign(padding, &rng, input, &mut out).map_err(failed)?;
            Ok(out)
        }
        Key::Ec(pair, _) => Ok(pair.sign(&rng, input).map_err(failed)?.as_ref().to_vec()),
        Key::Ed(pair) => Ok(pair.sign(input).as_ref().to_vec()),
    }
}
