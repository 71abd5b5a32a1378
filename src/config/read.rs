//! Reading a YAML configuration file into its schema, for the edge's `flashgate.yaml` and the
//! order backend's `orders.yaml` alike: the text is parsed by serde (so a misspelt key or a bad
//! value is refused where it stands) and indexed by `locate` (so checks made afterwards can
//! point at their value too). Every error names the file, the line and the column.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::error::{ConfigError, Position};
use super::locate::Locations;

/// The whole text of `path`.
pub(crate) fn text(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.to_path_buf(),
        source,
    })
}

/// `text` parsed into the schema `T`, with where each of its values stands; errors are reported
/// against `path`.
pub(crate) fn parse<T: DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<(T, Locations), ConfigError> {
    // A byte order mark (as some Windows editors save) is no part of the text an editor shows;
    // serde_yaml would take what follows it for a second document.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let locations = Locations::index(text);
    let deserializer = serde_yaml::Deserializer::from_str(text);
    let parsed: T = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        // serde_yaml places errors raised by a value's own parser at the start of the
        // enclosing mapping; the path of the failing value finds the value itself. Both
        // are at or before the mistake, so the later of the two is the closer.
        let field = e.path().to_string();
        let inner = e.into_inner();
        let message = clean_serde_message(&inner.to_string());
        if message.contains("unknown field `") {
            return ConfigError::at(path, locations.find_key(&field), message);
        }
        let by_path = locations.find(&field);
        let by_parser = Position::of_yaml_error(&inner, text);
        let at = std::cmp::max_by_key(by_parser, by_path, |p| (p.line, p.column));
        ConfigError::at(path, at, name_the_value(&field, &message))
    })?;
    Ok((parsed, locations))
}

/// The message led by the path of the value it is about (`limits[0].per: expected a
/// duration...`). serde_yaml leads with the path of the enclosing mapping when a value's own
/// parser failed (`limits[0]: ...`, nothing at the top level); that prefix is replaced. A path
/// that is the root or not fully known (a `?` segment, as in a syntax error) is left out.
fn name_the_value(field: &str, message: &str) -> String {
    if field.is_empty() || field == "." || field.contains('?') {
        return message.to_string();
    }
    let parents = field
        .char_indices()
        .filter(|&(_, c)| c == '.' || c == '[')
        .map(|(at, _)| &field[..at]);
    let rest = std::iter::once(field)
        .chain(parents)
        .find_map(|p| message.strip_prefix(p)?.strip_prefix(": "))
        .unwrap_or(message);
    format!("{field}: {rest}")
}

/// serde_yaml writes " at line X column Y" into its messages; the position is already in front.
fn clean_serde_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(" at line ") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + " at line ".len()..];
        // Skip "N column M".
        let skipped = tail
            .split_once(" column ")
            .filter(|(line, _)| line.chars().all(|c| c.is_ascii_digit()))
            .map(|(_, after)| after.trim_start_matches(|c: char| c.is_ascii_digit()));
        match skipped {
            Some(after) => rest = after,
            None => {
                out.push_str(" at line ");
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Small {
        #[allow(dead_code)]
        a: u8,
    }

    #[test]
    fn a_byte_order_mark_is_no_part_of_the_text() {
        // Found while testing error positions (tests/properties): a file saved with a byte
        // order mark was refused as "more than one document".
        let (small, _) = parse::<Small>(Path::new("f.yaml"), "\u{feff}a: 1\n").unwrap();
        assert_eq!(small.a, 1);
        let error = parse::<Small>(Path::new("f.yaml"), "\u{feff}a: x").unwrap_err();
        assert_eq!(error.position(), Some(Position { line: 1, column: 4 }));
    }

    #[test]
    fn messages_name_the_value_they_are_about() {
        assert_eq!(
            name_the_value("limits[0].per", "limits[0]: expected a duration"),
            "limits[0].per: expected a duration"
        );
        assert_eq!(
            name_the_value("payment_timeout", "expected a duration"),
            "payment_timeout: expected a duration"
        );
        assert_eq!(
            name_the_value("sales[0].stock", "sales[0].stock: invalid type"),
            "sales[0].stock: invalid type"
        );
        assert_eq!(name_the_value(".", "did not find key"), "did not find key");
        assert_eq!(
            name_the_value("secrets.?", "mapping values"),
            "mapping values"
        );
    }
}
