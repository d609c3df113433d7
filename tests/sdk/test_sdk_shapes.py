#!/usr/bin/env python3
"""OCI's own Python SDK and CLI as oracles for `claimgate validate` (issue 13).

Deployments are built from the SDK's model classes (`oci.apigateway.models`), every member the
SDK can express, with limits at their documented edges. Each is written in the four shapes
OCI users have:

  1. `CreateDeploymentDetails`, camelCase, as `DeploymentClient.create_deployment` sends it
     (the SDK's own `sanitize_for_serialization`);
  2. the bare `specification` of it, camelCase (`deployment create --specification file://`);
  3. `oci api-gateway deployment get` output: the request as a stand-in service answers it
     (id, state, times and the HTTP backend defaults OCI fills in), read by the SDK's own
     deserializer and printed by the CLI's own `render` ({"data": ..., "etag": ...}, kebab-case);
  4. the bare kebab specification (`... deployment get --query data.specification`).

`claimgate validate --output json` must load every shape with the same errors and warnings
(paths compared after mapping each shape's spelling back to the SDK's camelCase), and refuse
one mutant per kind of documented rule at its path in each shape's own spelling. Every example
JSON of the repository is validated too.

Run: `.venv-sdk/bin/python tests/sdk/test_sdk_shapes.py` after `cargo build -p claimgate`
(CLAIMGATE=path overrides target/debug/claimgate). The last line is cargo's
`test result: ... N passed; M failed; ...`, so scripts/test.sh counts it with the rest.
"""
import atexit
import contextlib
import copy
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import types
import unittest
from pathlib import Path

import oci
from oci.apigateway import models as m
from oci_cli import cli_util
from oci_cli.string_utils import underscore
# Registers the API Gateway models with the CLI's input conversion, as its command module does.
from services.apigateway.src.oci_cli_deployment.generated import client_mappings  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
CLAIMGATE = os.environ.get("CLAIMGATE", str(ROOT / "target" / "debug" / "claimgate"))
PREFIX = "/v1"

ISSUER = "https://idp.example.com/"
JWKS = "https://idp.example.com/.well-known/jwks.json"
DISCOVERY = "https://idp.example.com/.well-known/openid-configuration"
FN = "ocid1.fnfunc.oc1.phx.aaaaexample"
SECRET = "ocid1.vaultsecret.oc1.phx.aaaaexample"
RSA_N = (
    "pK9UOGlINkCqAgDPqIShm704-jQPExthbrvVYnjshyl5oXzTTwqz1b-pCDBUYmASn4aufYe3ptxO6CKEjkax79Qtm6xl"
    "gUeG9J8AV3AyeC6VVAVKvv8JVqya-u3IAWtwCDXCfZwMA8VQiu4Dhx2Eyj2FOaL9LPx_XxKDGxAEbz-XG4Nlj4p1GCPN"
    "0FOdIQnpXAKvK-xhjGvg4v_8WMXaXCDRehDmPNHHpkOUMIU57Occv8ShOjliLMd2qxYkYqKRbHwOaKTk8wPGh4784tE3"
    "MhVyc7MvEZcfRJm6rjFF0k-6gCR9Unp9WOWI84fZel2Sgijmc9qs67cFJfZwOdHbnQ"
)
RSA_PEM = """-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEApK9UOGlINkCqAgDPqISh
m704+jQPExthbrvVYnjshyl5oXzTTwqz1b+pCDBUYmASn4aufYe3ptxO6CKEjkax
79Qtm6xlgUeG9J8AV3AyeC6VVAVKvv8JVqya+u3IAWtwCDXCfZwMA8VQiu4Dhx2E
yj2FOaL9LPx/XxKDGxAEbz+XG4Nlj4p1GCPN0FOdIQnpXAKvK+xhjGvg4v/8WMXa
XCDRehDmPNHHpkOUMIU57Occv8ShOjliLMd2qxYkYqKRbHwOaKTk8wPGh4784tE3
MhVyc7MvEZcfRJm6rjFF0k+6gCR9Unp9WOWI84fZel2Sgijmc9qs67cFJfZwOdHb
nQIDAQAB
-----END PUBLIC KEY-----
"""

# ---------------------------------------------------------------------------------------------
# The SDK's serialiser and deserialiser, and the CLI's printer
# ---------------------------------------------------------------------------------------------


def _client():
    """A real DeploymentClient (its BaseClient does the (de)serialising); never sends."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    signer = oci.signer.Signer(
        tenancy="ocid1.tenancy.oc1..aaaaexample",
        user="ocid1.user.oc1..aaaaexample",
        fingerprint="00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00",
        private_key_file_location=None,
        private_key_content=pem,
    )
    config = {
        "region": "us-phoenix-1",
        "tenancy": "ocid1.tenancy.oc1..aaaaexample",
        "user": "ocid1.user.oc1..aaaaexample",
        "fingerprint": "00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00",
        "key_file": "unused: the signer holds the key",
    }
    return oci.apigateway.DeploymentClient(
        config, signer=signer, service_endpoint="http://127.0.0.1:9"
    ).base_client


BASE_CLIENT = _client()


def sdk_json(model):
    """What the SDK puts on the wire for a model (camelCase, unset members left out)."""
    return BASE_CLIENT.sanitize_for_serialization(model)


def stand_in_service(details_json):
    """The deployment a service answers with: what was sent plus what OCI fills in."""
    answer = copy.deepcopy(details_json)
    answer.update(
        {
            "id": "ocid1.apideployment.oc1.phx.aaaaexample",
            "endpoint": "https://aaaaexample.apigateway.us-phoenix-1.oci.customer-oci.com" + PREFIX,
            "lifecycleState": "ACTIVE",
            "timeCreated": "2026-11-18T10:00:00.000Z",
            "timeUpdated": "2026-11-18T10:00:00.000Z",
        }
    )

    def fill(backend):
        if backend.get("type") == "HTTP_BACKEND":
            backend.setdefault("connectTimeoutInSeconds", 60.0)
            backend.setdefault("readTimeoutInSeconds", 10.0)
            backend.setdefault("sendTimeoutInSeconds", 10.0)
            backend.setdefault("isSslVerifyDisabled", False)
        for routing in backend.get("routingBackends", []):
            fill(routing["backend"])

    for route in answer["specification"]["routes"]:
        fill(route["backend"])
    return answer


def cli_get(details_json, query=None):
    """`oci api-gateway deployment get [--query ...]`: the CLI's own render of the SDK's model."""
    model = BASE_CLIENT.deserialize_response_data(
        json.dumps(stand_in_service(details_json)).encode(), "Deployment"
    )
    ctx = types.SimpleNamespace(
        obj={"debug": False, "query": query, "output": "json", "raw_output": False},
        command=types.SimpleNamespace(params=[]),
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cli_util.render(model, {"etag": '"aaaaexample-etag"'}, ctx)
    return json.loads(out.getvalue())


def four_shapes(details):
    camel = sdk_json(details)
    return {
        "details": camel,
        "spec": camel["specification"],
        "read-back": cli_get(camel),
        "spec-kebab": cli_get(camel, "data.specification"),
    }


# ---------------------------------------------------------------------------------------------
# claimgate
# ---------------------------------------------------------------------------------------------

WORK = Path(tempfile.mkdtemp(prefix="claimgate-sdk-"))
atexit.register(shutil.rmtree, WORK, ignore_errors=True)
_counter = [0]


def validate_many(docs, prefix=PREFIX):
    """`claimgate validate --output json` on several documents at once; one result per doc."""
    paths = []
    for doc in docs:
        _counter[0] += 1
        path = WORK / f"d{_counter[0]}.json"
        path.write_text(json.dumps(doc, indent=2))
        paths.append(str(path))
    run = subprocess.run(
        [CLAIMGATE, "validate", "--output", "json", "--path-prefix", prefix, *paths],
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(run.stdout)
    by_file = {f["file"]: f for f in report["files"]}
    return [by_file[p] for p in paths]


def kebab_segment(camel):
    """How the CLI spells an SDK member: the Python name, `_` turned into `-`."""
    name = "_from" if camel == "from" else underscore(camel)
    return name.replace("_", "-")


def camel_path(path):
    """A path from any shape, in the SDK's camelCase and without the shape's own prefix."""
    for lead in ("data.specification.", "specification.", "data."):
        if path.startswith(lead):
            path = path[len(lead):]
            break

    def segment(s):
        m_ = re.match(r"^(-?[a-z][a-z0-9-]*)((\[\d+\])*)$", s)
        if not m_ or "-" not in m_.group(1):
            return s
        name = m_.group(1)
        name = "from" if name == "-from" else re.sub(r"-([a-z0-9])", lambda x: x.group(1).upper(), name)
        return name + m_.group(2)

    return ".".join(segment(s) for s in path.split("."))


def resolves(doc, path):
    """Whether a finding's path names a member of the document as it is spelled there."""
    if "data" in doc and not path.startswith("data"):
        return False
    for name, indexes in re.findall(r"([^.\[\]]+)((?:\[\d+\])*)", path):
        if not isinstance(doc, dict) or name not in doc:
            return False
        doc = doc[name]
        for i in re.findall(r"\d+", indexes):
            doc = doc[int(i)]
    return True


def findings(result):
    norm = lambda items: sorted(
        (camel_path(i["path"]), re.sub(r"\b[a-z]+(-[a-z]+)+\b", lambda x: camel_path(x.group(0)), i["message"]))
        for i in items
    )
    return {"errors": norm(result["errors"]), "warnings": norm(result["warnings"])}


# ---------------------------------------------------------------------------------------------
# Deployments from the SDK's model classes
# ---------------------------------------------------------------------------------------------


def claims():
    return [
        m.JsonWebTokenClaim(key="tenant", values=["acme", "globex"], is_required=True),
        m.JsonWebTokenClaim(key="email_verified", is_required=False),
    ]


def remote_jwks(hours=1, ssl_off=False):
    return m.RemoteJsonWebKeySet(
        type="REMOTE_JWKS", uri=JWKS, is_ssl_verify_disabled=ssl_off, max_cache_duration_in_hours=hours
    )


def static_keys():
    return [
        m.JsonWebKey(
            kid="k1", format="JSON_WEB_KEY", kty="RSA", use="sig", key_ops=["verify"],
            alg="RS256", n=RSA_N, e="AQAB",
        ),
        m.PemEncodedPublicKey(kid="k2", format="PEM", key=RSA_PEM),
    ]


def jwt(**kw):
    args = dict(
        type="JWT_AUTHENTICATION", token_header="Authorization", token_auth_scheme="Bearer",
        issuers=[ISSUER], audiences=["orders-api"], public_keys=remote_jwks(),
        is_anonymous_access_allowed=True,
    )
    args.update(kw)
    return m.JwtAuthenticationPolicy(**args)


def token(validation, **kw):
    args = dict(
        type="TOKEN_AUTHENTICATION", token_header="Authorization", token_auth_scheme="Bearer",
        validation_policy=validation, is_anonymous_access_allowed=True,
    )
    args.update(kw)
    return m.TokenAuthenticationPolicy(**args)


def additional():
    return m.AdditionalValidationPolicy(issuers=[ISSUER], audiences=["orders-api"], verify_claims=claims())


def discovery(client=None, **kw):
    return m.TokenAuthenticationRemoteDiscoveryValidationPolicy(
        type="REMOTE_DISCOVERY",
        client_details=client
        or m.CustomClientAppDetails(
            type="CUSTOM", client_id="orders-gateway", client_secret_id=SECRET,
            client_secret_version_number=1,
        ),
        source_uri_details=m.DiscoveryUriSourceUriDetails(type="DISCOVERY_URI", uri=DISCOVERY),
        is_ssl_verify_disabled=False,
        max_cache_duration_in_hours=kw.pop("hours", 2),
        additional_validation_policy=kw.pop("additional", None),
    )


def header_transformations(n_set=1, n_values=1):
    return m.HeaderTransformationPolicy(
        set_headers=m.SetHeaderPolicy(
            items=[
                m.SetHeaderPolicyItem(
                    name=f"X-Set-{i}", values=[f"v{j}" for j in range(n_values)],
                    if_exists=["OVERWRITE", "APPEND", "SKIP"][i % 3],
                )
                for i in range(n_set)
            ]
        ),
        rename_headers=m.RenameHeaderPolicy(
            items=[m.RenameHeaderPolicyItem(_from="X-Old", to="X-New")]
        ),
        filter_headers=m.FilterHeaderPolicy(
            type="BLOCK", items=[m.FilterHeaderPolicyItem(name="X-Internal")]
        ),
    )


def query_transformations(kind="BLOCK"):
    return m.QueryParameterTransformationPolicy(
        set_query_parameters=m.SetQueryParameterPolicy(
            items=[m.SetQueryParameterPolicyItem(name="tenant", values=["${request.auth[tenant]}"], if_exists="OVERWRITE")]
        ),
        rename_query_parameters=m.RenameQueryParameterPolicy(
            items=[m.RenameQueryParameterPolicyItem(_from="old", to="new")]
        ),
        filter_query_parameters=m.FilterQueryParameterPolicy(
            type=kind, items=[m.FilterQueryParameterPolicyItem(name="tenant" if kind == "ALLOW" else "debug"),
                              *( [m.FilterQueryParameterPolicyItem(name="new")] if kind == "ALLOW" else [])]
        ),
    )


def http(url="https://orders.internal/orders", **kw):
    return m.HTTPBackend(type="HTTP_BACKEND", url=url, **kw)


def stock(status=200, body="ok", headers=1):
    return m.StockResponseBackend(
        type="STOCK_RESPONSE_BACKEND", status=status, body=body,
        headers=[m.HeaderFieldSpecification(name=f"X-H{i}", value=f"v{i}") for i in range(headers)],
    )


def route(path="/orders/{id}", methods=("GET",), backend=None, request=None, response=None, logging=None):
    if backend is None:
        backend = http("https://orders.internal/${request.path[id]}") if "{id}" in path else http()
    return m.ApiSpecificationRoute(
        path=path, methods=list(methods), backend=backend,
        request_policies=request, response_policies=response, logging_policies=logging,
    )


def rp(**kw):
    return m.ApiSpecificationRouteRequestPolicies(**kw)


def authz(kind, scopes=None):
    if kind == "ANONYMOUS":
        return m.AnonymousRouteAuthorizationPolicy(type="ANONYMOUS")
    if kind == "ANY_OF":
        return m.AnyOfRouteAuthorizationPolicy(type="ANY_OF", allowed_scope=scopes or ["orders:read"])
    return m.AuthenticationOnlyRouteAuthorizationPolicy(type="AUTHENTICATION_ONLY")


def logging(level="INFO"):
    return m.ApiSpecificationLoggingPolicies(
        access_log=m.AccessLogPolicy(is_enabled=True),
        execution_log=m.ExecutionLogPolicy(is_enabled=True, log_level=level),
    )


def deployment(authentication=None, routes=None, prefix=PREFIX, dynamic=None, **policies):
    return m.CreateDeploymentDetails(
        display_name="sdk-generated",
        gateway_id="ocid1.apigateway.oc1.phx.aaaaexample",
        compartment_id="ocid1.compartment.oc1..aaaaexample",
        path_prefix=prefix,
        freeform_tags={"CostCenter": "orders", "team-name": "api"},
        defined_tags={"Operations": {"CostCenter": "42"}},
        specification=m.ApiSpecification(
            request_policies=m.ApiSpecificationRequestPolicies(
                authentication=authentication, dynamic_authentication=dynamic, **policies
            ),
            logging_policies=logging(),
            routes=routes or [route()],
        ),
    )


def oauth2_failure():
    return m.OAuth2ResponseValidationFailurePolicy(
        type="OAUTH2",
        client_details=m.ValidationBlockClientAppDetails(type="VALIDATION_BLOCK"),
        source_uri_details=m.ValidationBlockSourceUriDetails(type="VALIDATION_BLOCK"),
        scopes=["openid", "orders"], max_expiry_duration_in_hours=1, use_cookies_for_session=True,
        use_cookies_for_intermediate_steps=True, use_pkce=True, response_type="CODE",
        fallback_redirect_path="/home", login_path="/login", logout_path="/logout",
    )


def oauth2_routes():
    return [
        route(),
        route("/login", backend=m.OAuth2LoginBackend(type="OAUTH2_LOGIN_BACKEND")),
        route("/logout", backend=m.OAuth2LogoutBackend(
            type="OAUTH2_LOGOUT_BACKEND", allowed_post_logout_uris=["https://app.example.com/bye"],
            post_logout_state="done")),
    ]


def modify_response():
    return m.ModifyResponseValidationFailurePolicy(
        type="MODIFY_RESPONSE", response_code="401", response_message="sign in",
        response_header_transformations=m.HeaderTransformationPolicy(
            set_headers=m.SetHeaderPolicy(items=[m.SetHeaderPolicyItem(
                name="WWW-Authenticate", values=["Bearer"], if_exists="OVERWRITE")])
        ),
    )


def custom(**kw):
    args = dict(type="CUSTOM_AUTHENTICATION", function_id=FN, is_anonymous_access_allowed=True)
    args.update(kw)
    return m.CustomAuthenticationPolicy(**args)


# Authentication policies: every type, every key source, every member, limits at their edges.
AUTHS = {
    "none": None,
    "jwt-remote-jwks-edges": jwt(
        max_clock_skew_in_seconds=120.0, issuers=[f"{ISSUER}{i}" for i in range(5)],
        audiences=[f"aud-{i}" for i in range(5)], verify_claims=claims(),
        public_keys=remote_jwks(hours=24, ssl_off=True),
    ),
    "jwt-remote-jwks-min": jwt(max_clock_skew_in_seconds=0.0, public_keys=remote_jwks(hours=1)),
    "jwt-static-keys": jwt(public_keys=m.StaticPublicKeySet(type="STATIC_KEYS", keys=static_keys())),
    "jwt-query-param": jwt(token_header=None, token_auth_scheme=None, token_query_param="access_token"),
    "token-remote-jwks": token(m.TokenAuthenticationRemoteJWKSValidationPolicy(
        type="REMOTE_JWKS", uri=JWKS, is_ssl_verify_disabled=False, max_cache_duration_in_hours=24,
        additional_validation_policy=additional()), max_clock_skew_in_seconds=60.0),
    "token-static-keys": token(m.TokenAuthenticationStaticKeysValidationPolicy(
        type="STATIC_KEYS", keys=static_keys(), additional_validation_policy=additional())),
    "token-discovery": token(discovery(additional=additional())),
    "token-discovery-modify-response": token(discovery(hours=1), validation_failure_policy=modify_response()),
    "token-query-param": token(m.TokenAuthenticationRemoteJWKSValidationPolicy(
        type="REMOTE_JWKS", uri=JWKS, max_cache_duration_in_hours=1),
        token_header=None, token_auth_scheme=None, token_query_param="access_token"),
    "custom-header": custom(token_header="Authorization"),
    "custom-query": custom(token_query_param="token"),
    "custom-parameters": custom(
        parameters={f"p{i}": f"request.headers[X-P{i}]" for i in range(9)} | {"body": "request.body"},
        cache_key=["p0", "p1"], validation_failure_policy=modify_response()),
}

# Route sets: every backend, every route policy, limits at their edges. Some need a policy that
# authenticates (ANY_OF, AUTHENTICATION_ONLY); they are paired with authenticating policies only.
ROUTES = {
    "http-timeouts-min": (False, [route(backend=http(connect_timeout_in_seconds=1.0, read_timeout_in_seconds=1.0,
                                                     send_timeout_in_seconds=1.0, is_ssl_verify_disabled=True))]),
    "http-timeouts-max": (False, [route(backend=http(connect_timeout_in_seconds=75.0, read_timeout_in_seconds=300.0,
                                                     send_timeout_in_seconds=300.0, is_ssl_verify_disabled=False))]),
    "stock-edges": (False, [
        route("/a", backend=stock(status=100, body="", headers=0)),
        route("/b", backend=stock(status=599, body="x" * 4096, headers=50)),
    ]),
    "functions": (False, [route(backend=m.OracleFunctionBackend(type="ORACLE_FUNCTIONS_BACKEND", function_id=FN))]),
    "dynamic-routing": (False, [route(backend=m.DynamicRoutingBackend(
        type="DYNAMIC_ROUTING_BACKEND",
        selection_source=m.SingleSelectionSourcePolicy(type="SINGLE", selector="request.subdomain[example.com]"),
        routing_backends=[
            m.DynamicRoutingTypeRoutingBackend(
                key=m.AnyOfSelectionKey(type="ANY_OF", name="eu", values=["eu", "emea"], is_default=False),
                backend=http("https://${request.subdomain[example.com]}-api.example.com")),
            m.DynamicRoutingTypeRoutingBackend(
                key=m.WildcardSelectionKey(type="WILDCARD", name="rest", expression="*", is_default=True),
                backend=stock()),
        ]))]),
    "methods-and-logging": (False, [
        route("/all", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"], logging=logging("WARN")),
        route("/any", methods=["ANY"], logging=logging("ERROR")),
        route("/{rest*}", methods=["GET"], backend=http("https://orders.internal/${request.path[rest]}")),
    ]),
    "anonymous": (False, [route(request=rp(authorization=authz("ANONYMOUS")))]),
    "authorization": (True, [
        route("/x", request=rp(authorization=authz("AUTHENTICATION_ONLY"))),
        route("/y", request=rp(authorization=authz("ANY_OF", [f"s{i}" for i in range(100)]))),
    ]),
    "transformations": (False, [route(
        request=rp(header_transformations=header_transformations(n_set=20, n_values=10),
                   query_parameter_transformations=query_transformations("ALLOW")),
        response=m.ApiSpecificationRouteResponsePolicies(header_transformations=header_transformations()))]),
    "transformations-block": (False, [route(request=rp(query_parameter_transformations=query_transformations("BLOCK")))]),
    "validations": (False, [route(request=rp(
        query_parameter_validations=m.QueryParameterValidationRequestPolicy(
            validation_mode="ENFORCING",
            parameters=[m.QueryParameterValidationItem(name="page", required=True),
                        m.QueryParameterValidationItem(name="size", required=False)]),
        header_validations=m.HeaderValidationRequestPolicy(
            validation_mode="PERMISSIVE", headers=[m.HeaderValidationItem(name="X-Tenant", required=True)]),
        body_validation=m.BodyValidationRequestPolicy(
            required=True, validation_mode="ENFORCING",
            content={"application/json": m.NoContentValidation(validation_type="NONE"),
                     "application/x-www-form-urlencoded": m.NoContentValidation(validation_type="NONE")}),
    ))]),
    "validations-disabled": (False, [route(request=rp(
        body_validation=m.BodyValidationRequestPolicy(required=False, validation_mode="DISABLED", content={}),
    ))]),
    "response-cache": (False, [route(
        request=rp(response_cache_lookup=m.SimpleLookupPolicy(
            type="SIMPLE_LOOKUP_POLICY", is_enabled=True, is_private_caching_enabled=False,
            cache_key_additions=["request.headers[Accept]", "${request.query[lang]}"] + [f"request.headers[X-K{i}]" for i in range(8)])),
        response=m.ApiSpecificationRouteResponsePolicies(
            response_cache_store=m.FixedTTLResponseCacheStorePolicy(type="FIXED_TTL_STORE_POLICY", time_to_live_in_seconds=3600)))]),
    "route-cors": (False, [route(request=rp(cors=m.CorsPolicy(
        allowed_origins=["https://app.example.com"], allowed_methods=["GET", "POST"],
        allowed_headers=["Content-Type"], exposed_headers=["X-Total"], is_allow_credentials_enabled=True,
        max_age_in_seconds=0)))]),
}

# Deployment-wide policies besides authentication.
POLICIES = {
    "rate-limiting-client-ip": dict(rate_limiting=m.RateLimitingPolicy(rate_in_requests_per_second=1, rate_key="CLIENT_IP")),
    "rate-limiting-total": dict(rate_limiting=m.RateLimitingPolicy(rate_in_requests_per_second=10000, rate_key="TOTAL")),
    "cors": dict(cors=m.CorsPolicy(allowed_origins=["*"], allowed_methods=["*"], allowed_headers=["*"],
                                   exposed_headers=["*"], is_allow_credentials_enabled=False, max_age_in_seconds=600)),
    "mutual-tls": dict(mutual_tls=m.MutualTlsDetails(is_verified_certificate_required=True,
                                                     allowed_sans=[f"client{i}.example.com" for i in range(10)])),
    "usage-plans": dict(usage_plans=m.UsagePlansPolicy(token_locations=["request.headers[X-Api-Key]", "request.query[key]"])),
}


def generated():
    """(name, CreateDeploymentDetails, path prefix) for every combination that is valid."""
    out = []
    for auth_name, auth in AUTHS.items():
        for routes_name, (needs_auth, routes) in ROUTES.items():
            if needs_auth and auth is None:
                continue
            out.append((f"{auth_name}+{routes_name}", deployment(copy.deepcopy(auth), copy.deepcopy(routes)), PREFIX))
    for name, policies in POLICIES.items():
        out.append((f"jwt+{name}", deployment(jwt(), [route()], **policies), PREFIX))
    out.append(("jwt+oauth2-failure", deployment(token(discovery(), validation_failure_policy=oauth2_failure()),
                                                oauth2_routes()), PREFIX))
    out.append(("dynamic-authentication", deployment(None, [route()], dynamic=m.DynamicAuthenticationPolicy(
        selection_source=m.SingleSelectionSourcePolicy(type="SINGLE", selector="request.headers[X-Tenant]"),
        authentication_servers=[
            m.AuthenticationServerPolicy(
                key=m.AnyOfSelectionKey(type="ANY_OF", name="acme", values=["acme"], is_default=False),
                authentication_server_detail=jwt()),
            m.AuthenticationServerPolicy(
                key=m.WildcardSelectionKey(type="WILDCARD", name="rest", expression="*", is_default=True),
                authentication_server_detail=token(discovery())),
        ])), PREFIX))
    long_prefix = "/" + "p" * 254
    out.append(("prefix-255", deployment(jwt(), [route()], prefix=long_prefix), long_prefix))
    out.append(("prefix-root", deployment(jwt(), [route()], prefix="/"), "/"))
    out.append(("routes-50", deployment(jwt(), [route(f"/r{i}") for i in range(50)]), PREFIX))
    return out


# ---------------------------------------------------------------------------------------------
# Mutants: one per kind of documented rule, set in each shape's own spelling
# ---------------------------------------------------------------------------------------------

AUTH_PATH = ["requestPolicies", "authentication"]
MUTANTS = [
    # (rule, camel path (from the specification), value or DELETE, expected path, message)
    ("enum: log level", ["loggingPolicies", "executionLog", "logLevel"], "DEBUG",
     "loggingPolicies.executionLog.logLevel", "'DEBUG' is not a log level (INFO, WARN, ERROR)"),
    ("enum: route method", ["routes", 0, "methods", 0], "FETCH",
     "routes[0].methods[0]",
     "'FETCH' is not a method (ANY, HEAD, GET, POST, PUT, PATCH, DELETE, OPTIONS)"),
    ("range: maxClockSkewInSeconds above 120", AUTH_PATH + ["maxClockSkewInSeconds"], 121,
     "requestPolicies.authentication.maxClockSkewInSeconds", "121 is above the maximum 120"),
    ("range: more than 5 issuers", AUTH_PATH + ["issuers"], [f"{ISSUER}{i}" for i in range(6)],
     "requestPolicies.authentication.issuers", "6 entries is above the maximum 5"),
    ("range: stock status below 100", ["routes", 0, "backend"], {"type": "STOCK_RESPONSE_BACKEND", "status": 99},
     "routes[0].backend.status", "99 is below the minimum 100"),
    ("type: maxClockSkewInSeconds a string", AUTH_PATH + ["maxClockSkewInSeconds"], "30",
     "requestPolicies.authentication.maxClockSkewInSeconds", "expected a number, found a string"),
    ("type: routes an object", ["routes"], {"path": "/x"},
     "routes", "expected an array, found an object"),
    ("required: audiences", AUTH_PATH + ["audiences"], "DELETE",
     "requestPolicies.authentication.audiences", "is required"),
    ("required: publicKeys (absent)", AUTH_PATH + ["publicKeys"], "DELETE",
     "requestPolicies.authentication.publicKeys", "is required"),
    ("required: publicKeys (null, as the CLI prints an unset member)", AUTH_PATH + ["publicKeys"], None,
     "requestPolicies.authentication.publicKeys", "is required"),
    ("cross-member: tokenAuthScheme required with tokenHeader", AUTH_PATH + ["tokenAuthScheme"], "DELETE",
     "requestPolicies.authentication.tokenAuthScheme", "is required with tokenHeader (OCI supports 'Bearer')"),
    ("required: the key set's uri", AUTH_PATH + ["publicKeys", "uri"], "DELETE",
     "requestPolicies.authentication.publicKeys.uri", "is required"),
    ("cross-member: tokenHeader and tokenQueryParam", AUTH_PATH + ["tokenQueryParam"], "access_token",
     "requestPolicies.authentication.tokenQueryParam", "tokenHeader and tokenQueryParam cannot both be set"),
    ("cross-member: ANONYMOUS without isAnonymousAccessAllowed", AUTH_PATH + ["isAnonymousAccessAllowed"], False,
     "routes[0].requestPolicies.authorization",
     "ANONYMOUS needs isAnonymousAccessAllowed: true in the authentication policy"),
    ("cross-member: ANONYMOUS without isAnonymousAccessAllowed (CUSTOM_AUTHENTICATION)",
     AUTH_PATH + ["isAnonymousAccessAllowed"], "DELETE",
     "routes[0].requestPolicies.authorization",
     "ANONYMOUS needs isAnonymousAccessAllowed: true in the authentication policy", "custom"),
]


def mutant_base(kind="jwt"):
    auth = custom(token_header="Authorization") if kind == "custom" else jwt()
    return deployment(auth, [route(request=rp(authorization=authz("ANONYMOUS")))])


def spelled(path, kebab):
    out = []
    for p in path:
        out.append(p if isinstance(p, int) or not kebab else kebab_segment(p))
    return out


def set_at(doc, path, value):
    for p in path[:-1]:
        doc = doc[p]
    if value == "DELETE":
        doc.pop(path[-1], None)
    else:
        doc[path[-1]] = value


def shape_path(shape, path):
    """`path` (from the specification, camelCase) as the shape spells it, from its root."""
    kebab = shape in ("read-back", "spec-kebab")
    text = ""
    for p in path.replace("]", "").split("."):
        parts = p.split("[")
        name = kebab_segment(parts[0]) if kebab else parts[0]
        text += ("." if text else "") + name + "".join(f"[{i}]" for i in parts[1:])
    lead = {"details": "specification.", "spec": "", "read-back": "data.specification.", "spec-kebab": ""}[shape]
    return lead + text


def mutate(shape, doc, path, value):
    doc = copy.deepcopy(doc)
    if shape == "details":
        root = doc["specification"]
    elif shape == "read-back":
        root = doc["data"]["specification"]
    else:
        root = doc
    set_at(root, spelled(path, shape in ("read-back", "spec-kebab")), copy.deepcopy(value))
    return doc


# ---------------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------------

SHAPES = ("details", "spec", "read-back", "spec-kebab")
RESULTS = {}


def run_all_generated():
    """Validates every shape of every generated deployment, one claimgate run per shape and
    prefix; results keyed by (name, shape)."""
    if RESULTS:
        return RESULTS
    items = generated()
    docs = {name: four_shapes(details) for name, details, _ in items}
    prefixes = {prefix for _, _, prefix in items}
    for prefix in prefixes:
        names = [name for name, _, p in items if p == prefix]
        for shape in SHAPES:
            results = validate_many([docs[n][shape] for n in names], prefix)
            for name, result in zip(names, results):
                RESULTS[(name, shape)] = result
    RESULTS["docs"] = docs
    return RESULTS


NOT_RUN_BY_CLAIMGATE = (
    "is not enforced by claimgate yet ('serve' refuses this file)",
    # Authorizer functions and Functions backends run where --functions says; validate is
    # run here without it.
    "needs a URL: serve refuses this deployment without --functions FILE mapping it",
)


class GeneratedDeployments(unittest.TestCase):
    """Every deployment the SDK can express with valid values loads in all four shapes with the
    same findings."""


def _generated_test(name):
    def test(self):
        results = run_all_generated()
        per_shape = {shape: results[(name, shape)] for shape in SHAPES}
        for shape, result in per_shape.items():
            self.assertEqual(result["errors"], [], f"{name} [{shape}] refused:\n"
                             + json.dumps(results["docs"][name][shape], indent=1)[:4000])
        for warning in per_shape["details"]["warnings"]:
            # Valid values within OCI's documented limits: the only warnings are about what
            # claimgate itself does not run, never "OCI would refuse" or "this is wrong".
            self.assertTrue(any(w in warning["message"] for w in NOT_RUN_BY_CLAIMGATE),
                            f"{name}: unexpected warning {warning}")
        for shape, result in per_shape.items():
            for warning in result["warnings"]:
                self.assertTrue(resolves(results["docs"][name][shape], warning["path"]),
                                f"{name} [{shape}]: {warning['path']} is not spelled as the file is")
        base = findings(per_shape["details"])
        for shape in SHAPES[1:]:
            self.assertEqual(findings(per_shape[shape]), base, f"{name}: {shape} differs from details")
    return test


for _name, _, _ in generated():
    setattr(GeneratedDeployments, "test_" + re.sub(r"\W", "_", _name), _generated_test(_name))


class SerialisedAsTheSdkAndCliDo(unittest.TestCase):
    """The shapes are what OCI's tools write, not a re-implementation of them."""

    def test_the_cli_prints_rename_sources_as_dash_from(self):
        shapes = four_shapes(deployment(
            jwt(), [route(request=rp(header_transformations=header_transformations()))]))
        item = shapes["read-back"]["data"]["specification"]["routes"][0]["request-policies"][
            "header-transformations"]["rename-headers"]["items"][0]
        self.assertEqual(item, {"-from": "X-Old", "to": "X-New"})
        self.assertEqual(shapes["spec"]["routes"][0]["requestPolicies"]["headerTransformations"][
            "renameHeaders"]["items"][0], {"from": "X-Old", "to": "X-New"})
        self.assertEqual(shapes["read-back"]["etag"], '"aaaaexample-etag"')
        self.assertIn("is-anonymous-access-allowed", shapes["spec-kebab"]["request-policies"]["authentication"])


class Mutants(unittest.TestCase):
    """One mutant per kind of documented rule, refused at its path in every shape."""


def _mutant_test(rule, path, value, at, message, base="jwt"):
    def test(self):
        shapes = four_shapes(mutant_base(base))
        self.assertEqual([r["errors"] for r in validate_many(list(shapes.values()))], [[]] * 4,
                         "the base of the mutants is valid")
        docs = [mutate(shape, shapes[shape], path, value) for shape in SHAPES]
        for shape, result in zip(SHAPES, validate_many(docs)):
            self.assertEqual(result["errors"], [{"path": shape_path(shape, at), "message": message}],
                             f"{rule} [{shape}]")
    return test


for _m in MUTANTS:
    setattr(Mutants, "test_" + re.sub(r"\W+", "_", _m[0]), _mutant_test(*_m))


class RepositoryExamples(unittest.TestCase):
    """Every example JSON of the repository and the OCI examples the tests use is validated."""


EXAMPLE_DIRS = [ROOT / "examples", ROOT / "docs", ROOT / "crates" / "claimgate-config" / "tests" / "files",
                ROOT / "tests" / "data" / "oci-examples"]
DEPLOYMENT_KEYS = {"specification", "routes", "data", "requestPolicies", "request-policies"}
# Files that are meant to be refused, each with the error every one of its findings carries.
NOT_VALID = {
    "invalid-orders.json": "",  # the documented invalid file: several errors at once
    "custom-auth-modify-response-request-auth-headers.json":
        # kept with isAnonymousAccessAllowed: false and ANONYMOUS routes, which OCI refuses
        "ANONYMOUS needs isAnonymousAccessAllowed: true in the authentication policy",
}


def example_files():
    """(name, document) of every deployment among the repository's example files and the JSON
    blocks of its Markdown; JWKS and secrets files are not deployments."""
    found = []
    for d in EXAMPLE_DIRS:
        if not d.is_dir():
            continue
        for path in sorted(d.rglob("*.json")):
            if "node_modules" in path.parts:
                continue
            found.append((path, json.loads(path.read_text())))
    for md in sorted([*ROOT.glob("*.md"), *(ROOT / "docs").glob("*.md")]):
        for i, block in enumerate(re.findall(r"```(?:json)?\n(.*?)```", md.read_text(), re.S)):
            try:
                found.append((Path(f"{md}#{i}"), json.loads(block)))
            except ValueError:
                continue
    return [
        (str(path.relative_to(ROOT.parent)), path.name.split("#")[0], doc)
        for path, doc in found
        if isinstance(doc, dict) and DEPLOYMENT_KEYS & doc.keys()
    ]


def _example_test(name, doc):
    def test(self):
        result = validate_many([doc])[0]
        if name in NOT_VALID:
            self.assertNotEqual(result["errors"], [], name)
            for error in result["errors"]:
                self.assertIn(NOT_VALID[name], error["message"])
        else:
            self.assertEqual(result["errors"], [], name)
    return test


def sdk_specification(doc):
    """An example as the SDK's ApiSpecification and its prefix: kebab keys camelised by the CLI's
    own input conversion (what `--specification file://` does with a read-back)."""
    prefix = PREFIX
    if "data" in doc:
        prefix = doc["data"].get("path-prefix", PREFIX)
        doc = doc["data"]["specification"]
    elif "specification" in doc:
        prefix = doc.get("pathPrefix", PREFIX)
        doc = doc["specification"]
    if any("-" in k for k in doc):
        doc = cli_util.make_dict_keys_camel_case(
            doc, complex_parameter_type={"module": "apigateway", "class": "ApiSpecification"})
        # The CLI's conversion camelises `key-ops` to `keyOps`, but a JWK's wire name is `key_ops`
        # (`json_web_key.py`): put it back, or the round trip would drop it.
        doc = json.loads(json.dumps(doc).replace('"keyOps":', '"key_ops":'))
    model = BASE_CLIENT.deserialize_response_data(json.dumps(doc).encode(), "ApiSpecification")
    return model, prefix, without_nulls(doc)


def without_nulls(value):
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def without_non_rsa_keys(value):
    """`value` without the JSON web keys whose `kty` is not RSA, at any depth: the SDK's models
    know RSA keys only (an EC or OKP key's `kty` reads back as UNKNOWN_ENUM_VALUE, its
    crv/x/y are dropped)."""
    if isinstance(value, dict):
        return {k: without_non_rsa_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_non_rsa_keys(v) for v in value
                if not (isinstance(v, dict) and "kty" in v and v["kty"] != "RSA")]
    return value


def _example_shapes_test(name, doc):
    def test(self):
        spec, prefix, camel = sdk_specification(doc)
        if sdk_json(spec) != camel:
            # A key the SDK cannot express (EC or OKP): its round trip would mangle it, so there
            # is nothing to compare. Skipped only for that reason: any other difference is a
            # failure, not a silent skip.
            self.maxDiff = None
            self.assertEqual(without_non_rsa_keys(sdk_json(spec)), without_non_rsa_keys(camel),
                             f"{name}: the SDK's round trip differs beyond its non-RSA keys")
            self.skipTest("the SDK's models cannot express this file's EC or OKP keys")
        shapes = four_shapes(m.CreateDeploymentDetails(
            display_name="example", compartment_id="ocid1.compartment.oc1..aaaaexample",
            gateway_id="ocid1.apigateway.oc1.phx.aaaaexample", path_prefix=prefix, specification=spec))
        original = validate_many([doc], prefix)[0]
        results = dict(zip(SHAPES, validate_many([shapes[s] for s in SHAPES], prefix)))
        for shape in SHAPES:
            self.assertEqual(findings(results[shape]), findings(original), f"{name} [{shape}]")
    return test


for _rel, _name, _doc in example_files():
    if _name not in NOT_VALID:
        setattr(RepositoryExamples, "test_four_shapes_of_" + re.sub(r"\W+", "_", _rel.split("/", 1)[1] if _rel.startswith(ROOT.name + "/") else _rel), _example_shapes_test(_name, _doc))
for _rel, _name, _doc in example_files():
    setattr(RepositoryExamples, "test_" + re.sub(r"\W+", "_", _rel.split("/", 1)[1] if _rel.startswith(ROOT.name + "/") else _rel), _example_test(_name, _doc))


def main():
    if not Path(CLAIMGATE).is_file():
        print(f"{CLAIMGATE} is missing: build it first (cargo build -p claimgate)", file=sys.stderr)
        print("test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out")
        return 1
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    result = unittest.TextTestRunner(verbosity=1 if "-q" in sys.argv else 2).run(suite)
    failed = len(result.failures) + len(result.errors)
    passed = result.testsRun - failed - len(result.skipped)
    status = "ok" if failed == 0 else "FAILED"
    print(f"test result: {status}. {passed} passed; {failed} failed; {len(result.skipped)} ignored; "
          "0 measured; 0 filtered out")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
