//! `UsagePlan` files (OCI's `UsagePlan`, `Entitlement`, `RateLimit`, `Quota`,
//! `EntitlementTarget`), with OCI's limits.

use crate::reader::{join, read_enum, Cx, Field, Obj, Rejected};
use crate::resource::{self, Header, Kind, LoadedResources};
use crate::usage::{Entitlement, OnBreach, Quota, QuotaUnit, UsagePlan};

/// OCI's limits (service limits page): entitlements per plan, targets per entitlement.
const MAX_ENTITLEMENTS: usize = 200;
const MAX_TARGETS: usize = 200;

/// Loads a file of usage plans: one `UsagePlan` or an array of them, bare or as the CLI's
/// `{"data": ...}`. Plans whose `lifecycleState` is not `ACTIVE` are warned about and left out.
pub fn load_usage_plans_str(text: &str) -> Result<LoadedResources<UsagePlan>, Rejected> {
    resource::load(
        text,
        &Kind {
            noun: "usage plan",
            read: read_plan,
        },
    )
}

fn read_plan(cx: &mut Cx, mut obj: Obj<'_>, header: Header) -> Option<UsagePlan> {
    // `description` is not in the SDK's model, yet Oracle's own examples carry it.
    obj.ignore(&["description"]);
    let entitlements = obj.require(cx, "entitlements").and_then(|f| {
        let items = f.array_max(cx, MAX_ENTITLEMENTS)?;
        let mut out: Vec<Entitlement> = Vec::with_capacity(items.len());
        let mut seen: Vec<Seen> = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in &items {
            match read_entitlement(cx, item, &mut seen) {
                Some(e) => out.push(e),
                None => ok = false,
            }
        }
        ok.then_some(out)
    });
    resource::finish(cx, obj, &["entitlements", "description"]);
    Some(UsagePlan {
        id: header.id,
        name: header.name,
        entitlements: entitlements?,
    })
}

/// The name and targets of an entitlement read earlier in the plan, valid or not, for the
/// unique-name and one-entitlement-per-deployment rules.
struct Seen {
    at: String,
    name: Option<String>,
    targets: Vec<String>,
}

/// One entitlement; it joins `seen` whether valid or not, so that a later one is checked
/// against it (every problem of a plan is reported at once).
fn read_entitlement(cx: &mut Cx, field: &Field<'_>, seen: &mut Vec<Seen>) -> Option<Entitlement> {
    let mut obj = field.object(cx)?;
    let earlier: &[Seen] = seen;
    let name = obj.require(cx, "name").and_then(|f| {
        let name = f.non_empty_str(cx)?;
        if let Some(Seen { at, .. }) = earlier.iter().find(|e| e.name.as_deref() == Some(name)) {
            cx.error(
                &f.path,
                format!("'{name}' is already the name of {at}; entitlement names are unique within a usage plan"),
            );
            return None;
        }
        Some(name.to_owned())
    });
    let _ = obj.take("description").map(|f| f.str(cx));
    let rate_limit = match obj.take("rateLimit") {
        None => Some(None),
        Some(f) => read_rate_limit(cx, &f).map(Some),
    };
    let quota = match obj.take("quota") {
        None => Some(None),
        Some(f) => read_quota(cx, &f).map(Some),
    };
    let targets = match obj.take("targets") {
        None => Some((Vec::new(), true)),
        Some(f) => read_targets(cx, &f, earlier),
    };
    obj.finish(
        cx,
        &["name", "description", "rateLimit", "quota", "targets"],
    );
    seen.push(Seen {
        at: field.path.clone(),
        name: name.clone(),
        targets: targets.as_ref().map(|(t, _)| t.clone()).unwrap_or_default(),
    });
    let targets = targets.and_then(|(t, ok)| ok.then_some(t));
    Some(Entitlement {
        name: name?,
        rate_limit: rate_limit?,
        quota: quota?,
        targets: targets?,
    })
}

/// `rateLimit`: requests per second.
fn read_rate_limit(cx: &mut Cx, field: &Field<'_>) -> Option<u64> {
    let mut obj = field.object(cx)?;
    let value = obj.require(cx, "value").and_then(|f| positive(cx, &f));
    let unit = obj
        .require(cx, "unit")
        .and_then(|f| read_enum(cx, &f, &["SECOND"], "a rate limit unit"));
    obj.finish(cx, &["value", "unit"]);
    unit?;
    value
}

fn read_quota(cx: &mut Cx, field: &Field<'_>) -> Option<Quota> {
    let mut obj = field.object(cx)?;
    let value = obj.require(cx, "value").and_then(|f| positive(cx, &f));
    let unit = obj.require(cx, "unit").and_then(|f| {
        Some(
            match read_enum(
                cx,
                &f,
                &["MINUTE", "HOUR", "DAY", "WEEK", "MONTH"],
                "a quota unit",
            )? {
                "MINUTE" => QuotaUnit::Minute,
                "HOUR" => QuotaUnit::Hour,
                "DAY" => QuotaUnit::Day,
                "WEEK" => QuotaUnit::Week,
                _ => QuotaUnit::Month,
            },
        )
    });
    let reset = obj
        .require(cx, "resetPolicy")
        .and_then(|f| read_enum(cx, &f, &["CALENDAR"], "a reset policy"));
    let on_breach = obj.require(cx, "operationOnBreach").and_then(|f| {
        Some(
            match read_enum(cx, &f, &["REJECT", "ALLOW"], "an operation on breach")? {
                "REJECT" => OnBreach::Reject,
                _ => OnBreach::Allow,
            },
        )
    });
    obj.finish(cx, &["value", "unit", "resetPolicy", "operationOnBreach"]);
    reset?;
    Some(Quota {
        value: value?,
        unit: unit?,
        on_breach: on_breach?,
    })
}

/// A whole number of requests, at least 1.
fn positive(cx: &mut Cx, field: &Field<'_>) -> Option<u64> {
    field
        .integer_in(cx, 1, i64::MAX)
        .and_then(|n| u64::try_from(n).ok())
}

/// `targets`: deployment ids, none targeted twice in the plan; the valid ones, and whether all
/// were.
fn read_targets(cx: &mut Cx, field: &Field<'_>, earlier: &[Seen]) -> Option<(Vec<String>, bool)> {
    let items = field.array_max(cx, MAX_TARGETS)?;
    let mut targets: Vec<String> = Vec::with_capacity(items.len());
    let mut ok = true;
    for item in &items {
        let read = item.object(cx).and_then(|mut target| {
            let id = target
                .require(cx, "deploymentId")
                .and_then(|f| Some((f.non_empty_str(cx)?, f.path)));
            target.finish(cx, &["deploymentId"]);
            id
        });
        let Some((id, at)) = read else {
            ok = false;
            continue;
        };
        let also = if targets.iter().any(|t| t == id) {
            Some(format!("is listed twice in {}", field.path))
        } else {
            earlier
                .iter()
                .find(|e| e.targets.iter().any(|t| t == id))
                .map(|e| {
                    let name = e
                        .name
                        .as_deref()
                        .map(|n| format!(" ('{n}')"))
                        .unwrap_or_default();
                    format!(
                        "is also targeted by {}{name}; a deployment has at most one entitlement per usage plan",
                        join(&e.at, "targets"),
                    )
                })
        };
        match also {
            Some(problem) => {
                cx.error(&at, format!("deployment '{id}' {problem}"));
                ok = false;
            }
            None => targets.push(id.to_owned()),
        }
    }
    Some((targets, ok))
}
