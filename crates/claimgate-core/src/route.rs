//! Route matching: which deployment and route a request reaches.
//!
//! Precedence (OCI does not document one, so claimgate fixes it): the longest matching
//! `pathPrefix` picks the deployment; within it, routes are compared segment by segment and a
//! literal segment beats `{param}`, which beats `{param*}`; among equals, the route written first
//! wins. A path that matches routes but none of their methods is a 405 with `Allow`.

use claimgate_config::{Deployment, Method, PathSegment, Route};

/// `request.path[...]` values, by parameter name, in template order.
pub type PathParams = Vec<(String, String)>;

/// A template that matched: its specificity score and captured parameters.
type Candidate = (Vec<u8>, PathParams);

/// The outcome of matching a request against one deployment's routes.
#[derive(Debug, Clone)]
pub enum RouteMatch<'d> {
    Found {
        route: &'d Route,
        index: usize,
        params: PathParams,
    },
    MethodNotAllowed {
        allow: Vec<&'static str>,
    },
    NotFound,
}

/// The deployment whose prefix is the longest one matching `path`.
pub fn find_deployment<'d>(deployments: &'d [Deployment], path: &str) -> Option<&'d Deployment> {
    deployments
        .iter()
        .filter(|d| strip_prefix(&d.path_prefix, path).is_some())
        .max_by_key(|d| d.path_prefix.len())
}

/// The part of `path` after `prefix`, as a path starting with `/`, if the prefix matches on a
/// segment boundary.
pub fn strip_prefix<'p>(prefix: &str, path: &'p str) -> Option<&'p str> {
    if prefix == "/" {
        return path.starts_with('/').then_some(path);
    }
    let rest = path.strip_prefix(prefix)?;
    if rest.is_empty() {
        Some("/")
    } else if rest.starts_with('/') {
        Some(rest)
    } else {
        None
    }
}

/// Matches `method` and `path` (the full request path, without query) against the deployment.
pub fn find<'d>(deployment: &'d Deployment, method: &str, path: &str) -> RouteMatch<'d> {
    let Some(rest) = strip_prefix(&deployment.path_prefix, path) else {
        return RouteMatch::NotFound;
    };
    let request: Vec<&str> = rest[1..].split('/').collect();
    let mut best: Option<(usize, Candidate)> = None;
    let mut path_matched_methods: Option<Vec<&'static str>> = None;
    for (index, route) in deployment.routes.iter().enumerate() {
        let Some((score, params)) = match_segments(route.path.segments(), &request) else {
            continue;
        };
        if !route.methods.allows(method) {
            let allow = path_matched_methods.get_or_insert_with(Vec::new);
            for name in route.methods.names() {
                let names: Vec<&'static str> = if name == "ANY" {
                    Method::ALL.iter().map(|m| m.name()).collect()
                } else {
                    vec![name]
                };
                for n in names {
                    if !allow.contains(&n) {
                        allow.push(n);
                    }
                }
            }
            continue;
        }
        if best
            .as_ref()
            .is_none_or(|(_, (best_score, _))| score < *best_score)
        {
            best = Some((index, (score, params)));
        }
    }
    match (best, path_matched_methods) {
        (Some((index, (_, params))), _) => RouteMatch::Found {
            route: &deployment.routes[index],
            index,
            params,
        },
        (None, Some(mut allow)) => {
            allow.sort_by_key(|n| Method::ALL.iter().position(|m| m.name() == *n));
            RouteMatch::MethodNotAllowed { allow }
        }
        (None, None) => RouteMatch::NotFound,
    }
}

/// A per-segment specificity score (0 literal, 1 parameter, 2 wildcard; lower is more specific)
/// and the captured parameters, if the template matches.
fn match_segments(template: &[PathSegment], request: &[&str]) -> Option<Candidate> {
    let mut score = Vec::with_capacity(template.len());
    let mut params = Vec::new();
    for (i, segment) in template.iter().enumerate() {
        match segment {
            PathSegment::Literal(literal) => {
                if request.get(i) != Some(&literal.as_str()) {
                    return None;
                }
                score.push(0);
            }
            PathSegment::Param(name) => {
                let value = request.get(i).filter(|v| !v.is_empty())?;
                params.push((name.clone(), (*value).to_owned()));
                score.push(1);
            }
            PathSegment::Wildcard(name) => {
                let rest = request.get(i..).unwrap_or_default().join("/");
                params.push((name.clone(), rest));
                score.push(2);
                return Some((score, params));
            }
        }
    }
    (request.len() == template.len()).then_some((score, params))
}

#[cfg(test)]
mod tests {
    use super::*;
    use claimgate_config::{load_str, LoadOptions};

    fn deployment(routes: &[(&str, &[&str])]) -> Deployment {
        let routes: Vec<serde_json::Value> = routes
            .iter()
            .map(|(path, methods)| {
                serde_json::json!({
                    "path": path,
                    "methods": methods,
                    "backend": {"type": "STOCK_RESPONSE_BACKEND", "status": 200}
                })
            })
            .collect();
        let file = serde_json::json!({"pathPrefix": "/v1", "specification": {"routes": routes}});
        load_str(&file.to_string(), &LoadOptions::default())
            .unwrap()
            .deployment
    }

    fn matched(
        d: &Deployment,
        method: &str,
        path: &str,
    ) -> Option<(String, Vec<(String, String)>)> {
        match find(d, method, path) {
            RouteMatch::Found { route, params, .. } => {
                Some((route.path.as_str().to_owned(), params))
            }
            _ => None,
        }
    }

    #[test]
    fn literal_beats_parameter_beats_wildcard_whatever_the_order() {
        let d = deployment(&[
            ("/a/{rest*}", &["GET"]),
            ("/a/{id}", &["GET"]),
            ("/a/b", &["GET"]),
        ]);
        assert_eq!(matched(&d, "GET", "/v1/a/b").unwrap().0, "/a/b");
        assert_eq!(matched(&d, "GET", "/v1/a/c").unwrap().0, "/a/{id}");
        assert_eq!(matched(&d, "GET", "/v1/a/c/d").unwrap().0, "/a/{rest*}");
    }

    #[test]
    fn parameters_capture_segments() {
        let d = deployment(&[
            ("/hello/{region}/index.html", &["GET"]),
            ("/files/{path*}", &["GET"]),
        ]);
        let (_, params) = matched(&d, "GET", "/v1/hello/emea/index.html").unwrap();
        assert_eq!(params, vec![("region".to_owned(), "emea".to_owned())]);
        let (_, params) = matched(&d, "GET", "/v1/files/a/b/c").unwrap();
        assert_eq!(params, vec![("path".to_owned(), "a/b/c".to_owned())]);
        assert!(
            matched(&d, "GET", "/v1/files").is_some(),
            "wildcard matches zero segments"
        );
        assert!(
            matched(&d, "GET", "/v1/hello//index.html").is_none(),
            "a parameter needs a value"
        );
    }

    #[test]
    fn prefix_must_end_on_a_segment_boundary() {
        let d = deployment(&[("/", &["ANY"])]);
        assert!(matched(&d, "GET", "/v1").is_some());
        assert!(matched(&d, "GET", "/v1/").is_some());
        assert!(matched(&d, "GET", "/v10").is_none());
        assert!(matched(&d, "GET", "/other").is_none());
    }

    #[test]
    fn wrong_method_is_405_with_allow() {
        let d = deployment(&[("/x", &["GET", "POST"]), ("/x", &["DELETE"])]);
        match find(&d, "PUT", "/v1/x") {
            RouteMatch::MethodNotAllowed { allow } => {
                assert_eq!(allow, vec!["GET", "POST", "DELETE"])
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(find(&d, "GET", "/v1/y"), RouteMatch::NotFound));
    }

    #[test]
    fn any_method_matches_everything() {
        let d = deployment(&[("/x", &["ANY"])]);
        assert!(matched(&d, "PATCH", "/v1/x").is_some());
    }

    #[test]
    fn longest_prefix_picks_the_deployment() {
        let mut a = deployment(&[("/", &["ANY"])]);
        let mut b = a.clone();
        a.path_prefix = "/api".into();
        b.path_prefix = "/api/v2".into();
        let all = [a, b];
        assert_eq!(
            find_deployment(&all, "/api/v2/x").unwrap().path_prefix,
            "/api/v2"
        );
        assert_eq!(
            find_deployment(&all, "/api/v1/x").unwrap().path_prefix,
            "/api"
        );
        assert!(find_deployment(&all, "/other").is_none());
    }
}
