//! What every check of a configuration file has at hand: the file's name, where each value
//! stands in it, and the environment that `${NAME}` references are read from. The helpers here
//! (an error at a value's position, expanding a value that must be set or may name unset
//! variables, the one secret check and its development fallback) are shared by `validate`, the
//! sections that resolve themselves, such as `captcha`, and the order backend's settings
//! (`orders::settings`); they depend on nothing else of the configuration.

use std::path::Path;

use super::env::{expand, Expanded};
use super::error::ConfigError;
use super::locate::Locations;
use super::{Environment, Secret, MIN_SECRET_BYTES};

/// One file being resolved: errors are placed by the path of the value they are about
/// (`sales[0].ends_at`), and `${NAME}` is looked up in `env`.
pub(crate) struct Reading<'a> {
    file: &'a Path,
    loc: &'a Locations,
    env: &'a dyn Environment,
}

impl<'a> Reading<'a> {
    /// Resolve values of `file`, whose positions are `loc`, against `env`.
    pub(crate) fn new(file: &'a Path, loc: &'a Locations, env: &'a dyn Environment) -> Self {
        Reading { file, loc, env }
    }

    /// An error at the value at `path` (or its nearest parent that is in the file).
    pub(crate) fn err(&self, path: &str, message: impl std::fmt::Display) -> ConfigError {
        ConfigError::at(self.file, self.loc.find(path), message)
    }

    /// An error at the value at `path` about the TLS file it names (its cause kept).
    pub(crate) fn tls_err(&self, path: &str, source: super::error::TlsError) -> ConfigError {
        ConfigError::Tls {
            file: self.file.to_path_buf(),
            at: self.loc.find(path),
            path: path.to_string(),
            source: Box::new(source),
        }
    }

    /// Expand `${VAR}` in a value that must be fully set.
    pub(crate) fn required(&self, path: &str, text: &str) -> Result<String, ConfigError> {
        match expand(text, |n| self.env.var(n)).map_err(|e| self.err(path, e))? {
            Expanded::Value(v) => Ok(v),
            Expanded::Missing(names) => Err(self.err(
                path,
                format!("environment variable {} is not set", names.join(", ")),
            )),
        }
    }

    /// Expand a value that may name unset variables: `Err(names)` lists them.
    pub(crate) fn optional(
        &self,
        path: &str,
        text: &str,
    ) -> Result<Result<String, String>, ConfigError> {
        match expand(text, |n| self.env.var(n)).map_err(|e| self.err(path, e))? {
            Expanded::Value(v) => Ok(Ok(v)),
            Expanded::Missing(names) => Ok(Err(names.join(", "))),
        }
    }

    /// The one check of a secret, wherever it is written (the edge's `secrets.*` and
    /// `captcha.token_secret`, the order backend's `edge_secret`): `${NAME}` expanded, and at
    /// least [`MIN_SECRET_BYTES`] long. `Ok(Err(names))` lists the unset variables it names.
    pub(crate) fn secret(
        &self,
        path: &str,
        text: &str,
    ) -> Result<Result<Secret, String>, ConfigError> {
        match self.optional(path, text)? {
            Err(names) => Ok(Err(names)),
            Ok(v) if v.len() < MIN_SECRET_BYTES => Err(self.err(
                path,
                format!(
                    "{path} is {} bytes; a secret needs at least {MIN_SECRET_BYTES} \
                     (try: openssl rand -hex 32)",
                    v.len()
                ),
            )),
            Ok(v) => Ok(Ok(Secret::new(v.into_bytes()))),
        }
    }

    /// A [`secret`](Self::secret) that falls back to the built-in `development` key when the
    /// variables it names are unset, so a development setup starts without any; the `bool` says
    /// whether it fell back, and the binaries warn loudly when it did.
    pub(crate) fn secret_or_development(
        &self,
        path: &str,
        text: &str,
        development: &'static [u8],
    ) -> Result<(Secret, bool), ConfigError> {
        Ok(match self.secret(path, text)? {
            Ok(secret) => (secret, false),
            Err(_) => (Secret::new(development), true),
        })
    }
}
