//! API tokens: their scopes (what a token may do), their secrets (made
//! once, shown once, stored only as a SHA-256 hash) and what a store keeps
//! of them. The HTTP layer decides which scope each route needs
//! (errand-server's `route_scopes`); see docs/decisions/0019-api-tokens.md.

use crate::job::{ValidationError, check_name};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Prefix of every token secret, so leaked-secret scanners can match it.
pub const SECRET_PREFIX: &str = "errand_";

/// Random bytes in a secret: 256 bits, well above the 160 needed.
const SECRET_BYTES: usize = 32;

/// A token's last use is recorded at most this often, so reads with a
/// token do not each become a write.
pub const LAST_USE_INTERVAL: Duration = Duration::from_secs(60);

/// What a scope lets a token do, without any restriction it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    /// POST jobs, job batches, batches and events.
    Enqueue,
    /// GET jobs, events, batches, stats, queues, nodes and schedules.
    Read,
    /// Cancel, retry, pause and resume, the audit log and tokens (implies `read`).
    Admin,
    /// The remote-worker protocol.
    Work,
    /// GET /metrics.
    Metrics,
}

impl Access {
    /// Every access, in the order they are documented.
    pub const ALL: [Access; 5] = [
        Access::Enqueue,
        Access::Read,
        Access::Admin,
        Access::Work,
        Access::Metrics,
    ];

    /// The scope's name as written in `--scope` and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Enqueue => "enqueue",
            Access::Read => "read",
            Access::Admin => "admin",
            Access::Work => "work",
            Access::Metrics => "metrics",
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One scope of a token: an access, and for `enqueue` optionally the only
/// names it may enqueue. One list serves kinds and event names alike
/// (`enqueue:email,signup` allows jobs of kind `email` or `signup` and
/// events named `email` or `signup`), so a name is never ambiguous. For
/// `work`, the list is the only kinds a remote worker may claim
/// (`work:resize,thumbnail`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope {
    /// What the scope grants.
    pub access: Access,
    /// For `enqueue`: the kinds and event names allowed; for `work`: the
    /// kinds that may be claimed; empty means any.
    pub only: Vec<String>,
}

impl Scope {
    /// An unrestricted scope.
    pub fn new(access: Access) -> Self {
        Scope {
            access,
            only: Vec::new(),
        }
    }
}

impl FromStr for Scope {
    type Err = ValidationError;

    /// `enqueue`, `enqueue:k1,k2`, `read`, `admin`, `work`, `work:k1,k2`
    /// or `metrics`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, list) = match s.split_once(':') {
            Some((name, list)) => (name, Some(list)),
            None => (s, None),
        };
        let Some(access) = Access::ALL.into_iter().find(|a| a.as_str() == name) else {
            let names: Vec<&str> = Access::ALL.iter().map(|a| a.as_str()).collect();
            return Err(ValidationError::new(
                "scope",
                format!(
                    "unknown scope {name:?}; use one of {} (enqueue may name kinds/events: enqueue:email,report; work may name kinds: work:resize)",
                    names.join(", ")
                ),
            ));
        };
        let Some(list) = list else {
            return Ok(Scope::new(access));
        };
        if !matches!(access, Access::Enqueue | Access::Work) {
            return Err(ValidationError::new(
                "scope",
                format!(
                    "{name} takes no list; only enqueue and work can be restricted (enqueue:email,report, work:resize)"
                ),
            ));
        }
        let mut only = Vec::new();
        for item in list.split(',') {
            check_name("scope", item)?;
            only.push(item.to_string());
        }
        only.sort();
        only.dedup();
        Ok(Scope { access, only })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.access.as_str())?;
        if !self.only.is_empty() {
            write!(f, ":{}", self.only.join(","))?;
        }
        Ok(())
    }
}

/// A token's scopes, as granted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    /// The scopes, sorted and without repeats.
    pub fn new(mut scopes: Vec<Scope>) -> Self {
        scopes.sort();
        scopes.dedup();
        Scopes(scopes)
    }

    /// Parses `--scope` values (or a stored list); the first bad one fails.
    pub fn parse<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Self, ValidationError> {
        let scopes = items
            .into_iter()
            .map(str::parse)
            .collect::<Result<Vec<Scope>, _>>()?;
        if scopes.is_empty() {
            return Err(ValidationError::new("scope", "give at least one scope"));
        }
        Ok(Scopes::new(scopes))
    }

    /// The scopes as stored: space-separated (no scope contains a space).
    pub fn to_stored(&self) -> String {
        self.to_string()
    }

    /// Reads [`Scopes::to_stored`] back.
    pub fn from_stored(s: &str) -> Result<Self, ValidationError> {
        Scopes::parse(s.split_whitespace())
    }

    /// The scopes, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    /// Whether these scopes grant `access` (in any form); `admin` implies
    /// `read`.
    pub fn allows(&self, access: Access) -> bool {
        self.0
            .iter()
            .any(|s| s.access == access || (access == Access::Read && s.access == Access::Admin))
    }

    /// Whether these scopes let the bearer enqueue a job of kind `name` or
    /// publish an event called `name`.
    pub fn may_enqueue(&self, name: &str) -> bool {
        self.may(Access::Enqueue, name)
    }

    /// Whether these scopes let a remote worker claim jobs of kind `kind`.
    pub fn may_work(&self, kind: &str) -> bool {
        self.may(Access::Work, kind)
    }

    /// Whether a scope of `access` allows `name` (an unrestricted one allows any).
    fn may(&self, access: Access, name: &str) -> bool {
        self.0
            .iter()
            .any(|s| s.access == access && (s.only.is_empty() || s.only.iter().any(|o| o == name)))
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{scope}")?;
        }
        Ok(())
    }
}

/// The SHA-256 of a secret, the only form a store keeps. A secret is 256
/// random bits, so a fast hash is enough: there is no dictionary to try.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The hash of what a client presented.
    pub fn of(secret: &str) -> Self {
        TokenHash(Sha256::digest(secret.as_bytes()).into())
    }

    /// Lower-case hex, as stored.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({})", self.to_hex())
    }
}

/// A new token's secret: shown once to the operator, never stored or logged
/// (its `Debug` hides it).
pub struct Secret(String);

impl Secret {
    /// A fresh secret from the operating system's random source.
    pub fn generate() -> Result<Self, getrandom::Error> {
        Secret::generate_prefixed(SECRET_PREFIX)
    }

    /// A fresh secret starting with `prefix` (sessions use their own).
    pub fn generate_prefixed(prefix: &str) -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; SECRET_BYTES];
        getrandom::fill(&mut bytes)?;
        Ok(Secret(format!("{prefix}{}", hex(&bytes))))
    }

    /// The secret itself, to print once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its hash, to store.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A token to store.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Unique name, shown in logs and listings.
    pub name: String,
    /// What it may do.
    pub scopes: Scopes,
    /// Its secret's hash.
    pub hash: TokenHash,
}

impl NewToken {
    /// A token named `name` (a name: letters, digits and `_ - . :`).
    pub fn new(name: &str, scopes: Scopes, hash: TokenHash) -> Result<Self, ValidationError> {
        check_name("name", name)?;
        Ok(NewToken {
            name: name.to_string(),
            scopes,
            hash,
        })
    }
}

/// A stored token, without its hash (as `GET /v1/tokens` lists it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Token {
    /// Unique name.
    pub name: String,
    /// What it may do.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::scopes))]
    pub scopes: Scopes,
    /// When it was made.
    pub created_at: jiff::Timestamp,
    /// Its latest recorded use (recorded at most every [`LAST_USE_INTERVAL`]).
    pub last_used_at: Option<jiff::Timestamp>,
}

impl Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(ToString::to_string))
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = Vec::<String>::deserialize(d)?;
        Scopes::parse(items.iter().map(String::as_str)).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_print_back() {
        let scopes = Scopes::parse(["read", "enqueue:report,email", "read"]).unwrap();
        assert_eq!(scopes.to_stored(), "enqueue:email,report read");
        assert_eq!(Scopes::from_stored(&scopes.to_stored()).unwrap(), scopes);
        let colon: Scope = "enqueue:mail:v2".parse().unwrap();
        assert_eq!(colon.only, ["mail:v2"]);
    }

    #[test]
    fn bad_scopes_say_what_is_wrong() {
        let unknown = "write".parse::<Scope>().unwrap_err();
        assert!(
            unknown.message.contains("unknown scope \"write\""),
            "{unknown}"
        );
        let list = "read:jobs".parse::<Scope>().unwrap_err();
        assert!(list.message.contains("only enqueue and work"), "{list}");
        let empty = "enqueue:".parse::<Scope>().unwrap_err();
        assert!(empty.message.contains("must not be empty"), "{empty}");
        assert!(Scopes::parse([]).is_err());
    }

    #[test]
    fn admin_implies_read_and_nothing_else() {
        let admin = Scopes::parse(["admin"]).unwrap();
        assert!(admin.allows(Access::Read) && admin.allows(Access::Admin));
        assert!(!admin.allows(Access::Enqueue) && !admin.allows(Access::Metrics));
        let read = Scopes::parse(["read"]).unwrap();
        assert!(!read.allows(Access::Admin));
    }

    #[test]
    fn a_restricted_enqueue_allows_only_its_names() {
        let some = Scopes::parse(["enqueue:email,signup"]).unwrap();
        assert!(some.allows(Access::Enqueue));
        assert!(some.may_enqueue("email") && some.may_enqueue("signup"));
        assert!(!some.may_enqueue("report"));
        let both = Scopes::parse(["enqueue:email", "enqueue"]).unwrap();
        assert!(both.may_enqueue("report"));
        assert!(!Scopes::parse(["read"]).unwrap().may_enqueue("email"));
    }

    #[test]
    fn a_restricted_work_allows_only_its_kinds() {
        let some = Scopes::parse(["work:resize"]).unwrap();
        assert!(some.allows(Access::Work));
        assert!(some.may_work("resize") && !some.may_work("email"));
        assert!(!some.may_enqueue("resize"));
        assert!(Scopes::parse(["work"]).unwrap().may_work("email"));
        assert_eq!(some.to_stored(), "work:resize");
    }

    #[test]
    fn secrets_are_prefixed_random_and_hidden_from_debug() {
        let a = Secret::generate().unwrap();
        let b = Secret::generate().unwrap();
        assert!(a.expose().starts_with(SECRET_PREFIX));
        assert_eq!(a.expose().len(), SECRET_PREFIX.len() + 2 * SECRET_BYTES);
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.hash(), TokenHash::of(a.expose()));
        assert!(!format!("{a:?}").contains(&a.expose()[SECRET_PREFIX.len()..]));
        assert_eq!(a.hash().to_hex().len(), 64);
    }
}
