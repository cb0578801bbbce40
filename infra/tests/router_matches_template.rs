//! The committed `CargoLambda.toml` routes exactly the template's HttpApi routes to the same
//! binaries, so `make dev` answers at the paths production answers at, and nothing more.

use infra::router::{local_routes, matchit_path, CONFIG_FILE, REGENERATE};
use infra::{default_template_path, Template};
use std::collections::BTreeSet;
use std::path::Path;

fn committed_config() -> toml::Table {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "reading {}: {e}; regenerate with `{REGENERATE}`",
            path.display()
        )
    });
    text.parse().expect("CargoLambda.toml is valid TOML")
}

/// `(method, path, function)` as cargo-lambda will read them (`ANY` for a path-wide route).
fn routes_in_config(config: &toml::Table) -> BTreeSet<(String, String, String)> {
    let router = config["watch"]["router"]
        .as_table()
        .expect("[watch.router] is a table");
    let mut routes = BTreeSet::new();
    for (path, target) in router {
        match target {
            toml::Value::String(function) => {
                routes.insert(("ANY".into(), path.clone(), function.clone()));
            }
            toml::Value::Array(entries) => {
                for entry in entries {
                    let method = entry["method"].as_str().expect("method is a string");
                    let function = entry["function"].as_str().expect("function is a string");
                    let new = routes.insert((method.into(), path.clone(), function.into()));
                    assert!(new, "{method} {path} is listed twice");
                }
            }
            other => panic!("route {path}: unexpected value {other:?}"),
        }
    }
    routes
}

#[test]
fn router_routes_equal_template_routes() {
    let template = Template::load(default_template_path(), &[]).unwrap();
    let expected: BTreeSet<_> = local_routes(&template)
        .unwrap()
        .into_iter()
        .flat_map(|(path, routes)| {
            routes
                .into_iter()
                .map(move |(method, binary)| (method, path.clone(), binary))
        })
        .collect();
    assert!(!expected.is_empty(), "the template has HttpApi routes");

    let actual = routes_in_config(&committed_config());
    assert_eq!(
        actual, expected,
        "CargoLambda.toml and template.yaml disagree; regenerate with `{REGENERATE}`"
    );
}

/// The function cargo-lambda sends `method path` to, if any.
fn function_for(
    routes: &BTreeSet<(String, String, String)>,
    method: &str,
    path: &str,
) -> Option<String> {
    routes
        .iter()
        .find(|(m, p, _)| p == path && (m == method || m == "ANY"))
        .map(|(_, _, f)| f.clone())
}

#[test]
fn router_sends_submissions_to_lead_intake() {
    let routes = routes_in_config(&committed_config());
    for method in ["POST", "OPTIONS"] {
        assert_eq!(
            function_for(&routes, method, "/v1/forms/{formId}/submissions").as_deref(),
            Some("lead-intake"),
            "{method}"
        );
    }
}

#[test]
fn every_method_of_a_template_path_reaches_the_paths_function() {
    // Undeclared methods are answered 405 with Allow by the function (shared_core::http::match_route),
    // in production through the template's ANY routes, locally through cargo-lambda's.
    let template = Template::load(default_template_path(), &[]).unwrap();
    let routes = routes_in_config(&committed_config());
    for (_, path, binary) in template.http_routes() {
        for method in [
            "GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE",
        ] {
            assert_eq!(
                function_for(&routes, method, &matchit_path(&path)).as_deref(),
                Some(binary.as_str()),
                "{method} {path}"
            );
        }
    }
}

/// A concrete request path for a route pattern: every `{param}` / `{*rest}` filled in.
fn sample_path(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                "sample-value"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn every_route_reaches_its_function_through_cargo_lambdas_router() {
    // cargo-lambda inserts each path into a matchit router when it loads its config (a conflict
    // stops `cargo lambda watch`), then matches the request path and looks the method up.
    let routes = routes_in_config(&committed_config());
    let mut router = matchit::Router::new();
    let mut paths = BTreeSet::new();
    for (_, path, _) in &routes {
        if paths.insert(path.clone()) {
            router
                .insert(path.as_str(), path.clone())
                .unwrap_or_else(|e| panic!("cargo-lambda cannot route {path}: {e}"));
        }
    }
    for (method, path, function) in &routes {
        let request = sample_path(path);
        let matched = router
            .at(&request)
            .unwrap_or_else(|e| panic!("{method} {request}: {e}"));
        assert_eq!(
            matched.value, path,
            "{method} {request} is taken by another route"
        );
        let found: Vec<_> = routes
            .iter()
            .filter(|(m, p, _)| p == path && (m == method || m == "ANY"))
            .map(|(_, _, f)| f)
            .collect();
        assert_eq!(found, [function], "{method} {path}");
    }
}

#[test]
fn cargo_lambda_cors_is_disabled() {
    // The function answers preflights and sets CORS headers itself; cargo-lambda's permissive
    // layer would answer OPTIONS before the function and hide its mistakes.
    let config = committed_config();
    assert_eq!(config["watch"]["disable_cors"].as_bool(), Some(true));
}

#[test]
fn committed_file_is_what_the_generator_prints() {
    let template = Template::load(default_template_path(), &[]).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(CONFIG_FILE);
    let committed = std::fs::read_to_string(path).unwrap();
    assert_eq!(
        committed,
        infra::router::render(&template).unwrap(),
        "CargoLambda.toml was edited by hand or is stale; regenerate with `{REGENERATE}`"
    );
}
