//! Diagnostics: errors and warnings that name file, line, column and field.
//!
//! Exists because every problem in a policy must point at the exact place a
//! person has to fix, and one bad object must not hide the others.

use std::fmt;

use serde::Serialize;

use crate::model::Origin;

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The object is rejected and enforces nothing.
    Error,
    /// The object is accepted; something deserves attention.
    Warning,
}

/// One problem found in a policy or endpoints file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// File, line, column and field path.
    pub origin: Origin,
    /// The object (`Kind/namespace/name`), when known.
    pub object: Option<String>,
    /// What is wrong, in plain words.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}: {sev}", self.origin)?;
        if let Some(o) = &self.object {
            write!(f, ": {o}")?;
        }
        if !self.origin.path.is_empty() {
            write!(f, ": {}", self.origin.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// One input file given to the parser (the caller does the reading).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// Name used in diagnostics (usually the path).
    pub name: String,
    /// The file's text.
    pub text: String,
}

impl SourceFile {
    /// Builds a source from a name and text.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
        }
    }
}
