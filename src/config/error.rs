//! The one error type of configuration loading. Every variant that comes from a file names the
//! file, the line and the column (1-based) and says what was expected there, so an operator can
//! jump straight to the mistake.

use std::fmt;
use std::path::{Path, PathBuf};

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

    /// Where serde_yaml says `error` is (the start of the file when it does not say).
    pub fn of_yaml_error(error: &serde_yaml::Error) -> Position {
        error
            .location()
            .map(|l| Position {
                line: l.line(),
                column: l.column(),
            })
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
        path: &'static str,
        /// What is wrong with the file it names (boxed: the error stays small).
        source: Box<super::tls::TlsError>,
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
