//! `--usage-plans` and `--subscribers` files.
//!
//! temporary: replaced by the full reader (this minimal one reads OCI's camelCase GET shape
//! only, one resource or an array, files or directories of `*.json`).

use crate::input::{read_text, InputError, DATA_LIMIT};
use claimgate_config::{
    Client, Entitlement, OnBreach, Quota, QuotaUnit, Subscriber, Subscriptions, UsagePlan,
};
use serde_json::Value;

pub(crate) struct LoadedSubscriptions {
    pub(crate) subscriptions: Subscriptions,
    pub(crate) warnings: Vec<String>,
}

pub(crate) fn load(
    usage_plans: &[String],
    subscribers: &[String],
) -> Result<LoadedSubscriptions, InputError> {
    let mut errors = Vec::new();
    let mut plans = Vec::new();
    for (path, item) in resources(usage_plans, "--usage-plans", &mut errors) {
        match plan(&item) {
            Some(p) => plans.push(p),
            None => errors.push(format!("{path}: not a usage plan (id and entitlements)")),
        }
    }
    let mut subs = Vec::new();
    for (path, item) in resources(subscribers, "--subscribers", &mut errors) {
        match subscriber(&item) {
            Some(s) => subs.push(s),
            None => errors.push(format!(
                "{path}: not a subscriber (id, clients, usagePlans)"
            )),
        }
    }
    if errors.is_empty() {
        match Subscriptions::new(plans, subs) {
            Ok(subscriptions) => {
                return Ok(LoadedSubscriptions {
                    subscriptions,
                    warnings: Vec::new(),
                })
            }
            Err(e) => errors = e,
        }
    }
    Err(InputError {
        message: "the usage plans or subscribers are not valid".into(),
        details: errors,
    })
}

fn resources(args: &[String], what: &str, errors: &mut Vec<String>) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for arg in args {
        let files = match crate::input::deployment_files_in(arg) {
            Ok(Some(files)) => files,
            Ok(None) => vec![arg.clone()],
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        for file in files {
            let value = read_text(&file, what, DATA_LIMIT).and_then(|text| {
                serde_json::from_str::<Value>(&text).map_err(|e| format!("{file}: {e}"))
            });
            match value {
                Ok(Value::Array(items)) => {
                    for (i, item) in items.into_iter().enumerate() {
                        out.push((format!("{file}: [{i}]"), item));
                    }
                }
                Ok(item) => out.push((file.clone(), item)),
                Err(e) => errors.push(e),
            }
        }
    }
    out
}

fn text(value: &Value, key: &str) -> Option<String> {
    value.get(key)?.as_str().map(str::to_owned)
}

fn plan(value: &Value) -> Option<UsagePlan> {
    let id = text(value, "id")?;
    let mut entitlements = Vec::new();
    for e in value.get("entitlements")?.as_array()? {
        let quota = match e.get("quota") {
            Some(q) if !q.is_null() => Some(Quota {
                value: q.get("value")?.as_u64()?,
                unit: match q.get("unit")?.as_str()? {
                    "MINUTE" => QuotaUnit::Minute,
                    "HOUR" => QuotaUnit::Hour,
                    "DAY" => QuotaUnit::Day,
                    "WEEK" => QuotaUnit::Week,
                    "MONTH" => QuotaUnit::Month,
                    _ => return None,
                },
                on_breach: match q.get("operationOnBreach")?.as_str()? {
                    "REJECT" => OnBreach::Reject,
                    "ALLOW" => OnBreach::Allow,
                    _ => return None,
                },
            }),
            _ => None,
        };
        let rate_limit = match e.get("rateLimit") {
            Some(r) if !r.is_null() => Some(r.get("value")?.as_u64()?),
            _ => None,
        };
        let mut targets = Vec::new();
        for t in e
            .get("targets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            targets.push(text(t, "deploymentId")?);
        }
        entitlements.push(Entitlement {
            name: text(e, "name")?,
            rate_limit,
            quota,
            targets,
        });
    }
    Some(UsagePlan {
        name: text(value, "displayName").unwrap_or_else(|| id.clone()),
        id,
        entitlements,
    })
}

fn subscriber(value: &Value) -> Option<Subscriber> {
    let id = text(value, "id")?;
    let mut clients = Vec::new();
    for c in value.get("clients")?.as_array()? {
        clients.push(Client {
            name: text(c, "name")?,
            token: text(c, "token")?,
        });
    }
    let mut usage_plans = Vec::new();
    for p in value.get("usagePlans")?.as_array()? {
        usage_plans.push(p.as_str()?.to_owned());
    }
    Some(Subscriber {
        name: text(value, "displayName").unwrap_or_else(|| id.clone()),
        id,
        clients,
        usage_plans,
    })
}
