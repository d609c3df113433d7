//! Printing for people (colour only on a terminal, never with `NO_COLOR`) and for scripts (one
//! JSON document with `"version": 1`). Values printed for people go through
//! [`claimgate_core::escape`] (control characters shown escaped: a claim cannot clear the
//! screen or forge a line); JSON escapes by itself and keeps the value.

use crate::input::InputError;
use claimgate_core::Escaped;
use serde_json::{json, Value};
use std::io::IsTerminal as _;

/// Whether stdout gets ANSI colour.
pub(crate) fn colour_enabled() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// A tiny palette that prints plain text when colour is off.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Paint(pub(crate) bool);

impl Paint {
    fn wrap(self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
    pub(crate) fn green(self, t: &str) -> String {
        self.wrap("32", t)
    }
    pub(crate) fn red(self, t: &str) -> String {
        self.wrap("31;1", t)
    }
    pub(crate) fn dim(self, t: &str) -> String {
        self.wrap("2", t)
    }
    pub(crate) fn bold(self, t: &str) -> String {
        self.wrap("1", t)
    }
    pub(crate) fn yellow(self, t: &str) -> String {
        self.wrap("33", t)
    }
}

/// Prints a JSON document with its version.
pub(crate) fn print_json(document: Value) {
    outln!(
        "{}",
        serde_json::to_string_pretty(&versioned(document)).unwrap_or_default()
    );
}

/// The document with `"version": 1` first, as every JSON output has it.
pub(crate) fn versioned(document: Value) -> Value {
    let mut ordered = serde_json::Map::new();
    ordered.insert("version".into(), json!(1));
    if let Value::Object(map) = document {
        for (k, v) in map {
            if k != "version" {
                ordered.insert(k, v);
            }
        }
    }
    Value::Object(ordered)
}

/// Prints a value as indented JSON for people. serde escapes C0 controls inside strings but not
/// DEL, C1 or the bidirectional controls, so each line is escaped too; the only raw newlines of
/// pretty JSON are its layout's.
pub(crate) fn print_pretty_json(value: &impl serde::Serialize) {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    for line in text.lines() {
        outln!("{}", Escaped(line));
    }
}

/// Reports an input error as text on stderr or as the JSON error document on stdout.
pub(crate) fn report_error(error: &InputError, json_output: bool) {
    if json_output {
        print_json(json!({"error": {"message": error.message, "details": error.details}}));
    } else {
        // Messages quote file names, file contents and arguments.
        eprintln!("claimgate: {}", Escaped(&error.message));
        for detail in &error.details {
            eprintln!("  {}", Escaped(detail));
        }
    }
}
