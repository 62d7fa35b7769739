//! Histories built by hand to be, or not to be, linearizable — a stale read, a lost write, a
//! write that reappears, a CAS on a wrong value, orders that only work one non-obvious way,
//! ambiguous operations that must and must not have happened — knossos-style files, and the
//! search against brute force on thousands of small random histories.

use agora_lincheck::{check, read, Format, ModelKind, Options, Report, Value, Verdict};

/// Checks EDN text (one operation map per line) against `model`.
fn verdict(model: ModelKind, edn: &str) -> Report {
    let (_, _, h) = read(edn, Some(Format::Edn), Some(model)).unwrap_or_else(|e| panic!("{e}\n{edn}"));
    check(&h, model, &Options::default())
}

/// A compact notation: one event per line, `PROCESS TYPE F VALUE`, e.g. `1 invoke write 3`.
fn ops(lines: &str) -> String {
    lines
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut w = l.splitn(4, ' ');
            let (p, t, f) = (w.next().unwrap(), w.next().unwrap(), w.next().unwrap());
            let v = w.next().unwrap_or("nil");
            format!("{{:process {p}, :type :{t}, :f :{f}, :value {v}}}\n")
        })
        .collect()
}

fn register(lines: &str) -> Report {
    verdict(ModelKind::CasRegister, &ops(lines))
}

fn assert_linearizable(r: &Report) {
    assert_eq!(r.verdict, Verdict::Linearizable, "{:#?}", r.failures);
}

fn assert_not(r: &Report) -> &agora_lincheck::Failure {
    assert_eq!(r.verdict, Verdict::NotLinearizable, "{r:#?}");
    &r.failures[0]
}

#[test]
fn a_stale_read_is_caught() {
    let r = register(
        "0 invoke write 1
         0 ok write 1
         1 invoke write 2
         1 ok write 2
         2 invoke read
         2 ok read 1",
    );
    let f = assert_not(&r);
    assert_eq!((f.culprit.process, f.culprit.out.clone()), (2, Value::Int(1)));
    assert_eq!((f.linearized, f.state.clone()), (2, Value::Int(2)));
}

#[test]
fn a_lost_write_is_caught() {
    // Both appends were acknowledged before the get began; the get misses one.
    let r = verdict(
        ModelKind::Kv,
        r#"{:process 0, :type :invoke, :f :append, :key "k", :value "x"}
           {:process 1, :type :invoke, :f :append, :key "k", :value "y"}
           {:process 0, :type :ok, :f :append, :key "k", :value "x"}
           {:process 1, :type :ok, :f :append, :key "k", :value "y"}
           {:process 2, :type :invoke, :f :get, :key "k", :value nil}
           {:process 2, :type :ok, :f :get, :key "k", :value "x"}"#,
    );
    let f = assert_not(&r);
    assert_eq!(f.key, Some(Value::Str("k".into())));
    assert_eq!(f.culprit.process, 2);
    // With the get concurrent with the second append, it is fine.
    let r = verdict(
        ModelKind::Kv,
        r#"{:process 0, :type :invoke, :f :append, :key "k", :value "x"}
           {:process 0, :type :ok, :f :append, :key "k", :value "x"}
           {:process 1, :type :invoke, :f :append, :key "k", :value "y"}
           {:process 2, :type :invoke, :f :get, :key "k", :value nil}
           {:process 2, :type :ok, :f :get, :key "k", :value "x"}
           {:process 1, :type :ok, :f :append, :key "k", :value "y"}
           {:process 2, :type :invoke, :f :get, :key "k", :value nil}
           {:process 2, :type :ok, :f :get, :key "k", :value "xy"}"#,
    );
    assert_linearizable(&r);
}

#[test]
fn a_write_that_reappears_after_being_overwritten_is_caught() {
    let r = register(
        "0 invoke write 1
         0 ok write 1
         1 invoke write 2
         2 invoke read
         2 ok read 2
         1 ok write 2
         2 invoke read
         2 ok read 1",
    );
    let f = assert_not(&r);
    assert_eq!(f.culprit.out, Value::Int(1));
    assert_eq!(f.culprit.call_line, 7);
}

#[test]
fn a_cas_that_succeeds_on_a_wrong_value_is_caught() {
    let r = register(
        "0 invoke write 1
         0 ok write 1
         1 invoke cas [2 3]
         1 ok cas [2 3]",
    );
    assert_eq!(assert_not(&r).culprit.label(), "cas 2→3");
    // A CAS that failed did nothing, whatever it compared.
    let r = register(
        "0 invoke write 1
         0 ok write 1
         1 invoke cas [2 3]
         1 fail cas [2 3]
         1 invoke read
         1 ok read 1",
    );
    assert_linearizable(&r);
    assert_eq!(r.failed, 1);
}

#[test]
fn concurrent_operations_linearize_in_a_non_obvious_order() {
    // Invoked w1 then w2, but w2 must come first: the read of 2 ends before the read of 1.
    let r = register(
        "0 invoke write 1
         1 invoke write 2
         2 invoke read
         2 ok read 2
         3 invoke read
         3 ok read 1
         1 ok write 2
         0 ok write 1",
    );
    assert_linearizable(&r);
    // Three concurrent CASes invoked in an order that does not chain; only 1→2→3→4 does.
    let r = register(
        "0 invoke write 1
         0 ok write 1
         1 invoke cas [2 3]
         2 invoke cas [3 4]
         3 invoke cas [1 2]
         2 ok cas [3 4]
         1 ok cas [2 3]
         3 ok cas [1 2]
         0 invoke read
         0 ok read 4",
    );
    assert_linearizable(&r);
    // ... and if one CAS of the chain is missing, no order works.
    let r = register(
        "0 invoke write 1
         0 ok write 1
         2 invoke cas [3 4]
         3 invoke cas [1 2]
         2 ok cas [3 4]
         3 ok cas [1 2]",
    );
    assert_not(&r);
}

#[test]
fn an_ambiguous_write_that_must_have_happened() {
    let r = register(
        "0 invoke write 1
         0 ok write 1
         1 invoke write 2
         1 info write 2
         0 invoke read
         0 ok read 2",
    );
    assert_linearizable(&r);
    assert_eq!(r.ambiguous, 1);
    // Never completed at all: the same.
    let r = register(
        "0 invoke write 1
         0 ok write 1
         1 invoke write 2
         0 invoke read
         0 ok read 2",
    );
    assert_linearizable(&r);
}

#[test]
fn an_ambiguous_write_that_must_not_have_happened() {
    let r = register(
        "0 invoke write 1
         0 ok write 1
         1 invoke write 2
         1 info write 2
         0 invoke read
         0 ok read 1
         0 invoke read
         0 ok read 1",
    );
    assert_linearizable(&r);
    // It happens once: it cannot be seen and then undone.
    let r = register(
        "0 invoke write 1
         0 ok write 1
         1 invoke write 2
         1 info write 2
         0 invoke read
         0 ok read 2
         0 invoke read
         0 ok read 1",
    );
    assert_not(&r);
    // It cannot have happened before it was invoked.
    let r = register(
        "0 invoke write 1
         0 ok write 1
         0 invoke read
         0 ok read 2
         1 invoke write 2
         1 info write 2",
    );
    assert_not(&r);
}

#[test]
fn a_failed_write_did_not_happen() {
    let r = register(
        "0 invoke write 1
         0 ok write 1
         1 invoke write 2
         1 fail write 2
         0 invoke read
         0 ok read 2",
    );
    assert_not(&r);
}

#[test]
fn knossos_style_files_with_a_nemesis_and_a_vector() {
    // Jepsen's layout: one vector, commas, a nemesis, times, an :info read dropped.
    let text = "[{:type :invoke, :f :write, :value 3, :process 0, :time 10}
 {:type :info, :f :start, :value nil, :process :nemesis, :time 11}
 {:type :invoke, :f :read, :value nil, :process 1, :time 12}
 {:type :ok, :f :write, :value 3, :process 0, :time 13}
 {:type :ok, :f :read, :value 3, :process 1, :time 14}
 {:type :invoke, :f :cas, :value [3 1], :process 2, :time 15}
 {:type :invoke, :f :read, :value nil, :process 3, :time 16}
 {:type :info, :f :read, :value nil, :process 3, :time 17}
 {:type :ok, :f :cas, :value [3 1], :process 2, :time 18}
 {:type :invoke, :f :read, :value nil, :process 1, :time 19}
 {:type :ok, :f :read, :value 1, :process 1, :time 20}]";
    let r = verdict(ModelKind::CasRegister, text);
    assert_linearizable(&r);
    assert_eq!((r.operations, r.ambiguous_reads), (4, 1));
    let bad = text.replace(":ok, :f :read, :value 1,", ":ok, :f :read, :value 3,");
    let r = verdict(ModelKind::CasRegister, &bad);
    assert_eq!(assert_not(&r).culprit.call_line, 10);
}

#[test]
fn independent_keys_are_checked_apart_and_the_failing_one_named() {
    let r = register(
        "0 invoke write [:x 1]
         1 invoke write [:y 1]
         0 ok write [:x 1]
         1 ok write [:y 1]
         0 invoke read [:x nil]
         0 ok read [:x 1]
         1 invoke read [:y nil]
         1 ok read [:y 2]
         2 invoke cas [:x [1 5]]
         2 ok cas [:x [1 5]]",
    );
    assert_eq!(r.keys, 2);
    let f = assert_not(&r);
    assert_eq!(f.key, Some(Value::Keyword("y".into())));
    assert_eq!(f.operations, 2);
}

#[test]
fn the_search_gives_up_honestly() {
    // Many concurrent ambiguous writes of distinct values, and reads that would need one of
    // them twice: the search must try every subset, and one step is not enough.
    let mut lines = String::new();
    for p in 0..12 {
        lines.push_str(&format!("{p} invoke write {p}\n{p} info write {p}\n"));
    }
    for v in [3, 5, 3] {
        lines.push_str(&format!("99 invoke read\n99 ok read {v}\n"));
    }
    let (_, _, h) = read(&ops(&lines), None, None).unwrap();
    let r = check(&h, ModelKind::CasRegister, &Options { max_steps: Some(1), ..Options::default() });
    assert_eq!(r.verdict, Verdict::Unknown);
    assert!(!r.unknown[0].cancelled);
    let r = check(&h, ModelKind::CasRegister, &Options::default());
    assert_eq!(r.verdict, Verdict::NotLinearizable);
}

#[test]
fn kv_reads_of_nothing_and_of_the_empty_string_agree() {
    let r = verdict(
        ModelKind::Kv,
        r#"{:process 0, :type :invoke, :f :get, :key "a", :value nil}
           {:process 0, :type :ok, :f :get, :key "a", :value ""}
           {:process 0, :type :invoke, :f :put, :key "a", :value "v"}
           {:process 0, :type :ok, :f :put, :key "a", :value "v"}
           {:process 0, :type :invoke, :f :cas, :key "a", :value ["v" "w"]}
           {:process 0, :type :ok, :f :cas, :key "a", :value ["v" "w"]}
           {:process 0, :type :invoke, :f :get, :key "a", :value nil}
           {:process 0, :type :ok, :f :get, :key "a", :value "w"}"#,
    );
    assert_linearizable(&r);
}

#[test]
fn the_timeline_draws_the_offending_operations() {
    let text = ops("3 invoke write 3
         0 invoke write 1
         0 ok write 1
         1 invoke write 2
         1 ok write 2
         2 invoke read
         2 ok read 1
         3 info write 3");
    let (_, model, h) = read(&text, None, None).unwrap();
    let r = check(&h, model, &Options::default());
    let svg = agora_lincheck::svg::timeline(&h, &r.failures[0]);
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("#d62728"), "the culprit in red");
    for p in 0..4 {
        assert!(svg.contains(&format!(">process {p}<")), "a lane for process {p}");
    }
    assert!(svg.contains("stroke-dasharray"), "the ambiguous write drawn open");
}

/// Exhaustive search without any pruning: is there an order of the ok operations and some of
/// the ambiguous ones, respecting real time, that the model allows?
fn brute_force(ops: &[&agora_lincheck::Op], used: &mut Vec<bool>, state: &Value) -> bool {
    use agora_lincheck::model::{step, Step};
    if ops.iter().zip(used.iter()).all(|(o, &u)| u || o.outcome == agora_lincheck::Outcome::Info) {
        return true;
    }
    for i in 0..ops.len() {
        if used[i] {
            continue;
        }
        let o = ops[i];
        // Everything that returned before it was invoked must come before it.
        if (0..ops.len()).any(|j| !used[j] && j != i && ops[j].ret.is_some_and(|r| r < o.call)) {
            continue;
        }
        let next = match step(state, o.func, &o.arg, &o.out) {
            Step::Illegal => continue,
            Step::Same => state.clone(),
            Step::New(v) => v,
        };
        used[i] = true;
        let found = brute_force(ops, used, &next);
        used[i] = false;
        if found {
            return true;
        }
    }
    false
}

#[test]
fn the_search_agrees_with_brute_force_on_small_random_histories() {
    use agora_lincheck::{Event, History, Kind};
    use rand::{Rng, SeedableRng};
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(5);
    let (mut yes, mut no) = (0, 0);
    for _ in 0..3000 {
        let mut events = Vec::new();
        let mut open: [Option<(&str, Value)>; 3] = [None, None, None];
        let n_events = rng.random_range(2..16);
        let val = |rng: &mut rand_xoshiro::Xoshiro256PlusPlus| Value::Int(rng.random_range(0..3));
        for line in 0..n_events {
            let p = rng.random_range(0..3);
            let (kind, f, value) = match open[p].take() {
                None => {
                    let (f, v) = match rng.random_range(0..3) {
                        0 => ("read", Value::Nil),
                        1 => ("write", val(&mut rng)),
                        _ => ("cas", Value::List(vec![val(&mut rng), val(&mut rng)])),
                    };
                    open[p] = Some((f, v.clone()));
                    (Kind::Invoke, f, v)
                }
                Some((f, v)) => {
                    let kind = match rng.random_range(0..10) {
                        0 => Kind::Fail,
                        1 => Kind::Info,
                        _ => Kind::Ok,
                    };
                    let v = if f == "read" && kind == Kind::Ok { val(&mut rng) } else { v };
                    (kind, f, v)
                }
            };
            events.push(Event { process: p as i64, kind, f: f.into(), key: None, value, time: None, line });
        }
        let h = History::build(&events, ModelKind::CasRegister).unwrap();
        let ops: Vec<&agora_lincheck::Op> = h.ops.iter().collect();
        let expected = brute_force(&ops, &mut vec![false; ops.len()], &Value::Nil);
        let r = check(&h, ModelKind::CasRegister, &Options { threads: 1, ..Options::default() });
        assert_eq!(r.verdict == Verdict::Linearizable, expected, "{events:#?}");
        if expected {
            yes += 1;
        } else {
            no += 1;
        }
    }
    assert!(yes > 300 && no > 300, "both kinds drawn: {yes} linearizable, {no} not");
}
