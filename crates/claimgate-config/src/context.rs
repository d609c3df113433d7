//! Context variables as deployment files use them: `${...}` templates in strings, bare
//! selectors, and the `ANY_OF` / `WILDCARD` selection keys of dynamic routing and dynamic
//! authentication.

use crate::model::{ContextTable, ContextVariable, SelectionKey, Template};
use crate::reader::{read_kind, required_list, Cx, Field};

/// Where a context variable is read, which decides what it may refer to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scope<'a> {
    /// The route's path parameters, when known: `request.path[...]` keys are checked against them.
    pub(crate) route_params: Option<&'a [String]>,
    /// Whether `request.body` may be read (only by a multi-argument authorizer's `parameters`).
    pub(crate) body: bool,
}

impl<'a> Scope<'a> {
    /// Deployment-wide members: no route, no body.
    pub(crate) fn deployment() -> Self {
        Self {
            route_params: None,
            body: false,
        }
    }

    /// `CUSTOM_AUTHENTICATION.parameters`.
    pub(crate) fn authorizer() -> Self {
        Self {
            route_params: None,
            body: true,
        }
    }

    /// A route's members (`params` is `None` when the route path itself is invalid).
    pub(crate) fn route(params: Option<&'a [String]>) -> Self {
        Self {
            route_params: params,
            body: false,
        }
    }
}

/// Checks what a parsed variable refers to; false when it is an error.
fn check_variable(cx: &mut Cx, path: &str, variable: &ContextVariable, scope: &Scope<'_>) -> bool {
    match variable.table {
        ContextTable::Body if !scope.body => {
            cx.error(
                path,
                "request.body can only be passed to an authorizer function (CUSTOM_AUTHENTICATION \
                 parameters)",
            );
            false
        }
        ContextTable::Path => {
            if let (Some(params), Some(key)) = (scope.route_params, &variable.key) {
                if !params.contains(key) {
                    cx.warn(
                        path,
                        format!(
                            "{variable}: the route path has no parameter '{key}', so it is always \
                             empty"
                        ),
                    );
                }
            }
            true
        }
        _ => true,
    }
}

/// A string member that may hold `${...}` context variables.
pub(crate) fn read_template(cx: &mut Cx, field: &Field<'_>, scope: &Scope<'_>) -> Option<Template> {
    let text = field.str(cx)?;
    parse_template(cx, &field.path, text, scope)
}

/// Parses a template found at `path`, reporting a syntax error or a variable out of scope.
pub(crate) fn parse_template(
    cx: &mut Cx,
    path: &str,
    text: &str,
    scope: &Scope<'_>,
) -> Option<Template> {
    match Template::parse(text) {
        Ok(template) => {
            let mut ok = true;
            for variable in template.variables() {
                ok &= check_variable(cx, path, variable, scope);
            }
            ok.then_some(template)
        }
        Err(reason) => {
            cx.error(path, reason);
            None
        }
    }
}

/// A member holding exactly one context variable, written bare (`request.headers[X]`) as OCI
/// documents, or as `${request.headers[X]}`.
pub(crate) fn read_expression(
    cx: &mut Cx,
    field: &Field<'_>,
    scope: &Scope<'_>,
) -> Option<ContextVariable> {
    let text = field.str(cx)?;
    let bare = text
        .strip_prefix("${")
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(text);
    match ContextVariable::parse(bare) {
        Ok(variable) => check_variable(cx, &field.path, &variable, scope).then_some(variable),
        Err(reason) => {
            cx.error(&field.path, reason);
            None
        }
    }
}

/// A `selectionSource`: `{"type": "SINGLE", "selector": <context variable>}`.
pub(crate) fn read_selection_source(
    cx: &mut Cx,
    field: &Field<'_>,
    tables: &[ContextTable],
) -> Option<ContextVariable> {
    let mut obj = field.object(cx)?;
    let kind = read_kind(cx, &mut obj, &["SINGLE"], "a selection source type");
    let selector = obj.require(cx, "selector").and_then(|f| {
        let variable = read_expression(cx, &f, &Scope::deployment())?;
        if !tables.contains(&variable.table) {
            cx.error(
                &f.path,
                format!(
                    "a selector reads {}, not {}",
                    tables
                        .iter()
                        .map(|t| t.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                    variable.table.name()
                ),
            );
            return None;
        }
        Some(variable)
    });
    obj.finish(cx, &["type", "selector"]);
    kind?;
    selector
}

/// The rules read so far in one list of selection keys: values, names and the default must not
/// repeat across them.
#[derive(Debug, Default)]
pub(crate) struct KeyRules {
    /// ASCII-lower-cased `ANY_OF` values (matched ASCII case-insensitively) and where each is.
    values: Vec<(String, String)>,
    names: Vec<(String, String)>,
    default: Option<String>,
}

/// A `DynamicSelectionKey`: `ANY_OF` (`values`) or `WILDCARD` (`expression`), with `name` and
/// `isDefault`.
pub(crate) fn read_selection_key(
    cx: &mut Cx,
    field: &Field<'_>,
    rules: &mut KeyRules,
) -> Option<ReadKey> {
    let mut obj = field.object(cx)?;
    let kind = read_kind(
        cx,
        &mut obj,
        &["ANY_OF", "WILDCARD"],
        "a selection key type",
    )?;
    let default = obj.take("isDefault").map(|f| (f.bool(cx), f.path));
    let name = obj.require(cx, "name").and_then(|f| {
        let name = f.non_empty_str(cx)?;
        if let Some((_, at)) = rules.names.iter().find(|(n, _)| n == name) {
            cx.error(&f.path, format!("name '{name}' is already used by {at}"));
            return None;
        }
        rules.names.push((name.to_owned(), f.path.clone()));
        Some(name.to_owned())
    });
    let matcher = if kind == "ANY_OF" {
        let values = obj.require(cx, "values");
        obj.finish(cx, &["type", "isDefault", "name", "values"]);
        values.and_then(|f| {
            let list = required_list(cx, &f, usize::MAX)?;
            let mut ok = true;
            for (i, value) in list.iter().enumerate() {
                let at = format!("{}[{i}]", f.path);
                // As the gateway compares them: ASCII case only, no Unicode folding.
                let folded = value.to_ascii_lowercase();
                if let Some((_, other)) = rules.values.iter().find(|(v, _)| *v == folded) {
                    cx.error(
                        &at,
                        format!(
                            "'{value}' is already matched by {other} (ANY_OF values are matched \
                             case-insensitively and must be unique across rules)"
                        ),
                    );
                    ok = false;
                } else {
                    rules.values.push((folded, at));
                }
            }
            ok.then(|| SelectionKey::AnyOf(list.clone()))
        })
    } else {
        let expression = obj.require(cx, "expression");
        obj.finish(cx, &["type", "isDefault", "name", "expression"]);
        expression.and_then(|f| {
            let text = f.non_empty_str(cx)?;
            let wildcards = text.chars().filter(|c| matches!(c, '*' | '+')).count();
            let problem = if wildcards == 0 {
                Some(format!(
                    "'{text}' has no wildcard ('*' or '+'); use an ANY_OF key for exact values"
                ))
            } else if wildcards > 1 {
                Some(format!(
                    "'{text}' has more than one wildcard; OCI allows one"
                ))
            } else if !(text.starts_with(['*', '+']) || text.ends_with(['*', '+'])) {
                Some(format!(
                    "'{text}': the wildcard must be at the start or the end"
                ))
            } else {
                None
            };
            match problem {
                Some(problem) => {
                    cx.error(&f.path, problem);
                    None
                }
                None => Some(SelectionKey::Wildcard(text.to_owned())),
            }
        })
    };
    let is_default = matches!(default, Some((Some(true), _)));
    let default_ok = match default {
        Some((Some(true), at)) => match &rules.default {
            Some(other) => {
                cx.error(
                    &at,
                    format!("only one rule can be the default, and {other} already is"),
                );
                false
            }
            None => {
                rules.default = Some(at);
                true
            }
        },
        Some((None, _)) => false,
        _ => true,
    };
    let name = name?;
    let key = matcher?;
    default_ok.then_some(ReadKey {
        name,
        key,
        is_default,
    })
}

/// A selection key as read.
#[derive(Debug)]
pub(crate) struct ReadKey {
    pub(crate) name: String,
    pub(crate) key: SelectionKey,
    pub(crate) is_default: bool,
}
