//! Command-line words as podc means them: literal text, possibly joined
//! with references to variables that systemd substitutes when the command
//! starts (`${MAINPID}`, or a secret from the container's
//! `EnvironmentFile=`).
//!
//! The distinction is a type, not a convention inside the text: a string
//! from an image config or a manifest is always [`Word::Text`], however it
//! is spelled, and the renderer escapes it so the process receives exactly
//! that text. Only the planner creates [`Part::Var`]. (An in-band marker,
//! such as a name between NUL bytes, could be forged by any string that
//! contains the marker's delimiters.)

use serde::Serialize;

/// A piece of a [`Word`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Part {
    /// Literal text, passed on exactly.
    Text(String),
    /// `${var}`, expanded by systemd at start. In the template context this
    /// is the map `{"var": NAME}`, which no string value can turn into.
    Var { var: String },
}

/// One argv element. In the template context a literal word is a string
/// and a word with variables is a list of parts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Word {
    Text(String),
    Parts(Vec<Part>),
}

impl Word {
    /// A word from parts: adjacent text is joined, and a word without any
    /// variable is plain [`Word::Text`].
    pub fn from_parts(parts: impl IntoIterator<Item = Part>) -> Word {
        let mut out: Vec<Part> = Vec::new();
        for p in parts {
            match (out.last_mut(), p) {
                (_, Part::Text(t)) if t.is_empty() => {}
                (Some(Part::Text(prev)), Part::Text(t)) => prev.push_str(&t),
                (_, p) => out.push(p),
            }
        }
        match out.as_slice() {
            [] => Word::Text(String::new()),
            [Part::Text(t)] => Word::Text(t.clone()),
            _ => Word::Parts(out),
        }
    }

    /// `raw` with its Kubernetes `$(VAR)` references expanded by `lookup`,
    /// which gives a defined variable's literal value or a reference for
    /// systemd to expand; the rest of `raw` stays text.
    pub fn expand(raw: &str, lookup: &dyn Fn(&str) -> Option<Part>) -> Word {
        Word::from_parts(
            crate::expand::expand_pieces(raw, lookup)
                .into_iter()
                .map(|p| match p {
                    crate::expand::Piece::Text(t) => Part::Text(t.to_string()),
                    crate::expand::Piece::Value(v) => v,
                }),
        )
    }

    /// `prefix${var}suffix`.
    pub fn with_var(prefix: &str, var: &str, suffix: &str) -> Word {
        Word::from_parts([
            Part::Text(prefix.into()),
            Part::Var { var: var.into() },
            Part::Text(suffix.into()),
        ])
    }

    /// The parts of the word (a literal word is one text part).
    pub fn parts(&self) -> Vec<Part> {
        match self {
            Word::Text(t) => vec![Part::Text(t.clone())],
            Word::Parts(p) => p.clone(),
        }
    }
}

impl From<String> for Word {
    fn from(s: String) -> Word {
        Word::Text(s)
    }
}

impl From<&str> for Word {
    fn from(s: &str) -> Word {
        Word::Text(s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_normalized() {
        assert_eq!(
            Word::from_parts([Part::Text("a".into()), Part::Text("b".into())]),
            Word::Text("ab".into())
        );
        assert_eq!(Word::from_parts([]), Word::Text(String::new()));
        assert_eq!(
            Word::with_var("", "A", ""),
            Word::Parts(vec![Part::Var { var: "A".into() }])
        );
    }

    #[test]
    fn expansion_keeps_references_apart() {
        let lookup = |n: &str| match n {
            "S" => Some(Part::Var { var: "S".into() }),
            "A" => Some(Part::Text("\0S\0$(S)".into())),
            _ => None,
        };
        assert_eq!(
            Word::expand("-p=$(S)/$(A)/$(B)", &lookup),
            Word::Parts(vec![
                Part::Text("-p=".into()),
                Part::Var { var: "S".into() },
                Part::Text("/\0S\0$(S)/$(B)".into()),
            ])
        );
    }

    #[test]
    fn context_form_cannot_be_forged_by_text() {
        // Whatever a string holds, it serializes as a JSON string.
        let w = Word::Text("\0MAINPID\0 {\"var\": \"X\"}".into());
        assert!(serde_json::to_value(&w).unwrap().is_string());
        assert_eq!(
            serde_json::to_value(Word::with_var("/proc/", "MAINPID", "/ns")).unwrap(),
            serde_json::json!(["/proc/", {"var": "MAINPID"}, "/ns"])
        );
    }
}
