//! What every OCI resource file shares, whatever its kind: one resource or a JSON array of them,
//! bare (the GET shape, or `Create*Details` plus `id`) or inside the OCI CLI's `{"data": ...}`
//! read-back, with `lifecycleState` deciding whether the resource is in effect.

use crate::deployment::MAX_FILE_BYTES;
use crate::reader::{read_back, read_enum, spelled_kebab, Cx, Diagnostic, Field, Obj, Rejected};
use claimgate_jose::json;
use serde_json::Value;

/// The resources of one file that are in effect, and the warnings about the file.
#[derive(Debug, Clone)]
pub struct LoadedResources<T> {
    pub resources: Vec<T>,
    pub warnings: Vec<Diagnostic>,
}

/// OCI's `lifecycleState` values (the same enum for every API Gateway resource).
const LIFECYCLE_STATES: &[&str] = &[
    "CREATING", "ACTIVE", "UPDATING", "DELETING", "DELETED", "FAILED",
];

/// Members of the GET shape that say nothing about behaviour: read back, never used.
pub(crate) const INERT_MEMBERS: &[&str] = &[
    "compartmentId",
    "lifecycleDetails",
    "timeCreated",
    "timeUpdated",
    "locks",
    "freeformTags",
    "definedTags",
    "systemTags",
];

/// A resource kind: its name in messages and the reader of its members (everything but the
/// members of [`read_header`] and [`INERT_MEMBERS`]).
pub(crate) struct Kind<T> {
    /// `usage plan`, `subscriber`.
    pub(crate) noun: &'static str,
    /// Reads the kind's own members from the object, after `id`, `displayName` and the
    /// lifecycle have been taken, and finishes it.
    pub(crate) read: fn(&mut Cx, Obj<'_>, Header) -> Option<T>,
}

/// The members every resource has.
pub(crate) struct Header {
    pub(crate) id: String,
    /// `displayName`, else the id.
    pub(crate) name: String,
}

/// Reads a file of resources of one kind; every problem of every resource is reported.
pub(crate) fn load<T>(text: &str, kind: &Kind<T>) -> Result<LoadedResources<T>, Rejected> {
    let mut cx = Cx::default();
    if text.len() > MAX_FILE_BYTES {
        cx.error(
            "",
            format!(
                "the file is {} bytes; claimgate reads {} files up to {MAX_FILE_BYTES}",
                text.len(),
                kind.noun
            ),
        );
        return Err(cx.rejected());
    }
    let value = match json::parse_value(text.as_bytes(), 64) {
        Ok(value) => value,
        Err(error) => {
            cx.error("", format!("not a {} file: {error}", kind.noun));
            return Err(cx.rejected());
        }
    };
    cx.kebab = spelled_kebab(&value);
    let mut resources = Vec::new();
    let root = Field::root(&value, "");
    match &value {
        Value::Object(map) if map.contains_key("data") => {
            // `oci api-gateway usage-plan get`: {"data": {...}, "etag": "..."}
            if let Some(data) = read_back(&mut cx, &root) {
                read_one_or_many(&mut cx, &data, kind, &mut resources);
            }
        }
        Value::Object(_) | Value::Array(_) => {
            read_one_or_many(&mut cx, &root, kind, &mut resources);
        }
        _ => cx.error(
            "",
            format!(
                "not a {} file: expected a JSON object, an array of them, or the CLI's {{\"data\": ...}}",
                kind.noun
            ),
        ),
    }
    if cx.errors.is_empty() {
        Ok(LoadedResources {
            resources,
            warnings: cx.warnings,
        })
    } else {
        Err(cx.rejected())
    }
}

fn read_one_or_many<T>(cx: &mut Cx, field: &Field<'_>, kind: &Kind<T>, out: &mut Vec<T>) {
    if field.value.is_array() {
        for item in field.array(cx).unwrap_or_default() {
            if let Some(resource) = read_resource(cx, &item, kind) {
                out.push(resource);
            }
        }
    } else if let Some(resource) = read_resource(cx, field, kind) {
        out.push(resource);
    }
}

/// One resource; `None` when it is invalid or not `ACTIVE` (warned).
fn read_resource<T>(cx: &mut Cx, field: &Field<'_>, kind: &Kind<T>) -> Option<T> {
    let mut obj = field.object(cx)?;
    let id = obj
        .require(cx, "id")
        .and_then(|f| f.non_empty_str(cx))
        .map(str::to_owned);
    let name = obj
        .take("displayName")
        .and_then(|f| f.str(cx))
        .map(str::to_owned);
    let active = match obj.take("lifecycleState") {
        None => true,
        Some(f) => match read_enum(cx, &f, LIFECYCLE_STATES, "a lifecycle state") {
            Some("ACTIVE") | None => true,
            Some(state) => {
                cx.warn(
                    &f.path,
                    format!("is {state}, not ACTIVE: this {} is skipped", kind.noun),
                );
                false
            }
        },
    };
    obj.ignore(INERT_MEMBERS);
    // The reader runs even without an id, so every problem is reported at once.
    let header = Header {
        name: name.or_else(|| id.clone()).unwrap_or_default(),
        id: id.clone().unwrap_or_default(),
    };
    let resource = (kind.read)(cx, obj, header);
    id?;
    resource.filter(|_| active)
}

/// Reports the members of a resource nobody read: `own` are the kind's members, the header's
/// and the inert ones are known to every kind.
pub(crate) fn finish(cx: &mut Cx, obj: Obj<'_>, own: &[&str]) {
    let mut known: Vec<&str> = vec!["id", "displayName", "lifecycleState"];
    known.extend_from_slice(own);
    known.extend_from_slice(INERT_MEMBERS);
    obj.finish(cx, &known);
}
