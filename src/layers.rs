//! The house rule, checked by `cargo test`: modules only import modules of a lower layer, and the
//! top-level modules of `src/` import each other without a cycle. The layers, bottom up:
//!
//! 0. `error`, `model`, `time`, `config`, `log`, `metrics`: plain types and utilities;
//! 1. `db` (tables and rows) and `providers` (HTTP clients, never the database);
//! 2. `flags` and `cache` (the cache's rows and busy computation, shared by reads and the legacy
//!    dual-write);
//! 3. `sync`, the engine;
//! 4. `cron`, `webhook`, `availability`, `legacy`: what the API offers, on top of the engine;
//! 5. `client`, the API in Rust; 6. `binding` (`napi/`), the API in JavaScript.
//!
//! Imports within one layer are allowed as long as they make no cycle.

/// Each top-level module of `src/` and its layer.
pub const LAYERS: &[(&str, u8)] = &[
    ("error", 0),
    ("model", 0),
    ("time", 0),
    ("config", 0),
    ("log", 0),
    ("metrics", 0),
    ("db", 1),
    ("providers", 1),
    ("flags", 2),
    ("cache", 2),
    ("sync", 3),
    ("cron", 4),
    ("webhook", 4),
    ("availability", 4),
    ("legacy", 4),
    ("client", 5),
    ("binding", 6),
    ("layers", 7),
];

/// The top-level modules a Rust source file refers to through `crate::` paths (`use crate::a::…`,
/// `use crate::{a::…, b}`, `crate::a::f()` in code), comments and strings included (a stray
/// mention is cheap to reword; a missed import is not).
pub fn referenced(source: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let ident = |s: &str| {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect::<String>()
    };
    let mut rest = source;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            // `crate::{a::x, b, c::{y, z}}`: the first segment of each top-level item.
            let mut depth = 1;
            let mut item_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        item_start = false;
                        let name = ident(&group[j..]);
                        if !name.is_empty() {
                            out.insert(name);
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(after);
            if !name.is_empty() {
                out.insert(name);
            }
        }
        rest = after;
    }
    out
}

/// Edges between top-level modules that break the rule: importing a higher layer, or an unknown
/// module (`None` rank). Names of `crate::` items that are not modules (`Result`, `Calsync`) are
/// ignored.
pub fn violations(edges: &[(String, String)], layer: impl Fn(&str) -> Option<u8>) -> Vec<&(String, String)> {
    edges
        .iter()
        .filter(|(from, to)| match (layer(from), layer(to)) {
            (Some(a), Some(b)) => b > a,
            _ => false,
        })
        .collect()
}

/// A cycle among the edges, as the list of modules along it, if there is one.
pub fn cycle(edges: &[(String, String)]) -> Option<Vec<String>> {
    use std::collections::BTreeMap;
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges {
        if a != b {
            next.entry(a).or_default().push(b);
        }
    }
    // Depth-first search with colours: 1 on the current path, 2 done.
    fn visit<'a>(
        n: &'a str,
        next: &BTreeMap<&'a str, Vec<&'a str>>,
        colour: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        colour.insert(n, 1);
        path.push(n);
        for &m in next.get(n).map(Vec::as_slice).unwrap_or_default() {
            match colour.get(m) {
                Some(1) => {
                    let from = path.iter().position(|x| *x == m).unwrap_or(0);
                    let mut found: Vec<String> = path[from..].iter().map(|s| s.to_string()).collect();
                    found.push(m.to_string());
                    return Some(found);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, next, colour, path) {
                        return Some(c);
                    }
                }
            }
        }
        path.pop();
        colour.insert(n, 2);
        None
    }
    let mut colour = BTreeMap::new();
    let nodes: Vec<&str> = next.keys().copied().collect();
    for n in nodes {
        if !colour.contains_key(n) {
            if let Some(c) = visit(n, &next, &mut colour, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn layer(name: &str) -> Option<u8> {
        LAYERS.iter().find(|(m, _)| *m == name).map(|(_, l)| *l)
    }

    /// The top-level module a file under `src/` belongs to (`napi/` is mounted as `binding`).
    fn module_of(rel: &Path) -> String {
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .to_string();
        let name = first.trim_end_matches(".rs").to_string();
        if name == "napi" {
            "binding".into()
        } else {
            name
        }
    }

    fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                sources(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }

    /// Every `crate::` edge between top-level modules of `src/` (test modules included).
    fn edges() -> Vec<(String, String)> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        let mut edges = std::collections::BTreeSet::new();
        for f in files {
            let rel = f.strip_prefix(&src).unwrap();
            if rel == Path::new("lib.rs") || rel == Path::new("layers.rs") {
                continue;
            }
            let from = module_of(rel);
            for to in referenced(&std::fs::read_to_string(&f).unwrap()) {
                if to != from && layer(&to).is_some() {
                    edges.insert((from.clone(), to));
                }
            }
        }
        edges.into_iter().collect()
    }

    #[test]
    fn every_module_has_a_layer() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        for entry in std::fs::read_dir(&src).unwrap() {
            let rel = entry.unwrap().path();
            let name = module_of(rel.strip_prefix(&src).unwrap());
            if name != "lib" && !name.ends_with(".sql") {
                assert!(layer(&name).is_some(), "src/{name}: give it a layer in LAYERS");
            }
        }
    }

    #[test]
    fn modules_import_only_lower_layers_and_make_no_cycle() {
        let edges = edges();
        let up = violations(&edges, layer);
        assert!(up.is_empty(), "imports of a higher layer: {up:?}");
        assert_eq!(cycle(&edges), None, "an import cycle between top-level modules");
    }

    /// The real graph with one upward import added (the bottom importing the engine, as
    /// `model.rs` importing `providers` once did): both checks fail on it.
    #[test]
    fn an_upward_import_in_the_real_graph_is_caught() {
        let mut edges = edges();
        edges.push(("model".into(), "sync".into()));
        assert_eq!(
            violations(&edges, layer),
            vec![&("model".to_string(), "sync".to_string())]
        );
        assert!(cycle(&edges).is_some_and(|c| c.contains(&"model".to_string())));
    }

    #[test]
    fn the_checks_catch_what_they_are_for() {
        let src = "use crate::db::calendars;\nuse crate::{error::Result, sync::Engine,\n  model};\nlet x = crate::metrics::provider(y);";
        let names: Vec<String> = referenced(src).into_iter().collect();
        assert_eq!(names, ["db", "error", "metrics", "model", "sync"]);
        let e = |a: &str, b: &str| (a.to_string(), b.to_string());
        let edges = vec![e("sync", "db"), e("db", "model"), e("model", "sync")];
        assert_eq!(
            cycle(&edges),
            Some(vec!["db".into(), "model".into(), "sync".into(), "db".into()])
        );
        assert_eq!(violations(&edges, layer), vec![&e("model", "sync")]);
        assert_eq!(cycle(&edges[..2]), None);
    }
}
