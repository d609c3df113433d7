//! OCI API Gateway deployment files for claimgate.
//!
//! A file is read in two steps: strict JSON (no duplicate members) and then a walk over every
//! member that checks names, types and OCI's limits, collecting *all* problems with their JSON
//! paths. What comes out is a [`Deployment`] whose values are already valid: static keys are
//! parsed keys, route paths are parsed templates, enums are enums.
//!
//! Four shapes are accepted: `CreateDeploymentDetails` (camelCase), a bare `specification`
//! (camelCase or kebab-case), and the `{"data": ...}` output of `oci api-gateway deployment get`
//! (kebab-case). This crate reads text it is given; it does not open files or fetch keys.

#![forbid(unsafe_code)]

mod context;
mod deployment;
mod function_map;
mod gateway;
pub mod model;
mod reader;
mod resource;
mod secrets;
mod subscriber;
pub mod usage;
mod usage_plan;

pub use deployment::{load_str, LoadOptions, Loaded, MAX_FILE_BYTES};
pub use function_map::{load_function_map_str, FunctionMap, LoadedFunctions};
pub use gateway::{
    check_gateway_str, load_gateway_str, Gateway, LoadedGateway, ResponseCacheServer,
};
pub use model::*;
pub use reader::{Diagnostic, Rejected};
pub use resource::LoadedResources;
pub use secrets::Secrets;
pub use subscriber::load_subscribers_str;
pub use usage::{
    Client, Entitled, Entitlement, OnBreach, Quota, QuotaUnit, Subscriber, Subscriptions,
    UsagePlan, UsagePlansPolicy,
};
pub use usage_plan::load_usage_plans_str;
