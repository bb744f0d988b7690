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
    /// Built once with the text: every span in a manifest is located, so
    /// finding a line by scanning from the start each time made validation
    /// quadratic in the manifest's size.
    index: Arc<LineIndex>,
    /// Where the text holds passwords, masked in every line an error quotes.
    secrets: Arc<[(usize, usize)]>,
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
            index: Arc::new(LineIndex::new(text)),
            secrets: crate::redact::secret_ranges(text).into(),
        }
    }

    /// The same text, its `[variables]` values masked in every line an
    /// error quotes: for a runtime configuration, where they are set.
    pub fn hiding_variable_values(mut self) -> Self {
        let mut secrets = crate::redact::variable_values(&self.text);
        secrets.extend_from_slice(&self.secrets);
        self.secrets = crate::redact::merged(secrets).into();
        self
    }

    /// Resolves a byte span to its line and column (in characters) in
    /// logarithmic time. Offsets past the end are clamped; one inside a
    /// multi-byte character resolves to the character after it (spans from
    /// the TOML parser never fall there, but callers may pass any span).
    pub fn locate(&self, span: std::ops::Range<usize>) -> Location {
        let start = span.start.min(self.text.len());
        let line = self.index.line_of(start);
        let line_start = self.index.line_starts[line];
        let column = self.index.chars_between(&self.text, line_start, start) + 1;
        Location {
            start,
            end: span.end.max(start).min(self.text.len()),
            line: line + 1,
            column,
        }
    }

    /// The byte range of 1-based line `line`, without its line ending;
    /// empty past the end.
    fn line_range(&self, line: usize) -> (usize, usize) {
        let Some(&start) = self.index.line_starts.get(line.wrapping_sub(1)) else {
            return (self.text.len(), self.text.len());
        };
        let end = self
            .index
            .line_starts
            .get(line)
            .map_or(self.text.len(), |&next| next - 1);
        let end = if self.text[start..end].ends_with('\r') {
            end - 1
        } else {
            end
        };
        (start, end)
    }

    /// The line `loc` is on, for showing under an error: whole if it is of
    /// a readable length, else a window around the span, so a thousand errors
    /// on one huge line (a manifest written on a single line, say) do not
    /// copy and print that line a thousand times.
    fn snippet(&self, loc: Location) -> Snippet {
        const MAX_SHOWN: usize = 160;
        const BEFORE: usize = 60;
        let (start, end) = self.line_range(loc.line);
        // A span may start inside a character; the caret goes after it.
        let at = ceil_char_boundary(&self.text, loc.start.clamp(start, end));
        let (from, to) = if end - start <= MAX_SHOWN {
            (start, end)
        } else {
            (
                floor_char_boundary(&self.text, at.saturating_sub(BEFORE).max(start)),
                ceil_char_boundary(&self.text, (at + MAX_SHOWN - BEFORE).min(end)),
            )
        };
        let (shown, caret) = crate::redact::mask(&self.text, (from, to), at, &self.secrets);
        let cut_before = if from > start { "..." } else { "" };
        let cut_after = if to < end { "..." } else { "" };
        Snippet {
            text: format!("{cut_before}{shown}{cut_after}"),
            caret: cut_before.len() + caret,
        }
    }

    /// An error at `loc` about the key at `key` (a dotted path such as
    /// `routes[0].steps[1].fn`).
    pub fn error(&self, loc: Location, key: impl Into<String>, message: impl Into<String>) -> ManifestError {
        ManifestError {
            file: self.path.clone(),
            location: Some(loc),
            key: key.into(),
            message: message.into(),
            snippet: Some(self.snippet(loc)),
        }
    }

    /// An error about the file as a whole (it cannot be read, say).
    pub fn file_error(&self, message: impl Into<String>) -> ManifestError {
        ManifestError {
            file: self.path.clone(),
            location: None,
            key: String::new(),
            message: message.into(),
            snippet: None,
        }
    }
}

/// Where each line starts, and (for text that is not all ASCII) how many
/// characters precede every [`CHUNK`]th byte, so a byte offset becomes a
/// line and column without rescanning the text.
struct LineIndex {
    /// Byte offset of the first byte of each line; `line_starts[0] == 0`.
    line_starts: Vec<usize>,
    /// `char_counts[i]` = characters in the first `i * CHUNK` bytes; empty
    /// for ASCII text, where bytes and characters coincide.
    char_counts: Vec<usize>,
}

/// Bytes per character-count checkpoint: small enough that counting inside
/// one chunk is cheap, large enough that the checkpoints stay a small
/// fraction of the text.
const CHUNK: usize = 256;

impl LineIndex {
    fn new(text: &str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(
                text.bytes()
                    .enumerate()
                    .filter(|&(_, b)| b == b'\n')
                    .map(|(i, _)| i + 1),
            )
            .collect();
        let char_counts = if text.is_ascii() {
            Vec::new()
        } else {
            let mut total = 0;
            let mut counts = vec![0];
            for chunk in text.as_bytes().chunks(CHUNK) {
                total += chars_in(chunk);
                counts.push(total);
            }
            counts
        };
        LineIndex {
            line_starts,
            char_counts,
        }
    }

    /// 0-based line holding byte `offset`.
    fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= offset) - 1
    }

    /// Characters in `text[from..to]`, `from <= to <= text.len()`.
    fn chars_between(&self, text: &str, from: usize, to: usize) -> usize {
        if self.char_counts.is_empty() {
            return to - from;
        }
        self.chars_before(text, to) - self.chars_before(text, from)
    }

    fn chars_before(&self, text: &str, offset: usize) -> usize {
        let chunk = offset / CHUNK;
        self.char_counts[chunk] + chars_in(&text.as_bytes()[chunk * CHUNK..offset])
    }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// Characters that start in `bytes`: every byte but UTF-8 continuation bytes.
fn chars_in(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| (b as i8) >= -0x40).count()
}

/// One problem in a manifest, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    pub file: PathBuf,
    pub location: Option<Location>,
    /// Dotted key path, e.g. `functions.echo.memory`; empty for whole-file errors.
    pub key: String,
    pub message: String,
    snippet: Option<Snippet>,
}

/// The source line shown under an error, and where in it the caret goes
/// (0-based, in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snippet {
    text: String,
    caret: usize,
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
        if let (Some(loc), Some(snippet)) = (self.location, &self.snippet) {
            let gutter = loc.line.to_string().len();
            let width = snippet
                .text
                .chars()
                .skip(snippet.caret)
                .take(loc.end.saturating_sub(loc.start))
                .count()
                .max(1);
            write!(
                f,
                "\n{:gutter$} |\n{} | {}\n{:gutter$} | {}{}",
                "",
                loc.line,
                snippet.text,
                "",
                " ".repeat(snippet.caret),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn src(text: &str) -> SourceText {
        SourceText::new(Path::new("t.toml"), text)
    }

    #[test]
    fn lines_and_columns_count_characters() {
        let s = src("a = 1\r\nnom = \"é€\" # x\n\nlast");
        let at = |needle: &str| {
            let l = s.locate(s.text.find(needle).unwrap()..s.text.len());
            (l.line, l.column)
        };
        assert_eq!(at("a ="), (1, 1));
        assert_eq!(at("nom"), (2, 1));
        assert_eq!(at("# x"), (2, 12));
        assert_eq!(at("last"), (4, 1));
        assert_eq!((s.locate(999..1000).line, s.locate(999..1000).column), (4, 5));
        let e = s.error(s.locate(7..10), "k", "m").to_string();
        assert!(e.ends_with("2 | nom = \"é€\" # x\n  | ^^^"), "{e}");
    }

    #[test]
    fn columns_past_many_multibyte_characters() {
        // Long enough to cross several character-count checkpoints.
        let text = format!("{}x", "é".repeat(1000));
        let s = src(&text);
        assert_eq!(s.locate(2000..2001).column, 1001);
    }

    #[test]
    fn a_long_line_is_shown_around_the_span() {
        let text = format!("k = [{}\"bad\"{}]", "1, ".repeat(100), ", 2".repeat(100));
        let s = src(&text);
        let start = text.find("\"bad\"").unwrap();
        let shown = s.error(s.locate(start..start + 5), "k", "m").to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines[0], format!("t.toml:1:{}: k: m", start + 1));
        assert!(lines[2].starts_with("1 | ...") && lines[2].ends_with("..."), "{shown}");
        assert!(lines[2].len() < 200, "{shown}");
        let caret = lines[3].find('^').unwrap();
        assert_eq!(&lines[2][caret..caret + 5], "\"bad\"");
        assert_eq!(lines[3].trim_end().len() - caret, 5);
    }
}
