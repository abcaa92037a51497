//! The one-way module graph (ARCHITECTURE.md, issue 19 item 11): in every
//! crate of the workspace, the top-level modules (a file or folder under
//! `src/`) import each other without a circle.
//!
//! The test reads each crate's `src/**/*.rs`, collects the `crate::…`
//! references (grouped `use crate::{a, b}` too, and names re-exported from
//! the crate root followed back to the module that defines them) and fails
//! naming each circle it finds. Test code (`#[cfg(test)] mod tests`, a
//! `tests.rs` file) is left out: like a dev-dependency, it may reach up.
//!
//! It sees paths, not types: a call of an inherent method defined in another
//! module (`Output::from_target`, defined in `target.rs`) is no edge. Keep
//! such `impl` blocks in a module that also names its dependencies by path,
//! as `target.rs` does.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Source text with `//` comments cut off and test modules left out.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if trimmed == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod tests"))
        {
            break;
        }
        let code = match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn ident_at(text: &str) -> &str {
    let end = text.find(|c| !is_ident(c)).unwrap_or(text.len());
    &text[..end]
}

/// Every `crate::` path in `code`, as its first two segments (`module`,
/// `module::Name`), with each item of a group (`crate::{a::X, b}`) counted.
fn crate_refs(code: &str) -> Vec<String> {
    let mut refs = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(is_ident) {
            continue;
        }
        refs.extend(group_heads(rest));
    }
    refs
}

/// The path at the start of `text` cut to two segments (`a` or `a::B`).
fn two_segments(text: &str) -> String {
    let first = ident_at(text);
    match text[first.len()..].strip_prefix("::") {
        Some(rest) if !ident_at(rest).is_empty() => format!("{first}::{}", ident_at(rest)),
        _ => first.to_owned(),
    }
}

/// The paths named at the start of `text`: one, or each item of a `{…}`
/// group.
fn group_heads(text: &str) -> Vec<String> {
    let text = text.trim_start();
    let Some(group) = text.strip_prefix('{') else {
        let path = two_segments(text);
        return if path.is_empty() { vec![] } else { vec![path] };
    };
    let mut heads = Vec::new();
    let mut depth = 0usize;
    let mut item_start = true;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => item_start = true,
            c if item_start && is_ident(c) && depth == 0 => {
                heads.push(ident_at(&group[i..]).to_owned());
                item_start = false;
            }
            _ => {}
        }
    }
    heads
}

/// Where the root's (`lib.rs`/`main.rs`) own names lead: `Name` re-exported
/// by `pub use module::Name`, and `inline::Name` re-exported by an inline
/// `pub mod inline { pub use crate::module::Name; }`, each to its module.
fn root_names(root: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    let code = code_of(root);
    let mut add_uses = |prefix: &str, code: &str| {
        for statement in code.split(';') {
            let Some(at) = statement.find("pub use ") else {
                continue;
            };
            let path = statement[at + "pub use ".len()..].trim();
            let path = path.strip_prefix("crate::").unwrap_or(path);
            let module = ident_at(path);
            if !modules.contains(module) {
                continue;
            }
            for name in leaf_names(&path[module.len()..]) {
                names.insert(format!("{prefix}{name}"), module.to_owned());
            }
        }
    };
    // Inline modules: the `pub use`s inside their braces.
    let mut top_level = String::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("mod ") {
        let before = rest[..at].chars().next_back();
        top_level.push_str(&rest[..at + 4]);
        rest = &rest[at + 4..];
        if before.is_some_and(is_ident) {
            continue;
        }
        let name = ident_at(rest.trim_start()).to_owned();
        let after = rest.trim_start()[name.len()..].trim_start();
        let Some(body) = after.strip_prefix('{') else {
            continue;
        };
        let mut depth = 1;
        let end = body
            .char_indices()
            .find(|&(_, c)| {
                depth += match c {
                    '{' => 1,
                    '}' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .map_or(body.len(), |(i, _)| i);
        add_uses(&format!("{name}::"), &body[..end]);
        rest = &body[(end + 1).min(body.len())..];
    }
    top_level.push_str(rest);
    add_uses("", &top_level);
    names
}

/// The names a use tree brings in (the last segment of each leaf, or its
/// `as` alias).
fn leaf_names(tree: &str) -> Vec<String> {
    let mut names = Vec::new();
    for item in tree.split([',', '{', '}']) {
        let item = item.trim();
        let name = match item.split_once(" as ") {
            Some((_, alias)) => alias.trim(),
            None => item.rsplit("::").next().unwrap_or(""),
        };
        let name = name.trim_start_matches("::");
        if !name.is_empty() && name.chars().all(is_ident) {
            names.push(name.to_owned());
        }
    }
    names
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module graph of the crate whose sources are in `src`.
fn module_graph(src: &Path) -> Graph {
    let root = ["lib.rs", "main.rs"]
        .iter()
        .map(|name| src.join(name))
        .find(|path| path.exists())
        .expect("src/lib.rs or src/main.rs");
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let module_of = |path: &Path| -> Option<String> {
        let first = path.strip_prefix(src).unwrap().components().next()?;
        let first = first.as_os_str().to_str()?;
        let name = first.strip_suffix(".rs").unwrap_or(first);
        (name != "lib" && name != "main").then(|| name.to_owned())
    };
    let modules: BTreeSet<String> = files.iter().filter_map(|p| module_of(p)).collect();
    let root_names = root_names(&fs::read_to_string(&root).unwrap(), &modules);
    let mut graph: Graph = modules
        .iter()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    for path in &files {
        let Some(module) = module_of(path) else {
            continue;
        };
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with("tests.rs"))
        {
            continue;
        }
        let mut code = code_of(&fs::read_to_string(path).unwrap());
        // In a file directly under `src/`, `super::` is the crate root.
        if path.parent() == Some(src) {
            code = code.replace("super::", "crate::");
        }
        for path in crate_refs(&code) {
            let head = path.split("::").next().unwrap_or_default();
            let target = if modules.contains(head) {
                Some(head)
            } else {
                root_names
                    .get(&path)
                    .or_else(|| root_names.get(head))
                    .map(String::as_str)
            };
            if let Some(target) = target.filter(|&t| t != module) {
                graph.get_mut(&module).unwrap().insert(target.to_owned());
            }
        }
    }
    graph
}

/// Every circle of `graph`, one per strongly connected component, each
/// spelled `a → b → … → a`.
fn circles(graph: &Graph) -> Vec<String> {
    // Tarjan's algorithm, recursive: module graphs are small.
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        components: Vec<Vec<&'g str>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in &s.graph[v] {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w);
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.components.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.components
        .iter()
        .map(|component| {
            let members: BTreeSet<&str> = component.iter().copied().collect();
            let start = *members.iter().next().unwrap();
            let edges: Vec<String> = members
                .iter()
                .map(|m| {
                    let inside: Vec<&str> = graph[*m]
                        .iter()
                        .map(String::as_str)
                        .filter(|w| members.contains(w))
                        .collect();
                    format!("{m} → {}", inside.join(", "))
                })
                .collect();
            format!(
                "{}\n    (one knot of {} modules; inside it: {})",
                one_cycle(graph, &members, start).join(" → "),
                members.len(),
                edges.join("; ")
            )
        })
        .collect()
}

/// A shortest path from `start` back to itself inside `members`.
fn one_cycle(graph: &Graph, members: &BTreeSet<&str>, start: &str) -> Vec<String> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for w in &graph[v] {
            let w = w.as_str();
            if !members.contains(w) {
                continue;
            }
            if w == start {
                let mut path = vec![start.to_owned()];
                let mut at = v;
                while at != start {
                    path.push(at.to_owned());
                    at = came_from[at];
                }
                path.push(start.to_owned());
                path.reverse();
                return path;
            }
            if !came_from.contains_key(w) {
                came_from.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    vec![start.to_owned()]
}

/// The crates whose modules must depend one way.
const CRATES: [&str; 9] = [
    "aitrace-model",
    "aitrace-core",
    "aitrace-otlp",
    "aitrace-report",
    "aitrace-tracing",
    "aitrace-slog",
    "aitrace-log",
    "aitrace-http",
    "aitrace-cli",
];

fn assert_one_way(krate: &str) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(krate)
        .join("src");
    let graph = module_graph(&src);
    let found = circles(&graph);
    assert!(
        found.is_empty(),
        "the modules of {krate} import each other in a circle (ARCHITECTURE.md, \"The module graph\"):\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn aitrace_model_modules_depend_one_way() {
    assert_one_way("aitrace-model");
}

#[test]
fn aitrace_otlp_modules_depend_one_way() {
    assert_one_way("aitrace-otlp");
}

#[test]
fn aitrace_report_modules_depend_one_way() {
    assert_one_way("aitrace-report");
}

#[test]
fn aitrace_core_modules_depend_one_way() {
    assert_one_way("aitrace-core");
}

#[test]
fn aitrace_tracing_modules_depend_one_way() {
    assert_one_way("aitrace-tracing");
}

#[test]
fn aitrace_slog_modules_depend_one_way() {
    assert_one_way("aitrace-slog");
}

#[test]
fn aitrace_log_modules_depend_one_way() {
    assert_one_way("aitrace-log");
}

#[test]
fn aitrace_http_modules_depend_one_way() {
    assert_one_way("aitrace-http");
}

#[test]
fn aitrace_cli_modules_depend_one_way() {
    assert_one_way("aitrace-cli");
}

/// The checker itself: it sees plain, grouped and root re-exported
/// references, skips test modules and comments, and names the circle.
#[test]
fn the_checker_finds_a_circle_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    let write = |path: &str, text: &str| {
        let path = src.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    };
    write(
        "lib.rs",
        "mod a;\nmod b;\nmod c;\npub use c::{Thing, other::Deep as D};\npub mod names { pub use crate::a::X; pub use crate::b::Z; }\n",
    );
    write(
        "a.rs",
        "use crate::{b::Y, std_like};\n// crate::c::not_counted\n",
    );
    write("b/mod.rs", "mod inner;\n");
    write("b/inner.rs", "fn f() -> crate::Thing { todo!() }\n");
    write(
        "c.rs",
        "#[cfg(test)]\nmod tests {\n    use crate::a::X;\n}\n",
    );
    let graph = module_graph(src);
    assert_eq!(graph["a"], ["b".to_owned()].into());
    assert_eq!(graph["b"], ["c".to_owned()].into());
    assert!(graph["c"].is_empty(), "test modules are left out");
    assert!(circles(&graph).is_empty());

    write("c.rs", "pub fn g() { crate::names::X }\n");
    let graph = module_graph(src);
    assert_eq!(
        graph["c"],
        ["a".to_owned()].into(),
        "names::X leads to a, not to b"
    );
    let found = circles(&graph);
    assert_eq!(found.len(), 1);
    assert!(found[0].starts_with("a → b → c → a"), "{found:?}");
}

/// Prints each crate's module graph, for ARCHITECTURE.md:
/// `cargo test -p aitrace-core --test module_graph -- --ignored --nocapture`.
#[test]
#[ignore = "prints the graph; run by hand"]
fn print_module_graphs() {
    for krate in CRATES {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(krate)
            .join("src");
        println!("{krate}:");
        for (module, deps) in module_graph(&src) {
            let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
            println!("  {module} → {}", deps.join(", "));
        }
    }
}

/// The modules `aitrace-model` keeps public for `aitrace-core` but hidden
/// from its docs (`#[doc(hidden)] pub mod x;` in its `lib.rs`).
fn hidden_model_modules() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../aitrace-model/src/lib.rs");
    let text = fs::read_to_string(root).unwrap();
    let mut hidden = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "#[doc(hidden)]" {
            if let Some(module) = lines.next().and_then(|l| l.trim().strip_prefix("pub mod ")) {
                hidden.push(module.trim_end_matches(';').to_owned());
            }
        }
    }
    hidden
}

/// Issue 19: the OTLP output and the HTML report use nothing of the leaf
/// crate that a crate of a user's could not: no path through a module it
/// hides from its docs (names re-exported at its root are the API).
#[test]
fn the_built_in_outputs_outside_core_use_only_the_documented_api() {
    let hidden = hidden_model_modules();
    assert!(hidden.contains(&"record".to_owned()), "{hidden:?}");
    let mut found = Vec::new();
    for krate in ["aitrace-otlp", "aitrace-report"] {
        let mut files = Vec::new();
        rust_files(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(krate)
                .join("src"),
            &mut files,
        );
        for file in files {
            if file.ends_with("tests.rs") || file.ends_with("encode_tests.rs") {
                continue;
            }
            let code = code_of(&fs::read_to_string(&file).unwrap());
            for module in &hidden {
                let needle = format!("aitrace_model::{module}::");
                if code.contains(&needle) {
                    found.push(format!("{}: {needle}", file.display()));
                }
            }
            // A module alias (`use aitrace_model::{record, …}`) would hide
            // the paths from the check above.
            for line in code.lines().filter(|l| l.contains("use aitrace_model::{")) {
                for module in &hidden {
                    let item = |sep: &str| format!("{sep}{module}");
                    if line.contains(&item("{")) || line.contains(&item(", ")) {
                        found.push(format!("{}: {}", file.display(), line.trim()));
                    }
                }
            }
        }
    }
    assert!(found.is_empty(), "hidden paths used: {found:#?}");
}
