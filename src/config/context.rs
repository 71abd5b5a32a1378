//! What every check of a configuration file has at hand: the file's name, where each value
//! stands in it, and the environment that `${NAME}` references are read from. The helpers here
//! (an error at a value's position, expanding a value that must be set or may name unset
//! variables, a secret) are shared by `validate` and the sections that resolve themselves, such
//! as `captcha`; they depend on nothing else of the configuration.

use std::path::Path;

use super::env::{expand, Expanded};
use super::error::ConfigError;
use super::locate::Locations;
use super::{Environment, Secret, MIN_SECRET_BYTES};

/// One file being resolved: errors are placed by the path of the value they are about
/// (`sales[0].ends_at`), and `${NAME}` is looked up in `env`.
pub(super) struct Ctx<'a> {
    file: &'a Path,
    loc: &'a Locations,
    env: &'a dyn Environment,
}

impl<'a> Ctx<'a> {
    /// Resolve values of `file`, whose positions are `loc`, against `env`.
    pub(super) fn new(file: &'a Path, loc: &'a Locations, env: &'a dyn Environment) -> Self {
        Ctx { file, loc, env }
    }

    /// An error at the value at `path` (or its nearest parent that is in the file).
    pub(super) fn err(&self, path: &str, message: impl std::fmt::Display) -> ConfigError {
        ConfigError::at(self.file, self.loc.find(path), message)
    }

    /// Expand `${VAR}` in a value that must be fully set.
    pub(super) fn required(&self, path: &str, text: &str) -> Result<String, ConfigError> {
        match expand(text, |n| self.env.var(n)).map_err(|e| self.err(path, e))? {
            Expanded::Value(v) => Ok(v),
            Expanded::Missing(names) => Err(self.err(
                path,
                format!("environment variable {} is not set", names.join(", ")),
            )),
        }
    }

    /// Expand a value that may name unset variables: `Err(names)` lists them.
    pub(super) fn optional(
        &self,
        path: &str,
        text: &str,
    ) -> Result<Result<String, String>, ConfigError> {
        match expand(text, |n| self.env.var(n)).map_err(|e| self.err(path, e))? {
            Expanded::Value(v) => Ok(Ok(v)),
            Expanded::Missing(names) => Ok(Err(names.join(", "))),
        }
    }

    /// Expand a secret; an unset variable falls back to the development secret.
    pub(super) fn secret(
        &self,
        path: &str,
        text: &str,
        dev: &'static [u8],
        fell_back: &mut Vec<&'static str>,
        name: &'static str,
    ) -> Result<Secret, ConfigError> {
        match expand(text, |n| self.env.var(n)).map_err(|e| self.err(path, e))? {
            Expanded::Missing(_) => {
                fell_back.push(name);
                Ok(Secret::new(dev))
            }
            Expanded::Value(v) if v.len() < MIN_SECRET_BYTES => Err(self.err(
                path,
                format!(
                    "{path} is {} bytes; a secret needs at least {MIN_SECRET_BYTES} \
                     (try: openssl rand -hex 32)",
                    v.len()
                ),
            )),
            Expanded::Value(v) => Ok(Secret::new(v.into_bytes())),
        }
    }
}
