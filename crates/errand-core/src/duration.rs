//! Human durations ("250ms", "10s", "1h30m", ISO 8601 "PT10S") for the API,
//! the CLI and the configuration file.

use std::time::Duration;

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
        if !secs.is_finite() || secs < 0.0 {
            return Err(bad("must be a non-negative number of seconds".into()));
        }
        return Ok(Duration::from_secs_f64(secs));
    }
    // A Span (not a SignedDuration) so that retention can say "7d"; a day
    // is taken as 24 hours, which is what an operator means here.
    let span: jiff::Span = trimmed
        .parse()
        .map_err(|e: jiff::Error| bad(e.to_string()))?;
    let signed = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|e| bad(e.to_string()))?;
    Duration::try_from(signed).map_err(|_| bad("must not be negative".into()))
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
            Raw::Secs(s) if s.is_finite() && s >= 0.0 => Ok(Duration::from_secs_f64(s)),
            Raw::Secs(s) => Err(D::Error::custom(format!(
                "invalid duration {s}: must be a non-negative number of seconds"
            ))),
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
