//! `${NAME}` substitution for configuration values (secrets, URLs), so secrets live in the
//! environment and never in the file. `$$` writes a literal `$`.

/// The result of expanding one value.
#[derive(Debug, PartialEq, Eq)]
pub enum Expanded {
    /// Every reference was set; the value with them substituted.
    Value(String),
    /// These variables are referenced but not set (or set to the empty string).
    Missing(Vec<String>),
}

/// Why a value could not be expanded.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvSyntaxError {
    /// `${` without the closing brace.
    #[error("unclosed ${{ in {0:?}: write ${{NAME}}, or $$ for a literal $")]
    Unclosed(String),
    /// `${}` or a name with characters other than letters, digits and `_`.
    #[error("bad variable name {0:?}: names are letters, digits and _")]
    BadName(String),
}

/// Expand `${NAME}` references in `text` with `lookup`.
pub fn expand(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Expanded, EnvSyntaxError> {
    let mut out = String::with_capacity(text.len());
    let mut missing = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let close = tail
                .find('}')
                .ok_or_else(|| EnvSyntaxError::Unclosed(text.to_string()))?;
            let name = &tail[..close];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(EnvSyntaxError::BadName(name.to_string()));
            }
            match lookup(name).filter(|v| !v.is_empty()) {
                Some(value) => out.push_str(&value),
                None => missing.push(name.to_string()),
            }
            rest = &tail[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(Expanded::Value(out))
    } else {
        Ok(Expanded::Missing(missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "SET").then(|| "value".to_string())
    }

    #[test]
    fn substitutes_and_reports_missing() {
        assert_eq!(
            expand("a-${SET}-b", env).unwrap(),
            Expanded::Value("a-value-b".into())
        );
        assert_eq!(
            expand("${UNSET}", env).unwrap(),
            Expanded::Missing(vec!["UNSET".into()])
        );
        assert_eq!(
            expand("$$x $y", env).unwrap(),
            Expanded::Value("$x $y".into())
        );
        assert!(expand("${SET", env).is_err());
        assert!(expand("${A-B}", env).is_err());
    }
}
