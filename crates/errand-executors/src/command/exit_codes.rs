//! Which outcome a non-zero exit code means: the defaults (sysexits.h) with
//! the configured lists laid over them.

use super::spec::CommandSpec;
use crate::ConfigError;
use errand_core::Outcome;

/// What a failed attempt's exit code asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExitClass {
    Retry,
    Permanent,
    Deadly,
}

/// The class of every exit code 1 to 255 (index 0, success, is unused).
#[derive(Debug, Clone)]
pub(super) struct ExitCodes {
    classes: [ExitClass; 256],
}

impl ExitCodes {
    /// The defaults overridden by the configured lists. A configured code
    /// beats a default one; a code in two configured lists is an error.
    pub(super) fn new(
        permanent: &[i32],
        deadly: &[i32],
        retry: &[i32],
    ) -> Result<Self, ConfigError> {
        let mut classes = [ExitClass::Retry; 256];
        for &code in CommandSpec::DEFAULT_PERMANENT_EXIT_CODES {
            classes[code as usize] = ExitClass::Permanent;
        }
        for &code in CommandSpec::DEFAULT_DEADLY_EXIT_CODES {
            classes[code as usize] = ExitClass::Deadly;
        }
        let lists = [
            ("permanent_exit_codes", ExitClass::Permanent, permanent),
            ("deadly_exit_codes", ExitClass::Deadly, deadly),
            ("retry_exit_codes", ExitClass::Retry, retry),
        ];
        let mut listed_in: [Option<&'static str>; 256] = [None; 256];
        for (key, class, codes) in lists {
            for &code in codes {
                let index = match usize::try_from(code) {
                    Ok(0) => {
                        return Err(ConfigError::new(
                            key,
                            "0 means success and cannot be mapped",
                        ));
                    }
                    Ok(i @ 1..=255) => i,
                    _ => {
                        return Err(ConfigError::new(
                            key,
                            format!("{code} is not an exit code (1 to 255)"),
                        ));
                    }
                };
                if let Some(other) = listed_in[index].filter(|other| *other != key) {
                    return Err(ConfigError::new(
                        key,
                        format!(
                            "exit code {code} is also in {other}; a code may be in one list only"
                        ),
                    ));
                }
                listed_in[index] = Some(key);
                classes[index] = class;
            }
        }
        Ok(ExitCodes { classes })
    }

    /// The outcome of an attempt that exited with `code` (non-zero), with
    /// `error` describing it.
    pub(super) fn outcome(&self, code: i32, error: String) -> Outcome {
        let class = usize::try_from(code)
            .ok()
            .and_then(|i| self.classes.get(i))
            .copied()
            .unwrap_or(ExitClass::Retry);
        match class {
            ExitClass::Retry => Outcome::Retry(error),
            ExitClass::Permanent => Outcome::Permanent(error),
            ExitClass::Deadly => Outcome::Deadly(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(codes: &ExitCodes, code: i32) -> &'static str {
        match codes.outcome(code, String::new()) {
            Outcome::Retry(_) => "retry",
            Outcome::Permanent(_) => "permanent",
            Outcome::Deadly(_) => "deadly",
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_follow_sysexits() {
        let codes = ExitCodes::new(&[], &[], &[]).unwrap();
        let got: Vec<_> = [1, 2, 64, 65, 69, 75, 255]
            .map(|c| class(&codes, c))
            .to_vec();
        assert_eq!(
            got,
            [
                "retry",
                "retry",
                "permanent",
                "permanent",
                "deadly",
                "retry",
                "retry"
            ]
        );
    }

    #[test]
    fn configured_codes_override_the_defaults() {
        let codes = ExitCodes::new(&[3, 75], &[4], &[64, 69]).unwrap();
        let got: Vec<_> = [3, 75, 4, 64, 69, 65].map(|c| class(&codes, c)).to_vec();
        assert_eq!(
            got,
            [
                "permanent",
                "permanent",
                "deadly",
                "retry",
                "retry",
                "permanent"
            ]
        );
    }

    #[test]
    fn bad_lists_name_the_key() {
        let err =
            |p: &[i32], d: &[i32], r: &[i32]| ExitCodes::new(p, d, r).unwrap_err().to_string();
        assert_eq!(
            err(&[3], &[], &[3]),
            "retry_exit_codes: exit code 3 is also in permanent_exit_codes; a code may be in one list only"
        );
        assert_eq!(
            err(&[], &[0], &[]),
            "deadly_exit_codes: 0 means success and cannot be mapped"
        );
        assert_eq!(
            err(&[256], &[], &[]),
            "permanent_exit_codes: 256 is not an exit code (1 to 255)"
        );
        assert!(err(&[], &[], &[-1]).starts_with("retry_exit_codes: -1"));
        assert!(
            ExitCodes::new(&[3, 3], &[], &[]).is_ok(),
            "a repeat within one list is harmless"
        );
    }
}
