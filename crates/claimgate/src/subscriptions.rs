//! `--usage-plans FILE|DIR` and `--subscribers FILE|DIR`: OCI's `UsagePlan` and `Subscriber`
//! resources read from files, checked one by one and then together (client tokens unique,
//! every plan a subscriber names defined), for `serve`, `check` and `validate`.

use crate::input::{json_files_in, plural, read_text, InputError, DEPLOYMENT_LIMIT};
use claimgate_config::{
    load_subscribers_str, load_usage_plans_str, Diagnostic, Rejected, Subscriber, Subscriptions,
    UsagePlan,
};

/// Plans and subscribers indexed for the request path, and the warnings about their files
/// (`FILE: PATH: message`, never a client token).
#[derive(Debug)]
pub(crate) struct LoadedSubscriptions {
    pub(crate) subscriptions: Subscriptions,
    pub(crate) warnings: Vec<String>,
}

/// `--usage-plans FILE|DIR`... and `--subscribers FILE|DIR`...: every file (a directory: its
/// *.json files, hidden skipped, as `--deployment DIR` does), read with the limits of other
/// inputs, parsed, then indexed by [`Subscriptions::new`]. Errors name the file and the JSON
/// path; every problem of every file is in the error's details.
pub(crate) fn load(
    usage_plans: &[String],
    subscribers: &[String],
) -> Result<LoadedSubscriptions, InputError> {
    let read = read_all(usage_plans, subscribers);
    let mut details = Vec::new();
    let mut warnings = Vec::new();
    for file in &read.files {
        details.extend(file.errors.iter().map(|e| at(&file.path, e)));
        warnings.extend(file.warnings.iter().map(|w| at(&file.path, w)));
    }
    if !details.is_empty() {
        return Err(InputError {
            message: format!(
                "the usage plan and subscriber files are not valid ({} problem{})",
                details.len(),
                plural(details.len())
            ),
            details,
        });
    }
    match Subscriptions::new(read.plans, read.subscribers) {
        Ok(subscriptions) => Ok(LoadedSubscriptions {
            subscriptions,
            warnings,
        }),
        Err(errors) => Err(InputError {
            message: format!(
                "the usage plans and subscribers do not fit together ({} problem{})",
                errors.len(),
                plural(errors.len())
            ),
            details: errors,
        }),
    }
}

/// `FILE: PATH: message`.
fn at(file: &str, diagnostic: &Diagnostic) -> String {
    format!("{file}: {diagnostic}")
}

/// Which resource a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    UsagePlans,
    Subscribers,
}

impl FileKind {
    fn noun(self) -> &'static str {
        match self {
            Self::UsagePlans => "usage plan file",
            Self::Subscribers => "subscriber file",
        }
    }

    fn directory(self) -> &'static str {
        match self {
            Self::UsagePlans => "usage plan directory",
            Self::Subscribers => "subscriber directory",
        }
    }
}

/// One file read: its problems (an unreadable file is one problem with an empty path).
pub(crate) struct FileRead {
    pub(crate) path: String,
    pub(crate) kind: FileKind,
    pub(crate) errors: Vec<Diagnostic>,
    pub(crate) warnings: Vec<Diagnostic>,
}

/// Every file read, and the resources of the valid ones.
pub(crate) struct ReadAll {
    pub(crate) files: Vec<FileRead>,
    pub(crate) plans: Vec<UsagePlan>,
    pub(crate) subscribers: Vec<Subscriber>,
}

/// Reads every file each argument names (a directory: its *.json files), reporting each
/// file's problems separately; `validate` prints them per file, [`load`] refuses on any.
pub(crate) fn read_all(usage_plans: &[String], subscribers: &[String]) -> ReadAll {
    let mut read = ReadAll {
        files: Vec::new(),
        plans: Vec::new(),
        subscribers: Vec::new(),
    };
    let args = usage_plans
        .iter()
        .map(|a| (a, FileKind::UsagePlans))
        .chain(subscribers.iter().map(|a| (a, FileKind::Subscribers)));
    for (arg, kind) in args {
        // An unreadable directory or file is one problem with an empty path.
        let unreadable = |path: String, message: String| FileRead {
            path,
            kind,
            errors: vec![Diagnostic {
                path: String::new(),
                message,
            }],
            warnings: Vec::new(),
        };
        let paths = match json_files_in(arg, kind.directory()) {
            Ok(Some(listed)) => listed,
            Ok(None) => vec![arg.clone()],
            Err(message) => {
                read.files.push(unreadable(arg.clone(), message));
                continue;
            }
        };
        for path in paths {
            let text = match read_text(&path, kind.noun(), DEPLOYMENT_LIMIT) {
                Ok(text) => text,
                Err(message) => {
                    read.files.push(unreadable(path, message));
                    continue;
                }
            };
            let rejected = match kind {
                FileKind::UsagePlans => load_usage_plans_str(&text).map(|loaded| {
                    read.plans.extend(loaded.resources);
                    loaded.warnings
                }),
                FileKind::Subscribers => load_subscribers_str(&text).map(|loaded| {
                    read.subscribers.extend(loaded.resources);
                    loaded.warnings
                }),
            };
            let (errors, warnings) = match rejected {
                Ok(warnings) => (Vec::new(), warnings),
                Err(Rejected { errors, warnings }) => (errors, warnings),
            };
            read.files.push(FileRead {
                path,
                kind,
                errors,
                warnings,
            });
        }
    }
    read
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temporary directory, removed when dropped.
    struct Dir(std::path::PathBuf);

    impl Dir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "claimgate-subscriptions-{name}-{}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn write(&self, name: &str, text: &str) -> String {
            let path = self.0.join(name);
            std::fs::write(&path, text).unwrap();
            path.to_string_lossy().into_owned()
        }

        fn path(&self) -> String {
            self.0.to_string_lossy().into_owned()
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const PLAN: &str = r#"{"id": "free", "entitlements": [{"name": "basic", "targets": [{"deploymentId": "orders"}]}]}"#;

    #[test]
    fn a_directory_of_plans_and_a_subscriber_file_are_indexed() {
        let dir = Dir::new("good");
        dir.write("free.json", PLAN);
        dir.write(".hidden.json", "not json");
        dir.write("notes.txt", "not json");
        let subs = Dir::new("good-subs");
        let file = subs.write(
            "acme.json",
            r#"{"data": {"id": "acme", "clients": [{"name": "web", "token": "tok-1"}], "usage-plans": ["free"], "lifecycle-state": "ACTIVE"}}"#,
        );
        subs.write(
            "gone.json",
            r#"{"id": "gone", "clients": [], "usagePlans": [], "lifecycleState": "DELETED"}"#,
        );
        let loaded = load(&[dir.path()], &[subs.path()]).unwrap();
        let (acme, client) = loaded.subscriptions.client("tok-1").unwrap();
        assert_eq!((acme.id.as_str(), client.name.as_str()), ("acme", "web"));
        assert!(loaded.subscriptions.entitled(acme, "orders").is_some());
        assert_eq!(
            loaded.warnings,
            [format!(
                "{}/gone.json: lifecycleState: is DELETED, not ACTIVE: this subscriber is skipped",
                subs.path()
            )]
        );
        assert!(file.ends_with("acme.json"));
    }

    #[test]
    fn errors_name_the_file_and_the_path_and_never_the_token() {
        let dir = Dir::new("bad");
        let plans = dir.write("plans.json", r#"{"entitlements": []}"#);
        let subs = dir.write(
            "subs.json",
            r#"{"id": "s", "clients": [{"name": "web", "token": "SECRET-1", "tokn": 1}], "usagePlans": ["free"]}"#,
        );
        let error = load(std::slice::from_ref(&plans), std::slice::from_ref(&subs)).unwrap_err();
        assert_eq!(
            error.details,
            [
                format!("{plans}: id: is required"),
                format!("{subs}: clients[0].tokn: unknown member (did you mean 'token'?)"),
            ]
        );
        assert!(!format!("{error:?}").contains("SECRET"));
    }

    #[test]
    fn a_shared_token_and_an_unknown_plan_are_refused_together() {
        let dir = Dir::new("cross");
        let plans = dir.write("plans.json", PLAN);
        let a = dir.write(
            "a.json",
            r#"{"id": "a", "clients": [{"name": "web", "token": "SECRET-2"}], "usagePlans": ["free", "gold"]}"#,
        );
        let b = dir.write(
            "b.json",
            r#"[{"id": "b", "clients": [{"name": "cli", "token": "SECRET-2"}], "usagePlans": ["free"]}]"#,
        );
        let error = load(&[plans], &[a, b]).unwrap_err();
        assert_eq!(error.details.len(), 2, "{:?}", error.details);
        assert!(error.details[0].contains("'gold'"), "{:?}", error.details);
        assert!(!format!("{error:?}").contains("SECRET"));
    }

    #[test]
    fn an_empty_directory_and_a_missing_file_are_errors() {
        let dir = Dir::new("empty");
        let error = load(&[dir.path()], &["/nonexistent/subs.json".into()]).unwrap_err();
        assert_eq!(error.details.len(), 2, "{:?}", error.details);
        assert!(
            error.details[0].contains("holds no *.json file"),
            "{:?}",
            error.details
        );
        assert!(
            error.details[1].starts_with("/nonexistent/subs.json: "),
            "{:?}",
            error.details
        );
    }
}
