//! Route header and query-parameter transformations (OCI's `headerTransformations`,
//! `queryParameterTransformations` and `responsePolicies.headerTransformations`): set, then
//! rename, then filter, as OCI applies them.
//!
//! Identity from claims cannot be spoofed: a header set from `${request.auth[...]}` always
//! replaces whatever the client sent under that name, whatever `ifExists` says. A value that
//! is not a valid header value (a claim with CR/LF or NUL, say) is never sent.

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
        let from_claims = item
            .values
            .iter()
            .any(|v| v.variables().any(|var| var.table == ContextTable::Auth));
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
