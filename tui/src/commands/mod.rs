//! One module per subcommand.

pub(crate) mod agent;
pub(crate) mod demo;
pub(crate) mod observe;
pub(crate) mod policy;
pub(crate) mod relay;
pub(crate) mod signals;
pub(crate) mod status;
pub(crate) mod tls;
pub(crate) mod tui;
