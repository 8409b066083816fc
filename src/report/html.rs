//! The report as one self-contained HTML page: inline CSS, no script, font or image from
//! anywhere (its Content-Security-Policy allows nothing else), an inline SVG line chart of the
//! calls per UTC day of each called operation, then the tables. Every value is escaped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

use crate::callers::day_name;

use super::render::{minute, plural, source_figures, UNIDENTIFIED};
use super::tally::Report;

/// Line colours, one per called operation in turn; after them, the same dashed.
const PALETTE: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#7f7f7f", "#bcbd22",
];
const CHART_W: f64 = 860.0;
const CHART_H: f64 = 300.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 32.0;
/// Up to so many days, each point also gets a dot (a single day is a dot only).
const DOTS_UP_TO: usize = 62;

const STYLE: &str = "
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 70rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.75rem; text-align: left;
  vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: ui-monospace, monospace; font-size: 0.9em; }
.muted { color: #666; } .warn { color: #a40; }
svg.chart { width: 100%; max-width: 860px; height: auto; border: 1px solid #eee; }
svg.chart text { font-size: 11px; fill: #555; }
svg.chart .grid { stroke: #eee; }
ul.legend { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 0.25rem 1.25rem; }
ul.legend li { font-family: ui-monospace, monospace; font-size: 0.85em; }
";

/// Escapes text for an element's content or a quoted attribute.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// Writes the page.
pub(crate) fn page(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    out.write_all(build(report).as_bytes())
}

fn build(report: &Report) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let t = report.totals();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'\">\n",
    );
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    h.push_str("<title>Legacy callers report</title>\n<style>");
    h.push_str(STYLE);
    h.push_str("</style>\n</head>\n<body>\n<h1>Who still calls the deprecated operations</h1>\n");
    let _ = writeln!(
        h,
        "<p class=\"muted\">Generated {} UTC: {} from {} ({}), {}.</p>",
        esc(&minute(report.generated)),
        plural(report.calls(), "legacy call"),
        plural(report.identified_callers() as u64, "identified caller"),
        plural(report.unidentified_calls(), "unidentified call"),
        plural(report.sources.len() as u64, "source"),
    );

    h.push_str("<h2>Calls per day (UTC)</h2>\n");
    chart(report, &mut h);

    h.push_str("<h2>Deprecated operations</h2>\n<table>\n<thead><tr><th>Operation</th>");
    h.push_str("<th>Method and path</th><th class=\"n\">Calls</th><th class=\"n\">Callers</th>");
    h.push_str(
        "<th class=\"n\">Unidentified calls</th><th>Last call (UTC)</th></tr></thead>\n<tbody>\n",
    );
    for o in &report.operations {
        let _ = writeln!(
            h,
            "<tr><td class=\"mono\">{}</td><td class=\"mono\">{} {}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            esc(o.route.operation),
            esc(o.route.method),
            esc(o.route.template),
            o.calls,
            o.callers,
            o.unidentified_calls,
            o.last_call
                .map_or_else(|| "never".into(), |t| esc(&minute(t))),
        );
    }
    h.push_str("</tbody>\n</table>\n");

    if let (Some(quiet), Some(cutoff), Some(since)) =
        (&report.quiet, report.quiet_cutoff(), report.quiet_since)
    {
        let _ = writeln!(
            h,
            "<h2>Ready to switch to reject</h2>\n<p>No call since {} UTC ({}):</p>",
            esc(&minute(cutoff)),
            esc(&humantime::format_duration(since).to_string())
        );
        if quiet.is_empty() {
            h.push_str("<p>None: every deprecated operation was called since then.</p>\n");
        } else {
            h.push_str("<table class=\"quiet\">\n<thead><tr><th>Operation</th>");
            h.push_str("<th>Last call (UTC)</th></tr></thead>\n<tbody>\n");
            for &i in quiet {
                let o = &report.operations[i];
                let _ = writeln!(
                    h,
                    "<tr><td class=\"mono\">{}</td><td>{}</td></tr>",
                    esc(o.route.operation),
                    o.last_call.map_or_else(
                        || "never called in these inputs".into(),
                        |t| esc(&minute(t))
                    ),
                );
            }
            h.push_str("</tbody>\n</table>\n");
        }
    }

    let _ = writeln!(
        h,
        "<h2>Callers, most recent first ({})</h2>",
        report.callers.len()
    );
    h.push_str("<table class=\"callers\">\n<thead><tr><th>Subject</th><th>Kind</th>");
    h.push_str("<th class=\"n\">Calls</th><th>Operations</th><th>Clients</th><th>Modes</th>");
    h.push_str("<th>First seen (UTC)</th><th>Last seen (UTC)</th></tr></thead>\n<tbody>\n");
    for c in &report.callers {
        let subject = match c.subject.as_str() {
            "" => format!("<span class=\"muted\">{}</span>", esc(UNIDENTIFIED)),
            s => esc(s),
        };
        let operations: Vec<String> = c
            .operations
            .iter()
            .map(|(op, n)| format!("{} {n}", esc(op)))
            .collect();
        let _ = writeln!(
            h,
            "<tr><td class=\"mono\">{subject}</td><td>{}</td><td class=\"n\">{}</td>\
             <td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.kind),
            c.calls,
            operations.join("<br>"),
            esc(&c.clients.join(", ")),
            esc(&c.modes.join(", ")),
            esc(&minute(c.first_seen)),
            esc(&minute(c.last_seen)),
        );
    }
    h.push_str("</tbody>\n</table>\n");

    h.push_str("<h2>Input</h2>\n");
    let _ = writeln!(
        h,
        "<p>{} read: {}; skipped {} and {}. Admin tables: {} ({} skipped).</p>",
        plural(t.lines_read, "line"),
        plural(t.legacy_lines, "legacy call"),
        plural(t.other_lines, "other line"),
        plural(t.malformed_lines, "malformed line"),
        plural(t.admin_entries, "entry"),
        t.admin_entries_skipped
    );
    h.push_str("<table class=\"sources\">\n<thead><tr><th>Source</th><th>Read</th></tr>");
    h.push_str("</thead>\n<tbody>\n");
    for s in &report.sources {
        let error = match &s.error {
            Some(e) => format!(
                "<br><span class=\"warn\">read error, the rest was not read: {}</span>",
                esc(e)
            ),
            None => String::new(),
        };
        let _ = writeln!(
            h,
            "<tr><td class=\"mono\">{}</td><td>{}{error}</td></tr>",
            esc(&s.name),
            esc(&source_figures(s))
        );
    }
    h.push_str("</tbody>\n</table>\n");
    if report.sources.iter().any(|s| s.admin) {
        h.push_str(
            "<p class=\"muted\">An admin table counts since its replica started, for a bounded \
             number of callers; a replica's table and its logs count the same calls.</p>\n",
        );
    }
    h.push_str("</body>\n</html>\n");
    h
}

/// The SVG chart: one polyline per operation with calls, over every day from the first
/// to the last day with a call (days without calls are 0), and its legend.
fn chart(report: &Report, h: &mut String) {
    let called: Vec<_> = report
        .operations
        .iter()
        .filter(|o| !o.per_day.is_empty())
        .collect();
    let first = called.iter().filter_map(|o| o.per_day.keys().next()).min();
    let last = called
        .iter()
        .filter_map(|o| o.per_day.keys().next_back())
        .max();
    let (Some(&first), Some(&last)) = (first, last) else {
        h.push_str("<p>No legacy call in these inputs.</p>\n");
        return;
    };
    let days = usize::try_from(last - first).unwrap_or(0) + 1;
    let max = called
        .iter()
        .flat_map(|o| o.per_day.values())
        .copied()
        .max()
        .unwrap_or(1)
        .max(1);
    let plot_w = CHART_W - LEFT - RIGHT;
    let plot_h = CHART_H - TOP - BOTTOM;
    let x = |i: usize| match days {
        1 => LEFT + plot_w / 2.0,
        n => LEFT + plot_w * i as f64 / (n - 1) as f64,
    };
    let y = |v: u64| TOP + plot_h - plot_h * v as f64 / max as f64;
    let _ = writeln!(
        h,
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {CHART_W} \
         {CHART_H}\" role=\"img\" aria-label=\"Legacy calls per UTC day and operation\">"
    );
    let mut grid = vec![0, max / 2, max];
    grid.dedup();
    for v in grid {
        let _ = writeln!(
            h,
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\"/>\
             <text x=\"{2}\" y=\"{3:.1}\" text-anchor=\"end\">{v}</text>",
            y(v),
            CHART_W - RIGHT,
            LEFT - 6.0,
            y(v) + 4.0
        );
    }
    let mut labels = vec![0, days - 1];
    if days > 2 {
        labels.insert(1, (days - 1) / 2);
    }
    labels.dedup();
    for i in labels {
        let day = first + u32::try_from(i).unwrap_or(0);
        // The first and last labels stay inside the chart.
        let anchor = match i {
            _ if days == 1 => "middle",
            0 => "start",
            i if i == days - 1 => "end",
            _ => "middle",
        };
        let _ = writeln!(
            h,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
            x(i),
            CHART_H - 10.0,
            esc(&day_name(day))
        );
    }
    let mut legend = String::from("<ul class=\"legend\">\n");
    for (n, o) in called.iter().enumerate() {
        let colour = PALETTE[n % PALETTE.len()];
        let dash = match n / PALETTE.len() {
            0 => "",
            _ => " stroke-dasharray=\"6 3\"",
        };
        let op = esc(o.route.operation);
        let values = series(&o.per_day, first, days);
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| format!("{:.1},{:.1}", x(i), y(v)))
            .collect();
        let _ = writeln!(
            h,
            "<polyline class=\"series\" data-operation=\"{op}\" fill=\"none\" \
             stroke=\"{colour}\" stroke-width=\"2\"{dash} points=\"{}\">\
             <title>{op}: {}</title></polyline>",
            points.join(" "),
            plural(o.calls, "call")
        );
        if days <= DOTS_UP_TO {
            let _ = write!(h, "<g fill=\"{colour}\">");
            for (i, &v) in values.iter().enumerate().filter(|(_, &v)| v > 0) {
                let _ = write!(
                    h,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\"><title>{op}, {}: {v}</title>\
                     </circle>",
                    x(i),
                    y(v),
                    esc(&day_name(first + u32::try_from(i).unwrap_or(0)))
                );
            }
            h.push_str("</g>\n");
        }
        let _ = writeln!(
            legend,
            "<li><svg width=\"28\" height=\"10\" aria-hidden=\"true\"><line x1=\"0\" y1=\"5\" \
             x2=\"28\" y2=\"5\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/></svg> {op} \
             ({})</li>",
            o.calls
        );
    }
    h.push_str("</svg>\n");
    legend.push_str("</ul>\n");
    h.push_str(&legend);
}

/// Calls on each of `days` days from `first`, 0 where none.
fn series(per_day: &BTreeMap<u32, u64>, first: u32, days: usize) -> Vec<u64> {
    let mut values = vec![0; days];
    for (&day, &n) in per_day {
        if let Some(v) = day
            .checked_sub(first)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| values.get_mut(i))
        {
            *v = n;
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            esc("<img src=x onerror='a'>&\"\u{1b}"),
            "&lt;img src=x onerror=&#39;a&#39;&gt;&amp;&quot;?"
        );
    }

    #[test]
    fn series_fill_missing_days() {
        let per_day = BTreeMap::from([(10, 2), (13, 5)]);
        assert_eq!(series(&per_day, 9, 6), [0, 2, 0, 0, 5, 0]);
    }
}
