//! HTML building for the dashboard: the escaping helper every piece of
//! user data goes through, the page layout (navigation, CSRF meta tag,
//! assets), and small formatters for times, ages, states and JSON.

use errand_core::JobState;
use jiff::Timestamp;
use std::fmt::Write;
use std::time::Duration;

/// `text` with `& < > " '` escaped: safe in element content and in quoted
/// attribute values.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` as one component of a URL query or path (percent-encoded),
/// then HTML-escaped for an attribute.
pub(crate) fn url_part(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// The pages in the navigation bar: (path, label).
const NAV: [(&str, &str); 9] = [
    ("/", "Overview"),
    ("/jobs", "Jobs"),
    ("/queues", "Queues"),
    ("/kinds", "Kinds"),
    ("/nodes", "Nodes"),
    ("/schedules", "Schedules"),
    ("/events", "Events"),
    ("/batches", "Batches"),
    ("/audit", "Audit"),
];

/// Who is looking and the token their actions must send (empty when the
/// request needs none).
#[derive(Debug, Clone, Default)]
pub(crate) struct Viewer {
    /// Shown in the header ("local" with auth off).
    pub name: String,
    /// Sent as `X-CSRF-Token` by every action.
    pub csrf: String,
}

/// A whole page: `title`, the navigation with `active` marked, `body`.
pub(crate) fn layout(title: &str, active: &str, viewer: &Viewer, body: &str) -> String {
    let mut nav = String::new();
    for (path, label) in NAV {
        let current = if path == active {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(nav, "<li><a href=\"{path}\"{current}>{label}</a></li>");
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"csrf-token\" content=\"{csrf}\">\
         <title>{title} · errand</title>\
         <link rel=\"stylesheet\" href=\"{css}\"><script src=\"{js}\" defer></script>\
         <link rel=\"icon\" href=\"data:,\"></head><body>\
         <header><a class=\"brand\" href=\"/\">errand</a><nav aria-label=\"Pages\"><ul>{nav}</ul></nav>\
         <span class=\"viewer\">{who}</span></header>\
         <main><h1>{title}</h1><p id=\"flash\" role=\"status\" aria-live=\"polite\"></p>{body}</main>\
         </body></html>",
        csrf = esc(&viewer.csrf),
        title = esc(title),
        css = super::CSS_PATH,
        js = super::JS_PATH,
        who = esc(&viewer.name),
    )
}

/// A timestamp as UTC to the second, in a `<time>` element.
pub(crate) fn time(t: Timestamp) -> String {
    format!(
        "<time datetime=\"{t}\">{}</time>",
        t.strftime("%Y-%m-%d %H:%M:%S")
    )
}

/// An optional timestamp, or a dash.
pub(crate) fn time_or_dash(t: Option<Timestamp>) -> String {
    t.map(time).unwrap_or_else(|| "–".into())
}

/// How long ago `t` was (or how far off, for a future `t`), to the second.
pub(crate) fn age(now: Timestamp, t: Timestamp) -> String {
    let secs = now.as_second() - t.as_second();
    let text = short_duration(Duration::from_secs(secs.unsigned_abs()));
    if secs >= 0 {
        text
    } else {
        format!("in {text}")
    }
}

/// A duration in its two largest units ("3h 20m", "45s").
pub(crate) fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (d_, h, m, sec) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d_, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m {sec}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d_}d {h}h"),
    }
}

/// A state as a coloured label.
pub(crate) fn state(s: JobState) -> String {
    format!("<span class=\"state s-{s}\">{s}</span>", s = s.as_str())
}

/// JSON values longer than this (pretty-printed) are folded.
const FOLD_OVER: usize = 2048;

/// A JSON value pretty-printed in `<pre>`, folded in `<details>` when long.
pub(crate) fn json(label: &str, value: &serde_json::Value) -> String {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    let pre = format!("<pre class=\"json\">{}</pre>", esc(&text));
    if text.len() > FOLD_OVER {
        format!(
            "<details><summary>{} ({} bytes)</summary>{pre}</details>",
            esc(label),
            text.len()
        )
    } else {
        pre
    }
}

/// An action button: POSTs to `url` (a /v1 route) with the CSRF token, then
/// refreshes the page's live parts; keyboard focus returns to the button
/// with the same `key` after the refresh (pause becomes resume).
pub(crate) fn action(url: &str, label: &str, class: &str, key: &str) -> String {
    format!(
        "<button type=\"button\" class=\"{class}\" data-post=\"{}\" data-focus-key=\"{}\">{}</button>",
        esc(url),
        esc(key),
        esc(label)
    )
}

/// An [`action`] button that POSTs `body` (JSON) to `url`.
pub(crate) fn action_with_body(
    url: &str,
    body: &str,
    label: &str,
    class: &str,
    key: &str,
) -> String {
    format!(
        "<button type=\"button\" class=\"{class}\" data-post=\"{}\" data-body=\"{}\" data-focus-key=\"{}\">{}</button>",
        esc(url),
        esc(body),
        esc(key),
        esc(label)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(url_part("a b&c/é"), "a%20b%26c%2F%C3%A9");
    }

    #[test]
    fn durations_keep_two_units() {
        assert_eq!(short_duration(Duration::from_secs(45)), "45s");
        assert_eq!(short_duration(Duration::from_secs(200)), "3m 20s");
        assert_eq!(
            short_duration(Duration::from_secs(3 * 3600 + 1200)),
            "3h 20m"
        );
        assert_eq!(
            short_duration(Duration::from_secs(2 * 86400 + 3600)),
            "2d 1h"
        );
        let now = Timestamp::from_second(1000).unwrap();
        assert_eq!(age(now, Timestamp::from_second(940).unwrap()), "1m 0s");
        assert_eq!(age(now, Timestamp::from_second(1010).unwrap()), "in 10s");
    }

    #[test]
    fn long_json_is_folded_and_escaped() {
        let small = json("payload", &serde_json::json!({"a": "<b>"}));
        assert!(!small.contains("<details>") && small.contains("&lt;b&gt;"));
        let big = json("payload", &serde_json::json!({"a": "x".repeat(3000)}));
        assert!(big.starts_with("<details><summary>payload ("), "{big}");
    }
}
