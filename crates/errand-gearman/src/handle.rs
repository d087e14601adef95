//! Job handles: [`JobHandle`], gearmand's `H:<host>:<counter>` shape, which
//! the listener will issue with the errand job id as the counter and map
//! back when a client or worker sends one.
//!
//! Clients treat handles as opaque; only the server reads them. Parsing is
//! strict (no leading zeros, no sign) so that one job has exactly one
//! handle for a given prefix.

use bytes::Bytes;

/// A job handle: `<prefix>:<number>`, e.g. `H:box:42`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobHandle {
    prefix: String,
    number: u64,
}

/// Why bytes are not a [`JobHandle`], or a prefix cannot make one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandleError {
    /// Longer than [`JobHandle::MAX_LEN`].
    #[error("job handle longer than {} bytes", JobHandle::MAX_LEN)]
    TooLong,
    /// The prefix is empty, not UTF-8, or holds a NUL, a space, a tab or a
    /// line break.
    #[error("invalid job handle prefix")]
    InvalidPrefix,
    /// No `:` before the number, or the number is not decimal digits
    /// without leading zeros, or overflows.
    #[error("invalid job handle number")]
    InvalidNumber,
}

impl JobHandle {
    /// The longest handle: 64 bytes with the terminator the spec counts.
    pub const MAX_LEN: usize = 63;

    /// The longest prefix that leaves room for any `u64` number (20 digits
    /// and the `:`).
    pub const MAX_PREFIX_LEN: usize = Self::MAX_LEN - 21;

    /// A handle with `prefix` (e.g. `H:box`) and `number`. The prefix may
    /// hold `:` but no NUL, whitespace or control byte, and at most
    /// [`JobHandle::MAX_PREFIX_LEN`] bytes, so every number fits.
    pub fn new(prefix: impl Into<String>, number: u64) -> Result<JobHandle, HandleError> {
        let prefix = prefix.into();
        if prefix.len() > Self::MAX_PREFIX_LEN {
            return Err(HandleError::TooLong);
        }
        if !valid_prefix(prefix.as_bytes()) {
            return Err(HandleError::InvalidPrefix);
        }
        Ok(JobHandle { prefix, number })
    }

    /// gearmand's shape: `H:<host>:<number>`.
    pub fn with_host(host: &str, number: u64) -> Result<JobHandle, HandleError> {
        JobHandle::new(format!("H:{host}"), number)
    }

    /// Reads a handle a client or worker sent: everything up to the last
    /// `:` is the prefix, the rest the number.
    pub fn parse(bytes: &[u8]) -> Result<JobHandle, HandleError> {
        if bytes.len() > Self::MAX_LEN {
            return Err(HandleError::TooLong);
        }
        let colon = bytes
            .iter()
            .rposition(|&b| b == b':')
            .ok_or(HandleError::InvalidNumber)?;
        let (prefix, digits) = (&bytes[..colon], &bytes[colon + 1..]);
        if digits.len() > 1 && digits.first() == Some(&b'0') {
            return Err(HandleError::InvalidNumber);
        }
        let number = crate::packet::parse_decimal(digits).ok_or(HandleError::InvalidNumber)?;
        if !valid_prefix(prefix) {
            return Err(HandleError::InvalidPrefix);
        }
        let prefix = std::str::from_utf8(prefix).map_err(|_| HandleError::InvalidPrefix)?;
        Ok(JobHandle {
            prefix: prefix.to_owned(),
            number,
        })
    }

    /// The part before the last `:`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The number (the listener's errand job id).
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The handle as packet argument bytes.
    pub fn to_bytes(&self) -> Bytes {
        Bytes::from(self.to_string())
    }
}

fn valid_prefix(prefix: &[u8]) -> bool {
    !prefix.is_empty()
        && std::str::from_utf8(prefix).is_ok()
        && prefix.iter().all(|&b| b > b' ' && b != 0x7f)
}

impl std::fmt::Display for JobHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.prefix, self.number)
    }
}

impl std::str::FromStr for JobHandle {
    type Err = HandleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobHandle::parse(s.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_gearmand_shape() {
        let handle = JobHandle::with_host("box.example", 42).unwrap();
        assert_eq!(handle.to_string(), "H:box.example:42");
        assert_eq!(&handle.to_bytes()[..], b"H:box.example:42");
        let parsed = JobHandle::parse(b"H:box.example:42").unwrap();
        assert_eq!(parsed, handle);
        assert_eq!(parsed.prefix(), "H:box.example");
        assert_eq!(parsed.number(), 42);
        assert_eq!("H:box.example:42".parse::<JobHandle>().unwrap(), handle);
    }

    #[test]
    fn the_largest_number_fits_the_longest_prefix() {
        let prefix = "p".repeat(JobHandle::MAX_PREFIX_LEN);
        let handle = JobHandle::new(prefix.clone(), u64::MAX).unwrap();
        assert_eq!(handle.to_string().len(), JobHandle::MAX_LEN);
        assert_eq!(JobHandle::parse(handle.to_string().as_bytes()), Ok(handle));
        assert_eq!(
            JobHandle::new(format!("{prefix}p"), 1),
            Err(HandleError::TooLong)
        );
    }

    #[test]
    fn rejects_what_no_issued_handle_looks_like() {
        for (input, error) in [
            (&b"H:box"[..], HandleError::InvalidNumber),
            (b"H:box:", HandleError::InvalidNumber),
            (b"H:box:007", HandleError::InvalidNumber),
            (b"H:box:+7", HandleError::InvalidNumber),
            (b"H:box:-7", HandleError::InvalidNumber),
            (b"H:box:18446744073709551616", HandleError::InvalidNumber),
            (b"nocolon", HandleError::InvalidNumber),
            (b":7", HandleError::InvalidPrefix),
            (b"H box:7", HandleError::InvalidPrefix),
            (b"H\0box:7", HandleError::InvalidPrefix),
            (b"H:\xff:7", HandleError::InvalidPrefix),
        ] {
            assert_eq!(JobHandle::parse(input), Err(error), "{input:?}");
        }
        assert_eq!(
            JobHandle::parse(&[b'a'; 64]),
            Err(HandleError::TooLong),
            "64 bytes"
        );
        assert_eq!(JobHandle::parse(b"H:box:0").map(|h| h.number()), Ok(0));
        assert_eq!(JobHandle::new("", 1), Err(HandleError::InvalidPrefix));
        assert_eq!(JobHandle::new("a b", 1), Err(HandleError::InvalidPrefix));
    }
}
