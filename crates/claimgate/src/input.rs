//! Reading what the user gives: tokens (`TOKEN`, `@FILE`, `-`), times, requests and
//! deployment files.

use claimgate_config::{load_str, Diagnostic, LoadOptions, Loaded};
use claimgate_core::UnixTime;
use std::io::Read as _;
use std::path::Path;

/// A problem with the user's input, with details (one per line).
#[derive(Debug)]
pub(crate) struct InputError {
    pub(crate) message: String,
    pub(crate) details: Vec<String>,
}

impl InputError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            details: Vec::new(),
        }
    }
}

/// Reads a token argument: the token itself, `@FILE`, or `-` for stdin. Surrounding white
/// space and a leading `Bearer ` are dropped.
pub(crate) fn read_token(arg: &str) -> Result<String, InputError> {
    let raw = if arg == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| InputError::new(format!("cannot read the token from stdin: {e}")))?;
        text
    } else if let Some(path) = arg.strip_prefix('@') {
        std::fs::read_to_string(path)
            .map_err(|e| InputError::new(format!("cannot read token file '{path}': {e}")))?
    } else {
        arg.to_owned()
    };
    let trimmed = raw.trim();
    let token = match trimmed.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => trimmed,
    };
    Ok(token.to_owned())
}

/// Parses `--now`: seconds since 1970, or RFC 3339.
pub(crate) fn parse_now(arg: Option<&str>) -> Result<UnixTime, InputError> {
    match arg {
        None => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|_| InputError::new("the system clock is before 1970"))?;
            Ok(UnixTime(now.as_secs() as i64))
        }
        Some(text) => {
            if let Ok(seconds) = text.parse::<i64>() {
                return Ok(UnixTime(seconds));
            }
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .map(|t| UnixTime(t.unix_timestamp()))
                .map_err(|_| {
                    InputError::new(format!(
                        "--now '{text}' is neither seconds since 1970 nor RFC 3339 (e.g. 2026-11-28T16:00:00Z)"
                    ))
                })
        }
    }
}

/// Loads a deployment file, or every error it has.
pub(crate) fn load_deployment(path: &str, path_prefix: Option<&str>) -> Result<Loaded, InputError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::new(format!("cannot read deployment file '{path}': {e}")))?;
    let name = Path::new(path)
        .file_stem()
        .map(|s| s.to_string_lossy().trim_end_matches(".kebab").to_owned())
        .unwrap_or_default();
    let options = LoadOptions {
        path_prefix: path_prefix.map(str::to_owned),
        name,
    };
    load_str(&text, &options).map_err(|rejected| InputError {
        message: format!(
            "{path}: the deployment file is not valid ({} problem{})",
            rejected.errors.len(),
            plural(rejected.errors.len())
        ),
        details: rejected.errors.iter().map(Diagnostic::to_string).collect(),
    })
}

pub(crate) fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
