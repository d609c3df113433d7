//! Route header and query-parameter transformations (OCI's `headerTransformations`,
//! `queryParameterTransformations` and `responsePolicies.headerTransformations`): set, then
//! rename, then filter, as OCI applies them.
//!
//! Identity cannot be spoofed: a header set from `${request.auth[...]}` (claims) or
//! `${request.cert[...]}` (the client certificate) always replaces whatever the client sent
//! under that name, whatever `ifExists` says, and also every client header whose name is the
//! same once `_` and `-` are treated alike: CGI, WSGI, PHP and Rack backends read `X_User` and
//! `X-User` both as `HTTP_X_USER`, so a client's `X_User: admin` next to the gateway's `X-User`
//! would otherwise be read as the identity. A value that is not a valid header value (a claim
//! with CR/LF or NUL, say) is never sent.

use crate::context::RequestContext;
use crate::logs::{ExecutionRecord, Level};
use claimgate_config::{ContextTable, FilterKind, IfExists, Transformations};
use http::{HeaderMap, HeaderName, HeaderValue};

/// Applies header transformations; returns records for values that could not be set.
pub(crate) fn headers(
    rules: &Transformations,
    headers: &mut HeaderMap,
    context: &RequestContext<'_>,
) -> Vec<ExecutionRecord> {
    let mut problems = Vec::new();
    for item in &rules.set {
        let Ok(name) = HeaderName::from_bytes(item.name.as_bytes()) else {
            continue;
        };
        let from_claims = item.values.iter().any(|v| {
            v.variables()
                .any(|var| matches!(var.table, ContextTable::Auth | ContextTable::Cert))
        });
        let present = headers.contains_key(&name);
        let if_exists = if from_claims {
            IfExists::Overwrite
        } else {
            item.if_exists
        };
        if present && if_exists == IfExists::Skip {
            continue;
        }
        if if_exists == IfExists::Overwrite {
            headers.remove(&name);
        }
        if from_claims {
            remove_look_alikes(headers, &name);
        }
        for template in &item.values {
            let value = context.expand(template);
            if value.is_empty() {
                continue;
            }
            match HeaderValue::from_str(&value) {
                Ok(value) => {
                    headers.append(name.clone(), value);
                }
                Err(_) => problems.push(ExecutionRecord::new(
                    "headerTransformation.badHeaderValue",
                    Level::Warn,
                    format!(
                        "The value of header '{}' from '{}' is not a valid header value; the header was not set.",
                        item.name,
                        template.as_str()
                    ),
                )),
            }
        }
    }
    for rename in &rules.rename {
        let (Ok(from), Ok(to)) = (
            HeaderName::from_bytes(rename.from.as_bytes()),
            HeaderName::from_bytes(rename.to.as_bytes()),
        ) else {
            continue;
        };
        let values: Vec<HeaderValue> = headers.get_all(&from).iter().cloned().collect();
        if values.is_empty() {
            continue;
        }
        headers.remove(&from);
        headers.remove(&to);
        for value in values {
            headers.append(to.clone(), value);
        }
    }
    if let Some(filter) = &rules.filter {
        let listed = |name: &HeaderName| {
            filter
                .names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name.as_str()))
        };
        let names: Vec<HeaderName> = headers.keys().cloned().collect();
        for name in names {
            let keep = match filter.kind {
                FilterKind::Allow => listed(&name),
                FilterKind::Block => !listed(&name),
            };
            if !keep {
                headers.remove(&name);
            }
        }
    }
    problems
}

/// Removes every header whose name equals `name` once `_` and `-` are treated alike (names in
/// a `HeaderMap` are lower-case already). Allocates only when there is one to remove.
fn remove_look_alikes(headers: &mut HeaderMap, name: &HeaderName) {
    let same = |other: &HeaderName| {
        let (a, b) = (other.as_str().as_bytes(), name.as_str().as_bytes());
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                let dash = |c: &u8| if *c == b'_' { b'-' } else { *c };
                dash(x) == dash(y)
            })
    };
    let found: Vec<HeaderName> = headers.keys().filter(|k| same(k)).cloned().collect();
    for other in found {
        headers.remove(&other);
    }
}

/// Applies query-parameter transformations to a raw query string (names are case-sensitive).
pub(crate) fn query(
    rules: &Transformations,
    query: Option<&str>,
    context: &RequestContext<'_>,
) -> Option<String> {
    let mut pairs: Vec<(String, Option<String>)> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
            None => (p.to_owned(), None),
        })
        .collect();
    for item in &rules.set {
        let present = pairs.iter().any(|(k, _)| *k == item.name);
        if present && item.if_exists == IfExists::Skip {
            continue;
        }
        if item.if_exists == IfExists::Overwrite {
            pairs.retain(|(k, _)| *k != item.name);
        }
        for template in &item.values {
            pairs.push((
                item.name.clone(),
                Some(context.expand_query_value(template)),
            ));
        }
    }
    for rename in &rules.rename {
        if pairs.iter().any(|(k, _)| *k == rename.from) {
            pairs.retain(|(k, _)| *k != rename.to);
            for (k, _) in pairs.iter_mut().filter(|(k, _)| *k == rename.from) {
                k.clone_from(&rename.to);
            }
        }
    }
    if let Some(filter) = &rules.filter {
        pairs.retain(|(k, _)| {
            let listed = filter.names.iter().any(|n| n == k);
            match filter.kind {
                FilterKind::Allow => listed,
                FilterKind::Block => !listed,
            }
        });
    }
    if pairs.is_empty() {
        return None;
    }
    Some(
        pairs
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={v}"),
                None => k.clone(),
            })
            .collect::<Vec<_>>()
            .join("&"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alikes_differ_only_in_underscores_and_dashes() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("x-user", "a"),
            ("x_user", "b"),
            ("x_user", "c"),
            ("x-user-id", "d"),
            ("xuser", "e"),
            ("x__user", "f"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        remove_look_alikes(&mut headers, &HeaderName::from_static("x-user"));
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["x-user-id", "x__user", "xuser"]);
    }
}
