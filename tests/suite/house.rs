//! The map in `src/lib.rs` ("Layout"), checked against the code, so that it cannot drift: every
//! `use` and every `crate::`, `super::` or `self::` path of the library's files is resolved to
//! the file that defines what it names (following `pub use` re-exports), and
//!
//! - no file imports from a layer above its own, nor from another module of its own layer;
//! - no files import each other in a circle (a module's file and the files of its own
//!   submodules are one unit: a parent may use its children and they it).
//!
//! The layers are read from the table in `lib.rs`'s "Layout" section: one row a layer, from
//! the top down, its modules named in its second column. Test code (`tests.rs` files and
//! `#[cfg(test)] mod tests` blocks) is left out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// A module's path from the crate root (`["stock", "redis"]`); `[]` is `lib.rs`.
type ModPath = Vec<String>;

struct Crate {
    /// Module path → its file (relative to `src/`).
    files: BTreeMap<ModPath, String>,
    /// File → its text, comments and strings blanked.
    code: HashMap<String, String>,
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The module path of the library file `rel`.
fn module_of(rel: &str) -> ModPath {
    let mut parts: Vec<String> = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_string)
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// Whether `rel` is a binary's file rather than the library's.
fn binary(rel: &str) -> bool {
    rel == "main.rs" || rel.starts_with("bin/") || rel.starts_with("cli/")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `text` with comments, string and char literals blanked (lines kept).
fn blank(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                    }
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                    }
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        break;
                    }
                }
                out.push_str("\"\"");
            }
            _ => out.push(c),
        }
    }
    out
}

/// `code` (comments and strings blanked) without its `#[cfg(test)] mod … { … }` blocks.
fn without_tests(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(found) = rest.find("#[cfg(test)]") {
        let after = rest[found + "#[cfg(test)]".len()..].trim_start();
        let Some(open) = after
            .strip_prefix("mod ")
            .and_then(|m| m.find('{').filter(|&i| !m[..i].contains(';')))
        else {
            out.push_str(&rest[..found + 1]);
            rest = &rest[found + 1..];
            continue;
        };
        out.push_str(&rest[..found]);
        let body = &after["mod ".len() + open..];
        let mut depth = 0;
        let mut end = body.len();
        for (i, c) in body.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &body[end..];
    }
    out.push_str(rest);
    out
}

impl Crate {
    fn read() -> Crate {
        let root = src();
        let mut paths = Vec::new();
        walk(&root, &mut paths);
        let mut files = BTreeMap::new();
        let mut code = HashMap::new();
        for path in paths {
            let rel = path
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if binary(&rel) {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            files.insert(module_of(&rel), rel.clone());
            code.insert(rel, without_tests(&blank(&text)));
        }
        Crate { files, code }
    }

    /// The `pub use` re-exports of `file`: name → the path it stands for.
    fn reexports(&self, file: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (public, path) in use_paths(&self.code[file]) {
            if public {
                let name = path.rsplit("::").next().unwrap_or("").to_string();
                out.insert(name, path);
            }
        }
        out
    }

    /// The file that defines what `path` (as written in module `at`) names, following
    /// re-exports; None for a path outside the crate.
    fn resolve(&self, at: &ModPath, path: &str, depth: usize) -> Option<String> {
        let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let mut module: ModPath = match segments.first().copied() {
            Some("crate") => {
                segments.remove(0);
                Vec::new()
            }
            Some("super") => {
                let mut m = at.clone();
                while segments.first() == Some(&"super") {
                    m.pop();
                    segments.remove(0);
                }
                m
            }
            Some("self") => {
                segments.remove(0);
                at.clone()
            }
            // `child::x` in a `use`: relative to the module, when it names a child.
            Some(first) => {
                let mut child = at.clone();
                child.push(first.to_string());
                if !self.files.contains_key(&child) {
                    return None;
                }
                at.clone()
            }
            None => return None,
        };
        let mut rest = segments.iter();
        let mut item = None;
        for segment in rest.by_ref() {
            let mut deeper = module.clone();
            deeper.push(segment.to_string());
            if self.files.contains_key(&deeper) {
                module = deeper;
            } else {
                item = Some(*segment);
                break;
            }
        }
        let file = self.files.get(&module)?.clone();
        if let Some(item) = item {
            if depth < 8 {
                if let Some(target) = self.reexports(&file).get(item) {
                    if let Some(found) = self.resolve(&module, target, depth + 1) {
                        return Some(found);
                    }
                }
            }
        }
        Some(file)
    }

    /// Every file `file` imports from (itself, its ancestors and its descendants left out).
    fn imports(&self, file: &str) -> BTreeSet<String> {
        let at = module_of(file);
        let code = &self.code[file];
        let mut paths: Vec<String> = use_paths(code).into_iter().map(|(_, p)| p).collect();
        paths.extend(inline_paths(code));
        paths
            .iter()
            .filter_map(|p| self.resolve(&at, p, 0))
            .filter(|target| {
                let theirs = module_of(target);
                let related = theirs.starts_with(&at) || at.starts_with(&theirs);
                target != file && !related
            })
            .collect()
    }
}

/// The paths of every `use` declaration in `code`, braces expanded, each with whether it is a
/// re-export (`pub use`, `pub(crate) use`).
fn use_paths(code: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut at = 0;
    while let Some(found) = code[at..].find("use ") {
        let start = at + found;
        at = start + 4;
        let before = code[..start].trim_end();
        let word_start = start == 0 || !is_ident(bytes[start - 1]);
        if !word_start {
            continue;
        }
        let public = before.ends_with("pub") || before.ends_with(')') && before.contains("pub(");
        let Some(end) = code[at..].find(';') else {
            break;
        };
        // `x as y` becomes `x@y`, then every other space goes.
        let words: Vec<&str> = code[at..at + end].split_whitespace().collect();
        let body = words.join(" ").replace(" as ", "@").replace(' ', "");
        expand("", &body, &mut |path| out.push((public, path)));
        at += end;
    }
    out
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Expand one `use` tree (`a::{b,c::{d@e}}`: spaces removed, `as` written `@`) under `prefix`.
fn expand(prefix: &str, tree: &str, out: &mut impl FnMut(String)) {
    let mut depth = 0;
    let mut part_start = 0;
    let mut parts = Vec::new();
    for (i, c) in tree.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&tree[part_start..i]);
                part_start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&tree[part_start..]);
    for part in parts.into_iter().filter(|p| !p.is_empty()) {
        match part.find('{') {
            Some(open) => {
                let inner = part[open + 1..]
                    .strip_suffix('}')
                    .unwrap_or(&part[open + 1..]);
                expand(&format!("{prefix}{}", &part[..open]), inner, out);
            }
            None => {
                let path = part.split('@').next().unwrap_or(part);
                out(format!("{prefix}{path}"));
            }
        }
    }
}

/// Every `crate::…`, `super::…` and `self::…` path written in code outside `use` lines.
fn inline_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    for head in ["crate::", "super::", "self::"] {
        let mut at = 0;
        while let Some(found) = code[at..].find(head) {
            let start = at + found;
            at = start + head.len();
            if start > 0 && (is_ident(bytes[start - 1]) || bytes[start - 1] == b':') {
                continue;
            }
            let mut end = start;
            while end < bytes.len() && (is_ident(bytes[end]) || bytes[end] == b':') {
                end += 1;
            }
            out.push(code[start..end].trim_end_matches(':').to_string());
        }
    }
    out
}

/// The layers of `lib.rs`'s "Layout" table, from the top down: each a set of top modules.
fn layers() -> Vec<Vec<String>> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let mut in_layout = false;
    let mut rows = Vec::new();
    for line in lib.lines() {
        let Some(doc) = line.strip_prefix("//!") else {
            continue;
        };
        let doc = doc.trim();
        if doc.starts_with('#') {
            in_layout = doc == "# Layout";
            continue;
        }
        if !in_layout || !doc.starts_with('|') || doc.starts_with("|---") {
            continue;
        }
        let columns: Vec<&str> = doc.split('|').map(str::trim).collect();
        let Some(modules) = columns.get(2) else {
            continue;
        };
        let names: Vec<String> = modules
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        if !names.is_empty() {
            rows.push(names);
        }
    }
    rows
}

/// The strongly connected components of more than one file (Tarjan).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: HashMap<&'a str, usize>,
        low: HashMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flatten() {
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
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found
}

fn graph(krate: &Crate) -> BTreeMap<String, BTreeSet<String>> {
    krate
        .files
        .values()
        .filter(|f| !f.ends_with("/tests.rs") && !f.contains("/tests/"))
        .map(|f| (f.clone(), krate.imports(f)))
        .collect()
}

#[test]
fn no_file_imports_from_a_layer_above_its_own() {
    let layers = layers();
    assert!(layers.len() >= 5, "lib.rs's Layout table: {layers:?}");
    let count = layers.len();
    let rank: HashMap<&str, usize> = layers
        .iter()
        .enumerate()
        .flat_map(|(i, names)| names.iter().map(move |n| (n.as_str(), count - i)))
        .collect();
    let krate = Crate::read();
    let top = |file: &str| module_of(file).first().cloned().unwrap_or_default();
    let mut unplaced = BTreeSet::new();
    let mut upward = Vec::new();
    for (file, imports) in graph(&krate) {
        let from = top(&file);
        if from.is_empty() {
            continue; // lib.rs declares the modules
        }
        for target in imports {
            let to = top(&target);
            if to.is_empty() || to == from {
                continue;
            }
            match (rank.get(from.as_str()), rank.get(to.as_str())) {
                (Some(a), Some(b)) if a > b => {}
                (Some(_), Some(_)) => upward.push(format!("{file} -> {target}")),
                (None, _) => {
                    unplaced.insert(from.clone());
                }
                (_, None) => {
                    unplaced.insert(to.clone());
                }
            }
        }
    }
    assert!(
        unplaced.is_empty(),
        "modules not in lib.rs's Layout table: {unplaced:?}"
    );
    assert!(
        upward.is_empty(),
        "imports from a layer above, or from a module of the same layer (lib.rs, Layout):\n{}",
        upward.join("\n")
    );
}

#[test]
fn no_files_import_each_other_in_a_circle() {
    let found = circles(&graph(&Crate::read()));
    assert!(found.is_empty(), "import circles between files: {found:#?}");
}

#[test]
fn the_checker_sees_what_it_checks() {
    // A re-export followed to its file, a `super::` path, an inline path, a braced `use`.
    let krate = Crate::read();
    let edge = krate.imports("edge/mod.rs");
    assert!(
        edge.iter().any(|f| f.starts_with("checkout/")),
        "edge/mod.rs imports the checkout: {edge:?}"
    );
    let mut seen = Vec::new();
    expand("", "a::{b,c::{d@x,e}}", &mut |p| seen.push(p));
    assert_eq!(seen, ["a::b", "a::c::d", "a::c::e"]);
    let mut graph = BTreeMap::new();
    graph.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    graph.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(circles(&graph), [["a".to_string(), "b".to_string()]]);
    assert!(blank("x // crate::y\n\"crate::z\"").trim() == "x \n\"\"");
    let cut = without_tests("a\n#[cfg(test)]\nmod tests { fn f() { crate::x::y(); } }\nb crate::z");
    assert_eq!(
        cut.split_whitespace().collect::<Vec<_>>(),
        ["a", "b", "crate::z"]
    );
}
