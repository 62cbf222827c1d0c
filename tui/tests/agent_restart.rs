//! Enforcement outlives the agent: `holonet agent --policies` pins its maps
//! and tcx links, so while the agent is killed with SIGKILL under load no
//! denied request gets through and allowed ones keep working; a restarted
//! agent takes the pinned links over, and `--remove-pinned` detaches them.
//! Needs root (namespaces, BPF); outside CI a run without root says so
//! loudly, under CI=true it fails.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, ChildStderr, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use holonet_lab::{Lab, Pod, output_within, privileged_test, wait_within};

const L7_POLICY: &str = include_str!("../../policies/galactic-fhir/20-l7-visibility-payer.yaml");
const PORT: u16 = 52773;

/// Kills the agent and removes what it pinned, also when the test fails.
struct Cleanup {
    agent: Option<Child>,
    pin_dir: PathBuf,
    work: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut agent) = self.agent.take() {
            let _ = agent.kill();
            let _ = wait_within(&mut agent, Duration::from_secs(10));
        }
        let _ = output_within(
            Command::new(env!("CARGO_BIN_EXE_holonet"))
                .args(["agent", "--remove-pinned", "--pin-dir"])
                .arg(&self.pin_dir),
            Duration::from_secs(30),
        );
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

/// Starts the agent and waits until it enforces; returns it with the
/// stderr lines it printed so far (the rest keeps being collected).
fn start_agent(args: &[String]) -> (Child, Arc<Mutex<Vec<String>>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_holonet"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting holonet agent");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().expect("stderr");
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().expect("lines").push(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if lines
            .lock()
            .expect("lines")
            .iter()
            .any(|l| l.contains("probe pinned under"))
        {
            return (child, lines);
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "agent exited with {status}: {:?}",
                lines.lock().expect("lines")
            );
        }
        assert!(
            Instant::now() < deadline,
            "agent not enforcing within 60 s: {:?}",
            lines.lock().expect("lines")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status_of(client: &Pod, server: &Pod, patient: &str) -> String {
    let url = format!(
        "http://{}:{PORT}/intersystems/fhir/r5/Patient/{patient}",
        server.ip
    );
    let out = output_within(
        &mut client.command("curl", &holonet_lab::curl_status_args("5", &[&url])),
        Duration::from_secs(30),
    )
    .expect("curl");
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn enforcement_survives_a_killed_agent_and_a_restart_takes_over() {
    let Some(_watchdog) = privileged_test("agent_restart") else {
        return;
    };
    let mut lab = Lab::new().expect("lab");
    let server = lab.add_pod("coruscanthealth").expect("server pod");
    let payer = lab.add_pod("payer").expect("payer pod");
    let work = std::env::temp_dir().join(format!("holonet-restart-{}", std::process::id()));
    let docroot = work.join("www/intersystems/fhir/r5/Patient");
    std::fs::create_dir_all(&docroot).expect("docroot");
    for patient in ["DarthVader", "Anakin"] {
        std::fs::write(docroot.join(patient), patient).expect("patient");
    }
    let mut cleanup = Cleanup {
        agent: None,
        pin_dir: PathBuf::from(format!("/sys/fs/bpf/holonet-test-{}", std::process::id())),
        work: work.clone(),
    };
    let www = work.join("www");
    let _http = server
        .spawn(
            "http server",
            "python3",
            &[
                "-m",
                "http.server",
                &PORT.to_string(),
                "--directory",
                &www.to_string_lossy(),
            ],
        )
        .expect("http server");
    holonet_lab::wait_for_tcp_listener(&server.netns, PORT, Duration::from_secs(15))
        .expect("server listening");

    let endpoints = work.join("endpoints.yaml");
    std::fs::write(
        &endpoints,
        format!(
            "cluster: default\nendpoints:\n  \
             - {{name: coruscanthealth, namespace: galactic-fhir, labels: {{app: fhir}}, ip: {}, node: restart-node}}\n  \
             - {{name: payer, namespace: galactic-fhir, labels: {{org: payer}}, ip: {}, node: restart-node}}\n",
            server.ip, payer.ip
        ),
    )
    .expect("endpoints file");
    let policy = work.join("policy.yaml");
    std::fs::write(&policy, L7_POLICY).expect("policy file");
    let listen = format!(
        "127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port()
    );
    let args: Vec<String> = [
        "agent",
        "-i",
        &server.host_ifname,
        "-i",
        &payer.host_ifname,
        "--endpoints",
        &endpoints.to_string_lossy(),
        "--policies",
        &policy.to_string_lossy(),
        "--node-name",
        "restart-node",
        "--listen-address",
        &listen,
        "--unix-socket",
        "none",
        "--pin-dir",
        &cleanup.pin_dir.to_string_lossy(),
    ]
    .iter()
    .map(ToString::to_string)
    .collect();

    let (agent, _) = start_agent(&args);
    cleanup.agent = Some(agent);
    assert_eq!(status_of(&payer, &server, "DarthVader"), "200");
    assert_eq!(status_of(&payer, &server, "Anakin"), "403");

    // The agent's flows name the policy behind the verdict, as Hubble's do.
    let observed = output_within(
        Command::new(env!("CARGO_BIN_EXE_holonet")).args([
            "observe", "--server", &listen, "--last", "100", "-o", "jsonpb",
        ]),
        Duration::from_secs(30),
    )
    .expect("holonet observe");
    let text = String::from_utf8_lossy(&observed.stdout);
    assert!(
        text.lines().any(|l| l.contains("\"egress_allowed_by\"")
            && l.contains("\"name\":\"l7-visibility-payer\"")),
        "a flow names its allowing policy:\n{text}"
    );

    // A field mask asks the agent for part of each flow.
    let masked = output_within(
        Command::new(env!("CARGO_BIN_EXE_holonet")).args([
            "observe",
            "--server",
            &listen,
            "--last",
            "5",
            "-o",
            "jsonpb",
            "--field-mask",
            "verdict,source.pod_name",
        ]),
        Duration::from_secs(30),
    )
    .expect("holonet observe --field-mask");
    let text = String::from_utf8_lossy(&masked.stdout);
    assert!(
        text.lines().count() == 5
            && text
                .lines()
                .all(|l| l.contains("\"verdict\"") && !l.contains("\"destination\"")),
        "only the masked fields:\n{text}"
    );

    // The agent describes itself (holonet.Agent GetCapabilities).
    let status = output_within(
        Command::new(env!("CARGO_BIN_EXE_holonet")).args(["status", "--server", &listen]),
        Duration::from_secs(30),
    )
    .expect("holonet status --server");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{status:?}");
    for expected in [
        "node restart-node",
        "policies: enforce",
        "pinned under: ",
        "process attribution",
    ] {
        assert!(text.contains(expected), "{expected:?} in:\n{text}");
    }

    // Load: the payer keeps asking for both patients while the agent is
    // killed and restarted.
    let stop = Arc::new(AtomicBool::new(false));
    let results: Arc<Mutex<Vec<(&'static str, String)>>> = Arc::default();
    let load = {
        let (stop, results) = (Arc::clone(&stop), Arc::clone(&results));
        let (payer, server) = (payer.clone(), server.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for patient in ["DarthVader", "Anakin"] {
                    let status = status_of(&payer, &server, patient);
                    results.lock().expect("results").push((patient, status));
                }
            }
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    let mut killed = cleanup.agent.take().expect("agent");
    killed.kill().expect("SIGKILL the agent");
    wait_within(&mut killed, Duration::from_secs(30)).expect("agent reaped");
    let during_outage = results.lock().expect("results").len();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        results.lock().expect("results").len() > during_outage + 4,
        "requests kept being answered while no agent ran"
    );

    let (agent, lines) = start_agent(&args);
    cleanup.agent = Some(agent);
    let took_over = lines
        .lock()
        .expect("lines")
        .iter()
        .any(|l| l.contains("took over 4 link(s)"));
    assert!(
        took_over,
        "the new agent replaces the 4 pinned links: {lines:?}"
    );
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    load.join().expect("load thread");

    let results = results.lock().expect("results").clone();
    let anakin_through: Vec<_> = results
        .iter()
        .filter(|(p, s)| *p == "Anakin" && s != "403")
        .collect();
    assert!(
        anakin_through.is_empty(),
        "denied requests not answered 403: {anakin_through:?}"
    );
    let vader_failed: Vec<_> = results
        .iter()
        .filter(|(p, s)| *p == "DarthVader" && s != "200")
        .collect();
    assert!(
        vader_failed.is_empty(),
        "allowed requests failed: {vader_failed:?}"
    );

    // A stopped agent leaves the probe enforcing; --remove-pinned ends it.
    let mut agent = cleanup.agent.take().expect("agent");
    let _ = Command::new("kill")
        .args(["-TERM", &agent.id().to_string()])
        .status();
    let exit = wait_within(&mut agent, Duration::from_secs(30)).expect("agent exits on SIGTERM");
    assert!(exit.success(), "SIGTERM is a clean stop: {exit}");
    assert_eq!(
        status_of(&payer, &server, "Anakin"),
        "403",
        "still enforced"
    );
    let removed = output_within(
        Command::new(env!("CARGO_BIN_EXE_holonet"))
            .args(["agent", "--remove-pinned", "--pin-dir"])
            .arg(&cleanup.pin_dir),
        Duration::from_secs(30),
    )
    .expect("remove pinned");
    assert!(removed.status.success(), "{removed:?}");
    assert!(!Path::new(&cleanup.pin_dir).exists());
    assert_eq!(
        status_of(&payer, &server, "Anakin"),
        "200",
        "probe detached"
    );
}

/// An agent on `iface` that pins nothing and listens nowhere, with its
/// stderr lines to read.
fn spawn_unpinned_agent(iface: &str) -> (Child, std::io::Lines<BufReader<ChildStderr>>) {
    let mut agent = Command::new(env!("CARGO_BIN_EXE_holonet"))
        .args([
            "agent",
            "--no-pin",
            "--listen-address",
            "none",
            "--unix-socket",
            "none",
            "-i",
            iface,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting holonet agent");
    let stderr = BufReader::new(agent.stderr.take().expect("stderr")).lines();
    (agent, stderr)
}

/// A stop signal that arrives while the agent is still starting (it says
/// "Ctrl-C to stop" before its socket probe is up) is a clean stop: the
/// agent finishes starting, detaches and prints its counters, exit status 0.
/// Before it listened from the start, SIGTERM in that window killed it
/// (status 143) with its links still attached; `scripts/bench-wrk`, which
/// stops a freshly started agent, met that.
#[test]
fn a_stop_signal_while_the_agent_starts_is_a_clean_stop() {
    let Some(_watchdog) = privileged_test("agent_stop_at_start") else {
        return;
    };
    let mut lab = Lab::new().expect("lab");
    let pod = lab.add_pod("early").expect("pod");
    let (mut agent, mut stderr) = spawn_unpinned_agent(&pod.host_ifname);
    let first = stderr
        .next()
        .expect("the agent says something")
        .expect("readable");
    assert!(first.contains("Ctrl-C to stop"), "{first}");
    let _ = Command::new("kill")
        .args(["-TERM", &agent.id().to_string()])
        .status();
    let rest: Vec<String> = stderr.map_while(Result::ok).collect();
    let exit = wait_within(&mut agent, Duration::from_secs(30)).expect("agent exits on SIGTERM");
    assert!(
        exit.success(),
        "SIGTERM during start is a clean stop: {exit}\n{rest:?}"
    );
    assert!(
        rest.iter().any(|l| l.contains("packets seen")),
        "the agent reports its counters on the way out: {rest:?}"
    );
}

/// Events the kernel handed over before a stop are stored before the agent
/// ends: an agent paused (SIGSTOP) while connections come and go, then
/// resumed and stopped at once, stores one flow per event the probe sent
/// (its last line says both). Before, the stop cancelled the pipeline
/// wherever it was; whether it had read the ring by then was a race this
/// test does not win reliably (by hand, a paused agent stopped during a
/// flood of connections stored 0 of 5,278 events), so it guards the
/// outcome rather than reproducing the race.
#[test]
fn events_handed_over_before_a_stop_are_stored() {
    let Some(_watchdog) = privileged_test("agent_drain_at_stop") else {
        return;
    };
    let mut lab = Lab::new().expect("lab");
    let client = lab.add_pod("drainer").expect("client pod");
    let closed = lab.add_pod("closed").expect("pod without listeners");
    let (mut agent, mut stderr) = spawn_unpinned_agent(&client.host_ifname);
    // Up, and idle a moment: its pipeline polls the ring on a timer.
    for line in stderr.by_ref() {
        if line.expect("readable").contains("process attribution") {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let pid = agent.id().to_string();
    let _ = Command::new("kill").args(["-STOP", &pid]).status();
    // Every attempt is a SYN out and a RST back: two events each.
    let script = format!(
        "for i in $(seq 1 1000); do (exec 3<>/dev/tcp/{}/9) 2>/dev/null; done",
        closed.ip
    );
    // All sent before the agent resumes, so every event is in the ring when
    // it is stopped and nothing comes after.
    output_within(
        &mut client.command("bash", &["-c", &script]),
        Duration::from_secs(60),
    )
    .expect("connection attempts");
    let _ = Command::new("kill").args(["-CONT", &pid]).status();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let rest: Vec<String> = stderr.map_while(Result::ok).collect();
    let exit = wait_within(&mut agent, Duration::from_secs(30)).expect("agent exits on SIGTERM");
    assert!(exit.success(), "{exit}: {rest:?}");
    let last = rest
        .iter()
        .find(|l| l.contains("packets seen"))
        .unwrap_or_else(|| panic!("no counters line: {rest:?}"));
    let number_before = |word: &str| -> u64 {
        let words: Vec<&str> = last.split_whitespace().collect();
        let at = words
            .iter()
            .position(|w| w.trim_matches(|c: char| !c.is_alphanumeric()) == word)
            .unwrap_or_else(|| panic!("no `{word}` in {last}"));
        words[at - 1]
            .trim_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .unwrap_or_else(|_| panic!("no number before `{word}` in {last}"))
    };
    let events = number_before("events");
    let stored = number_before("flows");
    assert!(events >= 2000, "1,000 SYNs and 1,000 RSTs at least: {last}");
    assert_eq!(stored, events, "every event sent is stored: {last}");
}
