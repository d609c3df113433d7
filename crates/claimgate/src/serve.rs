//! `claimgate serve`: load and check every deployment, then run the gateway until SIGTERM or
//! SIGINT. Without `--deployment` it serves the bundled demo.

use crate::exit;
use crate::input::{read_file, read_text, InputError, DATA_LIMIT};
use claimgate_config::{Authentication, Deployment, Secrets};
use claimgate_gateway::demo::{Demo, PREFIX};
use claimgate_gateway::discovery::IntrospectionOptions;
use claimgate_gateway::limit::{Cidr, TrustedProxies};
use claimgate_gateway::mtls::{ClientAuth, TlsServer};
use claimgate_gateway::{Gateway, LogSink, Logs, Options};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// A deployment file, or a directory: every *.json file directly in it, hidden files
    /// skipped (repeatable); write /prefix=FILE or /prefix=DIR for a bare specification.
    #[arg(long = "deployment", value_name = "FILE|DIR|/prefix=FILE|/prefix=DIR", value_parser = deployment_arg)]
    deployments: Vec<String>,
    /// Address to listen on: HOST:PORT, PORT (127.0.0.1), :PORT (all interfaces); host names
    /// are resolved.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR", value_parser = listen_addr)]
    listen: SocketAddr,
    /// Execution log file (- for stdout).
    #[arg(long, value_name = "FILE", value_parser = crate::input::file_arg)]
    execution_log: Option<String>,
    /// Access log file (- for stdout).
    #[arg(long, value_name = "FILE", value_parser = crate::input::file_arg)]
    access_log: Option<String>,
    /// Secrets file resolving clientSecretId of introspection clients: a JSON object mapping
    /// each clientSecretId (a Vault secret OCID) to the secret, or to {"VERSION": "secret"}.
    #[arg(long, value_name = "FILE", value_parser = crate::input::file_arg)]
    secrets: Option<String>,
    /// Keep introspection answers at most this many seconds (below maxCacheDurationInHours).
    #[arg(long, value_name = "SECONDS")]
    introspection_cache_max: Option<u64>,
    /// Introspections in flight at most, per policy; others wait up to 1 s, then get 500.
    #[arg(long, default_value_t = 16, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..))]
    introspection_concurrency: u16,
    /// Memory for introspection answers (all deployments), in MiB.
    #[arg(long, default_value_t = 32, value_name = "MIB")]
    introspection_cache_mib: u64,
    /// How long an authorizer function may take to answer before the request gets 502
    /// (OCI: 10 s).
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS",
          value_parser = parse_function_timeout)]
    function_timeout: f64,
    /// A host besides the discovery URL's own that may receive the client secret as an
    /// introspection_endpoint (repeatable).
    #[arg(long = "allow-endpoint", value_name = "HOST")]
    allow_endpoints: Vec<String>,
    /// Seconds allowed to read a request's headers; also how long a connection may stay open
    /// with no request in flight (one that sends nothing, idle keep-alive and HTTP/2).
    #[arg(long, default_value_t = 15, value_name = "SECONDS")]
    read_timeout: u64,
    /// Open client connections at most (each serving thread takes an equal share, at least
    /// one); beyond it new connections wait in the backlog.
    #[arg(long, default_value_t = 10_000, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Close connections gracefully after this many seconds (also on a client-CA change).
    #[arg(long, default_value_t = 3600, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..))]
    max_connection_age: u64,
    /// Seconds in-flight requests may take to finish after SIGTERM/SIGINT.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    shutdown_grace: u64,
    /// Seconds to keep accepting after SIGTERM/SIGINT while /readyz answers 503, so load
    /// balancers stop sending first.
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    drain_delay: u64,
    /// Seconds between two JWKS fetch attempts of one deployment (unknown-kid refetch cooldown).
    #[arg(long, default_value_t = 30, value_name = "SECONDS", hide = true)]
    jwks_cooldown: u64,
    /// Serve HTTPS on --listen with this certificate chain (PEM); reloaded with the config.
    #[arg(long, value_name = "FILE", value_parser = crate::input::file_arg, requires = "tls_key")]
    tls_cert: Option<String>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", value_parser = crate::input::file_arg, requires = "tls_cert")]
    tls_key: Option<String>,
    /// Trust client certificates issued by these CAs (PEM) for deployments with mutualTls;
    /// needs --tls-cert; reloaded with the config.
    #[arg(long, value_name = "FILE", value_parser = crate::input::file_arg, requires = "tls_cert")]
    client_ca: Option<String>,
    /// A proxy network (CIDR, repeatable) whose X-Forwarded-For names the client for rate
    /// limiting; other peers' X-Forwarded-For is ignored.
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    trusted_proxies: Vec<Cidr>,
    /// Trust the certificates in this PEM file for outbound HTTPS, besides the system roots
    /// (repeatable).
    #[arg(long = "ca", value_name = "FILE", value_parser = crate::input::file_arg)]
    ca: Vec<String>,
    /// Write a short hash instead of claim values in log records.
    #[arg(long)]
    redact_claim_values: bool,
    /// Start the admin listener (/livez, /readyz, /metrics; plain HTTP) on this address (the
    /// forms of --listen). On a loopback address it also serves the troubleshooting page (/)
    /// and its API (/api/*).
    #[arg(long, value_name = "ADDR", value_parser = listen_addr)]
    admin: Option<SocketAddr>,
    /// Serve the troubleshooting page and /api/* on a non-loopback --admin address too (they
    /// show claims and recent requests: keep that address on an internal network).
    #[arg(long, requires = "admin")]
    admin_ui: bool,
    /// Serving threads, each with its own connections (default: one per CPU).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    /// Memory for the verified-token cache, in MiB (0 turns it off). About 800 bytes a token:
    /// the default holds ~120k tokens of nine claims.
    #[arg(long, default_value_t = 96, value_name = "MIB")]
    token_cache_mib: u64,
    /// Share rate limits and introspection answers with other replicas through this Redis
    /// server: redis://[[user]:password@]host:port[/db], or rediss:// for TLS. Prefer the
    /// environment variable CLAIMGATE_REDIS_URL (used when this flag is absent) for a password.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Milliseconds every Redis operation on the request path may take; beyond it the replica
    /// uses its own state.
    #[arg(long, default_value_t = 50, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    redis_timeout_ms: u64,
    /// The start of every key claimgate writes in Redis.
    #[arg(long, default_value = "claimgate:", value_name = "PREFIX")]
    redis_key_prefix: String,
    /// Seal shared values (introspection answers) with AES-256-GCM under the 32 random bytes,
    /// base64, in this file (head -c 32 /dev/urandom | base64), so that whoever can write to
    /// Redis cannot forge them.
    #[arg(long, value_name = "FILE", value_parser = crate::input::file_arg)]
    shared_state_key: Option<String>,
    /// Seal OAUTH2 login sessions with AES-256-GCM under the 32 random bytes, base64, in this
    /// file (openssl rand -base64 32 > FILE); required by deployments with an OAUTH2
    /// validationFailurePolicy. Repeatable for rotation: the first seals, all open. Give every
    /// replica the same keys.
    #[arg(long = "session-key", value_name = "FILE", value_parser = crate::input::file_arg)]
    session_keys: Vec<String>,
    /// Usage plans (OCI UsagePlan resources): a JSON file holding one or an array, or a
    /// directory of *.json (repeatable); watched and reloaded with the deployments.
    #[arg(long = "usage-plans", value_name = "FILE|DIR", value_parser = crate::input::file_arg)]
    usage_plans: Vec<String>,
    /// Subscribers (OCI Subscriber resources) with their client tokens: a JSON file holding one
    /// or an array, or a directory of *.json (repeatable); watched and reloaded.
    #[arg(long = "subscribers", value_name = "FILE|DIR", value_parser = crate::input::file_arg)]
    subscribers: Vec<String>,
    /// The URL that invokes each OCI function the deployments name (authorizer functions,
    /// Functions backends): a JSON object {"ocid1.fnfunc...": "http://127.0.0.1:8081/"};
    /// watched and reloaded with the deployments.
    #[arg(long = "functions", value_name = "FILE", value_parser = crate::input::file_arg)]
    functions: Option<String>,
    /// OCI's gateway resource (CreateGatewayDetails, Gateway, or the CLI's read-back): its
    /// responseCacheDetails names the response cache server, whose credentials come from
    /// --secrets; watched and reloaded.
    #[arg(long, value_name = "FILE", value_parser = crate::input::file_arg)]
    gateway: Option<String>,
    /// Memory for response bodies being stored in the response cache at once (all requests),
    /// in MiB; beyond it answers are served without being stored.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    response_cache_buffer_mib: u64,
}

/// The `--gateway` file: the response cache's server, read again on every reload.
#[derive(Debug, Clone, Default)]
struct GatewayFile {
    path: Option<String>,
}

impl GatewayFile {
    /// The cache server (`None` without a file, or with `responseCacheDetails` `NONE` or
    /// absent) and the file's warnings.
    fn load(
        &self,
        secrets: &Secrets,
    ) -> Result<(Option<claimgate_config::ResponseCacheServer>, Vec<String>), InputError> {
        let Some(path) = &self.path else {
            return Ok((None, Vec::new()));
        };
        let text = read_text(path, "--gateway", DATA_LIMIT).map_err(InputError::new)?;
        match claimgate_config::load_gateway_str(&text, secrets) {
            Ok(loaded) => Ok((
                loaded.gateway.response_cache,
                loaded
                    .warnings
                    .iter()
                    .map(|w| format!("{path}: {w}"))
                    .collect(),
            )),
            Err(rejected) => Err(InputError {
                message: format!("cannot serve: the gateway file '{path}' is not valid"),
                details: rejected.errors.iter().map(ToString::to_string).collect(),
            }),
        }
    }

    /// Refuses deployments whose routes use the response cache when the gateway has none: OCI
    /// does not deploy them either, and serving them uncached would hide it.
    fn check(&self, deployments: &[Deployment], has_cache: bool) -> Result<(), InputError> {
        if has_cache {
            return Ok(());
        }
        let caching: Vec<String> = deployments
            .iter()
            .flat_map(|d| {
                d.routes
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| {
                        r.response_cache_lookup.is_some() || r.response_cache_store.is_some()
                    })
                    .map(move |(i, r)| {
                        format!(
                            "{}: specification.routes[{i}] ({}) uses responseCacheLookup/responseCacheStore",
                            claimgate_core::escape(d.label()),
                            claimgate_core::escape(r.path.as_str())
                        )
                    })
            })
            .collect();
        if caching.is_empty() {
            return Ok(());
        }
        Err(InputError {
            message: match &self.path {
                None => "cannot serve: response caching needs a cache server: give --gateway FILE (OCI's gateway resource with responseCacheDetails of type EXTERNAL_RESP_CACHE)".into(),
                Some(path) => format!("cannot serve: response caching needs a cache server, and the gateway file '{path}' has none (responseCacheDetails of type EXTERNAL_RESP_CACHE)"),
            },
            details: caching,
        })
    }
}

/// The files of the resources the deployments refer to (`--usage-plans`, `--subscribers`,
/// `--functions`), read again on every reload.
#[derive(Debug, Clone, Default)]
struct ResourceFiles {
    plans: Vec<String>,
    subscribers: Vec<String>,
    functions: Option<String>,
}

impl ResourceFiles {
    fn from_args(args: &ServeArgs) -> Self {
        Self {
            plans: args.usage_plans.clone(),
            subscribers: args.subscribers.clone(),
            functions: args.functions.clone(),
        }
    }

    /// The resources, with their warnings; fails closed when a deployment refers to what the
    /// files do not hold (no request could ever be served as the deployment says).
    fn load(
        &self,
        deployments: &[Deployment],
    ) -> Result<(claimgate_gateway::Resources, Vec<String>), InputError> {
        let (subscriptions, mut warnings) = self.load_subscriptions(deployments)?;
        let functions = match crate::input::read_functions(self.functions.as_deref()) {
            Ok(None) => claimgate_config::FunctionMap::default(),
            Ok(Some((functions, file_warnings))) => {
                warnings.extend(file_warnings);
                functions
            }
            Err(mut error) => {
                error.message = format!("cannot serve: {}", error.message);
                return Err(error);
            }
        };
        let missing: Vec<String> = deployments
            .iter()
            .flat_map(|d| {
                functions
                    .missing(d)
                    .into_iter()
                    .map(move |line| format!("{}: {line}", claimgate_core::escape(d.label())))
            })
            .collect();
        if !missing.is_empty() {
            let message = match &self.functions {
                None => "cannot serve: the deployments call OCI functions; give --functions FILE \
                         mapping each function OCID to the URL that invokes it"
                    .to_owned(),
                Some(file) => format!(
                    "cannot serve: {} does not map every function the deployments call",
                    claimgate_core::escape(file)
                ),
            };
            return Err(InputError {
                message,
                details: missing,
            });
        }
        Ok((
            claimgate_gateway::Resources {
                subscriptions,
                functions,
            },
            warnings,
        ))
    }

    /// The subscriptions, none without files; fails closed when a deployment has
    /// `usagePlans` and the files are missing (no request could ever be entitled).
    fn load_subscriptions(
        &self,
        deployments: &[Deployment],
    ) -> Result<(claimgate_config::Subscriptions, Vec<String>), InputError> {
        let metered: Vec<String> = deployments
            .iter()
            .filter(|d| d.usage_plans.is_some())
            .map(|d| {
                format!(
                    "{}: requestPolicies.usagePlans",
                    claimgate_core::escape(d.label())
                )
            })
            .collect();
        if !metered.is_empty() && (self.plans.is_empty() || self.subscribers.is_empty()) {
            return Err(InputError {
                message: "cannot serve: usagePlans needs --usage-plans and --subscribers".into(),
                details: metered,
            });
        }
        if self.plans.is_empty() && self.subscribers.is_empty() {
            return Ok((claimgate_config::Subscriptions::default(), Vec::new()));
        }
        let loaded = crate::subscriptions::load(&self.plans, &self.subscribers)?;
        Ok((loaded.subscriptions, loaded.warnings))
    }

    fn paths(&self) -> impl Iterator<Item = &String> {
        self.plans
            .iter()
            .chain(&self.subscribers)
            .chain(&self.functions)
    }
}

/// `--redis` or `CLAIMGATE_REDIS_URL`, checked (exit 2 without echoing the URL, which may hold
/// a password), with `--redis-timeout-ms`, `--redis-key-prefix` and `--shared-state-key`.
fn shared_state_options(
    args: &ServeArgs,
) -> Result<Option<claimgate_gateway::shared::SharedStateOptions>, InputError> {
    use claimgate_gateway::shared::{RedisUrl, SharedStateOptions};
    let (url, from_flag) = match (&args.redis, std::env::var("CLAIMGATE_REDIS_URL")) {
        (Some(url), _) => (url.clone(), true),
        (None, Ok(url)) if !url.is_empty() => (url, false),
        _ => {
            if args.shared_state_key.is_some() && args.gateway.is_none() {
                return Err(InputError::new(
                    "--shared-state-key needs --redis (or CLAIMGATE_REDIS_URL) or --gateway",
                ));
            }
            return Ok(None);
        }
    };
    let source = if from_flag {
        "--redis"
    } else {
        "CLAIMGATE_REDIS_URL"
    };
    let url =
        RedisUrl::parse(&url).map_err(|e| InputError::new(format!("cannot use {source}: {e}")))?;
    if from_flag && url.has_password() {
        eprintln!(
            "claimgate: warning: --redis carries a password, which other users of this machine can read in the process list; set CLAIMGATE_REDIS_URL instead"
        );
    }
    let seal_key = seal_key(args)?;
    if args.redis_key_prefix.is_empty() {
        return Err(InputError::new("--redis-key-prefix must not be empty"));
    }
    Ok(Some(SharedStateOptions {
        url,
        timeout: Duration::from_millis(args.redis_timeout_ms),
        key_prefix: args.redis_key_prefix.clone(),
        seal_key,
    }))
}

/// `--shared-state-key`, read and checked.
fn seal_key(args: &ServeArgs) -> Result<Option<claimgate_gateway::shared::SealKey>, InputError> {
    let Some(path) = &args.shared_state_key else {
        return Ok(None);
    };
    let text = read_text(path, "--shared-state-key", 4096).map_err(InputError::new)?;
    claimgate_gateway::shared::SealKey::from_base64(&text)
        .map(Some)
        .map_err(|e| InputError::new(format!("cannot use --shared-state-key '{path}': it {e}")))
}

/// The response cache's settings: the `--gateway` file's server, `--redis-key-prefix`,
/// `--shared-state-key`, `--response-cache-buffer-mib`.
fn response_cache_options(
    args: &ServeArgs,
    server: Option<claimgate_config::ResponseCacheServer>,
) -> Result<claimgate_gateway::response_cache::ResponseCacheOptions, InputError> {
    if args.redis_key_prefix.is_empty() {
        return Err(InputError::new("--redis-key-prefix must not be empty"));
    }
    Ok(claimgate_gateway::response_cache::ResponseCacheOptions {
        server,
        key_prefix: args.redis_key_prefix.clone(),
        seal_key: seal_key(args)?,
        buffer_bytes: usize::try_from(args.response_cache_buffer_mib.saturating_mul(1024 * 1024))
            .unwrap_or(usize::MAX),
    })
}

/// What serve says at start about the response cache (never the password).
fn describe_cache(server: &claimgate_config::ResponseCacheServer) {
    eprintln!(
        "response cache: {} (user {}, secret {} version {})",
        server.shown(),
        server.username.as_deref().unwrap_or("default"),
        claimgate_core::escape(&server.secret_id),
        server.secret_version
    );
    if server.tls && !server.verify_tls {
        eprintln!(
            "claimgate: warning: the response cache server's certificate is not verified (isSslVerifyDisabled): whoever can reach its address can read and forge cached answers"
        );
    }
}

/// Says on the terminal when a remote key set cannot be loaded at start: every request that
/// needs it gets 500, and the cause would otherwise be only in the execution log and /readyz.
/// Waits for each set's first attempt, at most 15 s (a fetch's time limit is 5 s).
async fn report_key_failures(gateway: std::sync::Arc<Gateway>) {
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Some(failures) = gateway.key_set_failures() {
            for failure in failures {
                eprintln!(
                    "claimgate: cannot load the key set of {}; requests that need it get 500 until it loads (retried in the background; see /readyz)",
                    claimgate_core::escape(&failure)
                );
            }
            return;
        }
    }
}

/// `--deployment`: `FILE` or `/prefix=FILE`, with `file://` dropped before the file.
fn deployment_arg(arg: &str) -> Result<String, String> {
    use crate::input::strip_file_url;
    Ok(match split_source(arg) {
        (Some(prefix), path) => format!("{prefix}={}", strip_file_url(path)),
        (None, path) => strip_file_url(path).to_owned(),
    })
}

/// A `--deployment` argument's path prefix (`/prefix=FILE`), if it has one, and its file.
fn split_source(arg: &str) -> (Option<&str>, &str) {
    match arg.split_once('=') {
        Some((prefix, path)) if prefix.starts_with('/') => (Some(prefix), path),
        _ => (None, arg),
    }
}

/// `--listen` and `--admin` as other servers take them: `PORT` is loopback only (the safe
/// default), `:PORT` every interface, `HOST:PORT` with HOST an address or a name resolved now
/// (its first address).
fn listen_addr(arg: &str) -> Result<SocketAddr, String> {
    use std::net::{Ipv4Addr, ToSocketAddrs as _};
    let port = |text: &str| {
        text.parse::<u16>()
            .map_err(|_| format!("'{text}' is not a port (0-65535)"))
    };
    if arg.bytes().all(|b| b.is_ascii_digit()) && !arg.is_empty() {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port(arg)?)));
    }
    if let Some(rest) = arg.strip_prefix(':') {
        return Ok(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port(rest)?)));
    }
    if let Ok(address) = arg.parse::<SocketAddr>() {
        return Ok(address);
    }
    let Some((host, text)) = arg.rsplit_once(':') else {
        return Err(format!(
            "'{arg}' is not an address: write PORT, :PORT or HOST:PORT (e.g. 8080, :8080, localhost:8080)"
        ));
    };
    let port = port(text)?;
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve '{host}': {e}"))?
        .next()
        .ok_or_else(|| format!("'{host}' has no address"))
}

pub(crate) fn run(args: &ServeArgs) -> u8 {
    match run_inner(args) {
        Ok(code) => code,
        Err(error) => {
            crate::output::report_error(&error, false);
            exit::USAGE
        }
    }
}

/// Loads one `--deployment FILE` argument and refuses what the gateway cannot enforce.
fn load_for_serving(arg: &str, secrets: &Secrets) -> Result<Deployment, InputError> {
    let (prefix, path) = split_source(arg);
    load_file_for_serving(prefix, path, None, secrets)
}

/// [`load_for_serving`] for one file, found in the directory `dir` of a `--deployment DIR`
/// when given.
fn load_file_for_serving(
    prefix: Option<&str>,
    path: &str,
    dir: Option<&str>,
    secrets: &Secrets,
) -> Result<Deployment, InputError> {
    let loaded = crate::input::load_deployment_in(path, prefix, dir)?;
    let deployment = loaded.deployment;
    if let Authentication::Unsupported { kind, reason } = &deployment.authentication {
        return Err(InputError::new(format!(
            "{path}: {kind} cannot be served: {reason}"
        )));
    }
    let missing = secrets.check(&deployment);
    if !missing.is_empty() {
        return Err(InputError {
            message: format!("{path}: secrets the deployment names cannot be resolved (--secrets)"),
            details: missing.iter().map(ToString::to_string).collect(),
        });
    }
    if !deployment.unenforced.is_empty() {
        return Err(InputError {
            message: format!(
                "{path}: refusing to serve members claimgate does not enforce yet (a gateway that skipped them would let in what OCI keeps out)"
            ),
            details: deployment.unenforced.clone(),
        });
    }
    let credentialed = credentialed_any_origin(&deployment);
    if !credentialed.is_empty() {
        return Err(InputError {
            message: format!(
                "{path}: refusing CORS allowedOrigins '*' with isAllowCredentialsEnabled on a deployment with mutualTls or an authorizer reading Cookie: any web page could read answers made with credentials the visitor's browser sends by itself (list the allowed origins)"
            ),
            details: credentialed,
        });
    }
    Ok(deployment)
}

/// Where a deployment whose requests carry credentials the browser sends by itself answers
/// any origin with `Access-Control-Allow-Credentials: true` (CORS `*` with credentials, which
/// echoes the origin): a client certificate (`mutualTls`). OAUTH2 sessions and authorizers
/// reading `Cookie` are the other such credentials; claimgate refuses to serve both already
/// (unsupported), so they need no rule here until they are served.
fn credentialed_any_origin(deployment: &Deployment) -> Vec<String> {
    if deployment.mutual_tls.is_none() && !authorizer_reads_cookie(deployment) {
        return Vec::new();
    }
    let risky = |cors: &claimgate_config::Cors| {
        cors.allow_credentials && cors.allowed_origins.iter().any(|o| o == "*")
    };
    let mut found = Vec::new();
    if deployment.cors.as_ref().is_some_and(risky) {
        found.push("requestPolicies.cors".to_owned());
    }
    for (i, route) in deployment.routes.iter().enumerate() {
        if route.cors.as_ref().is_some_and(risky) {
            found.push(format!("routes[{i}].requestPolicies.cors"));
        }
    }
    found
}

/// Reads the `--ca` files; each must hold at least one PEM certificate.
fn read_ca_files(paths: &[String]) -> Result<Vec<Vec<u8>>, String> {
    use rustls::pki_types::pem::PemObject as _;
    let mut files = Vec::new();
    for path in paths {
        let pem = read_file(path, "--ca", DATA_LIMIT)?;
        let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("--ca '{path}' is not PEM: {e}"))?;
        if certs.is_empty() {
            return Err(format!("--ca '{path}' holds no certificate"));
        }
        files.push(pem);
    }
    Ok(files)
}

/// A deployment as `serve` names it on the terminal: `/prefix (label)`, both escaped (they come
/// from the deployment file).
fn prefix_and_label(deployment: &Deployment) -> String {
    format!(
        "{} ({})",
        claimgate_core::escape(&deployment.path_prefix),
        claimgate_core::escape(deployment.label())
    )
}

/// Refuses deployments with an OAUTH2 failure policy when no `--session-key` is given.
fn needs_session_keys(deployments: &[Deployment], have_keys: bool) -> Result<(), InputError> {
    let without_keys: Vec<String> = deployments
        .iter()
        .filter(|d| matches!(&d.authentication, Authentication::Jwt(p) if p.oauth2.is_some()))
        .map(prefix_and_label)
        .collect();
    if have_keys || without_keys.is_empty() {
        return Ok(());
    }
    Err(InputError {
        message: "cannot serve: an OAUTH2 validationFailurePolicy needs --session-key FILE (32 random bytes, base64: openssl rand -base64 32 > FILE), the same on every replica".into(),
        details: without_keys,
    })
}

/// The `--session-key` files, in order (the first seals); `None` without any.
fn read_session_keys(
    paths: &[String],
) -> Result<Option<std::sync::Arc<claimgate_gateway::session::SessionKeys>>, InputError> {
    let mut keys = Vec::with_capacity(paths.len());
    for path in paths {
        let text = read_text(path, "--session-key", 4096).map_err(InputError::new)?;
        keys.push(
            claimgate_gateway::shared::SealKey::from_base64(&text).map_err(|e| {
                InputError::new(format!("cannot use --session-key '{path}': it {e}"))
            })?,
        );
    }
    Ok(claimgate_gateway::session::SessionKeys::new(&keys).map(std::sync::Arc::new))
}

/// Reads the secrets file, or none.
fn read_secrets(path: Option<&str>) -> Result<Secrets, String> {
    match path {
        None => Ok(Secrets::default()),
        Some(path) => {
            let text = read_text(path, "--secrets", DATA_LIMIT)?;
            Secrets::parse(&text).map_err(|e| format!("--secrets '{path}': {e}"))
        }
    }
}

fn run_inner(args: &ServeArgs) -> Result<u8, InputError> {
    let secrets = read_secrets(args.secrets.as_deref()).map_err(InputError::new)?;
    let shared_state = shared_state_options(args)?;
    let demo_mode = args.deployments.is_empty();
    let mut deployments = Vec::new();
    let mut demo = None;
    let mut execution_log = args.execution_log.clone();
    let mut access_log = args.access_log.clone();
    if demo_mode {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let generated = Demo::generate(now, 3600)
            .map_err(|e| InputError::new(format!("cannot make the demo key: {e}")))?;
        let dir = demo_dir().map_err(InputError::new)?;
        let file = dir.join("demo-deployment.json");
        std::fs::write(&file, &generated.deployment)
            .map_err(|e| InputError::new(format!("cannot write {}: {e}", file.display())))?;
        deployments.push(load_for_serving(
            &file.to_string_lossy(),
            &Secrets::default(),
        )?);
        execution_log
            .get_or_insert_with(|| dir.join("execution.log").to_string_lossy().into_owned());
        access_log.get_or_insert_with(|| dir.join("access.log").to_string_lossy().into_owned());
        demo = Some((generated, file));
    } else {
        match load_all(&args.deployments, &secrets) {
            Ok(loaded) => deployments = loaded,
            Err(errors) => {
                return Err(InputError {
                    message: "cannot serve: the deployments are not valid".into(),
                    details: errors,
                })
            }
        }
    }
    let resource_files = ResourceFiles::from_args(args);
    let (resources, warnings) = resource_files.load(&deployments)?;
    for warning in warnings {
        eprintln!("claimgate: warning: {warning}");
    }
    let session_keys = read_session_keys(&args.session_keys)?;
    needs_session_keys(&deployments, session_keys.is_some())?;
    let gateway_file = GatewayFile {
        path: args.gateway.clone(),
    };
    let (cache_server, warnings) = gateway_file.load(&secrets)?;
    for warning in warnings {
        eprintln!("claimgate: warning: {warning}");
    }
    gateway_file.check(&deployments, cache_server.is_some())?;
    if let Some(server) = &cache_server {
        describe_cache(server);
    }
    let response_cache = response_cache_options(args, cache_server)?;
    let missing_ca = needs_client_ca(&deployments, args.client_ca.is_some());
    if !missing_ca.is_empty() {
        return Err(InputError {
            message: "cannot serve: mutualTls needs --client-ca (and --tls-cert/--tls-key)".into(),
            details: missing_ca,
        });
    }
    // One single-threaded runtime per serving thread (this one runs the first, plus the logs,
    // reloads and the admin listener): a request and its backend call stay on one thread, with
    // none of the cross-thread wake-ups a shared work-stealing pool costs on every request
    // (BENCHMARKS.md: 73 -> 43 us of CPU per proxied request).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| InputError::new(format!("cannot start the runtime: {e}")))?;
    let threads = args.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        usize::from,
    );
    runtime.block_on(async {
        let execution_target = execution_log.unwrap_or_else(|| "-".into());
        let access_target = access_log.unwrap_or_else(|| "-".into());
        let execution = LogSink::open(&execution_target).await.map_err(|e| {
            InputError::new(format!(
                "cannot open execution log '{execution_target}': {e}"
            ))
        })?;
        let access = if access_target == execution_target {
            execution.clone()
        } else {
            LogSink::open(&access_target).await.map_err(|e| {
                InputError::new(format!("cannot open access log '{access_target}': {e}"))
            })?
        };
        let admin_listener = match args.admin {
            Some(admin) => Some(tokio::net::TcpListener::bind(admin).await.map_err(|e| {
                InputError::new(format!(
                    "cannot listen on {admin} (admin): {}",
                    bind_error(&e)
                ))
            })?),
            None => None,
        };
        // Before listening: from then on a signal drains instead of killing the process.
        let signalled = shutdown_signal();
        let mut listeners = serving_listeners(args.listen, threads).map_err(|e| {
            InputError::new(format!(
                "cannot listen on {}: {}",
                args.listen,
                bind_error(&e)
            ))
        })?;
        // Each serving thread takes its share of --max-connections.
        let max_connections = (args.max_connections as usize / listeners.len()).max(1);
        let listener = listeners.remove(0);
        let local = listener
            .local_addr()
            .map_err(|e| InputError::new(e.to_string()))?;
        let options = Options {
            read_timeout: Duration::from_secs(args.read_timeout),
            shutdown_grace: Duration::from_secs(args.shutdown_grace),
            jwks_cooldown: Duration::from_secs(args.jwks_cooldown),
            token_cache_bytes: args.token_cache_mib * 1024 * 1024,
            introspection: IntrospectionOptions {
                cache_max: args.introspection_cache_max.map(Duration::from_secs),
                concurrency: usize::from(args.introspection_concurrency),
                allowed_endpoints: args.allow_endpoints.clone().into(),
            },
            introspection_cache_bytes: args.introspection_cache_mib.saturating_mul(1024 * 1024),
            function_timeout: Duration::from_secs_f64(args.function_timeout),
            redact_claim_values: args.redact_claim_values,
            extra_roots: read_ca_files(&args.ca).map_err(InputError::new)?,
            trusted_proxies: TrustedProxies::new(args.trusted_proxies.clone()),
            max_connections,
            max_connection_age: Duration::from_secs(args.max_connection_age),
            shared_state,
            session_keys,
            response_cache,
            ..Options::default()
        };
        let labels: Vec<String> = deployments
            .iter()
            .map(prefix_and_label)
            .collect();
        let tls_files = TlsFiles::from_args(args);
        let tls = match &tls_files {
            Some(files) => Some(tls_config(files).map_err(InputError::new)?),
            None => None,
        };
        tokio::spawn(reopen_logs_on_sigusr1(execution.clone(), access.clone()));
        let logs = Logs { execution, access };
        let gateway = Gateway::start_with(deployments, resources, &secrets, logs.clone(), options)
            .await
            .map_err(|e| InputError::new(format!("cannot start the gateway: {e}")))?;
        // The troubleshooting page's address, for the demo's instructions.
        let mut page = None;
        if let Some(listener) = admin_listener {
            let admin_local = listener
                .local_addr()
                .map_err(|e| InputError::new(e.to_string()))?;
            let ui = claimgate_gateway::admin::ui_allowed(admin_local, args.admin_ui).then(|| {
                let recent = std::sync::Arc::new(claimgate_gateway::recent::RecentRequests::default());
                logs.execution.keep_recent(recent.clone());
                logs.access.keep_recent(recent.clone());
                claimgate_gateway::admin::AdminUi {
                    api: std::sync::Arc::new(crate::admin_api::CliAdminApi),
                    address: admin_local,
                    recent,
                }
            });
            if ui.is_some() {
                page = Some(format!("http://{admin_local}"));
                eprintln!(
                    "admin listener on http://{admin_local} (troubleshooting page /, /api/*, /livez, /readyz, /metrics)"
                );
            } else {
                eprintln!("admin listener on http://{admin_local} (/livez, /readyz, /metrics; the troubleshooting page needs a loopback address or --admin-ui)");
            }
            tokio::spawn(gateway.clone().serve_admin_with(
                listener,
                std::future::pending(),
                ui,
            ));
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        gateway.set_tls(tls);
        let sources: Vec<String> = match &demo {
            Some((_, file)) => vec![file.to_string_lossy().into_owned()],
            None => args.deployments.clone(),
        };
        tokio::spawn(watch_and_reload(
            gateway.clone(),
            sources,
            tls_files,
            args.secrets.clone(),
            resource_files,
            gateway_file,
            args.session_keys.clone(),
        ));
        tokio::spawn(gateway.clone().maintain_keys());
        tokio::spawn(report_key_failures(gateway.clone()));
        eprintln!(
            "claimgate listening on {scheme}://{local}, serving {}",
            labels.join(", ")
        );
        eprintln!(
            "execution log: {}   access log: {}",
            claimgate_core::escape(&execution_target),
            claimgate_core::escape(&access_target)
        );
        if let Some((demo, file)) = &demo {
            print_demo(
                local,
                demo,
                file,
                &execution_target,
                &access_target,
                page.as_deref(),
            );
        }
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let others = listeners
            .into_iter()
            .enumerate()
            .map(|(i, listener)| {
                serve_on_thread(i + 1, gateway.clone(), listener, stopping.clone())
            })
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| InputError::new(format!("cannot start a serving thread: {e}")))?;
        tokio::spawn(drain_then_stop(
            signalled,
            gateway.clone(),
            Duration::from_secs(args.drain_delay),
            stop,
        ));
        let served = gateway.serve(listener, stopped(stopping)).await;
        let mut failures = Vec::new();
        for other in others {
            match other.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failures.push(e),
                // The thread ended without saying how: it panicked.
                Err(_) => failures.push("a serving thread stopped unexpectedly".to_owned()),
            }
        }
        // The writer tasks end with the runtime: write what the last requests logged first.
        logs.flush().await;
        served.map_err(|e| InputError::new(format!("the server failed: {e}")))?;
        if let Some(failure) = failures.first() {
            return Err(InputError::new(format!("the server failed: {failure}")));
        }
        eprintln!("claimgate stopped");
        Ok(exit::OK)
    })
}

/// Where the demo writes its deployment file and logs: `$XDG_RUNTIME_DIR/claimgate-demo` when
/// the user has a runtime directory (private to the user, and the same one after a restart),
/// else a fresh private directory under the system's temporary directory. A fixed name there
/// would be shared by every user, and could be made beforehand by another one.
fn demo_dir() -> Result<PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt as _;
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute() && dir.is_dir())
    {
        let dir = runtime.join("claimgate-demo");
        return match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => Ok(dir),
            // Ours from an earlier run: nobody else can write in the runtime directory.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(dir),
            Err(e) => Err(format!("cannot create {}: {e}", dir.display())),
        };
    }
    use std::os::unix::fs::PermissionsExt as _;
    tempfile::Builder::new()
        .prefix("claimgate-demo-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
        .map(tempfile::TempDir::keep)
        .map_err(|e| {
            format!(
                "cannot create a directory in {}: {e}",
                std::env::temp_dir().display()
            )
        })
}

/// How the printed commands name this program: `claimgate` when that is what `PATH` finds,
/// else this executable's full path (after `cargo run`, nothing may be on `PATH`, or an
/// older install), so that the lines run as printed.
fn own_command() -> String {
    let Ok(exe) = std::env::current_exe().and_then(std::fs::canonicalize) else {
        return "claimgate".to_owned();
    };
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("claimgate"))
            .find(|candidate| candidate.is_file())
    });
    match on_path.and_then(|found| std::fs::canonicalize(found).ok()) {
        Some(found) if found == exe => "claimgate".to_owned(),
        _ => shell_quoted(&exe.to_string_lossy()),
    }
}

/// `text` as one shell word: as it is when plain, else in single quotes.
fn shell_quoted(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:@%,=".contains(&b));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

fn print_demo(
    local: SocketAddr,
    demo: &Demo,
    file: &std::path::Path,
    execution_log: &str,
    access_log: &str,
    page: Option<&str>,
) {
    let base = format!("http://{local}{PREFIX}");
    let claimgate = own_command();
    let execution_log = shell_quoted(execution_log);
    let access_log = shell_quoted(access_log);
    outln!();
    outln!(
        "The demo deployment is {} (tokens below are valid for 1 hour).",
        file.display()
    );
    outln!();
    outln!("Accepted (200):");
    outln!(
        "  curl -i {base}/hello -H 'Authorization: Bearer {}'",
        demo.good_token
    );
    outln!();
    outln!("Refused (401: the token was issued for another audience):");
    outln!(
        "  curl -i {base}/hello -H 'Authorization: Bearer {}'",
        demo.wrong_audience_token
    );
    outln!();
    outln!("Then ask why, with the opc-request-id header the refusal answered in place of ID:");
    outln!("  {claimgate} logs --file {execution_log} --file {access_log} --request-id ID");
    match page {
        Some(page) => {
            outln!(
                "or open the troubleshooting page, where the refusal is listed with its diagnosis:"
            );
            outln!("  {page}/");
            outln!("and verify a fix in one command (the token in token.txt):");
            outln!("  {claimgate} try {base}/hello --token @token.txt --admin {page}");
        }
        None => {
            outln!("or send and diagnose in one command (the token in token.txt):");
            outln!(
                "  {claimgate} try {base}/hello --token @token.txt --log {execution_log} --log {access_log}"
            );
            outln!("(with --admin 9091, http://127.0.0.1:9091/ serves the troubleshooting page)");
        }
    }
    outln!();
    outln!("Also: {base}/public needs no token; {base}/admin needs the demo:admin scope:");
    outln!(
        "  curl -i {base}/admin -H 'Authorization: Bearer {}'",
        demo.admin_token
    );
    outln!();
}

/// One deployment file a `--deployment` argument names: the file itself, or one of a
/// directory's (`--deployment DIR`).
struct DeploymentFile {
    prefix: Option<String>,
    path: String,
    /// The directory it was found in.
    dir: Option<String>,
}

/// Every deployment file the `--deployment` arguments name, directories listed now (see
/// [`crate::input::deployment_files_in`]); with the errors of directories that cannot be.
fn deployment_files(sources: &[String]) -> (Vec<DeploymentFile>, Vec<String>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for source in sources {
        let (prefix, path) = split_source(source);
        let prefix = prefix.map(str::to_owned);
        match crate::input::deployment_files_in(path) {
            Ok(None) => files.push(DeploymentFile {
                prefix,
                path: path.to_owned(),
                dir: None,
            }),
            Ok(Some(listed)) => files.extend(listed.into_iter().map(|file| DeploymentFile {
                prefix: prefix.clone(),
                path: file,
                dir: Some(path.to_owned()),
            })),
            Err(error) => errors.push(error),
        }
    }
    (files, errors)
}

/// Loads every `--deployment` argument (each file of a directory); all must be valid, with
/// distinct path prefixes and `deploymentId`s (the id names a deployment in logs and
/// `/api/check`: two would be mixed up), for the set to be used.
fn load_all(sources: &[String], secrets: &Secrets) -> Result<Vec<Deployment>, Vec<String>> {
    let (files, mut errors) = deployment_files(sources);
    let mut loaded: Vec<(&str, Deployment)> = Vec::new();
    for file in &files {
        let prefix = file.prefix.as_deref();
        match load_file_for_serving(prefix, &file.path, file.dir.as_deref(), secrets) {
            Ok(d) => loaded.push((&file.path, d)),
            Err(e) => {
                errors.push(e.message);
                errors.extend(e.details);
            }
        }
    }
    for (i, (path, a)) in loaded.iter().enumerate() {
        for (other, b) in &loaded[..i] {
            if b.path_prefix == a.path_prefix {
                errors.push(format!(
                    "two deployments share the path prefix {}: {other} and {path}",
                    a.path_prefix
                ));
            }
            if b.id == a.id {
                errors.push(format!(
                    "two deployments have the deploymentId '{}': {other} and {path} (give each file its own name or id)",
                    a.id
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(loaded.into_iter().map(|(_, d)| d).collect())
    } else {
        Err(errors)
    }
}

/// What a watched file is now, without reading it: its size, modification and change times,
/// device and inode once symlinks are followed, and the target of the name itself when it is a
/// symlink. An edit changes the times (and usually the size), an atomic rename or a Kubernetes
/// ConfigMap symlink swap changes the inode; a file is read only when one of them changed, never
/// every second.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: (i64, i64),
    changed: (i64, i64),
    device: u64,
    inode: u64,
    link: Option<std::path::PathBuf>,
}

/// The [`Stamp`] of each path, with the path: the deployment files of a directory are listed
/// again each time, so a file added or removed there changes the result too.
fn stamps(paths: &[String]) -> Vec<(String, Result<Stamp, String>)> {
    use std::os::unix::fs::MetadataExt as _;
    let stamp = |path: &str| {
        let metadata = std::fs::metadata(path).map_err(|e| e.to_string())?;
        Ok(Stamp {
            len: metadata.len(),
            modified: (metadata.mtime(), metadata.mtime_nsec()),
            changed: (metadata.ctime(), metadata.ctime_nsec()),
            device: metadata.dev(),
            inode: metadata.ino(),
            link: std::fs::read_link(path).ok(),
        })
    };
    let mut all = Vec::with_capacity(paths.len());
    for path in paths {
        match crate::input::deployment_files_in(path) {
            Ok(Some(files)) => all.extend(files.into_iter().map(|file| {
                let now = stamp(&file);
                (file, now)
            })),
            // A directory emptied or unreadable: compared by its error.
            Err(error) => all.push((path.clone(), Err(error))),
            Ok(None) => all.push((path.clone(), stamp(path))),
        }
    }
    all
}

/// Reloads the whole set on SIGHUP (always) and when a file changes (its [`Stamp`], checked
/// every second); an invalid set is rejected, logged, and the current one keeps serving.
async fn watch_and_reload(
    gateway: std::sync::Arc<Gateway>,
    sources: Vec<String>,
    tls_files: Option<TlsFiles>,
    secrets_file: Option<String>,
    resource_files: ResourceFiles,
    gateway_file: GatewayFile,
    session_key_files: Vec<String>,
) {
    let mut hangup = hangup_signal();
    // The files themselves (or directories of them): only deployment arguments have a
    // `/prefix=` (a TLS or secrets path with `=` in it is a path).
    let mut paths: Vec<String> = sources
        .iter()
        .map(|source| split_source(source).1.to_owned())
        .collect();
    if let Some(files) = &tls_files {
        paths.extend(files.paths());
    }
    paths.extend(secrets_file.clone());
    paths.extend(resource_files.paths().cloned());
    paths.extend(gateway_file.path.clone());
    paths.extend(session_key_files.iter().cloned());
    let mut last = stamps(&paths);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let forced = tokio::select! {
            _ = tick.tick() => false,
            _ = hangup.recv() => true,
        };
        let now = stamps(&paths);
        if !forced && now == last {
            continue;
        }
        last = now;
        let tls = match &tls_files {
            Some(files) => match tls_config(files) {
                Ok(config) => Some(config),
                Err(error) => {
                    gateway.reload_rejected(&[error]);
                    continue;
                }
            },
            None => None,
        };
        let secrets = match read_secrets(secrets_file.as_deref()) {
            Ok(secrets) => secrets,
            Err(error) => {
                gateway.reload_rejected(&[error]);
                continue;
            }
        };
        let sources = sources.clone();
        let for_loading = secrets.clone();
        let loaded = tokio::task::spawn_blocking(move || load_all(&sources, &for_loading)).await;
        match loaded {
            Ok(Ok(deployments)) => {
                let session_keys = match read_session_keys(&session_key_files).and_then(|keys| {
                    needs_session_keys(&deployments, keys.is_some()).map(|()| keys)
                }) {
                    Ok(keys) => keys,
                    Err(error) => {
                        let mut errors = vec![error.message];
                        errors.extend(error.details);
                        gateway.reload_rejected(&errors);
                        continue;
                    }
                };
                let client_ca = tls_files.as_ref().is_some_and(|f| f.client_ca.is_some());
                let missing_ca = needs_client_ca(&deployments, client_ca);
                if !missing_ca.is_empty() {
                    gateway.reload_rejected(&missing_ca);
                    continue;
                }
                let resources = match resource_files.load(&deployments) {
                    Ok((resources, _)) => resources,
                    Err(error) => {
                        let mut errors = vec![error.message];
                        errors.extend(error.details);
                        gateway.reload_rejected(&errors);
                        continue;
                    }
                };
                let cache_server = match gateway_file.load(&secrets).and_then(|(server, _)| {
                    gateway_file.check(&deployments, server.is_some())?;
                    Ok(server)
                }) {
                    Ok(server) => server,
                    Err(error) => {
                        let mut errors = vec![error.message];
                        errors.extend(error.details);
                        gateway.reload_rejected(&errors);
                        continue;
                    }
                };
                if let Err(error) = gateway.set_response_cache_server(cache_server) {
                    gateway.reload_rejected(&[error]);
                    continue;
                }
                if tls.is_some() {
                    gateway.set_tls(tls);
                }
                gateway.set_session_keys(session_keys);
                gateway.reload_with(deployments, resources, &secrets).await
            }
            Ok(Err(errors)) => gateway.reload_rejected(&errors),
            Err(panicked) => gateway.reload_rejected(&[format!("loading failed: {panicked}")]),
        }
    }
}

/// The files of the TLS listener, watched and reloaded with the configuration.
#[derive(Debug, Clone)]
struct TlsFiles {
    cert: String,
    key: String,
    client_ca: Option<String>,
}

impl TlsFiles {
    fn from_args(args: &ServeArgs) -> Option<Self> {
        Some(Self {
            cert: args.tls_cert.clone()?,
            key: args.tls_key.clone()?,
            client_ca: args.client_ca.clone(),
        })
    }

    fn paths(&self) -> Vec<String> {
        let mut paths = vec![self.cert.clone(), self.key.clone()];
        paths.extend(self.client_ca.clone());
        paths
    }
}

/// Deployments with `mutualTls` in effect when no client CA is configured: without one no
/// certificate can be verified, so they would refuse every request.
fn needs_client_ca(deployments: &[Deployment], client_ca: bool) -> Vec<String> {
    if client_ca {
        return Vec::new();
    }
    deployments
        .iter()
        .filter(|d| d.mutual_tls.is_some())
        .map(|d| {
            format!(
                "{} ({}): requestPolicies.mutualTls is in effect but --client-ca is not set",
                d.path_prefix,
                d.label()
            )
        })
        .collect()
}

/// The TLS listener from PEM files, offering h2 and HTTP/1.1; with a client CA, it asks
/// clients for a certificate without requiring one (deployments decide).
fn tls_config(files: &TlsFiles) -> Result<TlsServer, String> {
    use rustls::pki_types::pem::PemObject as _;
    let (cert, key) = (files.cert.as_str(), files.key.as_str());
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cert_pem = read_file(cert, "certificates from --tls-cert", DATA_LIMIT)?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot read certificates from --tls-cert '{cert}': {e}"))?;
    if certs.is_empty() {
        return Err(format!("--tls-cert '{cert}' holds no certificate"));
    }
    let key_pem = read_file(key, "a private key from --tls-key", DATA_LIMIT)?;
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("cannot read a private key from --tls-key '{key}': {e}"))?;
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client_auth = match &files.client_ca {
        Some(path) => {
            // Checked here (regular file, within the limit): the reader below opens it by path.
            read_file(path, "--client-ca", DATA_LIMIT)?;
            Some(ClientAuth::from_pem_file(path)?)
        }
        None => None,
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match &client_auth {
        Some(auth) => builder.with_client_cert_verifier(auth.clone()),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, private_key)
        .map_err(|e| format!("--tls-cert and --tls-key do not form a usable pair: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsServer {
        config: std::sync::Arc::new(config),
        client_auth,
    })
}

/// SIGUSR1 reopens the log files, for rotation (rename the file, then send the signal).
async fn reopen_logs_on_sigusr1(execution: LogSink, access: LogSink) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut usr1) = signal(SignalKind::user_defined1()) else {
            return;
        };
        while usr1.recv().await.is_some() {
            execution.reopen();
            access.reopen();
        }
    }
    #[cfg(not(unix))]
    drop((execution, access));
}

/// SIGHUP as a stream (never fires where there are no signals).
fn hangup_signal() -> tokio::sync::mpsc::Receiver<()> {
    let (sender, receiver) = tokio::sync::mpsc::channel(1);
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            let _ = sender.try_send(());
        }
    });
    #[cfg(not(unix))]
    drop(sender);
    receiver
}

/// A bind failure as the operator should read it: a port in use says so plainly.
fn bind_error(error: &std::io::Error) -> String {
    if error.kind() == std::io::ErrorKind::AddrInUse {
        "address in use (another process listens on this port)".to_owned()
    } else {
        error.to_string()
    }
}

/// Listening sockets on `address`, one per serving thread. With several, each has
/// `SO_REUSEPORT`, so the kernel spreads new connections over the threads; the first binds the
/// address as given (port 0 picks a port) and the others the port it got.
///
/// `SO_REUSEPORT` would also let a second process (another claimgate, an old instance with an
/// old policy) share the port, the kernel splitting connections between them. So the port is
/// first bound by a probe socket without it, which fails when anything listens there (two
/// instances started in the same instant could both pass it; a running one is always found).
fn serving_listeners(
    address: SocketAddr,
    threads: usize,
) -> std::io::Result<Vec<tokio::net::TcpListener>> {
    let socket = |address: SocketAddr| -> std::io::Result<tokio::net::TcpSocket> {
        let socket = match address {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        // Only so that connections of a previous run in TIME_WAIT do not block the port.
        socket.set_reuseaddr(true)?;
        Ok(socket)
    };
    let bind = |address: SocketAddr| -> std::io::Result<tokio::net::TcpListener> {
        let socket = socket(address)?;
        #[cfg(unix)]
        if threads > 1 {
            socket.set_reuseport(true)?;
        }
        socket.bind(address)?;
        socket.listen(1024)
    };
    let address = if threads > 1 && cfg!(unix) {
        let probe = socket(address)?;
        probe.bind(address)?;
        probe.local_addr()?
    } else {
        address
    };
    let first = bind(address)?;
    let bound = first.local_addr()?;
    let mut listeners = vec![first];
    // Without SO_REUSEPORT a second socket cannot share the port: serve on one thread.
    if cfg!(unix) {
        for _ in 1..threads {
            listeners.push(bind(bound)?);
        }
    }
    Ok(listeners)
}

/// Serves `listener` on a thread of its own, with its own single-threaded runtime, until
/// `stopping` turns true; the receiver gets how it ended.
fn serve_on_thread(
    index: usize,
    gateway: std::sync::Arc<Gateway>,
    listener: tokio::net::TcpListener,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<tokio::sync::oneshot::Receiver<Result<(), String>>> {
    let (done, ended) = tokio::sync::oneshot::channel();
    // The socket moves to the other runtime's reactor.
    let listener = listener.into_std()?;
    std::thread::Builder::new()
        .name(format!("claimgate-serve-{index}"))
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .and_then(|runtime| {
                    runtime.block_on(async {
                        let listener = tokio::net::TcpListener::from_std(listener)?;
                        gateway.serve(listener, stopped(stopping)).await
                    })
                });
            let _ = done.send(result.map_err(|e| e.to_string()));
        })?;
    Ok(ended)
}

/// On SIGTERM/SIGINT: drains at once (`/readyz` 503, connections closing after their
/// answer), keeps accepting for `delay` (a second signal cuts it short), then stops every
/// serving thread's accepting.
async fn drain_then_stop(
    signalled: impl std::future::Future<Output = ()>,
    gateway: std::sync::Arc<Gateway>,
    delay: Duration,
    stop: tokio::sync::watch::Sender<bool>,
) {
    signalled.await;
    gateway.begin_draining();
    eprintln!(
        "claimgate draining: /readyz answers 503; accepting for {} more second(s)",
        delay.as_secs()
    );
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        () = shutdown_signal() => {}
    }
    let _ = stop.send(true);
}

/// Resolves once `stopping` turns true (or its sender is gone).
async fn stopped(mut stopping: tokio::sync::watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// SIGTERM or SIGINT. The handlers are installed by this call, not when the future is first
/// polled: a signal arriving between the start of listening and that poll would otherwise kill
/// the process at once, resetting the connections it had accepted.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, Signal, SignalKind};
        let term = signal(SignalKind::terminate()).ok();
        let interrupt = signal(SignalKind::interrupt()).ok();
        let received = |signal: Option<Signal>| async move {
            match signal {
                Some(mut signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        async move {
            tokio::select! {
                () = received(term) => {}
                () = received(interrupt) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `--function-timeout`: a positive number of seconds, at most an hour.
fn parse_function_timeout(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds <= 3600.0 => Ok(seconds),
        _ => Err(format!(
            "'{text}' is not a number of seconds between 0 and 3600"
        )),
    }
}

/// The custom authentication policies of a deployment (its own, or its servers').
fn custom_policies(
    deployment: &Deployment,
) -> impl Iterator<Item = &claimgate_config::CustomAuthentication> {
    let (own, dynamic) = match &deployment.authentication {
        Authentication::Custom(policy) => (Some(&**policy), None),
        Authentication::Dynamic(dynamic) => (None, Some(&dynamic.servers)),
        _ => (None, None),
    };
    own.into_iter().chain(
        dynamic
            .into_iter()
            .flatten()
            .filter_map(|s| match &s.policy {
                claimgate_config::ServerPolicy::Custom(policy) => Some(policy),
                claimgate_config::ServerPolicy::Jwt(_) => None,
            }),
    )
}

/// Whether an authorizer function reads the `Cookie` header (a credential the browser sends
/// by itself).
fn authorizer_reads_cookie(deployment: &Deployment) -> bool {
    custom_policies(deployment).any(|p| match &p.input {
        claimgate_config::AuthorizerInput::Multi(arguments) => arguments.iter().any(|(_, v)| {
            v.table == claimgate_config::ContextTable::Headers
                && v.key
                    .as_deref()
                    .is_some_and(|k| k.eq_ignore_ascii_case("cookie"))
        }),
        claimgate_config::AuthorizerInput::Single(claimgate_config::TokenLocation::Header {
            name,
            ..
        }) => name.eq_ignore_ascii_case("cookie"),
        claimgate_config::AuthorizerInput::Single(_) => false,
    })
}
