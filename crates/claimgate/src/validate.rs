//! `claimgate validate`: load deployment files the way `check` and `serve` do, and report every
//! error with its JSON path, and every warning.

use crate::input::plural;
use crate::output::{colour_enabled, print_json, Paint};
use crate::{exit, Format};
use claimgate_config::{load_str, Diagnostic, LoadOptions};
use serde_json::json;
use std::path::Path;

#[derive(Debug, clap::Args)]
pub(crate) struct ValidateArgs {
    /// Deployment files.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<String>,
    /// The path prefix of bare specifications (default /).
    #[arg(long, value_name = "PREFIX")]
    path_prefix: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    output: Format,
}

fn diagnostics_json(list: &[Diagnostic]) -> serde_json::Value {
    json!(list
        .iter()
        .map(|d| json!({"path": d.path, "message": d.message}))
        .collect::<Vec<_>>())
}

pub(crate) fn run(args: &ValidateArgs) -> u8 {
    let p = Paint(colour_enabled());
    let mut any_error = false;
    let mut reports = Vec::new();
    for file in &args.files {
        let name = Path::new(file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let options = LoadOptions {
            path_prefix: args.path_prefix.clone(),
            name,
        };
        let (errors, warnings) = match std::fs::read_to_string(file) {
            Err(e) => (
                vec![Diagnostic {
                    path: String::new(),
                    message: format!("cannot read the file: {e}"),
                }],
                Vec::new(),
            ),
            Ok(text) => match load_str(&text, &options) {
                Ok(loaded) => (Vec::new(), loaded.warnings),
                Err(rejected) => (rejected.errors, rejected.warnings),
            },
        };
        any_error |= !errors.is_empty();
        if args.output == Format::Json {
            reports.push(json!({"file": file, "valid": errors.is_empty(), "errors": diagnostics_json(&errors), "warnings": diagnostics_json(&warnings)}));
            continue;
        }
        if errors.is_empty() {
            println!(
                "{} {file}{}",
                p.green("ok"),
                if warnings.is_empty() {
                    String::new()
                } else {
                    format!(" ({} warning{})", warnings.len(), plural(warnings.len()))
                }
            );
        } else {
            println!(
                "{} {file}: {} error{}",
                p.red("invalid"),
                errors.len(),
                plural(errors.len())
            );
        }
        for e in &errors {
            println!("  {} {e}", p.red("error"));
        }
        for w in &warnings {
            println!("  {} {w}", p.yellow("warning"));
        }
    }
    if args.output == Format::Json {
        print_json(json!({"valid": !any_error, "files": reports}));
    }
    if any_error {
        exit::USAGE
    } else {
        exit::OK
    }
}
