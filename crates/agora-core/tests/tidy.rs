//! Conventions the whole repository keeps, checked rather than remembered: every Rust file
//! opens with a `//!` line saying what it is; no test is switched off or passes by panicking;
//! every file or folder ARCHITECTURE.md names exists; every crate takes the workspace's lints
//! (`missing_docs` among them).

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Every file below `dir`, skipping build output and hidden folders.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "target" || name == "artifacts" || name == "corpus" {
            continue;
        }
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn rust_files() -> Vec<(PathBuf, String)> {
    let mut all = Vec::new();
    for dir in ["crates", "fuzz"] {
        files(&root().join(dir), &mut all);
    }
    all.into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

#[test]
fn every_rust_file_opens_with_a_module_doc() {
    let bad: Vec<String> = rust_files()
        .into_iter()
        .filter(|(_, text)| !text.trim_start().starts_with("//!"))
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(bad.is_empty(), "files without a `//!` first line: {bad:#?}");
}

#[test]
fn no_test_is_switched_off_or_passes_by_panicking() {
    // Spelled in pieces so that this file does not name them itself.
    let banned = [concat!("#[", "ignore"), concat!("#[", "should_panic")];
    let mut bad = Vec::new();
    for (p, text) in rust_files() {
        for (i, line) in text.lines().enumerate() {
            if banned.iter().any(|b| line.trim_start().starts_with(b)) {
                bad.push(format!("{}:{}: {}", p.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn every_path_architecture_names_exists() {
    let root = root();
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let mut all = Vec::new();
    files(&root, &mut all);
    let known: Vec<String> =
        all.iter().map(|p| p.strip_prefix(&root).unwrap().to_string_lossy().into_owned()).collect();
    let is_path = |t: &str| {
        !t.contains(' ')
            && !t.contains("::")
            && (t.ends_with(".rs") || t.ends_with(".md") || t.ends_with(".toml") || t.starts_with("crates/"))
    };
    let mut missing = Vec::new();
    for (k, token) in text.split('`').enumerate() {
        // Odd pieces are inside backticks.
        if k % 2 == 0 || !is_path(token) {
            continue;
        }
        let t = token.trim_end_matches('/');
        let found =
            known.iter().any(|p| p == t || p.ends_with(&format!("/{t}")) || p.starts_with(&format!("{t}/")));
        if !found {
            missing.push(token.to_string());
        }
    }
    assert!(missing.is_empty(), "ARCHITECTURE.md names paths that do not exist: {missing:?}");
}

#[test]
fn every_crate_takes_the_workspace_lints() {
    let workspace = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    assert!(workspace.contains("[workspace.lints.rust]") && workspace.contains("missing_docs"));
    let mut crates = 0;
    for entry in std::fs::read_dir(root().join("crates")).unwrap() {
        let manifest = entry.unwrap().path().join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        let lints = text.split("\n[").find(|section| section.starts_with("lints]"));
        assert!(
            lints.is_some_and(|l| l.lines().any(|line| line.replace(' ', "") == "workspace=true")),
            "{} does not opt into the workspace lints ([lints] workspace = true)",
            manifest.display()
        );
        crates += 1;
    }
    assert!(crates >= 5, "found {crates} crates");
}
