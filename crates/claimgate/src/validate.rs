//! `claimgate validate`: load deployment files, usage plan files and subscriber files the way
//! `check` and `serve` do, and report every error with its JSON path, and every warning.

use crate::input::{plural, InputError};
use crate::output::{colour_enabled, print_json, report_error, Paint};
use crate::subscriptions::FileKind;
use crate::{exit, Format};
use claimgate_config::{load_str, Diagnostic, LoadOptions, Secrets};
use claimgate_core::Escaped;
use serde_json::json;
use std::path::Path;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Every error of every file is reported, with the JSON path of the member as \
written in the file (camelCase or kebab-case) and the reason. Exit codes: 0 every file is valid \
(warnings do not count), 2 a file is invalid or unreadable, usage plans and subscribers do not fit \
together (a client token used twice, an unknown plan id), or the secrets file is unusable. Client \
tokens are never printed."
)]
pub(crate) struct ValidateArgs {
    /// Deployment files: CreateDeploymentDetails JSON, a bare specification (camelCase or
    /// kebab-case), or the output of `oci api-gateway deployment get`; a directory stands for
    /// every *.json file directly in it (hidden files skipped).
    #[arg(
        required_unless_present_any = ["usage_plans", "subscribers", "gateway"],
        value_name = "FILE|DIR",
        value_parser = crate::input::file_arg
    )]
    files: Vec<String>,
    /// Usage plan files (OCI's UsagePlan: the GET shape, CreateUsagePlanDetails plus id, or
    /// `oci api-gateway usage-plan get` output; one or an array); a directory stands for its
    /// *.json files. Repeatable.
    #[arg(long, value_name = "FILE|DIR", value_parser = crate::input::file_arg)]
    usage_plans: Vec<String>,
    /// Subscriber files (OCI's Subscriber, in the same shapes); a directory stands for its
    /// *.json files. Repeatable.
    #[arg(long, value_name = "FILE|DIR", value_parser = crate::input::file_arg)]
    subscribers: Vec<String>,
    /// OCI's gateway resource (CreateGatewayDetails, Gateway, or `oci api-gateway gateway get`
    /// output): its responseCacheDetails is checked (and its secret resolved with --secrets).
    #[arg(long, value_name = "FILE", value_parser = crate::input::file_arg)]
    gateway: Option<String>,
    /// The path prefix of bare specifications (default /).
    #[arg(long, value_name = "PREFIX")]
    path_prefix: Option<String>,
    /// A secrets file: check that every clientSecretId the files name resolves (values are
    /// never printed).
    #[arg(long, value_name = "FILE", value_parser = crate::input::file_arg)]
    secrets: Option<String>,
    /// The functions file (a JSON object mapping each function OCID to the URL that invokes
    /// it): checked, and every function the deployments name that it lacks is warned about
    /// (serve refuses those deployments).
    #[arg(long, value_name = "FILE", value_parser = crate::input::file_arg)]
    functions: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
}

fn diagnostics_json(list: &[Diagnostic]) -> serde_json::Value {
    json!(list
        .iter()
        .map(|d| json!({"path": d.path, "message": d.message}))
        .collect::<Vec<_>>())
}

/// Reads the `--secrets` file, or reports why it cannot be used.
fn read_secrets(path: &str, json_output: bool) -> Option<Secrets> {
    let parsed = crate::input::read_text(path, "secrets file", crate::input::DATA_LIMIT)
        .and_then(|text| Secrets::parse(&text).map_err(|e| format!("{path}: {e}")));
    match parsed {
        Ok(secrets) => Some(secrets),
        Err(message) => {
            report_error(&InputError::new(message), json_output);
            None
        }
    }
}

pub(crate) fn run(args: &ValidateArgs) -> u8 {
    let p = Paint(colour_enabled());
    let secrets = match &args.secrets {
        None => None,
        Some(path) => match read_secrets(path, args.output == Format::Json) {
            Some(secrets) => Some(secrets),
            None => return exit::USAGE,
        },
    };
    let mut any_error = false;
    let mut reports = Vec::new();
    // The functions file comes first: the deployments are checked against it.
    let functions = args.functions.as_ref().map(|path| {
        let loaded = crate::input::read_text(path, "the file", crate::input::DEPLOYMENT_LIMIT)
            .map_err(|message| claimgate_config::Rejected {
                errors: vec![Diagnostic {
                    path: String::new(),
                    message,
                }],
                warnings: Vec::new(),
            })
            .and_then(|text| claimgate_config::load_function_map_str(&text));
        let (map, errors, warnings) = match loaded {
            Ok(loaded) => (loaded.functions, Vec::new(), loaded.warnings),
            Err(rejected) => (Default::default(), rejected.errors, rejected.warnings),
        };
        any_error |= !errors.is_empty();
        report_file(
            p,
            args.output,
            path,
            Some("functions"),
            &errors,
            &warnings,
            &mut reports,
        );
        map
    });
    // (deployment id, file, uses usagePlans) of each deployment that loaded, for the checks
    // against the usage plans.
    let mut deployments: Vec<(String, String, bool)> = Vec::new();
    // A directory's files as `serve --deployment DIR` lists them; one it cannot is reported
    // like an unreadable file.
    let mut files: Vec<(String, Option<String>)> = Vec::new();
    for file in &args.files {
        match crate::input::deployment_files_in(file) {
            Ok(Some(listed)) => files.extend(listed.into_iter().map(|f| (f, None))),
            Ok(None) => files.push((file.clone(), None)),
            Err(error) => files.push((file.clone(), Some(error))),
        }
    }
    for (file, listing_error) in &files {
        let name = Path::new(file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let options = LoadOptions {
            path_prefix: args.path_prefix.clone(),
            name,
        };
        let text = match listing_error {
            Some(error) => Err(error.clone()),
            None => crate::input::read_text(file, "the file", crate::input::DEPLOYMENT_LIMIT),
        };
        let (errors, warnings) = match text {
            Err(message) => (
                vec![Diagnostic {
                    path: String::new(),
                    message,
                }],
                Vec::new(),
            ),
            Ok(text) => match load_str(&text, &options) {
                Ok(mut loaded) => (
                    {
                        loaded.warnings.extend(crate::input::unmapped_functions(
                            &loaded.deployment,
                            functions.as_ref(),
                        ));
                        deployments.push((
                            loaded.deployment.id.clone(),
                            file.clone(),
                            loaded.deployment.usage_plans.is_some(),
                        ));
                        secrets
                            .as_ref()
                            .map(|s| s.check(&loaded.deployment))
                            .unwrap_or_default()
                    },
                    loaded.warnings,
                ),
                Err(rejected) => (rejected.errors, rejected.warnings),
            },
        };
        any_error |= !errors.is_empty();
        report_file(p, args.output, file, None, &errors, &warnings, &mut reports);
    }
    if let Some(path) = &args.gateway {
        let (errors, warnings) =
            match crate::input::read_text(path, "the file", crate::input::DATA_LIMIT) {
                Err(message) => (
                    vec![Diagnostic {
                        path: String::new(),
                        message,
                    }],
                    Vec::new(),
                ),
                Ok(text) => {
                    let loaded = match &secrets {
                        Some(secrets) => claimgate_config::load_gateway_str(&text, secrets),
                        None => claimgate_config::check_gateway_str(&text),
                    };
                    match loaded {
                        Ok(loaded) => (Vec::new(), loaded.warnings),
                        Err(rejected) => (rejected.errors, rejected.warnings),
                    }
                }
            };
        any_error |= !errors.is_empty();
        report_file(
            p,
            args.output,
            path,
            Some("gateway"),
            &errors,
            &warnings,
            &mut reports,
        );
    }
    let mut together = None;
    if !args.usage_plans.is_empty() || !args.subscribers.is_empty() {
        let read = crate::subscriptions::read_all(&args.usage_plans, &args.subscribers);
        let mut all_valid = true;
        for file in &read.files {
            any_error |= !file.errors.is_empty();
            all_valid &= file.errors.is_empty();
            let kind = match file.kind {
                FileKind::UsagePlans => "usagePlans",
                FileKind::Subscribers => "subscribers",
            };
            report_file(
                p,
                args.output,
                &file.path,
                Some(kind),
                &file.errors,
                &file.warnings,
                &mut reports,
            );
        }
        // Only files that are each valid are checked together: an unknown plan id is no news
        // when the plan's file did not load.
        if all_valid {
            let warnings = target_warnings(&deployments, &read.plans);
            let errors = claimgate_config::Subscriptions::new(read.plans, read.subscribers)
                .err()
                .unwrap_or_default();
            any_error |= !errors.is_empty();
            if args.output == Format::Text && !errors.is_empty() {
                outln!(
                    "{} usage plans and subscribers together: {} error{}",
                    p.red("invalid"),
                    errors.len(),
                    plural(errors.len())
                );
                for e in &errors {
                    outln!("  {} {}", p.red("error"), Escaped(e));
                }
            }
            if args.output == Format::Text && !warnings.is_empty() {
                outln!(
                    "{} usage plans and the deployments together: {} warning{}",
                    p.yellow("note"),
                    warnings.len(),
                    plural(warnings.len())
                );
                for w in &warnings {
                    outln!("  {} {}", p.yellow("warning"), Escaped(w));
                }
            }
            together =
                Some(json!({"valid": errors.is_empty(), "errors": errors, "warnings": warnings}));
        }
    }
    if args.output == Format::Json {
        let mut document = json!({"valid": !any_error, "files": reports});
        if let Some(together) = together {
            document["subscriptions"] = together;
        }
        print_json(document);
    }
    if any_error {
        exit::USAGE
    } else {
        exit::OK
    }
}

/// What the usage plans and the deployment files given together say about each other: a
/// deployment using `usagePlans` that no entitlement targets (every request would get 403
/// `usagePlans.eligibleNotEntitled`: the ids must match exactly), and, when deployment files
/// are given, an entitlement target that none of them is (it may be served elsewhere).
fn target_warnings(
    deployments: &[(String, String, bool)],
    plans: &[claimgate_config::UsagePlan],
) -> Vec<String> {
    let targeted = |id: &str| {
        plans
            .iter()
            .flat_map(|p| &p.entitlements)
            .any(|e| e.targets.iter().any(|t| t == id))
    };
    let mut warnings = Vec::new();
    for (id, file, uses_plans) in deployments {
        if *uses_plans && !targeted(id) {
            warnings.push(format!(
                "{file}: the deployment '{id}' uses usagePlans but no entitlement targets it: every request would get 403 (usagePlans.eligibleNotEntitled); an entitlement's targets[].deploymentId must be '{id}'"
            ));
        }
    }
    if deployments.is_empty() {
        return warnings;
    }
    for plan in plans {
        for entitlement in &plan.entitlements {
            for target in &entitlement.targets {
                if !deployments.iter().any(|(id, _, _)| id == target) {
                    warnings.push(format!(
                        "usage plan '{}', entitlement '{}': targets the deployment '{target}', which none of the given deployment files is (their ids: {})",
                        plan.id,
                        entitlement.name,
                        deployments
                            .iter()
                            .map(|(id, _, _)| id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
        }
    }
    warnings
}

/// Prints one file's result (text), or adds it to `reports` (JSON); `kind` is `usagePlans` or
/// `subscribers` for those files (a JSON member), `None` for deployment files.
fn report_file(
    p: Paint,
    output: Format,
    file: &str,
    kind: Option<&str>,
    errors: &[Diagnostic],
    warnings: &[Diagnostic],
    reports: &mut Vec<serde_json::Value>,
) {
    if output == Format::Json {
        let mut report = json!({"file": file, "valid": errors.is_empty(), "errors": diagnostics_json(errors), "warnings": diagnostics_json(warnings)});
        if let Some(kind) = kind {
            report["kind"] = json!(kind);
        }
        reports.push(report);
        return;
    }
    let warning_count = if warnings.is_empty() {
        String::new()
    } else {
        format!("{} warning{}", warnings.len(), plural(warnings.len()))
    };
    if errors.is_empty() {
        let count = if warning_count.is_empty() {
            String::new()
        } else {
            format!(" ({warning_count})")
        };
        outln!("{} {}{count}", p.green("ok"), Escaped(file));
    } else {
        let count = if warning_count.is_empty() {
            String::new()
        } else {
            format!(", {warning_count}")
        };
        outln!(
            "{} {}: {} error{}{count}",
            p.red("invalid"),
            Escaped(file),
            errors.len(),
            plural(errors.len())
        );
    }
    for e in errors {
        // Messages quote the file's own values.
        outln!("  {} {}", p.red("error"), Escaped(&e.to_string()));
    }
    for w in warnings {
        outln!("  {} {}", p.yellow("warning"), Escaped(&w.to_string()));
    }
}
