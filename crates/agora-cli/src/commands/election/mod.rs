//! `agora election`: the federated election count, end to end — over loopback TCP with redb
//! (the default) or in the simulator (`--sim`) — and `register` and `verify`. This file turns
//! the flags into the election's settings; [`run`] runs it, [`report`] reads what it
//! produced, [`render`] prints and writes it, [`verify`] checks the files it wrote.

mod live;

pub(crate) use live::Ballots;
mod render;
mod report;
mod run;
pub mod timeline;
mod verify;

use crate::cli::{ElectionAction, ElectionArgs, ElectionRunArgs, RegisterArgs};
use crate::commands::shared::{output, sim_only};
use crate::election_file;
use crate::error::UserError;
use agora_cli::election_formats;
use agora_protocols::vote_count::settings::Settings;
use agora_protocols::vote_count::setup::VoteSetup;
use agora_protocols::vote_count::states::STATES;
use agora_protocols::vote_count::{self as vc, hex, Hash, Spec};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Runs `agora election` and its subcommands; returns the process exit code.
pub fn run(args: &ElectionArgs, argv: &[String]) -> Result<i32, UserError> {
    match &args.action {
        Some(ElectionAction::Register(a)) => register(a),
        Some(ElectionAction::Verify(a)) => verify::verify(a),
        None => election(&args.run, argv),
    }
}

// ----- the election file and the roll -----

/// The election of `path`, or the demo election, with `voters` voters.
fn load_spec(path: &Option<PathBuf>, voters: u64, seed: u64) -> Result<Spec, UserError> {
    let Some(path) = path else { return Ok(vc::default_spec(voters, seed)) };
    let text = crate::input::read_text(path, "election file", crate::input::MAX_CONFIG_BYTES)?;
    election_file::parse(&text, voters)
        .map_err(|m| UserError(format!("election file {}: {m}", path.display())))
}

/// A roll bigger than this is refused before it is read (about 3.5 million voters).
const MAX_ROLL_BYTES: u64 = 256 << 20;

fn load_roll(path: &Path) -> Result<Vec<(u8, Hash)>, UserError> {
    let text = crate::input::read_text(path, "roll", MAX_ROLL_BYTES)?;
    election_formats::parse_roll(&text).map_err(|e| UserError(e.in_file(&format!("roll {}", path.display()))))
}

fn register(a: &RegisterArgs) -> Result<i32, UserError> {
    let spec = load_spec(&a.election, a.voters, a.seed)?;
    if a.voters == 0 || a.voters > 100_000_000 {
        return Err(UserError(format!("--voters {}: 1 to 100000000", a.voters)));
    }
    let mut out = String::from("voter,state,credential\n");
    for v in 0..a.voters {
        let s = Spec::synthetic_state(v);
        out.push_str(&format!("{v},{},{}\n", STATES[s as usize].code, hex(&spec.credential(v, s))));
    }
    output::write_file(&a.out, &out)?;
    eprintln!("wrote {} voters of election `{}` to {}", a.voters, spec.id, a.out.display());
    Ok(0)
}

fn settings(a: &ElectionRunArgs) -> Result<Settings, UserError> {
    let roll = a.roll.as_deref().map(load_roll).transpose()?;
    let voters = roll.as_ref().map_or(a.voters, |r| r.len() as u64);
    let spec = load_spec(&a.election, voters, a.seed)?;
    // Over TCP, 15 nodes share this machine's cores and a replica's snapshot stalls it for a
    // few hundred milliseconds: a shorter timeout elects leaders that are only busy.
    let t = a.timeout_ms.unwrap_or(if a.sim { 20.0 } else { 300.0 });
    if !(t.is_finite() && t > 0.0 && t < 3.6e6) {
        return Err(UserError(format!("--timeout-ms {t}: a positive number of milliseconds")));
    }
    if !(a.close_after_ms.is_finite() && a.close_after_ms > 0.0) {
        return Err(UserError(format!("--close-after-ms {}: a positive number", a.close_after_ms)));
    }
    if !(a.max_time_ms.is_finite() && a.max_time_ms > 0.0) {
        return Err(UserError(format!("--max-time-ms {}: a positive number", a.max_time_ms)));
    }
    if a.bad_ballots > 0.5 {
        return Err(UserError(format!("--bad-ballots {}: a share between 0 and 0.5", a.bad_ballots)));
    }
    let s = Settings {
        spec: Arc::new(spec),
        replicas: a.replicas,
        timeout: Duration::from_secs_f64(t / 1e3),
        window: a.window as usize,
        bad: a.bad_ballots,
        close_after: Duration::from_secs_f64(a.close_after_ms / 1e3),
        seed: a.seed,
        roll: roll.map(Arc::new),
    };
    vc::validate(&s).map_err(UserError)?;
    Ok(s)
}

/// The fault flags set in `a`: over TCP the election injects none of them.
fn fault_flags(a: &ElectionRunArgs) -> Vec<&'static str> {
    let mut set = a.faults.given();
    if a.crash_replicas.is_some() {
        set.push("--crash-replicas");
    }
    set
}

fn election(a: &ElectionRunArgs, argv: &[String]) -> Result<i32, UserError> {
    if !a.sim {
        sim_only(
            &fault_flags(a),
            "the election over TCP injects no faults (kill its processes instead; see docs/election.md)",
        )?;
    }
    if a.sim && a.live.ui.is_some() {
        return Err(UserError("--ui: the live view watches a run over TCP, not --sim".into()));
    }
    let s = settings(a)?;
    let spec = s.spec.clone();
    let setup = VoteSetup::new(s);
    let (report, linger) = if a.sim {
        (run::simulate(a, setup, argv)?, None)
    } else {
        let (report, linger) = run::over_tcp(a, setup, argv)?;
        (report, Some(linger))
    };
    if let Some(dir) = &a.out {
        render::write_out(dir, &spec, &report)?;
    }
    if a.json {
        println!("{}", serde_json::to_string(&report).expect("reports serialize"));
    } else {
        print!("{}", render::text(&spec, &report));
    }
    if let Some(linger) = linger {
        linger.wait();
    }
    Ok(if report.checks_passed && report.replicas_agree { 0 } else { 1 })
}
