//! `--usage-plans` and `--subscribers` files read into [`claimgate_config::Subscriptions`].
//!
//! Temporary: replaced by the full reader (OCI's three shapes, paths in errors, OCI's limits).
//! This minimal one reads OCI's GET shape (camelCase, with `id`), one resource or an array, from
//! files or the `*.json` files of a directory, so `check` can be built and tested meanwhile.

use crate::input::{deployment_files_in, read_text, InputError, DEPLOYMENT_LIMIT};
use claimgate_config::{
    Client, Entitlement, OnBreach, Quota, QuotaUnit, Subscriber, Subscriptions, UsagePlan,
};
use serde::Deserialize;

/// Plans and subscribers, with warnings about resources skipped (not `ACTIVE`).
pub(crate) struct LoadedSubscriptions {
    pub(crate) subscriptions: Subscriptions,
    pub(crate) warnings: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    Many(Vec<T>),
    One(T),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlanFile {
    id: String,
    display_name: Option<String>,
    lifecycle_state: Option<String>,
    #[serde(default)]
    entitlements: Vec<EntitlementFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntitlementFile {
    name: String,
    rate_limit: Option<RateLimitFile>,
    quota: Option<QuotaFile>,
    #[serde(default)]
    targets: Vec<TargetFile>,
}

#[derive(Deserialize)]
struct RateLimitFile {
    value: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QuotaFile {
    value: u64,
    unit: String,
    operation_on_breach: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TargetFile {
    deployment_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscriberFile {
    id: String,
    display_name: Option<String>,
    lifecycle_state: Option<String>,
    #[serde(default)]
    clients: Vec<ClientFile>,
    #[serde(default)]
    usage_plans: Vec<String>,
}

#[derive(Deserialize)]
struct ClientFile {
    name: String,
    token: String,
}

/// Reads every file (or directory of `*.json` files) given, then indexes them together.
pub(crate) fn load(
    usage_plans: &[String],
    subscribers: &[String],
) -> Result<LoadedSubscriptions, InputError> {
    let mut warnings = Vec::new();
    let mut plans = Vec::new();
    for (file, plan) in read_all::<PlanFile>(usage_plans, "--usage-plans")? {
        if !active(
            plan.lifecycle_state.as_deref(),
            &file,
            &plan.id,
            &mut warnings,
        ) {
            continue;
        }
        let mut entitlements = Vec::with_capacity(plan.entitlements.len());
        for e in plan.entitlements {
            let quota = match e.quota {
                None => None,
                Some(q) => Some(Quota {
                    value: q.value,
                    unit: quota_unit(&q.unit).ok_or_else(|| {
                        InputError::new(format!(
                            "--usage-plans '{file}': usage plan '{}': entitlement '{}': quota.unit '{}' is not MINUTE, HOUR, DAY, WEEK or MONTH",
                            plan.id, e.name, q.unit
                        ))
                    })?,
                    on_breach: match q.operation_on_breach.as_str() {
                        "REJECT" => OnBreach::Reject,
                        "ALLOW" => OnBreach::Allow,
                        other => {
                            return Err(InputError::new(format!(
                                "--usage-plans '{file}': usage plan '{}': entitlement '{}': quota.operationOnBreach '{other}' is not REJECT or ALLOW",
                                plan.id, e.name
                            )))
                        }
                    },
                }),
            };
            entitlements.push(Entitlement {
                name: e.name,
                rate_limit: e.rate_limit.map(|r| r.value),
                quota,
                targets: e.targets.into_iter().map(|t| t.deployment_id).collect(),
            });
        }
        plans.push(UsagePlan {
            name: plan.display_name.unwrap_or_else(|| plan.id.clone()),
            id: plan.id,
            entitlements,
        });
    }
    let mut people = Vec::new();
    for (file, s) in read_all::<SubscriberFile>(subscribers, "--subscribers")? {
        if !active(s.lifecycle_state.as_deref(), &file, &s.id, &mut warnings) {
            continue;
        }
        people.push(Subscriber {
            name: s.display_name.unwrap_or_else(|| s.id.clone()),
            id: s.id,
            clients: s
                .clients
                .into_iter()
                .map(|c| Client {
                    name: c.name,
                    token: c.token,
                })
                .collect(),
            usage_plans: s.usage_plans,
        });
    }
    let subscriptions = Subscriptions::new(plans, people).map_err(|details| InputError {
        message: "the usage plan and subscriber files do not fit together".to_owned(),
        details,
    })?;
    Ok(LoadedSubscriptions {
        subscriptions,
        warnings,
    })
}

fn active(state: Option<&str>, file: &str, id: &str, warnings: &mut Vec<String>) -> bool {
    match state {
        None | Some("ACTIVE") => true,
        Some(other) => {
            warnings.push(format!("'{file}': '{id}' is {other}, not ACTIVE: skipped"));
            false
        }
    }
}

fn quota_unit(unit: &str) -> Option<QuotaUnit> {
    Some(match unit {
        "MINUTE" => QuotaUnit::Minute,
        "HOUR" => QuotaUnit::Hour,
        "DAY" => QuotaUnit::Day,
        "WEEK" => QuotaUnit::Week,
        "MONTH" => QuotaUnit::Month,
        _ => return None,
    })
}

/// The resources of every file given (a directory: its `*.json` files), with their file.
fn read_all<T: for<'de> Deserialize<'de>>(
    args: &[String],
    flag: &str,
) -> Result<Vec<(String, T)>, InputError> {
    let mut files = Vec::new();
    for arg in args {
        match deployment_files_in(arg).map_err(InputError::new)? {
            Some(inside) => files.extend(inside),
            None => files.push(arg.clone()),
        }
    }
    let mut resources = Vec::new();
    for file in files {
        let text = read_text(&file, flag, DEPLOYMENT_LIMIT).map_err(InputError::new)?;
        // serde's messages quote no values, so a token in a malformed file is not echoed.
        let parsed: OneOrMany<T> = serde_json::from_str(&text)
            .map_err(|e| InputError::new(format!("{flag} '{file}': {e}")))?;
        match parsed {
            OneOrMany::One(one) => resources.push((file, one)),
            OneOrMany::Many(many) => resources.extend(many.into_iter().map(|r| (file.clone(), r))),
        }
    }
    Ok(resources)
}
