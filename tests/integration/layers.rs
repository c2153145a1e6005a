//! The layers of `docs/architecture.md`, checked on the sources: every `crate::…` path in a module names a
//! module of a lower layer (or its own), and no two files of one module import each other in a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom (0) to top, as `docs/architecture.md` draws them.
const LAYERS: &[(&str, u8)] = &[
    ("pii", 0),
    ("clock", 0),
    ("crypto", 0),
    ("role", 0),
    ("workers", 0),
    ("triage", 0),
    ("ids", 1),
    ("config", 1),
    ("store", 2),
    ("limits", 2),
    ("telemetry", 2),
    ("auth", 3),
    ("cluster", 3),
    ("waiting_room", 3),
    ("dev_idp", 3),
    ("media", 3),
    ("policy", 4),
    ("audit", 4),
    ("protocol", 4),
    ("recording", 5),
    ("messaging", 5),
    ("visit", 6),
    ("keys", 6),
    ("app", 7),
    ("dev", 7),
    ("http", 8),
    ("cli", 9),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The `crate::a::b` paths a file names (outside comments), as their segments.
fn crate_paths(text: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    for line in text.lines().map(str::trim_start).filter(|l| !l.starts_with("//")) {
        for rest in line.split("crate::").skip(1) {
            let segments: Vec<String> = rest
                .split("::")
                .map(|s| {
                    s.chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect::<String>()
                })
                .take_while(|s| !s.is_empty())
                .collect();
            if !segments.is_empty() {
                paths.push(segments);
            }
        }
    }
    paths
}

#[test]
fn no_module_imports_a_layer_above_it_and_no_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut upward = Vec::new();
    // module → file (a sibling within the module) → siblings it names
    let mut within: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap().with_extension("");
        let parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().to_string()).collect();
        let module = parts[0].clone();
        if matches!(module.as_str(), "lib" | "main") {
            continue;
        }
        let own = layer(&module)
            .unwrap_or_else(|| panic!("src/{module} has no layer in LAYERS and docs/architecture.md"));
        let text = std::fs::read_to_string(file).unwrap();
        for path in crate_paths(&text) {
            let target = &path[0];
            if target == &module {
                if let (Some(sibling), true) = (path.get(1), parts.len() > 1) {
                    let me = parts[1].clone();
                    if sibling != &me && sibling != "mod" {
                        within
                            .entry(module.clone())
                            .or_default()
                            .entry(me)
                            .or_default()
                            .insert(sibling.clone());
                    }
                }
                continue;
            }
            match layer(target) {
                Some(l) if l < own => {}
                Some(l) => upward.push(format!(
                    "{}: crate::{} (layer {l}) from layer {own}",
                    rel.display(),
                    path.join("::")
                )),
                None => {} // a macro or an item of the crate root
            }
        }
        for line in text
            .lines()
            .map(str::trim_start)
            .filter(|l| l.starts_with("use super::"))
        {
            if parts.len() == 2 {
                let sibling: String = line["use super::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !sibling.is_empty() && sibling != parts[1] {
                    within
                        .entry(module.clone())
                        .or_default()
                        .entry(parts[1].clone())
                        .or_default()
                        .insert(sibling);
                }
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that point up a layer:\n{}",
        upward.join("\n")
    );
    // A depth-first search for a circle among the files of each module.
    for (module, graph) in &within {
        fn visit(
            n: &str,
            g: &BTreeMap<String, BTreeSet<String>>,
            path: &mut Vec<String>,
            done: &mut BTreeSet<String>,
        ) -> Option<String> {
            if let Some(i) = path.iter().position(|p| p == n) {
                return Some(format!("{} -> {n}", path[i..].join(" -> ")));
            }
            if !done.insert(n.to_string()) {
                return None;
            }
            path.push(n.to_string());
            for next in g.get(n).into_iter().flatten() {
                if let Some(c) = visit(next, g, path, done) {
                    return Some(c);
                }
            }
            path.pop();
            None
        }
        let mut done = BTreeSet::new();
        for start in graph.keys() {
            if let Some(cycle) = visit(start, graph, &mut Vec::new(), &mut done) {
                panic!("an import cycle in src/{module}: {cycle}");
            }
        }
    }
}

#[test]
fn no_source_file_is_over_600_lines() {
    let mut files = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests"), &mut files);
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tools"), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > 600).then(|| format!("{}: {n} lines", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these by concern:\n{}", long.join("\n"));
}
