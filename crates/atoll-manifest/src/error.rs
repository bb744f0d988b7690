//! Errors that point at the exact place in `atoll.toml` a user has to change.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The manifest's text, kept so later stages (module loading, route tables)
/// can report errors against the line that caused them.
#[derive(Clone)]
pub struct SourceText {
    pub path: PathBuf,
    pub text: Arc<str>,
}

impl fmt::Debug for SourceText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceText").field("path", &self.path).finish()
    }
}

/// A byte range in the manifest, resolved to a 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Location {
    pub start: usize,
    pub end: usize,
    pub line: usize,
    pub column: usize,
}

impl SourceText {
    pub fn new(path: &Path, text: &str) -> Self {
        SourceText {
            path: path.to_path_buf(),
            text: Arc::from(text),
        }
    }

    pub fn locate(&self, span: std::ops::Range<usize>) -> Location {
        let start = span.start.min(self.text.len());
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = self.text[line_start..start].chars().count() + 1;
        Location {
            start,
            end: span.end.max(start).min(self.text.len()),
            line,
            column,
        }
    }

    /// An error at `loc` about the key at `key` (a dotted path such as
    /// `routes[0].steps[1].fn`).
    pub fn error(&self, loc: Location, key: impl Into<String>, message: impl Into<String>) -> ManifestError {
        let line_text = self
            .text
            .lines()
            .nth(loc.line.saturating_sub(1))
            .unwrap_or("")
            .to_string();
        ManifestError {
            file: self.path.clone(),
            location: Some(loc),
            key: key.into(),
            message: message.into(),
            line_text: Some(line_text),
        }
    }

    /// An error about the file as a whole (it cannot be read, say).
    pub fn file_error(&self, message: impl Into<String>) -> ManifestError {
        ManifestError {
            file: self.path.clone(),
            location: None,
            key: String::new(),
            message: message.into(),
            line_text: None,
        }
    }
}

/// One problem in a manifest, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    pub file: PathBuf,
    pub location: Option<Location>,
    /// Dotted key path, e.g. `functions.echo.memory`; empty for whole-file errors.
    pub key: String,
    pub message: String,
    line_text: Option<String>,
}

impl ManifestError {
    pub fn line(&self) -> Option<usize> {
        self.location.map(|l| l.line)
    }
}

impl fmt::Display for ManifestError {
    /// `atoll.toml:12:17: routes[0].steps[0].fn: unknown function "ech"`, then
    /// the offending line with a caret under the span, like rustc.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(loc) = self.location {
            write!(f, ":{}:{}", loc.line, loc.column)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)?;
        if let (Some(loc), Some(text)) = (self.location, &self.line_text) {
            let gutter = loc.line.to_string().len();
            let width = text
                .chars()
                .skip(loc.column - 1)
                .take(loc.end.saturating_sub(loc.start))
                .count()
                .max(1);
            write!(
                f,
                "\n{:gutter$} |\n{} | {}\n{:gutter$} | {}{}",
                "",
                loc.line,
                text,
                "",
                " ".repeat(loc.column - 1),
                "^".repeat(width),
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestError {}

/// Every problem found in one manifest, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestErrors(pub Vec<ManifestError>);

impl ManifestErrors {
    pub fn iter(&self) -> impl Iterator<Item = &ManifestError> {
        self.0.iter()
    }
}

impl From<ManifestError> for ManifestErrors {
    fn from(e: ManifestError) -> Self {
        ManifestErrors(vec![e])
    }
}

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {e}")?;
        }
        if self.0.len() > 1 {
            write!(f, "\n{} errors in the manifest", self.0.len())?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestErrors {}
