//! `claimgate introspect`: call a deployment's introspection endpoint (RFC 7662) with a token
//! and show the answer beside the policy and the verdict — OCI's troubleshooting advice for
//! opaque tokens ("call the configured introspection endpoint directly and compare the returned
//! aud, iss, exp and custom claims with the deployment policy"), done for you.

use crate::check::{self, CheckArgs};
use crate::input::{load_deployment, InputError};
use crate::output::report_error;
use crate::{exit, Format};
use claimgate_config::{Authentication, KeySource, PathSegment};

#[derive(Debug, clap::Args)]
pub(crate) struct IntrospectArgs {
    /// The deployment file (its policy must be TOKEN_AUTHENTICATION with REMOTE_DISCOVERY).
    #[arg(long, value_name = "FILE", value_parser = crate::input::file_arg)]
    deployment: String,
    /// The token: the token itself, @FILE, or - for stdin.
    #[arg(long, value_name = "TOKEN|@FILE|-")]
    token: String,
    /// Secrets file resolving the introspection client's clientSecretId.
    #[arg(long, value_name = "FILE", value_parser = crate::input::file_arg)]
    secrets: Option<String>,
    /// The request to judge, 'METHOD /full/path' (default: GET on the first route without parameters).
    #[arg(long, value_name = "'METHOD /path'")]
    request: Option<String>,
    /// The path prefix of a bare specification (default /).
    #[arg(long, value_name = "PREFIX")]
    path_prefix: Option<String>,
    /// The moment to judge at (default: now).
    #[arg(long, value_name = "UNIX|RFC3339")]
    now: Option<String>,
    /// A host besides the discovery URL's own that may receive the client secret as an
    /// introspection_endpoint (repeatable).
    #[arg(long = "allow-endpoint", value_name = "HOST")]
    allow_endpoints: Vec<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
}

pub(crate) fn run(args: &IntrospectArgs) -> u8 {
    match to_check(args) {
        Ok(check_args) => check::run(&check_args),
        Err(error) => {
            report_error(&error, args.output == Format::Json);
            exit::USAGE
        }
    }
}

fn to_check(args: &IntrospectArgs) -> Result<CheckArgs, InputError> {
    let loaded = load_deployment(&args.deployment, args.path_prefix.as_deref())?;
    let deployment = loaded.deployment;
    let discovery = match &deployment.authentication {
        Authentication::Jwt(policy) => matches!(policy.keys, KeySource::Discovery(_)),
        // The selected server's endpoint is used (check selects it for the request).
        Authentication::Dynamic(dynamic) => dynamic.servers.iter().any(|s| {
            s.policy
                .jwt()
                .is_some_and(|p| matches!(p.keys, KeySource::Discovery(_)))
        }),
        _ => false,
    };
    if !discovery {
        return Err(InputError::new(format!(
            "{}: the authentication policy has no introspection endpoint (it needs TOKEN_AUTHENTICATION with a REMOTE_DISCOVERY validationPolicy); use 'claimgate check'",
            args.deployment
        )));
    }
    let request = match &args.request {
        Some(request) => request.clone(),
        None => {
            let route = deployment
                .routes
                .iter()
                .find(|r| {
                    r.path
                        .segments()
                        .iter()
                        .all(|s| matches!(s, PathSegment::Literal(_)))
                })
                .ok_or_else(|| {
                    InputError::new(
                        "every route has path parameters: pass --request 'METHOD /path'",
                    )
                })?;
            let prefix = deployment.path_prefix.trim_end_matches('/');
            format!("GET {prefix}{}", route.path.as_str())
        }
    };
    Ok(CheckArgs {
        deployment: args.deployment.clone(),
        request,
        token: Some(args.token.clone()),
        now: args.now.clone(),
        jwks: None,
        introspection: None,
        secrets: args.secrets.clone(),
        headers: Vec::new(),
        host: None,
        data: None,
        path_prefix: args.path_prefix.clone(),
        allow_endpoints: args.allow_endpoints.clone(),
        usage_plans: Vec::new(),
        subscribers: Vec::new(),
        functions: None,
        function_response: None,
        output: args.output,
    })
}
