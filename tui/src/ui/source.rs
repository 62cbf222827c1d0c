//! Producers of flows: the live gRPC stream from an agent or relay, and the
//! replay player for recordings. Both run off the UI task and send
//! [`Msg`] batches through a bounded channel, so the render loop never
//! waits for the network or the disk.
//!
//! - Live: `GetFlows` with `follow` (backfilling up to the buffer size),
//!   unfiltered, because the dashboard filters locally so that changing
//!   the filter also applies to the history. When the UI falls behind, the
//!   task keeps batching up to a bound, then drops and reports the count as
//!   a lost event ("holonet-tui"), never silently. ServerStatus is polled
//!   every 2 s. A lost stream is retried from the last flow time seen.
//! - Replay: a thread reads the recording line by line (garbage lines are
//!   skipped and counted) and plays it with its original timing divided by
//!   the speed, or as fast as possible; pause, step and seek are commands.

use std::{
    fs::File,
    io::{self, BufRead, BufReader},
    path::Path,
    sync::mpsc as std_mpsc,
    time::{Duration, Instant},
};

use holonet_flows::recording::{RecordingError, RecordingReader};
use holonet_proto::{
    flow::{Flow as HubbleFlow, LostEventSource},
    holonet::{
        ExplainFlowRequest, GetCapabilitiesRequest, GetCapabilitiesResponse,
        agent_client::AgentClient,
    },
    observer::{
        GetFlowsRequest, GetFlowsResponse, ServerStatusRequest, get_flows_response::ResponseTypes,
        observer_client::ObserverClient,
    },
    wkt::Timestamp,
};
use tokio::sync::{
    mpsc::{Sender, UnboundedReceiver, error::TrySendError},
    watch,
};
use tonic::transport::{Channel, Endpoint};

use super::{
    app::{AgentStatus, Event, Msg, ReplayCmd, ReplayState, SourceMsg, Speed, flow_key},
    row,
};

/// Where holonet's agent serves the Observer API by default.
pub(crate) const DEFAULT_SOCKET: &str = "/run/holonet/hubble.sock";
/// Fallback when the socket is missing: a local agent or relay on TCP.
pub(crate) const DEFAULT_TCP: &str = "localhost:4245";

/// Largest batch sent at once.
const BATCH: usize = 2048;
/// Longest a flow waits in a batch.
const BATCH_AGE: Duration = Duration::from_millis(30);
/// Flows held back while the UI is behind before they are dropped.
const BACKLOG: usize = 50_000;

/// Turns `--server` into the URIs to try, in order (same rules as
/// `holonet observe`: unix://PATH, host:port, http://host:port; default
/// the agent's unix socket, then localhost:4245).
pub(crate) fn server_candidates(server: Option<&str>) -> Result<Vec<String>, String> {
    let Some(server) = server else {
        let mut v = Vec::new();
        if Path::new(DEFAULT_SOCKET).exists() {
            v.push(format!("unix://{DEFAULT_SOCKET}"));
        }
        v.push(format!("http://{DEFAULT_TCP}"));
        return Ok(v);
    };
    if server.starts_with("unix:") || server.starts_with("http://") {
        return Ok(vec![server.to_owned()]);
    }
    if server.starts_with("tls://") || server.starts_with("https://") {
        return Err(format!(
            "--server {server}: TLS is not supported yet; use a plain or unix:// address"
        ));
    }
    if server.contains("://") {
        return Err(format!(
            "--server {server}: expected unix://PATH, host:port or http://host:port"
        ));
    }
    let has_port = server
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !(server.starts_with('[') && server.ends_with(']'));
    Ok(vec![if has_port {
        format!("http://{server}")
    } else {
        format!("http://{server}:4245")
    }])
}

fn to_event(resp: GetFlowsResponse) -> Option<Event> {
    match resp.response_types? {
        ResponseTypes::Flow(f) => Some(Event::Flow(Box::new(f))),
        ResponseTypes::LostEvents(l) => Some(Event::Lost {
            source: LostEventSource::try_from(l.source)
                .map_or_else(|_| l.source.to_string(), |s| s.as_str_name().to_owned()),
            count: l.num_events_lost,
        }),
        ResponseTypes::NodeStatus(n) => Some(Event::Node(format!(
            "{} {}{}",
            n.node_names.join(", "),
            holonet_proto::relay::NodeState::try_from(n.state_change)
                .map_or("", |s| s.as_str_name()),
            if n.message.is_empty() {
                String::new()
            } else {
                format!(": {}", n.message)
            }
        ))),
    }
}

/// An error with its causes (`transport error: … Connection refused`).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// Batches events towards the UI without ever blocking on it: the live
/// stream uses it, and so does `holonet demo`, which feeds the dashboard
/// from its own flow store.
#[derive(Debug)]
pub(crate) struct Batcher {
    tx: Sender<Msg>,
    pending: Vec<Event>,
    dropped: u64,
    since: Instant,
}

impl Batcher {
    /// A batcher sending on `tx`.
    pub(crate) fn new(tx: Sender<Msg>) -> Self {
        Self {
            tx,
            pending: Vec::with_capacity(BATCH),
            dropped: 0,
            since: Instant::now(),
        }
    }

    /// Queues a Hubble response (flows, lost events, node status).
    pub(crate) fn push_response(&mut self, resp: GetFlowsResponse) {
        if let Some(ev) = to_event(resp) {
            self.push(ev);
        }
    }

    /// Whether events are still waiting for room in the channel.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    fn push(&mut self, ev: Event) {
        if self.pending.len() >= BACKLOG {
            self.dropped += 1;
            return;
        }
        if self.pending.is_empty() {
            self.since = Instant::now();
        }
        self.pending.push(ev);
    }

    fn due(&self) -> bool {
        !self.pending.is_empty()
            && (self.pending.len() >= BATCH || self.since.elapsed() >= BATCH_AGE)
    }

    /// Tries to hand the batch over; returns false when the UI is gone.
    pub(crate) fn flush(&mut self) -> bool {
        if self.dropped > 0 && self.pending.len() < BACKLOG {
            self.pending.push(Event::Lost {
                source: "holonet-tui: display could not keep up".to_owned(),
                count: self.dropped,
            });
            self.dropped = 0;
        }
        if self.pending.is_empty() {
            return true;
        }
        let batch = std::mem::take(&mut self.pending);
        match self.tx.try_send(Msg::Events(batch)) {
            Ok(()) => true,
            Err(TrySendError::Full(Msg::Events(back))) => {
                self.pending = back;
                true
            }
            Err(TrySendError::Full(_)) => true,
            Err(TrySendError::Closed(_)) => false,
        }
    }
}

/// Where and how to reach the agent or relay.
#[derive(Debug)]
pub(crate) struct LiveSource {
    /// `--server`, or the defaults.
    pub(crate) server: Option<String>,
    /// Connection timeout.
    pub(crate) timeout: Duration,
    /// TLS settings, when asked for.
    pub(crate) tls: Option<tonic::transport::ClientTlsConfig>,
    /// Flows to backfill on the first connection.
    pub(crate) backfill: u64,
}

/// How long an explanation or capabilities request may take.
const AGENT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Streams flows from an agent or relay until the UI goes away, and
/// answers the dashboard's explanation requests over the same connection.
pub(crate) async fn live(
    source: LiveSource,
    tx: Sender<Msg>,
    explain_rx: UnboundedReceiver<HubbleFlow>,
) {
    let LiveSource {
        server,
        timeout,
        tls,
        backfill,
    } = source;
    let candidates = match server_candidates(server.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            let _ = tx.send(Msg::Source(SourceMsg::Failed(e))).await;
            return;
        }
    };
    let (channel_tx, channel_rx) = watch::channel::<Option<Channel>>(None);
    let explainer = tokio::spawn(explain_flows(explain_rx, channel_rx, tx.clone()));
    let _stop_explainer = AbortOnDrop(explainer);
    let mut since: Option<Timestamp> = None;
    let mut backoff = Duration::from_secs(1);
    loop {
        let mut connected = None;
        let mut errors = Vec::new();
        if let Some(tls) = &tls {
            let _ = tx
                .send(Msg::Source(SourceMsg::Connecting(candidates.join(", "))))
                .await;
            connected = connect_tls(&candidates, tls.clone(), timeout, &mut errors)
                .await
                .map(|c| (candidates.join(", "), c));
        }
        for uri in candidates.iter().filter(|_| tls.is_none()) {
            let _ = tx
                .send(Msg::Source(SourceMsg::Connecting(uri.clone())))
                .await;
            let endpoint = match Endpoint::from_shared(uri.clone()) {
                Ok(e) => e,
                Err(e) => {
                    errors.push(format!("{uri}: {}", chain(&e)));
                    continue;
                }
            };
            match tokio::time::timeout(timeout, endpoint.connect()).await {
                Ok(Ok(c)) => {
                    connected = Some((uri.clone(), c));
                    break;
                }
                Ok(Err(e)) => errors.push(format!("{uri}: {}", chain(&e))),
                Err(_) => errors.push(format!("{uri}: no connection after {timeout:?}")),
            }
        }
        let Some((uri, channel)) = connected else {
            channel_tx.send_replace(None);
            let msg = format!("cannot reach a Hubble Observer API ({})", errors.join("; "));
            log::warn!("{msg}");
            if tx
                .send(Msg::Source(SourceMsg::Disconnected(msg)))
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
            continue;
        };
        channel_tx.send_replace(Some(channel.clone()));
        // Asked beside the stream: a server slow to answer it delays no flow.
        let (caps_channel, caps_tx) = (channel.clone(), tx.clone());
        tokio::spawn(async move {
            let capabilities = ask_capabilities(caps_channel).await;
            let _ = caps_tx
                .send(Msg::Source(SourceMsg::Capabilities(capabilities)))
                .await;
        });
        let mut client = ObserverClient::new(channel);
        let request = GetFlowsRequest {
            number: if since.is_some() { 0 } else { backfill },
            follow: true,
            since,
            ..Default::default()
        };
        let mut stream = match client.get_flows(request).await {
            Ok(s) => s.into_inner(),
            Err(s) => {
                let msg = format!("GetFlows: {}: {}", s.code(), s.message());
                let _ = tx.send(Msg::Source(SourceMsg::Disconnected(msg))).await;
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        backoff = Duration::from_secs(1);
        log::info!("streaming flows from {uri}");
        if tx
            .send(Msg::Source(SourceMsg::Connected(uri.clone())))
            .await
            .is_err()
        {
            return;
        }
        let status_client = client.clone();
        let status_tx = tx.clone();
        let poller = tokio::spawn(async move {
            let mut c = status_client;
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tick.tick().await;
                if let Ok(r) = c.server_status(ServerStatusRequest {}).await {
                    let r = r.into_inner();
                    let s = AgentStatus {
                        version: r.version,
                        num_flows: r.num_flows,
                        max_flows: r.max_flows,
                        seen_flows: r.seen_flows,
                        uptime_ns: r.uptime_ns,
                        connected_nodes: r.num_connected_nodes.map(|v| v.value),
                        unavailable_nodes: r.num_unavailable_nodes.map(|v| v.value),
                        unavailable_names: r.unavailable_nodes,
                        flows_rate: r.flows_rate,
                    };
                    if status_tx
                        .send(Msg::Source(SourceMsg::Status(s)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        });
        let mut batch = Batcher::new(tx.clone());
        let mut tick = tokio::time::interval(BATCH_AGE);
        let end = loop {
            tokio::select! {
                m = stream.message() => match m {
                    Ok(Some(resp)) => {
                        if let Some(ResponseTypes::Flow(f)) = &resp.response_types {
                            if f.time.is_some() {
                                since = f.time;
                            }
                        }
                        if let Some(ev) = to_event(resp) {
                            batch.push(ev);
                        }
                        if batch.due() && !batch.flush() {
                            poller.abort();
                            return;
                        }
                    }
                    Ok(None) => break "the server ended the stream".to_owned(),
                    Err(s) => break format!("{}: {}", s.code(), s.message()),
                },
                _ = tick.tick() => {
                    if !batch.flush() {
                        poller.abort();
                        return;
                    }
                }
            }
        };
        poller.abort();
        while !batch.pending.is_empty() {
            if !batch.flush() {
                return;
            }
            tokio::time::sleep(BATCH_AGE).await;
        }
        log::warn!("stream from {uri} ended: {end}");
        if tx
            .send(Msg::Source(SourceMsg::Disconnected(end)))
            .await
            .is_err()
        {
            return;
        }
        // Resume just after the last flow seen.
        if let Some(t) = &mut since {
            t.nanos += 1;
        }
        tokio::time::sleep(backoff).await;
    }
}

/// Aborts a task when dropped (the explainer ends with the live source).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the agent reports of its kernel and datapath; a relay or a Hubble
/// server does not serve `holonet.Agent`, which the error says.
async fn ask_capabilities(channel: Channel) -> Result<GetCapabilitiesResponse, String> {
    let mut client = AgentClient::new(channel);
    let call = client.get_capabilities(GetCapabilitiesRequest {});
    match tokio::time::timeout(AGENT_CALL_TIMEOUT, call).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s)) => Err(agent_error(&s)),
        Err(_) => Err(format!("no answer within {AGENT_CALL_TIMEOUT:?}")),
    }
}

fn agent_error(status: &tonic::Status) -> String {
    if status.code() == tonic::Code::Unimplemented {
        "the server does not serve holonet.Agent (a relay or a Hubble server)".to_owned()
    } else {
        format!("{}: {}", status.code(), status.message())
    }
}

/// Answers the dashboard's explanation requests one at a time over the
/// current connection (there is none while the source reconnects).
async fn explain_flows(
    mut requests: UnboundedReceiver<HubbleFlow>,
    channel: watch::Receiver<Option<Channel>>,
    tx: Sender<Msg>,
) {
    while let Some(flow) = requests.recv().await {
        let key = flow_key(&flow);
        let current = channel.borrow().clone();
        let answer = match current {
            None => Err("not connected to the agent right now".to_owned()),
            Some(channel) => {
                let mut client = AgentClient::new(channel);
                let call = client.explain_flow(ExplainFlowRequest { flow: Some(flow) });
                match tokio::time::timeout(AGENT_CALL_TIMEOUT, call).await {
                    Ok(Ok(r)) => Ok(r.into_inner()),
                    Ok(Err(s)) => Err(agent_error(&s)),
                    Err(_) => Err(format!("no answer within {AGENT_CALL_TIMEOUT:?}")),
                }
            }
        };
        if tx.send(Msg::Explained { key, answer }).await.is_err() {
            return;
        }
    }
}

/// Where a recording comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Recording {
    /// A file (seekable backwards by reopening).
    File(String),
    /// Standard input (forward only).
    Stdin,
}

impl Recording {
    /// From `--input-file` (`-` is stdin).
    pub(crate) fn from_arg(s: &str) -> Self {
        if s == "-" {
            Recording::Stdin
        } else {
            Recording::File(s.to_owned())
        }
    }

    /// A short name for the header.
    pub(crate) fn label(&self) -> String {
        match self {
            Recording::Stdin => "stdin".to_owned(),
            Recording::File(p) => Path::new(p)
                .file_name()
                .map_or_else(|| p.clone(), |n| n.to_string_lossy().into_owned()),
        }
    }

    fn open(&self) -> io::Result<Box<dyn BufRead + Send>> {
        Ok(match self {
            Recording::Stdin => Box::new(BufReader::new(io::stdin())),
            Recording::File(p) => Box::new(BufReader::with_capacity(256 * 1024, File::open(p)?)),
        })
    }
}

/// Checks a recording can be opened before the terminal is taken over.
pub(crate) fn check_recording(rec: &Recording) -> io::Result<()> {
    rec.open().map(drop)
}

/// The replay player, run on its own thread.
#[derive(Debug)]
struct Player {
    rec: Recording,
    tx: Sender<Msg>,
    cmds: std_mpsc::Receiver<ReplayCmd>,
    speed: Speed,
    paused: bool,
    /// Flow time and wall-clock instant that correspond.
    anchor: Option<(i128, Instant)>,
    state: ReplayState,
    batch: Vec<Event>,
    last_flush: Instant,
    last_state: Instant,
}

/// How waiting for a flow's time ended.
enum Wait {
    Emit,
    Restart(i128),
    Stop,
}

/// What the player does after a command.
enum Flow {
    Go,
    Restart(i128),
    Stop,
}

impl Player {
    fn send_state(&mut self) -> bool {
        self.state.speed = self.speed.label();
        self.state.paused = self.paused;
        self.last_state = Instant::now();
        self.tx
            .blocking_send(Msg::Source(SourceMsg::Replay(self.state.clone())))
            .is_ok()
    }

    fn flush(&mut self) -> bool {
        self.last_flush = Instant::now();
        if !self.batch.is_empty() {
            let b = std::mem::take(&mut self.batch);
            if self.tx.blocking_send(Msg::Events(b)).is_err() {
                return false;
            }
        }
        if self.last_state.elapsed() >= Duration::from_millis(100) {
            return self.send_state();
        }
        true
    }

    /// Handles one command; returns what to do next.
    fn command(&mut self, cmd: ReplayCmd, pos: i128) -> Flow {
        match cmd {
            ReplayCmd::Pause(p) => {
                self.paused = p;
                self.anchor = None;
            }
            ReplayCmd::Speed(s) => {
                self.speed = s;
                self.anchor = None;
            }
            ReplayCmd::Step => {}
            ReplayCmd::SeekTo(t) => {
                self.anchor = None;
                if t < pos && self.rec == Recording::Stdin {
                    if self
                        .tx
                        .blocking_send(Msg::Source(SourceMsg::Notice(
                            "cannot seek backwards in a recording read from stdin".to_owned(),
                        )))
                        .is_err()
                    {
                        return Flow::Stop;
                    }
                    return Flow::Go;
                }
                return Flow::Restart(t);
            }
        }
        if !self.send_state() {
            return Flow::Stop;
        }
        Flow::Go
    }

    /// Waits until the flow at time `tn` is due (original timing divided by
    /// the speed), handling commands meanwhile; blocks while paused.
    fn wait_for(
        &mut self,
        tn: i128,
        pos: i128,
        steps: &mut u32,
        skip_until: &mut Option<i128>,
    ) -> Wait {
        loop {
            let cmd = if self.paused && *steps == 0 {
                if !self.flush() || !self.send_state() {
                    return Wait::Stop;
                }
                match self.cmds.recv() {
                    Ok(c) => Some(c),
                    Err(_) => return Wait::Stop,
                }
            } else {
                if skip_until.is_some_and(|s| tn < s) {
                    // Fast-forwarding to a seek target: no timing.
                    self.anchor = None;
                    return Wait::Emit;
                }
                *skip_until = None;
                if *steps > 0 {
                    return Wait::Emit;
                }
                let Speed::Factor(f) = self.speed else {
                    return Wait::Emit;
                };
                let (t0, w0) = *self.anchor.get_or_insert((tn, Instant::now()));
                let ahead_ns = ((tn - t0) as f64 / f).max(0.0);
                let due = w0 + Duration::from_nanos(ahead_ns.min(1e15) as u64);
                let now = Instant::now();
                if now >= due {
                    return Wait::Emit;
                }
                if self.last_flush.elapsed() >= BATCH_AGE && !self.flush() {
                    return Wait::Stop;
                }
                match self.cmds.recv_timeout((due - now).min(BATCH_AGE)) {
                    Ok(c) => Some(c),
                    Err(std_mpsc::RecvTimeoutError::Timeout) => None,
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => return Wait::Stop,
                }
            };
            if let Some(cmd) = cmd {
                if cmd == ReplayCmd::Step {
                    *steps += 1;
                }
                match self.command(cmd, pos) {
                    Flow::Go => {}
                    Flow::Stop => return Wait::Stop,
                    Flow::Restart(t) if t < pos => return Wait::Restart(t),
                    Flow::Restart(t) => *skip_until = Some(t),
                }
            }
        }
    }

    /// Plays the recording once from the start; fast-forwards (no timing)
    /// while flows are older than `skip_until`. Returns a time to restart
    /// from (a seek backwards), or None when done or the UI is gone.
    fn play(&mut self, mut skip_until: Option<i128>) -> Result<Option<i128>, String> {
        let input = self
            .rec
            .open()
            .map_err(|e| format!("cannot open the recording: {e}"))?;
        let mut reader = RecordingReader::new(input);
        let mut pos: i128 = i128::MIN;
        let mut steps: u32 = 0;
        loop {
            // Commands that arrived while flows were being sent.
            while let Ok(cmd) = self.cmds.try_recv() {
                if cmd == ReplayCmd::Step {
                    steps += 1;
                }
                match self.command(cmd, pos) {
                    Flow::Go => {}
                    Flow::Stop => return Ok(None),
                    Flow::Restart(t) if t < pos => return Ok(Some(t)),
                    Flow::Restart(t) => skip_until = Some(t),
                }
            }
            let Some(item) = reader.next() else { break };
            let resp = match item {
                Ok(r) => r,
                Err(e @ RecordingError::LineTooLong { .. }) => {
                    log::warn!("recording: {e}");
                    self.state.skipped = reader.stats().skipped;
                    continue;
                }
                Err(e) => return Err(format!("reading the recording: {e}")),
            };
            self.state.skipped = reader.stats().skipped;
            let t = match &resp.response_types {
                Some(ResponseTypes::Flow(f)) => f.time.or(resp.time),
                _ => resp.time,
            };
            if let Some(tn) = t.map(|t| row::ts_nanos(Some(&t))) {
                if self.state.first.is_none() {
                    self.state.first = t;
                }
                match self.wait_for(tn, pos, &mut steps, &mut skip_until) {
                    Wait::Emit => {}
                    Wait::Stop => return Ok(None),
                    Wait::Restart(t) => return Ok(Some(t)),
                }
                pos = pos.max(tn);
                self.state.position = t;
            }
            if let Some(ev) = to_event(*resp) {
                self.batch.push(ev);
                self.state.events += 1;
            }
            if steps > 0 {
                steps -= 1;
                self.anchor = None;
                if !self.flush() || !self.send_state() {
                    return Ok(None);
                }
            }
            if (self.batch.len() >= BATCH || self.last_flush.elapsed() >= BATCH_AGE)
                && !self.flush()
            {
                return Ok(None);
            }
        }
        self.state.skipped = reader.stats().skipped;
        self.state.done = true;
        if !self.flush() || !self.send_state() {
            return Ok(None);
        }
        if let Some(summary) = reader.stats().skipped_summary() {
            let _ = self.tx.blocking_send(Msg::Source(SourceMsg::Notice(format!(
                "recording: {summary}"
            ))));
        }
        // At the end: wait for a seek backwards (or the UI going away).
        loop {
            match self.cmds.recv() {
                Ok(ReplayCmd::SeekTo(t)) if t < pos && self.rec != Recording::Stdin => {
                    return Ok(Some(t));
                }
                Ok(ReplayCmd::SeekTo(_)) => {
                    let _ = self.tx.blocking_send(Msg::Source(SourceMsg::Notice(
                        "the end of the recording was reached".to_owned(),
                    )));
                }
                Ok(c) => {
                    if let Flow::Stop = self.command(c, pos) {
                        return Ok(None);
                    }
                }
                Err(_) => return Ok(None),
            }
        }
    }
}

/// Plays a recording until the UI goes away. Run on a blocking thread.
pub(crate) fn replay(
    rec: Recording,
    speed: Speed,
    tx: Sender<Msg>,
    cmds: std_mpsc::Receiver<ReplayCmd>,
) {
    let mut p = Player {
        rec,
        tx,
        cmds,
        speed,
        paused: false,
        anchor: None,
        state: ReplayState::default(),
        batch: Vec::new(),
        last_flush: Instant::now(),
        last_state: Instant::now(),
    };
    let mut skip = None;
    loop {
        match p.play(skip) {
            Ok(Some(t)) => {
                if p.rec == Recording::Stdin {
                    let _ = p.tx.blocking_send(Msg::Source(SourceMsg::Notice(
                        "cannot seek backwards in a recording read from stdin".to_owned(),
                    )));
                    return;
                }
                // Seek backwards: start again, fast-forwarding to t.
                if p.tx.blocking_send(Msg::Source(SourceMsg::Reset)).is_err() {
                    return;
                }
                p.state = ReplayState {
                    first: p.state.first,
                    ..Default::default()
                };
                p.anchor = None;
                p.batch.clear();
                skip = Some(t);
            }
            Ok(None) => return,
            Err(e) => {
                log::error!("{e}");
                let _ = p.tx.blocking_send(Msg::Source(SourceMsg::Failed(e)));
                return;
            }
        }
    }
}

/// Connects over TLS to the first candidate (`http://host:port` URIs, as
/// `server_candidates` makes them) that answers; failures go to `errors`.
pub(crate) async fn connect_tls(
    candidates: &[String],
    tls: tonic::transport::ClientTlsConfig,
    timeout: Duration,
    errors: &mut Vec<String>,
) -> Option<Channel> {
    for uri in candidates {
        let Some(rest) = uri.strip_prefix("http://") else {
            errors.push(format!("{uri}: TLS works over TCP only, not a unix socket"));
            continue;
        };
        let https = format!("https://{rest}");
        let endpoint = match tonic::transport::Endpoint::from_shared(https.clone())
            .and_then(|e| e.tls_config(tls.clone()))
        {
            Ok(e) => e.connect_timeout(timeout),
            Err(e) => {
                errors.push(format!("{https}: {}", holonet_agent::tls::root_cause(&e)));
                continue;
            }
        };
        match tokio::time::timeout(timeout, endpoint.connect()).await {
            Ok(Ok(channel)) => return Some(channel),
            Ok(Err(e)) => errors.push(format!(
                "{https}: {}",
                tls_hint(&holonet_agent::tls::root_cause(&e))
            )),
            Err(_) => errors.push(format!("{https}: no connection after {timeout:?}")),
        }
    }
    None
}

/// Connects to the first of `candidates` that answers, over TLS when `tls`
/// is given; the error says why each one failed. (`holonet observe` and
/// `holonet status --server` use it; the dashboard reports each attempt.)
pub(crate) async fn connect_first(
    candidates: &[String],
    tls: Option<tonic::transport::ClientTlsConfig>,
    timeout: Duration,
) -> Result<Channel, String> {
    let mut errors = Vec::new();
    if let Some(tls) = tls {
        return connect_tls(candidates, tls, timeout, &mut errors)
            .await
            .ok_or_else(|| errors.join("; "));
    }
    for uri in candidates {
        let endpoint = match Endpoint::from_shared(uri.clone()) {
            Ok(e) => e.connect_timeout(timeout),
            Err(e) => {
                errors.push(format!("{uri}: {}", chain(&e)));
                continue;
            }
        };
        match tokio::time::timeout(timeout, endpoint.connect()).await {
            Ok(Ok(channel)) => return Ok(channel),
            Ok(Err(e)) => errors.push(format!("{uri}: {}", chain(&e))),
            Err(_) => errors.push(format!("{uri}: no connection after {timeout:?}")),
        }
    }
    Err(errors.join("; "))
}

/// Adds what to check to a certificate error.
pub(crate) fn tls_hint(cause: &str) -> String {
    if cause.contains("UnknownIssuer") || cause.contains("certificate") {
        format!(
            "{cause} (check that --tls-ca-cert-files holds the CA that signed the server's \
             certificate, and --tls-server-name the name in it)"
        )
    } else {
        cause.to_string()
    }
}
