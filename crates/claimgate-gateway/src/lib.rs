//! claimgate's gateway: serves OCI API deployments on tokio + hyper and enforces the verdict of
//! `claimgate-core` on every request.
//!
//! What lives here is everything around the pure core: connections and limits, remote key
//! sets with their cache, the backend client, the gateway's own responses, and the execution
//! and access logs. Deciding whether a token is acceptable is not done here.

#![forbid(unsafe_code)]

mod authorizer;
pub mod cache;
mod connection;
mod context;
mod cors;
pub mod demo;
pub mod discovery;
mod functions;
mod ids;
pub mod keys;
pub mod limit;
pub mod logs;
pub mod metrics;
pub mod mtls;
mod proxy;
pub mod recent;
mod respond;
pub mod response_cache;
mod server;
pub mod session;
pub mod shared;
mod shared_limit;
mod target;
mod transform;
pub mod usage;
mod validation;

pub use logs::{LogSink, Logs};
pub use server::admin;
pub use server::{Gateway, Options, Resources, MAX_BODY_BYTES};
