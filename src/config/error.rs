//! The one error type of configuration loading. Every variant that comes from a file names the
//! file, the line and the column (1-based) and says what was expected there, so an operator can
//! jump straight to the mistake.

use std::fmt;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem;

/// A position in a configuration file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Line, starting at 1.
    pub line: usize,
    /// Column, starting at 1.
    pub column: usize,
}

impl Position {
    /// The first character of a file: used when a problem belongs to the file as a whole.
    pub const START: Position = Position { line: 1, column: 1 };

    /// The line and column of byte `index` of `text` as an editor shows them: lines end at
    /// `\n`, `\r\n` or `\r`, columns count characters. An index past the end is the end.
    pub(crate) fn at_byte(text: &str, index: usize) -> Position {
        let mut index = index.min(text.len());
        while !text.is_char_boundary(index) {
            index -= 1;
        }
        let before = &text[..index];
        let mut line = 1;
        let mut start = 0;
        let mut chars = before.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            let crlf = c == '\r' && chars.peek().is_some_and(|&(_, next)| next == '\n');
            if crlf {
                chars.next();
            }
            if c == '\n' || c == '\r' {
                line += 1;
                start = at + if crlf { 2 } else { 1 };
            }
        }
        Position {
            line,
            column: before[start..].chars().count() + 1,
        }
    }

    /// Where line `line` (1-based) of a line-oriented file, whose text is `body`, starts past
    /// its white space. Columns count characters, as in every position: a line may start with
    /// a non-ASCII space.
    pub(crate) fn first_non_blank(line: usize, body: &str) -> Position {
        Position {
            line,
            column: body.chars().take_while(|c| c.is_whitespace()).count() + 1,
        }
    }

    /// This position, or the end of `text` if it lies past the last line: a YAML scanner ends
    /// the stream on a line of its own, one past a last line that has no line break, and a
    /// value that is missing at the very end (`key:` as the last line) is placed there.
    pub(crate) fn within(self, text: &str) -> Position {
        let end = Position::at_byte(text, text.len());
        if self.line > end.line {
            end
        } else {
            self
        }
    }

    /// Where serde_yaml says `error` is in `text` (the start of the file when it does not say).
    /// Its byte offset is what counts, not its line and column: libyaml also ends lines at
    /// U+0085, U+2028 and U+2029, which no editor does, and reports what is missing from the
    /// whole document (`missing field`) on a line of its own past the end of a text whose last
    /// line has no line break.
    pub fn of_yaml_error(error: &serde_yaml::Error, text: &str) -> Position {
        error
            .location()
            .map(|l| Position::at_byte(text, l.index()))
            .unwrap_or(Position::START)
    }
}

/// Why a configuration (or a file it names, such as the blocklist) could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("{}: cannot read: {source}", file.display())]
    Read {
        /// The file that could not be read.
        file: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file was read and something in it is wrong.
    #[error("{}:{}:{}: {message}", file.display(), at.line, at.column)]
    At {
        /// The file the mistake is in.
        file: PathBuf,
        /// Where in the file.
        at: Position,
        /// What is wrong and what was expected.
        message: String,
    },
    /// A file the configuration names at a known position (the TLS certificate or key) cannot
    /// be used; the cause names that file too.
    #[error("{}:{}:{}: {path}: {source}", file.display(), at.line, at.column)]
    Tls {
        /// The configuration file.
        file: PathBuf,
        /// Where in it the value naming the bad file stands.
        at: Position,
        /// The value's path, e.g. `tls.key`.
        path: String,
        /// What is wrong with the file it names (boxed: the error stays small).
        source: Box<TlsError>,
    },
}

impl ConfigError {
    /// A mistake at a known position of `file`.
    pub fn at(file: &Path, at: Position, message: impl fmt::Display) -> Self {
        ConfigError::At {
            file: file.to_path_buf(),
            at,
            message: message.to_string(),
        }
    }

    /// The position this error points at, if it points into a file.
    pub fn position(&self) -> Option<Position> {
        match self {
            ConfigError::At { at, .. } | ConfigError::Tls { at, .. } => Some(*at),
            ConfigError::Read { .. } => None,
        }
    }
}

/// Why a certificate or key file cannot serve; every variant names its file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file is not well-formed PEM.
    #[error("{} is not valid PEM: {source}", file.display())]
    Pem {
        /// The file.
        file: PathBuf,
        /// What the PEM reader said.
        source: pem::Error,
    },
    /// The chain file holds no certificate.
    #[error(
        "{} holds no certificate: expected PEM blocks \"-----BEGIN CERTIFICATE-----\", leaf first",
        file.display()
    )]
    NoCertificate {
        /// The file.
        file: PathBuf,
    },
    /// The leaf certificate does not parse as X.509.
    #[error("{}: the first certificate is not valid X.509: {reason}", file.display())]
    Certificate {
        /// The file.
        file: PathBuf,
        /// What the X.509 parser said.
        reason: String,
    },
    /// The key file holds no private key.
    #[error(
        "{} holds no private key: expected a PEM block \"-----BEGIN PRIVATE KEY-----\" \
         (PKCS#8), \"RSA PRIVATE KEY\" (PKCS#1) or \"EC PRIVATE KEY\" (SEC1)",
        file.display()
    )]
    NoKey {
        /// The file.
        file: PathBuf,
    },
    /// The key is of a kind rustls cannot sign with.
    #[error("{}: the private key cannot be used: {source}", file.display())]
    Key {
        /// The file.
        file: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
    /// The key is not the one of the leaf certificate.
    #[error(
        "the private key in {} does not match the certificate in {} (a key from another \
         certificate, or the chain's leaf is not first)",
        key.display(),
        cert.display()
    )]
    Mismatch {
        /// The certificate chain file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml_error(text: &str) -> Position {
        let error = serde_yaml::from_str::<std::collections::BTreeMap<String, u8>>(text)
            .expect_err("not a map of small numbers");
        Position::of_yaml_error(&error, text)
    }

    #[test]
    fn yaml_errors_are_placed_as_an_editor_shows_the_text() {
        // Found by the property tests (tests/properties): libyaml's own line and column point
        // past a last line without a line break, and count U+0085 as a line break.
        let at = |line, column| Position { line, column };
        assert_eq!(yaml_error("a: x"), at(1, 4));
        assert_eq!(yaml_error("a: 1\nb: x\n"), at(2, 4));
        assert_eq!(yaml_error("a: 1\r\nb: x"), at(2, 4));
        assert_eq!(yaml_error("a: 1\rb: x"), at(2, 4));
        // libyaml stops at the `b`, which it calls line 3.
        assert_eq!(yaml_error("a:\u{85}1\nb: x"), at(2, 1));
        assert_eq!(yaml_error("é: 1\n\u{2028}b: x"), at(2, 5));
        #[derive(Debug, serde::Deserialize)]
        struct Needs {
            #[allow(dead_code)]
            needed: u8,
        }
        let missing = serde_yaml::from_str::<Needs>("#").expect_err("missing field");
        assert_eq!(
            Position::of_yaml_error(&missing, "#"),
            at(1, 2),
            "libyaml: line 2"
        );
    }

    #[test]
    fn a_position_past_the_last_line_is_the_end() {
        let at = |line, column| Position { line, column };
        assert_eq!(at(2, 1).within("&a"), at(1, 3));
        assert_eq!(at(2, 1).within("&a\n"), at(2, 1));
        assert_eq!(at(1, 2).within("&a"), at(1, 2));
        assert_eq!(at(9, 9).within(""), at(1, 1));
    }

    #[test]
    fn a_byte_offset_is_a_line_and_a_column() {
        let at = |line, column| Position { line, column };
        assert_eq!(Position::at_byte("", 0), at(1, 1));
        assert_eq!(Position::at_byte("#", 9), at(1, 2));
        assert_eq!(Position::at_byte("ab\r\ncd", 4), at(2, 1));
        assert_eq!(Position::at_byte("ab\r\ncd", 6), at(2, 3));
        assert_eq!(Position::at_byte("é\rxyz", 4), at(2, 2));
        assert_eq!(
            Position::at_byte("éa", 1),
            at(1, 1),
            "inside a character: its start"
        );
    }
}
