//! Human durations ("250ms", "10s", "1h30m", ISO 8601 "PT10S") for the API,
//! the CLI and the configuration file, and the one range every duration from
//! outside must fit ([`MAX`]), so that no arithmetic on it can overflow.

use jiff::{SignedDuration, Timestamp};
use std::time::Duration;

/// The longest duration errand accepts anywhere (36500 days, about 100
/// years): far beyond any useful delay or timeout, and small enough that
/// `now + d` fits every clock and database column.
pub const MAX: Duration = Duration::from_secs(36_500 * 24 * 3600);

/// [`MAX`] as written in messages.
pub const MAX_TEXT: &str = "36500d (100 years)";

/// A duration string that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (examples: \"500ms\", \"10s\", \"5m\", \"1h30m\")")]
pub struct BadDuration {
    /// The text as given.
    pub input: String,
    /// Why it was refused.
    pub reason: String,
}

/// Parses a non-negative duration such as "10s", "1h 30m" or "PT10S".
pub fn parse(input: &str) -> Result<Duration, BadDuration> {
    let bad = |reason: String| BadDuration {
        input: input.to_string(),
        reason,
    };
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(bad("empty".into()));
    }
    // A bare number means seconds: the common case in shell scripts.
    if let Ok(secs) = trimmed.parse::<f64>() {
        return from_secs(secs).map_err(bad);
    }
    // A Span (not a SignedDuration) so that retention can say "7d"; a day
    // is taken as 24 hours, which is what an operator means here.
    let span: jiff::Span = trimmed.parse().map_err(|e: jiff::Error| {
        // Well formed but with numbers too large for jiff: say the limit
        // rather than jiff's internal one.
        match with_small_numbers(trimmed).parse::<jiff::Span>() {
            Ok(shape) if shape.is_negative() => bad("must not be negative".into()),
            Ok(_) => bad(format!("must be at most {MAX_TEXT}")),
            Err(_) => bad(e.to_string()),
        }
    })?;
    if span.get_years() != 0 || span.get_months() != 0 {
        return Err(bad(
            "months and years vary in length: write days instead (e.g. \"30d\")".into(),
        ));
    }
    let signed = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|e| bad(e.to_string()))?;
    let d = Duration::try_from(signed).map_err(|_| bad("must not be negative".into()))?;
    in_range(d).map_err(bad)
}

/// `text` with every run of digits replaced by "1": the same shape, small.
fn with_small_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_digits = false;
    for c in text.chars() {
        match (c.is_ascii_digit(), in_digits) {
            (true, false) => out.push('1'),
            (true, true) => {}
            (false, _) => out.push(c),
        }
        in_digits = c.is_ascii_digit();
    }
    out
}

/// A number of seconds as a duration, refused when negative, not a number,
/// or longer than [`MAX`].
pub fn from_secs(secs: f64) -> Result<Duration, String> {
    if secs.is_nan() || secs < 0.0 {
        return Err("must be a non-negative number of seconds".into());
    }
    if secs > MAX.as_secs_f64() {
        return Err(format!("must be at most {MAX_TEXT}"));
    }
    // Within [0, MAX] the conversion cannot fail; stay panic-free anyway.
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

/// `d` when it is at most [`MAX`].
pub fn in_range(d: Duration) -> Result<Duration, String> {
    if d > MAX {
        return Err(format!("must be at most {MAX_TEXT}, got {}", format(d)));
    }
    Ok(d)
}

/// `t + d`, or `None` past the end of representable time. Every "now plus
/// a duration from outside" goes through here rather than `+`, which panics.
pub fn after(t: Timestamp, d: Duration) -> Option<Timestamp> {
    t.checked_add(SignedDuration::try_from(d).ok()?).ok()
}

/// Formats a duration the way [`parse`] reads it back ("1m 30s").
pub fn format(d: Duration) -> String {
    match jiff::SignedDuration::try_from(d) {
        Ok(sd) => format!("{sd:#}"),
        Err(_) => format!("{}s", d.as_secs()),
    }
}

/// Serde helpers for `Duration` fields written as human strings or seconds.
pub mod serde_human {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use std::time::Duration;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(f64),
        Text(String),
    }

    /// Reads "10s", "1h", or a number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Secs(s) => super::from_secs(s).map_err(|reason| {
                // 1e300 reads better than its 301 digits.
                let s = if s.abs() >= 1e15 {
                    format!("{s:e}")
                } else {
                    s.to_string()
                };
                D::Error::custom(format!("invalid duration {s}: {reason}"))
            }),
            Raw::Text(t) => super::parse(&t).map_err(D::Error::custom),
        }
    }

    /// Writes the human form.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(*d))
    }

    /// The same for `Option<Duration>`.
    pub mod option {
        use super::*;

        /// Reads an optional duration.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            #[derive(Deserialize)]
            struct Wrap(#[serde(deserialize_with = "super::deserialize")] Duration);
            Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
        }

        /// Writes an optional duration.
        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_common_forms() {
        assert_eq!(parse("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("PT2M").unwrap(), Duration::from_secs(120));
        assert_eq!(parse("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("7d").unwrap(), Duration::from_secs(7 * 86400));
        assert_eq!(parse("1w").unwrap(), Duration::from_secs(7 * 86400));
    }

    #[test]
    fn refuses_garbage_and_negatives() {
        assert!(parse("soon").is_err());
        assert!(parse("").is_err());
        assert!(parse("-5s").is_err());
        assert!(parse("-1").is_err());
    }

    #[test]
    fn refuses_beyond_max_naming_the_range() {
        for input in [
            "1e20",
            "1e300",
            "9999999999999d",
            "36501d",
            "3153600001",
            "PT876601H",
        ] {
            let err = parse(input).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!(
                    "invalid duration {input:?}: must be at most 36500d (100 years)"
                )),
                "{input}: {err}"
            );
        }
        let e = parse("1e20").unwrap_err().to_string();
        assert!(
            e.starts_with("invalid duration \"1e20\": must be at most 36500d (100 years)"),
            "{e}"
        );
        let e = serde_json::from_value::<Secs>(serde_json::json!({"d": 1e20})).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid duration 1e20: must be at most 36500d (100 years)"),
            "{e}"
        );
        for input in ["9999999999999d", "99999999999h", "PT99999999999999999H"] {
            let e = parse(input).unwrap_err().to_string();
            assert!(
                e.contains("must be at most 36500d (100 years)"),
                "{input}: {e}"
            );
        }
        let e = parse("1y").unwrap_err().to_string();
        assert!(e.contains("write days instead"), "{e}");
        let e = parse("-9999999999999d").unwrap_err().to_string();
        assert!(e.contains("must not be negative"), "{e}");
        for input in ["NaN", "inf", "-inf", "-1", "-0.5s"] {
            assert!(parse(input).is_err(), "{input}");
        }
        assert_eq!(parse("36500d").unwrap(), MAX);
        assert_eq!(parse("3153600000").unwrap(), MAX);
    }

    #[derive(serde::Deserialize, Debug)]
    struct Secs {
        #[serde(with = "serde_human")]
        #[allow(dead_code)]
        d: Duration,
    }

    #[test]
    fn serde_refuses_beyond_max() {
        for v in [
            serde_json::json!(1e20),
            serde_json::json!(-1),
            serde_json::json!("1e300"),
        ] {
            let err = serde_json::from_value::<Secs>(serde_json::json!({ "d": v })).unwrap_err();
            assert!(err.to_string().contains("invalid duration"), "{err}");
        }
        assert!(serde_json::from_value::<Secs>(serde_json::json!({"d": u64::MAX})).is_err());
    }

    #[test]
    fn after_is_none_past_the_end_of_time() {
        assert_eq!(after(Timestamp::MAX, Duration::from_secs(1)), None);
        assert_eq!(after(Timestamp::UNIX_EPOCH, Duration::MAX), None);
        assert!(after(Timestamp::now(), MAX).is_some());
    }

    #[test]
    fn format_round_trips() {
        for d in [
            Duration::from_secs(90),
            Duration::from_millis(1500),
            Duration::from_secs(7200),
        ] {
            assert_eq!(parse(&format(d)).unwrap(), d);
        }
    }
}
