//! Diagnostics: what went wrong, where, and what would be accepted.
//!
//! Every stage of the pure core reports problems as [`Diagnostic`]s instead of
//! failing on the first one, so a user sees all of them in one run. A
//! diagnostic carries the source position (`file:line:column`) and the field
//! path (`spec.containers[1].image`), and renders either for a terminal (with
//! a source snippet) or as JSON for editors and CI.

use serde::Serialize;
use std::fmt::Write as _;

/// A position in a source file: 1-based line and column (in characters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in the input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// The file as the user named it (`<stdin>` for standard input).
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The field path in Kubernetes notation, empty for document-level errors.
    pub path: String,
    pub message: String,
}

impl Diagnostic {
    pub fn error(
        file: &str,
        pos: Pos,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file: file.to_string(),
            line: pos.line,
            column: pos.column,
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn warning(
        file: &str,
        pos: Pos,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(file, pos, path, message)
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:column: error: path: message` — the one-line form that
    /// editors and `grep` understand.
    pub fn headline(&self) -> String {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut s = format!("{}:{}:{}: {sev}: ", self.file, self.line, self.column);
        if !self.path.is_empty() {
            let _ = write!(s, "{}: ", self.path);
        }
        // messages can quote an image's config (its user, ...)
        s.push_str(&crate::term::safe(&self.message));
        s
    }

    /// The headline plus a source snippet with a caret under the column, in
    /// the style of rustc. `source` is the whole text of `self.file`.
    pub fn render(&self, source: Option<&str>) -> String {
        let mut out = self.headline();
        out.push('\n');
        let Some(text) = source else { return out };
        let Some(line) = text.lines().nth(self.line.saturating_sub(1)) else {
            return out;
        };
        // Keep snippets short and free of control characters so a hostile
        // input cannot garble the terminal.
        let shown: String = line
            .chars()
            .take(160)
            .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
            .collect();
        let num = self.line.to_string();
        let pad = " ".repeat(num.len());
        let caret_pad: String = shown
            .chars()
            .take(self.column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{num} | {shown}");
        let _ = writeln!(out, "{pad} | {caret_pad}^");
        out
    }
}

/// Sort diagnostics by file and position so output is stable.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (
            a.file.as_str(),
            a.line,
            a.column,
            a.path.as_str(),
            a.message.as_str(),
        )
            .cmp(&(
                b.file.as_str(),
                b.line,
                b.column,
                b.path.as_str(),
                b.message.as_str(),
            ))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headline_and_snippet() {
        let d = Diagnostic::error(
            "pod.yaml",
            Pos { line: 2, column: 3 },
            "spec.containers[0].image",
            "missing",
        );
        assert_eq!(
            d.headline(),
            "pod.yaml:2:3: error: spec.containers[0].image: missing"
        );
        let r = d.render(Some("a: 1\n  image: x\n"));
        assert!(r.contains("2 |   image: x\n"), "{r}");
        assert!(r.ends_with("  |   ^\n"), "{r}");
    }

    #[test]
    fn snippet_survives_out_of_range_positions() {
        let d = Diagnostic::error(
            "f",
            Pos {
                line: 99,
                column: 999,
            },
            "",
            "m",
        );
        assert_eq!(d.render(Some("x")), "f:99:999: error: m\n");
        let d = Diagnostic::error(
            "f",
            Pos {
                line: 1,
                column: 999,
            },
            "",
            "m",
        );
        assert!(d.render(Some("x")).contains("1 | x"));
    }
}
