//! The run report as one self-contained HTML page (`attune run --report-html FILE`, `attune
//! report REPORT.json --html FILE`): counts and charts drawn as inline SVG, no script, no
//! stylesheet or font from anywhere else, so it opens offline and can be mailed or archived.
//! Like the JSON report it holds counts only, never content.

use serde_json::Value;
use std::fmt::Write;

/// The bars' colours: what was used, what was turned away, what failed.
const USED: &str = "#2f6f9f";
const SKIPPED: &str = "#c9a227";
const FAILED: &str = "#b3403a";
const LINE_PROCESSED: &str = "#3d8b4f";

/// The page for a report (the JSON `attune run --report` writes).
pub fn render(report: &Value) -> String {
    let mut page = String::with_capacity(32 << 10);
    let num = |v: &Value| v.as_f64().unwrap_or(0.0);
    let int = |key: &str| report[key].as_u64().unwrap_or(0);
    let skipped: Vec<(String, f64)> = report["skipped"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), num(v))).filter(|(_, v)| *v > 0.0).collect())
        .unwrap_or_default();
    let failed = report["failed"].as_array().map_or(0, Vec::len) as u64;
    let skipped_total: f64 = skipped.iter().map(|(_, v)| v).sum();

    page.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>attune run report</title>\n<style>\
         body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#222;padding:0 16px}\
         h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 6px;border-bottom:1px solid #ddd}\
         table{border-collapse:collapse}td{padding:2px 14px 2px 0;vertical-align:top}td:first-child{color:#666}\
         .note{color:#666;font-size:12px}svg text{font:12px system-ui,sans-serif;fill:#222}\
         .legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}\
         </style></head><body>\n",
    );
    let _ = write!(
        page,
        "<h1>attune run report</h1><p class=\"note\">Counts only: no event's content is in this report.</p>\n<table>"
    );
    let interrupted = report["interrupted"].as_bool().unwrap_or(false);
    let rows = [
        ("events read", int("events").to_string()),
        (
            "processed",
            format!("{} ({} with topics, {} topics)", int("processed"), int("tagged"), int("topics_assigned")),
        ),
        ("skipped", format!("{skipped_total}")),
        ("failed", failed.to_string()),
        ("elapsed", format!("{:.1} s ({:.1} events/s)", num(&report["elapsed_s"]), num(&report["events_per_s"]))),
        ("model loading on first use", format!("{:.2} s", num(&report["model_load_s"]))),
        (
            "threads",
            format!(
                "budget {}, {} decoders, {} per model call, {} speech sessions made",
                report["threads"]["budget"],
                report["threads"]["decoders"],
                report["threads"]["model_threads"],
                report["threads"]["speech_sessions_made"]
            ),
        ),
        ("taxonomy", report["taxonomy"].as_str().unwrap_or("").to_string()),
        ("models", report["model_set"].as_str().unwrap_or("").to_string()),
        (
            "tagger bars",
            match report["tagger_settings"].as_object() {
                Some(given) if !given.is_empty() => {
                    let given: Vec<String> =
                        given.iter().map(|(n, v)| format!("{n} {}", v.as_str().unwrap_or(""))).collect();
                    format!("tightened from the calibration's: {}", given.join(", "))
                }
                _ => "the calibration's own".into(),
            },
        ),
        (
            "stopped",
            if interrupted {
                format!("interrupted by {}: a rerun continues", report["signal"].as_str().unwrap_or("a signal"))
            } else {
                "no: the whole manifest was read".into()
            },
        ),
    ];
    for (name, value) in rows {
        let _ = write!(page, "<tr><td>{}</td><td>{}</td></tr>", escape(name), escape(&value));
    }
    page.push_str("</table>\n");

    // Outcomes: every event is processed, skipped for one reason, or failed.
    let mut outcomes = vec![("processed".to_string(), int("processed") as f64, USED)];
    outcomes.extend(skipped.iter().map(|(k, v)| (format!("skipped: {k}"), *v, SKIPPED)));
    outcomes.push(("failed".into(), failed as f64, FAILED));
    section(&mut page, "Events by outcome", &bars(&outcomes, |v| format!("{v:.0}")));

    let stages: Vec<(String, f64, &str)> = report["stages"]
        .as_object()
        .map(|m| {
            // A stage that handled nothing (decode on a run of words alone) is left out.
            m.iter()
                .filter(|(_, v)| num(&v["items"]) > 0.0)
                .map(|(k, v)| (stage_label(k, v), num(&v["busy_s"]), USED))
                .collect()
        })
        .unwrap_or_default();
    section(&mut page, "Busy time per stage", &bars(&stages, |v| format!("{v:.2} s")));

    // From the start of the run: nothing read at 0 s.
    let timeline: Vec<(f64, f64, f64)> = report["timeline"]
        .as_array()
        .map(|a| {
            std::iter::once((0.0, 0.0, 0.0))
                .chain(a.iter().map(|p| (num(&p["elapsed_s"]), num(&p["events"]), num(&p["processed"]))))
                .collect()
        })
        .unwrap_or_default();
    section(&mut page, "Over the run", &line_chart(&timeline));

    for (title, key) in [
        ("Topics by branch of the Interest taxonomy", "topics_by_branch"),
        ("Texts by language (as the language gate identified them)", "languages"),
        ("Texts found sensitive, by language", "sensitive_by_language"),
        ("Processed events by product", "products"),
    ] {
        let mut rows: Vec<(String, f64, &str)> = report[key]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), num(v), USED)).collect())
            .unwrap_or_default();
        rows.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        section(&mut page, title, &bars(&rows, |v| format!("{v:.0}")));
    }
    page.push_str("</body></html>\n");
    page
}

fn stage_label(name: &str, stats: &Value) -> String {
    let items = stats["items"].as_f64().unwrap_or(0.0);
    let busy = stats["busy_s"].as_f64().unwrap_or(0.0);
    let rate = if busy > 0.0 { items / busy } else { 0.0 };
    format!("{name}: {items:.0} items, {rate:.1}/s")
}

fn section(page: &mut String, title: &str, body: &str) {
    let _ = write!(page, "<h2>{}</h2>\n{body}\n", escape(title));
}

/// Horizontal bars, one row each, scaled to the largest value.
fn bars(rows: &[(String, f64, &str)], value: impl Fn(f64) -> String) -> String {
    if rows.is_empty() || rows.iter().all(|r| r.1 <= 0.0) {
        return "<p class=\"note\">none</p>".into();
    }
    const LABEL: f64 = 330.0;
    const WIDTH: f64 = 520.0;
    const ROW: f64 = 22.0;
    let max = rows.iter().map(|r| r.1).fold(0.0, f64::max).max(f64::MIN_POSITIVE);
    let height = ROW * rows.len() as f64 + 4.0;
    let mut svg = format!(
        "<svg role=\"img\" width=\"{}\" height=\"{height}\" viewBox=\"0 0 {} {height}\">",
        LABEL + WIDTH + 90.0,
        LABEL + WIDTH + 90.0
    );
    for (k, (label, v, colour)) in rows.iter().enumerate() {
        let y = ROW * k as f64 + 2.0;
        let w = (WIDTH * v / max).max(if *v > 0.0 { 1.0 } else { 0.0 });
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{LABEL}\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" fill=\"{colour}\"/>\
             <text x=\"{:.1}\" y=\"{}\">{}</text>",
            LABEL - 8.0,
            y + 14.0,
            escape(label),
            ROW - 6.0,
            LABEL + w + 6.0,
            y + 14.0,
            escape(&value(*v))
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Events read and processed against seconds into the run.
fn line_chart(points: &[(f64, f64, f64)]) -> String {
    if points.len() < 2 {
        return "<p class=\"note\">one batch: no course to draw</p>".into();
    }
    let (w, h, left, bottom) = (760.0, 240.0, 60.0, 28.0);
    let t_max = points.iter().map(|p| p.0).fold(0.0, f64::max).max(1e-3);
    let n_max = points.iter().map(|p| p.1.max(p.2)).fold(0.0, f64::max).max(1.0);
    let x = |t: f64| left + (w - left - 10.0) * t / t_max;
    let y = |n: f64| (h - bottom) * (1.0 - n / n_max) + 6.0;
    let path = |pick: fn(&(f64, f64, f64)) -> f64| {
        points.iter().map(|p| format!("{:.1},{:.1}", x(p.0), y(pick(p)))).collect::<Vec<_>>().join(" ")
    };
    format!(
        "<p class=\"legend\"><span style=\"background:{USED}\"></span>events read\
         <span style=\"background:{LINE_PROCESSED}\"></span>processed</p>\
         <svg role=\"img\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\
         <line x1=\"{left}\" y1=\"{y0:.1}\" x2=\"{x1:.1}\" y2=\"{y0:.1}\" stroke=\"#999\"/>\
         <line x1=\"{left}\" y1=\"6\" x2=\"{left}\" y2=\"{y0:.1}\" stroke=\"#999\"/>\
         <polyline fill=\"none\" stroke=\"{USED}\" stroke-width=\"2\" points=\"{events}\"/>\
         <polyline fill=\"none\" stroke=\"{LINE_PROCESSED}\" stroke-width=\"2\" points=\"{processed}\"/>\
         <text x=\"{left}\" y=\"{ty:.1}\">0 s</text><text x=\"{x1:.1}\" y=\"{ty:.1}\" text-anchor=\"end\">{t_max:.1} s</text>\
         <text x=\"{lx:.1}\" y=\"14\" text-anchor=\"end\">{n_max:.0}</text>\
         <text x=\"{lx:.1}\" y=\"{y0:.1}\" text-anchor=\"end\">0</text></svg>\
         <p class=\"note\">{rate:.1} events/s over the run</p>",
        y0 = y(0.0),
        x1 = x(t_max),
        ty = h - 6.0,
        lx = left - 6.0,
        events = path(|p| p.1),
        processed = path(|p| p.2),
        rate = points.last().map_or(0.0, |p| p.1 / t_max),
    )
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Value {
        serde_json::json!({
            "events": 10, "processed": 6, "tagged": 5, "topics_assigned": 7,
            "skipped": {"jurisdiction": 2, "sensitive": 1, "duplicate": 0},
            "failed": [{"event_id": "x", "line": 3, "message": "bad"}],
            "languages": {"en": 4, "es": 2}, "elapsed_s": 2.0, "events_per_s": 5.0, "model_load_s": 0.0,
            "taxonomy": "iab", "model_set": "m<script>alert(1)</script>",
            "stages": {"text": {"busy_s": 0.5, "items": 6}, "decode": {"busy_s": 0.0, "items": 0}},
            "threads": {"budget": 2, "decoders": 1, "model_threads": 2, "speech_sessions_made": 0},
            "interrupted": false,
            "products": {"assistant": 6}, "topics_by_branch": {"Sports": 4, "Travel": 3},
            "timeline": [{"elapsed_s": 0.5, "events": 4, "processed": 2}, {"elapsed_s": 2.0, "events": 10, "processed": 6}]
        })
    }

    #[test]
    fn every_chart_is_drawn_and_nothing_is_fetched_or_run() {
        let page = render(&report());
        for title in [
            "Events by outcome",
            "Busy time per stage",
            "Over the run",
            "Topics by branch",
            "by language",
            "by product",
        ] {
            assert!(page.contains(title), "{title}");
        }
        assert!(
            page.contains("skipped: jurisdiction") && !page.contains("skipped: duplicate"),
            "only reasons that occurred"
        );
        assert!(page.contains("text: 6 items") && !page.contains("decode: 0 items"), "only stages that ran");
        assert_eq!(page.matches("<polyline").count(), 2);
        assert!(
            !page.contains("http") && !page.contains("src=") && !page.contains("<script"),
            "self-contained, no script"
        );
        assert!(page.contains("m&lt;script&gt;"), "text is escaped");
        assert!(page.contains("<td>tagger bars</td><td>the calibration&#39;s own</td>"), "{page}");
        let mut tightened = report();
        tightened["tagger_settings"] = serde_json::json!({"classifier_threshold": "0.08"});
        let page = render(&tightened);
        assert!(page.contains("tightened from the calibration&#39;s: classifier_threshold 0.08"), "{page}");
    }

    #[test]
    fn an_empty_or_old_report_still_renders() {
        let page = render(&serde_json::json!({"events": 0}));
        assert!(page.contains("attune run report") && page.contains("none"));
    }
}
