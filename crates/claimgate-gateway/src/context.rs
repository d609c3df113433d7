//! OCI context variables in strings (`${request.path[id]}`, `${request.auth[sub]}`, ...), as
//! the gateway substitutes them into backend URLs.

use claimgate_config::{ContextTable, ContextVariable, Template, TemplatePart};
use claimgate_core::Claims;
use serde_json::Value;

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
        }
    }

    /// The value of a variable, empty when missing (as OCI renders a missing variable).
    pub(crate) fn variable(&self, variable: &ContextVariable) -> String {
        let key = variable.key.as_deref().unwrap_or("");
        match variable.table {
            ContextTable::Path => self
                .path_params
                .iter()
                .find(|(name, _)| name == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
            ContextTable::Auth if variable.sub_key.is_none() => self
                .claims
                .and_then(|c| c.get(key))
                .map(|value| claim_text(&value))
                .unwrap_or_default(),
            ContextTable::Headers => self
                .headers
                .get(key)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            ContextTable::Query => self
                .query
                .unwrap_or("")
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(name, _)| *name == key)
                .map(|(_, v)| v.to_owned())
                .unwrap_or_default(),
            ContextTable::Host => self.host.unwrap_or_default().to_owned(),
            ContextTable::Cert => self.client_cert.unwrap_or_default().to_owned(),
            // OAuth2 session claims, subdomains and usage plans are not available in claimgate.
            _ => String::new(),
        }
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

    /// Substitutes every `${...}` in a URL template. Values that did not come from the URL
    /// (path parameters and query values are already encoded) are percent-encoded, so a claim
    /// such as `../admin` cannot change the path. The loader has checked the template's syntax.
    pub(crate) fn expand_url(&self, template: &str) -> String {
        let Ok(parsed) = Template::parse(template) else {
            return template.to_owned();
        };
        let mut out = String::with_capacity(template.len());
        for part in parsed.parts() {
            match part {
                TemplatePart::Literal(text) => out.push_str(text),
                TemplatePart::Variable(v)
                    if matches!(v.table, ContextTable::Path | ContextTable::Query) =>
                {
                    out.push_str(&self.variable(v))
                }
                TemplatePart::Variable(v) => percent_encode_into(&self.variable(v), &mut out),
            }
        }
        out
    }
}

/// A claim as text: strings as they are, everything else as JSON.
pub(crate) fn claim_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
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
        };
        assert_eq!(
            context.expand_url("http://b/${request.path[id]}/${request.auth[sub]}/${request.auth[n]}/${request.headers[x-tenant]}/${request.query[b]}/${request.auth[missing]}"),
            "http://b/42/..%2Fadmin/3/acme%20corp/2/"
        );
    }
}
