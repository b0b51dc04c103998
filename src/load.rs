//! Stage 1, load: YAML text → documents with source positions.
//!
//! We drive `saphyr-parser` (the event parser under serde-saphyr) ourselves
//! instead of deserializing straight into types, because later stages need
//! three things a one-shot deserializer cannot give:
//!
//! * a source position for *every* node, so schema and semantic errors found
//!   after parsing still point at `file:line:column`;
//! * Kubernetes' scalar rules: Kubernetes reads manifests with YAML 1.1
//!   resolution (go-yaml v2 under `sigs.k8s.io/yaml`), so `0644` is the octal
//!   number 420 and `yes`/`on` are booleans. A YAML 1.2 reader silently gets
//!   file modes wrong;
//! * hard budgets (depth, node count, alias expansion) so hostile input can
//!   neither exhaust memory ("billion laughs") nor overflow the stack.
//!
//! The output is a `serde_json::Value` per document (what the JSON schema and
//! serde see) plus a [`Spans`] index from JSON pointer to position.

use crate::diagnostic::{Diagnostic, Pos};
use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::{Map, Number, Value};
use std::collections::HashMap;

/// The largest input file podc reads.
pub const MAX_FILE_BYTES: usize = 64 << 20;
/// The deepest nesting of collections accepted (Kubernetes objects are < 15).
pub const MAX_DEPTH: usize = 128;
/// The most nodes one document may expand to, aliases included.
pub const MAX_NODES: usize = 1_000_000;

/// One input file (or standard input), kept whole for snippets.
#[derive(Clone, Debug)]
pub struct Source {
    /// The name the user gave (`<stdin>` for `-`).
    pub name: String,
    pub text: String,
}

/// Where a node sits: the key of a mapping entry (or the item of a
/// sequence), and the value itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Loc {
    pub key: Pos,
    pub value: Pos,
}

/// JSON pointer (`/spec/containers/0/image`) → position.
#[derive(Clone, Debug, Default)]
pub struct Spans {
    map: HashMap<String, Loc>,
}

impl Spans {
    /// The position of `pointer`'s value, or of its nearest ancestor that
    /// exists (a missing field is reported where its parent object starts).
    pub fn value_pos(&self, pointer: &str) -> Pos {
        self.nearest(pointer).value
    }

    /// The position of `pointer`'s key (for "unknown field" errors).
    pub fn key_pos(&self, pointer: &str) -> Pos {
        self.nearest(pointer).key
    }

    fn nearest(&self, pointer: &str) -> Loc {
        let mut p = pointer;
        loop {
            if let Some(loc) = self.map.get(p) {
                return *loc;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return self.map.get("").copied().unwrap_or_default(),
            }
        }
    }
}

/// One YAML document from one source.
#[derive(Clone, Debug)]
pub struct Document {
    /// Index into the `sources` slice given to [`load`].
    pub source: usize,
    pub value: Value,
    /// Shared: later stages keep a pod's positions for their own notes.
    pub spans: std::sync::Arc<Spans>,
}

/// Parse every source into documents. Empty documents are skipped, as
/// kubectl does. Problems are collected, never thrown: a file that does not
/// parse yields a diagnostic and no documents, the other files still load.
pub fn load(sources: &[Source]) -> (Vec<Document>, Vec<Diagnostic>) {
    let mut docs = Vec::new();
    let mut diags = Vec::new();
    for (i, src) in sources.iter().enumerate() {
        load_one(i, src, &mut docs, &mut diags);
    }
    (docs, diags)
}

/// Load one source; `idx` is its index in the caller's list of sources.
pub fn load_source(idx: usize, src: &Source) -> (Vec<Document>, Vec<Diagnostic>) {
    let mut docs = Vec::new();
    let mut diags = Vec::new();
    load_one(idx, src, &mut docs, &mut diags);
    (docs, diags)
}

/// Decode file bytes to text: UTF-8 only (a BOM is dropped), with a located
/// error for anything else, and a size cap.
pub fn decode(name: &str, bytes: Vec<u8>) -> Result<Source, Diagnostic> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(Diagnostic::error(
            name,
            Pos { line: 1, column: 1 },
            "",
            format!(
                "file is {} bytes; podc reads manifests of at most {} bytes",
                bytes.len(),
                MAX_FILE_BYTES
            ),
        ));
    }
    match String::from_utf8(bytes) {
        Ok(mut text) => {
            if text.starts_with('\u{feff}') {
                text.drain(..'\u{feff}'.len_utf8());
            }
            Ok(Source {
                name: name.to_string(),
                text,
            })
        }
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let prefix = String::from_utf8_lossy(&e.as_bytes()[..valid]);
            let line = prefix.matches('\n').count() + 1;
            let column = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            Err(Diagnostic::error(
                name,
                Pos { line, column },
                "",
                "file is not valid UTF-8 text; manifests must be UTF-8 YAML or JSON",
            ))
        }
    }
}

fn pos(span: &Span) -> Pos {
    Pos {
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

/// A collection being built.
///
/// Spans are recorded once, with absolute JSON pointers, in the document's
/// flat list (`DocBuilder::spans`); a frame only remembers where its own
/// entries start in that list, so an anchored node can hand its spans to
/// the aliases that repeat it.
enum Frame {
    Map {
        map: Map<String, Value>,
        /// The key read, waiting for its value.
        key: Option<(String, Pos)>,
        /// Entries from `<<` merge keys, applied at the end where no explicit
        /// key of the same name exists (YAML merge-key semantics), with the
        /// position of the merge key.
        merged: Vec<(String, Value, Pos)>,
        first_key_line: HashMap<String, usize>,
        anchor: usize,
        path: String,
        span_start: usize,
    },
    Seq {
        items: Vec<Value>,
        anchor: usize,
        path: String,
        span_start: usize,
    },
}

/// Anchored node: its value, its spans relative to itself, its node count.
struct Anchored {
    value: Value,
    spans: Vec<(String, Loc)>,
    nodes: usize,
}

pub(crate) fn escape_pointer(key: &str) -> String {
    if key.contains(['~', '/']) {
        key.replace('~', "~0").replace('/', "~1")
    } else {
        key.to_string()
    }
}

struct DocBuilder<'a> {
    file: &'a str,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Anchored>,
    nodes: usize,
    root: Option<Value>,
    /// Absolute JSON pointer → position, for every node of the document.
    spans: Vec<(String, Loc)>,
    diags: Vec<Diagnostic>,
    /// Set when the document is beyond repair (budget exceeded).
    fatal: bool,
}

impl<'a> DocBuilder<'a> {
    fn new(file: &'a str) -> Self {
        DocBuilder {
            file,
            stack: Vec::new(),
            anchors: HashMap::new(),
            nodes: 0,
            root: None,
            spans: Vec::new(),
            diags: Vec::new(),
            fatal: false,
        }
    }

    fn error(&mut self, at: Pos, path: &str, msg: impl Into<String>) {
        self.diags
            .push(Diagnostic::error(self.file, at, pointer_to_path(path), msg));
    }

    /// The JSON pointer of the child about to be attached, and whether the
    /// top of the stack is a mapping still waiting for a key.
    fn child_path(&self) -> (String, bool) {
        match self.stack.last() {
            None => (String::new(), false),
            Some(Frame::Map {
                key: None, path, ..
            }) => (path.clone(), true),
            Some(Frame::Map {
                key: Some((k, _)),
                path,
                ..
            }) => (format!("{path}/{}", escape_pointer(k)), false),
            Some(Frame::Seq { items, path, .. }) => (format!("{path}/{}", items.len()), false),
        }
    }

    /// The position of the entry about to be attached: the key for a
    /// mapping entry.
    fn key_pos(&self, value: Pos) -> Pos {
        match self.stack.last() {
            Some(Frame::Map {
                key: Some((_, k)), ..
            }) => *k,
            _ => value,
        }
    }

    fn count(&mut self, n: usize, at: Pos) -> bool {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            if !self.fatal {
                self.error(
                    at,
                    "",
                    format!(
                        "document expands to more than {MAX_NODES} nodes (alias bomb?); podc refuses it"
                    ),
                );
            }
            self.fatal = true;
            return false;
        }
        true
    }

    /// Remember an anchored node: its spans are those recorded since
    /// `span_start`, made relative to `path`.
    fn remember(&mut self, anchor: usize, value: &Value, path: &str, span_start: usize) {
        if anchor == 0 {
            return;
        }
        let spans: Vec<(String, Loc)> = self.spans[span_start.min(self.spans.len())..]
            .iter()
            .filter_map(|(p, l)| p.strip_prefix(path).map(|r| (r.to_string(), *l)))
            .collect();
        let nodes = spans.len().max(1);
        self.anchors.insert(
            anchor,
            Anchored {
                value: value.clone(),
                spans,
                nodes,
            },
        );
    }

    /// Attach a finished node to its parent. Its own span (and those of
    /// its children) are already recorded.
    fn attach(&mut self, value: Value) {
        let file = self.file;
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Map {
                map,
                key,
                merged,
                first_key_line,
                path,
                ..
            }) => {
                let Some((k, key_pos)) = key.take() else {
                    return;
                };
                if k == "<<" {
                    // Merge key: a mapping, or a sequence of mappings.
                    let sources: Vec<Value> = match value {
                        Value::Array(items) => items,
                        v => vec![v],
                    };
                    for v in sources {
                        match v {
                            Value::Object(m) => {
                                merged.extend(m.into_iter().map(|(mk, mv)| (mk, mv, key_pos)))
                            }
                            _ => {
                                let p = path.clone();
                                self.diags.push(Diagnostic::error(
                                    file,
                                    key_pos,
                                    pointer_to_path(&p),
                                    "a `<<` merge key takes a mapping or a list of mappings",
                                ));
                                return;
                            }
                        }
                    }
                    return;
                }
                if let Some(first) = first_key_line.get(&k) {
                    let p = format!("{path}/{}", escape_pointer(&k));
                    let msg = format!("duplicate key \"{k}\" (first defined on line {first})");
                    self.diags
                        .push(Diagnostic::error(file, key_pos, pointer_to_path(&p), msg));
                    return;
                }
                first_key_line.insert(k.clone(), key_pos.line);
                map.insert(k, value);
            }
            Some(Frame::Seq { items, .. }) => items.push(value),
        }
    }

    fn scalar(
        &mut self,
        text: &str,
        style: ScalarStyle,
        anchor: usize,
        tag: Option<String>,
        at: Pos,
    ) {
        let (path, is_key) = self.child_path();
        if is_key {
            if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
                *key = Some((text.to_string(), at));
            }
            return;
        }
        if !self.count(1, at) {
            return;
        }
        let value = match tag.as_deref() {
            None if style == ScalarStyle::Plain => resolve_plain(text),
            None => Value::String(text.to_string()),
            Some("str") | Some("binary") => Value::String(text.to_string()),
            Some("null") => Value::Null,
            Some(t @ ("int" | "float" | "bool")) => {
                let v = resolve_plain(text);
                let ok = match t {
                    "int" => v.is_i64() || v.is_u64(),
                    "float" => v.is_number(),
                    _ => v.is_boolean(),
                };
                if !ok {
                    self.error(at, &path, format!("`{text}` is not a valid !!{t}"));
                }
                v
            }
            Some(other) => {
                self.error(
                    at,
                    &path,
                    format!(
                        "YAML tag `{other}` is not supported; use plain values or !!str, !!int, !!float, !!bool, !!null"
                    ),
                );
                Value::String(text.to_string())
            }
        };
        let span_start = self.spans.len();
        let loc = Loc {
            key: self.key_pos(at),
            value: at,
        };
        self.spans.push((path.clone(), loc));
        self.remember(anchor, &value, &path, span_start);
        self.attach(value);
    }

    fn start(&mut self, is_map: bool, anchor: usize, at: Pos) {
        let (path, is_key) = self.child_path();
        if is_key {
            self.error(
                at,
                &path,
                "a mapping key must be a plain value, not a list or mapping",
            );
            self.fatal = true;
            return;
        }
        if self.stack.len() >= MAX_DEPTH {
            self.error(
                at,
                &path,
                format!("nesting deeper than {MAX_DEPTH} levels; podc refuses it"),
            );
            self.fatal = true;
            return;
        }
        if !self.count(1, at) {
            return;
        }
        let loc = Loc {
            key: self.key_pos(at),
            value: at,
        };
        let span_start = self.spans.len();
        self.spans.push((path.clone(), loc));
        self.stack.push(if is_map {
            Frame::Map {
                map: Map::new(),
                key: None,
                merged: Vec::new(),
                first_key_line: HashMap::new(),
                anchor,
                path,
                span_start,
            }
        } else {
            Frame::Seq {
                items: Vec::new(),
                anchor,
                path,
                span_start,
            }
        });
    }

    fn end(&mut self) {
        let Some(frame) = self.stack.pop() else {
            return;
        };
        let (value, path, anchor, span_start) = match frame {
            Frame::Map {
                mut map,
                merged,
                anchor,
                path,
                span_start,
                ..
            } => {
                for (k, v, at) in merged {
                    if map.contains_key(&k) {
                        continue;
                    }
                    let child = format!("{path}/{}", escape_pointer(&k));
                    self.spans.push((child, Loc { key: at, value: at }));
                    map.insert(k, v);
                }
                (Value::Object(map), path, anchor, span_start)
            }
            Frame::Seq {
                items,
                anchor,
                path,
                span_start,
                ..
            } => (Value::Array(items), path, anchor, span_start),
        };
        self.remember(anchor, &value, &path, span_start);
        self.attach(value);
    }

    fn alias(&mut self, id: usize, at: Pos) {
        let (path, is_key) = self.child_path();
        let Some(a) = self.anchors.get(&id) else {
            self.error(at, &path, "alias refers to an unknown anchor");
            return;
        };
        if is_key {
            match &a.value {
                Value::String(s) => {
                    let s = s.clone();
                    if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
                        *key = Some((s, at));
                    }
                }
                _ => {
                    self.error(at, &path, "an alias used as a key must name a plain value");
                    self.fatal = true;
                }
            }
            return;
        }
        let nodes = a.nodes;
        if !self.count(nodes, at) {
            return;
        }
        let Some(a) = self.anchors.get(&id) else {
            return;
        };
        let value = a.value.clone();
        let key = self.key_pos(at);
        // The alias itself sits here; what it repeats keeps the positions of
        // the anchored original.
        let mut spans: Vec<(String, Loc)> = a
            .spans
            .iter()
            .filter(|(r, _)| !r.is_empty())
            .map(|(r, l)| (format!("{path}{r}"), *l))
            .collect();
        spans.push((path, Loc { key, value: at }));
        self.spans.extend(spans);
        self.attach(value);
    }
}

/// Kubernetes path notation for a JSON pointer: `/spec/containers/0/image`
/// → `spec.containers[0].image`.
pub fn pointer_to_path(pointer: &str) -> String {
    let mut out = String::new();
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{seg}]"));
        } else if seg.is_empty()
            || seg
                .chars()
                .any(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        {
            out.push_str(&format!("[{}]", serde_json::Value::String(seg)));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    out
}

fn load_one(idx: usize, src: &Source, docs: &mut Vec<Document>, diags: &mut Vec<Diagnostic>) {
    let mut parser = Parser::new_from_str(&src.text);
    let mut doc: Option<DocBuilder> = None;
    loop {
        let (event, span) = match parser.next_event() {
            None => break,
            Some(Ok(ev)) => ev,
            Some(Err(e)) => {
                let m = e.marker();
                diags.push(Diagnostic::error(
                    &src.name,
                    Pos {
                        line: m.line(),
                        column: m.col() + 1,
                    },
                    "",
                    format!("invalid YAML: {}", e.info()),
                ));
                // Keep what earlier documents gave us; this one is lost.
                if let Some(d) = doc.take() {
                    diags.extend(d.diags);
                }
                return;
            }
        };
        let at = pos(&span);
        match event {
            Event::DocumentStart(_) => doc = Some(DocBuilder::new(&src.name)),
            Event::DocumentEnd => {
                if let Some(d) = doc.take() {
                    finish(idx, d, docs, diags);
                }
            }
            Event::StreamEnd => break,
            Event::StreamStart | Event::Nothing => {}
            ev => {
                let Some(d) = doc.as_mut() else { continue };
                if d.fatal {
                    continue;
                }
                match ev {
                    Event::Scalar(text, style, anchor, tag) => {
                        let tag = tag.map(|t| {
                            if t.is_yaml_core_schema() {
                                t.suffix.clone()
                            } else {
                                format!("{}{}", t.handle, t.suffix)
                            }
                        });
                        d.scalar(&text, style, anchor, tag, at)
                    }
                    Event::SequenceStart(anchor, _) => d.start(false, anchor, at),
                    Event::MappingStart(anchor, _) => d.start(true, anchor, at),
                    Event::SequenceEnd | Event::MappingEnd => d.end(),
                    Event::Alias(id) => d.alias(id, at),
                    _ => {}
                }
            }
        }
    }
    if let Some(d) = doc.take() {
        finish(idx, d, docs, diags);
    }
}

fn finish(idx: usize, d: DocBuilder, docs: &mut Vec<Document>, diags: &mut Vec<Diagnostic>) {
    let fatal = d.fatal;
    diags.extend(d.diags);
    if fatal {
        return;
    }
    let Some(value) = d.root else { return };
    if value.is_null() {
        return;
    }
    docs.push(Document {
        source: idx,
        value,
        spans: std::sync::Arc::new(Spans {
            map: d.spans.into_iter().collect(),
        }),
    });
}

/// Resolve a plain (unquoted) scalar the way go-yaml v2 does, which is what
/// Kubernetes uses: YAML 1.1 booleans, `0644` octal, `0x`/`0b`/`0o`
/// prefixes, `_` digit separators.
pub fn resolve_plain(s: &str) -> Value {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Value::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Value::Bool(false)
        }
        _ => {}
    }
    let first = s.as_bytes()[0];
    if !(first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'.')) {
        return Value::String(s.to_string());
    }
    let plain: String = s.chars().filter(|&c| c != '_').collect();
    if let Some(n) = parse_go_int(&plain) {
        return Value::Number(n);
    }
    if is_yaml_float(&plain) {
        if let Some(n) = plain.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(s.to_string())
}

/// `strconv.ParseInt(s, 0, 64)`, falling back to `ParseUint` as go-yaml does.
fn parse_go_int(s: &str) -> Option<Number> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let mag = u64::from_str_radix(digits, radix).ok()?;
    if neg {
        if mag <= i64::MAX as u64 + 1 {
            Some(Number::from((mag as i128).wrapping_neg() as i64))
        } else {
            None
        }
    } else if mag <= i64::MAX as u64 {
        Some(Number::from(mag as i64))
    } else {
        Some(Number::from(mag))
    }
}

/// go-yaml v2's `yamlStyleFloat`: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let st = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - st
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn load_str(text: &str) -> (Vec<Document>, Vec<Diagnostic>) {
        load(&[Source {
            name: "t.yaml".into(),
            text: text.into(),
        }])
    }

    #[test]
    fn yaml_1_1_scalars_like_kubernetes() {
        assert_eq!(resolve_plain("0644"), json!(420));
        assert_eq!(resolve_plain("0400"), json!(256));
        assert_eq!(resolve_plain("0o644"), json!(420));
        assert_eq!(resolve_plain("0x1F"), json!(31));
        assert_eq!(resolve_plain("0b101"), json!(5));
        assert_eq!(resolve_plain("1_000"), json!(1000));
        assert_eq!(resolve_plain("-12"), json!(-12));
        assert_eq!(resolve_plain("0"), json!(0));
        assert_eq!(resolve_plain("0.5"), json!(0.5));
        assert_eq!(resolve_plain("1e3"), json!(1000.0));
        assert_eq!(resolve_plain("yes"), json!(true));
        assert_eq!(resolve_plain("Off"), json!(false));
        assert_eq!(resolve_plain("~"), json!(null));
        // go-yaml v2: not octal, but its float pattern matches
        assert_eq!(resolve_plain("089"), json!(89.0));
        assert_eq!(resolve_plain("64Mi"), json!("64Mi"));
        assert_eq!(resolve_plain("100m"), json!("100m"));
        assert_eq!(resolve_plain("1.2.3"), json!("1.2.3"));
        assert_eq!(resolve_plain("-"), json!("-"));
        assert_eq!(resolve_plain(".inf"), json!(".inf"));
        assert_eq!(
            resolve_plain("18446744073709551615"),
            json!(18446744073709551615u64)
        );
        assert_eq!(resolve_plain("-9223372036854775808"), json!(i64::MIN));
        assert!(resolve_plain("99999999999999999999999").is_f64());
    }

    #[test]
    fn quoted_scalars_stay_strings() {
        let (docs, diags) = load_str("a: '0644'\nb: \"yes\"\nc: !!str 12\n");
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(docs[0].value, json!({"a": "0644", "b": "yes", "c": "12"}));
    }

    #[test]
    fn positions_of_keys_and_values() {
        let (docs, diags) =
            load_str("kind: Pod\nspec:\n  containers:\n  - name: a\n    image: x\n");
        assert!(diags.is_empty());
        let sp = &docs[0].spans;
        assert_eq!(
            sp.value_pos("/spec/containers/0/image"),
            Pos {
                line: 5,
                column: 12
            }
        );
        assert_eq!(
            sp.key_pos("/spec/containers/0/image"),
            Pos { line: 5, column: 5 }
        );
        assert_eq!(
            sp.value_pos("/spec/containers/0"),
            Pos { line: 4, column: 5 }
        );
        // a missing field reports at its nearest existing ancestor
        assert_eq!(
            sp.value_pos("/spec/containers/0/nope"),
            Pos { line: 4, column: 5 }
        );
    }

    #[test]
    fn multiple_documents_and_empty_ones() {
        let (docs, diags) = load_str("---\na: 1\n---\n---\nb: 2\n...\n");
        assert!(diags.is_empty());
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].value, json!({"b": 2}));
        assert_eq!(docs[1].spans.value_pos("/b"), Pos { line: 5, column: 4 });
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let (_, diags) = load_str("a: 1\nb: 2\na: 3\n");
        assert_eq!(diags.len(), 1);
        assert_eq!((diags[0].line, diags[0].column), (3, 1));
        assert!(diags[0].message.contains("first defined on line 1"));
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let (docs, diags) = load_str("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\nd: *b\n");
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(
            docs[0].value,
            json!({"base": {"x":1,"y":2}, "c": {"x":1,"y":3}, "d": {"x":1,"y":2}})
        );
        // the aliased subtree keeps positions of the anchored original
        assert_eq!(docs[0].spans.value_pos("/d/y").line, 1);
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut y = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            y.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let (docs, diags) = load_str(&y);
        assert!(docs.is_empty());
        assert!(diags[0].message.contains("alias bomb"), "{diags:?}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let y = "[".repeat(10_000);
        let (docs, diags) = load_str(&y);
        assert!(docs.is_empty());
        assert!(!diags.is_empty());
    }

    #[test]
    fn syntax_errors_are_located() {
        let (_, diags) = load_str("a: 1\nb: [1, 2\n");
        assert_eq!(diags.len(), 1);
        assert!(diags[0].message.starts_with("invalid YAML"));
        assert!(diags[0].line >= 2);
    }

    #[test]
    fn non_utf8_is_located() {
        let err = decode("f", b"a: 1\nb: \xff\n".to_vec()).unwrap_err();
        assert_eq!((err.line, err.column), (2, 4));
        let ok = decode("f", "\u{feff}a: 1".as_bytes().to_vec()).unwrap();
        assert_eq!(ok.text, "a: 1");
    }

    #[test]
    fn pointer_to_kubernetes_path() {
        assert_eq!(
            pointer_to_path("/spec/containers/1/image"),
            "spec.containers[1].image"
        );
        assert_eq!(
            pointer_to_path("/metadata/labels/app.kubernetes.io~1name"),
            "metadata.labels[\"app.kubernetes.io/name\"]"
        );
        assert_eq!(pointer_to_path(""), "");
    }
}
