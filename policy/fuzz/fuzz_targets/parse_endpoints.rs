//! Fuzz the endpoints-file parser.
#![no_main]

use holonet_policy::diag::SourceFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = holonet_policy::endpoints::parse_endpoints(&SourceFile::new("fuzz.yaml", text));
});
