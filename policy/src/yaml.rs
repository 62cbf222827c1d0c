//! A small YAML document tree in which every node knows its line and column.
//!
//! Exists because policy errors must name the file, line and column of the
//! offending field; `yaml-rust2`'s event parser gives positions, and this
//! module turns its events into a tree with limits (size, depth, node count)
//! so hostile input cannot exhaust memory or the stack.

use std::fmt;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::TScalarStyle;

/// Largest YAML source accepted, in bytes.
pub const MAX_SOURCE_BYTES: usize = 16 * 1024 * 1024;
/// Deepest nesting of mappings and sequences accepted.
pub const MAX_DEPTH: usize = 64;
/// Most nodes accepted in one source.
pub const MAX_NODES: usize = 2_000_000;

/// A position in a source file (1-based line and column).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mark {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One YAML node and where it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// What the node holds.
    pub kind: NodeKind,
    /// Where it starts.
    pub mark: Mark,
}

/// The content of a [`Node`].
#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    /// A scalar; `plain` is false for quoted and block scalars.
    Scalar {
        /// The scalar's text.
        value: String,
        /// Whether it was written unquoted (so `null`, `true`, `12` are typed).
        plain: bool,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order (duplicate keys are rejected).
    Map(Vec<(Node, Node)>),
}

/// Why a YAML source could not be turned into a tree.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{mark}: {message}")]
pub struct YamlError {
    /// Where the problem is.
    pub mark: Mark,
    /// What is wrong.
    pub message: String,
}

impl Node {
    /// True for a plain `null`, `~`, `Null`, `NULL` or empty plain scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { value, plain: true } if matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The scalar text, if this is a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// A short name of the node's type for error messages.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Scalar { .. } if self.is_null() => "null",
            NodeKind::Scalar { .. } => "a scalar",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }
}

fn mark_of(m: &yaml_rust2::scanner::Marker) -> Mark {
    Mark {
        line: m.line().max(1),
        column: m.col() + 1,
    }
}

enum Frame {
    Seq(Mark, Vec<Node>),
    Map(Mark, Vec<(Node, Node)>, Option<Node>),
}

/// Parses every document of a YAML stream into trees.
///
/// Empty documents (e.g. a trailing `---`) are returned as null scalars so
/// callers can skip them. Anchors/aliases are rejected (policies do not need
/// them, and expanding them is a classic resource-exhaustion vector).
pub fn parse_documents(src: &str) -> Result<Vec<Node>, YamlError> {
    if src.len() > MAX_SOURCE_BYTES {
        return Err(YamlError {
            mark: Mark { line: 1, column: 1 },
            message: format!(
                "file is {} bytes, larger than the {} byte limit",
                src.len(),
                MAX_SOURCE_BYTES
            ),
        });
    }
    let mut parser = Parser::new_from_str(src);
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut nodes = 0usize;
    let mut doc_root: Option<Node> = None;
    loop {
        let (event, marker) = parser.next_token().map_err(|e| YamlError {
            mark: mark_of(e.marker()),
            message: format!("invalid YAML: {}", e.info()),
        })?;
        let mark = mark_of(&marker);
        let finished: Option<Node> = match event {
            Event::StreamEnd => break,
            Event::Nothing | Event::StreamStart => None,
            Event::DocumentStart => {
                doc_root = None;
                None
            }
            Event::DocumentEnd => {
                docs.push(doc_root.take().unwrap_or(Node {
                    kind: NodeKind::Scalar {
                        value: String::new(),
                        plain: true,
                    },
                    mark,
                }));
                None
            }
            Event::Alias(_) => {
                return Err(YamlError {
                    mark,
                    message: "YAML aliases (*name) are not supported in policy files".into(),
                });
            }
            Event::Scalar(value, style, anchor, _tag) => {
                if anchor != 0 {
                    return Err(YamlError {
                        mark,
                        message: "YAML anchors (&name) are not supported in policy files".into(),
                    });
                }
                Some(Node {
                    kind: NodeKind::Scalar {
                        value,
                        plain: matches!(style, TScalarStyle::Plain),
                    },
                    mark,
                })
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if anchor != 0 {
                    return Err(YamlError {
                        mark,
                        message: "YAML anchors (&name) are not supported in policy files".into(),
                    });
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(YamlError {
                        mark,
                        message: format!("nesting deeper than {MAX_DEPTH} levels"),
                    });
                }
                if matches!(event, Event::SequenceStart(..)) {
                    stack.push(Frame::Seq(mark, Vec::new()));
                } else {
                    stack.push(Frame::Map(mark, Vec::new(), None));
                }
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(m, items)) => Some(Node {
                    kind: NodeKind::Seq(items),
                    mark: m,
                }),
                _ => {
                    return Err(YamlError {
                        mark,
                        message: "unbalanced sequence end".into(),
                    });
                }
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(m, items, None)) => {
                    // A block mapping's start event is reported after its first
                    // key; the first key's position is where the mapping begins.
                    let m = items.first().map_or(m, |(k, _)| m.min(k.mark));
                    Some(Node {
                        kind: NodeKind::Map(items),
                        mark: m,
                    })
                }
                _ => {
                    return Err(YamlError {
                        mark,
                        message: "unbalanced mapping end".into(),
                    });
                }
            },
        };
        let Some(node) = finished else { continue };
        nodes += 1;
        if nodes > MAX_NODES {
            return Err(YamlError {
                mark,
                message: format!("more than {MAX_NODES} YAML nodes"),
            });
        }
        match stack.last_mut() {
            None => doc_root = Some(node),
            Some(Frame::Seq(_, items)) => items.push(node),
            Some(Frame::Map(_, items, pending)) => match pending.take() {
                None => {
                    if !matches!(node.kind, NodeKind::Scalar { .. }) {
                        return Err(YamlError {
                            mark: node.mark,
                            message: "mapping keys must be scalars".into(),
                        });
                    }
                    if items.iter().any(|(k, _)| k.as_str() == node.as_str()) {
                        return Err(YamlError {
                            mark: node.mark,
                            message: format!(
                                "duplicate key {:?}",
                                node.as_str().unwrap_or_default()
                            ),
                        });
                    }
                    *pending = Some(node);
                }
                Some(key) => items.push((key, node)),
            },
        }
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_one_based() {
        let docs = parse_documents("a:\n  b: [1, 2]\n").unwrap();
        let NodeKind::Map(m) = &docs[0].kind else {
            panic!()
        };
        assert_eq!(m[0].0.mark, Mark { line: 1, column: 1 });
        let NodeKind::Map(inner) = &m[0].1.kind else {
            panic!()
        };
        assert_eq!(inner[0].0.mark, Mark { line: 2, column: 3 });
    }

    #[test]
    fn multi_documents_and_empty_ones() {
        let docs = parse_documents("a: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 3);
        assert!(docs[1].is_null());
    }

    #[test]
    fn rejects_aliases_duplicates_and_depth() {
        assert!(parse_documents("a: &x 1\nb: *x\n").is_err());
        let e = parse_documents("a: 1\na: 2\n").unwrap_err();
        assert!(e.message.contains("duplicate"), "{e}");
        assert_eq!(e.mark.line, 2);
        let deep = "[".repeat(1000) + &"]".repeat(1000);
        let e = parse_documents(&deep).unwrap_err();
        assert!(
            e.message.contains("nesting") || e.message.contains("recursion"),
            "{e}"
        );
    }

    #[test]
    fn malformed_yaml_has_a_position() {
        let e = parse_documents("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.message.starts_with("invalid YAML"), "{e}");
        assert!(e.mark.line >= 1);
    }
}
