//! `holonet demo --headless`: the whole galactic FHIR story with real pods,
//! real HTTP and the policies of policies/galactic-fhir enforced in this
//! kernel, with the droids and the payer sending background traffic all
//! along; the demo itself compares every step's outcome with the story and
//! exits non-zero on a mismatch. Needs root (namespaces, BPF); outside CI a
//! run without root says so loudly, under CI=true it fails.

use std::process::Command;

#[test]
fn the_seed_story_ends_as_the_blog_says() {
    let Some(_watchdog) = holonet_lab::privileged_test("the_seed_story_ends_as_the_blog_says")
    else {
        return;
    };
    let out = Command::new(env!("CARGO_BIN_EXE_holonet"))
        .args(["demo", "--headless"])
        .output()
        .expect("running holonet demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("expected versus observed:"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
    // What an on-call engineer looks for: the L3/L4 drop and the L7 drop.
    assert!(
        stdout.contains("Policy denied DROPPED (TCP Flags: SYN)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("http-request DROPPED (HTTP/1.1 GET http://"),
        "{stdout}"
    );
    assert!(
        stdout.contains("/intersystems/fhir/r5/Patient/Anakin)"),
        "{stdout}"
    );
    // Every request of the story was checked, despite the background
    // traffic of the droids and the payer, whose flows are printed too.
    assert_eq!(stdout.matches("\n  ok   ").count(), 9, "{stdout}");
    for droid in ["fx-6", "dd-13", "2-1b"] {
        assert!(
            stdout.contains(&format!("galactic-fhir/medicaldroid-{droid}:")),
            "no flow of droid {droid}:\n{stdout}"
        );
    }
    // Without a terminal there is no dashboard: nothing switched screens.
    assert!(!stdout.contains("\x1b[?1049h"), "{stdout}");
}

/// The pids of `pid`'s children that are the demo's servers (its other
/// children, such as a client's curl, come and go).
fn servers_of(pid: u32) -> Vec<u32> {
    children(pid)
        .into_iter()
        .filter(|child| {
            std::fs::read(format!("/proc/{child}/cmdline")).is_ok_and(|cmdline| {
                String::from_utf8_lossy(&cmdline)
                    .split('\0')
                    .any(|arg| arg == "demo-fhir-server" || arg == "demo-dns-server")
            })
        })
        .collect()
}

/// The pids of `pid`'s children.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let text = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        out.extend(
            text.split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
    }
    out
}

/// Namespaces of the demo run `pid`.
fn namespaces_of(pid: u32) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("hn-{pid}-")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_run_killed_outright_is_cleaned_up_by_the_next_one() {
    let Some(_watchdog) =
        holonet_lab::privileged_test("a_run_killed_outright_is_cleaned_up_by_the_next_one")
    else {
        return;
    };
    let mut victim = Command::new(env!("CARGO_BIN_EXE_holonet"))
        .args(["demo", "--headless"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting holonet demo");
    let pid = victim.id();
    // Wait until all seven pods exist and the servers run in them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while namespaces_of(pid).len() < 7 || servers_of(pid).len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the demo did not set up its pods"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let servers = servers_of(pid);
    let files = std::env::temp_dir().join(format!("holonet-demo-{pid}"));
    assert!(files.exists(), "{}", files.display());
    victim.kill().expect("SIGKILL");
    victim.wait().expect("reaping the demo");
    // Its servers notice and leave; its namespaces and files stay behind...
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while servers
        .iter()
        .any(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "servers {servers:?} outlived the demo"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(namespaces_of(pid).len(), 7);
    // ...until the next run removes them before it starts.
    let out = Command::new(env!("CARGO_BIN_EXE_holonet"))
        .args(["demo", "--headless"])
        .output()
        .expect("running holonet demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "second run failed:\n{stdout}");
    assert!(namespaces_of(pid).is_empty(), "{:?}", namespaces_of(pid));
    assert!(!files.exists(), "{} left behind", files.display());
}

/// A server whose demo is already gone when it starts (killed between the
/// fork and the server's first check) exits at once instead of running on.
#[test]
fn a_server_started_for_a_dead_demo_exits_at_once() {
    // Not our pid: this test is the server's parent, the "demo" is gone.
    let gone = u32::MAX - 1;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let mut server = Command::new(env!("CARGO_BIN_EXE_holonet"))
        .args([
            "demo-fhir-server",
            "--port",
            &port.to_string(),
            "--demo-pid",
            &gone.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting the server");
    let status = holonet_lab::wait_within(&mut server, std::time::Duration::from_secs(10));
    if status.is_err() {
        let _ = server.kill();
        let _ = server.wait();
    }
    assert!(
        status.as_ref().is_ok_and(std::process::ExitStatus::success),
        "{status:?}"
    );
}
