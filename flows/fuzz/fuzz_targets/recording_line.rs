//! Fuzzes the recording line parser and the streaming reader: no input may
//! panic, and the reader must never hold more than its line limit.
#![no_main]

use holonet_flows::recording::{RecordingReader, parse_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_line(data);
    let reader = RecordingReader::new(std::io::Cursor::new(data)).with_max_line_len(256);
    for item in reader {
        let _ = item;
    }
});
