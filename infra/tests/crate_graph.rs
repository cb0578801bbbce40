//! The library's dependency graph, as `docs/architecture.md` draws it: one crate per capability
//! under `shared/`, `shared-core` at the bottom, edges pointing one way, and each function
//! depending only on the capabilities it uses (`lead-intake` never builds the data-subject
//! request code). A new edge between workspace packages fails here until this table (in `infra/tests/crate_graph.rs`), and the
//! document, say why it is right.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Every workspace package and the workspace packages it may depend on (normal dependencies).
const ALLOWED: &[(&str, &[&str])] = &[
    ("shared-core", &[]),
    ("shared-mail", &["shared-core"]),
    ("shared-accounts", &["shared-core", "shared-mail"]),
    ("shared-billing", &["shared-core"]),
    (
        "shared-leads",
        &[
            "shared-core",
            "shared-mail",
            "shared-accounts",
            "shared-billing",
        ],
    ),
    (
        "shared-privacy",
        &[
            "shared-core",
            "shared-mail",
            "shared-accounts",
            "shared-leads",
            // An erasure certificate names the tenant's endpoints told `lead.erased`.
            "shared-outbound",
        ],
    ),
    // The outbound channel's domain (events of the change stream, webhook signatures, the SSRF
    // address rules, the retry schedule) and its records: it needs only core's ids, keys and
    // item helpers; no capability depends on it but the functions that send or manage webhooks.
    ("shared-outbound", &["shared-core"]),
    ("attachment-guard", &["shared-core", "shared-leads"]),
    // The change stream's consumer: events, deliveries and notification emails (the platform
    // mailer); no lead, account or privacy code: a stream record carries what it needs.
    (
        "outbound",
        &["shared-core", "shared-mail", "shared-outbound"],
    ),
    // Webhook endpoints' API: authenticates callers (accounts) and manages the outbound
    // channel's records; no lead or privacy code.
    (
        "webhooks",
        &["shared-core", "shared-accounts", "shared-outbound"],
    ),
    (
        "auth",
        &[
            "shared-core",
            "shared-mail",
            "shared-accounts",
            "shared-billing",
        ],
    ),
    (
        "billing-webhook",
        &[
            "shared-core",
            "shared-mail",
            "shared-accounts",
            "shared-billing",
        ],
    ),
    (
        "dsar",
        &[
            "shared-core",
            "shared-mail",
            "shared-accounts",
            "shared-leads",
            "shared-privacy",
        ],
    ),
    (
        "dsar-deadlines",
        &[
            "shared-core",
            "shared-mail",
            "shared-accounts",
            "shared-privacy",
        ],
    ),
    (
        "dsar-worker",
        &[
            "shared-core",
            "shared-mail",
            "shared-accounts",
            "shared-privacy",
        ],
    ),
    (
        "lead-intake",
        &[
            "shared-core",
            "shared-mail",
            "shared-accounts",
            "shared-billing",
            "shared-leads",
        ],
    ),
    (
        "lead-transfers",
        &["shared-core", "shared-accounts", "shared-leads"],
    ),
    // shared-billing: releasing a quarantined submission counts it against the monthly quota
    // (the billing policy from the environment, as lead-intake reads it); shared-leads built it
    // already.
    (
        "leads-api",
        &[
            "shared-core",
            "shared-accounts",
            "shared-billing",
            "shared-leads",
        ],
    ),
    ("mail-events", &["shared-core", "shared-mail"]),
    (
        "retention-cleanup",
        &[
            "shared-core",
            "shared-billing",
            "shared-leads",
            "shared-privacy",
        ],
    ),
];

/// Packages that wire, test or measure the whole platform (they call the functions' handlers as
/// libraries): they may depend on anything; nothing may depend on them.
const WHOLE_PLATFORM: &[&str] = &["infra", "integration-tests", "bench"];

/// Workspace package -> (normal, dev) dependencies on other workspace packages.
type Graph = BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>;

fn workspace_graph() -> Graph {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let names: BTreeSet<String> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    packages
        .iter()
        .map(|p| {
            let mut normal = BTreeSet::new();
            let mut dev = BTreeSet::new();
            for d in p["dependencies"].as_array().unwrap() {
                let name = d["name"].as_str().unwrap().to_string();
                if !names.contains(&name) {
                    continue;
                }
                match d["kind"].as_str() {
                    None | Some("normal") => normal.insert(name),
                    _ => dev.insert(name),
                };
            }
            (p["name"].as_str().unwrap().to_string(), (normal, dev))
        })
        .collect()
}

fn allowed() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    ALLOWED
        .iter()
        .map(|(p, deps)| (*p, deps.iter().copied().collect()))
        .collect()
}

/// Every edge of the graph is in the table, and every package is in it (a new function or crate
/// must say what it depends on).
fn unexpected_edges(graph: &Graph) -> Vec<String> {
    let allowed = allowed();
    let mut bad = vec![];
    for (pkg, (normal, dev)) in graph {
        if WHOLE_PLATFORM.contains(&pkg.as_str()) {
            continue;
        }
        let Some(ok) = allowed.get(pkg.as_str()) else {
            bad.push(format!("{pkg}: not in the table of allowed edges"));
            continue;
        };
        for d in normal {
            if !ok.contains(d.as_str()) {
                bad.push(format!("{pkg} -> {d}"));
            }
        }
        // A package's tests may use any library crate (fakes, fixtures), never another
        // function's package or a whole-platform one.
        for d in dev {
            if !d.starts_with("shared-") {
                bad.push(format!("{pkg} -(dev)-> {d}"));
            }
        }
    }
    bad
}

/// The library crates in an order where each depends only on earlier ones, or the cycle.
fn layering(graph: &Graph) -> Result<Vec<String>, Vec<String>> {
    let mut left: BTreeMap<&str, BTreeSet<&str>> = graph
        .iter()
        .filter(|(p, _)| p.starts_with("shared-"))
        .map(|(p, (normal, _))| {
            let deps = normal
                .iter()
                .filter(|d| d.starts_with("shared-"))
                .map(String::as_str)
                .collect();
            (p.as_str(), deps)
        })
        .collect();
    let mut order = vec![];
    while !left.is_empty() {
        let ready: Vec<&str> = left
            .iter()
            .filter(|(_, deps)| deps.is_empty())
            .map(|(p, _)| *p)
            .collect();
        if ready.is_empty() {
            return Err(left.keys().map(|p| p.to_string()).collect());
        }
        for p in ready {
            left.remove(p);
            for deps in left.values_mut() {
                deps.remove(p);
            }
            order.push(p.to_string());
        }
    }
    Ok(order)
}

fn closure<'a>(graph: &'a Graph, from: &str) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(p) = todo.pop() {
        if let Some((normal, _)) = graph.get(&p) {
            for d in normal {
                if seen.insert(d.as_str()) {
                    todo.push(d.clone());
                }
            }
        }
    }
    seen
}

#[test]
fn every_edge_between_workspace_packages_is_an_allowed_one() {
    let graph = workspace_graph();
    assert!(
        graph.contains_key("shared-core"),
        "the library crates exist"
    );
    let bad = unexpected_edges(&graph);
    assert!(
        bad.is_empty(),
        "edges not in infra/tests/crate_graph.rs's table (and docs/architecture.md): {bad:#?}"
    );
}

#[test]
fn the_library_is_layered_with_core_at_the_bottom_and_no_cycle() {
    let graph = workspace_graph();
    let order = layering(&graph).unwrap_or_else(|cycle| panic!("a cycle among {cycle:?}"));
    assert_eq!(order.first().map(String::as_str), Some("shared-core"));
    for (pkg, (normal, _)) in &graph {
        if pkg.starts_with("shared-") && pkg != "shared-core" {
            assert!(
                normal.contains("shared-core"),
                "{pkg} builds on shared-core"
            );
        }
    }
}

#[test]
fn lead_intake_does_not_build_the_privacy_or_transfer_request_code() {
    let graph = workspace_graph();
    let reach = closure(&graph, "lead-intake");
    assert!(
        !reach.contains("shared-privacy"),
        "lead-intake reaches {reach:?}"
    );
    // Each function reaches only crates it declares or their own dependencies: no function
    // reaches another function's package.
    for (pkg, _) in graph
        .iter()
        .filter(|(p, _)| allowed().contains_key(p.as_str()))
    {
        for d in closure(&graph, pkg) {
            assert!(d.starts_with("shared-"), "{pkg} reaches {d}");
        }
    }
}

#[test]
fn the_checks_catch_a_new_edge_and_a_cycle() {
    let mut graph = workspace_graph();
    graph
        .get_mut("lead-intake")
        .unwrap()
        .0
        .insert("shared-privacy".into());
    assert_eq!(
        unexpected_edges(&graph),
        vec!["lead-intake -> shared-privacy".to_string()]
    );
    graph
        .get_mut("shared-core")
        .unwrap()
        .0
        .insert("shared-privacy".into());
    assert!(layering(&graph).is_err());
}
