//! Server-rendered SVG charts of throughput and wait time: no script and no
//! library; the overview draws them from a slice of per-minute buckets.
//! The stored history they are drawn from is engineer M's (issue 12 item
//! 4); until it is wired in, the overview passes an empty slice and the
//! chart says "no data yet".

use super::html::{esc, short_duration};
use jiff::Timestamp;
use std::fmt::Write;
use std::time::Duration;

/// One bucket of history (a minute, or a coarser step for 7 days).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bucket {
    /// The bucket's start.
    pub at: Timestamp,
    /// Jobs completed in it.
    pub completed: u64,
    /// Jobs failed for good in it.
    pub failed: u64,
    /// Attempts that ended in a retry in it.
    pub retried: u64,
    /// Median wait (available → started) of the jobs started in it.
    pub wait_p50: Duration,
    /// 95th percentile of the same.
    pub wait_p95: Duration,
}

/// The drawing area, in SVG user units (the SVG scales to its box).
const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 160.0;
/// Room left of and under the plot for the axis labels.
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 18.0;

/// What a line plots of each bucket.
type Measure = fn(&Bucket) -> f64;

/// One line of a chart: its name (legend label and CSS class) and values.
struct Series<'a> {
    name: &'a str,
    values: Vec<f64>,
}

/// Throughput: completed, failed and retried per bucket, as three lines.
pub(crate) fn throughput(title: &str, buckets: &[Bucket]) -> String {
    let lines: [(&str, Measure); 3] = [
        ("completed", |b| b.completed as f64),
        ("failed", |b| b.failed as f64),
        ("retried", |b| b.retried as f64),
    ];
    let series = lines.map(|(name, f)| Series {
        name,
        values: buckets.iter().map(f).collect(),
    });
    render(title, buckets, &series, |v| format!("{v:.0}"))
}

/// Wait time: p50 and p95 per bucket, in seconds, as two lines.
pub(crate) fn wait(title: &str, buckets: &[Bucket]) -> String {
    let lines: [(&str, Measure); 2] = [
        ("p50", |b| b.wait_p50.as_secs_f64()),
        ("p95", |b| b.wait_p95.as_secs_f64()),
    ];
    let series = lines.map(|(name, f)| Series {
        name,
        values: buckets.iter().map(f).collect(),
    });
    render(title, buckets, &series, |v| {
        short_duration(Duration::from_secs_f64(v.max(0.0)))
    })
}

/// A `<figure>` with the chart (or "no data yet") and its legend.
fn render(
    title: &str,
    buckets: &[Bucket],
    series: &[Series],
    label: impl Fn(f64) -> String,
) -> String {
    let mut out = format!(
        "<figure class=\"chart\"><figcaption>{}</figcaption>",
        esc(title)
    );
    let (Some(first), Some(last)) = (buckets.first(), buckets.last()) else {
        out.push_str("<p class=\"nodata\">no data yet</p></figure>");
        return out;
    };
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0_f64, f64::max);
    // A flat zero line still needs a scale.
    let top = if max > 0.0 { max } else { 1.0 };
    let plot_w = WIDTH - LEFT;
    let plot_h = HEIGHT - BOTTOM;
    let step = if buckets.len() > 1 {
        plot_w / (buckets.len() - 1) as f64
    } else {
        0.0
    };
    let _ = write!(
        out,
        "<svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{}\">\
         <line class=\"axis\" x1=\"{LEFT}\" y1=\"{plot_h}\" x2=\"{WIDTH}\" y2=\"{plot_h}\"/>\
         <line class=\"axis\" x1=\"{LEFT}\" y1=\"0\" x2=\"{LEFT}\" y2=\"{plot_h}\"/>\
         <text x=\"{lx}\" y=\"10\" text-anchor=\"end\">{}</text>\
         <text x=\"{lx}\" y=\"{plot_h}\" text-anchor=\"end\">0</text>\
         <text x=\"{LEFT}\" y=\"{HEIGHT}\">{}</text>\
         <text x=\"{WIDTH}\" y=\"{HEIGHT}\" text-anchor=\"end\">{}</text>",
        esc(title),
        esc(&label(top)),
        first.at.strftime("%m-%d %H:%M"),
        last.at.strftime("%m-%d %H:%M"),
        lx = LEFT - 4.0,
    );
    for s in series {
        let points: Vec<String> = s
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let x = LEFT + step * i as f64;
                let y = plot_h - (v / top) * (plot_h - 4.0);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let _ = write!(
            out,
            "<polyline class=\"line {}\" points=\"{}\"><title>{}</title></polyline>",
            s.name,
            points.join(" "),
            s.name
        );
    }
    out.push_str("</svg><ul class=\"legend\">");
    for s in series {
        let _ = write!(
            out,
            "<li class=\"{}\">{} <span class=\"muted\">(peak {})</span></li>",
            s.name,
            s.name,
            esc(&label(s.values.iter().copied().fold(0.0, f64::max))),
        );
    }
    out.push_str("</ul></figure>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(minute: i64, completed: u64, failed: u64, p95: u64) -> Bucket {
        Bucket {
            at: Timestamp::from_second(1_700_000_000 + minute * 60).unwrap(),
            completed,
            failed,
            retried: 0,
            wait_p50: Duration::from_secs(p95 / 2),
            wait_p95: Duration::from_secs(p95),
        }
    }

    /// The points of the polyline of `class` in `svg`, as (x, y).
    fn points(svg: &str, class: &str) -> Vec<(f64, f64)> {
        let start = svg
            .find(&format!("class=\"line {class}\" points=\""))
            .unwrap_or_else(|| panic!("no {class} line in {svg}"));
        let rest = &svg[start..];
        let rest = &rest[rest.find("points=\"").unwrap() + 8..];
        rest[..rest.find('"').unwrap()]
            .split(' ')
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn no_buckets_says_no_data() {
        let html = throughput("Last hour", &[]);
        assert!(html.contains("no data yet"), "{html}");
        assert!(!html.contains("<svg"), "{html}");
    }

    #[test]
    fn lines_scale_to_the_peak_and_span_the_width() {
        let buckets = [
            bucket(0, 0, 1, 10),
            bucket(1, 10, 0, 30),
            bucket(2, 5, 0, 20),
        ];
        let svg = throughput("Last hour", &buckets);
        let done = points(&svg, "completed");
        assert_eq!(done.len(), 3);
        assert_eq!(done[0].0, LEFT, "the first bucket is at the left axis");
        assert_eq!(done[2].0, WIDTH, "the last at the right edge");
        let base = HEIGHT - BOTTOM;
        assert_eq!(done[0].1, base, "zero sits on the baseline");
        assert_eq!(done[1].1, 4.0, "the peak (10) reaches the top margin");
        assert!(
            (done[2].1 - (base + 4.0) / 2.0).abs() < 0.1,
            "half the peak is halfway"
        );
        assert!(svg.contains(">10</text>"), "the axis names the peak: {svg}");
        assert!(
            svg.contains("11-14 22:13") && svg.contains("11-14 22:15"),
            "{svg}"
        );

        let wait = wait("Wait", &buckets);
        assert_eq!(points(&wait, "p95")[1].1, 4.0);
        assert!(wait.contains(">30s</text>"), "{wait}");
    }

    #[test]
    fn all_zero_is_a_flat_baseline_and_titles_are_escaped() {
        let svg = throughput("<b>", &[bucket(0, 0, 0, 0), bucket(1, 0, 0, 0)]);
        assert!(
            points(&svg, "failed")
                .iter()
                .all(|p| p.1 == HEIGHT - BOTTOM)
        );
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"), "{svg}");
        let one = throughput("one", &[bucket(0, 3, 0, 0)]);
        assert_eq!(points(&one, "completed"), vec![(LEFT, 4.0)]);
    }
}
