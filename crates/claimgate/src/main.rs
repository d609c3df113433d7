//! `claimgate`: the command line. Glue only: it parses flags, reads files, obtains key material
//! and the time, calls the same verdict the gateway enforces, and prints it.

#![forbid(unsafe_code)]

/// `println!` that ignores a closed stdout (`claimgate ... | head` must not panic).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod admin_api;
mod check;
mod check_function;
mod decode;
mod input;
mod introspect;
mod logs;
mod output;
mod serve;
mod subscriptions;
mod token;
mod try_cmd;
mod validate;

use clap::{Parser, Subcommand, ValueEnum};

/// mimalloc instead of glibc malloc: the gateway's per-request buffers are small and
/// short-lived, and glibc's free lists and consolidation cost more than the work they hold
/// (BENCHMARKS.md, "Where the time goes", issue 20).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

/// Exit codes shared by every command (SPEC "Command line").
pub(crate) mod exit {
    pub(crate) const OK: u8 = 0;
    pub(crate) const DENIED: u8 = 1;
    pub(crate) const USAGE: u8 = 2;
    pub(crate) const UNKNOWN: u8 = 3;
}

/// The end of `check --help`: what scripts test, and a command to start from.
const CHECK_HELP: &str = "Exit codes:\n  0  allowed\n  1  denied\n  2  usage or configuration error\n  3  could not evaluate (keys or introspection endpoint unreachable)\n\nExample:\n  claimgate check --deployment deployment.json --request 'GET /v1/orders' \\\n      --token @token.txt --jwks jwks.json -o json";

/// The end of `try --help`: its exit codes differ from `check`'s where the gateway fails.
const TRY_HELP: &str = "Exit codes:\n  0  the request reached the backend or a stock response (without --admin/--log: 2xx or 3xx)\n  1  the gateway refused it itself (400, 401, 403, 404, 405, 413, 415, 429, 431)\n  2  usage error\n  3  the gateway answered 5xx of its own, could not be reached, or its records could not be read\n\nExample:\n  claimgate try http://127.0.0.1:8080/v1/orders --token @token.txt --admin http://127.0.0.1:9091";

#[derive(Debug, Parser)]
#[command(
    name = "claimgate",
    version,
    about = "API gateway and token troubleshooter for OCI API Gateway deployments",
    long_about = "claimgate judges tokens exactly as an OCI API Gateway deployment would, and \
                  explains every check: what the policy expected, what the token carried, and \
                  how to fix it.\n\nExit codes: 0 allowed/ok, 1 denied, 2 usage or \
                  configuration error, 3 could not evaluate (keys unreachable)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the verdict the gateway would give a request, check by check.
    #[command(after_help = CHECK_HELP)]
    Check(Box<check::CheckArgs>),
    /// Show a token's header and claims, with times in UTC (never verifies).
    Decode(decode::DecodeArgs),
    /// Load deployment files and report every problem with its JSON path.
    Validate(validate::ValidateArgs),
    /// Run the gateway (without --deployment: the bundled demo).
    Serve(Box<serve::ServeArgs>),
    /// Show the log records of one request and what failed.
    Logs(logs::LogsArgs),
    /// Send a request to a running gateway and show what it recorded and why (verify a fix).
    #[command(after_help = TRY_HELP)]
    Try(try_cmd::TryArgs),
    /// Introspect a token at the deployment's endpoint and judge the answer against the policy.
    Introspect(Box<introspect::IntrospectArgs>),
    /// Print a signed JWT for testing a deployment locally (with a key made for the test).
    Token(token::TokenArgs),
    /// Print a shell completion script (e.g. `claimgate completions bash > ~/.local/share/bash-completion/completions/claimgate`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Decode(args) => decode::run(&args),
        Command::Validate(args) => validate::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Logs(args) => logs::run(&args),
        Command::Introspect(args) => introspect::run(&args),
        Command::Try(args) => try_cmd::run(&args),
        Command::Token(args) => token::run(&args),
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            use std::io::Write as _;
            // Into memory first: a closed stdout (`| head`) must not panic.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "claimgate", &mut script);
            let _ = std::io::stdout().write_all(&script);
            exit::OK
        }
    };
    ExitCode::from(code)
}
