//! What the section readers of a deployment note on the way, for rules that need the whole
//! specification (route references, secrets, members not enforced yet).

use crate::model::{Authentication, FunctionRef, SecretRef};

/// What readers note on the way, for rules that need the whole specification.
#[derive(Debug, Default)]
pub(crate) struct Notes {
    /// JSON paths of valid members that claimgate does not enforce yet and that are in effect.
    pub(crate) unenforced: Vec<String>,
    /// Paths an OAUTH2 failure policy names, which must be routes with a given backend.
    pub(crate) route_refs: Vec<RouteRef>,
    /// Secrets named by client details.
    pub(crate) secret_refs: Vec<SecretRef>,
    /// Functions named by `CUSTOM_AUTHENTICATION` policies and `ORACLE_FUNCTIONS_BACKEND`s.
    pub(crate) function_refs: Vec<FunctionRef>,
}

impl Notes {
    /// Records a valid member that claimgate does not enforce, unless it is inert as written
    /// (read-backs print nulls, empty lists and false flags for members nobody set).
    pub(crate) fn unenforced(&mut self, path: &str, in_effect: bool) {
        if in_effect {
            self.unenforced.push(path.to_owned());
        }
    }
}

/// `loginPath` / `logoutPath` of an OAUTH2 failure policy.
#[derive(Debug)]
pub(crate) struct RouteRef {
    /// Where the path is written.
    pub(crate) at: String,
    pub(crate) path: String,
    /// The backend type the route must have.
    pub(crate) backend: &'static str,
}

/// What the deployment-wide policies mean for routes.
#[derive(Debug)]
pub(crate) struct AuthRead {
    pub(crate) authentication: Authentication,
    /// `isAnonymousAccessAllowed` of the authentication policy (`ANONYMOUS` routes need it).
    pub(crate) anonymous_allowed: Option<bool>,
}
