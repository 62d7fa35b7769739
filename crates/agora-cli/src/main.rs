//! `agora`: the command-line entry point. Parses arguments, runs the subcommand, and maps
//! outcomes to exit codes: 0 success, 1 a property violated, 2 a user's mistake, 3 a node's
//! storage that cannot be used as it is (missing, corrupt), 4 a check that could not decide
//! (`agora lincheck` past its `--max-steps`).

mod commands;

use agora_cli::{cli, cluster_file, election_file, error, faults, input, resp, values, Parsed};
use cli::Command;
use commands::{
    bench, check, clocks, cluster, complexity, election, experiment, explore, health, kv, lincheck, market,
    multicast, node, protocols, run, sim, up, vote,
};
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
        Command::Sim(args) => sim::run(args, argv),
        Command::Complexity(args) => complexity::run(args),
        Command::Multicast(args) => multicast::run(args),
        Command::Clocks(args) => clocks::run(args),
        Command::Check(args) => check::run(args, &argv),
        Command::Run(args) => run::run(args, &argv),
        Command::Node(args) => node::node(args),
        Command::Up(args) => up::up(args, &argv),
        Command::Protocols => protocols::run(),
        Command::Bench(args) => bench::run(args),
        Command::Election(args) => election::run(args, &argv),
        Command::Market(args) => market::run(args, &argv),
        Command::Lincheck(args) => lincheck::run(args),
        Command::Explore(args) => explore::run(args, &argv),
        Command::Experiment(args) => experiment::run(args),
        Command::Kv(args) => kv::run(args),
        Command::Cluster(args) => cluster::run(args),
        Command::Health(args) => health::run(args),
        Command::Vote(args) => vote::run(args, argv),
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

/// mimalloc: the simulator allocates and frees millions of small messages and effect buffers;
/// it is markedly faster than the system allocator at that (see docs/benchmarks.md). Built
/// without its transparent huge pages (`no_thp`): with them, every fresh 2 MiB page a thread's
/// heap touched was zeroed whole by the kernel, a fifth of a short TCP run's CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
