//! The election's outputs: the results table, the tile map (SVG), and the files of `--out`
//! (results as JSON and CSV, the map, the bulletin board, the receipts and the timeline).

use super::report::Report;
use super::timeline;
use crate::commands::shared::{create_dir, output};
use crate::error::UserError;
use agora_cli::election_formats::{board_line, receipt_csv, receipt_json, BOARD_HEADER, RECEIPTS_HEADER};
use agora_protocols::vote_count::states::STATES;
use agora_protocols::vote_count::{hex, Results, Spec};
use std::path::Path;

fn leader(p: &Results, state: usize) -> (usize, f64) {
    let row = &p.per_state[state];
    let total: u64 = row.iter().sum();
    let mut order: Vec<usize> = (0..row.len()).collect();
    order.sort_by_key(|&o| std::cmp::Reverse(row[o]));
    let margin = if total == 0 {
        0.0
    } else {
        (row[order[0]] - row.get(order.get(1).copied().unwrap_or(0)).copied().unwrap_or(0).min(row[order[0]]))
            as f64
            / total as f64
    };
    (order[0], if row.len() < 2 { 1.0 } else { margin })
}

pub(super) fn text(spec: &Spec, r: &Report) -> String {
    use std::fmt::Write;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "agora election `{}` — {} replicas, {} voters, {}",
        r.election, r.replicas, spec.voters, r.runtime
    );
    match &r.published {
        Some(p) => {
            let _ = write!(t, "{:<16} {:<15}", "state", "region");
            for o in &p.options {
                let _ = write!(t, " {o:>10}");
            }
            let _ = writeln!(t, "  leading (margin)");
            for (i, s) in STATES.iter().enumerate() {
                let _ = write!(t, "{:<16} {:<15}", s.name, spec.regions[spec.state_region[i] as usize]);
                for c in &p.per_state[i] {
                    let _ = write!(t, " {c:>10}");
                }
                let (l, m) = leader(p, i);
                let _ = writeln!(t, "  {} ({:.1}%)", p.options[l], m * 100.0);
            }
            let _ = write!(t, "{:<32}", "NATIONAL");
            for c in &p.national {
                let _ = write!(t, " {c:>10}");
            }
            let (mut best, mut top) = (0, 0);
            for (o, c) in p.national.iter().enumerate() {
                if *c > top {
                    (best, top) = (o, *c);
                }
            }
            let _ = writeln!(t, "  {} wins", p.options[best]);
        }
        None => {
            let _ = writeln!(t, "NO RESULTS were published");
        }
    }
    let _ = writeln!(
        t,
        "ballots        cast {}  acknowledged {}  rejected {}  counted {}",
        r.cast, r.acknowledged, r.rejected, r.counted
    );
    if !r.rejected_by_reason.is_empty() {
        let reasons: Vec<String> = r.rejected_by_reason.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(t, "rejected       {}", reasons.join(", "));
    }
    let clock = if r.runtime == "sim" { " (virtual time)" } else { "" };
    let _ = writeln!(
        t,
        "speed          {:.0} acknowledged ballots/s, latency p50 {:.1} ms, p99 {:.1} ms{clock}",
        r.ballots_per_s, r.latency_ms_p50, r.latency_ms_p99
    );
    let _ = writeln!(
        t,
        "agreement      replicas agree: {}; digest {}; Merkle root {}",
        r.replicas_agree,
        r.results_digest.as_deref().unwrap_or("-"),
        r.merkle_root.as_deref().unwrap_or("-")
    );
    if let Some(m) = r.summary.peak_rss_mb {
        let fsyncs = r.summary.fsyncs.map_or(String::new(), |f| format!("; {f} fsyncs"));
        let _ = writeln!(t, "memory         peak {m:.0} MiB{fsyncs}");
    }
    if r.summary.violations.is_empty() {
        t.push_str(&output::checks(&r.summary));
    }
    for v in &r.summary.violations {
        let _ = writeln!(t, "VIOLATION      `{}`: {}\nreproduce      {}", v.property, v.detail, v.reproduce);
    }
    t
}

const PALETTE: [(u8, u8, u8); 8] = [
    (31, 119, 180),
    (214, 39, 40),
    (44, 160, 44),
    (148, 103, 189),
    (255, 127, 14),
    (140, 86, 75),
    (227, 119, 194),
    (23, 190, 207),
];

/// The tile map: each state a square near its usual place, coloured by its leading option,
/// paler the closer the race.
fn map_svg(spec: &Spec, p: &Results) -> String {
    use std::fmt::Write;
    let (tile, gap, left, top) = (56.0, 4.0, 20.0, 60.0);
    let width = left * 2.0 + 12.0 * (tile + gap);
    let height = top + 8.0 * (tile + gap) + 40.0 + 22.0 * p.options.len() as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="32" font-size="20">{} — {} ballots counted</text>"#,
        xml(&spec.id),
        p.counted
    );
    for (i, st) in STATES.iter().enumerate() {
        let (l, margin) = leader(p, i);
        let (r, g, b) = PALETTE[l % PALETTE.len()];
        // Margin 0 → 25% strength, a landslide (≥ 50 points) → full colour.
        let k = 0.25 + 0.75 * (margin * 2.0).min(1.0);
        let mix = |c: u8| (255.0 - (255.0 - c as f64) * k).round() as u8;
        let total: u64 = p.per_state[i].iter().sum();
        let (x, y) = (left + st.col as f64 * (tile + gap), top + st.row as f64 * (tile + gap));
        let fill = if total == 0 {
            "#eeeeee".to_string()
        } else {
            format!("#{:02x}{:02x}{:02x}", mix(r), mix(g), mix(b))
        };
        let _ = writeln!(
            s,
            r#"<g><title>{}: {} leads by {:.1} points ({} ballots)</title><rect x="{x}" y="{y}" width="{tile}" height="{tile}" rx="4" fill="{fill}"/><text x="{}" y="{}" font-size="15" text-anchor="middle">{}</text><text x="{}" y="{}" font-size="10" text-anchor="middle">+{:.0}</text></g>"#,
            st.name,
            xml(&p.options[l]),
            margin * 100.0,
            total,
            x + tile / 2.0,
            y + tile / 2.0,
            st.code,
            x + tile / 2.0,
            y + tile / 2.0 + 15.0,
            margin * 100.0
        );
    }
    let mut y = top + 8.0 * (tile + gap) + 20.0;
    for (o, name) in p.options.iter().enumerate() {
        let (r, g, b) = PALETTE[o % PALETTE.len()];
        let states = (0..STATES.len())
            .filter(|&i| leader(p, i).0 == o && p.per_state[i].iter().sum::<u64>() > 0)
            .count();
        let _ = writeln!(
            s,
            r#"<rect x="{left}" y="{}" width="16" height="16" fill="rgb({r},{g},{b})"/><text x="{}" y="{}" font-size="14">{}: {} ballots, leads in {states} states</text>"#,
            y - 13.0,
            left + 24.0,
            y,
            xml(name),
            p.national[o]
        );
        y += 22.0;
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" font-size="11" fill="gray">Paler: a closer race. Digest {}, Merkle root {}.</text>"#,
        left,
        y + 4.0,
        hex(&p.digest),
        hex(&p.root)
    );
    s.push_str("</svg>\n");
    s
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub(super) fn write_out(dir: &Path, spec: &Spec, r: &Report) -> Result<(), UserError> {
    create_dir(dir)?;
    let Some(p) = &r.published else {
        return Err(UserError("no results were published: nothing to write to --out".into()));
    };
    let json = serde_json::json!({
        "election": p.election, "options": p.options, "counted": p.counted,
        "digest": hex(&p.digest), "merkle_root": hex(&p.root),
        "national": r.national, "per_state": r.results,
    });
    output::write_file(&dir.join("results.json"), &serde_json::to_string_pretty(&json).expect("json"))?;
    let mut csv = format!("state,name,region,{},leading,margin\n", p.options.join(","));
    for (i, s) in STATES.iter().enumerate() {
        let counts: Vec<String> = p.per_state[i].iter().map(u64::to_string).collect();
        let (l, m) = leader(p, i);
        csv.push_str(&format!(
            "{},{},{},{},{},{:.4}\n",
            s.code,
            s.name,
            spec.regions[spec.state_region[i] as usize],
            counts.join(","),
            p.options[l],
            m
        ));
    }
    output::write_file(&dir.join("results.csv"), &csv)?;
    output::write_file(&dir.join("map.svg"), &map_svg(spec, p))?;
    if r.board.len() as u64 != p.counted {
        return Err(UserError(format!("{} ballots were counted, {} reported", p.counted, r.board.len())));
    }
    let mut board = format!("{BOARD_HEADER}\n");
    for (leaf, row) in r.board.iter().enumerate() {
        let row =
            row.ok_or_else(|| UserError(format!("the counted ballot at leaf {leaf} was never reported")))?;
        board.push_str(&board_line(&spec.id, &row));
        board.push('\n');
    }
    output::write_file(&dir.join("board.csv"), &board)?;
    timeline::build(&r.ops, &r.leaders).write(dir, "ballots", Some(50.0))?;
    let (mut csv, mut jsonl) = (format!("{RECEIPTS_HEADER}\n"), String::new());
    for rc in &r.receipts {
        csv.push_str(&receipt_csv(&spec.id, rc));
        csv.push('\n');
        jsonl.push_str(&receipt_json(&spec.id, rc));
        jsonl.push('\n');
    }
    output::write_file(&dir.join("receipts.csv"), &csv)?;
    output::write_file(&dir.join("receipts.jsonl"), &jsonl)?;
    Ok(())
}
