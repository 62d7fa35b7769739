//! `agora market`: the trading post of the seed report, end to end — over loopback TCP with
//! redb (the default) or in the simulator (`--sim`). This file turns the flags into the
//! market's parameters (the same schema as `agora sim market`); [`run`] runs it, [`report`]
//! reads what the peers observed, [`render`] prints it and writes the files of `--out`.

mod render;
mod report;
mod run;

use crate::cli::MarketArgs;
use crate::commands::shared::{create_dir, sim_only};
use crate::error::UserError;
use agora_protocols::market::{scenario, MarketSetup};
use agora_protocols::params::{BUYS, INTERVAL_MS, LEDGER, RECOVER_MS, SCENARIO, SICK, TIMEOUT_MS};
use agora_protocols::registry::FromParams;
use agora_protocols::Params;

/// Peers of the `normal` scenario when `--peers` is not given.
const NORMAL_PEERS: usize = 7;
/// Buys of test case 2's one buyer, as in the report, when `--buys` is not given.
const TEST_CASE_2_BUYS: u64 = 1000;
/// Buys of each of the experiment's 3 buyers when `--buys` is not given: about the report's
/// 1000 in all (1002).
const EXPERIMENT_BUYS: u64 = 334;
/// The timeout over TCP when `--timeout-ms` is not given: the simulator's 20 ms makes peers
/// sharing busy cores with fsyncs suspect a live trader and hold needless elections.
const TCP_TIMEOUT_MS: f64 = 200.0;

/// Runs `agora market`; returns the process exit code.
pub fn run(a: &MarketArgs, argv: &[String]) -> Result<i32, UserError> {
    if !a.sim {
        sim_only(&a.faults.given(), "over TCP the only fault is the trader's sickness (--sick)")?;
    }
    let name = a.scenario.to_string();
    let setup = MarketSetup::from_params(&params(a, &name)?.resolve("market", MarketSetup::SPECS)?)?;
    let report =
        if a.sim { run::simulate(a, &name, setup, argv)? } else { run::over_tcp(a, &name, setup, argv)? };
    if let Some(dir) = &a.out {
        create_dir(dir)?;
        render::write_out(dir, &report)?;
    }
    if a.json {
        println!("{}", serde_json::to_string(&report).expect("reports serialize"));
    } else {
        print!("{}", render::text(&report));
    }
    Ok(if report.checks_passed { 0 } else { 1 })
}

/// The market's parameters from the flags: the scenario's peers unless `--peers` says, and
/// every protocol flag given.
fn params(a: &MarketArgs, name: &str) -> Result<Params, UserError> {
    let n = a.peers.or(scenario::peers(name)).unwrap_or(NORMAL_PEERS);
    let mut p = Params::new(n, a.seed);
    p.set(&SCENARIO, a.scenario.clone())?;
    let given = [(&BUYS, &a.buys), (&SICK, &a.sick), (&RECOVER_MS, &a.recover_ms), (&LEDGER, &a.ledger)];
    let more = [(&TIMEOUT_MS, &a.timeout_ms), (&INTERVAL_MS, &a.interval_ms)];
    for (param, value) in given.into_iter().chain(more) {
        if let Some(v) = value {
            p.set(param, v.clone())?;
        }
    }
    if !a.sim && a.timeout_ms.is_none() {
        p.set(&TIMEOUT_MS, TCP_TIMEOUT_MS)?;
    }
    if a.buys.is_none() {
        match name {
            "test-case-2" => p.set(&BUYS, TEST_CASE_2_BUYS)?,
            "experiment" => p.set(&BUYS, EXPERIMENT_BUYS)?,
            _ => {}
        }
    }
    Ok(p)
}
