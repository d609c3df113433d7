//! OCI context variables in strings (`${request.path[id]}`, `${request.auth[sub]}`, ...), as
//! the gateway substitutes them into backend URLs.

use claimgate_config::{ContextTable, ContextVariable, Template, TemplatePart};
use claimgate_core::path::{self, PathRejection};
use claimgate_core::Claims;

/// `request.usage_plan[id]`: the plan a request is counted under, set by the usage-plan
/// policy in the request's extensions.
#[derive(Debug, Clone)]
pub(crate) struct UsagePlanId(pub(crate) String);

/// `request.auth[...]` of an OAUTH2 session (OCI's names): `apigw_csrf_token`, `id_token`,
/// `access_token`, `id_token_claims[c]`; `access_token_claims[c]` are the verified claims.
/// Set by the OAUTH2 flow in the request's extensions once the session's token passed.
#[derive(Clone)]
pub(crate) struct OAuth2Auth {
    pub(crate) csrf: Option<String>,
    pub(crate) id_token: String,
    pub(crate) access_token: String,
    /// The ID token's claims, read on first use: only a transformation naming
    /// `id_token_claims` needs them, and parsing the ID token cost a session request ~20k
    /// instructions, as much as the rest of the OAUTH2 step (BENCHMARKS.md, issue 20).
    pub(crate) id_claims: std::sync::OnceLock<Option<Claims>>,
}

impl OAuth2Auth {
    /// The ID token's claims (none when it does not parse), decoded once per request.
    fn id_claims(&self) -> Option<&Claims> {
        self.id_claims
            .get_or_init(|| {
                claimgate_jose::ParsedToken::parse(&self.id_token)
                    .ok()
                    .and_then(|t| Claims::from_map(&t.payload))
            })
            .as_ref()
    }
}

impl std::fmt::Debug for OAuth2Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OAuth2Auth([redacted])")
    }
}

/// What a request offers to `${...}` expressions.
#[derive(Debug)]
pub(crate) struct RequestContext<'a> {
    /// `request.cert[client_base64]`: the client certificate `mutualTls` passed, if any.
    pub(crate) client_cert: Option<&'a str>,
    pub(crate) path_params: &'a [(String, String)],
    pub(crate) claims: Option<&'a Claims>,
    pub(crate) headers: &'a http::HeaderMap,
    pub(crate) query: Option<&'a str>,
    pub(crate) host: Option<&'a str>,
    /// `request.usage_plan[id]`.
    pub(crate) usage_plan: Option<&'a str>,
    /// The OAUTH2 session's `request.auth[...]` values.
    pub(crate) oauth2: Option<&'a OAuth2Auth>,
}

impl<'a> RequestContext<'a> {
    /// What `parts` offers, with the route's path parameters and the verified claims (none when
    /// authentication failed: no claim is trusted then).
    pub(crate) fn new(
        parts: &'a http::request::Parts,
        path_params: &'a [(String, String)],
        claims: Option<&'a Claims>,
    ) -> Self {
        Self {
            client_cert: parts
                .extensions
                .get::<crate::mtls::ClientCertificate>()
                .map(|c| &*c.0),
            path_params,
            claims,
            headers: &parts.headers,
            query: parts.uri.query(),
            host: parts
                .headers
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok()),
            usage_plan: parts.extensions.get::<UsagePlanId>().map(|p| p.0.as_str()),
            oauth2: parts.extensions.get::<OAuth2Auth>(),
        }
    }

    /// The value of a variable, empty when missing (as OCI renders a missing variable).
    pub(crate) fn variable(&self, variable: &ContextVariable) -> String {
        if variable.table == ContextTable::Cert {
            return self.client_cert.unwrap_or_default().to_owned();
        }
        if variable.table == ContextTable::UsagePlan {
            return self.usage_plan.unwrap_or_default().to_owned();
        }
        if let (ContextTable::Auth, Some(oauth2)) = (variable.table, self.oauth2) {
            let sub = variable.sub_key.as_deref();
            let claim = |claims: Option<&Claims>| {
                sub.and_then(|c| claims?.get(c))
                    .map(|v| claimgate_core::claim_text(&v))
                    .unwrap_or_default()
            };
            match variable.key.as_deref() {
                Some("apigw_csrf_token") => return oauth2.csrf.clone().unwrap_or_default(),
                Some("id_token") => return oauth2.id_token.clone(),
                Some("access_token") => return oauth2.access_token.clone(),
                Some("id_token_claims") => return claim(oauth2.id_claims()),
                Some("access_token_claims") => return claim(self.claims),
                _ => {}
            }
        }
        claimgate_core::context_value(
            variable,
            self.path_params,
            self.claims,
            self.query,
            |name| {
                if name == "host" {
                    return self.host;
                }
                self.headers.get(name).and_then(|v| v.to_str().ok())
            },
        )
    }

    /// Expands a template into a header or parameter value, as written (no encoding).
    pub(crate) fn expand(&self, template: &Template) -> String {
        let mut out = String::new();
        for part in template.parts() {
            match part {
                TemplatePart::Literal(text) => out.push_str(text),
                TemplatePart::Variable(variable) => out.push_str(&self.variable(variable)),
            }
        }
        out
    }

    /// Expands a template into a query-parameter value: variable values are percent-encoded.
    pub(crate) fn expand_query_value(&self, template: &Template) -> String {
        let mut out = String::new();
        for part in template.parts() {
            match part {
                TemplatePart::Literal(text) => out.push_str(text),
                TemplatePart::Variable(variable) => {
                    percent_encode_into(&self.variable(variable), &mut out)
                }
            }
        }
        out
    }

    /// The backend URL for `template` ([`path::expand_backend_url`]: each value escaped for
    /// the part of the URL it lands in, or the request refused).
    pub(crate) fn expand_url<'t>(
        &self,
        template: &'t str,
    ) -> Result<std::borrow::Cow<'t, str>, PathRejection> {
        // A literal expands to itself: nearly every backend URL, and no parsing or copy a
        // request.
        if is_literal_url(template) {
            return Ok(std::borrow::Cow::Borrowed(template));
        }
        let Ok(parsed) = Template::parse(template) else {
            return Ok(std::borrow::Cow::Borrowed(template));
        };
        path::expand_backend_url(&parsed, |variable| self.variable(variable))
            .map(std::borrow::Cow::Owned)
    }
}

/// Whether a backend URL template has no variable (no `${`): it is then the URL itself, for
/// every request, and can be parsed once at load.
pub(crate) fn is_literal_url(template: &str) -> bool {
    !template.contains("${")
}

fn percent_encode_into(value: &str, out: &mut String) {
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn expands_path_auth_and_headers() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-tenant", "acme corp".parse().unwrap());
        let claims: serde_json::Map<String, Value> =
            serde_json::from_str(r#"{"sub":"../admin","n":3}"#).unwrap();
        let claims = Claims::from_map(&claims).unwrap();
        let params = vec![("id".to_owned(), "42".to_owned())];
        let context = RequestContext {
            client_cert: None,
            path_params: &params,
            claims: Some(&claims),
            headers: &headers,
            query: Some("a=1&b=2"),
            host: Some("api.example"),
            usage_plan: None,
            oauth2: None,
        };
        assert_eq!(
            context
                .expand_url("http://b/${request.path[id]}/${request.auth[n]}/${request.headers[x-tenant]}/${request.query[b]}/${request.auth[missing]}?s=${request.auth[sub]}")
                .unwrap(),
            "http://b/42/3/acme%20corp/2/?s=..%2Fadmin"
        );
        // A claim, header or query value cannot add a segment or climb.
        for template in [
            "http://b/${request.auth[sub]}",
            "http://b/x/${request.query[p]}",
        ] {
            let params = vec![];
            let context = RequestContext {
                path_params: &params,
                claims: Some(&claims),
                headers: &headers,
                query: Some("p=..%2Fadmin"),
                host: None,
                client_cert: None,
                usage_plan: None,
                oauth2: None,
            };
            assert_eq!(
                context.expand_url(template),
                Err(PathRejection::ValueChangesPath),
                "{template}"
            );
        }
    }

    #[test]
    fn a_url_without_variables_is_itself_and_is_not_copied() {
        let headers = http::HeaderMap::new();
        let params = vec![];
        let context = RequestContext {
            path_params: &params,
            claims: None,
            headers: &headers,
            query: Some("a=1"),
            host: None,
            client_cert: None,
            usage_plan: None,
            oauth2: None,
        };
        // A lone `$` or `{` is literal text, as the template parser reads it.
        for url in ["http://b:8080/x?y=1", "http://b/$x/{y}", ""] {
            let expanded = context.expand_url(url).unwrap();
            assert!(matches!(expanded, std::borrow::Cow::Borrowed(u) if u == url));
            assert_eq!(
                expanded,
                path::expand_backend_url(&Template::parse(url).unwrap(), |_| unreachable!())
                    .unwrap()
            );
        }
        // With a variable it is still expanded for each request.
        assert_eq!(
            context.expand_url("http://b/${request.query[a]}").unwrap(),
            "http://b/1"
        );
    }

    #[test]
    fn query_values_cannot_add_a_query_and_hosts_are_labels() {
        let headers = http::HeaderMap::new();
        let params = vec![("t".to_owned(), "acme".to_owned())];
        let context = |query: &'static str| RequestContext {
            path_params: &params,
            claims: None,
            headers: &headers,
            query: Some(query),
            host: None,
            client_cert: None,
            usage_plan: None,
            oauth2: None,
        };
        assert_eq!(
            context("p=a%3Fc%3Dd%23x").expand_url("http://b/v/${request.query[p]}"),
            Ok("http://b/v/a%3Fc%3Dd%23x".into())
        );
        assert_eq!(
            context("p=a&c=d").expand_url("http://b/v?x=${request.query[p]}&y=1"),
            Ok("http://b/v?x=a&y=1".into())
        );
        assert_eq!(
            context("p=1").expand_url("http://${request.path[t]}.svc.internal/x"),
            Ok("http://acme.svc.internal/x".into())
        );
        assert_eq!(
            context("p=evil.example%2F").expand_url("http://${request.query[p]}.svc/x"),
            Err(PathRejection::ValueNotHostLabel)
        );
        assert_eq!(
            context("p=254").expand_url("http://169.254.169.${request.query[p]}/latest"),
            Err(PathRejection::ValueNotHostLabel)
        );
    }
}
