//! Header and query parameter transformations (route request and response policies, and the
//! response of a validation failure policy), and the RFC 9110 token rule they share.

use crate::context::{read_template, Scope};
use crate::model::*;
use crate::reader::{read_enum, Cx, Field};

/// Which transformations a policy holds: their member names, limits on names, protected names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// Route `requestPolicies.headerTransformations`.
    RequestHeaders,
    /// Route `requestPolicies.queryParameterTransformations`.
    QueryParameters,
    /// Route `responsePolicies.headerTransformations` and `responseHeaderTransformations`.
    ResponseHeaders,
}

impl Target {
    fn members(self) -> [&'static str; 3] {
        match self {
            Self::QueryParameters => [
                "setQueryParameters",
                "renameQueryParameters",
                "filterQueryParameters",
            ],
            _ => ["setHeaders", "renameHeaders", "filterHeaders"],
        }
    }

    pub(crate) fn headers(self) -> bool {
        self != Self::QueryParameters
    }

    pub(crate) fn fold(self, name: &str) -> String {
        if self.headers() {
            name.to_ascii_lowercase()
        } else {
            name.to_owned()
        }
    }

    /// Whether OCI refuses to transform this header in this direction.
    fn protected(self, name: &str) -> bool {
        const BOTH: &[&str] = &[
            "connection",
            "content-length",
            "except",
            "keep-alive",
            "opc-request-id",
            "te",
            "transfer-encoding",
            "upgrade",
        ];
        const REQUEST: &[&str] = &[
            "cdn-loop",
            "cookie",
            "origin",
            "proxy-authorization",
            "x-forwarded-for",
            "x-real-ip",
        ];
        const RESPONSE: &[&str] = &[
            "access-control-allow-credentials",
            "access-control-allow-headers",
            "access-control-allow-methods",
            "access-control-allow-origin",
            "access-control-expose-headers",
            "access-control-max-age",
            "proxy-authenticate",
            "public-key-pins",
            "retry-after",
            "strict-transport-security",
            "trailers",
            "x-content-type-options",
            "x-frame-options",
        ];
        let name = name.to_ascii_lowercase();
        let name = name.as_str();
        match self {
            Self::QueryParameters => false,
            Self::RequestHeaders => BOTH.contains(&name) || REQUEST.contains(&name),
            Self::ResponseHeaders => BOTH.contains(&name) || RESPONSE.contains(&name),
        }
    }

    fn noun(self) -> &'static str {
        if self.headers() {
            "header"
        } else {
            "query parameter"
        }
    }
}

/// A name used by a transformation, for the one-transformation-per-name rule.
struct Use {
    folded: String,
    path: String,
}

/// Header or query parameter transformations, with OCI's limits and name rules.
pub(crate) fn read_transformations(
    cx: &mut Cx,
    field: &Field<'_>,
    target: Target,
    scope: &Scope<'_>,
) -> Option<Transformations> {
    let mut obj = field.object(cx)?;
    let [set_member, rename_member, filter_member] = target.members();
    let mut ok = true;
    let mut uses: Vec<Use> = Vec::new();
    let mut result = Transformations::default();

    if let Some(f) = obj.take(set_member) {
        match read_items(cx, &f, 20) {
            Some(items) => {
                for item in items {
                    let Some(mut item) = item.object(cx) else {
                        ok = false;
                        continue;
                    };
                    let name = item
                        .require(cx, "name")
                        .and_then(|n| read_name(cx, &n, target, &mut uses));
                    let values = item.require(cx, "values").and_then(|v| {
                        let values = v.array_max(cx, 10)?;
                        if values.is_empty() {
                            cx.error(&v.path, "at least one value is required");
                            return None;
                        }
                        let mut out = Vec::new();
                        for value in &values {
                            out.push(read_template(cx, value, scope));
                        }
                        out.into_iter().collect::<Option<Vec<_>>>()
                    });
                    let if_exists = match item.take("ifExists") {
                        None => Some(IfExists::Overwrite),
                        Some(f) => read_enum(
                            cx,
                            &f,
                            &["OVERWRITE", "APPEND", "SKIP"],
                            "an ifExists behaviour",
                        )
                        .map(|v| match v {
                            "APPEND" => IfExists::Append,
                            "SKIP" => IfExists::Skip,
                            _ => IfExists::Overwrite,
                        }),
                    };
                    item.finish(cx, &["name", "values", "ifExists"]);
                    match (name, values, if_exists) {
                        (Some(name), Some(values), Some(if_exists)) => result.set.push(SetItem {
                            name,
                            values,
                            if_exists,
                        }),
                        _ => ok = false,
                    }
                }
            }
            None => ok = false,
        }
    }

    if let Some(f) = obj.take(rename_member) {
        match read_items(cx, &f, 20) {
            Some(items) => {
                for item in items {
                    let Some(mut item) = item.object(cx) else {
                        ok = false;
                        continue;
                    };
                    let from = item
                        .require(cx, "from")
                        .and_then(|n| read_name(cx, &n, target, &mut uses));
                    let to = item
                        .require(cx, "to")
                        .and_then(|n| read_name(cx, &n, target, &mut uses));
                    item.finish(cx, &["from", "to"]);
                    match (from, to) {
                        (Some(from), Some(to)) => result.rename.push(RenameItem { from, to }),
                        _ => ok = false,
                    }
                }
            }
            None => ok = false,
        }
    }

    if let Some(f) = obj.take(filter_member) {
        match f.object(cx) {
            Some(mut filter) => {
                let kind = filter
                    .require(cx, "type")
                    .and_then(|t| read_enum(cx, &t, &["ALLOW", "BLOCK"], "a filter type"));
                let items = filter.require(cx, "items");
                filter.finish(cx, &["type", "items"]);
                let allow = kind == Some("ALLOW");
                let names = items.and_then(|items| {
                    let items = items.array_max(cx, 50)?;
                    let mut names = Vec::new();
                    let mut listed: Vec<Use> = Vec::new();
                    for item in items {
                        let mut item = item.object(cx)?;
                        // ALLOW lists may repeat names used by other transformations.
                        let name = item.require(cx, "name").and_then(|n| {
                            read_name(cx, &n, target, if allow { &mut listed } else { &mut uses })
                        });
                        item.finish(cx, &["name"]);
                        names.push(name?);
                    }
                    Some(names)
                });
                match (kind, names) {
                    (Some(kind), Some(names)) => {
                        let kind = if kind == "ALLOW" {
                            FilterKind::Allow
                        } else {
                            FilterKind::Block
                        };
                        if kind == FilterKind::Allow {
                            let kept: Vec<String> = names.iter().map(|n| target.fold(n)).collect();
                            let produced = result
                                .set
                                .iter()
                                .map(|s| &s.name)
                                .chain(result.rename.iter().map(|r| &r.to));
                            for name in produced {
                                if !kept.contains(&target.fold(name)) {
                                    cx.warn(
                                        &f.path,
                                        format!(
                                            "'{name}' is set or renamed, but this ALLOW filter \
                                             runs last and removes it (list it here to keep it)"
                                        ),
                                    );
                                }
                            }
                        }
                        result.filter = Some(Filter { kind, names });
                    }
                    _ => ok = false,
                }
            }
            None => ok = false,
        }
    }
    obj.finish(cx, &target.members());
    ok.then_some(result)
}

/// `{"items": [...]}` with at most `max` items.
fn read_items<'v>(cx: &mut Cx, field: &Field<'v>, max: usize) -> Option<Vec<Field<'v>>> {
    let mut obj = field.object(cx)?;
    let items = obj.require(cx, "items");
    obj.finish(cx, &["items"]);
    items?.array_max(cx, max)
}

/// A transformed name: valid, not protected, and used by no other transformation of the route.
fn read_name(
    cx: &mut Cx,
    field: &Field<'_>,
    target: Target,
    uses: &mut Vec<Use>,
) -> Option<String> {
    let name = field.non_empty_str(cx)?;
    if target.headers() && !is_token(name) {
        cx.error(&field.path, format!("'{name}' is not a valid header name"));
        return None;
    }
    if target.protected(name) {
        cx.error(
            &field.path,
            format!("'{name}' is a protected header: OCI does not let policies change it"),
        );
        return None;
    }
    let folded = target.fold(name);
    if let Some(other) = uses.iter().find(|u| u.folded == folded) {
        cx.error(
            &field.path,
            format!(
                "{} '{name}' is already used at {}; a name may appear in only one \
                 transformation (ALLOW filters excepted)",
                target.noun(),
                other.path
            ),
        );
        return None;
    }
    uses.push(Use {
        folded,
        path: field.path.clone(),
    });
    Some(name.to_owned())
}

/// An RFC 9110 token (header names, method names).
pub(crate) fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
