//! Global limits on one kind, across every node: how many of its jobs may
//! run at once (`max_running`) and how many may start per period (`rate`).
//! Stores enforce them inside the claim; this module only says what they
//! are and how a rate is written ("14/s", "100/m", "1000/h", "5/d").

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// At most `count` starts in any window of `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Starts allowed per window.
    pub count: u32,
    /// The window.
    pub per: Duration,
}

impl Rate {
    /// Into how many fixed slices a window is cut for the start log: a
    /// claim sums about this many rows per window whatever the claim rate.
    pub const SLICES_PER_WINDOW: u32 = 100;

    /// The length of one slice of the window (at least a microsecond, the
    /// precision stores keep). Slices start at the unix epoch, and a
    /// store's start log keeps one row per kind and slice.
    pub fn slice(&self) -> Duration {
        (self.per / Self::SLICES_PER_WINDOW).max(Duration::from_micros(1))
    }
}

/// A rate that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid rate {0:?}: write COUNT/UNIT with COUNT ≥ 1 and UNIT one of s, m, h, d (e.g. \"14/s\")"
)]
pub struct RateError(String);

impl FromStr for Rate {
    type Err = RateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || RateError(s.to_string());
        let (count, unit) = s.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let secs = match unit.trim() {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            "d" | "day" => 86_400,
            _ => return Err(bad()),
        };
        if count == 0 {
            return Err(bad());
        }
        Ok(Rate {
            count,
            per: Duration::from_secs(secs),
        })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "m",
            3600 => "h",
            86_400 => "d",
            _ => return write!(f, "{}/{}s", self.count, self.per.as_secs_f64()),
        };
        write!(f, "{}/{unit}", self.count)
    }
}

impl Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The global limits of one kind; a claim never lets either be exceeded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindLimit {
    /// Most jobs of the kind running at once, on all nodes together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_running: Option<u32>,
    /// Most starts of the kind per window, on all nodes together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
}

impl KindLimit {
    /// True when neither limit is set.
    pub fn is_unlimited(&self) -> bool {
        self.max_running.is_none() && self.rate.is_none()
    }

    /// How many more jobs may start now, given how many of the kind are
    /// running and how many started within the rate's window.
    pub fn room(&self, running: u64, started_in_window: u64) -> u64 {
        let by_running = self
            .max_running
            .map_or(u64::MAX, |c| u64::from(c).saturating_sub(running));
        let by_rate = self.rate.map_or(u64::MAX, |r| {
            u64::from(r.count).saturating_sub(started_in_window)
        });
        by_running.min(by_rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_print() {
        let r: Rate = "14/s".parse().unwrap();
        assert_eq!(
            r,
            Rate {
                count: 14,
                per: Duration::from_secs(1)
            }
        );
        assert_eq!(r.to_string(), "14/s");
        assert_eq!(
            "100/m".parse::<Rate>().unwrap().per,
            Duration::from_secs(60)
        );
        assert_eq!("3/h".parse::<Rate>().unwrap().to_string(), "3/h");
        for bad in ["", "14", "0/s", "-1/s", "14/x", "x/s", "14/"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn a_slice_is_a_hundredth_of_the_window_and_at_least_a_microsecond() {
        let slice = |s: &str| s.parse::<Rate>().unwrap().slice();
        assert_eq!(slice("4/d"), Duration::from_secs(864));
        assert_eq!(slice("10/s"), Duration::from_millis(10));
        let tiny = Rate {
            count: 1,
            per: Duration::from_nanos(50),
        };
        assert_eq!(tiny.slice(), Duration::from_micros(1));
    }

    #[test]
    fn room_is_the_tighter_limit() {
        let limit = KindLimit {
            max_running: Some(4),
            rate: Some("10/s".parse().unwrap()),
        };
        assert_eq!(limit.room(0, 0), 4);
        assert_eq!(limit.room(3, 0), 1);
        assert_eq!(limit.room(0, 8), 2);
        assert_eq!(limit.room(9, 0), 0);
        assert_eq!(KindLimit::default().room(1000, 1000), u64::MAX);
    }
}
