//! `claimgate logs`: the records of one request, from claimgate's own log files or from logs
//! exported from OCI Logging, followed by the diagnosis (failed checks and their fixes).

use crate::input::InputError;
use crate::output::{colour_enabled, print_json, report_error, Paint};
use crate::{exit, Format};
use claimgate_core::Escaped;
use serde_json::{json, Value};

#[derive(Debug, clap::Args)]
pub(crate) struct LogsArgs {
    /// A log file (repeatable; - for stdin): JSON lines, a JSON array as OCI Logging exports it,
    /// or `oci logging-search search-logs` output.
    #[arg(long = "file", required = true, value_name = "FILE", value_parser = crate::input::file_arg)]
    files: Vec<String>,
    /// The opc-request-id of the request.
    #[arg(long, value_name = "ID", required_unless_present_any = ["since", "follow"],
          conflicts_with_all = ["since", "follow"])]
    request_id: Option<String>,
    /// Without --request-id: list the failures recorded since then, a duration back from now
    /// (15m, 2h, 1d) or an RFC 3339 time.
    #[arg(long, value_name = "DURATION|RFC3339")]
    since: Option<String>,
    /// Without --request-id: keep reading the files and print each failure as it is written
    /// (JSON Lines with -o json), after those since --since if given; stop with Ctrl-C.
    #[arg(long)]
    follow: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
}

/// The records of one request in one file (`-` is stdin): a JSON array, one JSON object a line,
/// or the output of `oci logging-search search-logs` (`{"data": {"results": [{"data":
/// {"logContent": {...}}}]}}`, pretty or on one line). OCI Logging wraps each record as
/// `{"datetime": ..., "logContent": {...}}`; the wrapper is removed. The input is streamed (log
/// files grow without bound): only the request's records are kept, and a line may hold at most
/// 1 MiB (a JSON array or a search-logs document is read record by record).
pub(crate) fn read_records(path: &str, wanted: &str) -> Result<Vec<Value>, InputError> {
    let mut records = Vec::new();
    each_record(path, &mut |record| {
        let mine = record["data"]["opcRequestId"]
            .as_str()
            .is_some_and(|id| matches(id, wanted));
        if mine {
            records.push(record);
        }
    })?;
    Ok(records)
}

/// Every record of one input (`-` is stdin), unwrapped, handed to `keep`.
fn each_record(path: &str, keep: &mut dyn FnMut(Value)) -> Result<(), InputError> {
    let source: Box<dyn std::io::Read> = if path == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(crate::input::open_regular(path, "log file").map_err(InputError::new)?)
    };
    read_from(
        path,
        std::io::BufReader::new(source),
        &mut |record: Value| keep(unwrap(record)),
    )
}

/// Whether a record is a failure worth a diagnosis.
pub(crate) fn is_failure(record: &Value) -> bool {
    record["data"]["code"].as_str().is_some_and(|c| {
        c.ends_with("authenticationFailed")
            || c == "authorization.unauthorizedRequest"
            || c.ends_with("badJsonWebKeySet")
            || c.starts_with("httpBackend.")
            || c == "requestValidation.validationError"
    })
}

/// A record's `time` in seconds since 1970, if it has a readable one.
fn record_time(record: &Value) -> Option<i64> {
    let text = record["time"].as_str()?;
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// `--since`: a duration back from now, or an RFC 3339 time.
fn parse_since(text: &str) -> Result<i64, InputError> {
    if let Some(seconds) = crate::input::parse_duration(text) {
        let now = crate::input::parse_now(None)?.0;
        return Ok(now.saturating_sub_unsigned(seconds));
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| {
            InputError::new(format!(
                "--since '{text}' is neither a duration (15m, 2h, 1d) nor RFC 3339 (e.g. 2026-11-28T16:00:00Z)"
            ))
        })
}

/// The failures listed at most (the most recent are kept; a log holds without bound).
const MAX_LISTED: usize = 1000;

/// One failure on one line for people: when, which request, what failed, and the fix.
fn print_failure(record: &Value, json_output: bool) {
    if json_output {
        outln!("{}", serde_json::to_string(record).unwrap_or_default());
        return;
    }
    let text = |value: &Value| Escaped(value.as_str().unwrap_or("")).to_string();
    let data = &record["data"];
    let check = data["check"]
        .as_str()
        .map(|c| format!("{}: ", Escaped(c)))
        .unwrap_or_default();
    outln!(
        "{}  {}  {}  {check}{}",
        text(&record["time"]),
        text(&data["opcRequestId"]),
        text(&data["code"]),
        text(&data["message"])
    );
    if let Some(fix) = data["fix"].as_str() {
        outln!("    fix  {}", Escaped(fix));
    }
}

/// `--since` without `--follow`: the recent failures of every file, oldest first.
fn list_failures(args: &LogsArgs, since: i64) -> u8 {
    let json_output = args.output == Format::Json;
    let mut kept = std::collections::VecDeque::new();
    let mut omitted = 0usize;
    for file in &args.files {
        let read = each_record(file, &mut |record| {
            if is_failure(&record) && record_time(&record).is_some_and(|t| t >= since) {
                if kept.len() == MAX_LISTED {
                    kept.pop_front();
                    omitted += 1;
                }
                kept.push_back(record);
            }
        });
        if let Err(error) = read {
            report_error(&error, json_output);
            return exit::USAGE;
        }
    }
    let mut failures: Vec<Value> = kept.into();
    failures.sort_by_key(|r| record_time(r).unwrap_or(0));
    let since_text = claimgate_core::UnixTime(since).to_string();
    if json_output {
        print_json(json!({"since": since_text, "failures": failures, "omitted": omitted}));
    } else if failures.is_empty() {
        eprintln!(
            "no failure recorded since {since_text} in {}",
            Escaped(&args.files.join(", "))
        );
    } else {
        outln!(
            "{} failure{} since {since_text}{}:",
            failures.len(),
            crate::input::plural(failures.len()),
            if omitted > 0 {
                format!(" (the {omitted} earlier not shown)")
            } else {
                String::new()
            }
        );
        for record in &failures {
            print_failure(record, false);
        }
    }
    if failures.is_empty() {
        exit::DENIED
    } else {
        exit::OK
    }
}

/// One followed file: where reading resumes, and whether the rest of an overlong line is
/// being skipped.
struct Followed {
    path: String,
    offset: u64,
    skipping: bool,
}

/// Reads the complete lines `file` gained since the last call, handing failures to `keep`. A
/// file that shrank was truncated or replaced: it is read again from its start. A partial
/// last line waits for its end; a line over 1 MiB is skipped.
fn read_new_lines(file: &mut Followed, keep: &mut dyn FnMut(Value)) -> Result<(), InputError> {
    use std::io::{BufRead as _, Read as _, Seek as _};
    const MAX_LINE: u64 = crate::input::DATA_LIMIT;
    let path = file.path.as_str();
    let cannot = |e: std::io::Error| InputError::new(format!("cannot read log file '{path}': {e}"));
    let mut handle = crate::input::open_regular(path, "log file").map_err(InputError::new)?;
    let length = handle.metadata().map_err(cannot)?.len();
    if length < file.offset {
        file.offset = 0;
        file.skipping = false;
    }
    handle
        .seek(std::io::SeekFrom::Start(file.offset))
        .map_err(cannot)?;
    let mut reader = std::io::BufReader::new(handle.take(length - file.offset));
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut line)
            .map_err(cannot)?;
        if read == 0 {
            return Ok(());
        }
        let complete = line.ends_with(b"\n");
        if !complete && (line.len() as u64) <= MAX_LINE {
            return Ok(()); // the writer has not finished the line yet
        }
        file.offset += read as u64;
        if !complete {
            file.skipping = true;
            continue;
        }
        if std::mem::take(&mut file.skipping) {
            continue;
        }
        if let Ok(record) = serde_json::from_slice::<Value>(&line) {
            let record = unwrap(record);
            if is_failure(&record) {
                keep(record);
            }
        }
    }
}

/// `--follow`: failures as they are written (those since `since` first), until interrupted.
fn follow(args: &LogsArgs, since: Option<i64>) -> u8 {
    let json_output = args.output == Format::Json;
    let mut files = Vec::new();
    for path in &args.files {
        if path == "-" {
            report_error(
                &InputError::new("--follow reads files; pipe into --file - without --follow"),
                json_output,
            );
            return exit::USAGE;
        }
        let offset = match since {
            Some(_) => 0,
            None => match crate::input::open_regular(path, "log file")
                .and_then(|f| f.metadata().map_err(|e| e.to_string()))
            {
                Ok(metadata) => metadata.len(),
                Err(message) => {
                    report_error(&InputError::new(message), json_output);
                    return exit::USAGE;
                }
            },
        };
        files.push(Followed {
            path: path.clone(),
            offset,
            skipping: false,
        });
    }
    loop {
        for file in &mut files {
            let read = read_new_lines(file, &mut |record| {
                if since.is_none_or(|since| record_time(&record).is_some_and(|t| t >= since)) {
                    print_failure(&record, json_output);
                }
            });
            if let Err(error) = read {
                report_error(&error, json_output);
                return exit::USAGE;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// A record without OCI's wrappers: a search-logs result (`{"data": {"logContent": ...}}`) or
/// an exported line (`{"logContent": ...}`).
fn unwrap(mut record: Value) -> Value {
    // Taken out of the wrapper, not cloned: the wrapper is dropped.
    if let Some(inner) = record.get_mut("data").and_then(|d| d.get_mut("logContent")) {
        return inner.take();
    }
    if let Some(inner) = record.get_mut("logContent") {
        return inner.take();
    }
    record
}

/// Hands every record of `reader` to `keep`, in whichever of the forms it is.
fn read_from(
    path: &str,
    mut reader: impl std::io::BufRead,
    keep: &mut dyn FnMut(Value),
) -> Result<(), InputError> {
    use std::io::BufRead as _;
    let cannot = |e: std::io::Error| InputError::new(format!("cannot read log file '{path}': {e}"));
    // The first byte that is not white space tells the forms apart.
    let first = loop {
        let buffer = reader.fill_buf().map_err(cannot)?;
        match buffer.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(at) => {
                let first = buffer[at];
                reader.consume(at);
                break Some(first);
            }
            None if buffer.is_empty() => break None,
            None => {
                let all = buffer.len();
                reader.consume(all);
            }
        }
    };
    if first == Some(b'[') {
        let mut stream = serde_json::Deserializer::from_reader(reader);
        return serde::Deserializer::deserialize_seq(&mut stream, Matching { keep }).map_err(
            |_| InputError::new(format!("'{path}' starts with '[' but is not a JSON array")),
        );
    }
    const MAX_LINE: u64 = crate::input::DATA_LIMIT;
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        let read = std::io::Read::take(&mut reader, MAX_LINE + 1)
            .read_until(b'\n', &mut line)
            .map_err(cannot)?;
        if read == 0 {
            break;
        }
        if line.len() as u64 > MAX_LINE {
            return Err(InputError::new(format!(
                "{path}:{number}: the line is longer than 1 MiB; not a log record"
            )));
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if number == 1 && line.trim_ascii() == b"{" {
            // A pretty-printed document: `oci logging-search search-logs` output.
            let rest = std::io::Read::chain(&line[..], reader);
            let mut stream = serde_json::Deserializer::from_reader(rest);
            return serde::Deserializer::deserialize_map(&mut stream, SearchLogs { keep }).map_err(
                |e| {
                    InputError::new(format!(
                        "'{path}' is not the output of `oci logging-search search-logs` ({e})"
                    ))
                },
            );
        }
        let value: Value = serde_json::from_slice(&line).map_err(|e| {
            InputError::new(format!("{path}:{number}: not a JSON log record ({e})"))
        })?;
        match value["data"]["results"].as_array() {
            // search-logs output on one line.
            Some(results) => results.iter().cloned().for_each(&mut *keep),
            None => keep(value),
        }
    }
    Ok(())
}

/// Visits a JSON array element by element, handing each to `keep` (nothing else is held).
struct Matching<'k> {
    keep: &'k mut dyn FnMut(Value),
}

impl<'de> serde::de::Visitor<'de> for Matching<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array of log records")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(record) = seq.next_element::<Value>()? {
            (self.keep)(record);
        }
        Ok(())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Matching<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

/// `{"data": {"results": [...]}}` (search-logs output), read result by result: members other
/// than `data.results` (`summary`, `opc-next-page`) are skipped unread.
struct SearchLogs<'k> {
    keep: &'k mut dyn FnMut(Value),
}

impl<'de> serde::de::Visitor<'de> for SearchLogs<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a search-logs document {\"data\": {\"results\": [...]}}")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "data" {
                map.next_value_seed(Results { keep: self.keep })?;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// The `data` member of search-logs output: its `results` array.
struct Results<'k> {
    keep: &'k mut dyn FnMut(Value),
}

impl<'de> serde::de::DeserializeSeed<'de> for Results<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Results<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object with \"results\"")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "results" {
                map.next_value_seed(Matching {
                    keep: &mut *self.keep,
                })?;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// OCI ids may be composite (`/A.../B...`); a request matches on the whole id or any segment,
/// in any letter case (ids are hexadecimal, and get retyped or copied from upper-cased views).
fn matches(record_id: &str, wanted: &str) -> bool {
    let wanted = wanted.trim_matches('/');
    let record_id = record_id.trim_matches('/');
    let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    same(record_id, wanted)
        || record_id.split('/').any(|part| same(part, wanted))
        || wanted.split('/').any(|part| same(part, record_id))
}

pub(crate) fn run(args: &LogsArgs) -> u8 {
    let json_output = args.output == Format::Json;
    let since = match args.since.as_deref().map(parse_since).transpose() {
        Ok(since) => since,
        Err(error) => {
            report_error(&error, json_output);
            return exit::USAGE;
        }
    };
    let request_id = match (&args.request_id, since) {
        (Some(id), _) => id.as_str(),
        (None, _) if args.follow => return follow(args, since),
        (None, Some(since)) => return list_failures(args, since),
        // clap requires one of --request-id, --since, --follow.
        (None, None) => return exit::USAGE,
    };
    let mut records = Vec::new();
    for file in &args.files {
        match read_records(file, request_id) {
            Ok(found) => records.extend(found),
            Err(error) => {
                report_error(&error, json_output);
                return exit::USAGE;
            }
        }
    }
    // read_records kept only this request's records.
    let mut mine = records;
    sort_by_time(&mut mine);
    if json_output {
        print_json(
            json!({"requestId": request_id, "records": mine, "diagnosis": diagnosis(&mine)}),
        );
        return if mine.is_empty() {
            exit::DENIED
        } else {
            exit::OK
        };
    }
    if mine.is_empty() {
        eprintln!(
            "no record has opcRequestId '{}' in {}",
            Escaped(request_id),
            Escaped(&args.files.join(", "))
        );
        return exit::DENIED;
    }
    print_records(request_id, &mine);
    exit::OK
}

/// Orders one request's records by their `time` (the files may come in any order).
pub(crate) fn sort_by_time(records: &mut [Value]) {
    records.sort_by(|a, b| {
        a["time"]
            .as_str()
            .unwrap_or("")
            .cmp(b["time"].as_str().unwrap_or(""))
    });
}

/// The failed checks among one request's records, as `logs -o json` and `try -o json` list
/// them.
pub(crate) fn diagnosis(records: &[Value]) -> Vec<Value> {
    records
        .iter()
        .filter(|r| is_failure(r))
        .map(|r| {
            let data = &r["data"];
            json!({"code": data["code"], "check": data["check"], "message": data["message"], "expected": data["expected"], "actual": data["actual"], "fix": data["fix"]})
        })
        .collect()
}

/// One request's records for people, then the diagnosis (what failed, expected, actual, fix).
pub(crate) fn print_records(request_id: &str, mine: &[Value]) {
    let failures: Vec<&Value> = mine.iter().filter(|r| is_failure(r)).collect();
    // Every value below comes from the log files, and so from requests and tokens: printed
    // escaped, so a claim cannot clear the screen or forge a "diagnosis" line.
    let text = |value: &Value| Escaped(value.as_str().unwrap_or("")).to_string();
    let json = |value: &Value| Escaped(&value.to_string()).to_string();
    let p = Paint(colour_enabled());
    outln!(
        "{} record{} for request {}:",
        mine.len(),
        if mine.len() == 1 { "" } else { "s" },
        Escaped(request_id)
    );
    for record in mine {
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
}
