//! `agora market`: the trading post of the seed report, end to end — over loopback TCP with
//! redb (the default) or in the simulator (`--sim`). This file turns the flags into the
//! market's parameters (the same schema as `agora sim market`; a market file's peers are the
//! run's); [`run`] runs it, [`report`] reads what the peers observed, [`render`] prints it and
//! writes the files of `--out`.

mod live;

pub(crate) use live::Trades;
mod render;
mod report;
mod run;

use crate::cli::MarketArgs;
use crate::commands::shared::{create_dir, sim_only};
use crate::error::UserError;
use agora_protocols::market::{file, scenario, MarketSetup};
use agora_protocols::params::{
    BUYS, INTERVAL_MS, LEDGER, MARKET, MULTICAST, RECOVER_MS, SCENARIO, SICK, TIMEOUT_MS, WINDOW,
};
use agora_protocols::registry::FromParams;
use agora_protocols::Params;

/// The scenario when neither `--scenario` nor `--market` is given.
const DEFAULT_SCENARIO: &str = "test-case-1";
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
    if a.sim && a.live.ui.is_some() {
        return Err(UserError("--ui: the live view watches a run over TCP, not --sim".into()));
    }
    let (name, params) = params(a)?;
    let setup = MarketSetup::from_params(&params.resolve("market", MarketSetup::SPECS)?)?;
    let (report, linger) = if a.sim {
        (run::simulate(a, &name, setup, argv)?, None)
    } else {
        let (report, linger) = run::over_tcp(a, &name, setup, argv)?;
        (report, Some(linger))
    };
    if let Some(dir) = &a.out {
        create_dir(dir)?;
        render::write_out(dir, &report)?;
    }
    if a.json {
        println!("{}", serde_json::to_string(&report).expect("reports serialize"));
    } else {
        print!("{}", render::text(&report));
    }
    if let Some(linger) = linger {
        linger.wait();
    }
    Ok(if report.checks_passed { 0 } else { 1 })
}

/// The scenario's name (or the market file's path) and the market's parameters from the
/// flags: the scenario's peers unless `--peers` says, or the market file's (which `--peers`
/// may only repeat), and every protocol flag given.
fn params(a: &MarketArgs) -> Result<(String, Params), UserError> {
    let (name, mut p) = match (&a.market, &a.scenario) {
        (Some(_), Some(_)) => {
            return Err(UserError("give --market or --scenario, not both: each gives the roles".into()))
        }
        (Some(path), None) => {
            let in_file = |e: String| UserError(format!("market file {}: {e}", path.display()));
            let m = file::load(path).map_err(in_file)?;
            if let Some(n) = a.peers.filter(|&n| n != m.peers()) {
                return Err(in_file(format!("it has {} peers, not --peers {n}", m.peers())));
            }
            let mut p = Params::new(m.peers(), a.seed);
            p.set(&MARKET, path.to_str().ok_or_else(|| in_file("the path is not UTF-8".into()))?)?;
            (path.display().to_string(), p)
        }
        (None, given) => {
            let name = given.as_ref().map_or(DEFAULT_SCENARIO.to_string(), ToString::to_string);
            let mut p = Params::new(a.peers.or(scenario::peers(&name)).unwrap_or(NORMAL_PEERS), a.seed);
            p.set(&SCENARIO, name.as_str())?;
            (name, p)
        }
    };
    let given = [(&BUYS, &a.buys), (&SICK, &a.sick), (&RECOVER_MS, &a.recover_ms), (&LEDGER, &a.ledger)];
    let more = [
        (&TIMEOUT_MS, &a.timeout_ms),
        (&INTERVAL_MS, &a.interval_ms),
        (&WINDOW, &a.window),
        (&MULTICAST, &a.multicast),
    ];
    for (param, value) in given.into_iter().chain(more) {
        if let Some(v) = value {
            p.set(param, v.clone())?;
        }
    }
    if !a.sim && a.timeout_ms.is_none() {
        p.set(&TIMEOUT_MS, TCP_TIMEOUT_MS)?;
    }
    if a.market.is_none() && a.buys.is_none() {
        match name.as_str() {
            "test-case-2" => p.set(&BUYS, TEST_CASE_2_BUYS)?,
            "experiment" => p.set(&BUYS, EXPERIMENT_BUYS)?,
            _ => {}
        }
    }
    Ok((name, p))
}
