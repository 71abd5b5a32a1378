//! Where each value of a YAML document stands. serde gives positions only for errors it finds
//! itself; checks made after parsing (a sale outside the catalog, a short secret, a sale that
//! ends before it starts) look their value up here by path — `sales[0].ends_at` — so they too
//! can name the line and column.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use super::error::Position;

/// Path → position of the value at that path.
#[derive(Debug, Default)]
pub struct Locations {
    values: HashMap<String, Position>,
    keys: HashMap<String, Position>,
}

impl Locations {
    /// Index `text`. A document the indexer cannot read yields an empty index: serde reports
    /// the syntax error with its own position.
    pub fn index(text: &str) -> Self {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut builder, false).is_err() {
            return Locations::default();
        }
        // A value missing at the very end (`key:` on a last line without a line break) is
        // placed where the scanner ends the stream, a line past the text.
        for at in builder.values.values_mut().chain(builder.keys.values_mut()) {
            *at = at.within(text);
        }
        Locations {
            values: builder.values,
            keys: builder.keys,
        }
    }

    /// The position of the key of the mapping entry at `path` (for "unknown field" errors),
    /// falling back to its value's position.
    pub fn find_key(&self, path: &str) -> Position {
        self.keys
            .get(path)
            .copied()
            .unwrap_or_else(|| self.find(path))
    }

    /// The position of the value at `path`, or of its nearest indexed parent, or the start of
    /// the file.
    pub fn find(&self, path: &str) -> Position {
        let mut path = path;
        loop {
            if let Some(pos) = self.values.get(path) {
                return *pos;
            }
            match path.rfind(['.', '[']) {
                Some(cut) => path = &path[..cut],
                None => return Position::START,
            }
        }
    }
}

enum Frame {
    /// Inside a mapping; `key` is the key whose value comes next, if a key was just read.
    Map { path: String, key: Option<String> },
    /// Inside a sequence; `next` is the index of the next item.
    Seq { path: String, next: usize },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    values: HashMap<String, Position>,
    keys: HashMap<String, Position>,
}

impl Builder {
    /// The path of the node about to be read, or None when the node is a mapping key.
    fn next_path(&mut self) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map { path, key }) => key.take().map(|k| join(path, &k)),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                Some(p)
            }
        }
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

fn position(mark: Marker) -> Position {
    // yaml-rust2 counts lines from 1 and columns from 0.
    Position {
        line: mark.line().max(1),
        column: mark.col() + 1,
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, ..) => match self.next_path() {
                Some(path) => {
                    self.values.insert(path, position(mark));
                }
                None => {
                    if let Some(Frame::Map { path, key }) = self.stack.last_mut() {
                        self.keys.insert(join(path, &value), position(mark));
                        *key = Some(value);
                    }
                }
            },
            Event::MappingStart(..) => {
                let path = self.next_path().unwrap_or_default();
                self.values.insert(path.clone(), position(mark));
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.next_path().unwrap_or_default();
                self.values.insert(path.clone(), position(mark));
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::Alias(_) => {
                self.next_path();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_values_with_one_based_positions() {
        let text = "listen: 1\nsales:\n  - product: 42\n    ends_at: x\n  - { product: 7 }\n";
        let loc = Locations::index(text);
        assert_eq!(loc.find("listen"), Position { line: 1, column: 9 });
        assert_eq!(
            loc.find("sales[0].ends_at"),
            Position {
                line: 4,
                column: 14
            }
        );
        assert_eq!(
            loc.find("sales[1].product"),
            Position {
                line: 5,
                column: 16
            }
        );
        // Found by the property tests (tests/properties): an empty last value was placed a
        // line past the end of the text.
        let loc = Locations::index("a: 1\nb:");
        assert_eq!(loc.find("b"), Position { line: 2, column: 3 });
        let loc = Locations::index("&a");
        assert_eq!(loc.find(""), Position { line: 1, column: 3 });
        let loc = Locations::index(text);
        // Unknown leaf falls back to its parent.
        assert_eq!(loc.find("sales[0].nothing"), loc.find("sales[0]"));
        assert_eq!(
            loc.find_key("sales[0].ends_at"),
            Position { line: 4, column: 5 }
        );
    }
}
