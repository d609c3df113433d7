//! `Subscriber` files (OCI's `Subscriber` and `Client`), with OCI's limits. A client token is
//! a secret: no message here contains one, whatever is wrong with it.

use crate::reader::{Cx, Obj, Rejected};
use crate::resource::{self, Header, Kind, LoadedResources};
use crate::usage::{Client, Subscriber};

/// OCI's limits: clients per subscriber, usage plans per subscriber, characters of a token.
const MAX_CLIENTS: usize = 5;
const MAX_PLANS: usize = 10;
const MAX_TOKEN_CHARS: usize = 128;

/// Loads a file of subscribers: one `Subscriber` or an array of them, bare or as the CLI's
/// `{"data": ...}`. Subscribers whose `lifecycleState` is not `ACTIVE` are warned about and
/// left out. Tokens shared between subscribers are found by [`crate::Subscriptions::new`].
pub fn load_subscribers_str(text: &str) -> Result<LoadedResources<Subscriber>, Rejected> {
    resource::load(
        text,
        &Kind {
            noun: "subscriber",
            read: read_subscriber,
        },
    )
}

fn read_subscriber(cx: &mut Cx, mut obj: Obj<'_>, header: Header) -> Option<Subscriber> {
    let clients = obj.require(cx, "clients").and_then(|f| {
        let items = f.array_max(cx, MAX_CLIENTS)?;
        let mut clients: Vec<Client> = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in &items {
            let read = item.object(cx).and_then(|mut client| {
                let name = client.require(cx, "name").and_then(|f| {
                    let name = f.non_empty_str(cx)?;
                    if clients.iter().any(|c| c.name == name) {
                        cx.error(
                            &f.path,
                            format!("'{name}' is already the name of another client; client names are unique within a subscriber"),
                        );
                        return None;
                    }
                    Some(name.to_owned())
                });
                let token = client.require(cx, "token").and_then(|f| {
                    let token = f.non_empty_str(cx)?;
                    let chars = token.chars().count();
                    if chars > MAX_TOKEN_CHARS {
                        cx.error(
                            &f.path,
                            format!("the token has {chars} characters; OCI allows at most {MAX_TOKEN_CHARS}"),
                        );
                        return None;
                    }
                    Some(token.to_owned())
                });
                client.finish(cx, &["name", "token"]);
                Some(Client {
                    name: name?,
                    token: token?,
                })
            });
            match read {
                Some(client) => clients.push(client),
                None => ok = false,
            }
        }
        ok.then_some(clients)
    });
    let usage_plans = obj.require(cx, "usagePlans").and_then(|f| {
        let items = f.array_max(cx, MAX_PLANS)?;
        let mut plans: Vec<String> = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in &items {
            match item.non_empty_str(cx) {
                Some(id) if plans.iter().any(|p| p == id) => {
                    cx.error(&item.path, format!("usage plan '{id}' is listed twice"));
                    ok = false;
                }
                Some(id) => plans.push(id.to_owned()),
                None => ok = false,
            }
        }
        ok.then_some(plans)
    });
    resource::finish(cx, obj, &["clients", "usagePlans"]);
    Some(Subscriber {
        id: header.id,
        name: header.name,
        clients: clients?,
        usage_plans: usage_plans?,
    })
}
