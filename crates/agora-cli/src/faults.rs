//! Turns the fault flags (and an optional `--faults` file) into one validated `Faults`.

use crate::cli::FaultArgs;
use crate::error::UserError;
use agora_sim::faults::parse_node_value;
use agora_sim::{ClockSpec, Faults};

/// Reads the file, applies every flag on top, and validates against `nodes` (the cluster size,
/// at most [`crate::values::MAX_NODES`]).
pub fn build(args: &FaultArgs, nodes: usize) -> Result<Faults, UserError> {
    let mut f = match &args.faults {
        Some(path) => {
            let text = crate::input::read_text(path, "fault file", crate::input::MAX_CONFIG_BYTES)?;
            Faults::from_toml(&text).map_err(|e| UserError(format!("fault file {}: {e}", path.display())))?
        }
        None => Faults::default(),
    };
    let n = &mut f.network;
    if let Some(l) = &args.latency {
        n.latency = l.parse()?;
    }
    if let Some(p) = args.loss {
        n.loss = p;
    }
    if let Some(p) = args.duplicate {
        n.duplicate = p;
    }
    if let Some(p) = args.reorder {
        n.reorder = p;
    }
    if let Some(ms) = args.reorder_delay_ms {
        n.reorder_delay_ms = ms;
    }
    n.fifo |= args.fifo;
    if let Some(r) = &args.regions {
        n.regions = Some(agora_sim::Regions::preset(r)?);
    }
    for s in &args.partition {
        f.partitions.push(s.parse()?);
    }
    for s in &args.one_way {
        f.one_way.push(s.parse()?);
    }
    for s in &args.crash {
        f.crashes.push(s.parse()?);
    }
    for s in &args.pause {
        f.pauses.push(s.parse()?);
    }
    for s in &args.skew {
        let (nodes, skew_ms) = parse_node_value(s, "--skew")?;
        f.clocks.push(ClockSpec { nodes, skew_ms, drift_ppm: 0.0 });
    }
    for s in &args.drift {
        let (nodes, drift_ppm) = parse_node_value(s, "--drift")?;
        f.clocks.push(ClockSpec { nodes, skew_ms: 0.0, drift_ppm });
    }
    if let Some(k) = args.random_crashes {
        f.random_crashes = Some(agora_sim::faults::RandomCrashes { count: k, ..Default::default() });
    }
    // Node sets are checked against the cluster size before `merge_clocks` sizes a table by
    // them.
    f.validate(nodes)?;
    merge_clocks(&mut f);
    f.validate(nodes)?;
    Ok(f)
}

/// `--skew 1=5 --drift 1=100` describe one clock: later specs only override the field they set.
fn merge_clocks(f: &mut Faults) {
    if f.clocks.len() < 2 {
        return;
    }
    let end = f.clocks.iter().map(|c| c.nodes.end()).max().unwrap_or(0) as usize;
    let mut per_node: Vec<(f64, f64)> = vec![(0.0, 0.0); end];
    for c in &f.clocks {
        for id in c.nodes.iter() {
            let slot = &mut per_node[id.index()];
            if c.skew_ms != 0.0 {
                slot.0 = c.skew_ms;
            }
            if c.drift_ppm != 0.0 {
                slot.1 = c.drift_ppm;
            }
        }
    }
    f.clocks = per_node
        .into_iter()
        .enumerate()
        .filter(|(_, (s, d))| *s != 0.0 || *d != 0.0)
        .map(|(i, (skew_ms, drift_ppm))| ClockSpec {
            nodes: agora_sim::NodeSet::single(i as u32),
            skew_ms,
            drift_ppm,
        })
        .collect();
}
