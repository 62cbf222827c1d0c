//! `--time-format`: the time layouts `hubble observe` prints flows with,
//! by the names it accepts (case-insensitive), always in UTC as hubble's
//! printer formats `Timestamp.AsTime()`.

use std::{fmt::Write as _, str::FromStr};

use holonet_proto::wkt::Timestamp;

/// A named time layout of `hubble observe --time-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeFormat {
    /// `Jan _2 15:04:05.000` (Go's `time.StampMilli`, the default).
    #[default]
    StampMilli,
    /// `2006-01-02`.
    YearMonthDay,
    /// `2006-01-02T15Z07:00`.
    YearMonthDayHour,
    /// `2006-01-02T15:04Z07:00`.
    YearMonthDayHourMinute,
    /// `2006-01-02T15:04:05Z07:00`.
    Rfc3339,
    /// RFC 3339 with up to 3 fractional digits, trailing zeros dropped.
    Rfc3339Milli,
    /// RFC 3339 with up to 6 fractional digits, trailing zeros dropped.
    Rfc3339Micro,
    /// RFC 3339 with up to 9 fractional digits, trailing zeros dropped.
    Rfc3339Nano,
    /// `Mon, 02 Jan 2006 15:04:05 -0700`.
    Rfc1123Z,
}

/// The names `--time-format` accepts, as hubble lists them.
pub const TIME_FORMAT_NAMES: [&str; 9] = [
    "YearMonthDay",
    "YearMonthDayHour",
    "YearMonthDayHourMinute",
    "StampMilli",
    "RFC3339",
    "RFC3339Milli",
    "RFC3339Micro",
    "RFC3339Nano",
    "RFC1123Z",
];

impl FromStr for TimeFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "stampmilli" => Self::StampMilli,
            "yearmonthday" => Self::YearMonthDay,
            "yearmonthdayhour" => Self::YearMonthDayHour,
            "yearmonthdayhourminute" => Self::YearMonthDayHourMinute,
            "rfc3339" => Self::Rfc3339,
            "rfc3339milli" => Self::Rfc3339Milli,
            "rfc3339micro" => Self::Rfc3339Micro,
            "rfc3339nano" => Self::Rfc3339Nano,
            "rfc1123z" => Self::Rfc1123Z,
            _ => {
                return Err(format!(
                    "unknown time format {s:?}: expected one of {}",
                    TIME_FORMAT_NAMES.join(", ")
                ));
            }
        })
    }
}

/// A timestamp broken down into UTC calendar fields.
struct Civil {
    year: i64,
    month: usize,
    day: i64,
    weekday: usize,
    hour: i64,
    minute: i64,
    second: i64,
    nanos: i32,
}

/// Valid timestamps (`timestamppb.IsValid`: years 1 to 9999, nanos in
/// range) as calendar fields.
fn civil(ts: Option<&Timestamp>) -> Option<Civil> {
    const MIN: i64 = -62_135_596_800;
    const MAX: i64 = 253_402_300_800;
    let ts = ts
        .filter(|t| t.seconds >= MIN && t.seconds < MAX && (0..1_000_000_000).contains(&t.nanos))?;
    let days = ts.seconds.div_euclid(86_400);
    let secs = ts.seconds.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Some(Civil {
        year,
        month: usize::try_from(month - 1).unwrap_or(0).min(11),
        day,
        // 1970-01-01 was a Thursday.
        weekday: usize::try_from((days + 4).rem_euclid(7)).unwrap_or(0),
        hour: secs / 3600,
        minute: secs % 3600 / 60,
        second: secs % 60,
        nanos: ts.nanos,
    })
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// Appends `ts` in `format`, or `N/A` for a missing or invalid timestamp,
/// as hubble's printer does.
pub fn write_time(out: &mut String, ts: Option<&Timestamp>, format: TimeFormat) {
    let Some(c) = civil(ts) else {
        out.push_str("N/A");
        return;
    };
    let date = |out: &mut String| {
        let _ = write!(out, "{:04}-{:02}-{:02}", c.year, c.month + 1, c.day);
    };
    // Go's `.999…`: up to `digits` digits, truncated, trailing zeros (and
    // the dot, when nothing is left) dropped.
    let fraction = |out: &mut String, digits: u32| {
        let scaled = c.nanos / 10_i32.pow(9 - digits);
        if scaled == 0 {
            return;
        }
        let text = format!(".{scaled:0width$}", width = digits as usize);
        out.push_str(text.trim_end_matches('0'));
    };
    match format {
        TimeFormat::StampMilli => {
            let _ = write!(
                out,
                "{} {:>2} {:02}:{:02}:{:02}.{:03}",
                MONTHS[c.month],
                c.day,
                c.hour,
                c.minute,
                c.second,
                c.nanos / 1_000_000
            );
        }
        TimeFormat::YearMonthDay => date(out),
        TimeFormat::YearMonthDayHour => {
            date(out);
            let _ = write!(out, "T{:02}Z", c.hour);
        }
        TimeFormat::YearMonthDayHourMinute => {
            date(out);
            let _ = write!(out, "T{:02}:{:02}Z", c.hour, c.minute);
        }
        TimeFormat::Rfc3339
        | TimeFormat::Rfc3339Milli
        | TimeFormat::Rfc3339Micro
        | TimeFormat::Rfc3339Nano => {
            date(out);
            let _ = write!(out, "T{:02}:{:02}:{:02}", c.hour, c.minute, c.second);
            match format {
                TimeFormat::Rfc3339Milli => fraction(out, 3),
                TimeFormat::Rfc3339Micro => fraction(out, 6),
                TimeFormat::Rfc3339Nano => fraction(out, 9),
                _ => {}
            }
            out.push('Z');
        }
        TimeFormat::Rfc1123Z => {
            let _ = write!(
                out,
                "{}, {:02} {} {:04} {:02}:{:02}:{:02} +0000",
                WEEKDAYS[c.weekday], c.day, MONTHS[c.month], c.year, c.hour, c.minute, c.second
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(seconds: i64, nanos: i32, format: TimeFormat) -> String {
        let mut s = String::new();
        write_time(&mut s, Some(&Timestamp { seconds, nanos }), format);
        s
    }

    /// 2024-03-02T09:41:07.512Z, a Saturday.
    const T: i64 = 1_709_372_467;

    #[test]
    fn every_layout_as_go_formats_it_in_utc() {
        let ns = 512_000_000;
        assert_eq!(show(T, ns, TimeFormat::StampMilli), "Mar  2 09:41:07.512");
        assert_eq!(show(T, ns, TimeFormat::YearMonthDay), "2024-03-02");
        assert_eq!(show(T, ns, TimeFormat::YearMonthDayHour), "2024-03-02T09Z");
        assert_eq!(
            show(T, ns, TimeFormat::YearMonthDayHourMinute),
            "2024-03-02T09:41Z"
        );
        assert_eq!(show(T, ns, TimeFormat::Rfc3339), "2024-03-02T09:41:07Z");
        assert_eq!(
            show(T, ns, TimeFormat::Rfc3339Milli),
            "2024-03-02T09:41:07.512Z"
        );
        assert_eq!(
            show(T, ns, TimeFormat::Rfc3339Nano),
            "2024-03-02T09:41:07.512Z"
        );
        assert_eq!(
            show(T, ns, TimeFormat::Rfc1123Z),
            "Sat, 02 Mar 2024 09:41:07 +0000"
        );
    }

    #[test]
    fn fractions_are_truncated_and_lose_trailing_zeros() {
        assert_eq!(
            show(T, 500_000_000, TimeFormat::Rfc3339Milli),
            "2024-03-02T09:41:07.5Z"
        );
        assert_eq!(show(T, 0, TimeFormat::Rfc3339Nano), "2024-03-02T09:41:07Z");
        assert_eq!(
            show(T, 123_456_789, TimeFormat::Rfc3339Micro),
            "2024-03-02T09:41:07.123456Z"
        );
        assert_eq!(
            show(T, 999_999, TimeFormat::Rfc3339Milli),
            "2024-03-02T09:41:07Z",
            "below a millisecond"
        );
        assert_eq!(
            show(T, 120, TimeFormat::Rfc3339Nano),
            "2024-03-02T09:41:07.00000012Z"
        );
    }

    #[test]
    fn invalid_times_are_na_and_extremes_are_exact() {
        let mut s = String::new();
        write_time(&mut s, None, TimeFormat::Rfc3339);
        assert_eq!(s, "N/A");
        assert_eq!(show(T, -1, TimeFormat::Rfc3339), "N/A");
        assert_eq!(show(253_402_300_800, 0, TimeFormat::Rfc3339), "N/A");
        assert_eq!(
            show(-62_135_596_800, 0, TimeFormat::Rfc1123Z),
            "Mon, 01 Jan 0001 00:00:00 +0000"
        );
        assert_eq!(
            show(253_402_300_799, 0, TimeFormat::Rfc3339),
            "9999-12-31T23:59:59Z"
        );
        assert_eq!(
            show(0, 0, TimeFormat::Rfc1123Z),
            "Thu, 01 Jan 1970 00:00:00 +0000"
        );
    }

    #[test]
    fn names_are_case_insensitive_and_unknown_ones_are_refused() {
        assert_eq!("rfc3339".parse(), Ok(TimeFormat::Rfc3339));
        assert_eq!("StampMilli".parse(), Ok(TimeFormat::StampMilli));
        for name in TIME_FORMAT_NAMES {
            assert!(name.parse::<TimeFormat>().is_ok(), "{name}");
        }
        let err = "Kitchen".parse::<TimeFormat>().unwrap_err();
        assert!(err.contains("RFC3339Milli"), "{err}");
    }
}
