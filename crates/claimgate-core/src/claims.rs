//! A token's claims as the verdict reads them: the packed form lives in `claimgate-jose`, which
//! builds it while parsing a token; this module renders a claim as context variables show it.

pub use claimgate_jose::{ClaimRef, Claims, Registered};
use serde_json::Value;

/// A claim as text, as context variables render it: strings as they are, everything else as
/// JSON.
pub fn claim_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
