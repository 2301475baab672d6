//! Every set of activities is named the same where it is declared (`workflows/`, the
//! signatures workflow code calls) and where it is implemented (`activities/`, the
//! code a worker registers), so one name leads from a workflow's call to the code that
//! runs it. The activities' wire names are their `name = ...` constants, not these type
//! names, so a rename here changes no recorded history.

use std::collections::BTreeSet;
use std::path::Path;

use windlass_test_support::rust_files;

/// The types of every `impl` that follows `attribute` in the crate under `dir`.
fn impls_after(dir: &str, attribute: &str) -> BTreeSet<String> {
    let files = rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join(dir));
    let mut names = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut lines = text.lines().map(str::trim);
        while let Some(line) = lines.next() {
            if line != attribute {
                continue;
            }
            let declared = lines
                .find(|l| l.starts_with("impl "))
                .unwrap_or_else(|| panic!("{attribute} without an impl in {}", file.display()));
            let name = declared["impl ".len()..]
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .next()
                .unwrap();
            names.insert(name.to_owned());
        }
    }
    names
}

#[test]
fn every_activity_declaration_has_an_implementation_of_the_same_name() {
    let declared = impls_after("workflows/src", "#[activity_definitions]");
    let implemented = impls_after("activities/src", "#[activities]");
    assert!(declared.len() >= 10, "{declared:?}");
    assert_eq!(
        declared, implemented,
        "declared in workflows/ vs implemented in activities/"
    );
}
