//! A watchdog that expires reports and kills what the test started. It
//! kills every child of the test process, so it runs in a process of its
//! own: this test starts its own binary again for the hung "test".

use std::{
    process::Command,
    time::{Duration, Instant},
};

use holonet_lab::{Watchdog, output_within};

const HUNG_TEST: &str = "HOLONET_WATCHDOG_HUNG_TEST";

#[test]
fn a_hung_test_is_reported_and_its_children_are_killed() {
    if std::env::var_os(HUNG_TEST).is_some() {
        // The hung "test": waits on a child that would sleep for minutes.
        let _watchdog = Watchdog::arm("the hung test", Duration::from_millis(300));
        let status = Command::new("sleep").arg("300").status().expect("sleep");
        println!("child ended: {status}");
        return;
    }
    let started = Instant::now();
    let out = output_within(
        Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "a_hung_test_is_reported_and_its_children_are_killed",
            ])
            .args(["--nocapture", "--test-threads=1"])
            .env(HUNG_TEST, "1"),
        Duration::from_secs(120),
    )
    .expect("the hung test ends once the watchdog killed its child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(started.elapsed() < Duration::from_secs(100));
    assert!(
        stderr.contains("*** WATCHDOG: the hung test still runs after 300ms"),
        "{stderr}"
    );
    assert!(
        stderr.contains(": sleep 300 [State:"),
        "the sleep is described: {stderr}"
    );
    assert!(stdout.contains("child ended: signal: 9"), "{stdout}");
}
