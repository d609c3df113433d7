//! The bottom layer of the readers: a walker over parsed JSON that knows where it is, so every problem is reported with the path
//! of the member as written in the file, and all problems of a file are collected at once.
//!
//! Every resource reader (deployments, usage plans, subscribers) is built on this module and on
//! [`crate::context`]; this module imports none of them.
//!
//! serde's derive stops at the first error and cannot name a member by its kebab-case spelling,
//! which is why deployment files are read through this instead.

use serde_json::{Map, Value};

/// One problem (or warning) in a deployment file, at a JSON path such as
/// `specification.routes[1].backend.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem of a file that cannot be used, and the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

/// Collects errors and warnings while a file is read.
#[derive(Debug, Default)]
pub(crate) struct Cx {
    pub(crate) errors: Vec<Diagnostic>,
    pub(crate) warnings: Vec<Diagnostic>,
    /// The file spells members in kebab-case (a CLI read-back): paths of members that are
    /// missing are named that way too, since every path uses the file's spelling.
    pub(crate) kebab: bool,
}

impl Cx {
    /// What was collected, for a file that cannot be used.
    pub(crate) fn rejected(self) -> Rejected {
        Rejected {
            errors: self.errors,
            warnings: self.warnings,
        }
    }

    pub(crate) fn error(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(Diagnostic {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    pub(crate) fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(Diagnostic {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    /// The path of member `camel` of the object at `parent`, in the file's spelling (for a
    /// member that is not there to take its spelling from).
    pub(crate) fn member(&self, parent: &str, camel: &str) -> String {
        if self.kebab {
            join(parent, &kebab(camel))
        } else {
            join(parent, camel)
        }
    }
}

/// Whether a parsed file spells its members in kebab-case, as the OCI CLI prints them: decided
/// by its member names that have more than one word (`path-prefix` against `pathPrefix`), not
/// counting maps whose names are data (tags, media types).
pub(crate) fn spelled_kebab(value: &Value) -> bool {
    const DATA_MAPS: &[&str] = &[
        "freeformTags",
        "freeform-tags",
        "definedTags",
        "defined-tags",
        "systemTags",
        "system-tags",
        "content",
        "parameters",
    ];
    let (mut kebab_names, mut camel_names) = (0usize, 0usize);
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::Object(map) => {
                for (name, child) in map {
                    match name_style(name) {
                        Some(true) => kebab_names += 1,
                        Some(false) => camel_names += 1,
                        None => {}
                    }
                    if !DATA_MAPS.contains(&name.as_str()) {
                        pending.push(child);
                    }
                }
            }
            Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
    kebab_names > camel_names
}

/// `Some(true)` for a kebab-case member name, `Some(false)` for camelCase, `None` for a single
/// lowercase word, which reads the same in both.
fn name_style(name: &str) -> Option<bool> {
    if name.contains('-') && !name.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(true)
    } else if !name.contains('-') && name.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(false)
    } else {
        None
    }
}

pub(crate) fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

/// The kebab-case spelling the OCI CLI prints for an SDK member name.
pub(crate) fn kebab(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('-');
            out.push(c.to_ascii_lowercase());
        } else if c == '_' {
            out.push('-');
        } else {
            out.push(c);
        }
    }
    out
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A member that is present and not null.
#[derive(Debug, Clone)]
pub(crate) struct Field<'v> {
    pub(crate) value: &'v Value,
    pub(crate) path: String,
}

impl<'v> Field<'v> {
    pub(crate) fn root(value: &'v Value, path: &str) -> Self {
        Self {
            value,
            path: path.to_owned(),
        }
    }

    fn wrong(&self, cx: &mut Cx, expected: &str) {
        cx.error(
            &self.path,
            format!("expected {expected}, found {}", describe(self.value)),
        );
    }

    pub(crate) fn str(&self, cx: &mut Cx) -> Option<&'v str> {
        let s = self.value.as_str();
        if s.is_none() {
            self.wrong(cx, "a string");
        }
        s
    }

    pub(crate) fn non_empty_str(&self, cx: &mut Cx) -> Option<&'v str> {
        let s = self.str(cx)?;
        if s.is_empty() {
            cx.error(&self.path, "must not be empty");
            return None;
        }
        Some(s)
    }

    pub(crate) fn bool(&self, cx: &mut Cx) -> Option<bool> {
        let b = self.value.as_bool();
        if b.is_none() {
            self.wrong(cx, "true or false");
        }
        b
    }

    pub(crate) fn number(&self, cx: &mut Cx) -> Option<f64> {
        let n = self.value.as_f64();
        if n.is_none() {
            self.wrong(cx, "a number");
        }
        n
    }

    /// A number within `min..=max`, with the limit named when out of range.
    pub(crate) fn number_in(&self, cx: &mut Cx, min: f64, max: f64) -> Option<f64> {
        let n = self.number(cx)?;
        if n < min {
            cx.error(
                &self.path,
                format!("{} is below the minimum {}", self.value, fmt_num(min)),
            );
            None
        } else if n > max {
            cx.error(
                &self.path,
                format!("{} is above the maximum {}", self.value, fmt_num(max)),
            );
            None
        } else {
            Some(n)
        }
    }

    /// A whole number within `min..=max`.
    pub(crate) fn integer_in(&self, cx: &mut Cx, min: i64, max: i64) -> Option<i64> {
        let Some(n) = self.value.as_i64() else {
            self.wrong(cx, "a whole number");
            return None;
        };
        if n < min {
            cx.error(&self.path, format!("{n} is below the minimum {min}"));
            None
        } else if n > max {
            cx.error(&self.path, format!("{n} is above the maximum {max}"));
            None
        } else {
            Some(n)
        }
    }

    pub(crate) fn array(&self, cx: &mut Cx) -> Option<Vec<Field<'v>>> {
        let Some(items) = self.value.as_array() else {
            self.wrong(cx, "an array");
            return None;
        };
        Some(
            items
                .iter()
                .enumerate()
                .map(|(i, value)| Field {
                    value,
                    path: format!("{}[{i}]", self.path),
                })
                .collect(),
        )
    }

    /// An array of at most `max` items.
    pub(crate) fn array_max(&self, cx: &mut Cx, max: usize) -> Option<Vec<Field<'v>>> {
        let items = self.array(cx)?;
        if items.len() > max {
            cx.error(
                &self.path,
                format!("{} entries is above the maximum {max}", items.len()),
            );
        }
        Some(items)
    }

    /// An array of strings, with each wrong item reported.
    pub(crate) fn strings(&self, cx: &mut Cx, max: usize) -> Option<Vec<String>> {
        let items = self.array_max(cx, max)?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(item.str(cx)?.to_owned());
        }
        Some(out)
    }

    /// The members of an object whose names are data (media types, parameter names), in order.
    pub(crate) fn entries(&self, cx: &mut Cx) -> Option<Vec<(&'v str, Field<'v>)>> {
        let Some(map) = self.value.as_object() else {
            self.wrong(cx, "an object");
            return None;
        };
        Some(
            map.iter()
                .map(|(name, value)| {
                    (
                        name.as_str(),
                        Field {
                            value,
                            path: join(&self.path, name),
                        },
                    )
                })
                .collect(),
        )
    }

    pub(crate) fn object(&self, cx: &mut Cx) -> Option<Obj<'v>> {
        let Some(map) = self.value.as_object() else {
            self.wrong(cx, "an object");
            return None;
        };
        Some(Obj {
            map,
            path: self.path.clone(),
            seen: Vec::new(),
        })
    }
}

fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// SDK member names that are Python keywords, which the Python SDK prefixes with `_`.
const PYTHON_KEYWORDS: &[&str] = &["from"];

/// An object being read member by member; [`Obj::finish`] reports the members nobody asked for.
#[derive(Debug)]
pub(crate) struct Obj<'v> {
    map: &'v Map<String, Value>,
    pub(crate) path: String,
    seen: Vec<&'v str>,
}

impl<'v> Obj<'v> {
    /// The member with SDK name `camel` (or its kebab-case spelling), if present and not null.
    ///
    /// A member whose name is a Python keyword (`from`) is `_from` in the SDK's Python model, so
    /// the CLI, which turns `_` into `-`, prints it as `-from`: that spelling is the kebab one.
    pub(crate) fn take(&mut self, camel: &str) -> Option<Field<'v>> {
        let (name, value) = self.find(camel)?;
        self.seen.push(name.as_str());
        if value.is_null() {
            return None;
        }
        Some(Field {
            value,
            path: join(&self.path, name),
        })
    }

    /// The member with SDK name `camel` in any of its spellings, null or not.
    fn find(&self, camel: &str) -> Option<(&'v String, &'v Value)> {
        let map = self.map;
        map.get_key_value(camel)
            .or_else(|| map.get_key_value(kebab(camel).as_str()))
            .or_else(|| {
                PYTHON_KEYWORDS
                    .contains(&camel)
                    .then(|| map.get_key_value(format!("-{camel}").as_str()))
                    .flatten()
            })
    }

    /// Like [`Obj::take`], but a missing member is an error named by the path it should have had.
    pub(crate) fn require(&mut self, cx: &mut Cx, camel: &str) -> Option<Field<'v>> {
        let field = self.take(camel);
        if field.is_none() {
            let path = self.member_path(cx, camel);
            cx.error(&path, "is required");
        }
        field
    }

    /// The path member `camel` has (or would have) here: as written when present (even null),
    /// else in the spelling of this object's other members, else in the file's.
    pub(crate) fn member_path(&self, cx: &Cx, camel: &str) -> String {
        if let Some((name, _)) = self.find(camel) {
            return join(&self.path, name);
        }
        let kebab_name = kebab(camel);
        let styles: Vec<bool> = self.map.keys().filter_map(|k| name_style(k)).collect();
        let spelled_kebab = match (styles.contains(&true), styles.contains(&false)) {
            (true, false) => true,
            (false, true) => false,
            _ => cx.kebab,
        };
        if spelled_kebab {
            join(&self.path, &kebab_name)
        } else {
            join(&self.path, camel)
        }
    }

    /// Marks members as known without reading them.
    pub(crate) fn ignore(&mut self, camel_names: &[&str]) {
        for camel in camel_names {
            let _ = self.take(camel);
        }
    }

    /// Reports every member that was not read, suggesting a near spelling.
    pub(crate) fn finish(self, cx: &mut Cx, known: &[&str]) {
        for name in self.map.keys() {
            if self.seen.contains(&name.as_str()) {
                continue;
            }
            let hint = known
                .iter()
                .map(|k| (edit_distance(name, k), *k))
                .chain(known.iter().map(|k| (edit_distance(name, &kebab(k)), *k)))
                .filter(|(d, _)| *d <= 2)
                .min_by_key(|(d, _)| *d)
                .map(|(_, k)| format!(" (did you mean '{k}'?)"))
                .unwrap_or_default();
            cx.error(&join(&self.path, name), format!("unknown member{hint}"));
        }
    }
}

/// The resource inside the OCI CLI's read-back, `{"data": {...}, "etag": "..."}` (`oci
/// api-gateway ... get`), the envelope's other members checked. Every resource kind reads it so.
pub(crate) fn read_back<'v>(cx: &mut Cx, root: &Field<'v>) -> Option<Field<'v>> {
    let mut envelope = root.object(cx)?;
    let data = envelope.require(cx, "data");
    envelope.ignore(&["etag", "opcRequestId"]);
    envelope.finish(cx, &["data", "etag"]);
    data
}

pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            previous = current;
        }
    }
    row[b.len()]
}

/// The `type` of a polymorphic member, one of `allowed`.
pub(crate) fn read_kind<'v>(
    cx: &mut Cx,
    obj: &mut Obj<'v>,
    allowed: &[&str],
    what: &str,
) -> Option<&'v str> {
    let field = obj.require(cx, "type")?;
    read_enum(cx, &field, allowed, what)
}

/// A string that must be one of `allowed`.
pub(crate) fn read_enum<'v>(
    cx: &mut Cx,
    field: &Field<'v>,
    allowed: &[&str],
    what: &str,
) -> Option<&'v str> {
    let value = field.str(cx)?;
    if allowed.contains(&value) {
        Some(value)
    } else {
        cx.error(&field.path, not_one_of(value, allowed, what));
        None
    }
}

/// `'REMOTE_JWKs' is not a key set type (REMOTE_JWKS, STATIC_KEYS); did you mean 'REMOTE_JWKS'?`:
/// the valid values, and the one the writer most likely meant when one is close.
pub(crate) fn not_one_of(value: &str, allowed: &[&str], what: &str) -> String {
    let hint = closest(value, allowed)
        .map(|near| format!("; did you mean '{near}'?"))
        .unwrap_or_default();
    format!("'{value}' is not {what} ({}){hint}", allowed.join(", "))
}

/// The allowed value `value` most likely misspells: the nearest within an edit distance of a
/// quarter of its length, 1 or 2 (the distance ignores case, so the same letters in another
/// case are at 0): `FETCH` is not taken for `PATCH`, nor `OIDC_AUTHENTICATION` for
/// `JWT_AUTHENTICATION`.
fn closest<'a>(value: &str, allowed: &[&'a str]) -> Option<&'a str> {
    let limit = (value.chars().count() / 4).clamp(1, 2);
    allowed
        .iter()
        .map(|a| (edit_distance(value, a), *a))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

/// An optional member that was read: absent is fine (`Some(None)`), present but invalid is not
/// (`None`).
pub(crate) fn optional<T>(read: Option<Option<T>>) -> Option<Option<T>> {
    match read {
        None => Some(None),
        Some(None) => None,
        Some(Some(value)) => Some(Some(value)),
    }
}

pub(crate) fn required_list(cx: &mut Cx, field: &Field<'_>, max: usize) -> Option<Vec<String>> {
    let list = field.strings(cx, max)?;
    if list.is_empty() {
        cx.error(&field.path, "at least one value is required");
        return None;
    }
    for (i, value) in list.iter().enumerate() {
        if value.is_empty() {
            cx.error(&format!("{}[{i}]", field.path), "must not be empty");
        }
    }
    Some(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kebab_spelling_matches_the_oci_cli() {
        assert_eq!(kebab("maxClockSkewInSeconds"), "max-clock-skew-in-seconds");
        assert_eq!(kebab("isSslVerifyDisabled"), "is-ssl-verify-disabled");
        assert_eq!(kebab("key_ops"), "key-ops");
    }

    #[test]
    fn a_file_is_kebab_when_most_multi_word_names_are() {
        let read_back = serde_json::json!({"data": {"path-prefix": "/v1", "display-name": "x",
            "freeform-tags": {"CostCenter": "1", "TeamName": "2", "OwnerId": "3"},
            "specification": {"routes": []}}});
        assert!(
            spelled_kebab(&read_back),
            "tag names are data, not spelling"
        );
        let camel = serde_json::json!({"pathPrefix": "/v1", "specification": {"routes": [
            {"requestPolicies": {"bodyValidation": {"content": {"application/x-www-form-urlencoded": {}}}}}]}});
        assert!(!spelled_kebab(&camel), "media types are data, not spelling");
    }

    #[test]
    fn the_clis_dash_from_is_from() {
        let value: Value = serde_json::json!({"-from": "X-A", "to": "X-B"});
        let mut cx = Cx::default();
        let mut obj = Field::root(&value, "item").object(&mut cx).unwrap();
        assert_eq!(obj.take("from").unwrap().path, "item.-from");
        obj.ignore(&["to"]);
        obj.finish(&mut cx, &["from", "to"]);
        assert!(cx.errors.is_empty(), "{:?}", cx.errors);
    }

    #[test]
    fn unknown_members_get_a_suggestion() {
        let value: Value = serde_json::json!({"audience": ["a"]});
        let mut cx = Cx::default();
        let obj = Field::root(&value, "auth").object(&mut cx).unwrap();
        obj.finish(&mut cx, &["audiences", "issuers"]);
        assert_eq!(
            cx.errors[0].to_string(),
            "auth.audience: unknown member (did you mean 'audiences'?)"
        );
    }
}
