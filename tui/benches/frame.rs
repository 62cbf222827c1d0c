//! Frame-render benchmark of the dashboard (docs/benchmarks.md, "TUI").
//!
//! The scenario of the issue: 100,000 flows buffered and 20,000 flows/s
//! arriving, drawn at 30 frames/s, so each frame ingests ~667 flows and
//! renders. Measured: rendering alone (120x40 and 80x24, with and without
//! a filter), ingesting one frame's flows, the whole per-frame work, a key
//! press (update + render), and re-filtering the whole buffer once. The
//! resident memory of a full 100,000-flow buffer is printed before the
//! benchmarks run.
//!
//! Run: `cargo bench -p holonet --bench frame`.

#![allow(missing_docs)]

#[path = "../src/ui/mod.rs"]
#[allow(dead_code, unreachable_pub, unused_imports, clippy::all)]
mod ui;

// The allocator the `holonet` binary uses, so the figures are its own.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use holonet_flows::recording::{Line, parse_line};
use holonet_proto::{flow::Flow, observer::get_flows_response::ResponseTypes};
use ratatui::{buffer::Buffer, layout::Rect};
use ui::{
    app::{App, Connection, Event, Msg, Options, Speed},
    filter,
    theme::Theme,
    view,
};

const SEED: &str = include_str!("../tests/data/seed.jsonl");
const BUFFERED: usize = 100_000;
const PER_FRAME: usize = 20_000 / 30;

fn seed() -> Vec<Flow> {
    SEED.lines()
        .filter_map(|l| match parse_line(l.as_bytes()) {
            Ok(Line::Event(r)) => match r.response_types {
                Some(ResponseTypes::Flow(f)) => Some(f),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// `n` flows: the seed story repeated, shifted one minute per round.
fn flows(n: usize, round0: i64) -> Vec<Flow> {
    let seed = seed();
    (0..n)
        .map(|i| {
            let mut f = seed[i % seed.len()].clone();
            let round = round0 + i64::try_from(i / seed.len()).unwrap_or(0);
            if let Some(t) = &mut f.time {
                t.seconds += 60 * round;
            }
            f
        })
        .collect()
}

fn events(v: &[Flow]) -> Vec<Event> {
    v.iter()
        .cloned()
        .map(|f| Event::Flow(Box::new(f)))
        .collect()
}

fn app(filter_text: &str) -> App {
    app_with(filter_text, BUFFERED)
}

fn app_with(filter_text: &str, n: usize) -> App {
    let mut app = App::new(
        Options {
            capacity: BUFFERED,
            theme: Theme { color: true },
            policy: None,
            log_path: String::new(),
            replay_speed: Some(Speed::Factor(1.0)),
            ask_agent: false,
        },
        filter::parse(filter_text).expect("filter"),
        Connection::Live("bench".to_owned()),
    );
    // Generated chunk by chunk so the figure below is the buffer's own.
    let seed_len = seed().len();
    let mut done = 0;
    while done < n {
        let k = (n - done).min(seed_len * 10);
        let round = i64::try_from(done / seed_len).unwrap_or(0);
        app.update(Msg::Events(events(&flows(k, round))));
        done += k;
    }
    app
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn memory_report() {
    let before = rss_kib();
    let mut a = app("");
    let full = rss_kib();
    // Another 300,000 flows through the full buffer: memory must not grow.
    let more = flows(PER_FRAME, 10_000);
    for _ in 0..450 {
        a.update(Msg::Events(events(&more)));
    }
    let after = rss_kib();
    println!(
        "size_of::<Flow>() = {} bytes, Box<Flow> entry + heap strings of a seed flow follow",
        std::mem::size_of::<Flow>()
    );
    println!(
        "memory: RSS {} MiB before, {} MiB with {} flows buffered ({} bytes/flow), {} MiB after 300,000 more (buffer {} flows, {} evicted)",
        before / 1024,
        full / 1024,
        BUFFERED,
        (full.saturating_sub(before)) * 1024 / BUFFERED as u64,
        after / 1024,
        a.store.len(),
        a.store.evicted()
    );
}

fn render(app: &App, buf: &mut Buffer) {
    buf.reset();
    view::render(app, buf.area, buf);
}

fn bench(c: &mut Criterion) {
    memory_report();
    for (name, filter_text) in [("all", ""), ("org=payer", "org=payer")] {
        let mut a = app(filter_text);
        for (w, h) in [(120u16, 40u16), (80, 24)] {
            a.update(Msg::Resize(w, h));
            let mut buf = Buffer::empty(Rect::new(0, 0, w, h));
            c.bench_function(
                &format!("render {w}x{h}, 100k buffered, filter {name}"),
                |b| b.iter(|| render(black_box(&a), &mut buf)),
            );
        }
    }
    let mut a = app("");
    a.update(Msg::Resize(120, 40));
    let batch = flows(PER_FRAME, 5_000);
    c.bench_function(
        "ingest 667 flows (one frame at 20k/s), 100k buffered",
        |b| {
            b.iter_batched(
                || events(&batch),
                |ev| a.update(Msg::Events(ev)),
                BatchSize::SmallInput,
            )
        },
    );
    let mut buf = Buffer::empty(Rect::new(0, 0, 120, 40));
    c.bench_function("frame at 20k flows/s: ingest 667 + render 120x40", |b| {
        b.iter_batched(
            || events(&batch),
            |ev| {
                a.update(Msg::Events(ev));
                render(&a, &mut buf);
            },
            BatchSize::SmallInput,
        )
    });
    c.bench_function("key press (k) + render 120x40", |b| {
        b.iter(|| {
            a.update(Msg::Key(KeyEvent::new(
                KeyCode::Char('k'),
                KeyModifiers::NONE,
            )));
            render(&a, &mut buf);
        })
    });
    let payer = filter::parse("org=payer --verdict DROPPED").expect("filter");
    let mut group = c.benchmark_group("refilter");
    group.sample_size(10);
    group.bench_function("apply a new filter to 100k buffered flows", |b| {
        b.iter(|| a.apply_filter(payer.clone()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
