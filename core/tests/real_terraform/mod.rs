//! Running rendered blueprints through the real terraform (`scripts/setup.sh` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

use windlass_core::blueprint::Blueprint;

/// `$WINDLASS_TERRAFORM`, else `.tools/bin/terraform` here or in a parent directory, as
/// the activities' `Terraform::locate` finds it.
pub fn terraform() -> PathBuf {
    if let Ok(path) = std::env::var("WINDLASS_TERRAFORM") {
        return path.into();
    }
    let mut dir = Some(std::env::current_dir().unwrap());
    while let Some(d) = dir {
        let candidate = d.join(".tools/bin/terraform");
        if candidate.is_file() {
            return candidate;
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    panic!("no terraform: run scripts/setup.sh or set WINDLASS_TERRAFORM");
}

pub fn write(blueprint: &Blueprint, root: &Path) {
    for (path, text) in &blueprint.files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// Runs terraform in `dir` and returns its stdout; fails the test if terraform fails.
pub fn tf(dir: &Path, args: &[&str]) -> String {
    let out = command(dir).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "terraform {args:?}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A terraform command in `dir`, as the worker runs it.
pub fn command(dir: &Path) -> Command {
    let mut command = Command::new(terraform());
    command
        .current_dir(dir)
        .env("TF_IN_AUTOMATION", "1")
        .env("CHECKPOINT_DISABLE", "1");
    command
}
