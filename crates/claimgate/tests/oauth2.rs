//! The OAUTH2 browser login flow against the real `oidc-provider` (tests/idp, dev interactions
//! on, the confidential client "web"), with an HTTP client that keeps cookies like a browser
//! (by host, not port: RFC 6265 §8.5) and follows every redirect by hand, on two replicas that
//! share only their `--session-key`.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

mod support;

use support::cluster::Replicas;
use support::*;

const KEY_1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n";
const KEY_2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\n";

/// A cookie jar by host (as browsers: ports share cookies) and a client that never follows
/// redirects by itself.
struct Browser {
    http: reqwest::blocking::Client,
    jar: HashMap<String, HashMap<String, String>>,
    /// Every `Set-Cookie` seen, for attribute checks.
    set_cookies: Vec<String>,
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> String {
        self.headers
            .get("location")
            .unwrap_or_else(|| panic!("no Location on a {} answer: {}", self.status, self.body))
            .to_str()
            .unwrap()
            .to_owned()
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }
}

fn host_of(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    let authority = rest.split('/').next().unwrap();
    authority
        .rsplit_once(':')
        .map_or(authority, |(h, _)| h)
        .to_owned()
}

fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http") {
        return location.to_owned();
    }
    let scheme_end = base.find("://").unwrap() + 3;
    let authority_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    format!("{}{location}", &base[..authority_end])
}

impl Browser {
    fn new() -> Self {
        Self {
            http: reqwest::blocking::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            jar: HashMap::new(),
            set_cookies: Vec::new(),
        }
    }

    fn cookie_header(&self, url: &str) -> Option<String> {
        let cookies = self.jar.get(&host_of(url))?;
        (!cookies.is_empty()).then(|| {
            cookies
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn cookie(&self, host: &str, name: &str) -> Option<String> {
        self.jar.get(host)?.get(name).cloned()
    }

    fn set_cookie(&mut self, host: &str, name: &str, value: &str) {
        self.jar
            .entry(host.to_owned())
            .or_default()
            .insert(name.to_owned(), value.to_owned());
    }

    fn send(&mut self, request: reqwest::blocking::RequestBuilder, url: &str) -> Answer {
        let request = match self.cookie_header(url) {
            Some(cookies) => request.header("cookie", cookies),
            None => request,
        };
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let host = host_of(url);
        for value in headers.get_all("set-cookie") {
            let text = value.to_str().unwrap().to_owned();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let expired = text.to_ascii_lowercase().contains("max-age=0");
            let jar = self.jar.entry(host.clone()).or_default();
            if expired {
                jar.remove(name.trim());
            } else {
                jar.insert(name.trim().to_owned(), value.trim().to_owned());
            }
            self.set_cookies.push(text);
        }
        let body = response.text().unwrap_or_default();
        Answer {
            status,
            headers,
            body,
        }
    }

    fn get(&mut self, url: &str) -> Answer {
        self.get_with(url, &[])
    }

    fn get_with(&mut self, url: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = self.http.get(url);
        for (n, v) in headers {
            request = request.header(*n, *v);
        }
        self.send(request, url)
    }

    fn post(&mut self, url: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = self.http.post(url).body("x=1");
        for (n, v) in headers {
            request = request.header(*n, *v);
        }
        self.send(request, url)
    }

    fn post_form(&mut self, url: &str, form: &[(&str, &str)]) -> Answer {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let request = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(request, url)
    }

    /// From the provider's authorization URL through its login and consent forms (as `user`)
    /// to the redirect back to the gateway: that callback URL, not followed.
    fn log_in_at_provider(&mut self, authorize: &str, idp: &str, user: &str) -> String {
        let mut url = authorize.to_owned();
        for _ in 0..12 {
            if !url.starts_with(idp) {
                return url;
            }
            let answer = self.get(&url);
            if (300..400).contains(&answer.status) {
                url = absolute(&url, &answer.location());
                continue;
            }
            assert_eq!(
                answer.status, 200,
                "the provider's page {url}: {}",
                answer.body
            );
            let form = if answer.body.contains("name=\"login\"") {
                vec![("prompt", "login"), ("login", user), ("password", "pw")]
            } else {
                vec![("prompt", "consent")]
            };
            let submitted = self.post_form(&url, &form);
            assert!(
                (300..400).contains(&submitted.status),
                "submitting {form:?} to {url}: {} {}",
                submitted.status,
                submitted.body
            );
            url = absolute(&url, &submitted.location());
        }
        panic!("the provider never sent the browser back: {url}");
    }
}

struct Setup {
    _backend: tokio::runtime::Runtime,
    idp_port: u16,
    _idp: Running,
    replicas: Replicas,
    _keys: tempfile::TempDir,
}

impl Setup {
    fn idp(&self) -> String {
        format!("http://127.0.0.1:{}", self.idp_port)
    }
    fn base(&self, i: usize) -> String {
        self.replicas.gateway(i).base.clone()
    }
    fn execution_log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.replicas.gateway(i).execution_log).unwrap_or_default()
    }
    /// Replica `i`'s execution log once it holds `needle` (logs are written in the background),
    /// at most 5 s.
    fn logged(&self, i: usize, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.execution_log(i);
            if log.contains(needle) || std::time::Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    fn access_log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.replicas.gateway(i).access_log).unwrap_or_default()
    }
}

/// A backend answering with the request headers it got, as JSON.
fn start_header_echo(rt: &tokio::runtime::Runtime) -> std::net::SocketAddr {
    serve_http(
        rt,
        |request: hyper::Request<hyper::body::Incoming>| async move {
            let headers: serde_json::Map<String, Value> = request
                .headers()
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), json!(v.to_str().unwrap_or(""))))
                .collect();
            hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(
                Value::Object(headers).to_string(),
            )))
        },
    )
}

fn deployment(issuer: &str, oauth: Value, backend: std::net::SocketAddr) -> Value {
    let mut failure = json!({
        "type": "OAUTH2",
        "clientDetails": {"type": "VALIDATION_BLOCK"},
        "sourceUriDetails": {"type": "VALIDATION_BLOCK"},
        "scopes": ["openid"],
        "responseType": "CODE",
        "maxExpiryDurationInHours": 1,
        "useCookiesForSession": true,
        "useCookiesForIntermediateSteps": true,
        "usePkce": true,
        "fallbackRedirectPath": "/home",
        "loginPath": "/callback",
        "logoutPath": "/logout"
    });
    for (k, v) in oauth.as_object().unwrap() {
        if v.is_null() {
            failure.as_object_mut().unwrap().remove(k);
        } else {
            failure[k] = v.clone();
        }
    }
    json!({
        "displayName": "web",
        "pathPrefix": "/app",
        "specification": {
            "requestPolicies": {"authentication": {
                "type": "TOKEN_AUTHENTICATION",
                "isAnonymousAccessAllowed": true,
                "tokenHeader": "Authorization",
                "tokenAuthScheme": "Bearer",
                "validationPolicy": {
                    "type": "REMOTE_DISCOVERY",
                    "clientDetails": {"type": "CUSTOM", "clientId": "web",
                                      "clientSecretId": "ocid1.vaultsecret.oc1..web", "clientSecretVersionNumber": 1},
                    "sourceUriDetails": {"type": "DISCOVERY_URI", "uri": format!("{issuer}/.well-known/openid-configuration")},
                    "additionalValidationPolicy": {"issuers": [issuer]}
                },
                "validationFailurePolicy": failure
            }},
            "routes": [
                {"path": "/callback", "methods": ["GET"], "backend": {"type": "OAUTH2_LOGIN_BACKEND"}},
                {"path": "/logout", "methods": ["GET"], "backend": {"type": "OAUTH2_LOGOUT_BACKEND",
                    "allowedPostLogoutUris": ["/bye", "http://127.0.0.1/elsewhere"], "postLogoutState": "request.query[region]"}},
                {"path": "/bye", "methods": ["GET"], "requestPolicies": {"authorization": {"type": "ANONYMOUS"}}, "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "bye"}},
                {"path": "/home", "methods": ["GET"], "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "home"}},
                {"path": "/page", "methods": ["GET", "POST", "DELETE"], "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200, "body": "page"}},
                {"path": "/me", "methods": ["GET"],
                 "requestPolicies": {"headerTransformations": {"setHeaders": {"items": [
                    {"name": "X-User", "values": ["${request.auth[id_token_claims][sub]}"], "ifExists": "OVERWRITE"},
                    {"name": "X-Client", "values": ["${request.auth[access_token_claims][client_id]}"], "ifExists": "OVERWRITE"},
                    {"name": "X-Csrf", "values": ["${request.auth[apigw_csrf_token]}"], "ifExists": "OVERWRITE"}
                 ]}}},
                 "backend": {"type": "HTTP_BACKEND", "url": format!("http://{backend}/me")}}
            ]
        }
    })
}

fn key_file(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The provider and `n` replicas, each replica with its own `--session-key` files ("k1",
/// "k2") and other flags.
fn setup_with(n: usize, oauth: Value, keys: impl Fn(usize) -> Vec<&'static str>) -> Setup {
    setup_full(n, oauth, keys, |_| {}, json!({}))
}

/// [`setup_with`], with `edit` changing the deployment and `more_secrets` added to the secrets
/// file.
fn setup_full(
    n: usize,
    oauth: Value,
    keys: impl Fn(usize) -> Vec<&'static str>,
    edit: impl Fn(&mut Value),
    more_secrets: Value,
) -> Setup {
    setup_beside(n, oauth, keys, edit, more_secrets, |_| Vec::new())
}

/// [`setup_full`], with more deployments made from the first (`beside`) served by the same
/// replicas.
fn setup_beside(
    n: usize,
    oauth: Value,
    keys: impl Fn(usize) -> Vec<&'static str>,
    edit: impl Fn(&mut Value),
    more_secrets: Value,
    beside: impl Fn(&Value) -> Vec<Value>,
) -> Setup {
    let rt = runtime();
    let backend = start_header_echo(&rt);
    let idp_port = free_port();
    let idp = start_idp(idp_port);
    let issuer = format!("http://127.0.0.1:{idp_port}");
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets.json");
    let mut all_secrets = json!({"ocid1.vaultsecret.oc1..web": {"1": "web-secret"}});
    for (k, v) in more_secrets.as_object().unwrap() {
        all_secrets[k] = v.clone();
    }
    std::fs::write(&secrets, all_secrets.to_string()).unwrap();
    let k1 = key_file(dir.path(), "k1", KEY_1);
    let k2 = key_file(dir.path(), "k2", KEY_2);
    let secrets = secrets.to_str().unwrap().to_owned();
    let mut web = deployment(&issuer, oauth, backend);
    edit(&mut web);
    let mut served = vec![web];
    served.extend(beside(&served[0]));
    let replicas = Replicas::start_each(n, &served, |i| {
        let mut args = vec!["--secrets".to_owned(), secrets.clone()];
        for key in keys(i) {
            let file = match key {
                "k1" => &k1,
                "k2" => &k2,
                // Any other flag is passed as it is.
                flag => {
                    args.push(flag.to_owned());
                    continue;
                }
            };
            args.push("--session-key".into());
            args.push(file.to_str().unwrap().to_owned());
        }
        args
    });
    Setup {
        _backend: rt,
        idp_port,
        _idp: idp,
        replicas,
        _keys: dir,
    }
}

fn setup(n: usize) -> Setup {
    setup_with(n, json!({}), |_| vec!["k1"])
}

/// Starts a login on replica `from` for `path` and brings it back to the gateway: the
/// callback URL (on replica `from`'s host and port).
fn start_login(s: &Setup, b: &mut Browser, from: usize, path: &str) -> String {
    let first = b.get(&format!("{}{path}", s.base(from)));
    // The execution log names the identity provider call that failed, if one did.
    assert_eq!(
        first.status,
        302,
        "{}\nexecution log:\n{}",
        first.body,
        s.execution_log(from)
    );
    let authorize = first.location();
    assert!(
        authorize.starts_with(&format!("{}/auth?", s.idp())),
        "{authorize}"
    );
    for needed in [
        "state=",
        "nonce=",
        "code_challenge=",
        "code_challenge_method=S256",
        "client_id=web",
    ] {
        assert!(authorize.contains(needed), "{needed} in {authorize}");
    }
    b.log_in_at_provider(&authorize, &s.idp(), "alice")
}

/// The callback URL sent to replica `to` instead of the one it was made for.
fn on_replica(s: &Setup, callback: &str, to: usize) -> String {
    let path = &callback[callback.find("/app/").unwrap()..];
    format!("{}{path}", s.base(to))
}

fn session_cookie(b: &Browser) -> Option<String> {
    b.cookie("127.0.0.1", "claimgate_session")
}

#[test]
fn a_login_on_one_replica_finishes_on_the_other_and_the_session_serves_both() {
    let s = setup(2);
    let mut b = Browser::new();
    let callback = start_login(&s, &mut b, 0, "/app/page?x=1");
    assert!(callback.contains("code=") && callback.contains("state=") && callback.contains("iss="));
    let flow_cookies: Vec<(String, String)> = b.jar["127.0.0.1"]
        .iter()
        .filter(|(n, _)| n.starts_with("claimgate_flow_"))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    assert_eq!(flow_cookies.len(), 1);
    let done = b.get(&on_replica(&s, &callback, 1));
    assert_eq!(done.status, 302, "{}", done.body);
    assert_eq!(done.location(), "/app/page?x=1");
    let csrf = done.header("x-csrf-token").expect("X-CSRF-TOKEN");
    let session = session_cookie(&b).expect("a session cookie");
    let set = b
        .set_cookies
        .iter()
        .find(|c| c.starts_with("claimgate_session="))
        .unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/app", "Max-Age="] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP on loopback: {set}");
    // The flow cookie is gone.
    assert!(b.jar["127.0.0.1"]
        .keys()
        .all(|k| !k.starts_with("claimgate_flow_")));
    for i in 0..2 {
        let page = b.get(&format!("{}/app/page?x=1", s.base(i)));
        assert_eq!(
            (page.status, page.body.as_str()),
            (200, "page"),
            "replica {i}"
        );
        assert_eq!(page.header("x-csrf-token").as_deref(), Some(csrf.as_str()));
    }
    // OCI's request.auth[...] of the session reach the backend through transformations; the
    // gateway's own cookies and the session's token do not.
    b.set_cookie("127.0.0.1", "theme", "dark");
    // A token sent beside the session was not what was judged: it does not reach the backend.
    let me = b.get_with(
        &format!("{}/app/me", s.base(1)),
        &[("authorization", "Bearer forged")],
    );
    assert_eq!(me.status, 200, "{}", me.body);
    let seen: Value = serde_json::from_str(&me.body).unwrap();
    assert_eq!(seen["x-user"], "alice");
    assert_eq!(seen["x-client"], "web");
    assert_eq!(seen["x-csrf"], csrf.as_str());
    let cookies = seen["cookie"].as_str().unwrap();
    assert!(
        cookies.contains("theme=dark") && !cookies.contains("claimgate_"),
        "{cookies}"
    );
    assert!(seen.get("authorization").is_none(), "{seen}");
    // CSRF: refused without the token or with another, accepted with it.
    let base = s.base(0);
    assert_eq!(b.post(&format!("{base}/app/page"), &[]).status, 403);
    assert_eq!(
        b.post(&format!("{base}/app/page"), &[("x-csrf-token", "nope")])
            .status,
        403
    );
    let ok = b.post(&format!("{base}/app/page"), &[("x-csrf-token", &csrf)]);
    assert_eq!((ok.status, ok.body.as_str()), (200, "page"));
    // The code is single-use: replaying the callback makes no session.
    let mut replay = Browser::new();
    for (name, value) in &flow_cookies {
        replay.set_cookie("127.0.0.1", name, value);
    }
    let replayed = replay.get(&on_replica(&s, &callback, 0));
    assert_eq!(
        replayed.status, 502,
        "a replayed callback: {}",
        replayed.body
    );
    assert!(session_cookie(&replay).is_none());
    // Nothing secret in the logs: not the session, the code, the state, the CSRF token.
    let code = callback
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let state = callback
        .split("state=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    for i in 0..2 {
        let logs = format!("{}{}", s.execution_log(i), s.access_log(i));
        for secret in [session.as_str(), code, state, csrf.as_str()] {
            assert!(!logs.contains(secret), "replica {i} logged a secret");
        }
    }
    let access = s.access_log(1);
    assert!(
        access.contains("code=[redacted]") && access.contains("state=[redacted]"),
        "{access}"
    );
    assert!(s
        .logged(0, "validationFailurePolicyOAuth")
        .contains("authentication.validationFailurePolicyOAuth"));
    let finished = s.logged(1, "authentication.idpCallSuccess");
    assert!(
        finished.contains("authentication.idpCallSuccess"),
        "{finished}"
    );
}

#[test]
fn requests_without_a_session_are_redirected_or_refused_as_they_can_take_it() {
    let s = setup(1);
    let base = s.base(0);
    let mut b = Browser::new();
    // A script request (fetch, XHR) gets the 401.
    let xhr = b.get_with(&format!("{base}/app/page"), &[("sec-fetch-mode", "cors")]);
    assert_eq!(xhr.status, 401);
    // A navigation is redirected (with the header, or without it: OCI's behaviour).
    let nav = b.get_with(
        &format!("{base}/app/page"),
        &[("sec-fetch-mode", "navigate")],
    );
    assert_eq!(nav.status, 302);
    // Logins begun and abandoned: past four, their cookies are cleared (the Cookie header
    // must not grow to the 8 KiB limit).
    let mut tabs = Browser::new();
    for _ in 0..4 {
        assert_eq!(tabs.get(&format!("{base}/app/page")).status, 302);
    }
    let flows = |b: &Browser| {
        b.jar["127.0.0.1"]
            .keys()
            .filter(|k| k.starts_with("claimgate_flow_"))
            .count()
    };
    assert_eq!(flows(&tabs), 4);
    assert_eq!(tabs.get(&format!("{base}/app/page")).status, 302);
    assert_eq!(flows(&tabs), 1);
    // The login route called directly: 400, no session.
    let direct = b.get(&format!("{base}/app/callback"));
    assert_eq!(direct.status, 400, "{}", direct.body);
    let forged = b.get(&format!(
        "{base}/app/callback?code=x&state=abcdefghijklmnop"
    ));
    assert_eq!(forged.status, 400, "{}", forged.body);
    // A POST without a session: 303 to the provider, and back at fallbackRedirectPath.
    let post = b.post(&format!("{base}/app/page"), &[]);
    assert_eq!(post.status, 303);
    let callback = b.log_in_at_provider(&post.location(), &s.idp(), "bob");
    let done = b.get(&callback);
    assert_eq!(done.status, 302, "{}", done.body);
    assert_eq!(done.location(), "/app/home");
    assert_eq!(b.get(&format!("{base}/app/home")).body, "home");
    assert!(session_cookie(&b).is_some());
    let log = s.logged(0, "authentication.validationFailurePolicyOAuthStepFailed");
    assert!(
        log.contains("authentication.validationFailurePolicyOAuthStepFailed"),
        "{log}"
    );
}

#[test]
fn a_wrong_state_a_provider_error_and_tampered_or_garbage_cookies_make_no_session() {
    let s = setup(1);
    let base = s.base(0);
    let mut b = Browser::new();
    let callback = start_login(&s, &mut b, 0, "/app/page");
    // Wrong state (the flow cookie kept): refused.
    let state = callback
        .split("state=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let mut wrong = state.clone();
    wrong.push('x');
    let bad = b.get(&callback.replace(&format!("state={state}"), &format!("state={wrong}")));
    assert_eq!(bad.status, 401, "{}", bad.body);
    assert!(session_cookie(&b).is_none());
    // A callback with error=access_denied: refused, clear status, a record.
    let mut b2 = Browser::new();
    let callback2 = start_login(&s, &mut b2, 0, "/app/page");
    let state2 = callback2
        .split("state=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let error = b2.get(&format!(
        "{base}/app/callback?error=access_denied&state={state2}"
    ));
    assert_eq!(error.status, 401, "{}", error.body);
    assert!(error.body.contains("access_denied"), "{}", error.body);
    assert!(session_cookie(&b2).is_none());
    // A tampered session cookie is ignored: the request goes to the provider again.
    let mut b3 = Browser::new();
    let callback3 = start_login(&s, &mut b3, 0, "/app/page");
    let done = b3.get(&callback3);
    assert_eq!(done.status, 302);
    let mut session = session_cookie(&b3).unwrap();
    let last = session.pop().unwrap();
    session.push(if last == 'A' { 'B' } else { 'A' });
    b3.set_cookie("127.0.0.1", "claimgate_session", &session);
    assert_eq!(b3.get(&format!("{base}/app/page")).status, 302);
    // Garbage and oversized cookies: the same, never a 5xx.
    for garbage in ["%%%", "a.b.c", "", &"A".repeat(7000)] {
        let mut g = Browser::new();
        g.set_cookie("127.0.0.1", "claimgate_session", garbage);
        let answer = g.get(&format!("{base}/app/page"));
        assert!(
            answer.status == 302 || answer.status == 431,
            "{garbage:.10}: {}",
            answer.status
        );
        g.set_cookie("127.0.0.1", "claimgate_flow_abcdefghijkl", garbage);
        let answer = g.get(&format!(
            "{base}/app/callback?code=x&state=abcdefghijklmnop"
        ));
        assert!((400..500).contains(&answer.status), "{}", answer.status);
    }
    let log = s.logged(0, "access_denied");
    assert!(log.contains("does not open under --session-key"), "{log}");
    assert!(log.contains("access_denied"), "{log}");
}

#[test]
fn a_provider_that_answers_the_code_exchange_badly_gives_no_session() {
    let s = setup(1);
    for mode in ["500", "garbage"] {
        client()
            .post(format!("{}/__token-mode?mode={mode}", s.idp()))
            .send()
            .unwrap();
        let mut b = Browser::new();
        let callback = start_login(&s, &mut b, 0, "/app/page");
        let answer = b.get(&callback);
        assert_eq!(answer.status, 502, "{mode}: {}", answer.body);
        assert!(session_cookie(&b).is_none());
    }
    let log = s.logged(0, "authentication.idpCallFailed");
    assert!(log.contains("authentication.idpCallFailed"), "{log}");
}

#[test]
fn keys_rotate_the_first_seals_and_all_open() {
    // Replica 0 has the old key; replica 1 the new one first and the old one; replica 2 only
    // the new one.
    let s = setup_with(3, json!({}), |i| match i {
        0 => vec!["k1"],
        1 => vec!["k2", "k1"],
        _ => vec!["k2"],
    });
    let mut b = Browser::new();
    let callback = start_login(&s, &mut b, 0, "/app/page");
    let done = b.get(&callback);
    assert_eq!(done.status, 302);
    assert_eq!(b.get(&format!("{}/app/page", s.base(1))).status, 200);
    assert_eq!(b.get(&format!("{}/app/page", s.base(2))).status, 302);
    // A session sealed by the rotated replica opens on the new-key-only one.
    let mut b2 = Browser::new();
    let callback = start_login(&s, &mut b2, 1, "/app/page");
    assert_eq!(b2.get(&callback).status, 302);
    assert_eq!(b2.get(&format!("{}/app/page", s.base(2))).status, 200);
    assert_eq!(b2.get(&format!("{}/app/page", s.base(0))).status, 302);
}

#[test]
fn logout_goes_to_the_provider_with_allowed_urls_only() {
    let s = setup(1);
    let base = s.base(0);
    let mut b = Browser::new();
    let callback = start_login(&s, &mut b, 0, "/app/page");
    assert_eq!(b.get(&callback).status, 302);
    // Refused post-logout URLs: 400, the session stays.
    for refused in ["https://evil.example/", "//evil.example/", "/not-listed"] {
        let answer = b.get(&format!("{base}/app/logout?postLogoutUrl={refused}"));
        assert_eq!(answer.status, 400, "{refused}");
    }
    assert!(session_cookie(&b).is_some());
    assert!(s
        .logged(0, "logoutBackend.redirectError")
        .contains("logoutBackend.redirectError"));
    // Allowed: the provider's end_session_endpoint, with the hint, the client, the URL and
    // the state; the session is cleared.
    let out = b.get(&format!("{base}/app/logout?postLogoutUrl=/bye&region=s1"));
    assert_eq!(out.status, 302, "{}", out.body);
    let to = out.location();
    assert!(to.starts_with(&format!("{}/session/end?", s.idp())), "{to}");
    assert!(
        to.contains("id_token_hint=") && to.contains("client_id=web") && to.contains("state=s1")
    );
    assert!(
        to.contains(&format!(
            "post_logout_redirect_uri={}",
            flow_encode(&format!("{base}/app/bye"))
        )),
        "{to}"
    );
    assert!(session_cookie(&b).is_none());
    // The provider accepts it: its logout confirmation form.
    let confirm = b.get(&to);
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    assert!(confirm.body.contains("logout"), "{}", confirm.body);
    // Logged out: the page sends the browser to log in again.
    assert_eq!(b.get(&format!("{base}/app/page")).status, 302);
    // Without a session the logout goes straight to the allowed URL.
    let anonymous = Browser::new().get(&format!(
        "{base}/app/logout?postLogoutUrl=http://127.0.0.1/elsewhere"
    ));
    assert_eq!(anonymous.status, 302);
    assert_eq!(anonymous.location(), "http://127.0.0.1/elsewhere");
}

#[test]
fn without_cookies_the_session_is_the_x_apigw_token_header() {
    let s = setup_with(
        1,
        json!({"useCookiesForSession": false, "usePkce": false, "loginPath": null}),
        |_| vec!["k1"],
    );
    let base = s.base(0);
    let mut b = Browser::new();
    let first = b.get(&format!("{base}/app/page"));
    let authorize = first.location();
    assert!(!authorize.contains("code_challenge"), "{authorize}");
    // Without loginPath the original route is the redirect URI.
    assert!(
        authorize.contains(&flow_encode(&format!("{base}/app/page"))),
        "{authorize}"
    );
    let callback = b.log_in_at_provider(&authorize, &s.idp(), "carol");
    assert!(
        callback.starts_with(&format!("{base}/app/page?")),
        "{callback}"
    );
    let done = b.get(&callback);
    assert_eq!(done.status, 302, "{}", done.body);
    let token = done.header("x-apigw-token").expect("X-APIGW-TOKEN");
    assert!(session_cookie(&b).is_none());
    let page = Browser::new().get_with(&format!("{base}/app/page"), &[("x-apigw-token", &token)]);
    assert_eq!((page.status, page.body.as_str()), (200, "page"));
    // No CSRF token is needed for a header session.
    let mut c = Browser::new();
    let post = c.post(&format!("{base}/app/page"), &[("x-apigw-token", &token)]);
    assert_eq!(post.status, 200);
}

fn flow_encode(value: &str) -> String {
    claimgate_core::oauth2::form_encode(value)
}

#[test]
fn absolute_urls_follow_x_forwarded_headers_from_trusted_proxies_only() {
    let s = setup_with(2, json!({}), |i| match i {
        0 => vec!["k1", "--trusted-proxy", "127.0.0.1/32"],
        _ => vec!["k1"],
    });
    let forwarded = [
        ("x-forwarded-host", "app.example.com"),
        ("x-forwarded-proto", "https"),
    ];
    let mut b = Browser::new();
    let trusted = b.get_with(&format!("{}/app/page", s.base(0)), &forwarded);
    assert_eq!(trusted.status, 302);
    assert!(
        trusted
            .location()
            .contains(&flow_encode("https://app.example.com/app/callback")),
        "{}",
        trusted.location()
    );
    let cookie = trusted.header("set-cookie").unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    let untrusted = b.get_with(&format!("{}/app/page", s.base(1)), &forwarded);
    let base = s.base(1);
    assert!(
        untrusted
            .location()
            .contains(&flow_encode(&format!("{base}/app/callback"))),
        "{}",
        untrusted.location()
    );
    assert!(!untrusted.header("set-cookie").unwrap().contains("Secure"));
}

/// Debian's chromium, driven by playwright-core (tests/browser-oauth), logs in through the
/// provider's own form and lands on the backend, then logs out. `CLAIMGATE_SCREENSHOTS=DIR`
/// keeps its screenshots (the README's come from here).
#[test]
fn a_real_browser_logs_in_through_the_providers_form_and_out() {
    let script = repo().join("tests/browser-oauth/login.mjs");
    if !std::path::Path::new("/usr/bin/chromium").exists() {
        return skip(
            "a_real_browser_logs_in_through_the_providers_form_and_out",
            "/usr/bin/chromium is missing (apt-get install chromium)",
        );
    }
    if !repo()
        .join("tests/browser-oauth/node_modules/playwright-core")
        .exists()
    {
        return skip(
            "a_real_browser_logs_in_through_the_providers_form_and_out",
            "playwright-core is not installed (npm ci in tests/browser-oauth)",
        );
    }
    let s = setup(1);
    // The gateway as localhost, the provider as 127.0.0.1: no shared cookies.
    let gateway = s.base(0).replace("127.0.0.1", "localhost");
    let mut command = std::process::Command::new("node");
    command.arg(&script).arg(&gateway);
    if let Some(dir) = std::env::var_os("CLAIMGATE_SCREENSHOTS") {
        command.arg(dir);
    }
    let output = command.output().expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(seen["ok"], true);
    assert_eq!(seen["user"], "alice");
    assert_eq!(seen["csrf"], json!({"without": 403, "withToken": 200}));
    assert_eq!(seen["afterLogout"], "bye");
}

#[test]
fn session_key_files_are_reloaded_when_they_change() {
    let s = setup(1);
    let base = s.base(0);
    let mut b = Browser::new();
    let callback = start_login(&s, &mut b, 0, "/app/page");
    assert_eq!(b.get(&callback).status, 302);
    assert_eq!(b.get(&format!("{base}/app/page")).status, 200);
    // The operator replaces the key: sessions sealed with the old one no longer open.
    std::fs::write(s._keys.path().join("k1"), KEY_2).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = b.get(&format!("{base}/app/page")).status;
        if status == 302 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new key was not loaded"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A key file that is not a key is a rejected reload: the current keys keep serving.
    std::fs::write(s._keys.path().join("k1"), "not a key").unwrap();
    let mut c = Browser::new();
    let callback = start_login(&s, &mut c, 0, "/app/page");
    assert_eq!(c.get(&callback).status, 302);
    assert_eq!(c.get(&format!("{base}/app/page")).status, 200);
}

#[test]
fn serve_refuses_an_oauth2_deployment_without_a_session_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("web.json");
    std::fs::write(
        &file,
        deployment(
            "http://127.0.0.1:9",
            json!({}),
            "127.0.0.1:9".parse().unwrap(),
        )
        .to_string(),
    )
    .unwrap();
    let secrets = dir.path().join("secrets.json");
    std::fs::write(&secrets, r#"{"ocid1.vaultsecret.oc1..web": "web-secret"}"#).unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let run = |extra: &[&str]| {
        let mut args = vec![
            "serve",
            "--listen",
            &listen,
            "--deployment",
            file.to_str().unwrap(),
            "--secrets",
            secrets.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        claimgate(&args)
    };
    let refused = run(&[]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("needs --session-key FILE"), "{stderr}");
    assert!(stderr.contains("/app (web)"), "{stderr}");
    let bad_key = dir.path().join("bad.key");
    std::fs::write(&bad_key, "c2hvcnQ=\n").unwrap();
    let refused = run(&["--session-key", bad_key.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("holds 5 bytes, not 32"), "{stderr}");
}

/// A session is a credential for the response cache too, although its cookie is taken out
/// before the lookup: one user's cached answer is never served to another.
#[test]
fn answers_to_a_session_are_private_for_the_response_cache() {
    const PASSWORD: &str = "cache-pass-1";
    const SECRET_ID: &str = "ocid1.vaultsecret.oc1..cache";
    let Some(redis) = support::cluster::Redis::start(
        "answers_to_a_session_are_private_for_the_response_cache",
        Some(PASSWORD),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let gateway_file = dir.path().join("gateway.json");
    std::fs::write(
        &gateway_file,
        json!({"compartmentId": "ocid1.compartment.oc1..x", "displayName": "gw",
            "responseCacheDetails": {"type": "EXTERNAL_RESP_CACHE",
                "servers": [{"host": "127.0.0.1", "port": redis.port()}],
                "authenticationSecretId": SECRET_ID, "authenticationSecretVersionNumber": 1,
                "connectTimeoutInMs": 500, "readTimeoutInMs": 1000, "sendTimeoutInMs": 500}})
        .to_string(),
    )
    .unwrap();
    let gateway_arg: &'static str =
        Box::leak(gateway_file.to_str().unwrap().to_owned().into_boxed_str());
    let s = setup_full(
        1,
        json!({}),
        |_| vec!["k1", "--gateway", gateway_arg],
        |web| {
            let routes = web["specification"]["routes"].as_array_mut().unwrap();
            let me = routes.iter_mut().find(|r| r["path"] == "/me").unwrap();
            me["requestPolicies"]["responseCacheLookup"] = json!({"type": "SIMPLE_LOOKUP_POLICY"});
            me["responsePolicies"] = json!({"responseCacheStore":
                {"type": "FIXED_TTL_STORE_POLICY", "timeToLiveInSeconds": 60}});
        },
        json!({SECRET_ID: {"1": json!({"password": PASSWORD}).to_string()}}),
    );
    // The gateway as localhost: the browser sends it its own cookies only (not the
    // provider's), so once they are taken out the request carries no Cookie at all.
    let base = s.base(0).replace("127.0.0.1", "localhost");
    let user = |name: &str| {
        let mut b = Browser::new();
        let first = b.get(&format!("{base}/app/me"));
        let callback = b.log_in_at_provider(&first.location(), &s.idp(), name);
        assert_eq!(b.get(&callback).status, 302);
        b
    };
    let mut alice = user("alice");
    let mut bob = user("bob");
    for _ in 0..2 {
        let answer = alice.get(&format!("{base}/app/me"));
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.header("x-cache-status").as_deref(), Some("BYPASS"));
        let seen: Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(seen["x-user"], "alice");
    }
    let answer = bob.get(&format!("{base}/app/me"));
    let seen: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(seen["x-user"], "bob", "{}", answer.body);
}

#[test]
fn a_session_or_flow_of_one_deployment_is_refused_by_another_with_the_same_keys() {
    // Another deployment on the same replicas, with the same --session-key and provider: a
    // session made at /app is not a login at /other (its routes, its client, its scopes).
    let s = setup_beside(
        1,
        json!({}),
        |_| vec!["k1"],
        |_| {},
        json!({}),
        |web| {
            let mut other = web.clone();
            other["pathPrefix"] = json!("/other");
            vec![other]
        },
    );
    let mut b = Browser::new();
    let callback = start_login(&s, &mut b, 0, "/app/page");
    let done = b.get(&callback);
    assert_eq!(done.status, 302, "{}", done.body);
    assert_eq!(b.get(&format!("{}/app/page", s.base(0))).status, 200);
    // The browser scopes the cookie to Path=/app; an attacker copies it to /other.
    let session = session_cookie(&b).expect("a session cookie");
    let copied = b.get_with(
        &format!("{}/other/page", s.base(0)),
        &[("cookie", &format!("claimgate_session={session}"))],
    );
    assert_eq!(copied.status, 302, "{}", copied.body);
    assert!(
        copied.location().starts_with(&s.idp()),
        "{}",
        copied.location()
    );
    // Nor does a flow begun at /app finish at /other's login route.
    let mut c = Browser::new();
    let callback = start_login(&s, &mut c, 0, "/app/page");
    let moved = callback.replacen("/app/callback", "/other/callback", 1);
    assert_ne!(moved, callback);
    let finished = c.get(&moved);
    assert_eq!(finished.status, 401, "{}", finished.body);
    assert!(session_cookie(&c).is_none());
}

#[test]
fn an_access_token_the_deployments_policy_refuses_makes_no_session() {
    // The provider's access token is for api://orders; this deployment wants another
    // audience, so the login must not stand in for a token the policy refuses.
    let s = setup_full(
        1,
        json!({}),
        |_| vec!["k1"],
        |web| {
            web["specification"]["requestPolicies"]["authentication"]["validationPolicy"]
                ["additionalValidationPolicy"]["audiences"] = json!(["api://somewhere-else"]);
        },
        json!({}),
    );
    let mut b = Browser::new();
    let callback = start_login(&s, &mut b, 0, "/app/page");
    let done = b.get(&callback);
    assert_eq!(done.status, 401, "{}", done.body);
    assert!(
        done.body
            .contains("the access token does not pass the deployment's policy"),
        "{}",
        done.body
    );
    assert!(session_cookie(&b).is_none());
}

#[test]
fn a_session_cookie_never_reaches_a_backend_where_it_does_not_open() {
    // Browsers send the session (Path=/app) to every path below /app: to another deployment
    // there, and to an anonymous route of an OAUTH2 deployment where it does not open. Its
    // backend must not get a live session it could replay at /app.
    let s = setup_beside(
        1,
        json!({}),
        |_| vec!["k1"],
        |_| {},
        json!({}),
        |web| {
            let me = web["specification"]["routes"][5]["backend"].clone();
            assert_eq!(me["type"], "HTTP_BACKEND");
            let team = json!({
                "displayName": "team",
                "pathPrefix": "/app/team",
                "specification": {"routes": [
                    {"path": "/me", "methods": ["GET"], "backend": me}
                ]}
            });
            let mut anon = web.clone();
            anon["pathPrefix"] = json!("/app/anon");
            anon["specification"]["routes"][5]["requestPolicies"]["authorization"] =
                json!({"type": "ANONYMOUS"});
            vec![team, anon]
        },
    );
    let mut b = Browser::new();
    let callback = start_login(&s, &mut b, 0, "/app/page");
    assert_eq!(b.get(&callback).status, 302);
    let session = session_cookie(&b).expect("a session cookie");
    b.set_cookie("127.0.0.1", "theme", "dark");
    for path in ["/app/team/me", "/app/anon/me"] {
        let me = b.get(&format!("{}{path}", s.base(0)));
        assert_eq!(me.status, 200, "{path}: {}", me.body);
        let seen: Value = serde_json::from_str(&me.body).unwrap();
        let cookies = seen["cookie"].as_str().unwrap_or_default();
        assert!(!cookies.contains(&session), "{path} got the session");
        assert!(!cookies.contains("claimgate_"), "{path}: {cookies}");
        assert!(cookies.contains("theme=dark"), "{path}: {cookies}");
    }
}

#[test]
fn a_provider_error_with_markup_or_line_breaks_is_shown_as_inert_text() {
    let s = setup(1);
    let mut b = Browser::new();
    let callback = start_login(&s, &mut b, 0, "/app/page");
    let state = callback
        .split("state=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let flow_cookie = b.jar["127.0.0.1"]
        .iter()
        .find(|(n, _)| n.starts_with("claimgate_flow_"))
        .map(|(_, v)| v.clone())
        .expect("a flow cookie");
    let hostile = "%3Cscript%3Ealert(1)%3C%2Fscript%3E%0D%0AX-Injected%3A%201";
    let error = b.get(&format!(
        "{}/app/callback?error={hostile}&state={state}",
        s.base(0)
    ));
    assert_eq!(error.status, 401, "{}", error.body);
    assert!(error.header("x-injected").is_none());
    assert_eq!(
        error.header("content-type").as_deref(),
        Some("application/json")
    );
    // The page echoes what the provider (or whoever wrote the link) sent: no browser may
    // sniff it into HTML.
    assert_eq!(
        error.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert!(
        !error.body.contains('\r') && !error.body.contains('\n'),
        "{}",
        error.body
    );
    let log = s.logged(0, "alert(1)");
    assert!(!log.contains("\r\nX-Injected"), "{log}");
    assert!(session_cookie(&b).is_none());
    // A very long callback query: refused by the gateway's limits, never a 5xx.
    let long = b.get(&format!(
        "{}/app/callback?state={state}&code={}",
        s.base(0),
        "A".repeat(40 * 1024)
    ));
    assert!((400..500).contains(&long.status), "{}", long.status);
    // Neither the flow cookie nor the state reached a log.
    let logs = format!("{}{}", s.execution_log(0), s.access_log(0));
    assert!(!logs.contains(&flow_cookie), "the flow cookie was logged");
    assert!(!logs.contains(state), "the state was logged");
}
