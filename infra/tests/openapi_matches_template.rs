//! The OpenAPI document (docs/openapi.yaml) describes exactly the routes template.yaml deploys:
//! no undocumented route, no documented route that does not exist.

use infra::{default_template_path, Template};
use std::collections::BTreeSet;
use std::path::Path;

const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch"];

#[test]
fn openapi_paths_equal_template_routes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.yaml");
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).expect("docs/openapi.yaml"))
            .expect("valid YAML");
    let mut documented = BTreeSet::new();
    for (p, item) in doc["paths"].as_mapping().expect("paths") {
        let p = p.as_str().expect("path string");
        for (m, _) in item.as_mapping().expect("path item") {
            let m = m.as_str().unwrap_or_default();
            if METHODS.contains(&m) {
                documented.insert((m.to_uppercase(), p.to_string()));
            }
        }
    }
    let template = Template::load(default_template_path(), &[]).unwrap();
    // `ANY` routes are not operations: they bring a path's other methods to its function, which
    // answers 405 with `Allow` (checked below).
    let deployed: BTreeSet<_> = template
        .http_routes()
        .into_iter()
        .filter(|(method, _, _)| method != "ANY")
        .map(|(method, path, _)| (method, path))
        .collect();
    assert_eq!(documented, deployed);
}

#[test]
fn every_documented_path_answers_its_other_methods_405_through_an_any_route() {
    let template = Template::load(default_template_path(), &[]).unwrap();
    let routes = template.http_routes();
    for (method, path, binary) in &routes {
        if method == "ANY" {
            continue;
        }
        let any: Vec<_> = routes
            .iter()
            .filter(|(m, p, _)| m == "ANY" && p == path)
            .map(|(_, _, b)| b)
            .collect();
        assert_eq!(
            any,
            [binary],
            "{path} needs one `ANY` route to {binary} (the function answers other methods 405)"
        );
    }
}

/// The `{name}` segments of a route path.
fn path_params(path: &str) -> BTreeSet<String> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|s| s.trim_end_matches('+').to_string())
        .collect()
}

#[test]
fn every_path_parameter_is_declared_and_every_declared_one_is_in_the_path() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.yaml");
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).expect("docs/openapi.yaml"))
            .expect("valid YAML");
    let declared_in = |params: &serde_yaml::Value| -> BTreeSet<String> {
        params
            .as_sequence()
            .into_iter()
            .flatten()
            .filter(|p| p["in"].as_str() == Some("path"))
            .filter_map(|p| p["name"].as_str().map(str::to_string))
            .collect()
    };
    for (p, item) in doc["paths"].as_mapping().expect("paths") {
        let p = p.as_str().expect("path string");
        let in_path = path_params(p);
        let shared = declared_in(&item["parameters"]);
        for (m, op) in item.as_mapping().expect("path item") {
            let m = m.as_str().unwrap_or_default();
            if !METHODS.contains(&m) {
                continue;
            }
            let mut declared = shared.clone();
            declared.extend(declared_in(&op["parameters"]));
            assert_eq!(
                declared,
                in_path,
                "{} {p}: path parameters declared in docs/openapi.yaml",
                m.to_uppercase()
            );
        }
    }
}
