//! `--since` / `--until` values: a Go duration back from now (`5m`,
//! `1h30m`, `1.5h`, `300ms`) or an absolute time (RFC 3339
//! `2025-03-12T09:41:07Z`, `2025-03-12T09:41:07.5+01:00`, or without a zone
//! `2025-03-12T09:41:07`, `2025-03-12T09:41`, `2025-03-12 09:41:07`,
//! `2025-03-12`, read as UTC), like hubble's `hubtime.FromString`.
//!
//! Pure: the caller passes "now".

use holonet_proto::wkt::Timestamp;

/// A time value could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid time {input:?}: expected a duration like 5m or 1h30m, or a time like 2025-03-12T09:41:07Z"
)]
pub struct TimeError {
    /// The value as given.
    pub input: String,
}

/// Parses a Go duration (`1h30m`, `1.5s`, `300ms`) into nanoseconds.
pub fn parse_go_duration(s: &str) -> Option<i128> {
    let s = s.trim();
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        if num_len == 0 {
            return None;
        }
        let num: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .bytes()
            .take_while(|b| !b.is_ascii_digit() && *b != b'.')
            .count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += num * scale;
    }
    if !total.is_finite() || total > 9.2e18 {
        return None;
    }
    let ns = total as i128;
    Some(if neg { -ns } else { ns })
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn num(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses an absolute time in one of the accepted layouts.
fn parse_absolute(s: &str) -> Option<Timestamp> {
    let (date, time) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut parts = date.split('-');
    let (y, m, d) = (
        num(parts.next()?)?,
        num(parts.next()?)?,
        num(parts.next()?)?,
    );
    if parts.next().is_some()
        || date.len() != 10
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&d)
    {
        return None;
    }
    let mut secs = days_from_civil(y, m, d) * 86_400;
    let mut nanos = 0i64;
    if let Some(time) = time {
        // Split off the zone: Z, +hh:mm or -hh:mm.
        let (clock, offset) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
            (c, 0)
        } else if let Some(i) = time.rfind(['+', '-']) {
            let z = &time[i + 1..];
            let (zh, zm) = z.split_once(':')?;
            let off = num(zh)? * 3600 + num(zm)? * 60;
            (&time[..i], if &time[i..=i] == "-" { -off } else { off })
        } else {
            (time, 0)
        };
        let (hms, frac) = match clock.split_once('.') {
            Some((a, f)) => (a, Some(f)),
            None => (clock, None),
        };
        let mut f = hms.split(':');
        let h = num(f.next()?)?;
        let mi = num(f.next()?)?;
        let sec = match f.next() {
            Some(x) => num(x)?,
            None => 0,
        };
        if f.next().is_some() || h > 23 || mi > 59 || sec > 60 {
            return None;
        }
        if let Some(frac) = frac {
            if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            nanos = num(frac)? * 10i64.pow(9 - u32::try_from(frac.len()).ok()?);
        }
        secs += h * 3600 + mi * 60 + sec - offset;
    }
    Some(Timestamp {
        seconds: secs,
        nanos: i32::try_from(nanos).ok()?,
    })
}

/// Parses a `--since`/`--until` value relative to `now`.
pub fn parse_time(input: &str, now: Timestamp) -> Result<Timestamp, TimeError> {
    let err = || TimeError {
        input: input.to_owned(),
    };
    let s = input.trim();
    if let Some(ns) = parse_go_duration(s) {
        let t = now.as_nanos() - ns;
        let seconds = i64::try_from(t.div_euclid(1_000_000_000)).map_err(|_| err())?;
        let nanos = i32::try_from(t.rem_euclid(1_000_000_000)).map_err(|_| err())?;
        return Ok(Timestamp { seconds, nanos });
    }
    parse_absolute(s).ok_or_else(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp {
        seconds: 1_741_772_467,
        nanos: 500_000_000,
    };

    #[test]
    fn durations_count_back_from_now() {
        assert_eq!(parse_time("5m", NOW).unwrap().seconds, NOW.seconds - 300);
        assert_eq!(
            parse_time("1h30m", NOW).unwrap().seconds,
            NOW.seconds - 5400
        );
        let t = parse_time("1.5s", NOW).unwrap();
        assert_eq!((t.seconds, t.nanos), (NOW.seconds - 1, 0));
        assert_eq!(parse_time("300ms", NOW).unwrap().nanos, 200_000_000);
        assert_eq!(parse_go_duration("0"), Some(0));
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration("5x"), None);
    }

    #[test]
    fn absolute_times_in_several_layouts() {
        let want = 1_741_772_467;
        for s in [
            "2025-03-12T09:41:07Z",
            "2025-03-12T10:41:07+01:00",
            "2025-03-12T05:41:07-04:00",
            "2025-03-12T09:41:07",
            "2025-03-12 09:41:07",
        ] {
            assert_eq!(parse_time(s, NOW).unwrap().seconds, want, "{s}");
        }
        assert_eq!(
            parse_time("2025-03-12T09:41:07.25Z", NOW).unwrap().nanos,
            250_000_000
        );
        assert_eq!(
            parse_time("2025-03-12T09:41", NOW).unwrap().seconds,
            want - 7
        );
        assert_eq!(
            parse_time("2025-03-12", NOW).unwrap().seconds,
            want - 9 * 3600 - 41 * 60 - 7
        );
        for bad in [
            "yesterday",
            "2025-13-01",
            "2025-03-12T25:00:00Z",
            "2025-03-12T09:41:07.Z",
            "",
            "12:00",
        ] {
            assert!(parse_time(bad, NOW).is_err(), "{bad}");
        }
    }
}
