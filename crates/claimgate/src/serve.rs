//! `claimgate serve`: load and check every deployment, then run the gateway until SIGTERM or
//! SIGINT. Without `--deployment` it serves the bundled demo.

use crate::exit;
use crate::input::{load_deployment, InputError};
use claimgate_config::{Authentication, Deployment};
use claimgate_gateway::demo::{Demo, PREFIX};
use claimgate_gateway::{Gateway, LogSink, Logs, Options};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// A deployment file (repeatable); write /prefix=FILE for a bare specification.
    #[arg(long = "deployment", value_name = "FILE|/prefix=FILE")]
    deployments: Vec<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,
    /// Execution log file (- for stdout).
    #[arg(long, value_name = "FILE")]
    execution_log: Option<String>,
    /// Access log file (- for stdout).
    #[arg(long, value_name = "FILE")]
    access_log: Option<String>,
    /// Secrets file for introspection clients (not used yet: no policy needs one).
    #[arg(long, value_name = "FILE")]
    secrets: Option<String>,
    /// Seconds allowed to read a request's headers.
    #[arg(long, default_value_t = 15, value_name = "SECONDS")]
    read_timeout: u64,
    /// Seconds in-flight requests may take to finish after SIGTERM/SIGINT.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    shutdown_grace: u64,
    /// Seconds between two JWKS fetch attempts of one deployment (unknown-kid refetch cooldown).
    #[arg(long, default_value_t = 30, value_name = "SECONDS", hide = true)]
    jwks_cooldown: u64,
    /// Serve HTTPS on --listen with this certificate chain (PEM); reloaded with the config.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<String>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<String>,
    /// Start the admin listener (/livez, /readyz, /metrics; plain HTTP) on this address.
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
    /// Memory for the verified-token cache, in MiB (0 turns it off).
    #[arg(long, default_value_t = 32, value_name = "MIB")]
    token_cache_mib: u64,
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

/// Loads one `--deployment` argument and refuses what the gateway cannot enforce.
fn load_for_serving(arg: &str) -> Result<Deployment, InputError> {
    let (prefix, path) = match arg.split_once('=') {
        Some((prefix, path)) if prefix.starts_with('/') => (Some(prefix), path),
        _ => (None, arg),
    };
    let loaded = load_deployment(path, prefix)?;
    let deployment = loaded.deployment;
    if let Authentication::Unsupported { kind, reason } = &deployment.authentication {
        return Err(InputError::new(format!(
            "{path}: {kind} cannot be served: {reason}"
        )));
    }
    if !deployment.unenforced.is_empty() {
        return Err(InputError {
            message: format!(
                "{path}: refusing to serve members claimgate does not enforce yet (a gateway that skipped them would let in what OCI keeps out)"
            ),
            details: deployment.unenforced.clone(),
        });
    }
    Ok(deployment)
}

fn run_inner(args: &ServeArgs) -> Result<u8, InputError> {
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
        let dir = std::env::temp_dir().join("claimgate-demo");
        std::fs::create_dir_all(&dir)
            .map_err(|e| InputError::new(format!("cannot create {}: {e}", dir.display())))?;
        let file = dir.join("demo-deployment.json");
        std::fs::write(&file, &generated.deployment)
            .map_err(|e| InputError::new(format!("cannot write {}: {e}", file.display())))?;
        deployments.push(load_for_serving(&file.to_string_lossy())?);
        execution_log
            .get_or_insert_with(|| dir.join("execution.log").to_string_lossy().into_owned());
        access_log.get_or_insert_with(|| dir.join("access.log").to_string_lossy().into_owned());
        demo = Some((generated, file));
    } else {
        match load_all(&args.deployments) {
            Ok(loaded) => deployments = loaded,
            Err(errors) => {
                return Err(InputError {
                    message: "cannot serve: the deployments are not valid".into(),
                    details: errors,
                })
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| InputError::new(format!("cannot start the runtime: {e}")))?;
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
        let admin_listener =
            match args.admin {
                Some(admin) => Some(tokio::net::TcpListener::bind(admin).await.map_err(|e| {
                    InputError::new(format!("cannot listen on {admin} (admin): {e}"))
                })?),
                None => None,
            };
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| InputError::new(format!("cannot listen on {}: {e}", args.listen)))?;
        let local = listener
            .local_addr()
            .map_err(|e| InputError::new(e.to_string()))?;
        let options = Options {
            read_timeout: Duration::from_secs(args.read_timeout),
            shutdown_grace: Duration::from_secs(args.shutdown_grace),
            jwks_cooldown: Duration::from_secs(args.jwks_cooldown),
            token_cache_bytes: args.token_cache_mib * 1024 * 1024,
        };
        let labels: Vec<String> = deployments
            .iter()
            .map(|d| format!("{} ({})", d.path_prefix, d.label()))
            .collect();
        let tls_files = args.tls_cert.clone().zip(args.tls_key.clone());
        let tls = match &tls_files {
            Some((cert, key)) => Some(tls_config(cert, key).map_err(InputError::new)?),
            None => None,
        };
        let gateway = Gateway::start(deployments, Logs { execution, access }, options)
            .await
            .map_err(|e| InputError::new(format!("cannot start the gateway: {e}")))?;
        if let Some(listener) = admin_listener {
            let admin_local = listener
                .local_addr()
                .map_err(|e| InputError::new(e.to_string()))?;
            eprintln!("admin listener on http://{admin_local} (/livez, /readyz, /metrics)");
            tokio::spawn(
                gateway
                    .clone()
                    .serve_admin(listener, std::future::pending()),
            );
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        gateway.set_tls(tls);
        let sources: Vec<String> = match &demo {
            Some((_, file)) => vec![file.to_string_lossy().into_owned()],
            None => args.deployments.clone(),
        };
        tokio::spawn(watch_and_reload(gateway.clone(), sources, tls_files));
        tokio::spawn(gateway.clone().maintain_keys());
        eprintln!(
            "claimgate listening on {scheme}://{local}, serving {}",
            labels.join(", ")
        );
        eprintln!("execution log: {execution_target}   access log: {access_target}");
        if let Some((demo, file)) = &demo {
            print_demo(local, demo, file, &execution_target, &access_target);
        }
        gateway
            .serve(listener, shutdown_signal())
            .await
            .map_err(|e| InputError::new(format!("the server failed: {e}")))?;
        eprintln!("claimgate stopped");
        Ok(exit::OK)
    })
}

fn print_demo(
    local: SocketAddr,
    demo: &Demo,
    file: &std::path::Path,
    execution_log: &str,
    access_log: &str,
) {
    let base = format!("http://{local}{PREFIX}");
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
    outln!("Then ask why, with the opc-request-id the refusal answered:");
    outln!(
        "  claimgate logs --file {execution_log} --file {access_log} --request-id <opc-request-id>"
    );
    outln!();
    outln!("Also: {base}/public needs no token; {base}/admin needs the demo:admin scope:");
    outln!(
        "  curl -i {base}/admin -H 'Authorization: Bearer {}'",
        demo.admin_token
    );
    outln!();
}

/// Loads every `--deployment` argument; all must be valid for the set to be used.
fn load_all(sources: &[String]) -> Result<Vec<Deployment>, Vec<String>> {
    let mut deployments = Vec::new();
    let mut errors = Vec::new();
    for source in sources {
        match load_for_serving(source) {
            Ok(d) => deployments.push(d),
            Err(e) => {
                errors.push(e.message);
                errors.extend(e.details);
            }
        }
    }
    for (i, a) in deployments.iter().enumerate() {
        if deployments[..i]
            .iter()
            .any(|b| b.path_prefix == a.path_prefix)
        {
            errors.push(format!(
                "two deployments share the path prefix {}",
                a.path_prefix
            ));
        }
    }
    if errors.is_empty() {
        Ok(deployments)
    } else {
        Err(errors)
    }
}

/// What a deployment file is now: its bytes (following symlinks), or why it cannot be read.
/// Comparing contents, not modification times, sees atomic renames and Kubernetes ConfigMap
/// symlink swaps alike.
fn fingerprint(sources: &[String]) -> Vec<Result<Vec<u8>, String>> {
    sources
        .iter()
        .map(|source| {
            let path = match source.split_once('=') {
                Some((prefix, path)) if prefix.starts_with('/') => path,
                _ => source.as_str(),
            };
            std::fs::read(path).map_err(|e| e.to_string())
        })
        .collect()
}

/// Reloads the whole set on SIGHUP (always) and when a file's contents change (checked every
/// second); an invalid set is rejected, logged, and the current one keeps serving.
async fn watch_and_reload(
    gateway: std::sync::Arc<Gateway>,
    sources: Vec<String>,
    tls_files: Option<(String, String)>,
) {
    let mut hangup = hangup_signal();
    let watched = |sources: &[String]| {
        let mut all = fingerprint(sources);
        if let Some((cert, key)) = &tls_files {
            all.extend(fingerprint(&[cert.clone(), key.clone()]));
        }
        all
    };
    let mut last = watched(&sources);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let forced = tokio::select! {
            _ = tick.tick() => false,
            _ = hangup.recv() => true,
        };
        let now = watched(&sources);
        if !forced && now == last {
            continue;
        }
        last = now;
        let tls = match &tls_files {
            Some((cert, key)) => match tls_config(cert, key) {
                Ok(config) => Some(config),
                Err(error) => {
                    gateway.reload_rejected(&[error]);
                    continue;
                }
            },
            None => None,
        };
        let sources = sources.clone();
        let loaded = tokio::task::spawn_blocking(move || load_all(&sources)).await;
        match loaded {
            Ok(Ok(deployments)) => {
                if tls.is_some() {
                    gateway.set_tls(tls);
                }
                gateway.reload(deployments).await
            }
            Ok(Err(errors)) => gateway.reload_rejected(&errors),
            Err(panicked) => gateway.reload_rejected(&[format!("loading failed: {panicked}")]),
        }
    }
}

/// A TLS server configuration from PEM files, offering h2 and HTTP/1.1.
fn tls_config(cert: &str, key: &str) -> Result<std::sync::Arc<rustls::ServerConfig>, String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read certificates from --tls-cert '{cert}': {e}"))?;
    if certs.is_empty() {
        return Err(format!("--tls-cert '{cert}' holds no certificate"));
    }
    let private_key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read a private key from --tls-key '{key}': {e}"))?;
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, private_key)
        .map_err(|e| format!("--tls-cert and --tls-key do not form a usable pair: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(std::sync::Arc::new(config))
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

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
