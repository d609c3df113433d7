//! The secrets file (`--secrets`): client secrets that deployment files name by Vault secret id
//! (`clientDetails.clientSecretId`) and never contain.
//!
//! The file is a JSON object mapping each secret id either to its value (a string) or to an
//! object mapping version numbers (as strings) to values. `clientSecretVersionNumber` picks the
//! version, else the highest is used. Messages name ids and versions, never values.
//!
//! A value may also be a JSON object holding `username` or `password` (the credentials of a
//! response-cache server, which OCI keeps in Vault as that JSON text): it stands for its JSON
//! text, so it is read as if it had been written as a string.

use crate::model::{Deployment, SecretRef};
use crate::reader::Diagnostic;
use claimgate_jose::json;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// A parsed secrets file. Its `Debug` shows the ids only.
#[derive(Clone, Default)]
pub struct Secrets {
    entries: BTreeMap<String, Entry>,
}

#[derive(Clone)]
enum Entry {
    /// One value, whatever the version asked for.
    Value(String),
    Versions(BTreeMap<u64, String>),
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("ids", &self.entries.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Secrets {
    /// Parses a secrets file (strict JSON, no duplicate members).
    pub fn parse(text: &str) -> Result<Self, String> {
        let value = json::parse_value(text.as_bytes(), 8)
            .map_err(|e| format!("not a secrets file: {e}"))?;
        let Value::Object(map) = value else {
            return Err(
                "not a secrets file: expected a JSON object mapping secret ids to \
                        values"
                    .into(),
            );
        };
        let mut entries = BTreeMap::new();
        for (id, value) in map {
            let entry = match value {
                Value::String(secret) => Entry::Value(secret),
                Value::Object(credentials) if is_credentials(&credentials) => {
                    Entry::Value(Value::Object(credentials).to_string())
                }
                Value::Object(versions) => {
                    let mut out = BTreeMap::new();
                    for (version, secret) in versions {
                        let number =
                            version
                                .parse::<u64>()
                                .ok()
                                .filter(|n| *n >= 1)
                                .ok_or_else(|| {
                                    format!(
                                    "secret '{id}': '{version}' is not a version number (1, 2, \
                                     ...)"
                                )
                                })?;
                        let secret = match secret {
                            Value::String(secret) => secret,
                            Value::Object(c) if is_credentials(&c) => Value::Object(c).to_string(),
                            _ => {
                                return Err(format!(
                                    "secret '{id}' version {number}: expected a string"
                                ))
                            }
                        };
                        out.insert(number, secret);
                    }
                    if out.is_empty() {
                        return Err(format!("secret '{id}' has no versions"));
                    }
                    Entry::Versions(out)
                }
                _ => {
                    return Err(format!(
                        "secret '{id}': expected a string, or an object of versions"
                    ))
                }
            };
            entries.insert(id, entry);
        }
        Ok(Self { entries })
    }

    /// The value of a secret: the given version, else the highest. The error names the id and
    /// the version, never a value.
    pub fn resolve(&self, id: &str, version: Option<u64>) -> Result<&str, String> {
        match (self.entries.get(id), version) {
            (None, _) => Err(format!("secret '{id}' is not in the secrets file")),
            (Some(Entry::Value(secret)), _) => Ok(secret),
            (Some(Entry::Versions(versions)), Some(v)) => {
                versions.get(&v).map(String::as_str).ok_or_else(|| {
                    format!(
                        "secret '{id}' has no version {v} in the secrets file (it has {})",
                        versions
                            .keys()
                            .map(u64::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
            }
            (Some(Entry::Versions(versions)), None) => versions
                .values()
                .next_back()
                .map(String::as_str)
                .ok_or_else(|| format!("secret '{id}' has no versions")),
        }
    }

    /// An error for every secret a deployment names that this file cannot resolve.
    pub fn check(&self, deployment: &Deployment) -> Vec<Diagnostic> {
        deployment
            .secret_refs
            .iter()
            .filter_map(|r: &SecretRef| {
                self.resolve(&r.secret_id, r.version)
                    .err()
                    .map(|message| Diagnostic {
                        path: r.path.clone(),
                        message,
                    })
            })
            .collect()
    }
}

/// Whether an object is a credentials value (`{"username": ..., "password": ...}`) rather
/// than a map of versions.
fn is_credentials(object: &serde_json::Map<String, Value>) -> bool {
    object.contains_key("password") || object.contains_key("username")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_values_and_versions_and_never_prints_values() {
        let secrets = Secrets::parse(
            r#"{"plain": "s3cret", "versioned": {"1": "old-value", "3": "new-value"}}"#,
        )
        .unwrap();
        assert_eq!(secrets.resolve("plain", Some(7)), Ok("s3cret"));
        assert_eq!(secrets.resolve("versioned", None), Ok("new-value"));
        assert_eq!(secrets.resolve("versioned", Some(1)), Ok("old-value"));
        assert_eq!(
            secrets.resolve("versioned", Some(2)),
            Err("secret 'versioned' has no version 2 in the secrets file (it has 1, 3)".into())
        );
        assert_eq!(
            secrets.resolve("missing", None),
            Err("secret 'missing' is not in the secrets file".into())
        );
        let credentials = Secrets::parse(
            r#"{"cache": {"username": "app", "password": "pw"}, "cache2": {"2": {"password": "pw2"}}}"#,
        )
        .unwrap();
        let text = credentials.resolve("cache", Some(1)).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(text).unwrap(),
            serde_json::json!({"username": "app", "password": "pw"})
        );
        assert_eq!(
            credentials.resolve("cache2", Some(2)),
            Ok(r#"{"password":"pw2"}"#)
        );
        let debug = format!("{secrets:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("value"),
            "{debug}"
        );
    }

    #[test]
    fn refuses_malformed_files_without_echoing_values() {
        for (text, error) in [
            (
                "[]",
                "not a secrets file: expected a JSON object mapping secret ids to values",
            ),
            (
                r#"{"a": 1}"#,
                "secret 'a': expected a string, or an object of versions",
            ),
            (
                r#"{"a": {"v1": "x"}}"#,
                "secret 'a': 'v1' is not a version number (1, 2, ...)",
            ),
            (
                r#"{"a": {"0": "x"}}"#,
                "secret 'a': '0' is not a version number (1, 2, ...)",
            ),
            (
                r#"{"a": {"1": 2}}"#,
                "secret 'a' version 1: expected a string",
            ),
            (r#"{"a": {}}"#, "secret 'a' has no versions"),
        ] {
            assert_eq!(Secrets::parse(text).unwrap_err(), error, "{text}");
        }
    }
}
