//! Line charts as plain SVG: a logarithmic x axis of key counts, a linear y axis from 0,
//! one line per series with a dot and its value at every point.

/// One line: a name and its (x, y) points, x ascending.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

const W: f64 = 640.0;
const H: f64 = 360.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 160.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLOURS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

fn short(v: f64) -> String {
    match v.abs() {
        x if x >= 1e6 => format!("{:.3}M", v / 1e6),
        x if x >= 1e3 => format!("{:.1}K", v / 1e3),
        x if x >= 10.0 => format!("{v:.0}"),
        _ => format!("{v:.2}"),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// [`line_chart`] with a linear x axis from 0 (time), ticks at tenths.
pub fn line_chart_linear(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    chart(title, x_label, y_label, series, false)
}

pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    chart(title, x_label, y_label, series, true)
}

fn chart(title: &str, x_label: &str, y_label: &str, series: &[Series], log_x: bool) -> String {
    let xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    let ys: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .collect();
    let scale = |x: f64| if log_x { x.max(1.0).log10() } else { x };
    let x_max = xs.iter().copied().fold(1.0, f64::max);
    let x_lo = match log_x {
        true => scale(xs.iter().copied().fold(f64::INFINITY, f64::min)),
        false => 0.0,
    };
    let x_hi = scale(x_max);
    let y_hi = ys
        .iter()
        .copied()
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE)
        * 1.15;
    let span = (x_hi - x_lo).max(1e-9);
    let px = |x: f64| LEFT + (scale(x) - x_lo) / span * (W - LEFT - RIGHT);
    let py = |y: f64| H - BOTTOM - y / y_hi * (H - TOP - BOTTOM);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{}\" y=\"22\" font-size=\"15\" text-anchor=\"middle\">{}</text>\n",
        W / 2.0,
        escape(title)
    );
    // Axes, y grid at quarters, an x tick at every point.
    out += &format!(
        "<line x1=\"{LEFT}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n<line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{}\" stroke=\"black\"/>\n",
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM,
        H - BOTTOM
    );
    for q in 0..=4 {
        let y = y_hi * q as f64 / 4.0;
        out += &format!(
            "<line x1=\"{LEFT}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\" stroke=\"#ddd\"/><text x=\"{2}\" y=\"{3:.1}\" text-anchor=\"end\">{4}</text>\n",
            py(y),
            W - RIGHT,
            LEFT - 6.0,
            py(y) + 4.0,
            short(y)
        );
    }
    let mut ticks: Vec<f64> = match log_x {
        true => xs.clone(),
        false => (0..=10).map(|i| x_max * i as f64 / 10.0).collect(),
    };
    ticks.sort_by(|a, b| a.total_cmp(b));
    ticks.dedup();
    for x in ticks {
        out += &format!(
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
            px(x),
            H - BOTTOM + 16.0,
            short(x)
        );
    }
    out += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n<text x=\"16\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {})\">{}</text>\n",
        (LEFT + W - RIGHT) / 2.0,
        H - 12.0,
        escape(x_label),
        (TOP + H - BOTTOM) / 2.0,
        (TOP + H - BOTTOM) / 2.0,
        escape(y_label)
    );
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let path: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        out += &format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\n",
            path.join(" ")
        );
        // A time series has too many points to label each.
        for &(x, y) in s.points.iter().filter(|_| log_x) {
            out += &format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{:.1}\" fill=\"{colour}\">{}</text>\n",
                px(x),
                py(y),
                px(x) + 5.0,
                py(y) - 6.0,
                short(y)
            );
        }
        out += &format!(
            "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{colour}\"/><text x=\"{}\" y=\"{}\">{}</text>\n",
            W - RIGHT + 12.0,
            TOP + 20.0 * i as f64,
            W - RIGHT + 30.0,
            TOP + 10.0 + 20.0 * i as f64,
            escape(&s.name)
        );
    }
    out + "</svg>\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_places_every_point_inside_the_plot() {
        let svg = line_chart(
            "t <1>",
            "keys",
            "puts/s",
            &[Series {
                name: "dstash".into(),
                points: vec![(1e6, 5e5), (1e7, 4e5), (5e7, 3e5)],
            }],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("t &lt;1&gt;"), "titles are escaped");
        assert_eq!(svg.matches("<circle").count(), 3);
        for c in svg.split("<circle ").skip(1) {
            let attr = |name: &str| -> f64 {
                c.split(&format!("{name}=\""))
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            };
            assert!((LEFT..=W - RIGHT).contains(&attr("cx")), "{c}");
            assert!((TOP..=H - BOTTOM).contains(&attr("cy")), "{c}");
        }
    }
}
