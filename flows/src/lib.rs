//! Pure logic over Hubble flows, shared by the agent, the TUI and
//! `holonet observe`:
//!
//! - [`fields`]: ports, HTTP and DNS records, URL paths of a flow;
//! - [`filter`]: Hubble's server-side FlowFilter semantics, compiled;
//! - [`selector`]: Kubernetes label selectors over Cilium labels;
//! - [`flags`]: `hubble observe`-style filter flags to whitelist/blacklist;
//! - [`printer`]: `hubble observe` output formats (compact, dict, jsonpb, table);
//! - [`recording`]: streaming reader for jsonpb flow recordings;
//! - [`replay`]: `--last/--first/--since/--until` as a request, or applied locally;
//! - [`timefmt`]: `--time-format` layouts for printed times;
//! - [`timespec`]: `--since`/`--until` values;
//! - [`names`]: Cilium's names for drop reasons, trace points, identities.
//!
//! No I/O happens here except through the `BufRead`/`Write` handed in.

mod fastjson;
pub mod fields;
pub mod filter;
pub mod flags;
pub mod names;
pub mod printer;
pub mod recording;
pub mod replay;
pub mod selector;
pub mod timefmt;
pub mod timespec;
