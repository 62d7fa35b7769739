//! A market run printed — the trade log, then the summary: buys, elections, latency, the
//! accounts and the checker's verdict — and the files of `--out`: market.csv (every buy) and
//! market.svg (the report's Figure 2: response time against the buy's number, elections
//! marked).

use super::report::Report;
use crate::commands::shared::output;
use crate::error::UserError;
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

/// Cents as dollars, signed: `-$1.20`.
fn dollars(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}${}.{:02}", cents.unsigned_abs() / 100, cents.unsigned_abs() % 100)
}

/// The text `agora market` prints.
pub fn text(r: &Report) -> String {
    let mut t = String::new();
    for line in &r.log {
        let _ = writeln!(t, "{line}");
    }
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "market         {}, {} peers, {} ledger, {}, seed {}",
        r.scenario, r.peers, r.ledger, r.runtime, r.seed
    );
    let rejected: Vec<String> =
        r.rejected.iter().map(|(why, n)| format!("{n} {}", why.replace('_', " "))).collect();
    let rejected = if rejected.is_empty() { "none".to_string() } else { rejected.join(", ") };
    let _ = writeln!(
        t,
        "buys           {} asked, {} served, rejected: {rejected}, {} unanswered",
        r.buys, r.served, r.unanswered
    );
    let _ = writeln!(
        t,
        "elections      {} traders announced; {} fell sick, {} recovered",
        r.elections, r.sick, r.recovered
    );
    let l = &r.latency_ms;
    let _ = writeln!(
        t,
        "response       p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; {:.0} buys/s; wall {:.0} ms",
        l.p50, l.p99, l.max, r.buys_per_s, r.wall_ms
    );
    let f = &r.phases_ms;
    if f.count > 0 {
        let part = |l: &super::report::Latency| format!("{:.3} ({:.3})", l.p50, l.p99);
        let _ = writeln!(
            t,
            "where it went  {} of {} answered buys, p50 (p99) ms: to the trader {}, queue and books {}, answer back {}",
            f.count,
            r.buys - r.unanswered,
            part(&f.to_trader),
            part(&f.in_books),
            part(&f.answer_back)
        );
    }
    let _ = writeln!(
        t,
        "trading        {:.0} ms from the first buy to the last answer, {:.0} ms of it before the market opened",
        r.trading_ms, r.open_wait_ms
    );
    let _ = writeln!(t, "commission     {}", dollars(r.commission_cents as i64));
    t.push_str(&accounts(r));
    t.push_str(&output::verdict(&r.summary));
    t
}

/// The accounts table: cash and goods (bought or sold) per peer, a column per good.
fn accounts(r: &Report) -> String {
    let columns = |cell: &dyn Fn(&str) -> String| -> String {
        let cells: Vec<String> =
            r.goods.iter().map(|g| format!("{:>w$}", cell(g), w = g.len().max(5))).collect();
        cells.join(" ")
    };
    let mut t = String::new();
    let _ = writeln!(
        t,
        "accounts       {:>4}  {:<6}  {:>9}  {}  trader",
        "peer",
        "role",
        "cash",
        columns(&|g| g.to_string())
    );
    for a in &r.accounts {
        let units = |g: &str| a.goods.get(g).copied().unwrap_or(0).to_string();
        let row = format!(
            "               {:>4}  {:<6}  {:>9}  {}  {}",
            a.peer,
            a.role,
            dollars(a.cash_cents),
            columns(&units),
            if a.trader > 0 { format!("{}x", a.trader) } else { String::new() }
        );
        let _ = writeln!(t, "{}", row.trim_end());
    }
    let _ = writeln!(
        t,
        "               (a buyer's goods bought and cash paid; a seller's goods sold and cash earned)"
    );
    t
}

/// Every buy as CSV; `new_trader` names a trader announced since the buy before;
/// `queued_ms` and `booked_ms` say when a trader first queued it and when the books took it
/// (the booking whose answer the buyer took), in ms after it was asked, as `response_ms` does
/// of its answer.
fn csv(r: &Report) -> String {
    let mut s =
        String::from("buy,buyer,seq,good,qty,asked_ms,response_ms,result,new_trader,queued_ms,booked_ms\n");
    let mut traders = r.traders.iter().peekable();
    for (i, p) in r.points.iter().enumerate() {
        let mut new = Vec::new();
        while let Some((_, who)) = traders.next_if(|(before, _)| *before <= i as u64) {
            new.push(who.to_string());
        }
        let after = |t: Option<f64>| t.map_or(String::new(), |t| format!("{:.3}", t - p.asked_ms));
        let response = p.response_ms.map_or(String::new(), |d| format!("{d:.3}"));
        let b = &p.buy;
        let good = r.goods.get(usize::from(b.good.0)).map_or("unknown", String::as_str);
        let _ = writeln!(
            s,
            "{},{},{},{},{},{:.3},{response},{},{},{},{}",
            i + 1,
            b.buyer,
            b.seq,
            good,
            b.qty,
            p.asked_ms,
            p.result,
            new.join(" "),
            after(p.queued_ms),
            after(p.booked_ms)
        );
    }
    s
}

/// The report's Figure 2: the response time of every buy against its number, a vertical line
/// at each new trader.
fn svg(r: &Report, path: &Path) -> Result<(), UserError> {
    let err = |e: String| UserError(format!("cannot draw {}: {e}", path.display()));
    let n = r.points.len().max(1) as f64;
    let top = r.points.iter().filter_map(|p| p.response_ms).fold(1e-3, f64::max) * 1.1;
    let root = SVGBackend::new(path, (1100, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let caption =
        format!("market {}: response time of each buy ({} ledger, {})", r.scenario, r.ledger, r.runtime);
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..n + 1.0, 0.0..top)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("buy number")
        .y_desc("response time, ms")
        .draw()
        .map_err(|e| err(e.to_string()))?;
    let points: Vec<(f64, f64)> =
        r.points.iter().enumerate().filter_map(|(i, p)| p.response_ms.map(|d| (i as f64 + 1.0, d))).collect();
    chart
        .draw_series(LineSeries::new(points, BLUE.stroke_width(1)))
        .map_err(|e| err(e.to_string()))?
        .label("response time")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLUE.stroke_width(1)));
    let marks = r.traders.iter().map(|(before, _)| *before as f64 + 0.5);
    chart
        .draw_series(marks.map(|x| PathElement::new([(x, 0.0), (x, top)], RED.stroke_width(1))))
        .map_err(|e| err(e.to_string()))?
        .label("new trader")
        .legend(|(x, y)| PathElement::new([(x + 8, y - 6), (x + 8, y + 6)], RED));
    output::legend(&mut chart, SeriesLabelPosition::UpperRight).map_err(err)?;
    root.present().map_err(|e| err(e.to_string()))
}

/// Writes market.csv and market.svg into `dir`.
pub fn write_out(dir: &Path, r: &Report) -> Result<(), UserError> {
    output::write_file(&dir.join("market.csv"), &csv(r))?;
    svg(r, &dir.join("market.svg"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_are_signed_with_cents() {
        assert_eq!(dollars(-120), "-$1.20");
        assert_eq!(dollars(5), "$0.05");
    }
}
