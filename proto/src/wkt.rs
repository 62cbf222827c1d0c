//! `google.protobuf.Timestamp` with protojson serde in Go's exact form.
//!
//! pbjson-types writes timestamps as `...+00:00`; Hubble (Go protojson)
//! writes them Z-normalised with 0, 3, 6 or 9 fractional digits
//! (`2025-03-12T09:41:07.516348112Z`). This type keeps the wire format of
//! the well-known type and writes JSON the way Hubble does.

use chrono::{DateTime, SecondsFormat, Utc};

/// A point in time: seconds and nanoseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, prost::Message)]
pub struct Timestamp {
    /// Seconds since 1970-01-01T00:00:00Z.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Non-negative fraction of a second, 0..=999_999_999.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl prost::Name for Timestamp {
    const NAME: &'static str = "Timestamp";
    const PACKAGE: &'static str = "google.protobuf";
}

impl Timestamp {
    /// As a chrono time; `None` when out of chrono's range or malformed.
    pub fn to_datetime(self) -> Option<DateTime<Utc>> {
        let nanos = u32::try_from(self.nanos)
            .ok()
            .filter(|n| *n < 1_000_000_000)?;
        DateTime::from_timestamp(self.seconds, nanos)
    }

    /// Nanoseconds since the epoch, saturating.
    pub fn as_nanos(self) -> i128 {
        i128::from(self.seconds) * 1_000_000_000 + i128::from(self.nanos)
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Self {
            seconds: t.timestamp(),
            nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
        }
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let t = self
            .to_datetime()
            .ok_or_else(|| serde::ser::Error::custom("timestamp out of range"))?;
        serializer.serialize_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        let t = DateTime::parse_from_rfc3339(&s)
            .map_err(|e| serde::de::Error::custom(format!("timestamp `{s}`: {e}")))?;
        Ok(t.with_timezone(&Utc).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(ts: Timestamp) -> String {
        serde_json::to_string(&ts).unwrap()
    }

    #[test]
    fn fractions_use_0_3_6_or_9_digits_and_z() {
        assert_eq!(
            json(Timestamp {
                seconds: 0,
                nanos: 0
            }),
            r#""1970-01-01T00:00:00Z""#
        );
        assert_eq!(
            json(Timestamp {
                seconds: 0,
                nanos: 500_000_000
            }),
            r#""1970-01-01T00:00:00.500Z""#
        );
        assert_eq!(
            json(Timestamp {
                seconds: 0,
                nanos: 1_000
            }),
            r#""1970-01-01T00:00:00.000001Z""#
        );
        assert_eq!(
            json(Timestamp {
                seconds: 0,
                nanos: 1
            }),
            r#""1970-01-01T00:00:00.000000001Z""#
        );
    }

    #[test]
    fn offsets_are_normalised_to_utc() {
        let t: Timestamp = serde_json::from_str(r#""2025-03-12T10:41:07.5+01:00""#).unwrap();
        assert_eq!(json(t), r#""2025-03-12T09:41:07.500Z""#);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(serde_json::from_str::<Timestamp>(r#""yesterday""#).is_err());
        let bad = Timestamp {
            seconds: i64::MAX,
            nanos: -1,
        };
        assert!(serde_json::to_string(&bad).is_err());
    }
}
