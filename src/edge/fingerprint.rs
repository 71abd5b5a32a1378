//! Content-hashed names for the sale page's assets: `app.js` is also served as
//! `app.1a2b3c4d5e.js`, with a year-long immutable `Cache-Control`, and every reference to
//! `/static/app.js` in the page, the scripts and the stylesheets is rewritten to the hashed
//! name. A new deploy changes the name, so browsers and CDNs can keep an asset for ever and
//! still never serve a stale one; only the short-lived HTML is asked for again.
//!
//! A file's hash covers its content after its own references are rewritten (the script that
//! loads the worker changes name when the worker does), found by rewriting until the names stop
//! changing.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

/// Hex digits of the hash put in a name.
const HASH_CHARS: usize = 10;

/// `rel` with `hash` before its extension: `js/app.js` → `js/app.<hash>.js`.
pub fn hashed_name(rel: &str, hash: &str) -> String {
    let (dir, file) = rel.rsplit_once('/').map_or(("", rel), |(d, f)| (d, f));
    let named = match file.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}.{hash}.{ext}"),
        _ => format!("{file}.{hash}"),
    };
    if dir.is_empty() {
        named
    } else {
        format!("{dir}/{named}")
    }
}

/// Replace every `/static/<rel>` in `text` by `/static/<hashed>` for each `(rel, hashed)` of
/// `names`, where the name is not followed by more of a file name.
pub fn rewrite(text: &str, names: &HashMap<String, String>) -> String {
    const PREFIX: &str = "/static/";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(PREFIX) {
        out.push_str(&rest[..at + PREFIX.len()]);
        rest = &rest[at + PREFIX.len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || "._-/".contains(c)))
            .unwrap_or(rest.len());
        let name = &rest[..end];
        match names.get(name) {
            Some(hashed) => out.push_str(hashed),
            None => out.push_str(name),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The hashed name of every asset (`texts`: the rewritable files' contents by name; `binary`:
/// the others' hashes), the texts' references resolved.
pub fn names(
    texts: &HashMap<String, String>,
    binary: &HashMap<String, String>,
) -> HashMap<String, String> {
    let mut names: HashMap<String, String> = binary
        .iter()
        .map(|(rel, hash)| (rel.clone(), hashed_name(rel, hash)))
        .collect();
    // Each round settles at least one more file of a chain of references.
    for _ in 0..=texts.len() {
        let mut changed = false;
        for (rel, text) in texts {
            let hash = digest(rewrite(text, &names).as_bytes());
            let hashed = hashed_name(rel, &hash);
            if names.get(rel) != Some(&hashed) {
                names.insert(rel.clone(), hashed);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    names
}

/// The short hash of `bytes` put in a name.
pub fn digest(bytes: &[u8]) -> String {
    let mut hex = hex::encode(Sha256::digest(bytes));
    hex.truncate(HASH_CHARS);
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_hash_before_the_extension() {
        assert_eq!(hashed_name("app.js", "abc"), "app.abc.js");
        assert_eq!(hashed_name("css/app.min.css", "abc"), "css/app.min.abc.css");
        assert_eq!(hashed_name("LICENSE", "abc"), "LICENSE.abc");
        assert_eq!(hashed_name(".hidden", "abc"), ".hidden.abc");
    }

    #[test]
    fn references_are_rewritten_whole_and_chains_settle() {
        let texts: HashMap<String, String> = [
            (
                "index.html",
                r#"<script src="/static/app.js"></script><link href="/static/app.css">"#,
            ),
            (
                "app.js",
                r#"new Worker("/static/pow-worker.js"); fetch("/static/app.json")"#,
            ),
            ("pow-worker.js", "self.onmessage = () => {};"),
            ("app.css", "body { background: url(/static/dot.png) }"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let binary = [("dot.png".to_string(), "0123456789".to_string())].into();
        let names = names(&texts, &binary);
        let app = rewrite(&texts["app.js"], &names);
        assert!(
            app.contains(&format!("/static/{}", names["pow-worker.js"])),
            "{app}"
        );
        assert!(
            app.contains("/static/app.json"),
            "a longer name is left alone: {app}"
        );
        let css = rewrite(&texts["app.css"], &names);
        assert!(css.contains("/static/dot.0123456789.png"), "{css}");
        // app.js's name follows the worker's: change the worker, and app.js is renamed too.
        let mut changed = texts.clone();
        changed.insert(
            "pow-worker.js".into(),
            "self.onmessage = () => { 1 };".into(),
        );
        let renamed = super::names(&changed, &binary);
        assert_ne!(renamed["pow-worker.js"], names["pow-worker.js"]);
        assert_ne!(renamed["app.js"], names["app.js"]);
        assert_eq!(renamed["app.css"], names["app.css"]);
    }
}
