//! Authorizer functions (`CUSTOM_AUTHENTICATION`) for the gateway: the call (OCI's input POSTed
//! to the URL the functions file names, bounded in time and size) and its answers, kept under
//! the hash of the arguments for OCI's lifetimes (core's
//! [`claimgate_core::authorizer::AuthorizerAnswer::cache_seconds`]).
//!
//! One call is in flight per key however many requests carry the same arguments; failures
//! (502) are not kept, so a function that recovers is asked again at once. Every deployment's
//! answers share one cache bounded in bytes. Keys are a keyed SipHash-2-4 (128-bit output, a
//! per-process random key, as the verified-token cache names tokens: see `cache.rs`) of the
//! deployment's scope, the function and the arguments: a hit skips the call, and without the
//! key nobody can aim other arguments at a cached answer; arguments never sit in memory as keys,
//! and a reload (new scope) starts afresh. It runs on every request, hits included, and is
//! far cheaper than the SHA-256 it replaced (BENCHMARKS.md, issue 20).

use crate::cache::SecretNamer;
use crate::logs::{Context, ExecutionRecord, Level, Logs};
use claimgate_core::authorizer::{
    AuthorizerAnswer, AuthorizerArguments, FunctionError, MAX_FUNCTION_ANSWER_BYTES,
};
use claimgate_core::UnixTime;
use claimgate_keys::{FetchError, ProviderClient};
use serde_json::json;
use siphasher::sip128::Hasher128 as _;
use std::hash::Hasher as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the cache spends on an entry besides the answer: key, node, expiry bookkeeping.
const ENTRY_OVERHEAD: usize = 200;

/// An answer and how long it is kept.
#[derive(Debug)]
struct Kept {
    answer: Arc<AuthorizerAnswer>,
    ttl: Duration,
}

struct KeepFor;

impl moka::Expiry<u128, Arc<Kept>> for KeepFor {
    fn expire_after_create(&self, _: &u128, value: &Arc<Kept>, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Calls authorizer functions and keeps their answers.
#[derive(Clone)]
pub(crate) struct Authorizers {
    answers: moka::future::Cache<u128, Arc<Kept>>,
    /// Names the answers' keys (secret, random per instance).
    namer: Arc<SecretNamer>,
    client: ProviderClient,
    timeout: Duration,
    calls: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Authorizers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizers")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Where one call's records go.
pub(crate) struct CallContext<'a> {
    pub(crate) logs: &'a Logs,
    pub(crate) context: Context<'a>,
    pub(crate) threshold: Level,
    pub(crate) function_id: &'a str,
    pub(crate) now: UnixTime,
}

impl Authorizers {
    pub(crate) fn new(client: ProviderClient, timeout: Duration, max_bytes: u64) -> Self {
        Self {
            answers: moka::future::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_, kept: &Arc<Kept>| {
                    u32::try_from(kept.answer.approximate_size() + ENTRY_OVERHEAD)
                        .unwrap_or(u32::MAX)
                })
                .expire_after(KeepFor)
                .build(),
            namer: Arc::new(SecretNamer::random()),
            client,
            timeout,
            calls: Arc::default(),
        }
    }

    /// Function calls made so far (not answers served from the cache).
    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The function's answer for these arguments: kept, or asked for once however many
    /// requests carry them at the same time.
    pub(crate) async fn answer(
        &self,
        scope: u64,
        url: &str,
        arguments: &AuthorizerArguments,
        call: CallContext<'_>,
    ) -> Result<Arc<AuthorizerAnswer>, FunctionError> {
        // Hashed piece by piece: no buffer per request (every request asks, hits included).
        let mut material = self.namer.hasher();
        material.write(&scope.to_be_bytes());
        material.write(url.as_bytes());
        material.write(&[0]);
        material.write(call.function_id.as_bytes());
        material.write(&[0]);
        material.write(arguments.cache_key.as_bytes());
        let key = material.finish128().as_u128();
        self.answers
            .try_get_with(key, self.call(url, arguments, &call))
            .await
            .map(|kept| Arc::clone(&kept.answer))
            .map_err(|e| e.as_ref().clone())
    }

    async fn call(
        &self,
        url: &str,
        arguments: &AuthorizerArguments,
        call: &CallContext<'_>,
    ) -> Result<Arc<Kept>, FunctionError> {
        let record = |code: &'static str, level: Level, message: String| {
            call.logs.execution(
                call.context,
                call.threshold,
                ExecutionRecord::new(code, level, message)
                    .with("functionId", json!(call.function_id)),
            );
        };
        record(
            "customAuthentication.cacheMiss",
            Level::Info,
            "No cached authorizer function answer for these arguments; calling the function."
                .into(),
        );
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let input = arguments.input.to_string().into_bytes();
        let result = self
            .client
            .invoke_function(url, input, self.timeout, MAX_FUNCTION_ANSWER_BYTES)
            .await;
        let answer = match result {
            Ok((status, body)) => AuthorizerAnswer::parse(status, &body),
            Err(FetchError::TooLarge(limit)) => Err(FunctionError::unexpected(format!(
                "its answer is larger than {limit} bytes"
            ))),
            Err(FetchError::Timeout) => Err(FunctionError::failed(format!(
                "it did not answer within {} s",
                self.timeout.as_secs_f64()
            ))),
            Err(error) => Err(FunctionError::failed(format!(
                "calling {url} failed: {error}"
            ))),
        };
        // A failure is recorded by the verdict (failedFunctionInvocation / unexpectedResponse).
        if let Ok(answer) = &answer {
            record(
                "customAuthentication.successfulFunctionInvocation",
                Level::Info,
                format!(
                    "The authorizer function answered HTTP {} (active: {}).",
                    answer.status, answer.active
                ),
            );
        }
        let answer = answer?;
        let ttl = Duration::from_secs(answer.cache_seconds(call.now));
        Ok(Arc::new(Kept {
            answer: Arc::new(answer),
            ttl,
        }))
    }
}
