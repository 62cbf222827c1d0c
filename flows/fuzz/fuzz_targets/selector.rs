//! Fuzzes the label selector parser: no input may panic, and whatever
//! parses must print back to an equal selector.
#![no_main]

use holonet_flows::selector::Selector;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(sel) = Selector::parse(text) {
        let again = Selector::parse(&sel.to_string()).expect("a printed selector parses");
        assert_eq!(again, sel);
        let _ = sel.matches(&["k8s:org=payer".to_owned(), "reserved:world".to_owned()]);
    }
});
