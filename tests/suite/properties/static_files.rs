//! The static sale page (`edge::static_files`): any path under `/static/` names a file only if
//! it is, once percent-decoded, exactly the relative path of a file loaded from `static_dir`,
//! and no spelling of `..`, `.`, `//`, `\` or NUL does; any `If-None-Match` is read without a
//! panic and matches only a listed tag.

use std::sync::OnceLock;

use flashgate::edge::static_files::{not_modified, StaticFiles};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use proptest::prelude::*;

use super::strategies::hostile_text;

/// Files in the test's static_dir (relative paths).
const FILES: [&str; 4] = ["index.html", "css/app.css", "a b%.js", "deep/er/x.txt"];

fn files() -> &'static StaticFiles {
    static LOADED: OnceLock<(tempfile::TempDir, StaticFiles)> = OnceLock::new();
    &LOADED
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("a temp dir");
            for f in FILES {
                let path = dir.path().join(f);
                std::fs::create_dir_all(path.parent().expect("in the dir")).expect("dirs");
                std::fs::write(&path, f).expect("written");
            }
            let files = StaticFiles::load(dir.path()).expect("loads");
            (dir, files)
        })
        .1
}

/// Characters percent-encoded by the generated paths: a random choice of them.
const SOME: &AsciiSet = &NON_ALPHANUMERIC.remove(b'/').remove(b'.').remove(b'-');

fn path() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        prop::sample::select(vec![
            "..",
            ".",
            "",
            "%2e%2e",
            "%2E.",
            "%2f",
            "%5c",
            "\\",
            "%00",
            "css",
            "app.css",
            "index.html",
            "a b%.js",
            "a%20b%25.js",
            "deep",
            "er",
            "x.txt",
            "%c0%ae",
        ])
        .prop_map(str::to_string),
        hostile_text(8),
    ];
    prop_oneof![
        prop::collection::vec(piece, 1..5).prop_map(|p| p.join("/")),
        prop::sample::select(FILES.to_vec()).prop_map(|f| utf8_percent_encode(f, SOME).to_string()),
        hostile_text(40),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn a_path_names_only_a_loaded_file_spelt_exactly(rest in path()) {
        let found = files().lookup(&rest);
        let decoded = percent_encoding::percent_decode_str(&rest).decode_utf8().ok();
        let named = decoded.as_deref().filter(|d| FILES.contains(d));
        prop_assert_eq!(found.is_some(), named.is_some(), "{:?}", rest);
        if let (Some(file), Some(name)) = (found, named) {
            prop_assert_eq!(&file.body[..], name.as_bytes());
        }
    }

    #[test]
    fn if_none_match_matches_only_a_listed_tag(
        header in prop::option::of(prop::collection::vec(any::<u8>(), 0..80)),
        tags in prop::collection::vec("(W/)?\"[a-z0-9]{0,6}\"|\\*|[^,]{0,6}", 0..4),
    ) {
        let etag = "\"abc123\"";
        let _ = not_modified(header.as_deref(), etag);
        let value = tags.join(", ");
        let listed = tags.iter().any(|t| {
            let t = t.trim();
            t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag
        });
        prop_assert_eq!(not_modified(Some(value.as_bytes()), etag), listed, "{:?}", value);
    }
}
