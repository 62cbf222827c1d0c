//! Kernel timestamps to wall-clock time.
//!
//! The probe stamps events with `bpf_ktime_get_ns()`, which is
//! `CLOCK_MONOTONIC`. Flows are shown with wall-clock times, so the agent
//! measures the offset between the two clocks once and adds it.

use chrono::{DateTime, Utc};
use nix::time::{ClockId, clock_gettime};

/// The offset between `CLOCK_REALTIME` and `CLOCK_MONOTONIC`, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonotonicClock {
    realtime_minus_monotonic_ns: i128,
}

fn now_ns(clock: ClockId) -> i128 {
    clock_gettime(clock).map_or(0, |ts| {
        i128::from(ts.tv_sec()) * 1_000_000_000 + i128::from(ts.tv_nsec())
    })
}

impl MonotonicClock {
    /// Measures the offset now. Reading the monotonic clock on both sides of
    /// the realtime read and taking the midpoint halves the error.
    pub fn measure() -> Self {
        let before = now_ns(ClockId::CLOCK_MONOTONIC);
        let real = now_ns(ClockId::CLOCK_REALTIME);
        let after = now_ns(ClockId::CLOCK_MONOTONIC);
        Self {
            realtime_minus_monotonic_ns: real - (before + after) / 2,
        }
    }

    /// A clock with a known offset, for tests and replays.
    pub const fn with_offset_ns(realtime_minus_monotonic_ns: i128) -> Self {
        Self {
            realtime_minus_monotonic_ns,
        }
    }

    /// The wall-clock time of a `bpf_ktime_get_ns()` value.
    pub fn wall_time(&self, ktime_ns: u64) -> DateTime<Utc> {
        let ns = i128::from(ktime_ns) + self.realtime_minus_monotonic_ns;
        let ns = i64::try_from(ns).unwrap_or(i64::MAX);
        DateTime::from_timestamp_nanos(ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_time_adds_the_offset() {
        let clock = MonotonicClock::with_offset_ns(1_700_000_000_000_000_000);
        let t = clock.wall_time(1_500_000_000);
        assert_eq!(t.timestamp(), 1_700_000_001);
        assert_eq!(t.timestamp_subsec_nanos(), 500_000_000);
    }

    #[test]
    fn measured_offset_puts_now_near_now() {
        let clock = MonotonicClock::measure();
        let mono = now_ns(ClockId::CLOCK_MONOTONIC);
        let wall = clock.wall_time(u64::try_from(mono).expect("positive"));
        let drift = (Utc::now() - wall).num_milliseconds().abs();
        assert!(drift < 1000, "converted time is {drift} ms away from now");
    }
}
