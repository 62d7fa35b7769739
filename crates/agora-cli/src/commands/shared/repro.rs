//! Reproduce commands: the exact command line that replays a run with a given seed.

/// Flags that do not change what a run does (only where its output goes).
/// A campaign's `--shard` and `--findings` only choose which seeds run and where their
/// findings go: a seed runs the same in every shard. The live view (`--ui`) only watches.
const OUTPUT_FLAGS_WITH_VALUE: &[&str] =
    &["--diagram", "--html", "--per-node", "--threads", "--shard", "--findings", "--ui"];
const OUTPUT_FLAGS: &[&str] = &["--json", "--ui-linger"];

/// `agora <args...> --seed SEED`, from this process's arguments with output flags and any
/// earlier `--seed`/`--seeds` removed; arguments are shell-quoted where needed.
pub fn command(args: &[String], seed: u64) -> String {
    format!("{} --seed {seed}", prefix(args))
}

/// The reproduce command of any seed, less its `--seed SEED`.
pub fn prefix(args: &[String]) -> String {
    let mut out = vec!["agora".to_string()];
    let mut i = 0;
    // A campaign's failing seed replays as a single simulated run.
    if args.first().map(String::as_str) == Some("check") {
        out.push("sim".to_string());
        i = 1;
    }
    while i < args.len() {
        let a = &args[i];
        let name = a.split('=').next().unwrap_or(a);
        let takes_value = OUTPUT_FLAGS_WITH_VALUE.contains(&name) || name == "--seed" || name == "--seeds";
        if takes_value {
            i += if a.contains('=') { 1 } else { 2 };
            continue;
        }
        if OUTPUT_FLAGS.contains(&name) {
            i += 1;
            continue;
        }
        out.push(quote(a));
        i += 1;
    }
    out.join(" ")
}

fn quote(s: &str) -> String {
    let safe = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "_-.,:/=@+".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_output_flags_and_quotes() {
        let args: Vec<String> = [
            "sim",
            "flood",
            "--json",
            "--seed",
            "3",
            "--partition",
            "0..2|2..5@1",
            "--diagram=x.svg",
            "--html",
            "r.html",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(command(&args, 9), "agora sim flood --partition '0..2|2..5@1' --seed 9");
        let check: Vec<String> =
            ["check", "2pc", "--seeds", "0..100", "--loss", "0.1"].iter().map(|s| s.to_string()).collect();
        assert_eq!(command(&check, 42), "agora sim 2pc --loss 0.1 --seed 42");
        let shard: Vec<String> =
            ["check", "2pc", "--shard", "1/3", "--loss", "0.1", "--findings=f.jsonl", "--seeds", "0..9"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        assert_eq!(command(&shard, 42), "agora sim 2pc --loss 0.1 --seed 42");
    }
}
