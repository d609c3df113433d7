#!/usr/bin/env python3
"""Mint JWTs with an implementation independent of claimgate (Python `cryptography`).

Usage: mint.py OUT_DIR
Writes OUT_DIR/jwks.json (public keys), OUT_DIR/deployment.json (a JWT_AUTHENTICATION
deployment reading REMOTE_JWKS), and OUT_DIR/cases.json: one token per case with the decision
and failed checks claimgate must report. `now` is fixed so the cases never age.
Private keys live only in memory.
"""
import base64
import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

NOW = 1_795_000_000  # 2026-11-18T...Z, passed to `claimgate check --now`
ISS = "https://idp.example.com/"
AUD = "api://orders"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def int_b64(n: int, length: int | None = None) -> str:
    length = length or (n.bit_length() + 7) // 8
    return b64(n.to_bytes(length, "big"))


def segment(obj) -> str:
    return b64(json.dumps(obj, separators=(",", ":")).encode())


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEYS = {
    "ES256": (ec.generate_private_key(ec.SECP256R1()), "P-256", 32, hashes.SHA256()),
    "ES384": (ec.generate_private_key(ec.SECP384R1()), "P-384", 48, hashes.SHA384()),
    "ES512": (ec.generate_private_key(ec.SECP521R1()), "P-521", 66, hashes.SHA512()),
}
ED_KEY = ed25519.Ed25519PrivateKey.generate()
RSA_HASHES = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}


def sign(alg: str, signing_input: bytes, rsa_key=RSA_KEY) -> bytes:
    if alg.startswith("RS"):
        return rsa_key.sign(signing_input, padding.PKCS1v15(), RSA_HASHES[alg[2:]])
    if alg.startswith("PS"):
        digest = RSA_HASHES[alg[2:]]
        return rsa_key.sign(
            signing_input,
            padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size),
            digest,
        )
    if alg.startswith("ES"):
        key, _, size, digest = EC_KEYS[alg]
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(digest)))
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if alg in ("EdDSA", "Ed25519"):
        return ED_KEY.sign(signing_input)
    raise ValueError(alg)


def jwt(claims, alg="RS256", kid="rsa-1", header_extra=None, rsa_key=RSA_KEY) -> str:
    header = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    header.update(header_extra or {})
    signing_input = f"{segment(header)}.{segment(claims)}"
    return f"{signing_input}.{b64(sign(alg, signing_input.encode(), rsa_key))}"


def claims(**changes):
    base = {
        "iss": ISS,
        "aud": AUD,
        "sub": "alice",
        "tenant": "acme",
        "scope": "orders:read profile",
        "iat": NOW - 60,
        "exp": NOW + 3600,
    }
    for key, value in changes.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def rsa_jwk(key, kid):
    numbers = key.public_key().public_numbers()
    return {"kty": "RSA", "kid": kid, "use": "sig", "n": int_b64(numbers.n), "e": int_b64(numbers.e)}


def jwks():
    keys = [rsa_jwk(RSA_KEY, "rsa-1")]
    for alg, (key, crv, size, _) in EC_KEYS.items():
        numbers = key.public_key().public_numbers()
        keys.append({"kty": "EC", "kid": alg.lower(), "crv": crv, "alg": alg,
                     "x": int_b64(numbers.x, size), "y": int_b64(numbers.y, size)})
    from cryptography.hazmat.primitives import serialization
    raw = ED_KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    keys.append({"kty": "OKP", "kid": "ed-1", "crv": "Ed25519", "x": b64(raw)})
    return {"keys": keys}


def deployment():
    return {
        "displayName": "orders",
        "pathPrefix": "/v1",
        "specification": {
            "requestPolicies": {
                "authentication": {
                    "type": "JWT_AUTHENTICATION",
                    "tokenHeader": "Authorization",
                    "tokenAuthScheme": "Bearer",
                    "issuers": [ISS],
                    "audiences": [AUD],
                    "maxClockSkewInSeconds": 30,
                    "verifyClaims": [{"key": "tenant", "values": ["acme"], "isRequired": True}],
                    "publicKeys": {"type": "REMOTE_JWKS", "uri": "https://idp.example.com/jwks", "maxCacheDurationInHours": 1},
                }
            },
            "routes": [
                {"path": "/orders", "methods": ["GET"],
                 "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "[]"}},
                {"path": "/admin", "methods": ["GET"],
                 "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200},
                 "requestPolicies": {"authorization": {"type": "ANY_OF", "allowedScope": ["orders:admin"]}}},
            ],
        },
    }


def cases():
    allow = lambda name, token, path="/v1/orders": {"name": name, "token": token, "path": path, "decision": "allow", "failed": []}
    deny = lambda name, token, failed, path="/v1/orders": {"name": name, "token": token, "path": path, "decision": "deny", "failed": failed}
    out = [allow(f"valid_{alg}", jwt(claims(), alg=alg, kid="rsa-1")) for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")]
    out += [allow(f"valid_{alg}", jwt(claims(), alg=alg, kid=alg.lower())) for alg in EC_KEYS]
    out.append(allow("valid_EdDSA", jwt(claims(), alg="EdDSA", kid="ed-1")))
    out.append(allow("valid_aud_array", jwt(claims(aud=["other", AUD]))))
    out.append(allow("expired_within_skew", jwt(claims(exp=NOW - 20))))
    out += [
        deny("wrong_audience", jwt(claims(aud="api://billing")), ["aud"]),
        deny("issuer_trailing_slash_missing", jwt(claims(iss=ISS.rstrip("/"))), ["iss"]),
        deny("expired_beyond_skew", jwt(claims(exp=NOW - 31)), ["exp"]),
        deny("not_yet_valid", jwt(claims(nbf=NOW + 600)), ["nbf"]),
        deny("missing_exp", jwt(claims(exp=None)), ["exp"]),
        deny("tenant_missing", jwt(claims(tenant=None)), ["claim:tenant"]),
        deny("tenant_wrong", jwt(claims(tenant="globex")), ["claim:tenant"]),
        deny("every_claim_wrong", jwt(claims(aud="x", iss="y", exp=NOW - 100, tenant="z")), ["exp", "iss", "aud", "claim:tenant"]),
        deny("signed_by_unknown_key_same_kid", jwt(claims(), rsa_key=OTHER_RSA_KEY), ["signature"]),
        deny("unknown_kid", jwt(claims(), kid="rotated-2"), ["key"]),
        deny("tampered_payload", tamper(jwt(claims())), ["signature"]),
        deny("alg_none", unsigned(claims()), ["alg"]),
        deny("es256_key_with_rs256_header_kid", jwt(claims(), alg="RS256", kid="es256"), ["key"]),
        deny("embedded_jwk_attacker_key", jwt(claims(), kid="attacker", header_extra={"jwk": rsa_jwk(OTHER_RSA_KEY, "attacker")}, rsa_key=OTHER_RSA_KEY), ["key"]),
        deny("crit_header", jwt(claims(), header_extra={"crit": ["exp"], "exp": 1}), ["format"]),
        deny("scope_missing_for_admin", jwt(claims()), ["scope"], path="/v1/admin"),
    ]
    out.append(allow("scope_present_for_admin", jwt(claims(scope="orders:read orders:admin")), path="/v1/admin"))
    return out


def tamper(token: str) -> str:
    header, _, signature = token.split(".")
    return f"{header}.{segment(claims(sub='mallory'))}.{signature}"


def unsigned(body) -> str:
    return f"{segment({'alg': 'none'})}.{segment(body)}."


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    (out / "jwks.json").write_text(json.dumps(jwks(), indent=2))
    (out / "deployment.json").write_text(json.dumps(deployment(), indent=2))
    (out / "cases.json").write_text(json.dumps({"now": NOW, "cases": cases()}, indent=2))


if __name__ == "__main__":
    main()
