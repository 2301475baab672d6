//! A helm command line: the command, its flags, then `--`, then its positional arguments.
//!
//! Everything positional (release names, chart names and paths, revisions) goes after
//! `--`, so nothing a user names can be read as a flag (a chart named
//! `--post-renderer=/bin/sh` stays a chart name helm fails to find).

use std::ffi::OsString;

#[derive(Debug, Default)]
pub(crate) struct HelmArgs {
    command: Vec<OsString>,
    flags: Vec<OsString>,
    positional: Vec<OsString>,
}

impl HelmArgs {
    /// `words`: the (sub)command, e.g. `["get", "metadata"]`.
    pub(crate) fn command<const N: usize>(words: [&str; N]) -> Self {
        Self {
            command: words.iter().map(OsString::from).collect(),
            ..Self::default()
        }
    }

    pub(crate) fn flag(&mut self, flag: impl Into<OsString>) -> &mut Self {
        self.flags.push(flag.into());
        self
    }

    pub(crate) fn flags<I: IntoIterator<Item = T>, T: Into<OsString>>(
        &mut self,
        flags: I,
    ) -> &mut Self {
        self.flags.extend(flags.into_iter().map(Into::into));
        self
    }

    pub(crate) fn positional(&mut self, argument: impl Into<OsString>) -> &mut Self {
        self.positional.push(argument.into());
        self
    }

    pub(crate) fn build(&self) -> Vec<OsString> {
        let mut args = self.command.clone();
        args.extend(self.flags.iter().cloned());
        args.push("--".into());
        args.extend(self.positional.iter().cloned());
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positional_arguments_come_after_the_end_of_flags() {
        let mut args = HelmArgs::command(["upgrade"]);
        args.flag("--install")
            .positional("cache")
            .positional("--post-renderer=/bin/sh")
            .flags(["--version", "1.0.0"]);
        assert_eq!(
            args.build(),
            [
                "upgrade",
                "--install",
                "--version",
                "1.0.0",
                "--",
                "cache",
                "--post-renderer=/bin/sh"
            ]
            .map(OsString::from)
        );
    }
}
