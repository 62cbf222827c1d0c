//! Real-terminal tests: tmux runs `holonet` against the seed recording,
//! a person's keystrokes are typed into it, and the captured panes are
//! checked for what that person would see. Afterwards the terminal must
//! be back to normal (main screen, cooked mode with echo), also when the
//! dashboard is killed with SIGTERM.
//!
//! `holonet demo` is driven the same way: the story over the dashboard,
//! `n` to move on, `q` to leave, and afterwards no namespace of that run
//! is left. The README's main-job command line is run exactly as the
//! README shows it.
//!
//! tmux is required (and root for the demo): under CI=true a missing tmux
//! or root fails the test; outside CI the test is skipped loudly. The
//! captures are written next to the test binary's temporary directory for
//! inspection.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_holonet");

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Whether tmux can be used; panics under CI=true when it cannot.
fn have_tmux(test: &str) -> bool {
    let ok = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{test}: tmux is not installed (apt-get install tmux); it is required under CI=true"
        );
    }
    eprintln!(
        "\n*** SKIPPED {test}: tmux is not installed. Install it (apt-get install tmux) to run the real-terminal test. ***\n"
    );
    false
}

/// The XDG_STATE_HOME given to holonet in a session (its log goes there).
fn state_dir(socket: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{socket}.state"))
}

/// Tests share the holonet binary; the README test runs `./scripts/demo`,
/// whose `cargo build` may relink that binary, so it runs alone.
static BINARY: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Held while a test runs holonet.
fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    BINARY
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Held while the README's command may rebuild holonet.
fn exclusive() -> std::sync::RwLockWriteGuard<'static, ()> {
    BINARY
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One tmux session on a private server socket.
struct Session {
    socket: String,
    name: String,
    captures: Vec<(String, String)>,
}

impl Session {
    fn start(test: &str, args: &str, w: u16, h: u16) -> Self {
        Self::start_env(test, "", args, w, h)
    }

    /// Like `start`, with `VAR=value …` put before the command.
    fn start_env(test: &str, env: &str, args: &str, w: u16, h: u16) -> Self {
        Self::start_shell(test, &format!("{env} {BIN} {args}"), w, h)
    }

    /// Runs a shell command line in the session (holonet's log goes to the
    /// session's state directory).
    fn start_shell(test: &str, command: &str, w: u16, h: u16) -> Self {
        let socket = format!("holonet-test-{}-{test}", std::process::id());
        let name = "t".to_owned();
        let log = state_dir(&socket);
        let script = format!(
            "export XDG_STATE_HOME={state}; {command}; echo \"HOLONET_EXIT=$?\"; \
             stty -a | tr '\\n' ' ' | sed 's/^/STTY: /'; echo; echo DONE; sleep 600",
            state = log.display(),
        );
        let status = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                &name,
            ])
            .args(["-x", &w.to_string(), "-y", &h.to_string()])
            .args(["sh", "-c", &script])
            .env("TERM", "xterm-256color")
            .env_remove("NO_COLOR")
            .status()
            .expect("tmux new-session");
        assert!(status.success(), "tmux new-session failed");
        Self {
            socket,
            name,
            captures: Vec::new(),
        }
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn capture(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", &self.name])
    }

    /// The pane with its scrollback, wrapped lines joined.
    fn history(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-J", "-S", "-200", "-t", &self.name])
    }

    fn keep(&mut self, label: &str) -> String {
        let c = self.capture();
        self.captures.push((label.to_owned(), c.clone()));
        c
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.name];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", &self.name, "-l", text]);
    }

    fn alternate_on(&self) -> bool {
        self.tmux(&["display-message", "-p", "-t", &self.name, "#{alternate_on}"])
            .trim()
            == "1"
    }

    /// Waits up to `timeout` for a pane line starting with `prefix`.
    fn try_wait_for_line(&self, prefix: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.capture();
            if c.lines().any(|l| l.starts_with(prefix)) {
                return Some(c);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the pane shows `needle`; panics with the pane if not.
    fn wait_for(&self, needle: &str) -> String {
        self.wait_long(needle, Duration::from_secs(20))
    }

    /// Like `wait_for`, for up to `timeout`.
    fn wait_long(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.capture();
            if c.contains(needle) {
                return c;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {needle:?}; the pane shows:\n{c}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The pid of holonet: the child of the pane's shell.
    fn holonet_pid(&self) -> String {
        let shell = self.pane_pid();
        std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .expect("holonet process")
            .to_owned()
    }

    fn pane_pid(&self) -> u32 {
        self.tmux(&["display-message", "-p", "-t", &self.name, "#{pane_pid}"])
            .trim()
            .parse()
            .expect("pane pid")
    }

    fn save(&self, test: &str) {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let mut text = String::new();
        for (label, c) in &self.captures {
            text.push_str(&format!("===== {label} =====\n{c}\n"));
        }
        let path = dir.join(format!("{test}.captures.txt"));
        let _ = std::fs::write(&path, &text);
        eprintln!("captures of {test} written to {}", path.display());
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
        // holonet's state (its log) in this session; the captures are kept
        // elsewhere for inspection.
        let _ = std::fs::remove_dir_all(state_dir(&self.socket));
    }
}

/// The terminal after the dashboard left: exit status and cooked mode.
fn assert_restored(s: &Session, after: &str, expect_exit: &str) {
    // The demo removes its pods first, which takes a few seconds.
    s.wait_long("DONE", Duration::from_secs(60));
    let c = s.history();
    assert!(
        c.contains(&format!("HOLONET_EXIT={expect_exit}")),
        "{after}: exit status\n{c}"
    );
    let stty = c
        .lines()
        .find(|l| l.starts_with("STTY:"))
        .unwrap_or_default()
        .to_owned();
    // capture-pane wraps long lines; join the rest of the output.
    let joined: String = c.lines().skip_while(|l| !l.starts_with("STTY:")).collect();
    assert!(!stty.is_empty(), "{after}: no stty output\n{c}");
    assert!(
        joined.contains(" icanon") && !joined.contains("-icanon"),
        "{after}: terminal left in raw mode: {joined}"
    );
    assert!(
        joined.contains(" echo ") && !joined.contains("-echo "),
        "{after}: echo left off: {joined}"
    );
    assert!(!s.alternate_on(), "{after}: still on the alternate screen");
}

#[test]
fn a_person_filters_pauses_inspects_and_quits() {
    let _binary = shared();
    let test = "a_person_filters_pauses_inspects_and_quits";
    if !have_tmux(test) {
        return;
    }
    let rec = data("seed.jsonl");
    // 60 s of flows played at 4x: still playing while the person works.
    let mut s = Session::start(
        "person",
        &format!("--input-file {} --speed 4", rec.display()),
        100,
        30,
    );
    s.wait_for("Patient/Anakin");
    assert!(
        s.alternate_on(),
        "the dashboard should use the alternate screen"
    );
    let main = s.keep("main view while replaying at 4x");
    assert!(main.contains("▶ REPLAY seed.jsonl 4x"), "{main}");
    assert!(
        main.contains("DROPPED") && main.contains("FORWARDED"),
        "{main}"
    );
    assert!(
        main.lines().last().is_some_and(|l| l.starts_with("q quit")),
        "{main}"
    );

    // Type a filter: validated as it is typed, applied on Enter. Open the
    // bar first and wait until it shows, so no typed character can reach the
    // table on a slow, loaded machine.
    let mut opened = false;
    for _ in 0..3 {
        s.keys(&["/"]);
        if s.try_wait_for_line("/ ", Duration::from_secs(5)).is_some() {
            opened = true;
            break;
        }
    }
    assert!(opened, "the filter bar did not open:\n{}", s.capture());
    s.keys(&["C-u"]);
    s.type_text("org=payer --verdict DROP");
    let typing = s.wait_for("✓");
    s.captures.push(("typing a filter".into(), typing));
    s.type_text("PED");
    s.keys(&["Enter"]);
    // The header's filter line (not the bar's ✓ line, which says the same).
    let filtered =
        s.wait_for("\nfilter: (source org=payer OR destination org=payer) AND verdict DROPPED");
    s.captures.push(("filter applied".into(), filtered.clone()));
    assert!(
        filtered.contains("(source org=payer OR destination org=payer)"),
        "{filtered}"
    );
    let table: Vec<&str> = filtered
        .lines()
        .skip_while(|l| !l.contains("VERDICT"))
        .skip(1)
        .filter(|l| l.contains(':'))
        .collect();
    assert!(!table.is_empty(), "{filtered}");
    assert!(
        table
            .iter()
            .all(|l| l.contains("DROPPED") && !l.contains("FORWARDED")),
        "{filtered}"
    );

    // Pause the replay.
    s.keys(&["Space"]);
    let paused = s.wait_for("⏸ PAUSED");
    s.captures.push(("paused".into(), paused));

    // Detail pane of the selected drop.
    s.keys(&["Enter"]);
    let detail = s.wait_for("Why was it dropped?");
    s.captures.push(("detail pane".into(), detail.clone()));
    assert!(detail.contains("POLICY_DENIED"), "{detail}");
    assert!(detail.contains("Reported by the agent"), "{detail}");
    s.keys(&["Escape"]);
    s.wait_for("TIME");

    // Help and back.
    s.keys(&["?"]);
    let help = s.wait_for("Help (Esc to close)");
    s.captures.push(("help".into(), help));
    s.keys(&["Escape"]);

    // Resume as fast as possible: the filter applies to every flow.
    s.keys(&["Space"]);
    s.keys(&[":"]);
    s.type_text("speed max");
    s.keys(&["Enter"]);
    let end = s.wait_for("■ END");
    s.captures.push(("end of the replay".into(), end.clone()));
    assert!(end.contains("36/306 flows"), "{end}");

    s.keys(&["q"]);
    assert_restored(&s, "q", "0");
    s.keep("after quitting");
    s.save(test);
}

#[test]
fn sigterm_and_garbage_lines_leave_a_clean_terminal() {
    let _binary = shared();
    let test = "sigterm_and_garbage_lines_leave_a_clean_terminal";
    if !have_tmux(test) {
        return;
    }
    let rec = data("garbage.jsonl");
    let mut s = Session::start(
        "sigterm",
        &format!("--input-file {} --speed max", rec.display()),
        80,
        24,
    );
    let c = s.wait_for("5 lines skipped");
    let c = if c.contains("unreadable line") {
        c
    } else {
        s.wait_for("unreadable line")
    };
    s.captures.push(("garbage recording".into(), c.clone()));
    assert!(c.contains("5/5 flows"), "{c}");
    assert!(c.contains("line 2: not a JSON object"), "{c}");
    // Find holonet (the child of the pane's shell) and send SIGTERM.
    let shell = s.pane_pid();
    let children =
        std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).unwrap_or_default();
    let pid = children
        .split_whitespace()
        .next()
        .expect("holonet process")
        .to_owned();
    let ok = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .is_ok_and(|st| st.success());
    assert!(ok, "kill -TERM {pid}");
    assert_restored(&s, "SIGTERM", "0");
    s.keep("after SIGTERM");
    s.save(test);
}

#[test]
fn a_20x5_terminal_still_shows_the_keys() {
    let _binary = shared();
    let test = "a_20x5_terminal_still_shows_the_keys";
    if !have_tmux(test) {
        return;
    }
    let rec = data("seed.jsonl");
    let mut s = Session::start(
        "tiny",
        &format!("--input-file {} --speed max", rec.display()),
        20,
        5,
    );
    let c = s.wait_for("q quit");
    s.captures.push(("20x5".into(), c));
    s.keys(&["Enter"]);
    s.keys(&["Escape"]);
    s.keys(&["q"]);
    assert_restored(&s, "q at 20x5", "0");
    s.save(test);
}

#[test]
fn bad_input_gives_clear_messages() {
    let _binary = shared();
    let run = |args: &[&str]| {
        let out = Command::new(BIN).args(args).output().expect("run holonet");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["--http-path", "(", "--input-file", "x"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("http_path") && err.contains("regex"), "{err}");
    let (code, err) = run(&["--filter", "org in (payer"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--filter"), "{err}");
    let (code, err) = run(&["--colour", "red"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--colour"), "{err}");
    let (code, err) = run(&["--speed", "1000", "--input-file", "x"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("0.1 to 100"), "{err}");
    // Not a terminal: the dashboard refuses instead of garbling a pipe.
    let (code, err) = run(&["--input-file", data("seed.jsonl").to_str().unwrap_or("")]);
    assert_eq!(code, Some(1));
    assert!(err.contains("needs a terminal"), "{err}");
    let (code, err) = run(&["tui", "--input-file", "/nonexistent/rec.jsonl"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("needs a terminal") || err.contains("nonexistent"),
        "{err}"
    );
    // Other subcommands still work.
    let (code, _) = run(&["policy", "validate", "--help"]);
    assert_eq!(code, Some(0));
}

#[test]
fn the_terminal_going_away_ends_the_dashboard_quietly() {
    let _binary = shared();
    let test = "the_terminal_going_away_ends_the_dashboard_quietly";
    if !have_tmux(test) {
        return;
    }
    let rec = data("seed.jsonl");
    let s = Session::start(
        "hup",
        &format!("--input-file {} --speed 2", rec.display()),
        80,
        24,
    );
    s.wait_for("▶ REPLAY");
    let pid = s.holonet_pid();
    let log = state_dir(&s.socket).join("holonet/tui.log");
    // Closing the terminal sends SIGHUP; the pty is gone afterwards.
    s.tmux(&["kill-server"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            Instant::now() < deadline,
            "holonet {pid} still running after SIGHUP"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!text.contains("panic"), "{}:\n{text}", log.display());
}

#[test]
fn colours_follow_hubble_and_no_color_turns_them_off() {
    let _binary = shared();
    let test = "colours_follow_hubble_and_no_color_turns_them_off";
    if !have_tmux(test) {
        return;
    }
    let rec = data("seed.jsonl");
    let args = format!("--input-file {} --speed max", rec.display());
    let s = Session::start("colour", &args, 100, 30);
    s.wait_for("■ END");
    let escaped = s.tmux(&["capture-pane", "-p", "-e", "-t", &s.name]);
    // Red (31) for DROPPED, green (32) for FORWARDED, as in Hubble.
    // (tmux reports the 16 named colours as 38;5;N.)
    assert!(
        escaped.contains("38;5;1mDROPPED") || escaped.contains("31mDROPPED"),
        "{escaped:?}"
    );
    assert!(
        escaped.contains("38;5;2mFORWARDED") || escaped.contains("32mFORWARDED"),
        "{escaped:?}"
    );
    let s = Session::start_env("nocolour", "NO_COLOR=1", &args, 100, 30);
    s.wait_for("■ END");
    let escaped = s.tmux(&["capture-pane", "-p", "-e", "-t", &s.name]);
    assert!(escaped.contains("DROPPED") && escaped.contains("FORWARDED"));
    for code in [
        "38;5;", "[31m", "[32m", "[33m", "[36m", ";31m", ";32m", ";36m",
    ] {
        assert!(
            !escaped.contains(code),
            "colour {code} with NO_COLOR: {escaped:?}"
        );
    }
    // The selection stays visible: reverse video.
    assert!(
        escaped.contains("[7m") || escaped.contains(";7m"),
        "{escaped:?}"
    );
}

// ---- holonet demo over the dashboard ------------------------------------------

/// Network namespaces the demo of process `pid` created (`hn-<pid>-…`).
fn namespaces_of(pid: &str) -> Vec<String> {
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

/// The pid of the `holonet demo` process in the session (the script may
/// run it through `scripts/demo`, which execs it).
fn demo_pid(s: &Session) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pid = s.holonet_pid();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.len() > 1 && args[1] == b"demo" {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "no `holonet demo` process in the session: {:?}",
            String::from_utf8_lossy(&cmdline)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// How many flow rows of the table on a captured pane contain `text`
/// (rows start with the flow's time, `HH:MM:SS`, after the selection mark).
fn rows_with(pane: &str, text: &str) -> usize {
    pane.lines()
        .filter(|l| {
            let row = l.trim_start_matches('▶').trim_start();
            let t = row.as_bytes();
            t.len() > 8
                && t[2] == b':'
                && t[5] == b':'
                && t[..8].iter().all(|b| b.is_ascii_digit() || *b == b':')
        })
        .filter(|l| l.contains(text))
        .count()
}

/// Presses `n` until the pane shows `needle`.
fn advance_until(s: &Session, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let c = s.capture();
        if c.contains(needle) {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "timed out pressing n until {needle:?}; the pane shows:\n{c}"
        );
        if c.contains("(n: now)") {
            s.keys(&["n"]);
        }
        std::thread::sleep(Duration::from_millis(400));
    }
}

#[test]
fn the_demo_tells_the_story_over_the_dashboard_and_cleans_up() {
    let _binary = shared();
    let test = "the_demo_tells_the_story_over_the_dashboard_and_cleans_up";
    let Some(_watchdog) = have_tmux(test)
        .then(|| holonet_lab::privileged_test(test))
        .flatten()
    else {
        return;
    };
    let mut s = Session::start("demo", "demo --step-seconds 5", 120, 36);
    let first = s.wait_long(" step 1/15: ", Duration::from_secs(90));
    assert!(
        s.alternate_on(),
        "the dashboard should be on the alternate screen"
    );
    assert!(first.contains("● LIVE holonet demo"), "{first}");
    let pid = demo_pid(&s);
    assert!(
        !namespaces_of(&pid).is_empty(),
        "the demo's pods exist while it runs"
    );
    // The timer moves the story on by itself...
    let second = s.wait_long(" step 2/15: the medical droids", Duration::from_secs(20));
    s.captures.push(("step 2 by the timer".into(), second));
    // ...and n does not wait for it.
    let dropped = advance_until(
        &s,
        " step 6/15: the care team tries again",
        Duration::from_secs(60),
    );
    let dropped = if dropped.contains("no answer: dropped by holonet") {
        dropped
    } else {
        s.wait_for("no answer: dropped by holonet")
    };
    s.captures
        .push(("the deny-all drops the care team".into(), dropped.clone()));
    assert!(
        dropped.contains("  ✓ GET DarthVader from grandmedicalfacility"),
        "{dropped}"
    );
    assert!(rows_with(&dropped, "DROPPED") > 0, "{dropped}");
    let forwarded = advance_until(
        &s,
        " step 9/15: the care team reads",
        Duration::from_secs(60),
    );
    let forwarded = if forwarded.contains("HTTP 200, as the story says") {
        forwarded
    } else {
        s.wait_for("HTTP 200, as the story says")
    };
    let pane = s.keep("the empire allowed: FORWARDED requests on screen");
    assert!(rows_with(&pane, "FORWARDED http-request") > 0, "{pane}");
    assert!(
        forwarded.contains("n next step"),
        "the footer names the key: {forwarded}"
    );
    // The droids poll in the background: their flows reach the dashboard.
    s.keys(&["/"]);
    s.wait_for("(Enter: apply, Esc: cancel)");
    s.keys(&["C-u"]);
    s.type_text("app=medicaldroid");
    s.keys(&["Enter"]);
    let droids = s.wait_for("\nfilter: (source app=medicaldroid OR destination app=medicaldroid)");
    s.captures.push(("droid traffic".into(), droids.clone()));
    assert!(
        rows_with(&droids, "medicaldroid-") > 3,
        "the droids poll in the background:\n{droids}"
    );
    // Quit in the middle of the story: the terminal comes back, the run's
    // summary follows, and nothing of the run is left.
    s.keys(&["q"]);
    assert_restored(&s, "q during the demo", "0");
    let after = s.history();
    s.captures.push(("after q".into(), after.clone()));
    assert!(after.contains("expected versus observed:"), "{after}");
    assert!(after.contains("stopped after step"), "{after}");
    assert!(!after.contains("FAIL"), "{after}");
    assert!(namespaces_of(&pid).is_empty(), "{:?}", namespaces_of(&pid));
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists() || {
            // The shell reaped it; a zombie would still have a /proc entry.
            std::fs::read_to_string(format!("/proc/{pid}/status")).is_err()
        }
    );
    let log = state_dir(&s.socket).join("holonet/tui.log");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!text.contains("panic"), "{}:\n{text}", log.display());
    s.save(test);
}

#[test]
fn sigterm_during_the_demo_restores_the_terminal_and_removes_the_pods() {
    let _binary = shared();
    let test = "sigterm_during_the_demo_restores_the_terminal_and_removes_the_pods";
    let Some(_watchdog) = have_tmux(test)
        .then(|| holonet_lab::privileged_test(test))
        .flatten()
    else {
        return;
    };
    let mut s = Session::start("demoterm", "demo", 100, 30);
    s.wait_long(" step 1/15: ", Duration::from_secs(90));
    let pid = demo_pid(&s);
    // In the middle of a step, with background traffic in flight.
    s.wait_long(" step 3/15: ", Duration::from_secs(30));
    assert!(!namespaces_of(&pid).is_empty());
    let ok = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .is_ok_and(|st| st.success());
    assert!(ok, "kill -TERM {pid}");
    assert_restored(&s, "SIGTERM during the demo", "0");
    let after = s.history();
    s.captures.push(("after SIGTERM".into(), after.clone()));
    assert!(after.contains("cleaning up"), "{after}");
    assert!(namespaces_of(&pid).is_empty(), "{:?}", namespaces_of(&pid));
    s.save(test);
}

/// The README's first command, as a newcomer copies it.
fn readme_main_command() -> String {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let text = std::fs::read_to_string(&readme).expect("README.md");
    let block = text
        .split("```")
        .nth(1)
        .expect("README.md starts with a code block");
    block
        .lines()
        .skip(1) // the fence's language tag
        .map(str::trim)
        .find(|l| !l.is_empty())
        .expect("a command in the README's first code block")
        .to_owned()
}

#[test]
fn the_readme_main_command_plays_the_whole_story_in_the_dashboard() {
    let _binary = exclusive();
    let test = "the_readme_main_command_plays_the_whole_story_in_the_dashboard";
    let command = readme_main_command();
    // Changing the README's main command means changing this test too.
    assert_eq!(command, "./scripts/demo");
    let Some(_watchdog) = have_tmux(test)
        .then(|| holonet_lab::privileged_test(test))
        .flatten()
    else {
        return;
    };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // Exactly the README's line, run from the repository's root (it builds
    // holonet first, so allow for a build).
    let mut s = Session::start_shell(
        "readme",
        &format!("cd {} && {command}", repo.display()),
        120,
        36,
    );
    s.wait_long(" step 1/15: ", Duration::from_secs(900));
    let pid = demo_pid(&s);
    let over = advance_until(
        &s,
        "the story is over: 9/9 requests ended as the story says",
        Duration::from_secs(180),
    );
    s.captures.push(("the story is over".into(), over.clone()));
    assert!(
        rows_with(&over, "DROPPED") + rows_with(&over, "FORWARDED") > 0,
        "{over}"
    );
    // Background traffic keeps the dashboard live after the story.
    let flows = |pane: &str| -> Option<u64> {
        let header = pane.lines().next()?;
        let part = header.split('│').find(|p| p.contains(" flows"))?;
        let total = part.trim().trim_end_matches(" flows").split('/').nth(1)?;
        total.replace(',', "").parse().ok()
    };
    let before = flows(&over).expect("flow count in the header");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = flows(&s.capture()).unwrap_or(0);
        if now > before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no new flows after the story ended:\n{}",
            s.capture()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    s.keys(&["q"]);
    assert_restored(&s, "q after the story", "0");
    let after = s.history();
    s.captures.push(("after q".into(), after.clone()));
    assert!(after.contains("expected versus observed:"), "{after}");
    assert_eq!(after.matches("  ok   ").count(), 9, "{after}");
    assert!(!after.contains("FAIL"), "{after}");
    assert!(namespaces_of(&pid).is_empty(), "{:?}", namespaces_of(&pid));
    s.save(test);
}
