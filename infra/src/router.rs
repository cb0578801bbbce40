//! The `cargo lambda watch` configuration (`CargoLambda.toml` at the workspace root), derived from
//! the template's HttpApi routes so that the functions answer locally at the same paths as in
//! production.
//!
//! cargo-lambda 1.9 reads `CargoLambda.toml` from the current directory (or `--global PATH`), under
//! `[watch]`; its router matches paths with matchit, whose `{param}` syntax is API Gateway's, and
//! hands the matched parameters to the function as `pathParameters`. Greedy API Gateway parameters
//! (`{proxy+}`) become matchit catch-alls (`{*proxy}`).

use crate::template::Template;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// File name cargo-lambda looks for in the directory it is started from.
pub const CONFIG_FILE: &str = "CargoLambda.toml";

/// The command that regenerates [`CONFIG_FILE`]; quoted in the file and in test failures.
pub const REGENERATE: &str = "cargo run -q -p infra --bin devstack -- router > CargoLambda.toml";

/// API Gateway path syntax → matchit path syntax.
pub fn matchit_path(api_gateway_path: &str) -> String {
    api_gateway_path
        .split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix("+}")) {
                Some(name) => format!("{{*{name}}}"),
                None => segment.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// The template's HttpApi routes as cargo-lambda is to route them: path (matchit syntax) →
/// `[(method, binary)]`, in a stable order. A path with an `ANY` route (every other method, which
/// the function answers 405) becomes that one `ANY` route: cargo-lambda matches listed methods
/// exactly and cannot list `ANY` beside them, and the path's function answers every method
/// anyway. So every route of such a path must go to the same function.
pub fn local_routes(
    template: &Template,
) -> anyhow::Result<BTreeMap<String, Vec<(String, String)>>> {
    let mut by_path: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (method, path, binary) in template.http_routes() {
        by_path
            .entry(matchit_path(&path))
            .or_default()
            .push((method, binary));
    }
    for (path, routes) in by_path.iter_mut() {
        let Some((_, any_binary)) = routes.iter().find(|(m, _)| m == "ANY").cloned() else {
            continue;
        };
        if let Some((method, other)) = routes.iter().find(|(_, b)| *b != any_binary) {
            anyhow::bail!(
                "path {path}: ANY goes to {any_binary} but {method} to {other}; cargo-lambda \
                 cannot route a path's other methods to one function and its ANY to another"
            );
        }
        *routes = vec![("ANY".to_string(), any_binary)];
    }
    Ok(by_path)
}

/// The full `CargoLambda.toml` text for `template`.
pub fn render(template: &Template) -> anyhow::Result<String> {
    // In a stable order, so the committed file only changes when routes do.
    let by_path = local_routes(template)?;

    let mut out = String::new();
    out.push_str(
        "# Configuration of `cargo lambda watch` (used by `make dev` and the e2e test).\n",
    );
    out.push_str(
        "# Generated from template.yaml's HttpApi routes; do not edit by hand. Regenerate with\n",
    );
    let _ = writeln!(out, "#   {REGENERATE}");
    out.push_str(
        "# infra/tests/router_matches_template.rs fails when this file and the template differ.\n",
    );
    out.push('\n');
    out.push_str("[watch]\n");
    out.push_str(
        "# Lead intake answers CORS preflights and sets CORS headers itself (per form), as\n",
    );
    out.push_str(
        "# in production; cargo-lambda's permissive default CORS layer would hide mistakes.\n",
    );
    out.push_str("# (The app API's CORS is API Gateway's CorsConfiguration, not emulated here.)\n");
    out.push_str("disable_cors = true\n");
    out.push('\n');
    out.push_str("[watch.router]\n");
    for (path, routes) in by_path {
        if let [(method, binary)] = routes.as_slice() {
            if method == "ANY" {
                let _ = writeln!(out, "{} = {}", quote(&path), quote(binary));
                continue;
            }
        }
        let _ = writeln!(out, "{} = [", quote(&path));
        for (method, binary) in routes {
            let _ = writeln!(
                out,
                "    {{ method = {}, function = {} }},",
                quote(&method),
                quote(&binary)
            );
        }
        out.push_str("]\n");
    }
    Ok(out)
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_parameters_become_catch_alls() {
        assert_eq!(
            matchit_path("/v1/forms/{formId}/submissions"),
            "/v1/forms/{formId}/submissions"
        );
        assert_eq!(matchit_path("/files/{proxy+}"), "/files/{*proxy}");
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
