//! Bar charts as SVG, written by hand on the server: no dependency, no
//! script, and XML a test can parse (maud writes HTML, whose void elements
//! are not closed, so the SVG is a string here, every text escaped).
//!
//! A chart is categories along the bottom (days, response-time measures,
//! variants), one bar per series in each, on a value axis with "nice" ticks
//! ([`Scale`]), and optional reference lines (the response standard). It
//! has an accessible name (`role="img"`, `<title>`, `<desc>`); the page puts
//! the same numbers in a table beside it. The drawing is [`WIDTH`] units
//! wide and scales to its box: readable at 360 px.

use std::fmt::Write;

/// The drawing's size in user units: near a phone's width, so text keeps
/// about its size there.
pub const WIDTH: f64 = 320.0;
pub const HEIGHT: f64 = 200.0;
/// Room for the value axis's labels, the category labels and the legend.
const LEFT: f64 = 52.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 44.0;
/// The least room a category label needs along the bottom.
const LABEL_ROOM: f64 = 52.0;
/// Ticks the value axis aims for.
const TICKS: usize = 4;

/// Series colours (3:1 or more against white, told apart without colour by
/// the legend's order and the table).
const PALETTE: [&str; 4] = ["#0b57c2", "#a61b1b", "#2f7d32", "#8a4b00"];

/// A category along the bottom.
#[derive(Debug, Clone)]
pub struct Category {
    /// Under its bars (short: "Mar 2").
    pub axis: String,
    /// In a bar's tooltip ("2 March 2026").
    pub full: String,
}

/// One series: a bar per category.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    /// Per category; `None` (no data) draws no bar.
    pub values: Vec<Option<f64>>,
}

/// A line across the chart at a value, with its label.
#[derive(Debug, Clone)]
pub struct Reference {
    pub value: f64,
    pub label: String,
}

/// How the value axis counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Whole things (contacts): integer ticks.
    Count,
    /// A share, 0 to 1, shown as a percentage.
    Share,
    /// Seconds, shown as "30 s", "10 min", "2 h".
    Seconds,
}

impl Unit {
    /// A value as the axis and tooltips write it.
    pub fn format(self, value: f64) -> String {
        match self {
            Unit::Count => format!("{}", value.round() as i64),
            Unit::Share => percent(value),
            Unit::Seconds => duration(value),
        }
    }

    /// The tick steps this unit may use, smallest first.
    fn steps(self) -> Vec<f64> {
        match self {
            Unit::Count => decades(1.0),
            Unit::Share => decades(0.01),
            Unit::Seconds => {
                let mut steps = vec![
                    1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0,
                    3600.0, 7200.0, 10_800.0, 21_600.0, 43_200.0,
                ];
                steps.extend(decades(1.0).into_iter().map(|d| d * 86_400.0));
                steps
            }
        }
    }
}

/// 1, 2, 5 times the powers of ten from `least`.
fn decades(least: f64) -> Vec<f64> {
    let mut steps = Vec::new();
    let mut power = least;
    while power < 1e15 {
        steps.extend([power, 2.0 * power, 5.0 * power]);
        power *= 10.0;
    }
    steps
}

/// A share as a percentage: "40%", "12.5%", "0.3%".
pub fn percent(share: f64) -> String {
    let p = share * 100.0;
    if (p - p.round()).abs() < 0.05 {
        format!("{}%", p.round() as i64)
    } else {
        format!("{p:.1}%")
    }
}

/// Seconds in the largest unit that keeps the number short: "45 s",
/// "10 min", "1.5 h", "2 d".
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0);
    let (value, unit) = if s < 60.0 {
        (s, "s")
    } else if s < 3600.0 {
        (s / 60.0, "min")
    } else if s < 86_400.0 {
        (s / 3600.0, "h")
    } else {
        (s / 86_400.0, "d")
    };
    if (value - value.round()).abs() < 0.05 {
        format!("{} {unit}", value.round() as i64)
    } else {
        format!("{value:.1} {unit}")
    }
}

/// The value axis: from 0 to `max` in steps of `step`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    pub max: f64,
    pub step: f64,
}

impl Scale {
    /// The smallest step of `unit` that covers `largest` in at most
    /// [`TICKS`] steps (a chart of nothing still has one step).
    pub fn new(largest: f64, unit: Unit) -> Scale {
        let steps = unit.steps();
        let largest = if largest.is_finite() && largest > 0.0 {
            largest
        } else {
            0.0
        };
        let step = steps
            .iter()
            .copied()
            .find(|s| s * TICKS as f64 >= largest)
            .unwrap_or_else(|| steps.last().copied().unwrap_or(1.0).max(largest));
        let count = (largest / step).ceil().max(1.0);
        Scale {
            max: count * step,
            step,
        }
    }

    /// The tick values, 0 first.
    pub fn ticks(&self) -> Vec<f64> {
        let count = (self.max / self.step).round() as usize;
        (0..=count).map(|i| i as f64 * self.step).collect()
    }
}

/// Which category labels fit along `width`: every `n`th, starting at the
/// first.
pub fn label_every(categories: usize, width: f64) -> usize {
    let fit = (width / LABEL_ROOM).floor().max(1.0) as usize;
    categories.div_ceil(fit).max(1)
}

/// A bar chart.
#[derive(Debug, Clone)]
pub struct BarChart {
    /// Unique on the page: the `<title>` and `<desc>` ids.
    pub id: String,
    /// The accessible name.
    pub title: String,
    /// What it shows, in a sentence (`<desc>`).
    pub description: String,
    pub categories: Vec<Category>,
    pub series: Vec<Series>,
    pub unit: Unit,
    pub references: Vec<Reference>,
}

impl BarChart {
    /// The scale: the largest bar or reference line fits.
    pub fn scale(&self) -> Scale {
        let largest = self
            .series
            .iter()
            .flat_map(|s| s.values.iter().flatten())
            .chain(self.references.iter().map(|r| &r.value))
            .fold(0.0f64, |a, b| a.max(*b));
        Scale::new(largest, self.unit)
    }

    /// The chart as an `<svg>` element.
    pub fn svg(&self) -> String {
        let scale = self.scale();
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let bottom = TOP + plot_h;
        let y = |v: f64| bottom - (v.max(0.0) / scale.max).min(1.0) * plot_h;
        let id = escape(&self.id);
        let mut out = String::with_capacity(2048 + 160 * self.categories.len());
        let _ = write!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
             role=\"img\" aria-labelledby=\"{id}-title {id}-desc\" font-size=\"13\" fill=\"#3e4c59\">\
             <title id=\"{id}-title\">{}</title><desc id=\"{id}-desc\">{}</desc>",
            escape(&self.title),
            escape(&self.description)
        );
        // Grid lines and value labels.
        out.push_str("<g class=\"axis\">");
        for tick in scale.ticks() {
            let ty = round(y(tick));
            let _ = write!(
                out,
                "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{ty}\" y2=\"{ty}\" stroke=\"{}\"/>\
                 <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
                WIDTH - RIGHT,
                if tick == 0.0 { "#52606d" } else { "#d9dee3" },
                LEFT - 4.0,
                round(ty + 4.0),
                escape(&self.unit.format(tick))
            );
        }
        out.push_str("</g>");
        // Bars: a group per series, so a test (or a stylesheet) finds them.
        let n = self.categories.len().max(1);
        let group = plot_w / n as f64;
        let gap = if group > 6.0 { group * 0.2 } else { 0.0 };
        let bar = (group - gap) / self.series.len().max(1) as f64;
        for (s, series) in self.series.iter().enumerate() {
            let colour = PALETTE[s % PALETTE.len()];
            let _ = write!(
                out,
                "<g class=\"series\" data-series=\"{}\" fill=\"{colour}\">",
                escape(&series.name)
            );
            for (i, category) in self.categories.iter().enumerate() {
                let Some(value) = series.values.get(i).copied().flatten() else {
                    continue;
                };
                let x = LEFT + i as f64 * group + gap / 2.0 + s as f64 * bar;
                let top = y(value);
                let _ = write!(
                    out,
                    "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" data-value=\"{value}\">\
                     <title>{}: {} {}</title></rect>",
                    round(x),
                    round(top),
                    round(bar.max(0.5)),
                    round(bottom - top),
                    escape(&category.full),
                    escape(&series.name),
                    escape(&self.unit.format(value))
                );
            }
            out.push_str("</g>");
        }
        // Values over the bars, where a bar is wide enough for its label.
        out.push_str("<g class=\"values\" text-anchor=\"middle\">");
        for (s, series) in self.series.iter().enumerate() {
            for (i, value) in series.values.iter().enumerate() {
                let Some(value) = value else { continue };
                let label = self.unit.format(*value);
                if 7.5 * label.chars().count() as f64 > bar {
                    continue;
                }
                let x = LEFT + i as f64 * group + gap / 2.0 + (s as f64 + 0.5) * bar;
                let _ = write!(
                    out,
                    "<text x=\"{}\" y=\"{}\">{}</text>",
                    round(x),
                    round(y(*value) - 4.0),
                    escape(&label)
                );
            }
        }
        out.push_str("</g>");
        // Reference lines, over the bars.
        for reference in &self.references {
            let ry = round(y(reference.value));
            let _ = write!(
                out,
                "<g class=\"reference\" data-value=\"{}\"><line x1=\"{LEFT}\" x2=\"{}\" y1=\"{ry}\" y2=\"{ry}\" \
                 stroke=\"#1b1f24\" stroke-width=\"1.5\" stroke-dasharray=\"5 3\"/>\
                 <text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#1b1f24\" stroke=\"#fff\" \
                 stroke-width=\"3\" paint-order=\"stroke\">{}</text></g>",
                reference.value,
                WIDTH - RIGHT,
                WIDTH - RIGHT,
                round(ry - 4.0),
                escape(&reference.label)
            );
        }
        // Category labels, as many as fit.
        let every = label_every(self.categories.len(), plot_w);
        out.push_str("<g class=\"labels\" text-anchor=\"middle\">");
        for (i, category) in self.categories.iter().enumerate().step_by(every) {
            let _ = write!(
                out,
                "<text x=\"{}\" y=\"{}\">{}</text>",
                round(LEFT + (i as f64 + 0.5) * group),
                round(bottom + 16.0),
                escape(&category.axis)
            );
        }
        out.push_str("</g>");
        // The legend along the bottom.
        out.push_str("<g class=\"legend\">");
        let mut x = LEFT;
        for (s, series) in self.series.iter().enumerate() {
            let _ = write!(
                out,
                "<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/>\
                 <text x=\"{}\" y=\"{}\">{}</text>",
                round(x),
                HEIGHT - 14.0,
                PALETTE[s % PALETTE.len()],
                round(x + 14.0),
                HEIGHT - 5.0,
                escape(&series.name)
            );
            x += 24.0 + 7.5 * series.name.chars().count() as f64;
        }
        out.push_str("</g></svg>");
        out
    }
}

/// A coordinate to a tenth of a unit (short, stable output).
fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Text for XML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Not allowed in XML 1.0 at all.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_are_nice_and_cover_the_largest_value() {
        assert_eq!(
            Scale::new(0.0, Unit::Count),
            Scale {
                max: 1.0,
                step: 1.0
            }
        );
        assert_eq!(
            Scale::new(3.0, Unit::Count),
            Scale {
                max: 3.0,
                step: 1.0
            }
        );
        assert_eq!(
            Scale::new(7.0, Unit::Count),
            Scale {
                max: 8.0,
                step: 2.0
            }
        );
        assert_eq!(
            Scale::new(130.0, Unit::Count),
            Scale {
                max: 150.0,
                step: 50.0
            }
        );
        // Shares in whole percent steps; a rate of 1 is 100%.
        let s = Scale::new(0.37, Unit::Share);
        assert!((s.step - 0.1).abs() < 1e-9);
        assert!((s.max - 0.4).abs() < 1e-9);
        // Time in steps people count in: 10 min covered by 5-minute steps,
        // 3 hours by 1-hour steps.
        assert_eq!(
            Scale::new(600.0, Unit::Seconds),
            Scale {
                max: 600.0,
                step: 300.0
            }
        );
        assert_eq!(Scale::new(3.0 * 3600.0, Unit::Seconds).step, 3600.0);
        assert_eq!(Scale::new(f64::NAN, Unit::Seconds).max, 1.0);
        assert_eq!(
            Scale::new(7.0, Unit::Count).ticks(),
            [0.0, 2.0, 4.0, 6.0, 8.0]
        );
    }

    #[test]
    fn labels_say_the_unit() {
        assert_eq!(Unit::Count.format(3.0), "3");
        assert_eq!(Unit::Share.format(0.4), "40%");
        assert_eq!(Unit::Share.format(0.125), "12.5%");
        assert_eq!(Unit::Seconds.format(45.0), "45 s");
        assert_eq!(Unit::Seconds.format(600.0), "10 min");
        assert_eq!(Unit::Seconds.format(5400.0), "1.5 h");
        assert_eq!(Unit::Seconds.format(2.0 * 86_400.0), "2 d");
    }

    #[test]
    fn category_labels_thin_out_to_fit() {
        // 258 units hold four labels.
        let plot = WIDTH - LEFT - RIGHT;
        assert_eq!(plot, 258.0);
        assert_eq!(label_every(4, plot), 1);
        assert_eq!(label_every(7, plot), 2);
        assert_eq!(label_every(31, plot), 8);
        assert_eq!(label_every(0, plot), 1);
    }

    fn chart() -> BarChart {
        BarChart {
            id: "c".into(),
            title: "Replies & opt-outs <per day>".into(),
            description: "Two days".into(),
            categories: vec![
                Category {
                    axis: "Mar 2".into(),
                    full: "2 March".into(),
                },
                Category {
                    axis: "Mar 3".into(),
                    full: "3 March".into(),
                },
            ],
            series: vec![
                Series {
                    name: "Replies".into(),
                    values: vec![Some(4.0), Some(2.0)],
                },
                Series {
                    name: "Opt-outs".into(),
                    values: vec![Some(1.0), None],
                },
            ],
            unit: Unit::Count,
            references: vec![Reference {
                value: 5.0,
                label: "Five".into(),
            }],
        }
    }

    #[test]
    fn bars_are_scaled_to_the_axis_and_text_is_escaped() {
        let svg = chart().svg();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains("role=\"img\" aria-labelledby=\"c-title c-desc\""));
        assert!(
            svg.contains("<title id=\"c-title\">Replies &amp; opt-outs &lt;per day&gt;</title>")
        );
        // The reference (5) sets the scale: at most 4 steps of 1, 2 or 5
        // cover it in steps of 2, up to 6.
        assert_eq!(
            chart().scale(),
            Scale {
                max: 6.0,
                step: 2.0
            }
        );
        // 4 of 6 is two thirds of the plot's height, 2 of 6 one third.
        let plot = HEIGHT - TOP - BOTTOM;
        for (value, title) in [(4.0, "2 March: Replies 4"), (2.0, "3 March: Replies 2")] {
            let at = svg.find(title).unwrap();
            let rect = &svg[svg[..at].rfind("<rect").unwrap()..at];
            let height: f64 = attr(rect, "height").parse().unwrap();
            assert!((height - round(value / 6.0 * plot)).abs() < 1e-9, "{rect}");
            assert_eq!(attr(rect, "data-value"), value.to_string());
        }
        // No data draws no bar: three bars in all.
        assert_eq!(svg.matches("data-value=").count(), 3 + 1);
        assert!(svg.contains("<g class=\"reference\" data-value=\"5\">"));
        assert!(svg.contains(">Mar 2</text>") && svg.contains(">Mar 3</text>"));
        assert!(svg.contains(">Opt-outs</text>"));
    }

    fn attr<'a>(element: &'a str, name: &str) -> &'a str {
        let marker = format!(" {name}=\"");
        let start = element.find(&marker).unwrap() + marker.len();
        element[start..].split('"').next().unwrap()
    }

    #[test]
    fn control_characters_never_reach_the_xml() {
        assert_eq!(escape("a\u{0}b\u{1b}c'"), "abc&#39;");
    }
}
