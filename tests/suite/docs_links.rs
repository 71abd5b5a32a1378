//! The links between the repository's Markdown pages. Every relative link of every `*.md` file
//! (`[text](path)`, `[text](path#anchor)`, `[text](#anchor)`; `http:`, `https:` and `mailto:`
//! are not followed) must name a file that exists and, when it has an anchor, a heading of that
//! file, by GitHub's rule for anchors. Links inside fenced code blocks and code spans are not
//! links. README.md stays at most 200 lines: the rest lives in docs/.
//!
//! Self-contained on purpose: the standard library only, not the flashgate crate, not
//! `tests/common`.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Component, Path, PathBuf};

/// The README is the first screen and a map of docs/; everything else goes to a page of its own.
const README_MAX_LINES: usize = 200;

/// Directories never walked: build output, npm's packages, git's own.
const SKIPPED_DIRS: [&str; 3] = ["target", "node_modules", ".git"];

/// A relative link found in a Markdown file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Link {
    /// 1-based line of its `[`.
    line: usize,
    /// The link as written, `[text](destination)`, for the report.
    written: String,
    /// The destination, as written between the parentheses.
    destination: String,
}

#[test]
fn every_relative_link_of_every_markdown_file_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    markdown_files(root, &mut files);
    assert!(
        files.iter().any(|f| f.ends_with("README.md")),
        "no README.md found under {}",
        root.display()
    );
    let mut checker = Checker::new(root);
    let mut broken = Vec::new();
    let mut links = 0;
    for file in &files {
        let (found, errors) = checker.check_file(file);
        links += found;
        broken.extend(errors);
    }
    assert!(
        broken.is_empty(),
        "{} broken link(s) in {} Markdown files ({links} relative links checked):\n{}",
        broken.len(),
        files.len(),
        broken.join("\n")
    );
    assert!(
        links > 0,
        "no relative link found: the walk or the parser is broken"
    );
}

/// The top directories of the repository a Markdown file may name a path in, in backticks.
const NAMED_DIRS: [&str; 11] = [
    "src",
    "lua",
    "conf",
    "tests",
    "scripts",
    "benches",
    "static",
    "deploy",
    "examples",
    "fuzz",
    "migrations",
];

#[test]
fn every_file_a_markdown_file_names_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    markdown_files(root, &mut files);
    let mut missing = Vec::new();
    let mut named = 0;
    for file in &files {
        let text = fs::read_to_string(file).expect("readable");
        for (n, line) in text.lines().enumerate() {
            for (i, span) in line.split('`').enumerate() {
                // Odd pieces are inside backticks; a path is one word of known top directory.
                let top = span.split('/').next().unwrap_or("");
                if i % 2 == 0 || !span.contains('/') || !NAMED_DIRS.contains(&top) {
                    continue;
                }
                if span.contains(char::is_whitespace) || span.contains(['*', '{', '<', '$']) {
                    continue;
                }
                named += 1;
                let path = span.split([':', '#']).next().unwrap_or(span);
                if !root.join(path).exists() {
                    missing.push(format!("{}:{}: `{span}`", file.display(), n + 1));
                }
            }
        }
    }
    assert!(named > 20, "only {named} paths found: the scan is broken");
    assert!(
        missing.is_empty(),
        "paths named in Markdown that do not exist:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_readme_is_at_most_200_lines() {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let text = fs::read_to_string(&readme).expect("README.md is readable");
    let lines = text.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines, more than {README_MAX_LINES}: move a topic to docs/"
    );
}

// ---------------------------------------------------------------------------------------------
// Walking the repository

/// Every `*.md` file under `dir`, in a stable order, skipping [`SKIPPED_DIRS`]. Symbolic links
/// are not followed.
fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    let mut entries: Vec<_> = entries
        .map(|entry| entry.unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())))
        .collect();
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let kind = entry
            .file_type()
            .unwrap_or_else(|e| panic!("{}: {e}", entry.path().display()));
        if kind.is_dir() {
            if !SKIPPED_DIRS.contains(&name.as_ref()) {
                markdown_files(&entry.path(), out);
            }
        } else if kind.is_file() && name.ends_with(".md") {
            out.push(entry.path());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checking

struct Checker {
    root: PathBuf,
    /// The anchors of each Markdown file read so far.
    anchors: HashMap<PathBuf, HashSet<String>>,
}

impl Checker {
    fn new(root: &Path) -> Checker {
        Checker {
            root: normalize(root),
            anchors: HashMap::new(),
        }
    }

    /// How many relative links `file` has, and one line per broken one.
    fn check_file(&mut self, file: &Path) -> (usize, Vec<String>) {
        let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let shown = self.shown(file);
        let links: Vec<Link> = find_links(&text)
            .into_iter()
            .filter(|link| !is_external(&link.destination))
            .collect();
        let mut errors = Vec::new();
        for link in &links {
            if let Err(why) = self.resolve(file, &link.destination) {
                errors.push(format!("{shown}:{}: {}: {why}", link.line, link.written));
            }
        }
        (links.len(), errors)
    }

    /// Checks one destination of a link in `from`.
    fn resolve(&mut self, from: &Path, destination: &str) -> Result<(), String> {
        let (path, anchor) = match destination.split_once('#') {
            Some((path, anchor)) => (path, Some(anchor)),
            None => (destination, None),
        };
        let path = path.split('?').next().unwrap_or("");
        let path = percent_decode(path);
        let target = if path.is_empty() {
            from.to_path_buf()
        } else if let Some(from_root) = path.strip_prefix('/') {
            self.root.join(from_root)
        } else {
            from.parent().unwrap_or(Path::new("")).join(&path)
        };
        let target = normalize(&target);
        if !target.starts_with(&self.root) {
            return Err(format!("{path} is outside the repository"));
        }
        if !target.exists() {
            return Err(format!("no such file: {}", self.shown(&target)));
        }
        let Some(anchor) = anchor else {
            return Ok(());
        };
        let anchor = percent_decode(anchor);
        let is_markdown = target.is_file() && target.extension().is_some_and(|e| e == "md");
        if !is_markdown {
            // GitHub's line anchors (#L10, #L10-L20) are the only ones other files have.
            return if is_line_anchor(&anchor) {
                Ok(())
            } else {
                Err(format!(
                    "#{anchor}: {} is not a Markdown file, it has no headings",
                    self.shown(&target)
                ))
            };
        }
        let anchors = self.anchors_of(&target);
        if anchors.contains(&anchor) {
            return Ok(());
        }
        let mut near: Vec<&String> = anchors
            .iter()
            .filter(|a| shares_a_word(a, &anchor))
            .collect();
        near.sort();
        let hint = if near.is_empty() {
            String::new()
        } else {
            let near: Vec<String> = near.iter().map(|a| format!("#{a}")).collect();
            format!(" (its headings include {})", near.join(", "))
        };
        Err(format!(
            "no heading #{anchor} in {}{hint}",
            self.shown(&target)
        ))
    }

    fn anchors_of(&mut self, file: &Path) -> &HashSet<String> {
        self.anchors.entry(file.to_path_buf()).or_insert_with(|| {
            let text =
                fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            heading_anchors(&text).into_iter().collect()
        })
    }

    /// `file` relative to the repository, for the report.
    fn shown(&self, file: &Path) -> String {
        let file = normalize(file);
        file.strip_prefix(&self.root)
            .unwrap_or(&file)
            .display()
            .to_string()
    }
}

fn is_external(destination: &str) -> bool {
    let lower = destination.to_ascii_lowercase();
    ["http:", "https:", "mailto:"]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
}

fn is_line_anchor(anchor: &str) -> bool {
    let line = |s: &str| {
        s.strip_prefix('L')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    match anchor.split_once('-') {
        Some((from, to)) => line(from) && line(to),
        None => line(anchor),
    }
}

fn shares_a_word(a: &str, b: &str) -> bool {
    let words = |s: &str| -> HashSet<String> {
        s.split('-')
            .filter(|w| w.chars().count() > 3)
            .map(str::to_string)
            .collect()
    };
    !words(a).is_disjoint(&words(b))
}

/// `path` with `.` and `..` taken out, without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// `%XX` escapes decoded (a link to `a%20b.md` names `a b.md`); anything else kept as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Reading Markdown

/// The lines of `text`, with those of fenced code blocks (fences included) blanked: what is
/// left is prose, headings and tables, on the same line numbers.
fn without_fenced_code(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    // The open fence: its character and length. It closes on a line of at least as many of
    // the same character and nothing else.
    let mut open: Option<(char, usize)> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let fence = ['`', '~'].into_iter().find_map(|c| {
            let n = trimmed.chars().take_while(|&x| x == c).count();
            (n >= 3).then_some((c, n))
        });
        match (open, fence) {
            (None, Some((c, n))) => {
                // A backtick fence's info string may not contain a backtick.
                if c == '~' || !trimmed[n..].contains('`') {
                    open = Some((c, n));
                    out.push("");
                } else {
                    out.push(line);
                }
            }
            (Some((c, n)), Some((d, m))) if c == d && m >= n && trimmed[m..].trim().is_empty() => {
                open = None;
                out.push("");
            }
            (Some(_), _) => out.push(""),
            (None, None) => out.push(line),
        }
    }
    out
}

/// Every inline link and image of `text` outside code: `[text](destination)` and
/// `![alt](destination)`, the link text allowed to run over several lines of its paragraph.
fn find_links(text: &str) -> Vec<Link> {
    let lines = without_fenced_code(text);
    let mut links = Vec::new();
    // Paragraphs (runs of non-blank lines): neither a code span nor a link crosses a blank line.
    let mut start = 0;
    while start < lines.len() {
        if lines[start].trim().is_empty() {
            start += 1;
            continue;
        }
        let mut end = start;
        while end < lines.len() && !lines[end].trim().is_empty() {
            end += 1;
        }
        let block: Vec<char> = lines[start..end].join("\n").chars().collect();
        links_in_block(&block, start + 1, &mut links);
        start = end;
    }
    links
}

fn links_in_block(block: &[char], first_line: usize, links: &mut Vec<Link>) {
    let line_of = |i: usize| first_line + block[..i].iter().filter(|&&c| c == '\n').count();
    let mut i = 0;
    while i < block.len() {
        match block[i] {
            '\\' => i += 2,
            '`' => i = after_code_span(block, i),
            '[' => {
                if let Some((_, destination, end)) = inline_link(block, i) {
                    let written: String = block[i..end].iter().collect();
                    links.push(Link {
                        line: line_of(i),
                        written: written.split_whitespace().collect::<Vec<_>>().join(" "),
                        destination,
                    });
                }
                // On inside the text: an image in a link is a link of its own.
                i += 1;
            }
            _ => i += 1,
        }
    }
}

/// Where scanning resumes after the backtick run at `i`: past the code span it opens, or past
/// the run itself when nothing closes it (then the backticks are literal).
fn after_code_span(block: &[char], i: usize) -> usize {
    let run = |at: usize| block[at..].iter().take_while(|&&c| c == '`').count();
    let n = run(i);
    let mut j = i + n;
    while j < block.len() {
        if block[j] == '`' {
            let m = run(j);
            if m == n {
                return j + m;
            }
            j += m;
        } else {
            j += 1;
        }
    }
    i + n
}

/// The link opening with the `[` at `open`: the index of its `]`, its destination and the index
/// just past its `)`. None when the brackets are not a link.
fn inline_link(block: &[char], open: usize) -> Option<(usize, String, usize)> {
    // The text: up to the matching `]`, over nested brackets, code spans and escapes.
    let mut depth = 0usize;
    let mut i = open;
    let close = loop {
        match block.get(i)? {
            '\\' => i += 2,
            '`' => i = after_code_span(block, i),
            '[' => {
                depth += 1;
                i += 1;
            }
            ']' => {
                depth -= 1;
                if depth == 0 {
                    break i;
                }
                i += 1;
            }
            _ => i += 1,
        }
    };
    if block.get(close + 1) != Some(&'(') {
        return None;
    }
    // The destination: `<…>`, or up to white space or the `)` that balances the `(`.
    let mut i = close + 2;
    while block.get(i).is_some_and(|c| *c == ' ' || *c == '\n') {
        i += 1;
    }
    let mut destination = String::new();
    if block.get(i) == Some(&'<') {
        i += 1;
        while let Some(&c) = block.get(i) {
            i += 1;
            if c == '>' {
                break;
            }
            destination.push(c);
        }
    } else {
        let mut parens = 0usize;
        while let Some(&c) = block.get(i) {
            match c {
                '\\' => {
                    if let Some(&next) = block.get(i + 1) {
                        destination.push(next);
                    }
                    i += 2;
                    continue;
                }
                '(' => parens += 1,
                ')' if parens == 0 => break,
                ')' => parens -= 1,
                c if c.is_whitespace() => break,
                _ => {}
            }
            destination.push(c);
            i += 1;
        }
    }
    // An optional title, then the closing `)`.
    let mut quote: Option<char> = None;
    while let Some(&c) = block.get(i) {
        i += 1;
        match (quote, c) {
            (None, ')') => return Some((close, destination, i)),
            (None, '"' | '\'') => quote = Some(c),
            (None, '(') => quote = Some(')'),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
    }
    None
}

/// The anchors GitHub gives the headings of `text`, in order: ATX headings (`## Title`) and
/// setext ones (a line under `===` or `---`), outside fenced code.
fn heading_anchors(text: &str) -> Vec<String> {
    let lines = without_fenced_code(text);
    let mut headings = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        if let Some(title) = atx_heading(line) {
            headings.push(title);
        } else if n > 0 && is_setext_underline(line) && is_paragraph_line(lines[n - 1]) {
            // A paragraph of one line, underlined. (Longer paragraphs are not headings here.)
            if n < 2 || lines[n - 2].trim().is_empty() {
                headings.push(lines[n - 1].trim().to_string());
            }
        }
    }
    let mut slugger = Slugger::default();
    headings.iter().map(|h| slugger.slug(h)).collect()
}

/// The text of an ATX heading: up to three spaces, one to six `#`, a space (or nothing), the
/// text, an optional closing run of `#`.
fn atx_heading(line: &str) -> Option<String> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let hashes = rest.chars().take_while(|&c| c == '#').count();
    if hashes == 0 || hashes > 6 {
        return None;
    }
    let rest = &rest[hashes..];
    if !(rest.is_empty() || rest.starts_with(' ') || rest.starts_with('\t')) {
        return None;
    }
    let mut title = rest.trim();
    // A closing sequence: `#`s preceded by a space (or the whole title).
    let without = title.trim_end_matches('#');
    if without.is_empty() || without.ends_with(' ') || without.ends_with('\t') {
        title = without.trim_end();
    }
    Some(title.to_string())
}

fn is_setext_underline(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty()
        && (t.chars().all(|c| c == '=') || t.chars().all(|c| c == '-'))
        && line.len() - line.trim_start().len() <= 3
}

fn is_paragraph_line(line: &str) -> bool {
    let t = line.trim_start();
    !t.is_empty()
        && line.len() - t.len() <= 3
        && atx_heading(line).is_none()
        && !t.starts_with(['|', '>', '-', '*', '+', '<'])
        && !t.chars().next().is_some_and(|c| c.is_ascii_digit())
}

/// What a heading shows, for its anchor: links reduced to their text (images to their alt text).
fn heading_text(title: &str) -> String {
    let chars: Vec<char> = title.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let image = chars[i] == '!' && chars.get(i + 1) == Some(&'[');
        let at = if image { i + 1 } else { i };
        if chars[at] == '[' {
            if let Some((close, _, end)) = inline_link(&chars, at) {
                out.extend(&chars[at + 1..close]);
                i = end;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// GitHub's anchor of a heading: its text in lower case, everything but letters, digits,
/// spaces, hyphens and underscores dropped (letters and digits of any script kept), each space
/// a hyphen.
fn anchor(title: &str) -> String {
    heading_text(title)
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphabetic() || c.is_numeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// Repeated headings: the first keeps its anchor, the next get `-1`, `-2`, … (github-slugger's
/// rule, which also steps past an anchor a heading already took).
#[derive(Default)]
struct Slugger {
    seen: HashMap<String, usize>,
}

impl Slugger {
    fn slug(&mut self, title: &str) -> String {
        let base = anchor(title);
        let mut slug = base.clone();
        while self.seen.contains_key(&slug) {
            let n = self.seen.entry(base.clone()).or_insert(0);
            *n += 1;
            slug = format!("{base}-{n}");
        }
        self.seen.insert(slug.clone(), 0);
        slug
    }
}

// ---------------------------------------------------------------------------------------------
// The checker's own rules

#[test]
fn anchors_follow_githubs_rule() {
    assert_eq!(
        anchor("Did I win? The status of a pending buy"),
        "did-i-win-the-status-of-a-pending-buy"
    );
    assert_eq!(
        anchor("Rehearsing it: `flashgate storm --queue`"),
        "rehearsing-it-flashgate-storm---queue"
    );
    assert_eq!(anchor("HTTPS and HTTP/2"), "https-and-http2");
    assert_eq!(
        anchor("The storm alone: `benches/storm.sh`"),
        "the-storm-alone-benchesstormsh"
    );
    assert_eq!(
        anchor("The order backend: `flashgate-orders`"),
        "the-order-backend-flashgate-orders"
    );
    assert_eq!(anchor("秒杀 and Ünïcode"), "秒杀-and-ünïcode");
    assert_eq!(anchor("`sold_out_hint` (1 s)"), "sold_out_hint-1-s");
    assert_eq!(
        anchor("See [the table](other.md#x) here"),
        "see-the-table-here"
    );
    assert_eq!(atx_heading("## Title ##").as_deref(), Some("Title"));
    assert_eq!(atx_heading("#hashtag"), None);
    assert_eq!(atx_heading("    # indented code"), None);
}

#[test]
fn repeated_headings_get_numbered_anchors() {
    let text =
        "# A\n\n## Metrics\n\ntext\n\n## Metrics\n\n```\n## Metrics\n```\n\n## Metrics\n\nB\n===\n";
    assert_eq!(
        heading_anchors(text),
        ["a", "metrics", "metrics-1", "metrics-2", "b"]
    );
}

#[test]
fn links_are_found_outside_code_only() {
    let text = "\
See [one](a.md), [two](b.md#part) and [the\ntable](#there) (with [a (paren)](c.md \"title\")).
`[not](code.md)` and \\[not](escaped.md) and [not] (spaced.md) and [web](https://x.example).
![image](img/p.svg) [`code` text](d.md)

```sh
[not](fenced.md)
```
~~~
[not](tilde.md)
~~~
[last](e.md)
";
    let found: Vec<(usize, String)> = find_links(text)
        .into_iter()
        .map(|l| (l.line, l.destination))
        .collect();
    let expected: Vec<(usize, String)> = [
        (1, "a.md"),
        (1, "b.md#part"),
        (1, "#there"),
        (2, "c.md"),
        (3, "https://x.example"),
        (4, "img/p.svg"),
        (4, "d.md"),
        (12, "e.md"),
    ]
    .into_iter()
    .map(|(n, d)| (n, d.to_string()))
    .collect();
    assert_eq!(found, expected);
}

#[test]
fn a_broken_link_or_anchor_is_reported_with_its_place() {
    let dir = std::env::temp_dir().join(format!("flashgate-docs-links-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("docs")).expect("temp dir");
    fs::write(
        dir.join("README.md"),
        "# Top heading\n\n[ok](docs/b.md#a-title) [self](#top-heading) [dir](docs)\n\
         [bad anchor](docs/b.md#no-such-title)\n[gone](docs/c.md) [up](../../outside.md)\n\
         ```\n[fenced](docs/missing.md)\n```\n[code file](docs/b.md) [line](x.txt#L3) [no](x.txt#top)\n",
    )
    .expect("write");
    fs::write(
        dir.join("docs/b.md"),
        "# A title\n\n[back](../README.md#top-heading)\n",
    )
    .expect("write");
    fs::write(dir.join("x.txt"), "x\n").expect("write");
    let mut checker = Checker::new(&dir);
    let (links, mut errors) = checker.check_file(&dir.join("README.md"));
    let (_, back) = checker.check_file(&dir.join("docs/b.md"));
    errors.extend(back);
    let _ = fs::remove_dir_all(&dir);
    assert_eq!(links, 9, "{errors:?}");
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(errors[0].starts_with("README.md:4: [bad anchor](docs/b.md#no-such-title): no heading #no-such-title in docs/b.md"), "{}", errors[0]);
    assert!(
        errors[1].starts_with("README.md:5: [gone](docs/c.md): no such file: docs/c.md"),
        "{}",
        errors[1]
    );
    assert!(
        errors[2].starts_with("README.md:5: [up](../../outside.md):"),
        "{}",
        errors[2]
    );
    assert!(
        errors[3].starts_with("README.md:9: [no](x.txt#top):"),
        "{}",
        errors[3]
    );
}
