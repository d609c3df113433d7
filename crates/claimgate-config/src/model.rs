//! The validated deployment: what the verdict, the router and (later) the gateway consume.
//! Values here have passed every rule of the loader, so consumers need not re-check them.

use claimgate_jose::KeySet;
use std::fmt;

/// One API deployment: a path prefix, an optional authentication policy, and routes.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// The execution log's `deploymentId`: the file's `id` when it has one, else its name.
    pub id: String,
    pub display_name: Option<String>,
    /// Starts with `/`; never ends with `/` unless it is exactly `/`.
    pub path_prefix: String,
    pub authentication: Authentication,
    pub routes: Vec<Route>,
    pub execution_log_level: Option<LogLevel>,
    /// `requestPolicies.rateLimiting`.
    pub rate_limiting: Option<RateLimiting>,
    /// `requestPolicies.cors`: applies to every route that has no `cors` of its own.
    pub cors: Option<Cors>,
    /// `requestPolicies.mutualTls`, when it requires a certificate or names SANs.
    pub mutual_tls: Option<MutualTls>,
    /// `requestPolicies.usagePlans`, when it names a token location.
    pub usage_plans: Option<crate::usage::UsagePlansPolicy>,
    /// JSON paths of members that are valid but not enforced by claimgate yet.
    pub unenforced: Vec<String>,
    /// The Vault secrets the file names (`clientDetails.clientSecretId`), to be resolved from
    /// the secrets file.
    pub secret_refs: Vec<SecretRef>,
    /// The OCI functions the file names (authorizer functions, Functions backends), to be
    /// found in the functions file (`--functions`).
    pub function_refs: Vec<FunctionRef>,
}

/// A function named by a policy or backend: its OCID and where the file names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRef {
    pub function_id: String,
    /// The JSON path of `functionId`, for messages.
    pub path: String,
}

/// A secret named by a policy: `clientSecretId` and `clientSecretVersionNumber` of a `CUSTOM`
/// client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub secret_id: String,
    /// `None`: the highest version in the secrets file.
    pub version: Option<u64>,
    /// The JSON path of `clientSecretId`, for messages.
    pub path: String,
}

impl Deployment {
    /// The name used in log `source` and metric labels: `displayName`, else the prefix.
    pub fn label(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.path_prefix)
    }
}

/// The deployment-wide `requestPolicies.authentication`.
#[derive(Debug, Clone)]
pub enum Authentication {
    /// No authentication policy: every route is open.
    None,
    /// JWT validation (`JWT_AUTHENTICATION`, or `TOKEN_AUTHENTICATION` with keys).
    Jwt(Box<JwtPolicy>),
    /// `dynamicAuthentication`: one policy per authentication server, chosen per request.
    Dynamic(Box<DynamicAuthentication>),
    /// `CUSTOM_AUTHENTICATION`: an authorizer function judges the request.
    Custom(Box<CustomAuthentication>),
    /// A policy claimgate cannot evaluate (named by its `type`, with the reason).
    Unsupported { kind: String, reason: String },
}

impl Authentication {
    /// Whether an authorizer function of the policy (or of any `dynamicAuthentication`
    /// server) takes `request.body`: the body is then read before authentication.
    pub fn authorizer_reads_body(&self) -> bool {
        match self {
            Authentication::Custom(policy) => policy.reads_body(),
            Authentication::Dynamic(dynamic) => dynamic
                .servers
                .iter()
                .any(|s| matches!(&s.policy, ServerPolicy::Custom(p) if p.reads_body())),
            _ => false,
        }
    }
}

/// `dynamicAuthentication`: a selector and the authentication servers it chooses between.
#[derive(Debug, Clone)]
pub struct DynamicAuthentication {
    /// `selectionSource.selector`.
    pub selector: ContextVariable,
    pub servers: Vec<AuthServer>,
}

/// One entry of `authenticationServers`.
#[derive(Debug, Clone)]
pub struct AuthServer {
    /// `key.name`.
    pub name: String,
    pub key: SelectionKey,
    /// `key.isDefault`.
    pub is_default: bool,
    pub policy: ServerPolicy,
}

/// The policy of one authentication server.
#[derive(Debug, Clone)]
pub enum ServerPolicy {
    Jwt(JwtPolicy),
    Custom(CustomAuthentication),
}

impl ServerPolicy {
    /// The JWT policy, when the server validates tokens itself.
    pub fn jwt(&self) -> Option<&JwtPolicy> {
        match self {
            Self::Jwt(policy) => Some(policy),
            Self::Custom(_) => None,
        }
    }

    /// Which OCI policy type the server has (it decides the log codes).
    pub fn flavor(&self) -> AuthFlavor {
        match self {
            Self::Jwt(policy) => policy.flavor,
            Self::Custom(_) => AuthFlavor::CustomAuthentication,
        }
    }
}

/// The largest body passed to an authorizer function as `request.body` (OCI: a function's
/// request body is at most 6 MB); a larger one is refused with 413.
pub const AUTHORIZER_BODY_LIMIT: usize = 6 * 1024 * 1024;

/// `CUSTOM_AUTHENTICATION`: the function to call, what it is given, and how its answers are
/// kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomAuthentication {
    /// `functionId`: found in the functions file (`--functions`).
    pub function_id: String,
    pub input: AuthorizerInput,
    /// `cacheKey`: the argument names answers are cached under (`None`: every argument but
    /// `request.body`).
    pub cache_key: Option<Vec<String>>,
    /// `isAnonymousAccessAllowed`.
    pub anonymous_allowed: bool,
    /// `validationFailurePolicy` of type `MODIFY_RESPONSE`.
    pub failure_response: Option<ModifyResponse>,
    /// The JSON path of the policy, for fixes.
    pub path: String,
}

impl CustomAuthentication {
    /// Whether an argument is `request.body`: the gateway then reads the body (up to
    /// [`AUTHORIZER_BODY_LIMIT`]) before calling the function.
    pub fn reads_body(&self) -> bool {
        matches!(&self.input, AuthorizerInput::Multi(args)
            if args.iter().any(|(_, v)| v.table == ContextTable::Body))
    }

    /// The query parameters the policy reads as credentials (logged as `[redacted]`).
    pub fn query_parameters(&self) -> impl Iterator<Item = &str> {
        let (single, multi) = match &self.input {
            AuthorizerInput::Single(TokenLocation::Query { name }) => (Some(name.as_str()), None),
            AuthorizerInput::Single(_) => (None, None),
            AuthorizerInput::Multi(args) => (None, Some(args)),
        };
        single.into_iter().chain(
            multi
                .into_iter()
                .flatten()
                .filter(|(_, v)| v.table == ContextTable::Query)
                .filter_map(|(_, v)| v.key.as_deref()),
        )
    }
}

/// What an authorizer function is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizerInput {
    /// `parameters`: argument name and the context variable it takes, in the file's order
    /// (`{"type":"USER_DEFINED","data":{...}}`).
    Multi(Vec<(String, ContextVariable)>),
    /// `tokenHeader` / `tokenQueryParam`: the raw value (`{"type":"TOKEN","token":"..."}`).
    Single(TokenLocation),
}

/// How a selection key matches the selector's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectionKey {
    /// `ANY_OF`: exact, case-insensitive.
    AnyOf(Vec<String>),
    /// `WILDCARD`: one `*` (zero or more) or `+` (one or more) at the start or the end;
    /// case-sensitive.
    Wildcard(String),
}

/// Which OCI policy type a JWT policy came from; it decides the log codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFlavor {
    JwtAuthentication,
    TokenAuthentication,
    CustomAuthentication,
}

impl AuthFlavor {
    /// The execution-log code prefix (`jwtAuthentication` / `tokenAuthentication`).
    pub fn log_prefix(self) -> &'static str {
        match self {
            Self::JwtAuthentication => "jwtAuthentication",
            Self::TokenAuthentication => "tokenAuthentication",
            Self::CustomAuthentication => "customAuthentication",
        }
    }
}

/// A policy that validates signed JWTs.
#[derive(Debug, Clone)]
pub struct JwtPolicy {
    pub flavor: AuthFlavor,
    pub anonymous_allowed: bool,
    pub location: TokenLocation,
    /// `None` when the policy does not check `iss` (optional in TOKEN_AUTHENTICATION).
    pub issuers: Option<Vec<String>>,
    pub audiences: Option<Vec<String>>,
    pub verify_claims: Vec<ClaimRule>,
    /// 0–120 seconds.
    pub max_clock_skew_seconds: f64,
    pub keys: KeySource,
    /// The JSON path of the policy, for fix sentences (`specification.requestPolicies.authentication`).
    pub path: String,
    /// `validationFailurePolicy` of type `MODIFY_RESPONSE` (TOKEN_AUTHENTICATION only): what a
    /// failed authentication answers instead of the stock 401.
    pub failure_response: Option<ModifyResponse>,
    /// `validationFailurePolicy` of type `OAUTH2` (TOKEN_AUTHENTICATION with REMOTE_DISCOVERY
    /// only): a failed authentication of a browser navigation starts the login flow.
    pub oauth2: Option<Box<OAuth2Policy>>,
}

/// An `OAUTH2` validation failure policy: the browser login flow (SPEC "OAUTH2: the browser
/// login flow").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2Policy {
    /// `clientDetails` of type `CUSTOM`; `None` reuses the validation policy's client.
    pub client: Option<(String, SecretRef)>,
    /// `scopes` (always with `openid`).
    pub scopes: Vec<String>,
    /// `maxExpiryDurationInHours` (default 1): the longest a session lasts.
    pub max_expiry_hours: u64,
    /// `useCookiesForSession`: the session is a cookie (with a CSRF token), else the
    /// `X-APIGW-TOKEN` header.
    pub use_cookies_for_session: bool,
    /// `useCookiesForIntermediateSteps`: read and kept for `check`; claimgate always binds the
    /// flow to the browser with a sealed cookie (it keeps no server-side state).
    pub use_cookies_for_intermediate_steps: bool,
    /// `usePkce`: S256 PKCE on the authorization request.
    pub use_pkce: bool,
    /// `fallbackRedirectPath`: where a login that began with a non-GET request ends.
    pub fallback_redirect_path: Option<String>,
    /// `logoutPath`: the `OAUTH2_LOGOUT_BACKEND` route.
    pub logout_path: Option<String>,
    /// `loginPath`: the `OAUTH2_LOGIN_BACKEND` route, the redirect URI; without it the
    /// original route is.
    pub login_path: Option<String>,
}

/// An `OAUTH2_LOGOUT_BACKEND`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2Logout {
    /// `allowedPostLogoutUris`: absolute URLs, or paths relative to the deployment; empty
    /// allows relative paths in the deployment only.
    pub allowed_post_logout_uris: Vec<String>,
    /// `postLogoutState`: passed on as `state`.
    pub post_logout_state: Option<String>,
}

/// A `MODIFY_RESPONSE` validation failure policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModifyResponse {
    /// `responseCode`; `None` keeps 401.
    pub response_code: Option<ResponseCode>,
    /// `responseMessage`: the body, with `${...}` context variables.
    pub response_message: Option<Template>,
    /// `responseHeaderTransformations`, applied to the failure response.
    pub header_transformations: Option<Transformations>,
}

/// `responseCode` of a `MODIFY_RESPONSE` policy: a status, or a context variable holding one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseCode {
    Status(u16),
    Variable(ContextVariable),
}

/// Where the token is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenLocation {
    Header {
        name: String,
        scheme: Option<String>,
    },
    Query {
        name: String,
    },
}

impl fmt::Display for TokenLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header {
                name,
                scheme: Some(scheme),
            } => {
                write!(f, "header '{name}' ({scheme} scheme)")
            }
            Self::Header { name, scheme: None } => write!(f, "header '{name}'"),
            Self::Query { name } => write!(f, "query parameter '{name}'"),
        }
    }
}

/// One `verifyClaims` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRule {
    pub key: String,
    /// Empty: only presence is checked (when required).
    pub values: Vec<String>,
    pub required: bool,
}

/// Where verification keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    Static(KeySet),
    RemoteJwks(RemoteJwks),
    /// `REMOTE_DISCOVERY`: JWTs are verified with the keys at the discovery document's
    /// `jwks_uri`; other tokens are introspected (RFC 7662).
    Discovery(RemoteDiscovery),
}

/// A `TOKEN_AUTHENTICATION` `REMOTE_DISCOVERY` validation policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteDiscovery {
    /// `sourceUriDetails.uri`: the OIDC or RFC 8414 discovery document.
    pub uri: String,
    pub ssl_verify_disabled: bool,
    /// `maxCacheDurationInHours` (1–24, default 1): how long introspection answers are kept.
    pub max_cache_hours: u32,
    /// `clientDetails.clientId`.
    pub client_id: String,
    /// `clientDetails.clientSecretId` and version, resolved from the secrets file.
    pub client_secret: SecretRef,
}

/// A `REMOTE_JWKS` key set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJwks {
    pub uri: String,
    pub ssl_verify_disabled: bool,
    /// 1–24.
    pub max_cache_hours: u32,
}

/// Execution-log verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Info,
    Warn,
    Error,
}

impl LogLevel {
    /// The name as OCI writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Info => "INFO",
            Self::Warn => "WARN",
            Self::Error => "ERROR",
        }
    }
}

/// One route.
#[derive(Debug, Clone)]
pub struct Route {
    pub path: RoutePath,
    pub methods: Methods,
    pub backend: Backend,
    pub authorization: Authorization,
    pub execution_log_level: Option<LogLevel>,
    /// `requestPolicies.cors`: replaces the deployment's `cors` for this route.
    pub cors: Option<Cors>,
    /// `requestPolicies.headerTransformations`: applied to the request sent to the backend.
    pub header_transformations: Option<Transformations>,
    /// `requestPolicies.queryParameterTransformations`: applied to the backend's query string.
    pub query_parameter_transformations: Option<Transformations>,
    /// `responsePolicies.headerTransformations`: applied to the backend's response.
    pub response_header_transformations: Option<Transformations>,
    /// `requestPolicies.headerValidations`, `queryParameterValidations` and `bodyValidation`,
    /// the ones in effect (not `DISABLED`).
    pub validations: RequestValidations,
    /// `requestPolicies.responseCacheLookup`, when enabled (`isEnabled` not false).
    pub response_cache_lookup: Option<ResponseCacheLookup>,
    /// `responsePolicies.responseCacheStore`.
    pub response_cache_store: Option<ResponseCacheStore>,
}

/// A route's request validations (OCI's `headerValidations`, `queryParameterValidations`,
/// `bodyValidation`); a `DISABLED` policy is not kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestValidations {
    pub headers: Option<ItemValidation>,
    pub query_parameters: Option<ItemValidation>,
    pub body: Option<BodyValidation>,
}

impl RequestValidations {
    /// Whether the route validates nothing.
    pub fn is_empty(&self) -> bool {
        self.headers.is_none() && self.query_parameters.is_none() && self.body.is_none()
    }
}

/// What a failed validation does: `ENFORCING` refuses the request, `PERMISSIVE` only logs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationMode {
    Enforcing,
    Permissive,
}

impl ValidationMode {
    /// OCI's spelling, for messages and the metric's `mode` label.
    pub fn name(self) -> &'static str {
        match self {
            ValidationMode::Enforcing => "ENFORCING",
            ValidationMode::Permissive => "PERMISSIVE",
        }
    }
}

/// `headerValidations` or `queryParameterValidations`: names compare case-insensitively (OCI:
/// "The name you specify is not case-sensitive", for query parameters too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemValidation {
    pub mode: ValidationMode,
    /// In the file's order; at least one.
    pub items: Vec<ValidationItem>,
    /// The JSON path of the policy as the file spells it, for fixes.
    pub path: String,
}

/// One header or query parameter of a validation policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationItem {
    /// As written in the file.
    pub name: String,
    /// `required`; OCI documents no default, claimgate takes `false`.
    pub required: bool,
}

/// `bodyValidation`: whether a body is required and which media types it may have (OCI's
/// `content` map; only `validationType: NONE` exists, so there is no schema to check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyValidation {
    pub mode: ValidationMode,
    pub required: bool,
    /// The keys of `content`, in the file's order.
    pub content: Vec<MediaRange>,
    /// The JSON path of the policy as the file spells it, for fixes.
    pub path: String,
}

/// A media-type range of `bodyValidation.content`, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaRange {
    /// `*/*`.
    Any,
    /// `type/*`.
    Type(String),
    /// `type/subtype`.
    Exact { kind: String, subtype: String },
}

impl std::fmt::Display for MediaRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MediaRange::Any => f.write_str("*/*"),
            MediaRange::Type(kind) => write!(f, "{kind}/*"),
            MediaRange::Exact { kind, subtype } => write!(f, "{kind}/{subtype}"),
        }
    }
}

/// `requestPolicies.responseCacheLookup` (`SIMPLE_LOOKUP_POLICY`), when enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseCacheLookup {
    /// `isPrivateCachingEnabled`: whether requests carrying credentials are cached too.
    pub private_caching: bool,
    /// `cacheKeyAdditions`; a bare `request.x[y]` is kept as the template `${request.x[y]}`.
    pub key_additions: Vec<Template>,
}

/// `responsePolicies.responseCacheStore` (`FIXED_TTL_STORE_POLICY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseCacheStore {
    /// `timeToLiveInSeconds`, at least 1.
    pub time_to_live_seconds: u32,
}

/// Header or query-parameter transformations (`headerTransformations`,
/// `queryParameterTransformations`, `responseHeaderTransformations`). OCI applies them in this
/// order: set, rename, then filter. Header names compare case-insensitively, query parameter
/// names case-sensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transformations {
    /// `setHeaders` / `setQueryParameters`.
    pub set: Vec<SetItem>,
    /// `renameHeaders` / `renameQueryParameters`.
    pub rename: Vec<RenameItem>,
    /// `filterHeaders` / `filterQueryParameters`.
    pub filter: Option<Filter>,
}

impl Transformations {
    /// Whether the transformations change nothing (read-backs print such empty policies).
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
            && self.rename.is_empty()
            && self
                .filter
                .as_ref()
                .is_none_or(|f| f.kind == FilterKind::Block && f.names.is_empty())
    }
}

/// One `set...` item: each template in `values` becomes its own header (or parameter value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetItem {
    pub name: String,
    /// 1–10 values.
    pub values: Vec<Template>,
    pub if_exists: IfExists,
}

/// What a set item does when the name is already present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IfExists {
    #[default]
    Overwrite,
    Append,
    Skip,
}

impl IfExists {
    /// The name as OCI writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Overwrite => "OVERWRITE",
            Self::Append => "APPEND",
            Self::Skip => "SKIP",
        }
    }
}

/// One `rename...` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenameItem {
    pub from: String,
    pub to: String,
}

/// A `filter...` policy: keep only (`ALLOW`) or drop (`BLOCK`) the listed names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub kind: FilterKind,
    pub names: Vec<String>,
}

/// The type of a filter policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKind {
    Allow,
    Block,
}

impl FilterKind {
    /// The name as OCI writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Allow => "ALLOW",
            Self::Block => "BLOCK",
        }
    }
}

/// A context table (OCI's `request.*` variables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextTable {
    /// `request.path[param]`: a route path parameter.
    Path,
    /// `request.query[name]`.
    Query,
    /// `request.headers[name]`.
    Headers,
    /// `request.auth[claim]`: claims of the validated token.
    Auth,
    /// `request.cert[client_base64]`: the mTLS client certificate.
    Cert,
    /// `request.host` (no key).
    Host,
    /// `request.subdomain[trailing-part]`.
    Subdomain,
    /// `request.usage_plan[id]`.
    UsagePlan,
    /// `request.body` (no key): only for multi-argument authorizer functions.
    Body,
}

impl ContextTable {
    /// Every table, in the order OCI documents them.
    pub const ALL: [Self; 9] = [
        Self::Path,
        Self::Query,
        Self::Headers,
        Self::Auth,
        Self::Cert,
        Self::Host,
        Self::Subdomain,
        Self::UsagePlan,
        Self::Body,
    ];

    /// The table as written (`request.headers`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Path => "request.path",
            Self::Query => "request.query",
            Self::Headers => "request.headers",
            Self::Auth => "request.auth",
            Self::Cert => "request.cert",
            Self::Host => "request.host",
            Self::Subdomain => "request.subdomain",
            Self::UsagePlan => "request.usage_plan",
            Self::Body => "request.body",
        }
    }
}

/// A context variable such as `request.headers[X-Api-Key]` or
/// `request.auth[id_token_claims][email]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextVariable {
    pub table: ContextTable,
    /// The key in brackets; `None` for `request.host` and `request.body`.
    pub key: Option<String>,
    /// The second key of `request.auth[id_token_claims][claim]` and
    /// `request.auth[access_token_claims][claim]`.
    pub sub_key: Option<String>,
}

impl ContextVariable {
    /// Parses a bare context variable (`request.headers[X-Api-Key]`, no `${...}`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some(rest) = text.strip_prefix("request.") else {
            return Err(format!(
                "'{text}' is not a context variable (request.<table>[<key>])"
            ));
        };
        let (table_name, mut rest) = match rest.find('[') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let Some(table) = ContextTable::ALL
            .into_iter()
            .find(|t| t.name() == format!("request.{table_name}"))
        else {
            return Err(format!(
                "'request.{table_name}' is not a context table ({})",
                ContextTable::ALL
                    .iter()
                    .filter(|t| **t != ContextTable::Body)
                    .map(|t| t.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        let mut keys = Vec::new();
        while !rest.is_empty() {
            let Some(inner) = rest.strip_prefix('[') else {
                return Err(format!("'{text}' has text after its key"));
            };
            let Some(end) = inner.find(']') else {
                return Err(format!("'{text}' has an unclosed '['"));
            };
            let key = &inner[..end];
            if key.is_empty() {
                return Err(format!("'{text}' has an empty key"));
            }
            if let Some(bad) = key.chars().find(|c| matches!(c, '[' | '{' | '}' | '$')) {
                return Err(format!(
                    "'{text}': character '{bad}' is not allowed in a key"
                ));
            }
            keys.push(key.to_owned());
            rest = &inner[end + 1..];
        }
        let name = table.name();
        match (table, keys.len()) {
            (ContextTable::Host | ContextTable::Body, 0) => {}
            (ContextTable::Host | ContextTable::Body, _) => {
                return Err(format!("{name} takes no key"));
            }
            (_, 0) => return Err(format!("{name} needs a key: {name}[<key>]")),
            (ContextTable::Auth, 2)
                if matches!(keys[0].as_str(), "id_token_claims" | "access_token_claims") => {}
            (_, 1) => {}
            _ => {
                return Err(format!(
                    "'{text}' has more than one key (only request.auth[id_token_claims][<claim>] \
                     and request.auth[access_token_claims][<claim>] have two)"
                ));
            }
        }
        match (table, keys.first().map(String::as_str)) {
            (ContextTable::Cert, Some(key)) if key != "client_base64" => {
                return Err(format!(
                    "request.cert has only the key 'client_base64', not '{key}'"
                ));
            }
            (ContextTable::UsagePlan, Some(key)) if key != "id" => {
                return Err(format!(
                    "request.usage_plan has only the key 'id', not '{key}'"
                ));
            }
            _ => {}
        }
        let mut keys = keys.into_iter();
        Ok(Self {
            table,
            key: keys.next(),
            sub_key: keys.next(),
        })
    }
}

impl fmt::Display for ContextVariable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.table.name())?;
        for key in self.key.iter().chain(&self.sub_key) {
            write!(f, "[{key}]")?;
        }
        Ok(())
    }
}

/// A string with `${context-variable}` expressions, e.g. `Bearer ${request.auth[sub]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    parts: Vec<TemplatePart>,
}

/// A piece of a [`Template`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    Literal(String),
    Variable(ContextVariable),
}

impl Template {
    /// Parses a string with `${...}` expressions. A `$` not followed by `{` is literal.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                parts.push(TemplatePart::Literal(rest[..start].to_owned()));
            }
            let inner = &rest[start + 2..];
            let Some(end) = inner.find('}') else {
                return Err(format!(
                    "'${{' at '{}' is not closed by '}}'",
                    &rest[start..]
                ));
            };
            let variable = ContextVariable::parse(&inner[..end])?;
            parts.push(TemplatePart::Variable(variable));
            rest = &inner[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(TemplatePart::Literal(rest.to_owned()));
        }
        Ok(Self {
            text: text.to_owned(),
            parts,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn parts(&self) -> &[TemplatePart] {
        &self.parts
    }

    /// The context variables the template reads.
    pub fn variables(&self) -> impl Iterator<Item = &ContextVariable> {
        self.parts.iter().filter_map(|p| match p {
            TemplatePart::Variable(v) => Some(v),
            TemplatePart::Literal(_) => None,
        })
    }
}

/// An HTTP method a route may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
}

impl Method {
    /// Every method, in the order `Allow` lists them.
    pub const ALL: [Self; 7] = [
        Self::Get,
        Self::Head,
        Self::Post,
        Self::Put,
        Self::Patch,
        Self::Delete,
        Self::Options,
    ];

    /// The method named exactly `name` (methods are case-sensitive, RFC 9110 §9.1).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
            Self::Options => "OPTIONS",
        }
    }
}

/// The methods a route answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Methods {
    Any,
    Only(Vec<Method>),
}

impl Methods {
    /// Whether a request method (as sent) is allowed.
    pub fn allows(&self, method: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Only(list) => list.iter().any(|m| m.name() == method),
        }
    }

    /// The method names, `["ANY"]` for any.
    pub fn names(&self) -> Vec<&'static str> {
        match self {
            Self::Any => vec!["ANY"],
            Self::Only(list) => list.iter().map(|m| m.name()).collect(),
        }
    }
}

/// A route path template: literal segments, `{param}` and a final `{param*}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePath {
    text: String,
    segments: Vec<PathSegment>,
}

/// One segment of a route path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    Literal(String),
    /// `{name}`: exactly one segment.
    Param(String),
    /// `{name*}`: zero or more segments; always last.
    Wildcard(String),
}

impl RoutePath {
    /// Parses a route path as OCI documents it.
    pub fn parse(text: &str) -> Result<Self, String> {
        if !text.starts_with('/') {
            return Err(format!("'{text}' must start with '/'"));
        }
        if text.len() > 2000 {
            return Err(format!(
                "{} characters is above the maximum 2000",
                text.len()
            ));
        }
        if text.contains("//") {
            return Err(format!("'{text}' has adjacent slashes"));
        }
        let raw: Vec<&str> = text[1..].split('/').collect();
        let mut segments = Vec::with_capacity(raw.len());
        for (i, segment) in raw.iter().enumerate() {
            let is_last = i + 1 == raw.len();
            if let Some(inner) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let (name, wildcard) = match inner.strip_suffix('*') {
                    Some(name) => (name, true),
                    None => (inner, false),
                };
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(format!(
                        "parameter '{{{inner}}}' must be named with letters, digits and '_' only"
                    ));
                }
                if wildcard && !is_last {
                    return Err(format!(
                        "wildcard parameter '{{{inner}}}' must be the last segment"
                    ));
                }
                segments.push(if wildcard {
                    PathSegment::Wildcard(name.to_owned())
                } else {
                    PathSegment::Param(name.to_owned())
                });
            } else if let Some(bad) = segment.chars().find(|c| !is_path_char(*c)) {
                return Err(format!("character '{bad}' is not allowed in a route path"));
            } else {
                segments.push(PathSegment::Literal((*segment).to_owned()));
            }
        }
        Ok(Self {
            text: text.to_owned(),
            segments,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn segments(&self) -> &[PathSegment] {
        &self.segments
    }
}

/// Characters OCI allows in path prefixes and literal route segments.
pub(crate) fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "$-_.+!*'(),%;:@&=".contains(c)
}

/// Where a route sends the request.
#[derive(Debug, Clone)]
pub enum Backend {
    Stock(StockResponse),
    Http(HttpBackend),
    /// `ORACLE_FUNCTIONS_BACKEND`: the function named by its OCID, reached through the
    /// `--functions` map.
    Functions(FunctionsBackend),
    /// `DYNAMIC_ROUTING_BACKEND`: one of several backends, chosen per request.
    Dynamic(Box<DynamicRouting>),
    /// `OAUTH2_LOGIN_BACKEND`: the redirect URI of the OAUTH2 login flow.
    OAuth2Login,
    /// `OAUTH2_LOGOUT_BACKEND`: ends the OAUTH2 session.
    OAuth2Logout(OAuth2Logout),
}

impl Backend {
    /// The backend's type as OCI names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Stock(_) => "STOCK_RESPONSE_BACKEND",
            Self::Http(_) => "HTTP_BACKEND",
            Self::Functions(_) => "ORACLE_FUNCTIONS_BACKEND",
            Self::Dynamic(_) => "DYNAMIC_ROUTING_BACKEND",
            Self::OAuth2Login => "OAUTH2_LOGIN_BACKEND",
            Self::OAuth2Logout(_) => "OAUTH2_LOGOUT_BACKEND",
        }
    }
}

/// An `ORACLE_FUNCTIONS_BACKEND`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionsBackend {
    /// `functionId`: the function's OCID.
    pub function_id: String,
}

/// A `DYNAMIC_ROUTING_BACKEND`: the selector's value chooses one of the rules' backends. The
/// loader guarantees that no `ANY_OF` value repeats across rules (ASCII case-insensitively),
/// that at most one rule is the default, and that no rule's backend is itself dynamic.
#[derive(Debug, Clone)]
pub struct DynamicRouting {
    /// `selectionSource.selector`.
    pub selector: ContextVariable,
    /// `routingBackends`, in the file's order (the order `WILDCARD` keys are tried in).
    pub rules: Vec<RoutingRule>,
}

/// One entry of `routingBackends`.
#[derive(Debug, Clone)]
pub struct RoutingRule {
    /// `key.name`: named in records, metrics and `check`.
    pub name: String,
    pub key: SelectionKey,
    /// `key.isDefault`.
    pub is_default: bool,
    /// An HTTP, functions or stock-response backend.
    pub backend: Backend,
}

/// A `STOCK_RESPONSE_BACKEND`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockResponse {
    pub status: u16,
    pub body: Option<String>,
    pub headers: Vec<(String, String)>,
}

/// An `HTTP_BACKEND`.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpBackend {
    pub url: String,
    pub connect_timeout_seconds: f64,
    pub read_timeout_seconds: f64,
    pub send_timeout_seconds: f64,
    pub ssl_verify_disabled: bool,
}

/// A route's `requestPolicies.authorization`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    Anonymous,
    AuthenticationOnly,
    AnyOf(Vec<String>),
}

/// `requestPolicies.rateLimiting`: a token bucket per key whose capacity and refill rate are
/// both `rateInRequestsPerSecond`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimiting {
    /// `rateInRequestsPerSecond`, at least 1.
    pub requests_per_second: u64,
    pub key: RateKey,
}

/// What a rate limit counts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateKey {
    /// `CLIENT_IP`: one bucket per client address (IPv6 clients grouped by /64).
    ClientIp,
    /// `TOTAL`: one bucket for the whole deployment.
    Total,
}

impl RateKey {
    /// The name as OCI writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::ClientIp => "CLIENT_IP",
            Self::Total => "TOTAL",
        }
    }
}

/// A `cors` policy, deployment-wide or per route (a route's replaces the deployment's). Only
/// policies that allow at least one origin are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cors {
    /// `allowedOrigins`: `scheme://host[:port]`, `*` (any) or `null` (`file:` and opaque origins).
    pub allowed_origins: Vec<String>,
    /// `allowedMethods` (`*`: any).
    pub allowed_methods: Vec<String>,
    /// `allowedHeaders` (`*`: any).
    pub allowed_headers: Vec<String>,
    /// `exposedHeaders`.
    pub exposed_headers: Vec<String>,
    /// `isAllowCredentialsEnabled`.
    pub allow_credentials: bool,
    /// `maxAgeInSeconds`; sent as `Access-Control-Max-Age` only when above 0.
    pub max_age_seconds: u64,
}

/// `requestPolicies.mutualTls`, kept when it requires a certificate or names SANs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MutualTls {
    /// `isVerifiedCertificateRequired`: a request without a verified client certificate is
    /// refused.
    pub verified_certificate_required: bool,
    /// `allowedSans`: a presented certificate must carry one of these as its subject CN or as a
    /// subject alternative name (at most 10).
    pub allowed_sans: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_literals_params_and_wildcards() {
        let path = RoutePath::parse("/hello/{region}/{rest*}").unwrap();
        assert_eq!(
            path.segments(),
            &[
                PathSegment::Literal("hello".into()),
                PathSegment::Param("region".into()),
                PathSegment::Wildcard("rest".into()),
            ]
        );
        assert_eq!(
            RoutePath::parse("/").unwrap().segments(),
            &[PathSegment::Literal(String::new())]
        );
    }

    #[test]
    fn refuses_bad_paths() {
        for bad in [
            "hello",
            "/a//b",
            "/{}",
            "/{a-b}",
            "/{rest*}/x",
            "/a b",
            "/a{b}",
        ] {
            assert!(RoutePath::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
