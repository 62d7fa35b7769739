//! `agora`: the command-line entry point. Parses arguments, runs the subcommand, and maps
//! outcomes to exit codes: 0 success, 1 a property violated, 2 a user's mistake, 3 a node's
//! storage that cannot be used as it is (missing, corrupt).

mod bench;
mod check_cmd;
mod clocks_cmd;
mod complexity_cmd;
mod election_cmd;
mod election_verify;
mod multicast_cmd;
mod net_cmd;
mod output;
mod repro;
mod sim_cmd;
mod timeline;

use agora_cli::{cli, cluster_file, election_file, error, faults, input, values, Parsed};
use agora_core::Setup;
use agora_protocols::{Driver, Params, PROTOCOLS};
use cli::Command;
use error::UserError;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Die quietly when the reader of our output goes away (`agora ... | head`), like other
    // Unix tools, instead of failing a write.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Arguments need not be UTF-8: clap refuses those that must be text, in one line.
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let argv: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let cli = match agora_cli::parse(args) {
        Parsed::Run(cli) => cli,
        Parsed::Print(text) => {
            // --help and --version.
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Parsed::Mistake(msg) => {
            eprintln!("agora: {msg}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let result = match &cli.command {
        Command::Sim(args) => sim_cmd::run(args, argv),
        Command::Complexity(args) => complexity_cmd::run(args),
        Command::Multicast(args) => multicast_cmd::run(args),
        Command::Clocks(args) => clocks_cmd::run(args),
        Command::Check(args) => check_cmd::run(args, &argv),
        Command::Run(args) => net_cmd::run(args, &argv),
        Command::Node(args) => net_cmd::node(args),
        Command::Up(args) => net_cmd::up(args, &argv),
        Command::Protocols => protocols(),
        Command::Bench(args) => bench::run(args),
        Command::Election(args) => election_cmd::run(args, &argv),
    };
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            // A message may quote a path or a value with a newline in it: still one line.
            eprintln!("agora: {}", agora_sim::faults::escape_controls(&e.msg));
            ExitCode::from(e.code)
        }
    }
}

/// Lists every protocol with the properties its checker judges.
fn protocols() -> Result<i32, UserError> {
    struct Properties;
    impl Driver for Properties {
        type Output = Vec<agora_core::Property>;
        fn run<S: Setup>(self, setup: S) -> Self::Output {
            setup.checker().properties()
        }
    }
    for e in PROTOCOLS {
        println!("{:<14} {}", e.name, e.about);
        if !e.specs.is_empty() {
            let params: Vec<String> = e
                .specs
                .iter()
                .map(|s| match &s.default {
                    Some(d) => format!("{} {d}", agora_cli::cli::flag(s.param)),
                    None => agora_cli::cli::flag(s.param),
                })
                .collect();
            println!("    parameters: {}", params.join(", "));
        }
        for p in agora_protocols::dispatch(e.name, &Params::new(4, 1), Properties)? {
            let kind = match p.kind {
                agora_core::PropertyKind::Always => "always",
                agora_core::PropertyKind::AtEnd => "at end",
            };
            println!("    {:<22} {kind:<7} {}", p.name, p.description);
        }
    }
    Ok(0)
}

/// mimalloc: the simulator allocates and frees millions of small messages and effect buffers;
/// it is markedly faster than the system allocator at that (see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
