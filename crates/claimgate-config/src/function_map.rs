//! The functions file (`--functions`): the URL that invokes each OCI function a deployment
//! names (`CUSTOM_AUTHENTICATION` authorizers, `ORACLE_FUNCTIONS_BACKEND`s). OCI Functions are
//! reached over HTTP, so a function under development runs beside claimgate on a laptop and
//! the deployment file keeps the OCID it will have in OCI.
//!
//! The file is a JSON object mapping each function OCID to an `http://` or `https://` URL:
//! `{"ocid1.fnfunc.oc1..abc": "http://127.0.0.1:8081/authorize"}`.

use crate::deployment::MAX_FILE_BYTES;
use crate::model::Deployment;
use crate::reader::{Cx, Diagnostic, Field, Rejected};
use claimgate_jose::json;
use serde_json::Value;
use std::collections::BTreeMap;

/// Function OCIDs and the URLs that invoke them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionMap {
    urls: BTreeMap<String, String>,
}

impl FunctionMap {
    /// The URL that invokes function `ocid`.
    pub fn url(&self, ocid: &str) -> Option<&str> {
        self.urls.get(ocid).map(String::as_str)
    }

    /// How many functions the map names.
    pub fn len(&self) -> usize {
        self.urls.len()
    }

    /// Whether the map names no function.
    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }

    /// The functions `deployment` names that this map lacks, as `path: 'ocid'` lines (a
    /// deployment calling an unknown function could never be served as written).
    pub fn missing(&self, deployment: &Deployment) -> Vec<String> {
        deployment
            .function_refs
            .iter()
            .filter(|r| !self.urls.contains_key(&r.function_id))
            .map(|r| format!("{}: '{}'", r.path, r.function_id))
            .collect()
    }
}

/// A functions file that was read, with its warnings.
#[derive(Debug, Clone)]
pub struct LoadedFunctions {
    pub functions: FunctionMap,
    pub warnings: Vec<Diagnostic>,
}

/// Reads a functions file; every problem is reported at once, with its JSON path.
pub fn load_function_map_str(text: &str) -> Result<LoadedFunctions, Rejected> {
    let mut cx = Cx::default();
    if text.len() > MAX_FILE_BYTES {
        cx.error(
            "",
            format!(
                "the file is {} bytes; claimgate reads functions files up to {MAX_FILE_BYTES}",
                text.len()
            ),
        );
        return Err(cx.rejected());
    }
    let value = match json::parse_value(text.as_bytes(), 8) {
        Ok(value) => value,
        Err(error) => {
            cx.error("", format!("not a functions file: {error}"));
            return Err(cx.rejected());
        }
    };
    if !value.is_object() {
        cx.error(
            "",
            "not a functions file: expected a JSON object mapping function OCIDs to URLs \
             ({\"ocid1.fnfunc.oc1..abc\": \"http://127.0.0.1:8081/\"})",
        );
        return Err(cx.rejected());
    }
    let root = Field::root(&value, "");
    let mut urls = BTreeMap::new();
    for (ocid, field) in root.entries(&mut cx).unwrap_or_default() {
        if ocid.trim().is_empty() {
            cx.error(&field.path, "a function OCID cannot be empty");
            continue;
        }
        if !ocid.starts_with("ocid1.fnfunc.") {
            cx.warn(
                &field.path,
                "is not a function OCID (ocid1.fnfunc...): no deployment written for OCI names \
                 it",
            );
        }
        if let Some(url) = read_url(&mut cx, &field) {
            urls.insert(ocid.to_owned(), url);
        }
    }
    if cx.errors.is_empty() {
        Ok(LoadedFunctions {
            functions: FunctionMap { urls },
            warnings: cx.warnings,
        })
    } else {
        Err(cx.rejected())
    }
}

/// An absolute `http://` or `https://` URL with a host, no user information and no fragment.
fn read_url(cx: &mut Cx, field: &Field<'_>) -> Option<String> {
    let Value::String(url) = field.value else {
        cx.error(&field.path, "expected the function's URL (a string)");
        return None;
    };
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        cx.error(
            &field.path,
            format!("'{url}' must start with http:// or https://"),
        );
        return None;
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.contains('@') {
        // Not echoed: the user information may hold a password.
        cx.error(
            &field.path,
            "the URL carries user information (user:password@); functions are called without \
             credentials in the URL",
        );
        return None;
    }
    let problem = if authority.is_empty() {
        Some("has no host")
    } else if url.contains('#') {
        Some("has a fragment")
    } else if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("contains spaces or control characters")
    } else {
        None
    };
    match problem {
        Some(problem) => {
            cx.error(&field.path, format!("'{url}' {problem}"));
            None
        }
        None => Some(url.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        load_function_map_str(text)
            .unwrap_err()
            .errors
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_map_of_ocids_to_urls_is_read_and_looked_up() {
        let loaded = load_function_map_str(
            r#"{"ocid1.fnfunc.oc1..auth": "http://127.0.0.1:8081/authorize",
                "ocid1.fnfunc.oc1..hello": "https://functions.internal/hello?x=1"}"#,
        )
        .unwrap();
        assert!(loaded.warnings.is_empty());
        assert_eq!(loaded.functions.len(), 2);
        assert_eq!(
            loaded.functions.url("ocid1.fnfunc.oc1..auth"),
            Some("http://127.0.0.1:8081/authorize")
        );
        assert_eq!(loaded.functions.url("ocid1.fnfunc.oc1..other"), None);
    }

    #[test]
    fn every_bad_entry_is_reported_at_its_path() {
        let found = errors(
            r#"{"ocid1.fnfunc.oc1..a": "ftp://host/x", "ocid1.fnfunc.oc1..b": 8081,
                "ocid1.fnfunc.oc1..c": "http://user:pw@host/", "ocid1.fnfunc.oc1..d": "http:///x",
                "": "http://127.0.0.1/"}"#,
        );
        assert_eq!(found.len(), 5, "{found:#?}");
        assert!(
            found[0].contains("must start with http:// or https://"),
            "{found:#?}"
        );
        assert!(found
            .iter()
            .any(|e| e.contains("expected the function's URL")));
        assert!(found.iter().any(|e| e.contains("carries user information")));
        assert!(found.iter().any(|e| e.contains("has no host")));
        assert!(found.iter().any(|e| e.contains("cannot be empty")));
        assert!(
            !found.iter().any(|e| e.contains("pw@")),
            "a password was echoed: {found:#?}"
        );
    }

    #[test]
    fn not_an_object_or_not_json_is_a_clear_error() {
        assert!(errors("[]")[0].contains("expected a JSON object mapping function OCIDs"));
        assert!(errors("{")[0].contains("not a functions file"));
        assert!(
            errors(r#"{"a": "http://x/", "a": "http://y/"}"#)[0].contains("not a functions file")
        );
    }

    #[test]
    fn a_key_that_is_not_a_function_ocid_is_warned_about() {
        let loaded =
            load_function_map_str(r#"{"my-authorizer": "http://127.0.0.1:8081/"}"#).unwrap();
        assert_eq!(loaded.warnings.len(), 1);
        assert!(loaded.warnings[0]
            .to_string()
            .contains("is not a function OCID"));
    }
}
