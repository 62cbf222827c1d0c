//! `holonet observe` (issue 6). Placeholder until the flow printers land;
//! replaced wholesale by that work.

use std::process::ExitCode;

/// Arguments of `holonet observe`.
#[derive(Debug, clap::Args)]
pub(crate) struct ObserveArgs {}

pub(crate) fn run(_args: ObserveArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("holonet observe is not built yet")
}
