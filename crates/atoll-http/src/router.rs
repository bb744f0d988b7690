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
