#!/usr/bin/env python3
"""Keys and tokens for bench/load.py, minted with Python `cryptography` (independent of claimgate).

Usage: mint.py WORKDIR [--tokens N]

Writes into WORKDIR:
  key.pem            the RSA-2048 private key (made once, reused; a benchmark key, nothing else)
  public.pem         its public key (SubjectPublicKeyInfo PEM), for HAProxy's jwt_verify
  jwks.json          its public JWK (kid "bench-1", alg RS256), for Envoy's local_jwks
  static-key.json    the same JWK as a claimgate STATIC_KEYS entry
  token.txt          one valid token (the "repeated token" workload)
  tokens.txt         N distinct valid tokens, one a line (distinct sub and jti)
  refused.json       tokens every gateway must refuse (sanity checks before measuring)
  meta.json          what was minted, so a later run reuses it while the tokens stay valid

tls_files(WORKDIR) (bench/load.py --tls) writes, once, the HTTPS listeners' certificate:
  tls-key.pem        an ECDSA P-256 private key (PKCS#8; a benchmark key, nothing else)
  tls-cert.pem       a self-signed certificate for it (CN and SAN localhost, SAN IP 127.0.0.1)
  tls-haproxy.pem    both, concatenated, as HAProxy's `crt` wants them

Tokens are valid for 12 hours; a run reuses them while at least 2 hours remain. Signing 100k
RS256 tokens takes about a minute on 2 cores (both are used).
"""
import argparse
import base64
import hashlib
import json
import os
import sys
import time
from multiprocessing import Pool
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

ISSUER = "https://idp.example.com/"
AUDIENCE = "api://orders"
TENANT = "acme"
KID = "bench-1"
LIFETIME = 12 * 3600
REUSE_MARGIN = 2 * 3600


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def int_b64(n: int) -> str:
    return b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def segment(obj) -> str:
    return b64(json.dumps(obj, separators=(",", ":")).encode())


_KEY = None


def _init_worker(pem: bytes) -> None:
    global _KEY
    _KEY = serialization.load_pem_private_key(pem, password=None)


def _sign(signing_input: str, key=None) -> str:
    key = key or _KEY
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


def _header(kid=KID) -> str:
    return segment({"alg": "RS256", "typ": "JWT", "kid": kid})


def claims(i: int, iat: int, exp: int, salt: str, **changes) -> dict:
    out = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": f"user-{i}@example.com",
        "tenant": TENANT,
        "scope": "orders:read orders:write",
        "iat": iat,
        "exp": exp,
        "jti": f"{salt}-{i:08d}",
    }
    out.update(changes)
    return out


def _sign_range(args) -> list:
    start, stop, iat, exp, salt = args
    header = _header()
    return [_sign(f"{header}.{segment(claims(i, iat, exp, salt))}") for i in range(start, stop)]


def load_or_make_key(workdir: Path):
    path = workdir / "key.pem"
    if path.exists():
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    os.chmod(path, 0o600)
    return key


def mint(workdir: Path, count: int) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    key = load_or_make_key(workdir)
    public = key.public_key()
    public_pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (workdir / "public.pem").write_bytes(public_pem)
    numbers = public.public_numbers()
    jwk = {"kty": "RSA", "kid": KID, "use": "sig", "alg": "RS256",
           "n": int_b64(numbers.n), "e": int_b64(numbers.e)}
    (workdir / "jwks.json").write_text(json.dumps({"keys": [jwk]}, separators=(",", ":")))
    static = {"kid": KID, "format": "JSON_WEB_KEY", "kty": "RSA", "alg": "RS256",
              "n": jwk["n"], "e": jwk["e"]}
    (workdir / "static-key.json").write_text(json.dumps(static, separators=(",", ":")))

    key_sha = hashlib.sha256(public_pem).hexdigest()[:16]
    now = int(time.time())
    meta_path = workdir / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if (meta.get("tokens") == count and meta.get("key") == key_sha
                and meta.get("exp", 0) - now > REUSE_MARGIN
                and (workdir / "tokens.txt").exists()):
            meta["reused"] = True
            return meta

    iat, exp = now, now + LIFETIME
    salt = b64(os.urandom(6))
    (workdir / "token.txt").write_text(
        _sign(f"{_header()}.{segment(claims(0, iat, exp, salt, sub='alice@example.com'))}", key)
        + "\n"
    )
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused = {
        "no_token": None,
        "bad_signature": _sign(f"{_header()}.{segment(claims(1, iat, exp, salt))}", other),
        "expired": _sign(f"{_header()}.{segment(claims(2, iat - 7200, now - 3600, salt))}", key),
        "wrong_issuer": _sign(
            f"{_header()}.{segment(claims(3, iat, exp, salt, iss='https://evil.example.net/'))}", key),
        "wrong_audience": _sign(
            f"{_header()}.{segment(claims(4, iat, exp, salt, aud='api://billing'))}", key),
        "wrong_tenant": _sign(
            f"{_header()}.{segment(claims(5, iat, exp, salt, tenant='globex'))}", key),
    }
    (workdir / "refused.json").write_text(json.dumps(refused, indent=1))

    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    started = time.time()
    chunk = 2000
    ranges = [(s, min(s + chunk, count), iat, exp, salt) for s in range(0, count, chunk)]
    with Pool(processes=os.cpu_count() or 2, initializer=_init_worker, initargs=(pem,)) as pool:
        with open(workdir / "tokens.txt", "w") as out:
            for tokens in pool.imap(_sign_range, ranges):
                out.write("\n".join(tokens))
                out.write("\n")
        # Joined, not terminated: leaving the `with` terminates the workers, which was seen
        # hanging the parent once every token was written (Python 3.11).
        pool.close()
        pool.join()
    meta = {"tokens": count, "key": key_sha, "iat": iat, "exp": exp, "salt": salt,
            "mint_seconds": round(time.time() - started, 1), "reused": False}
    meta_path.write_text(json.dumps(meta))
    return meta


def tls_files(workdir: Path) -> dict:
    """The HTTPS certificate and key both gateways serve (made once, reused). ECDSA P-256: the
    key type a new deployment picks today, and a cheap signature, so a handshake's cost is the
    gateway's TLS machinery (and the X25519 exchange) rather than one RSA private-key operation
    that would dominate both gateways alike."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.x509.oid import NameOID

    paths = {name: workdir / f"tls-{name}.pem" for name in ("key", "cert", "haproxy")}
    if all(p.exists() for p in paths.values()):
        return paths
    workdir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    paths["key"].write_bytes(key_pem)
    os.chmod(paths["key"], 0o600)
    paths["cert"].write_bytes(cert_pem)
    paths["haproxy"].write_bytes(cert_pem + key_pem)
    os.chmod(paths["haproxy"], 0o600)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--tokens", type=int, default=100_000)
    args = parser.parse_args()
    meta = mint(args.workdir, args.tokens)
    print(json.dumps(meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
