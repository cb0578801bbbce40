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
    let deployed: BTreeSet<_> = template
        .http_routes()
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    assert_eq!(documented, deployed);
}
