//! The API token, kept out of every Debug, Display and error message.

use std::fmt;

/// An authentik API token (intent `api`) or OAuth2 access token.
///
/// `Debug` and `Display` print `ApiToken(***)`, so the token cannot leak through logs, error
/// messages or a derived `Debug` of a struct that holds it. The only way to read it is
/// crate-internal, where it becomes the `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl ApiToken {
    /// Wraps a token. Surrounding whitespace is removed, because tokens read from Kubernetes
    /// Secret files or env files often end in a newline, which the server would reject.
    pub fn new(token: impl Into<String>) -> Self {
        let token = token.into();
        let trimmed = token.trim();
        if trimmed.len() == token.len() {
            Self(token)
        } else {
            Self(trimmed.to_owned())
        }
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why a token could not be read from where it was configured.
#[derive(Debug, thiserror::Error)]
pub enum TokenSourceError {
    /// The file could not be read.
    #[error("cannot read the authentik token file {path}: {source}")]
    File {
        /// The configured path.
        path: std::path::PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// The file holds nothing but whitespace.
    #[error("the authentik token file {0} is empty")]
    EmptyFile(std::path::PathBuf),
}

impl ApiToken {
    /// The token given inline (non-blank), else the content of `file` (e.g. a mounted Secret);
    /// `None` when neither is configured.
    pub fn from_value_or_file(
        value: Option<String>,
        file: Option<&std::path::Path>,
    ) -> Result<Option<Self>, TokenSourceError> {
        if let Some(value) = value.filter(|v| !v.trim().is_empty()) {
            return Ok(Some(Self::new(value)));
        }
        let Some(path) = file else { return Ok(None) };
        let content = std::fs::read_to_string(path).map_err(|source| TokenSourceError::File {
            path: path.to_owned(),
            source,
        })?;
        if content.trim().is_empty() {
            return Err(TokenSourceError::EmptyFile(path.to_owned()));
        }
        Ok(Some(Self::new(content)))
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(***)")
    }
}

impl fmt::Display for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "tok-RECOGNISABLE-5ecret-0123456789";

    #[test]
    fn debug_and_display_hide_the_token() {
        let token = ApiToken::new(SECRET);
        for shown in [
            format!("{token:?}"),
            format!("{token}"),
            format!("{token:#?}"),
        ] {
            assert!(!shown.contains(SECRET), "{shown}");
            assert!(!shown.contains("5ecret"), "{shown}");
            assert_eq!(shown, "ApiToken(***)");
        }
    }

    #[test]
    fn surrounding_whitespace_is_trimmed() {
        assert_eq!(ApiToken::new(format!("  {SECRET}\n")).expose(), SECRET);
        assert_eq!(ApiToken::new(SECRET).expose(), SECRET);
        assert!(ApiToken::new(" \n").is_empty());
    }
}
