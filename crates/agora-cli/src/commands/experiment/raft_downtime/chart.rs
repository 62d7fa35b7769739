//! The CDF charts of `agora experiment raft-downtime`, laid out as Figure 16 of the Raft
//! paper: the top panel varies the randomness of the election timeout (ranges whose maximum is
//! not twice the minimum, and 150-300), on a logarithmic axis from 100 ms as the paper's; the
//! bottom panel scales the minimum (ranges whose maximum is twice the minimum), on a linear
//! axis from 0 to 600 ms. Either axis stretches to hold the longest downtime; a panel with no
//! range is left out. The y axis is the cumulative percent of trials with a leader again.

use crate::error::UserError;
use crate::values::TimeoutRange;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// One line of a chart: a range and its trials' downtimes (`None`: no leader by the limit).
pub struct Line {
    /// The election timeout range.
    pub range: TimeoutRange,
    /// Downtime of each trial, in ms.
    pub downtimes: Vec<Option<f64>>,
}

/// The empirical CDF of `downtimes`: one point per trial with a leader, `(ms, percent of all
/// trials with a leader by then)`, in increasing order. Trials without a leader count in the
/// total, so the curve ends below 100% when there are any.
pub fn cdf(downtimes: &[Option<f64>]) -> Vec<(f64, f64)> {
    let mut d: Vec<f64> = downtimes.iter().flatten().copied().collect();
    d.sort_by(f64::total_cmp);
    let n = downtimes.len() as f64;
    d.iter().enumerate().map(|(i, &x)| (x, (i + 1) as f64 * 100.0 / n)).collect()
}

/// Whether a range belongs in the top panel (randomness varied, as the paper's 150-x).
fn top(r: &TimeoutRange) -> bool {
    r.max_ms != 2 * r.min_ms || r.min_ms == 150
}

/// Whether a range belongs in the bottom panel (the minimum scaled, as the paper's x-2x).
fn bottom(r: &TimeoutRange) -> bool {
    r.max_ms == 2 * r.min_ms
}

/// Draws the chart of `lines` into an SVG file at `path`.
pub fn draw(path: &Path, lines: &[Line], caption: &str) -> Result<(), UserError> {
    let err = |e: String| UserError(format!("cannot draw {}: {e}", path.display()));
    // Each line with its colour, its place among all the lines.
    let top: Vec<(&Line, usize)> = lines.iter().zip(0..).filter(|(l, _)| top(&l.range)).collect();
    let bottom: Vec<(&Line, usize)> = lines.iter().zip(0..).filter(|(l, _)| bottom(&l.range)).collect();
    let panels = [(&top, true), (&bottom, false)].into_iter().filter(|(p, _)| !p.is_empty()).count();
    let root = SVGBackend::new(path, (1000, 20 + 420 * panels as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let root = root.titled(caption, ("sans-serif", 17)).map_err(|e| err(e.to_string()))?;
    let areas = root.split_evenly((panels.max(1), 1));
    let mut area = areas.iter();
    for (panel, log) in [(&top, true), (&bottom, false)] {
        if panel.is_empty() {
            continue;
        }
        let Some(a) = area.next() else { break };
        let all = || panel.iter().flat_map(|(l, _)| l.downtimes.iter().flatten()).copied();
        let (longest, shortest) = (all().fold(0.0, f64::max), all().fold(f64::INFINITY, f64::min));
        if log {
            let x0 = shortest.clamp(1.0, 100.0);
            let x1 = (longest * 1.2).max(100_000.0);
            panel_chart(a, panel, (x0..x1).log_scale(), "time without leader (ms, log scale)")
                .map_err(err)?;
        } else {
            let x1 = (longest * 1.05).max(600.0);
            panel_chart(a, panel, 0.0..x1, "time without leader (ms)").map_err(err)?;
        }
    }
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

/// One panel: a step line per range, with its legend.
fn panel_chart<X>(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    lines: &[(&Line, usize)],
    x: X,
    x_desc: &str,
) -> Result<(), String>
where
    X: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
    X::CoordDescType: plotters::coord::ranged1d::ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x, 0.0..100.0)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("cumulative percent")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}%"))
        .draw()
        .map_err(|e| e.to_string())?;
    for (l, i) in lines {
        let (r, g, b) = COLORS[i % COLORS.len()];
        let color = RGBColor(r, g, b).to_rgba();
        let points = cdf(&l.downtimes);
        let mut steps = Vec::with_capacity(points.len() * 2 + 1);
        let mut below = 0.0;
        for (x, y) in points {
            steps.push((x, below));
            steps.push((x, y));
            below = y;
        }
        chart
            .draw_series(LineSeries::new(steps, color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(label(l))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    crate::commands::shared::output::legend(&mut chart, SeriesLabelPosition::LowerRight)
}

/// A line's legend: its range, and how many trials found no leader.
fn label(l: &Line) -> String {
    let none = l.downtimes.iter().filter(|d| d.is_none()).count();
    let range = format!("{}-{} ms", l.range.min_ms, l.range.max_ms);
    match none {
        0 => range,
        n => format!("{range} ({n} of {} trials: no leader)", l.downtimes.len()),
    }
}

/// Ten colours told apart at a glance; a range keeps its colour in both panels.
const COLORS: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (90, 90, 90),
    (188, 189, 34),
    (23, 190, 207),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cdf_rises_to_the_share_of_trials_with_a_leader() {
        let all = [Some(300.0), Some(150.5), Some(150.5), Some(1000.0), Some(170.0)];
        let c = cdf(&all);
        assert_eq!(c.len(), 5);
        assert!(c.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1), "{c:?}");
        assert_eq!(c.last(), Some(&(1000.0, 100.0)));
        assert_eq!(c[0], (150.5, 20.0));
        // A trial without a leader: the curve stops short of 100%.
        let c = cdf(&[Some(200.0), None, Some(100.0), None]);
        assert_eq!(c, vec![(100.0, 25.0), (200.0, 50.0)]);
        assert!(cdf(&[]).is_empty());
    }

    #[test]
    fn the_papers_ranges_fall_in_its_two_panels() {
        let r = |min_ms, max_ms| TimeoutRange { min_ms, max_ms };
        for t in [r(150, 150), r(150, 151), r(150, 155), r(150, 175), r(150, 200), r(150, 300)] {
            assert!(top(&t), "{t}");
        }
        for b in [r(12, 24), r(25, 50), r(50, 100), r(100, 200), r(150, 300)] {
            assert!(bottom(&b), "{b}");
        }
        assert!(!top(&r(12, 24)) && !bottom(&r(150, 155)));
    }
}
