//! Each crate's top-level modules point one way: no module reaches, through `crate::`
//! paths, a module that reaches back to it. A circle makes modules impossible to read, test
//! or move alone; shared machinery belongs below the modules that use it (`api/src/launch.rs`,
//! `api/src/caller.rs`), and helpers of one family belong in that family's submodule.
//! Names the crate root re-exports (`crate::Store`) count as the module they come from.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use windlass_test_support::rust_files;

const CRATES: &[&str] = &[
    "core/src",
    "api/src",
    "activities/src",
    "standins/src",
    "workers/src",
    "workflows/src",
    "test-support/src",
    "src",
];

/// Top-level module → the top-level modules its code names with `crate::` (tests and
/// comments aside).
fn edges(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let reexported = root_reexports(root);
    let files = rust_files(root);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(root).unwrap();
        let top = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if top == "lib" || top == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let targets = graph.entry(top.clone()).or_default();
        for line in code.lines() {
            let line = line.split("//").next().unwrap_or_default();
            for (index, _) in line.match_indices("crate::") {
                let name: String = line[index + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let name = reexported.get(&name).cloned().unwrap_or(name);
                if !name.is_empty() && name != top {
                    targets.insert(name);
                }
            }
        }
    }
    graph
}

/// Names the crate root re-exports → the module each comes from (`pub use store::{Backend,
/// Store};` in `lib.rs`).
fn root_reexports(root: &Path) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for entry in ["lib.rs", "main.rs"] {
        let Ok(text) = std::fs::read_to_string(root.join(entry)) else {
            continue;
        };
        for line in text.lines() {
            let Some(rest) = line.trim().strip_prefix("pub use ") else {
                continue;
            };
            let Some((module, items)) = rest.trim_end_matches(';').split_once("::") else {
                continue;
            };
            for item in items.trim_matches(|c| c == '{' || c == '}').split(',') {
                let item = item.trim();
                let name = item.rsplit(" as ").next().unwrap_or(item).trim();
                if !name.is_empty() {
                    names.insert(name.to_owned(), module.trim().to_owned());
                }
            }
        }
    }
    names
}

/// The modules on a circle, found by walking back from each module.
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reaches = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_owned()];
        while let Some(module) = stack.pop() {
            for next in graph.get(&module).into_iter().flatten() {
                if graph.contains_key(next) && seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let mut found: Vec<Vec<String>> = Vec::new();
    for module in graph.keys() {
        let ahead = reaches(module);
        if !ahead.contains(module) {
            continue;
        }
        let circle: Vec<String> = ahead
            .iter()
            .filter(|other| reaches(other).contains(module))
            .cloned()
            .collect();
        if !found.contains(&circle) {
            found.push(circle);
        }
    }
    found
}

#[test]
fn no_crate_has_a_circle_between_its_modules() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = Vec::new();
    for krate in CRATES {
        for circle in circles(&edges(&workspace.join(krate))) {
            all.push(format!("{krate}: {}", circle.join(" ↔ ")));
        }
    }
    assert!(all.is_empty(), "module circles:\n{}", all.join("\n"));
}
