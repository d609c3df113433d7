//! `claimgate logs`: the records of one request, from claimgate's own log files or from logs
//! exported from OCI Logging, followed by the diagnosis (failed checks and their fixes).

use crate::input::InputError;
use crate::output::{colour_enabled, print_json, report_error, Paint};
use crate::{exit, Format};
use claimgate_core::Escaped;
use serde_json::{json, Value};

#[derive(Debug, clap::Args)]
pub(crate) struct LogsArgs {
    /// A log file (repeatable): JSON lines, or a JSON array as OCI Logging exports it.
    #[arg(long = "file", required = true, value_name = "FILE")]
    files: Vec<String>,
    /// The opc-request-id of the request.
    #[arg(long, value_name = "ID")]
    request_id: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    output: Format,
}

/// Reads records from one file: a JSON array, or one JSON object a line. OCI Logging exports
/// wrap each record as `{"datetime": ..., "logContent": {...}}`; the wrapper is removed.
fn read_records(path: &str) -> Result<Vec<Value>, InputError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::new(format!("cannot read log file '{path}': {e}")))?;
    let trimmed = text.trim_start();
    let raw: Vec<Value> = if trimmed.starts_with('[') {
        match serde_json::from_str::<Value>(trimmed) {
            Ok(Value::Array(items)) => items,
            _ => {
                return Err(InputError::new(format!(
                    "'{path}' starts with '[' but is not a JSON array"
                )))
            }
        }
    } else {
        let mut records = Vec::new();
        for (number, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(line).map_err(|e| {
                InputError::new(format!(
                    "{path}:{}: not a JSON log record ({e})",
                    number + 1
                ))
            })?;
            records.push(value);
        }
        records
    };
    Ok(raw
        .into_iter()
        .map(|r| match r.get("logContent") {
            Some(inner) => inner.clone(),
            None => r,
        })
        .collect())
}

/// OCI ids may be composite (`/A.../B...`); a request matches on the whole id or any segment.
fn matches(record_id: &str, wanted: &str) -> bool {
    let wanted = wanted.trim_matches('/');
    let record_id = record_id.trim_matches('/');
    record_id == wanted
        || record_id.split('/').any(|part| part == wanted)
        || wanted.split('/').any(|part| part == record_id)
}

pub(crate) fn run(args: &LogsArgs) -> u8 {
    let json_output = args.output == Format::Json;
    let mut records = Vec::new();
    for file in &args.files {
        match read_records(file) {
            Ok(found) => records.extend(found),
            Err(error) => {
                report_error(&error, json_output);
                return exit::USAGE;
            }
        }
    }
    let mut mine: Vec<Value> = records
        .into_iter()
        .filter(|r| {
            r["data"]["opcRequestId"]
                .as_str()
                .is_some_and(|id| matches(id, &args.request_id))
        })
        .collect();
    mine.sort_by(|a, b| {
        a["time"]
            .as_str()
            .unwrap_or("")
            .cmp(b["time"].as_str().unwrap_or(""))
    });
    let failures: Vec<&Value> = mine
        .iter()
        .filter(|r| {
            r["data"]["code"].as_str().is_some_and(|c| {
                c.ends_with("authenticationFailed")
                    || c == "authorization.unauthorizedRequest"
                    || c.ends_with("badJsonWebKeySet")
                    || c.starts_with("httpBackend.")
            })
        })
        .collect();
    if json_output {
        let diagnosis: Vec<Value> = failures
            .iter()
            .map(|r| json!({"code": r["data"]["code"], "check": r["data"]["check"], "message": r["data"]["message"], "expected": r["data"]["expected"], "actual": r["data"]["actual"], "fix": r["data"]["fix"]}))
            .collect();
        print_json(json!({"requestId": args.request_id, "records": mine, "diagnosis": diagnosis}));
        return if mine.is_empty() {
            exit::DENIED
        } else {
            exit::OK
        };
    }
    if mine.is_empty() {
        eprintln!(
            "no record has opcRequestId '{}' in {}",
            Escaped(&args.request_id),
            Escaped(&args.files.join(", "))
        );
        return exit::DENIED;
    }
    // Every value below comes from the log files, and so from requests and tokens: printed
    // escaped, so a claim cannot clear the screen or forge a "diagnosis" line.
    let text = |value: &Value| Escaped(value.as_str().unwrap_or("")).to_string();
    let json = |value: &Value| Escaped(&value.to_string()).to_string();
    let p = Paint(colour_enabled());
    outln!(
        "{} record{} for request {}:",
        mine.len(),
        if mine.len() == 1 { "" } else { "s" },
        Escaped(&args.request_id)
    );
    for record in &mine {
        let data = &record["data"];
        let time = text(&record["time"]);
        let kind = record["type"].as_str().unwrap_or("");
        if kind.ends_with(".access") {
            outln!(
                "  {time}  access     {} → {}",
                text(&data["message"]),
                json(&data["status"])
            );
        } else {
            let level = data["level"].as_str().unwrap_or("");
            let level = match level {
                "ERROR" => p.red(level),
                "WARN" => p.yellow(level),
                other => Escaped(other).to_string(),
            };
            outln!(
                "  {time}  {level:<5}  {}  {}",
                text(&data["code"]),
                text(&data["message"])
            );
        }
    }
    outln!();
    if failures.is_empty() {
        outln!(
            "{}",
            p.green("diagnosis: no failure recorded for this request")
        );
    } else {
        outln!("{}", p.bold("diagnosis:"));
        for record in failures {
            let data = &record["data"];
            let check = data["check"]
                .as_str()
                .map(|c| format!("{}: ", Escaped(c)))
                .unwrap_or_default();
            outln!("  {} {check}{}", p.red("✗"), text(&data["message"]));
            if !data["expected"].is_null() {
                outln!("      expected  {}", json(&data["expected"]));
            }
            if !data["actual"].is_null() {
                outln!("      actual    {}", json(&data["actual"]));
            }
            if let Some(fix) = data["fix"].as_str() {
                outln!("      fix       {}", Escaped(fix));
            }
            if let Some(cause) = data["cause"].as_str() {
                outln!("      cause     {}", Escaped(cause));
            }
        }
    }
    exit::OK
}
