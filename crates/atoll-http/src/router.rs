//! The manifest's routes as a lookup table: one `matchit` tree per method
//! plus one for `ANY`, so a path that exists under another method answers
//! 405 with `Allow`, not 404.

use atoll_manifest::{Manifest, ManifestError, ManifestErrors, Methods};
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct Router {
    by_method: BTreeMap<String, matchit::Router<usize>>,
    any: matchit::Router<usize>,
    /// `GET /users/:id` per route, for log lines, made once.
    labels: Vec<Arc<str>>,
}

pub enum Lookup {
    Found {
        route: usize,
        label: Arc<str>,
        params: Vec<(String, String)>,
    },
    /// The path exists, but not for this method.
    MethodNotAllowed {
        allow: Vec<String>,
    },
    NotFound,
}

impl Router {
    pub fn build(manifest: &Manifest) -> Result<Router, ManifestErrors> {
        let mut router = Router {
            by_method: BTreeMap::new(),
            any: matchit::Router::new(),
            labels: manifest.routes.iter().map(|r| Arc::from(r.describe())).collect(),
        };
        let mut errors: Vec<ManifestError> = Vec::new();
        for route in &manifest.routes {
            let pattern = route.path.to_matchit();
            let trees: Vec<&mut matchit::Router<usize>> = match &route.methods {
                Methods::Any => vec![&mut router.any],
                Methods::Only(list) => {
                    for m in list {
                        router.by_method.entry(m.clone()).or_default();
                    }
                    router
                        .by_method
                        .iter_mut()
                        .filter(|(m, _)| list.contains(m))
                        .map(|(_, t)| t)
                        .collect()
                }
            };
            for tree in trees {
                if let Err(e) = tree.insert(pattern.clone(), route.index) {
                    errors.push(manifest.source.error(
                        route.loc,
                        format!("routes[{}].path", route.index),
                        format!("route {} conflicts with an earlier route: {e}", route.describe()),
                    ));
                }
            }
        }
        if errors.is_empty() {
            Ok(router)
        } else {
            Err(ManifestErrors(errors))
        }
    }

    pub fn lookup(&self, method: &str, path: &str) -> Lookup {
        let found = |tree: &matchit::Router<usize>| {
            tree.at(path).ok().map(|m| Lookup::Found {
                route: *m.value,
                label: self.labels[*m.value].clone(),
                params: m.params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            })
        };
        let exact = self.by_method.get(method).and_then(found);
        // HEAD is answered by a GET route unless one is declared for it.
        let head = (method == "HEAD")
            .then(|| self.by_method.get("GET").and_then(found))
            .flatten();
        if let Some(hit) = exact.or(head).or_else(|| found(&self.any)) {
            return hit;
        }
        let allow: Vec<String> = self
            .by_method
            .iter()
            .filter(|(_, tree)| tree.at(path).is_ok())
            .map(|(m, _)| m.clone())
            .collect();
        if allow.is_empty() {
            Lookup::NotFound
        } else {
            Lookup::MethodNotAllowed { allow }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Property tests: any set of valid route paths, including ones that
    //! conflict, either builds or is refused with a message, and looking up
    //! any method and path in a built router never panics and answers
    //! consistently with the routes it was built from.

    use super::{Lookup, Router};
    use atoll_manifest::{Manifest, Methods, RoutePath, Segment};
    use proptest::prelude::*;
    use std::path::Path;

    /// Segments that overlap often, plus the characters with a meaning to
    /// the router (`{`, `}`, `*`, `:`) or to URLs.
    const WORDS: &[&str] = &["users", "u", "a", "me", "{x}", "{", "}", "%2F", "é", "x.y", ""];
    const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "DELETE", "BREW"];

    /// A route as the test makes it: methods and path text, which
    /// `RoutePath::parse` may still refuse.
    fn route() -> impl Strategy<Value = (Option<Vec<String>>, String)> {
        let segment = prop_oneof![
            4 => prop::sample::select(WORDS).prop_map(str::to_string),
            1 => "[a-z{}*:%./]{0,6}",
            2 => prop::sample::select(&["id", "name", "x"][..]).prop_map(|n| format!(":{n}")),
            1 => prop::sample::select(&["rest", "path"][..]).prop_map(|n| format!("*{n}")),
        ];
        let methods = prop::option::of(prop::sample::subsequence(METHODS, 1..=3))
            .prop_map(|m| m.map(|list| list.into_iter().map(str::to_string).collect()));
        (
            methods,
            prop::collection::vec(segment, 0..5).prop_map(|s| format!("/{}", s.join("/"))),
        )
    }

    /// A manifest with `routes`, bypassing the manifest's own duplicate
    /// check so conflicts reach the router.
    fn manifest(routes: &[(Option<Vec<String>>, RoutePath)]) -> Manifest {
        let mut manifest = Manifest::parse(
            "[app]\nname = \"r\"\n[functions.one]\nsource = \"one.wasm\"\n[[routes]]\npath = \"/\"\nfn = \"one\"\n",
            Path::new("atoll.toml"),
        )
        .unwrap();
        let base = manifest.routes.pop().unwrap();
        manifest.routes = routes
            .iter()
            .enumerate()
            .map(|(index, (methods, path))| atoll_manifest::Route {
                index,
                methods: methods.clone().map_or(Methods::Any, Methods::Only),
                path: path.clone(),
                ..base.clone()
            })
            .collect();
        manifest
    }

    /// A concrete path the route matches, with `value` for each parameter.
    fn concrete(path: &RoutePath, value: &str) -> String {
        let parts: Vec<&str> = path
            .segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => l.as_str(),
                Segment::Param(_) | Segment::Wildcard(_) => value,
            })
            .collect();
        format!("/{}", parts.join("/"))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn any_routes_and_paths_are_looked_up_without_panicking(
            raw in prop::collection::vec(route(), 0..8),
            lookups in prop::collection::vec(
                (
                    prop_oneof![prop::sample::select(METHODS).prop_map(str::to_string), "[A-Za-z]{0,8}"],
                    prop_oneof![
                        prop::collection::vec(prop::sample::select(WORDS), 0..5).prop_map(|s| format!("/{}", s.join("/"))),
                        ".{0,40}",
                    ],
                ),
                0..16,
            ),
            value in "[a-z0-9]{1,8}",
        ) {
            let routes: Vec<(Option<Vec<String>>, RoutePath)> = raw
                .into_iter()
                .filter_map(|(m, p)| RoutePath::parse(&p).ok().map(|p| (m, p)))
                .collect();
            let manifest = manifest(&routes);
            let router = match Router::build(&manifest) {
                Ok(r) => r,
                Err(errors) => {
                    prop_assert!(errors.iter().count() > 0);
                    prop_assert!(errors.iter().all(|e| e.to_string().contains("conflicts with an earlier route")));
                    return Ok(());
                }
            };
            for (method, path) in &lookups {
                match router.lookup(method, path) {
                    Lookup::Found { route, label, .. } => {
                        let r = &manifest.routes[route];
                        prop_assert_eq!(&*label, r.describe());
                        prop_assert!(
                            r.methods.allows(method) || (method == "HEAD" && r.methods.allows("GET")),
                            "{method} {path} found {}", r.describe()
                        );
                    }
                    Lookup::MethodNotAllowed { allow } => {
                        prop_assert!(!allow.is_empty() && !allow.contains(method));
                    }
                    Lookup::NotFound => {}
                }
            }
            // Every route answers a path made from its own pattern.
            for r in &manifest.routes {
                let method = match &r.methods {
                    Methods::Any => "PATCH",
                    Methods::Only(list) => list[0].as_str(),
                };
                let path = concrete(&r.path, &value);
                match router.lookup(method, &path) {
                    Lookup::Found { route, params, .. } => {
                        let hit = &manifest.routes[route];
                        let names = hit.path.segments.iter().filter(|s| !matches!(s, Segment::Literal(_))).count();
                        prop_assert_eq!(params.len(), names, "{} for {}", method, path);
                    }
                    _ => prop_assert!(false, "{method} {path} did not find {} (or any route)", r.describe()),
                }
            }
        }
    }
}
