//! One line for an error and its causes: client libraries keep the useful
//! part ("Connection refused") a few sources down, and some repeat their
//! source in their own message.

use std::error::Error;

/// `"<context>: <error>: <cause>: …"`, each distinct text once.
pub(crate) fn describe(context: &str, error: &(dyn Error + 'static)) -> String {
    let mut line = context.to_string();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        next = e.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn each_cause_appears_once() {
        let e = Repeats(std::io::Error::other("refused"));
        assert_eq!(
            describe("cannot connect", &e),
            "cannot connect: outer: refused"
        );
    }
}
