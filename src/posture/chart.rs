//! Line charts as inline SVG, drawn on the server: no script, printable, readable by screen
//! readers through their `<title>`s.

use std::fmt::Write;

/// One line: its name (escaped here: cluster names are user input) and a value per day
/// (`None` where that day has no snapshot or no figure).
pub struct Series {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

const W: f64 = 640.0;
const H: f64 = 220.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;
/// Line colours, by series order (repeating past eight).
const COLOURS: [&str; 8] = [
    "#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563",
];

/// A chart of `series` over `labels` (one per day, oldest first). `max`: the top of the scale
/// (`None`: the largest value, rounded up). `unit` follows every value in the tooltips.
pub fn line_chart(
    title: &str,
    labels: &[String],
    series: &[Series],
    max: Option<f64>,
    unit: &str,
) -> String {
    let mut svg = String::new();
    let top = max.unwrap_or_else(|| {
        let m = series
            .iter()
            .flat_map(|s| s.values.iter().flatten())
            .fold(0.0_f64, |a, b| a.max(*b));
        nice_ceiling(m)
    });
    let n = labels.len().max(1);
    let x = |i: usize| {
        if n == 1 {
            LEFT + (W - LEFT - RIGHT) / 2.0
        } else {
            LEFT + (W - LEFT - RIGHT) * i as f64 / (n - 1) as f64
        }
    };
    let y = |v: f64| TOP + (H - TOP - BOTTOM) * (1.0 - (v / top).clamp(0.0, 1.0));
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg"><title>{t}</title>"#,
        t = escape(title)
    );
    for step in 0..=4 {
        let v = top * step as f64 / 4.0;
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{x2}" y1="{yy:.1}" y2="{yy:.1}" stroke="#e5e7eb"/><text x="{tx}" y="{ty:.1}" font-size="10" text-anchor="end" fill="#6b7280">{v}</text>"##,
            x2 = W - RIGHT,
            yy = y(v),
            tx = LEFT - 4.0,
            ty = y(v) + 3.0,
            v = trim(v)
        );
    }
    // First, middle and last day under the axis.
    let mut shown: Vec<usize> = vec![0, n / 2, n - 1];
    shown.dedup();
    for i in shown {
        if let Some(l) = labels.get(i) {
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{}" font-size="10" text-anchor="middle" fill="#6b7280">{}</text>"##,
                x(i),
                H - 8.0,
                escape(l)
            );
        }
    }
    for (k, s) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        // A gap where a day has no value: each run of days is its own line.
        let mut run = String::new();
        let flush = |run: &mut String, svg: &mut String| {
            if run.matches(' ').count() >= 2 {
                let _ = write!(
                    svg,
                    r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{run}"/>"#
                );
            }
            run.clear();
        };
        for (i, v) in s.values.iter().enumerate() {
            match v {
                Some(v) => {
                    let _ = write!(run, "{:.1},{:.1} ", x(i), y(*v));
                    let _ = write!(
                        svg,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{colour}"><title>{}: {}{unit} on {}</title></circle>"#,
                        x(i),
                        y(*v),
                        escape(&s.name),
                        trim(*v),
                        labels.get(i).map(|l| escape(l)).unwrap_or_default()
                    );
                }
                None => flush(&mut run, &mut svg),
            }
        }
        flush(&mut run, &mut svg);
    }
    svg.push_str("</svg>");
    svg
}

/// The legend for `series`, in the chart's colours (HTML, escaped).
pub fn legend(series: &[Series]) -> String {
    let mut out = String::from(r#"<ul class="legend">"#);
    for (k, s) in series.iter().enumerate() {
        let _ = write!(
            out,
            r#"<li><span class="swatch" style="background:{}"></span>{}</li>"#,
            COLOURS[k % COLOURS.len()],
            escape(&s.name)
        );
    }
    out.push_str("</ul>");
    out
}

/// 1, 2 or 5 times a power of ten at or above `v` (at least 1).
fn nice_ceiling(v: f64) -> f64 {
    if v <= 1.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * p)
}

fn trim(v: f64) -> String {
    if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
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

    #[test]
    fn draws_lines_with_gaps_and_escapes_names() {
        let labels: Vec<String> = (1..=4).map(|d| format!("12-0{d}")).collect();
        let svg = line_chart(
            "Compliant images",
            &labels,
            &[Series {
                name: "<script>prod</script>".into(),
                values: vec![Some(50.0), Some(75.0), None, Some(100.0)],
            }],
            Some(100.0),
            "%",
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;prod&lt;/script&gt;: 75% on 12-02"));
        // Two days, a gap, one day: one polyline of two points (a lone point draws none).
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(legend(&[]).contains("legend"));
    }

    #[test]
    fn scales_round_up() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(13.0), 20.0);
        assert_eq!(nice_ceiling(420.0), 500.0);
    }
}
