//! Credentials out of messages: every error or log line that can contain a
//! URL (database, webhook, SMTP) passes through [`urls`], which masks the
//! password of each `scheme://user:password@host` and the values of query
//! parameters that carry secrets. It works on text rather than parsed URLs
//! because the URLs that need it most are the ones that do not parse.

/// Query parameters whose values are masked (matched case-insensitively as
/// parts of the name: `password`, `sslpassword`, `access_token`, `apikey`…).
const SECRET_PARAMS: &[&str] = &["pass", "secret", "token", "key"];

/// What a masked secret reads as.
const MASK: &str = "***";

/// `text` with the credentials of every URL in it masked:
/// `postgres://u:hunter2@db/x?password=y` becomes `postgres://u:***@db/x?password=***`.
pub fn urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>'))
            .unwrap_or(after.len());
        let (url, tail) = after.split_at(end);
        out.push_str(&redact_one(url));
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// One URL after its `scheme://`. The user information ends at the last
/// `@` before the query, so a password holding `/` or `@` is masked whole.
fn redact_one(url: &str) -> String {
    let (head, tail) = url.split_at(url.find(['?', '#']).unwrap_or(url.len()));
    let mut out = match head.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:{MASK}@{host}"),
            None => head.to_string(),
        },
        None => head.to_string(),
    };
    let Some(query) = tail.strip_prefix('?') else {
        out.push_str(tail);
        return out;
    };
    let (query, fragment) = query.split_at(query.find('#').unwrap_or(query.len()));
    let params: Vec<String> = query
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((name, _)) if is_secret(name) => format!("{name}={MASK}"),
            _ => param.to_string(),
        })
        .collect();
    out.push('?');
    out.push_str(&params.join("&"));
    out.push_str(fragment);
    out
}

fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARAMS.iter().any(|s| name.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_secret_parameters_are_masked() {
        assert_eq!(
            urls("database \"mysql://root:hunter2@db:3306/app\": unsupported URL"),
            "database \"mysql://root:***@db:3306/app\": unsupported URL"
        );
        assert_eq!(
            urls("postgres://u:p%40ss@h/db?sslmode=require&password=x&sslpassword=y#f"),
            "postgres://u:***@h/db?sslmode=require&password=***&sslpassword=***#f"
        );
        assert_eq!(
            urls("a smtp://user:pw@mail:587 and https://h/x?access_token=t done"),
            "a smtp://user:***@mail:587 and https://h/x?access_token=*** done"
        );
        // A password holding '@' or '/' is masked whole, even unparseable.
        assert_eq!(urls("x://u:a@b/c@host:bad"), "x://u:***@host:bad");
    }

    #[test]
    fn text_without_credentials_is_unchanged() {
        for text in [
            "sqlite://errand.db",
            "postgres://errand@db:5432/jobs",
            "https://hooks.example.com/errand?x=1",
            "no url here: a://",
            "",
        ] {
            assert_eq!(urls(text), text);
        }
    }
}
