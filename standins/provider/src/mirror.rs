//! A filesystem mirror holding the provider stand-in as chosen versions of the real
//! providers, and the terraform CLI configuration that installs from it (and from nowhere
//! else). `terraform init` then resolves the blueprint's version constraints against the
//! versions the mirror offers, exactly as against the registry, so a constraint that
//! admits no mirrored version fails `init`.
//!
//! Each mirrored provider is a small script named as the registry's binary
//! (`terraform-provider-azurerm_v4.9.0`) that starts the stand-in with that version's
//! schema (`.tools/provider-schemas/<name>-<version>.json`, written by scripts/setup.sh).

use std::io;
use std::path::{Path, PathBuf};

/// The azurerm versions the suite validates the blueprint against: the lowest its
/// constraint admits (4.9 brought `storage_account_id` on storage containers) and the
/// newest whose schema setup installs.
pub const AZURERM_LOWEST: &str = "4.9.0";
pub const AZURERM_NEWEST: &str = "4.55.0";
/// The last azurerm release the constraint must refuse (its containers take
/// `storage_account_name`).
pub const AZURERM_TOO_OLD: &str = "4.8.0";
pub const AWS_LOWEST: &str = "6.0.0";
pub const AWS_NEWEST: &str = "6.25.0";

/// One provider version to mirror.
#[derive(Debug, Clone)]
pub struct MirroredProvider {
    /// `azurerm` or `aws` (namespace hashicorp on registry.terraform.io).
    pub name: String,
    pub version: String,
}

impl MirroredProvider {
    pub fn new(name: &str, version: &str) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
        }
    }
}

/// Where scripts/setup.sh puts the providers' schemas, from the repository root.
pub fn schema_dir(repo_root: &Path) -> PathBuf {
    repo_root.join(".tools/provider-schemas")
}

/// How to start the provider stand-in: its own binary, or `windlass provider-standin`.
#[derive(Debug, Clone)]
pub struct ProviderCommand {
    pub program: PathBuf,
    /// Arguments before `--schema`.
    pub args: Vec<String>,
}

impl ProviderCommand {
    /// The `windlass-provider-standin` executable.
    pub fn binary(program: &Path) -> Self {
        Self {
            program: program.to_path_buf(),
            args: Vec::new(),
        }
    }

    /// `windlass provider-standin`, the same provider inside Windlass's own binary.
    pub fn windlass(windlass: &Path) -> Self {
        Self {
            program: windlass.to_path_buf(),
            args: vec!["provider-standin".to_owned()],
        }
    }
}

/// The providers `windlass dev` and the system tests mirror: what the exported blueprints
/// are applied with there (the newest schema setup installs).
pub fn applied_providers() -> Vec<MirroredProvider> {
    vec![
        MirroredProvider::new("azurerm", AZURERM_NEWEST),
        MirroredProvider::new("aws", AWS_NEWEST),
    ]
}

/// The mirror `windlass dev`, the system tests and the fault suite apply blueprints
/// through: [`applied_providers`] as `windlass provider-standin` of the binary `windlass`,
/// with the schemas setup installed under `repo_root`.
pub fn install_for_windlass(dir: &Path, windlass: &Path, repo_root: &Path) -> io::Result<PathBuf> {
    install_command(
        dir,
        &ProviderCommand::windlass(windlass),
        &schema_dir(repo_root),
        &applied_providers(),
    )
}

/// Writes the mirror under `dir` and returns the CLI configuration file to point
/// `TF_CLI_CONFIG_FILE` at. `binary` is the windlass-provider-standin executable.
pub fn install(
    dir: &Path,
    binary: &Path,
    schemas: &Path,
    providers: &[MirroredProvider],
) -> io::Result<PathBuf> {
    install_command(dir, &ProviderCommand::binary(binary), schemas, providers)
}

/// As [`install`], starting the provider with `command`.
pub fn install_command(
    dir: &Path,
    command: &ProviderCommand,
    schemas: &Path,
    providers: &[MirroredProvider],
) -> io::Result<PathBuf> {
    let mirror = dir.join("provider-mirror");
    for provider in providers {
        let schema = schemas.join(format!("{}-{}.json", provider.name, provider.version));
        if !schema.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{} is missing: scripts/setup.sh installs the providers' schemas",
                    schema.display()
                ),
            ));
        }
        let platform_dir = mirror
            .join("registry.terraform.io/hashicorp")
            .join(&provider.name)
            .join(&provider.version)
            .join(platform());
        std::fs::create_dir_all(&platform_dir)?;
        let executable = platform_dir.join(format!(
            "terraform-provider-{}_v{}",
            provider.name, provider.version
        ));
        std::fs::write(
            &executable,
            format!(
                "#!/bin/sh\nexec {}{} --schema {} \"$@\"\n",
                shell_quote(&command.program.display().to_string()),
                command
                    .args
                    .iter()
                    .map(|a| format!(" {}", shell_quote(a)))
                    .collect::<String>(),
                shell_quote(&schema.display().to_string()),
            ),
        )?;
        set_executable(&executable)?;
    }
    let config = dir.join("terraformrc");
    std::fs::write(
        &config,
        format!(
            "provider_installation {{\n  filesystem_mirror {{\n    path = {}\n  }}\n}}\n",
            serde_json::to_string(&mirror.display().to_string())?,
        ),
    )?;
    Ok(config)
}

/// Terraform's name for this machine's platform (`linux_amd64`).
fn platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    format!("{}_{arch}", std::env::consts::OS)
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(unix)]
fn set_executable(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

#[cfg(not(unix))]
fn set_executable(_path: &Path) -> io::Result<()> {
    Ok(())
}
