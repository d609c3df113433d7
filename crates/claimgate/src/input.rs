//! Reading what the user gives: tokens (`TOKEN`, `@FILE`, `-`), times, requests and
//! deployment files.

use claimgate_config::{load_str, Diagnostic, LoadOptions, Loaded, MAX_FILE_BYTES};
use claimgate_core::UnixTime;
use std::io::Read as _;
use std::path::Path;

/// Deployment files: OCI's own limit for a specification (2 MiB).
pub(crate) const DEPLOYMENT_LIMIT: u64 = MAX_FILE_BYTES as u64;
/// A token file (`--token @FILE`): far above any real token.
pub(crate) const TOKEN_LIMIT: u64 = 64 * 1024;
/// Key sets, certificates and keys, secrets files and recorded introspection answers.
pub(crate) const DATA_LIMIT: u64 = 1024 * 1024;

/// Reads a file the user named, whole, if it is a regular file once symlinks are followed
/// (Kubernetes volumes are symlinks) of at most `limit` bytes; else an error naming the file and
/// the limit. A FIFO would block the open and `/dev/zero` never ends: both are refused by their
/// metadata before opening, the open does not block (a file swapped meanwhile is checked again
/// on the handle), and at most `limit + 1` bytes are ever read. `what` names the file as the
/// user gave it (`deployment file`, `--jwks`, ...).
pub(crate) fn read_file(path: &str, what: &str, limit: u64) -> Result<Vec<u8>, String> {
    let path = strip_file_url(path);
    let (file, length) = open_checked(path, what, limit)?;
    let mut bytes = Vec::with_capacity(usize::try_from(length).unwrap_or(0));
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {what} '{path}': {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(path, what, limit));
    }
    Ok(bytes)
}

/// OCI CLI users write file arguments as `file://PATH`; the prefix is dropped (the rest is the
/// path as given, relative or absolute: `file:///etc/x` is `/etc/x`).
pub(crate) fn strip_file_url(arg: &str) -> &str {
    arg.strip_prefix("file://").unwrap_or(arg)
}

/// Clap's parser for file arguments: [`strip_file_url`] at parse time, so every later use of
/// the path (reading, watching for reloads, messages) sees the path itself.
pub(crate) fn file_arg(arg: &str) -> Result<String, String> {
    Ok(strip_file_url(arg).to_owned())
}

/// [`read_file`] for text (UTF-8).
pub(crate) fn read_text(path: &str, what: &str, limit: u64) -> Result<String, String> {
    String::from_utf8(read_file(path, what, limit)?)
        .map_err(|_| format!("cannot read {what} '{path}': it is not UTF-8 text"))
}

/// Opens a file the user named for streaming (`logs --file`): a regular file once symlinks are
/// followed, opened without blocking; it is read line by line, never whole.
pub(crate) fn open_regular(path: &str, what: &str) -> Result<std::fs::File, String> {
    open_checked(strip_file_url(path), what, u64::MAX).map(|(file, _)| file)
}

/// Opens `path` without blocking if it is a regular file (symlinks followed) of at most `limit`
/// bytes, checked by its metadata before the open and again on the handle; with its length.
fn open_checked(path: &str, what: &str, limit: u64) -> Result<(std::fs::File, u64), String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let cannot = |e: std::io::Error| format!("cannot read {what} '{path}': {e}");
    check_metadata(path, what, limit, &std::fs::metadata(path).map_err(cannot)?)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(cannot)?;
    let metadata = file.metadata().map_err(cannot)?;
    check_metadata(path, what, limit, &metadata)?;
    Ok((file, metadata.len()))
}

fn check_metadata(
    path: &str,
    what: &str,
    limit: u64,
    metadata: &std::fs::Metadata,
) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt as _;
    let kind = metadata.file_type();
    if !kind.is_file() {
        let found = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a file"
        };
        return Err(format!(
            "cannot read {what} '{path}': it is {found}, not a regular file"
        ));
    }
    if metadata.len() > limit {
        return Err(too_large(path, what, limit));
    }
    Ok(())
}

fn too_large(path: &str, what: &str, limit: u64) -> String {
    let human = if limit.is_multiple_of(1024 * 1024) {
        format!("{} MiB", limit / (1024 * 1024))
    } else {
        format!("{} KiB", limit / 1024)
    };
    format!("cannot read {what} '{path}': it is larger than the limit of {human} ({limit} bytes)")
}

/// A problem with the user's input, with details (one per line).
#[derive(Debug)]
pub(crate) struct InputError {
    pub(crate) message: String,
    pub(crate) details: Vec<String>,
}

impl InputError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            details: Vec::new(),
        }
    }
}

/// Reads a token argument: the token itself, `@FILE`, or `-` for stdin. Surrounding white
/// space, a leading `Authorization:` and a leading `Bearer ` are dropped.
pub(crate) fn read_token(arg: &str) -> Result<String, InputError> {
    let raw = if arg == "-" {
        let mut text = String::new();
        std::io::stdin()
            .take(TOKEN_LIMIT + 1)
            .read_to_string(&mut text)
            .map_err(|e| InputError::new(format!("cannot read the token from stdin: {e}")))?;
        if text.len() as u64 > TOKEN_LIMIT {
            return Err(InputError::new(
                "cannot read the token from stdin: it is larger than the limit of 64 KiB",
            ));
        }
        text
    } else if let Some(path) = arg.strip_prefix('@') {
        read_text(path, "token file", TOKEN_LIMIT).map_err(InputError::new)?
    } else {
        arg.to_owned()
    };
    let mut trimmed = raw.trim();
    // A header line pasted whole from curl or a browser: `Authorization: Bearer ...`.
    if let Some((name, rest)) = trimmed.split_once(':') {
        if name.trim().eq_ignore_ascii_case("authorization") {
            trimmed = rest.trim();
        }
    }
    let token = match trimmed.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => trimmed,
    };
    Ok(token.to_owned())
}

/// Parses `--now`: seconds since 1970, or RFC 3339.
pub(crate) fn parse_now(arg: Option<&str>) -> Result<UnixTime, InputError> {
    match arg {
        None => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|_| InputError::new("the system clock is before 1970"))?;
            Ok(UnixTime(now.as_secs() as i64))
        }
        Some(text) => {
            if let Ok(seconds) = text.parse::<i64>() {
                return Ok(UnixTime(seconds));
            }
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .map(|t| UnixTime(t.unix_timestamp()))
                .map_err(|_| {
                    InputError::new(format!(
                        "--now '{text}' is neither seconds since 1970 nor RFC 3339 (e.g. 2026-11-28T16:00:00Z)"
                    ))
                })
        }
    }
}

/// A duration as people write it: `90`, `90s`, `15m`, `1h`, `2d`, or combined (`1h30m`).
pub(crate) fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(seconds);
    }
    let (mut total, mut number) = (0u64, None::<u64>);
    for c in text.chars() {
        if let Some(digit) = c.to_digit(10) {
            number = Some(
                number
                    .unwrap_or(0)
                    .checked_mul(10)?
                    .checked_add(u64::from(digit))?,
            );
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        total = total.checked_add(number.take()?.checked_mul(unit)?)?;
    }
    number
        .is_none()
        .then_some(total)
        .filter(|_| !text.is_empty())
}

/// The deployment files of a `--deployment DIR`: every `*.json` entry directly in `dir`,
/// sorted by name, symlinks followed (a Kubernetes ConfigMap volume's `orders.json ->
/// ..data/orders.json`); hidden names are skipped (the volume's own `..data` and
/// `..2026_...` entries, editors' temporary files). `None` when `dir` is not a directory
/// (symlinks followed); an error when it cannot be listed or holds no such file.
pub(crate) fn deployment_files_in(dir: &str) -> Result<Option<Vec<String>>, String> {
    json_files_in(dir, "deployment directory")
}

/// [`deployment_files_in`] for any directory of JSON files (`--usage-plans DIR`,
/// `--subscribers DIR`); `what` names the directory in messages.
pub(crate) fn json_files_in(dir: &str, what: &str) -> Result<Option<Vec<String>>, String> {
    use std::os::unix::ffi::OsStrExt as _;
    let dir = strip_file_url(dir);
    if !std::fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
        return Ok(None);
    }
    let cannot = |e: std::io::Error| format!("cannot list the {what} '{dir}': {e}");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(cannot)? {
        let name = entry.map_err(cannot)?.file_name();
        let bytes = name.as_bytes();
        if bytes.starts_with(b".") || !bytes.ends_with(b".json") {
            continue;
        }
        let Some(name) = name.to_str() else {
            return Err(format!(
                "the {what} '{dir}' holds a file name that is not UTF-8: {}",
                name.to_string_lossy()
            ));
        };
        files.push(Path::new(dir).join(name).to_string_lossy().into_owned());
    }
    if files.is_empty() {
        return Err(format!(
            "the {what} '{dir}' holds no *.json file (hidden files are skipped)"
        ));
    }
    files.sort_unstable();
    Ok(Some(files))
}

/// Loads a deployment file, or every error it has.
pub(crate) fn load_deployment(path: &str, path_prefix: Option<&str>) -> Result<Loaded, InputError> {
    load_deployment_in(path, path_prefix, None)
}

/// [`load_deployment`] for a file found in the directory `dir` (`--deployment DIR`): there a
/// bare specification needs the directory's prefix (`/prefix=DIR`), since `/` for every bare
/// file of a directory would be an accident.
pub(crate) fn load_deployment_in(
    path: &str,
    path_prefix: Option<&str>,
    dir: Option<&str>,
) -> Result<Loaded, InputError> {
    let path = strip_file_url(path);
    let text = read_text(path, "deployment file", DEPLOYMENT_LIMIT).map_err(InputError::new)?;
    if let (Some(dir), None) = (dir, path_prefix) {
        if is_bare_specification(&text) {
            return Err(InputError::new(format!(
                "{path}: a bare specification (no pathPrefix) in a deployment directory needs a prefix: write --deployment /prefix={dir}"
            )));
        }
    }
    let name = Path::new(path)
        .file_stem()
        .map(|s| s.to_string_lossy().trim_end_matches(".kebab").to_owned())
        .unwrap_or_default();
    let options = LoadOptions {
        path_prefix: path_prefix.map(str::to_owned),
        name,
    };
    load_str(&text, &options).map_err(|rejected| InputError {
        message: format!(
            "{path}: the deployment file is not valid ({} problem{})",
            rejected.errors.len(),
            plural(rejected.errors.len())
        ),
        details: rejected.errors.iter().map(Diagnostic::to_string).collect(),
    })
}

/// Whether `text` is a bare specification: a JSON object that is neither a deployment (with
/// `specification`) nor `oci api-gateway deployment get` output (with `data`).
fn is_bare_specification(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_ok_and(|value| {
        value
            .as_object()
            .is_some_and(|top| !top.contains_key("specification") && !top.contains_key("data"))
    })
}

pub(crate) fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Reads a `--functions FILE` (function OCID → URL) for `check` and `serve`, with its
/// warnings; `None` when no file is given.
pub(crate) fn read_functions(
    path: Option<&str>,
) -> Result<Option<(claimgate_config::FunctionMap, Vec<String>)>, InputError> {
    let Some(path) = path else {
        return Ok(None);
    };
    let text = read_text(path, "--functions", DEPLOYMENT_LIMIT).map_err(InputError::new)?;
    let loaded = claimgate_config::load_function_map_str(&text).map_err(|rejected| InputError {
        message: format!(
            "{} is not a valid functions file",
            claimgate_core::escape(path)
        ),
        details: rejected.errors.iter().map(ToString::to_string).collect(),
    })?;
    let warnings = loaded
        .warnings
        .iter()
        .map(|w| format!("{}: {w}", claimgate_core::escape(path)))
        .collect();
    Ok(Some((loaded.functions, warnings)))
}

/// The functions a deployment names that `functions` (the `--functions` map, if given) has no
/// URL for: `serve` refuses such a deployment, `check` and `validate` warn at each
/// `functionId`.
pub(crate) fn unmapped_functions(
    deployment: &claimgate_config::Deployment,
    functions: Option<&claimgate_config::FunctionMap>,
) -> Vec<Diagnostic> {
    deployment
        .function_refs
        .iter()
        .filter(|r| functions.is_none_or(|map| map.url(&r.function_id).is_none()))
        .map(|r| Diagnostic {
            path: r.path.clone(),
            message: match functions {
                None => format!(
                    "function '{}' needs a URL: serve refuses this deployment without \
                     --functions FILE mapping it",
                    r.function_id
                ),
                Some(_) => format!(
                    "function '{}' is not in the --functions file: serve refuses this deployment",
                    r.function_id
                ),
            },
        })
        .collect()
}
