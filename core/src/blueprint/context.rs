//! What every cloud's blueprint is built from: the cluster's facts its templates share
//! (flattened into each cloud's own template context), and the files every blueprint
//! has, in the same places, so the runner, the inventory and the README treat all clouds
//! alike.

use std::collections::BTreeMap;

use serde::Serialize;

use super::inventory::Inventory;
use super::templates::Templates;
use crate::Result;
use crate::clusters::ClusterSpec;

/// The cluster as every cloud's templates see it.
#[derive(Serialize)]
pub(super) struct ClusterContext<'a> {
    pub cluster_id: String,
    pub organization_id: String,
    pub region: &'a str,
    pub creation_date: String,
    /// For the README's table.
    pub inventory: &'a Inventory,
}

impl<'a> ClusterContext<'a> {
    pub fn of(spec: &'a ClusterSpec, inventory: &'a Inventory) -> Self {
        Self {
            cluster_id: spec.id.to_string(),
            organization_id: spec.organization_id.to_string(),
            region: &spec.region,
            creation_date: spec.creation_date(),
            inventory,
        }
    }
}

/// A cloud's templates, under `core/templates/<dir>/`.
pub(super) struct CloudTemplates<'t> {
    pub templates: &'t Templates,
    /// `aks`, `eks`.
    pub dir: &'static str,
    /// The terraform files, in the order a reader would open them: `locals.tf` and
    /// `variables.tf` are rendered from `<dir>/`, the rest from `<dir>/cloud/`.
    pub terraform_files: &'static [&'static str],
    /// The README's template.
    pub readme: &'static str,
}

impl CloudTemplates<'_> {
    /// Every file of the blueprint: `terraform/*.tf`, the import blocks adopting what
    /// the bootstrap made (`terraform/imports.tf`), `terraform/terraform.tfvars.json`
    /// (`tfvars`) and `README.md`.
    pub fn files(
        &self,
        context: &impl Serialize,
        tfvars: String,
    ) -> Result<BTreeMap<String, String>> {
        let dir = self.dir;
        let mut files = BTreeMap::new();
        for file in self.terraform_files {
            let template = match *file {
                "locals.tf" | "variables.tf" => format!("{dir}/{file}"),
                _ => format!("{dir}/cloud/{file}"),
            };
            files.insert(
                format!("terraform/{file}"),
                self.templates.render(&template, context)?,
            );
        }
        files.insert(
            "terraform/imports.tf".into(),
            self.templates
                .render(&format!("{dir}/cloud/imports.tf"), context)?,
        );
        files.insert("terraform/terraform.tfvars.json".into(), tfvars);
        files.insert(
            "README.md".into(),
            self.templates.render(self.readme, context)?,
        );
        Ok(files)
    }
}

/// Terraform variables as `terraform.tfvars.json` holds them.
pub(super) fn tfvars_json(vars: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(vars).expect("JSON values serialise");
    text.push('\n');
    text
}
