//! The blueprint users export, checked by the real terraform against the real providers'
//! schemas (served by the provider stand-in from a filesystem mirror): valid at the
//! lowest and the newest provider version its constraints admit; the constraints refuse
//! the last azurerm version it is invalid for; and a wrong attribute fails the check, so
//! the check is not vacuous.

use std::path::{Path, PathBuf};
use std::process::Command;

use windlass_core::blueprint::{Blueprint, render};
use windlass_core::cloud_accounts::CloudProvider;
use windlass_core::clusters::NodePoolSpec;
use windlass_provider_standin::mirror::{self, MirroredProvider};
use windlass_test_support::clusters::{aks_cluster, eks_cluster};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn terraform() -> PathBuf {
    std::env::var_os("WINDLASS_TERRAFORM")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools/bin/terraform"))
}

/// A cluster with a second node pool, so every `for_each` over pools has two keys.
fn exported(provider: CloudProvider) -> Blueprint {
    let (mut spec, account) = match provider {
        CloudProvider::Azure => aks_cluster(),
        CloudProvider::Aws => eks_cluster(),
    };
    spec.node_pools.push(NodePoolSpec {
        name: "batch".into(),
        instance_type: match provider {
            CloudProvider::Azure => "Standard_D4s_v5".into(),
            CloudProvider::Aws => "c6i.2xlarge".into(),
        },
        min_count: 0,
        max_count: 10,
    });
    render(&spec, &account).unwrap()
}

/// A working directory holding the blueprint's terraform files, and a mirror offering
/// exactly `versions` of `provider`.
struct Workspace {
    _dir: tempfile::TempDir,
    terraform_dir: PathBuf,
    cli_config: PathBuf,
}

impl Workspace {
    fn new(blueprint: &Blueprint, provider: &str, versions: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let terraform_dir = dir.path().join("terraform");
        for (path, text) in &blueprint.files {
            if let Some(name) = path.strip_prefix("terraform/") {
                std::fs::create_dir_all(&terraform_dir).unwrap();
                std::fs::write(terraform_dir.join(name), text).unwrap();
            }
        }
        let providers: Vec<_> = versions
            .iter()
            .map(|v| MirroredProvider::new(provider, v))
            .collect();
        let cli_config = mirror::install(
            dir.path(),
            Path::new(env!("CARGO_BIN_EXE_windlass-provider-standin")),
            &mirror::schema_dir(&repo_root()),
            &providers,
        )
        .unwrap();
        Self {
            _dir: dir,
            terraform_dir,
            cli_config,
        }
    }

    fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.terraform_dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} lacks {from}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }

    fn terraform(&self, args: &[&str]) -> std::process::Output {
        Command::new(terraform())
            .args(args)
            .current_dir(&self.terraform_dir)
            .env("TF_CLI_CONFIG_FILE", &self.cli_config)
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .output()
            .unwrap()
    }

    /// `terraform init` without the backend (the state storage is not reached here).
    fn init(&self) -> Result<(), String> {
        let out = self.terraform(&["init", "-backend=false", "-input=false", "-no-color"]);
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// The provider version `init` selected, from the dependency lock file.
    fn locked_version(&self, provider: &str) -> String {
        let lock = std::fs::read_to_string(self.terraform_dir.join(".terraform.lock.hcl")).unwrap();
        let block = lock
            .split("provider \"registry.terraform.io/hashicorp/")
            .find(|b| b.starts_with(&format!("{provider}\"")))
            .unwrap_or_else(|| panic!("no {provider} in the lock file:\n{lock}"));
        block
            .lines()
            .find_map(|l| l.trim().strip_prefix("version"))
            .map(|v| {
                v.trim_start_matches([' ', '='])
                    .trim_matches('"')
                    .to_owned()
            })
            .unwrap()
    }

    /// `terraform validate -json`'s verdict and its error diagnostics.
    fn validate(&self) -> (bool, Vec<serde_json::Value>) {
        let out = self.terraform(&["validate", "-json", "-no-color"]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "validate -json printed no JSON ({e}):\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let errors = report["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["severity"] == "error")
            .cloned()
            .collect();
        (report["valid"] == true, errors)
    }
}

fn assert_valid_at(provider: CloudProvider, name: &str, version: &str) {
    let workspace = Workspace::new(&exported(provider), name, &[version]);
    workspace.init().unwrap();
    assert_eq!(workspace.locked_version(name), version);
    let (valid, errors) = workspace.validate();
    assert!(
        valid && errors.is_empty(),
        "the exported blueprint is invalid against {name} {version}: {errors:#?}"
    );
}

#[test]
fn the_aks_blueprint_is_valid_at_the_lowest_azurerm_it_admits() {
    assert_valid_at(CloudProvider::Azure, "azurerm", mirror::AZURERM_LOWEST);
}

#[test]
fn the_aks_blueprint_is_valid_at_the_newest_azurerm() {
    assert_valid_at(CloudProvider::Azure, "azurerm", mirror::AZURERM_NEWEST);
}

#[test]
fn the_eks_blueprint_is_valid_at_the_lowest_aws_it_admits() {
    assert_valid_at(CloudProvider::Aws, "aws", mirror::AWS_LOWEST);
}

#[test]
fn the_eks_blueprint_is_valid_at_the_newest_aws() {
    assert_valid_at(CloudProvider::Aws, "aws", mirror::AWS_NEWEST);
}

/// Offered both, `init` picks the newest the constraint admits; offered only 4.8, it
/// refuses, and rightly: 4.8's storage containers have no `storage_account_id`.
#[test]
fn the_azurerm_constraint_refuses_the_versions_the_blueprint_is_invalid_for() {
    let blueprint = exported(CloudProvider::Azure);
    let both = Workspace::new(
        &blueprint,
        "azurerm",
        &[mirror::AZURERM_LOWEST, mirror::AZURERM_NEWEST],
    );
    both.init().unwrap();
    assert_eq!(both.locked_version("azurerm"), mirror::AZURERM_NEWEST);

    let too_old = Workspace::new(&blueprint, "azurerm", &[mirror::AZURERM_TOO_OLD]);
    let refusal = too_old.init().unwrap_err();
    assert!(
        refusal.contains("no available releases match the given constraints"),
        "{refusal}"
    );

    // Pinned to 4.8 anyway, the schema check says why the constraint is what it is.
    too_old.edit(
        "versions.tf",
        "version = \"~> 4.9\"",
        &format!("version = \"{}\"", mirror::AZURERM_TOO_OLD),
    );
    too_old.init().unwrap();
    let (valid, errors) = too_old.validate();
    assert!(!valid);
    // Per container: `storage_account_id` is unknown to 4.8 and its required
    // `storage_account_name` is missing.
    assert_eq!(errors.len(), 8, "{errors:#?}");
    for error in &errors {
        assert_eq!(error["range"]["filename"], "storage.tf", "{error:#}");
        assert_eq!(
            error["snippet"]["context"]
                .as_str()
                .unwrap()
                .split('"')
                .nth(1),
            Some("azurerm_storage_container"),
            "{error:#}"
        );
        let detail = error["detail"].as_str().unwrap();
        assert!(
            (error["summary"] == "Unsupported argument"
                && detail.contains("\"storage_account_id\" is not expected here"))
                || (error["summary"] == "Missing required argument"
                    && detail.contains("\"storage_account_name\" is required")),
            "{error:#}"
        );
    }
}

/// The check is not vacuous: a misspelt argument (Terraform's schema check) and a computed
/// attribute set in configuration (the provider's own check) each fail it, naming the
/// file and the attribute.
#[test]
fn a_wrong_attribute_fails_the_schema_check() {
    let workspace = Workspace::new(
        &exported(CloudProvider::Azure),
        "azurerm",
        &[mirror::AZURERM_NEWEST],
    );
    workspace.init().unwrap();
    workspace.edit(
        "storage.tf",
        "storage_account_id    = azurerm_storage_account.this.id",
        "storage_acount_id     = azurerm_storage_account.this.id",
    );
    let (valid, errors) = workspace.validate();
    assert!(!valid);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0]["summary"], "Unsupported argument");
    assert!(
        errors[0]["detail"]
            .as_str()
            .unwrap()
            .contains("\"storage_acount_id\" is not expected here"),
        "{errors:#?}"
    );
    assert_eq!(errors[0]["range"]["filename"], "storage.tf");

    let eks = Workspace::new(&exported(CloudProvider::Aws), "aws", &[mirror::AWS_NEWEST]);
    eks.init().unwrap();
    // `arn` is the cluster's, computed by AWS: the provider refuses it in configuration.
    eks.edit(
        "eks.tf",
        "role_arn = aws_iam_role.cluster.arn",
        "role_arn = aws_iam_role.cluster.arn\n  arn      = \"arn:aws:eks:eu-west-3:123456789012:cluster/by-hand\"",
    );
    let (valid, errors) = eks.validate();
    assert!(!valid);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0]["summary"], "Computed attributes cannot be set");
    assert!(
        errors[0]["detail"].as_str().unwrap().contains("\"arn\""),
        "{errors:#?}"
    );
    assert_eq!(errors[0]["range"]["filename"], "eks.tf");
}
