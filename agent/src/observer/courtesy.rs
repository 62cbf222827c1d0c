//! Keeping the agent's work from holding up the workload it observes: when
//! to yield the CPU, and whether the node has CPU to spare.

use std::time::{Duration, Instant};

/// Events converted between two looks at the clock.
pub(super) const CHUNK: usize = 8;

/// How long the pipeline converts before it offers the CPU to other tasks.
const YIELD_AFTER: Duration = Duration::from_micros(10);

/// A yield that took longer than this gave the CPU to a task that needed
/// more than a moment: the CPU is contended, stepping aside again would only
/// add switches.
const CONTENDED: Duration = Duration::from_micros(200);

/// Below this share of idle CPU time the node counts as saturated.
const SATURATED_IDLE_SHARE: f64 = 0.10;

/// How often the node's idle CPU time is read.
const LOAD_REFRESH: Duration = Duration::from_millis(250);

/// Keeps a batch's conversion from holding a CPU in front of the workload
/// it observes.
///
/// The scheduler lets a running task finish its slice (near a millisecond)
/// before a task woken on the same CPU, so a request of the workload could
/// wait for a whole batch; that showed in its tail latency (under light
/// load, p99 three times what it was without the agent, even with batches
/// of a millisecond's events). Every `YIELD_AFTER` of work the pipeline
/// yields: a woken request runs at once, and an idle CPU costs only the
/// system call. When a yield shows the CPU contended (the other task ran
/// for `CONTENDED`), the rest of the batch runs without stepping aside.
/// On a saturated node (see [`NodeLoad`]) it does not yield at all, and the
/// reader drains larger batches: there, yields and wake-ups only cost the
/// workload throughput (b/a fell from about 0.8 to 0.75 with them in the
/// wrk benchmark).
pub(super) struct CpuCourtesy {
    running_since: Instant,
    stepping_aside: bool,
}

impl CpuCourtesy {
    pub(super) fn new() -> Self {
        Self {
            running_since: Instant::now(),
            stepping_aside: true,
        }
    }

    /// Called as a batch's conversion starts.
    pub(super) fn start_batch(&mut self, node_saturated: bool) {
        self.running_since = Instant::now();
        self.stepping_aside = !node_saturated;
    }

    /// Yields the CPU when the pipeline has converted for `YIELD_AFTER`
    /// since it last did, unless the CPU showed itself contended.
    pub(super) fn step_aside_if_due(&mut self) {
        if !self.due() {
            return;
        }
        let before = Instant::now();
        std::thread::yield_now();
        let after = Instant::now();
        self.stepped_aside(after - before, after);
    }

    fn due(&self) -> bool {
        self.stepping_aside && self.running_since.elapsed() >= YIELD_AFTER
    }

    /// Notes a yield that took `took` and ended at `at`.
    fn stepped_aside(&mut self, took: Duration, at: Instant) {
        self.stepping_aside = took < CONTENDED;
        self.running_since = at;
    }
}

/// Whether the node's CPUs have idle time, from `/proc/stat`, read at most
/// every `LOAD_REFRESH`. When it cannot be read the node counts as not
/// saturated (the agent stays courteous).
pub(super) struct NodeLoad {
    last: Option<CpuTimes>,
    read_at: Option<Instant>,
    saturated: bool,
}

/// Idle and total CPU time of all CPUs, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CpuTimes {
    idle: u64,
    total: u64,
}

impl NodeLoad {
    pub(super) fn new() -> Self {
        Self {
            last: None,
            read_at: None,
            saturated: false,
        }
    }

    /// Is the node saturated (idle share below `SATURATED_IDLE_SHARE` over
    /// the last `LOAD_REFRESH`)?
    pub(super) fn saturated(&mut self) -> bool {
        if self.read_at.is_none_or(|at| at.elapsed() >= LOAD_REFRESH) {
            self.read_at = Some(Instant::now());
            let now = std::fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|stat| cpu_times(&stat));
            self.saturated = match (self.last, now) {
                (Some(before), Some(now)) => {
                    idle_share(before, now).is_some_and(|share| share < SATURATED_IDLE_SHARE)
                }
                _ => false,
            };
            self.last = now;
        }
        self.saturated
    }
}

/// The `cpu` line of `/proc/stat`: idle (idle + iowait) and the total of
/// user, nice, system, idle, iowait, irq, softirq and steal (guest time is
/// already in user).
fn cpu_times(stat: &str) -> Option<CpuTimes> {
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    if fields.len() < 5 {
        return None;
    }
    Some(CpuTimes {
        idle: fields[3] + fields[4],
        total: fields.iter().sum(),
    })
}

/// The share of CPU time spent idle between two readings, if any passed.
fn idle_share(before: CpuTimes, now: CpuTimes) -> Option<f64> {
    let total = now.total.checked_sub(before.total).filter(|t| *t > 0)?;
    let idle = now.idle.checked_sub(before.idle)?;
    Some(idle as f64 / total as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pipeline_steps_aside_after_a_stretch_of_work_until_the_cpu_is_contended() {
        let mut courtesy = CpuCourtesy::new();
        courtesy.start_batch(false);
        let a_while_ago = Instant::now() - 10 * YIELD_AFTER;

        // A quick yield (nobody waited, or a request ran for a moment):
        // the next stretch of work ends with a yield again.
        courtesy.stepped_aside(Duration::from_micros(5), a_while_ago);
        assert!(courtesy.due(), "due again once YIELD_AFTER has passed");
        courtesy.stepped_aside(Duration::from_micros(5), Instant::now() + YIELD_AFTER);
        assert!(!courtesy.due(), "not due right after a yield");

        // A yield that gave the CPU away for long: the rest of the batch
        // runs without stepping aside; the next batch is courteous again.
        courtesy.stepped_aside(CONTENDED, a_while_ago);
        assert!(!courtesy.due(), "contended: no more yields in this batch");
        courtesy.start_batch(false);
        courtesy.running_since = a_while_ago;
        assert!(courtesy.due(), "each batch starts courteous");

        // On a saturated node it never yields.
        courtesy.start_batch(true);
        courtesy.running_since = a_while_ago;
        assert!(!courtesy.due(), "no yields on a saturated node");
    }

    #[test]
    fn the_idle_share_comes_from_the_cpu_line_of_proc_stat() {
        let before = "cpu  100 5 50 800 20 3 2 10 7 0\ncpu0 50 2 25 400 10 1 1 5 3 0\nintr 1\n";
        let after = "cpu  190 5 60 802 20 3 2 10 9 0\ncpu0 95 2 30 401 10 1 1 5 4 0\n";
        let before = cpu_times(before).expect("a cpu line");
        assert_eq!(
            before,
            CpuTimes {
                idle: 820,
                total: 990
            },
            "guest time not counted twice"
        );
        let after = cpu_times(after).expect("a cpu line");
        let share = idle_share(before, after).expect("time passed");
        assert!((share - 2.0 / 102.0).abs() < 1e-9, "{share}");
        assert!(share < SATURATED_IDLE_SHARE);

        assert_eq!(idle_share(after, after), None, "no time passed");
        assert_eq!(cpu_times("cpu0 1 2 3 4 5\n"), None, "no aggregate line");
        assert_eq!(
            cpu_times("cpu  1 x 3 4 5\n"),
            None,
            "a field that is not a number"
        );
        assert_eq!(cpu_times("cpu  1 2 3\n"), None, "too few fields");
    }
}
