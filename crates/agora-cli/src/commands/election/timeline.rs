//! A run over time: operations answered and their latency per interval, with the moments a
//! new leader took over, as a CSV and an SVG chart. Tail latency is made of moments, and this
//! is where they show.

use crate::commands::shared::output;
use crate::error::UserError;
use plotters::prelude::*;
use std::path::Path;

/// A latency line: its name, colour and value per bucket.
type Series = (&'static str, RGBColor, fn(&Bucket) -> f64);

/// One interval of the run.
#[derive(Clone, Debug, PartialEq)]
pub struct Bucket {
    /// Start of the interval, in ms since the first operation began.
    pub at_ms: f64,
    /// Operations answered in the interval.
    pub answered: u64,
    pub per_s: f64,
    /// Latency of the operations answered in the interval (0 if none).
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// A stretch of the run to shade (a fault), in ms since the first operation began.
#[derive(Clone, Debug, PartialEq)]
pub struct Band {
    pub from_ms: f64,
    pub to_ms: f64,
    pub label: String,
}

/// A run's timeline: buckets of `width_ms`, when leaders took over (ms, node, term), and
/// stretches to shade.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    pub width_ms: f64,
    pub buckets: Vec<Bucket>,
    pub leaders: Vec<(f64, u32, u64)>,
    pub bands: Vec<Band>,
    /// When the first operation began (the clock of `build`'s input).
    pub origin_ns: u64,
}

/// Builds the timeline from operations `(begin ns, end ns)` and leader changes `(ns, node,
/// term)`, all on one clock, in intervals of about a two-hundredth of the run (at least 1 ms).
pub fn build(ops: &[(u64, u64)], leaders: &[(u64, u32, u64)]) -> Timeline {
    let Some(origin) = ops.iter().map(|o| o.0).min() else { return Timeline::default() };
    let end = ops.iter().map(|o| o.1).max().unwrap_or(origin);
    let span_ms = (end - origin) as f64 / 1e6;
    let width_ms = nice_width(span_ms / 200.0);
    let width_ns = (width_ms * 1e6) as u64;
    let n = ((end - origin) / width_ns + 1) as usize;
    let mut lat: Vec<Vec<u64>> = vec![Vec::new(); n];
    for &(b, e) in ops {
        lat[((e - origin) / width_ns) as usize].push(e.saturating_sub(b));
    }
    let buckets = lat
        .into_iter()
        .enumerate()
        .map(|(i, mut l)| {
            l.sort_unstable();
            let q = |p: f64| {
                if l.is_empty() {
                    0.0
                } else {
                    l[((l.len() as f64 * p).ceil() as usize).clamp(1, l.len()) - 1] as f64 / 1e6
                }
            };
            Bucket {
                at_ms: i as f64 * width_ms,
                answered: l.len() as u64,
                per_s: l.len() as f64 / (width_ms / 1e3),
                p50_ms: q(0.5),
                p99_ms: q(0.99),
                max_ms: q(1.0),
            }
        })
        .collect();
    let leaders = leaders
        .iter()
        .filter(|l| l.0 >= origin)
        .map(|&(t, node, term)| ((t - origin) as f64 / 1e6, node, term))
        .collect();
    Timeline { width_ms, buckets, leaders, bands: Vec::new(), origin_ns: origin }
}

/// The smallest of 1, 2, 5 × 10^k ms at least `ms`.
fn nice_width(ms: f64) -> f64 {
    let mut w = 1.0;
    loop {
        for m in [1.0, 2.0, 5.0] {
            if w * m >= ms {
                return w * m;
            }
        }
        w *= 10.0;
    }
}

impl Timeline {
    pub fn csv(&self) -> String {
        let mut s =
            String::from("at_ms,answered,per_s,latency_ms_p50,latency_ms_p99,latency_ms_max,new_leaders\n");
        for b in &self.buckets {
            let leaders =
                self.leaders.iter().filter(|l| l.0 >= b.at_ms && l.0 < b.at_ms + self.width_ms).count();
            s.push_str(&format!(
                "{},{},{:.0},{:.3},{:.3},{:.3},{leaders}\n",
                b.at_ms, b.answered, b.per_s, b.p50_ms, b.p99_ms, b.max_ms
            ));
        }
        s
    }

    /// Two panels sharing the time axis: operations answered per second, and latency (p50,
    /// p99, max; logarithmic). A vertical line marks each new leader; bands are shaded, with
    /// their labels along the top.
    pub fn svg(&self, path: &Path, what: &str, goal_ms: Option<f64>) -> Result<(), UserError> {
        let err = |e: String| UserError(format!("cannot draw {}: {e}", path.display()));
        let end = self.buckets.len() as f64 * self.width_ms / 1e3;
        let root = SVGBackend::new(path, (1200, 760)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let (top, bottom) = root.split_vertically(330);
        let rate_max = self.buckets.iter().map(|b| b.per_s).fold(1.0, f64::max) * 1.1;
        let mut rate = ChartBuilder::on(&top)
            .caption(format!("{what} answered per second"), ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(30)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..end.max(1e-3), 0.0..rate_max)
            .map_err(|e| err(e.to_string()))?;
        rate.configure_mesh().x_desc("s").draw().map_err(|e| err(e.to_string()))?;
        let band = |b: &Band| (b.from_ms.clamp(0.0, end * 1e3) / 1e3, b.to_ms.clamp(0.0, end * 1e3) / 1e3);
        let shade = RGBColor(255, 165, 0).mix(0.25).filled();
        rate.draw_series(self.bands.iter().map(|b| {
            let (x0, x1) = band(b);
            Rectangle::new([(x0, 0.0), (x1, rate_max)], shade)
        }))
        .map_err(|e| err(e.to_string()))?;
        rate.draw_series(self.bands.iter().enumerate().map(|(i, b)| {
            let y = rate_max * (0.97 - 0.06 * (i % 3) as f64);
            Text::new(b.label.clone(), (band(b).0, y), ("sans-serif", 13).into_font().color(&BLACK))
        }))
        .map_err(|e| err(e.to_string()))?;
        let w = self.width_ms / 1e3;
        rate.draw_series(self.buckets.iter().map(|b| {
            let x = b.at_ms / 1e3;
            Rectangle::new([(x, 0.0), (x + w, b.per_s)], BLUE.mix(0.6).filled())
        }))
        .map_err(|e| err(e.to_string()))?;
        let lat_max = self.buckets.iter().map(|b| b.max_ms).fold(goal_ms.unwrap_or(1.0), f64::max) * 1.5;
        let lat_min =
            self.buckets.iter().filter(|b| b.answered > 0).map(|b| b.p50_ms).fold(lat_max, f64::min);
        let lat_min = (lat_min / 2.0).max(1e-3);
        let mut lat = ChartBuilder::on(&bottom)
            .caption(format!("latency of the {what} answered, ms (log scale)"), ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..end.max(1e-3), (lat_min..lat_max).log_scale())
            .map_err(|e| err(e.to_string()))?;
        lat.draw_series(self.bands.iter().map(|b| {
            let (x0, x1) = band(b);
            Rectangle::new([(x0, lat_min), (x1, lat_max)], shade)
        }))
        .map_err(|e| err(e.to_string()))?;
        lat.configure_mesh()
            .x_desc(format!("seconds since the first of the {what} began"))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        let series: [Series; 3] =
            [("max", RED, |b| b.max_ms), ("p99", MAGENTA, |b| b.p99_ms), ("p50", BLUE, |b| b.p50_ms)];
        for (name, color, f) in series {
            let points: Vec<(f64, f64)> = self
                .buckets
                .iter()
                .filter(|b| b.answered > 0)
                .map(|b| ((b.at_ms + self.width_ms / 2.0) / 1e3, f(b).max(lat_min)))
                .collect();
            lat.draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(|e| err(e.to_string()))?
                .label(name)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
        }
        if let Some(g) = goal_ms {
            lat.draw_series(LineSeries::new([(0.0, g), (end, g)], BLACK.mix(0.6)))
                .map_err(|e| err(e.to_string()))?
                .label(format!("goal {g} ms"))
                .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK.mix(0.6)));
        }
        let marks = self.leaders.iter().map(|l| l.0 / 1e3);
        lat.draw_series(
            marks.clone().map(|x| PathElement::new([(x, lat_min), (x, lat_max)], GREEN.stroke_width(1))),
        )
        .map_err(|e| err(e.to_string()))?
        .label("new leader")
        .legend(|(x, y)| PathElement::new([(x + 8, y - 6), (x + 8, y + 6)], GREEN));
        rate.draw_series(marks.map(|x| PathElement::new([(x, 0.0), (x, rate_max)], GREEN.stroke_width(1))))
            .map_err(|e| err(e.to_string()))?;
        output::legend(&mut lat, SeriesLabelPosition::UpperRight).map_err(err)?;
        root.present().map_err(|e| err(e.to_string()))?;
        Ok(())
    }

    pub fn write(&self, dir: &Path, what: &str, goal_ms: Option<f64>) -> Result<(), UserError> {
        output::write_file(&dir.join("timeline.csv"), &self.csv())?;
        self.svg(&dir.join("timeline.svg"), what, goal_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn buckets_hold_what_ended_in_them_and_their_latency() {
        // 100 operations of 1 ms ending in the first 100 ms, one of 250 ms ending at 300 ms.
        let mut ops: Vec<(u64, u64)> = (0..100).map(|i| (i * MS, (i + 1) * MS)).collect();
        ops.push((50 * MS, 300 * MS));
        let t = build(&ops, &[(120 * MS, 2, 7)]);
        assert_eq!(t.width_ms, 2.0, "300 ms / 200, rounded up to 1-2-5");
        let answered: u64 = t.buckets.iter().map(|b| b.answered).sum();
        assert_eq!(answered, 101);
        let last = t.buckets.last().unwrap();
        assert_eq!((last.answered, last.max_ms, last.p50_ms), (1, 250.0, 250.0));
        assert_eq!((t.buckets[0].answered, t.buckets[0].max_ms), (1, 1.0), "only the op ending at 1 ms");
        assert_eq!(t.buckets[1].answered, 2, "ends at 2 and 3 ms");
        assert_eq!(t.leaders, vec![(120.0, 2, 7)]);
        let csv = t.csv();
        assert_eq!(csv.lines().count(), t.buckets.len() + 1);
        let marked: Vec<&str> = csv.lines().skip(1).filter(|l| !l.ends_with(",0")).collect();
        assert_eq!(marked.len(), 1, "one new leader");
        assert!(marked[0].starts_with("120,"), "in the bucket from 120 ms: {}", marked[0]);
    }

    #[test]
    fn no_operations_no_timeline() {
        assert!(build(&[], &[]).buckets.is_empty());
    }
}
