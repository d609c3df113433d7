//! `claimgate decode`: a token's header and claims for people, with times in UTC and relative.
//! It never verifies a signature and says so.

use crate::input::{parse_now, read_token, InputError};
use crate::output::{colour_enabled, print_json, print_pretty_json, report_error, Paint};
use crate::{exit, Format};
use claimgate_core::{relative, Escaped, UnixTime};
use claimgate_jose::{decode_base64url, json, ParsedToken};
use serde_json::{json, Map, Value};

#[derive(Debug, clap::Args)]
pub(crate) struct DecodeArgs {
    /// The token itself, @FILE, or - for stdin.
    #[arg(value_name = "TOKEN|@FILE|-")]
    token: String,
    /// The moment relative times are shown against (default: now).
    #[arg(long, value_name = "UNIX|RFC3339")]
    now: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
}

const TIME_CLAIMS: [&str; 3] = ["exp", "nbf", "iat"];

pub(crate) fn run(args: &DecodeArgs) -> u8 {
    let json_output = args.output == Format::Json;
    match decode(args) {
        Ok(()) => exit::OK,
        Err(error) => {
            report_error(&error, json_output);
            exit::USAGE
        }
    }
}

fn segment(part: &str, what: &str) -> Result<Map<String, Value>, InputError> {
    let bytes = decode_base64url(part)
        .map_err(|e| InputError::new(format!("not a token: the {what} is not base64url ({e})")))?;
    json::parse_object(&bytes, 32)
        .map_err(|e| InputError::new(format!("not a token: the {what} is {e}")))
}

fn decode(args: &DecodeArgs) -> Result<(), InputError> {
    let token = read_token(&args.token)?;
    let now = parse_now(args.now.as_deref())?;
    let parts: Vec<&str> = token.splitn(4, '.').collect();
    if parts.len() != 3 {
        return Err(InputError::new(format!(
            "not a token: a compact JWS has 3 segments separated by dots, this has {}",
            token.matches('.').count() + 1
        )));
    }
    let header = segment(parts[0], "header")?;
    let payload = segment(parts[1], "payload")?;
    // What the gateway would say about the form, beyond what decoding needs.
    let format_problem = ParsedToken::parse(&token).err().map(|e| e.to_string());
    let times: Map<String, Value> = TIME_CLAIMS
        .iter()
        .filter_map(|claim| {
            let seconds = payload.get(*claim)?.as_f64()? as i64;
            Some((
                claim.to_string(),
                json!({"utc": UnixTime(seconds).rfc3339(), "relative": relative(seconds, now)}),
            ))
        })
        .collect();
    if args.output == Format::Json {
        print_json(json!({
            "header": header,
            "payload": payload,
            "times": times,
            "now": now.0,
            "signatureVerified": false,
            "formatProblem": format_problem,
        }));
        return Ok(());
    }
    let p = Paint(colour_enabled());
    // The claims are the token's to choose: printed escaped (the JSON output keeps them).
    outln!("{}", p.bold("header"));
    print_pretty_json(&header);
    outln!("{}", p.bold("payload"));
    print_pretty_json(&payload);
    if !times.is_empty() {
        outln!("{}", p.bold("times (UTC)"));
        for claim in TIME_CLAIMS {
            if let Some(t) = times.get(claim) {
                let what = match claim {
                    "exp" if t["relative"].as_str().is_some_and(|r| r.ends_with("ago")) => {
                        "expired"
                    }
                    "exp" => "expires",
                    "nbf" => "not before",
                    _ => "issued",
                };
                outln!(
                    "  {claim}  {}  {what} {}",
                    t["utc"].as_str().unwrap_or(""),
                    t["relative"].as_str().unwrap_or("")
                );
            }
        }
    }
    outln!();
    outln!("{}", p.yellow("The signature was NOT verified: decode only shows what the token says. Use 'claimgate check' to judge it."));
    if let Some(problem) = format_problem {
        outln!(
            "{}",
            p.red(&format!(
                "claimgate would refuse this token: JWT token is malformed: {}.",
                Escaped(&problem)
            ))
        );
    }
    Ok(())
}
