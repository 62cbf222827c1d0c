//! `holonet policy validate|trace` (issue 3). Placeholder until the policy
//! engine lands; replaced wholesale by that work.

use std::process::ExitCode;

/// Policy subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum PolicyCommand {
    /// Validate policy files (not yet available).
    Validate,
}

pub(crate) fn run(_cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("the policy engine is not built yet")
}
