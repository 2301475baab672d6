//! The template engine: minijinja over templates embedded at build time, so rendering is
//! a pure function of its inputs (no template files are read at run time).

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::{Error, Result};

/// Every template, by the name templates `{% import %}` each other with.
const TEMPLATES: &[(&str, &str)] = &[
    ("README.md", include_str!("../../templates/README.md.j2")),
    (
        "aks/locals.tf",
        include_str!("../../templates/aks/locals.tf.j2"),
    ),
    (
        "aks/variables.tf",
        include_str!("../../templates/aks/variables.tf.j2"),
    ),
    (
        "aks/cloud/versions.tf",
        include_str!("../../templates/aks/cloud/versions.tf.j2"),
    ),
    (
        "aks/cloud/backend.tf",
        include_str!("../../templates/aks/cloud/backend.tf.j2"),
    ),
    (
        "aks/cloud/imports.tf",
        include_str!("../../templates/aks/cloud/imports.tf.j2"),
    ),
    (
        "aks/cloud/network.tf",
        include_str!("../../templates/aks/cloud/network.tf.j2"),
    ),
    (
        "aks/cloud/storage.tf",
        include_str!("../../templates/aks/cloud/storage.tf.j2"),
    ),
    (
        "aks/cloud/registry.tf",
        include_str!("../../templates/aks/cloud/registry.tf.j2"),
    ),
    (
        "aks/cloud/identity.tf",
        include_str!("../../templates/aks/cloud/identity.tf.j2"),
    ),
    (
        "aks/cloud/aks.tf",
        include_str!("../../templates/aks/cloud/aks.tf.j2"),
    ),
    (
        "aks/cloud/outputs.tf",
        include_str!("../../templates/aks/cloud/outputs.tf.j2"),
    ),
    (
        "eks/README.md",
        include_str!("../../templates/eks/README.md.j2"),
    ),
    (
        "eks/locals.tf",
        include_str!("../../templates/eks/locals.tf.j2"),
    ),
    (
        "eks/variables.tf",
        include_str!("../../templates/eks/variables.tf.j2"),
    ),
    (
        "eks/cloud/versions.tf",
        include_str!("../../templates/eks/cloud/versions.tf.j2"),
    ),
    (
        "eks/cloud/backend.tf",
        include_str!("../../templates/eks/cloud/backend.tf.j2"),
    ),
    (
        "eks/cloud/imports.tf",
        include_str!("../../templates/eks/cloud/imports.tf.j2"),
    ),
    (
        "eks/cloud/network.tf",
        include_str!("../../templates/eks/cloud/network.tf.j2"),
    ),
    (
        "eks/cloud/storage.tf",
        include_str!("../../templates/eks/cloud/storage.tf.j2"),
    ),
    (
        "eks/cloud/registry.tf",
        include_str!("../../templates/eks/cloud/registry.tf.j2"),
    ),
    (
        "eks/cloud/identity.tf",
        include_str!("../../templates/eks/cloud/identity.tf.j2"),
    ),
    (
        "eks/cloud/eks.tf",
        include_str!("../../templates/eks/cloud/eks.tf.j2"),
    ),
    (
        "eks/cloud/outputs.tf",
        include_str!("../../templates/eks/cloud/outputs.tf.j2"),
    ),
];

pub(crate) struct Templates {
    env: Environment<'static>,
}

impl Templates {
    pub(crate) fn new() -> Self {
        let mut env = Environment::new();
        // A misspelt context field must fail the render, not become an empty string in
        // terraform that the cloud would reject (or, worse, accept).
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(true);
        env.add_filter("hcl", hcl_string);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .expect("embedded templates are checked by the unit tests");
        }
        Self { env }
    }

    pub(crate) fn render(&self, name: &str, context: impl Serialize) -> Result<String> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(context))
            .map_err(|e| Error::InvalidInput(format!("blueprint template {name}: {e:#}")))
    }
}

/// A quoted HCL string literal. Besides the usual escapes, `${` and `%{` are doubled so a
/// value can never become a terraform interpolation or directive.
pub(crate) fn hcl_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
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
    fn hcl_strings_cannot_interpolate() {
        assert_eq!(hcl_string("plain"), r#""plain""#);
        assert_eq!(hcl_string("a\"b\\c\nd"), r#""a\"b\\c\nd""#);
        assert_eq!(hcl_string("${x} %{if} $5 %d"), r#""$${x} %%{if} $5 %d""#);
    }

    #[test]
    fn every_embedded_template_parses() {
        let templates = Templates::new();
        for (name, _) in TEMPLATES {
            templates.env.get_template(name).unwrap();
        }
    }
}
