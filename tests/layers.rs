//! No module imports a layer above it (ARCHITECTURE.md's module map).
//!
//! Every `src/**/*.rs` is read, its `crate::...` paths collected (in `use` trees too, comments
//! left out), and each top-level module named is checked against [`LAYERS`]: the modules that
//! module may use. Test code counts: a test that needs an upper layer belongs to that layer.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The modules below `commands/` that any layer may use.
const BASE: &[&str] = &["error", "signals", "secrets", "fsutil", "testing"];

/// Each top-level module and the modules it may use besides [`BASE`] (a module may always use
/// itself). Top to bottom: `lib` and `commands`; `cli` (clap, beside `commands`); `doctor` and
/// `metrics`; `follow`; `job`; `data` and `image`; `aws` and `refs`; `ui`; `config`; the base.
const LAYERS: &[(&str, &[&str])] = &[
    ("main", &[]),
    (
        "lib",
        &[
            "cli", "commands", "doctor", "metrics", "follow", "job", "data", "image", "aws",
            "refs", "ui", "config",
        ],
    ),
    (
        "commands",
        &[
            "cli", "doctor", "metrics", "follow", "job", "data", "image", "aws", "refs", "ui",
            "config",
        ],
    ),
    (
        "cli",
        &[
            "metrics", "follow", "job", "data", "image", "aws", "refs", "ui", "config",
        ],
    ),
    (
        "doctor",
        &[
            "follow", "job", "data", "image", "aws", "refs", "ui", "config",
        ],
    ),
    (
        "metrics",
        &[
            "follow", "job", "data", "image", "aws", "refs", "ui", "config",
        ],
    ),
    (
        "follow",
        &["job", "data", "image", "aws", "refs", "ui", "config"],
    ),
    ("job", &["data", "image", "aws", "refs", "ui", "config"]),
    ("data", &["aws", "refs", "ui", "config"]),
    ("image", &["aws", "refs", "ui", "config"]),
    ("aws", &["ui", "config"]),
    ("refs", &["config"]),
    ("ui", &["config"]),
    ("config", &[]),
    ("error", &[]),
    ("secrets", &["error"]),
    ("signals", &["error"]),
    ("fsutil", &["error"]),
    // Test builds only: the shared builders may use any layer below `commands`.
    (
        "testing",
        &[
            "doctor", "metrics", "follow", "job", "data", "image", "aws", "refs", "ui", "config",
        ],
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to: `src/job/spec.rs` → `job`, `src/cli.rs` → `cli`.
fn module_of(rel: &str) -> String {
    let rest = rel.strip_prefix("src/").unwrap();
    let first = rest.split('/').next().unwrap();
    first.trim_end_matches(".rs").to_string()
}

/// The code without comments (whole-line `//` comments and `/* */` blocks).
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut in_block = false;
    for line in text.lines() {
        let t = line.trim_start();
        if in_block {
            if t.contains("*/") {
                in_block = false;
            }
            continue;
        }
        if t.starts_with("/*") {
            in_block = !t.contains("*/");
            continue;
        }
        if t.starts_with("//") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The top-level modules named after `crate::`, including each branch of `crate::{a, b::c}`.
fn crate_refs(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let bytes = code.as_bytes();
    let mut at = 0;
    while let Some(i) = code[at..].find("crate::") {
        let start = at + i;
        at = start + "crate::".len();
        // `sagetrain_crate::` or `$crate::` are not this crate's paths.
        if start > 0
            && (bytes[start - 1].is_ascii_alphanumeric() || b"_$".contains(&bytes[start - 1]))
        {
            continue;
        }
        let rest = &code[at..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level items of the brace group.
            let mut depth = 0;
            let mut item_start = true;
            let mut name = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_alphanumeric() || c == '_') => name.push(c),
                    _ if item_start && !name.is_empty() => {
                        found.insert(std::mem::take(&mut name));
                        item_start = false;
                    }
                    _ => {}
                }
            }
            if !name.is_empty() {
                found.insert(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// Every (file, module it uses that its layer may not) in `root/src`.
fn back_edges(root: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    let mut edges = Vec::new();
    for path in files {
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let module = module_of(&rel);
        let Some((_, allowed)) = LAYERS.iter().find(|(m, _)| *m == module) else {
            panic!("{rel}: module `{module}` has no row in LAYERS; add it where it belongs");
        };
        let code = code_of(&fs::read_to_string(&path).unwrap());
        for used in crate_refs(&code) {
            let known = LAYERS.iter().any(|(m, _)| *m == used);
            // `!known`: an item of lib.rs itself (`crate::run`), not a module.
            let base = BASE.contains(&used.as_str()) && !BASE.contains(&module.as_str());
            if used == module || !known || base {
                continue;
            }
            if !allowed.contains(&used.as_str()) {
                edges.push((rel.clone(), used));
            }
        }
    }
    edges
}

#[test]
fn no_module_imports_a_layer_above_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let edges = back_edges(root);
    let unexpected: Vec<String> = edges
        .iter()
        .map(|(f, m)| format!("{f} uses crate::{m}"))
        .collect();
    assert!(
        unexpected.is_empty(),
        "imports of a layer above (see tests/layers.rs LAYERS and ARCHITECTURE.md):\n{}",
        unexpected.join("\n")
    );
}

#[test]
fn use_trees_and_paths_are_read() {
    let code = code_of(
        "use crate::{config::{Source, Val}, job::spec};\n// use crate::commands;\nlet x = crate::follow::describe(); $crate::ui;\nuse crate::refs::S3Uri;",
    );
    let refs: Vec<String> = crate_refs(&code).into_iter().collect();
    assert_eq!(refs, ["config", "follow", "job", "refs"]);
}
