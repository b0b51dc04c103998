//! Stage 2, validate: documents → typed, defaulted Pods, ConfigMaps and
//! Secrets, or every diagnostic at once.
//!
//! Three passes, each reporting all it finds:
//! 1. kind dispatch (`kind: Deployment is not supported`);
//! 2. the JSON schema generated from [`crate::model`] (types, enums, unknown
//!    fields with "did you mean" suggestions, unsupported Kubernetes fields);
//! 3. the semantic rules a schema cannot express (names, references,
//!    quantities, paths, uniqueness), over the whole input, since pods refer
//!    to ConfigMaps and Secrets in other documents.
//!
//! Kubernetes' defaults are applied at the end, so later stages never guess.

use crate::diagnostic::{Diagnostic, Pos};
use crate::load::{pointer_to_path, Document, Source};
use crate::model::*;
use crate::{names, quantity, schema};
use base64::Engine as _;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::OnceLock;

/// Kubernetes' default grace period.
pub const DEFAULT_GRACE_SECONDS: i64 = 30;

/// A pod that passed every check, with defaults applied.
#[derive(Clone, Debug)]
pub struct ValidPod {
    pub pod: Pod,
    /// `metadata.namespace` after defaulting.
    pub namespace: String,
    /// The file the pod came from, as the user named it.
    pub file: String,
    /// Source positions of the pod's document, for later stages' notes.
    pub spans: std::sync::Arc<crate::load::Spans>,
}

/// Everything the input defines, keyed by (namespace, name).
#[derive(Clone, Debug, Default)]
pub struct Validated {
    pub pods: Vec<ValidPod>,
    pub config_maps: BTreeMap<(String, String), ConfigMapData>,
    pub secrets: BTreeMap<(String, String), SecretData>,
}

/// A ConfigMap's content: `data` (text) and `binaryData` (decoded).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConfigMapData {
    pub data: BTreeMap<String, String>,
    pub binary: BTreeMap<String, Vec<u8>>,
}

impl ConfigMapData {
    /// Every key as file content (for volumes).
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        let mut m: BTreeMap<String, Vec<u8>> = self
            .data
            .iter()
            .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
            .collect();
        m.extend(self.binary.clone());
        m
    }
}

/// A Secret's decoded content (`data` with `stringData` merged over it).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SecretData {
    pub data: BTreeMap<String, Vec<u8>>,
}

/// Reports problems against one document.
struct Report<'a> {
    file: &'a str,
    doc: &'a Document,
    diags: &'a mut Vec<Diagnostic>,
}

impl Report<'_> {
    /// Where to point for `pointer`: the value, or for a mapping or list
    /// the key that introduces it (the value starts on the next line).
    fn at(&self, pointer: &str) -> Pos {
        match self.doc.value.pointer(pointer) {
            Some(Value::Object(_) | Value::Array(_)) if !pointer.is_empty() => {
                self.doc.spans.key_pos(pointer)
            }
            _ => self.doc.spans.value_pos(pointer),
        }
    }
    fn err(&mut self, pointer: &str, msg: impl Into<String>) {
        let pos = self.at(pointer);
        self.diags.push(Diagnostic::error(
            self.file,
            pos,
            pointer_to_path(pointer),
            msg,
        ));
    }
    fn err_key(&mut self, pointer: &str, msg: impl Into<String>) {
        let pos = self.doc.spans.key_pos(pointer);
        self.diags.push(Diagnostic::error(
            self.file,
            pos,
            pointer_to_path(pointer),
            msg,
        ));
    }
    fn warn(&mut self, pointer: &str, msg: impl Into<String>) {
        let pos = self.at(pointer);
        self.diags.push(Diagnostic::warning(
            self.file,
            pos,
            pointer_to_path(pointer),
            msg,
        ));
    }
}

struct Validators {
    schema: Value,
    /// One per kind of [`schema::KINDS`], compiled the first time a
    /// document of that kind is validated: compiling all three cost a
    /// few milliseconds on every run of `podc apply`, for kinds the
    /// input may not have.
    by_kind: Vec<(&'static str, OnceLock<jsonschema::Validator>)>,
}

impl Validators {
    fn get(&self, kind: &str) -> Option<&jsonschema::Validator> {
        let (k, cell) = self.by_kind.iter().find(|(k, _)| *k == kind)?;
        Some(cell.get_or_init(|| {
            let s = serde_json::json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "$ref": format!("#/$defs/{k}"),
                "$defs": self.schema["$defs"].clone(),
            });
            // The schema is generated from our own types: failing to
            // compile it is a bug in podc, caught by the unit tests.
            jsonschema::validator_for(&s).expect("generated schema compiles")
        }))
    }
}

fn validators() -> &'static Validators {
    static V: OnceLock<Validators> = OnceLock::new();
    V.get_or_init(|| Validators {
        schema: schema::generate(),
        by_kind: schema::KINDS
            .iter()
            .map(|k| (*k, OnceLock::new()))
            .collect(),
    })
}

/// Validate every document. Returns what is valid and all diagnostics; the
/// caller must not act on the result when any diagnostic is an error.
pub fn validate(sources: &[Source], docs: &[Document]) -> (Validated, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut pods: Vec<(Pod, usize)> = Vec::new();
    let mut out = Validated::default();
    let mut seen: HashMap<(String, String, String), (String, usize)> = HashMap::new();

    for (di, doc) in docs.iter().enumerate() {
        let file = sources
            .get(doc.source)
            .map_or("<input>", |s| s.name.as_str());
        let mut r = Report {
            file,
            doc,
            diags: &mut diags,
        };
        let Some(kind) = check_kind(&mut r) else {
            continue;
        };
        // After schema errors, keep going on a repaired copy (offending
        // fields removed) so that semantic errors elsewhere in the same
        // document are reported in the same run. The output is never used:
        // any error stops the build.
        let repaired;
        let value = match schema_check(&mut r, kind) {
            Ok(()) => &doc.value,
            Err(broken) => match repair(&doc.value, &broken) {
                Some(v) => {
                    repaired = v;
                    &repaired
                }
                None => continue,
            },
        };
        let quiet = !std::ptr::eq(value, &doc.value);
        let (name, ns) = match kind {
            "Pod" => match typed::<Pod>(&mut r, value, quiet) {
                Some(p) => {
                    nul_bytes(&mut r, value, &mut String::new());
                    let key = (p.metadata.name.clone(), ns_of(&p.metadata));
                    pods.push((p, di));
                    key
                }
                None => continue,
            },
            "ConfigMap" => match typed::<ConfigMap>(&mut r, value, quiet) {
                Some(cm) => {
                    let key = (cm.metadata.name.clone(), ns_of(&cm.metadata));
                    if let Some(data) = check_config_map(&mut r, &cm) {
                        out.config_maps.insert((key.1.clone(), key.0.clone()), data);
                    }
                    key
                }
                None => continue,
            },
            _ => match typed::<Secret>(&mut r, value, quiet) {
                Some(s) => {
                    let key = (s.metadata.name.clone(), ns_of(&s.metadata));
                    if let Some(data) = check_secret(&mut r, &s) {
                        out.secrets.insert((key.1.clone(), key.0.clone()), data);
                    }
                    key
                }
                None => continue,
            },
        };
        if let Err(e) = names::dns1123_label(&ns) {
            r.err("/metadata/namespace", e);
        }
        let id = (kind.to_string(), ns, name);
        let here = r.at("/metadata/name");
        if let Some((f, line)) = seen.get(&id) {
            r.err(
                "/metadata/name",
                format!(
                    "{} {}/{} is defined twice (first in {f}:{line})",
                    id.0, id.1, id.2
                ),
            );
        } else {
            seen.insert(id, (file.to_string(), here.line));
        }
    }

    for (pod, di) in pods {
        let doc = &docs[di];
        let file = sources
            .get(doc.source)
            .map_or("<input>", |s| s.name.as_str());
        let mut r = Report {
            file,
            doc,
            diags: &mut diags,
        };
        let before = r.diags.iter().filter(|d| d.is_error()).count();
        check_pod(&mut r, &pod, &out);
        let after = r.diags.iter().filter(|d| d.is_error()).count();
        if after == before {
            let namespace = ns_of(&pod.metadata);
            out.pods.push(ValidPod {
                pod: apply_defaults(pod),
                namespace,
                file: file.to_string(),
                spans: doc.spans.clone(),
            });
        }
    }
    (out, diags)
}

/// Reports every string of a Pod (keys included) that holds a NUL byte.
/// Whatever podc takes from a Pod ends up in a unit file, an argument, an
/// environment variable or a path, and none of them can carry one; saying
/// so here, at the field, beats a failure while rendering. (ConfigMap and
/// Secret data may hold any bytes: they are checked where they are used.)
fn nul_bytes(r: &mut Report, v: &serde_json::Value, ptr: &mut String) {
    let len = ptr.len();
    match v {
        serde_json::Value::String(s) if s.contains('\0') => r.err(
            ptr,
            "contains a NUL byte, which no systemd setting, argument, environment variable or path can carry",
        ),
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                ptr.push_str(&format!("/{i}"));
                nul_bytes(r, x, ptr);
                ptr.truncate(len);
            }
        }
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                ptr.push('/');
                ptr.push_str(&crate::load::escape_pointer(k));
                if k.contains('\0') {
                    r.err(ptr, "this key contains a NUL byte, which podc cannot carry into systemd");
                }
                nul_bytes(r, x, ptr);
                ptr.truncate(len);
            }
        }
        _ => {}
    }
}

fn ns_of(m: &ObjectMeta) -> String {
    m.namespace.clone().unwrap_or_else(|| "default".into())
}

fn check_kind(r: &mut Report) -> Option<&'static str> {
    let Value::Object(obj) = &r.doc.value else {
        r.err(
            "",
            "a manifest must be a mapping with apiVersion, kind, metadata",
        );
        return None;
    };
    let kind = match obj.get("kind") {
        Some(Value::String(k)) => k.clone(),
        Some(_) => {
            r.err("/kind", "kind must be a string: Pod, ConfigMap or Secret");
            return None;
        }
        None => {
            r.err(
                "",
                "missing field \"kind\"; podc reads kind: Pod, ConfigMap and Secret",
            );
            return None;
        }
    };
    let Some(kind) = schema::KINDS.iter().copied().find(|k| *k == kind) else {
        let pos = r.at("/kind");
        r.diags.push(Diagnostic::error(
            r.file,
            pos,
            "",
            format!("kind: {kind} is not supported; podc runs Pods (and the ConfigMaps and Secrets they use)"),
        ));
        return None;
    };
    match obj.get("apiVersion") {
        Some(Value::String(v)) if v == "v1" => Some(kind),
        Some(v) => {
            let shown = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            r.err(
                "/apiVersion",
                format!("apiVersion {shown} is not supported for {kind}; use apiVersion: v1"),
            );
            None
        }
        None => {
            r.err(
                "",
                format!("missing field \"apiVersion\"; {kind} is apiVersion: v1"),
            );
            None
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Walk a canonical schema location (`/$defs/Container/properties/env`) to
/// the schema object it names.
fn schema_at<'a>(root: &'a Value, pointer: &str) -> Option<&'a Value> {
    root.pointer(pointer)
}

/// The `$defs` name a schema location belongs to.
fn def_of(schema_path: &str) -> &str {
    schema_path
        .strip_prefix("/$defs/")
        .and_then(|s| s.split('/').next())
        .unwrap_or("")
}

/// Run the JSON schema; turn each error into a located diagnostic. On
/// failure, returns the JSON pointers of the offending values.
fn schema_check(r: &mut Report, kind: &str) -> Result<(), Vec<String>> {
    let v = validators();
    let Some(validator) = v.get(kind) else {
        return Err(vec![String::new()]);
    };
    let mut broken = Vec::new();
    let errors: Vec<_> = validator.iter_errors(&r.doc.value).collect();
    for e in &errors {
        report_schema_error(r, &v.schema, e, &mut broken);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(broken)
    }
}

fn is_null_type_error(e: &jsonschema::ValidationError) -> bool {
    use jsonschema::error::ValidationErrorKind as K;
    matches!(
        e.kind(),
        K::Type {
            kind: jsonschema::error::TypeKind::Single(jsonschema::JsonType::Null),
        }
    )
}

fn report_schema_error(
    r: &mut Report,
    schema: &Value,
    e: &jsonschema::ValidationError,
    broken: &mut Vec<String>,
) {
    use jsonschema::error::ValidationErrorKind as K;
    let ptr = e.instance_path().as_str().to_string();
    let spath = e.schema_path().as_str().to_string();
    let parent = spath.rsplit_once('/').map_or("", |(p, _)| p);
    let instance = r.doc.value.pointer(&ptr).cloned().unwrap_or(Value::Null);
    match e.kind() {
        K::AdditionalProperties { unexpected } => {
            let def = def_of(&spath).to_string();
            let allowed: Vec<String> = schema_at(schema, &format!("{parent}/properties"))
                .and_then(Value::as_object)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            for field in unexpected {
                let child = format!("{ptr}/{}", field.replace('~', "~0").replace('/', "~1"));
                r.err_key(&child, unknown_field_message(&def, field, &allowed));
                broken.push(child);
            }
            return;
        }
        // `Option<T>` is `anyOf: [T, null]`: report what T said, not that
        // the value is not null.
        K::AnyOf { context } | K::OneOfNotValid { context } => {
            let branch = context
                .iter()
                .find(|b| !b.is_empty() && !b.iter().all(is_null_type_error));
            match branch {
                Some(b) => {
                    for inner in b {
                        report_schema_error(r, schema, inner, broken);
                    }
                }
                None => r.err(&ptr, format!("{} is not accepted here", short(&instance))),
            }
            return;
        }
        K::Required { property } => {
            let p = property.as_str().unwrap_or_default();
            r.err(&ptr, format!("missing required field \"{p}\""));
        }
        K::Type { .. } => {
            let want = schema_at(schema, &format!("{parent}/type"))
                .map(|t| match t {
                    Value::Array(a) => a
                        .iter()
                        .filter_map(Value::as_str)
                        .filter(|s| *s != "null")
                        .collect::<Vec<_>>()
                        .join(" or "),
                    Value::String(s) => s.clone(),
                    _ => t.to_string(),
                })
                .unwrap_or_else(|| "another type".into());
            let mut msg = format!("expected {want}, got {}", type_name(&instance));
            if want.contains("string") && (instance.is_boolean() || instance.is_number()) {
                msg.push_str(
                    "; quote the value (YAML reads yes/no/on/off as booleans and 0644 as a number)",
                );
            }
            r.err(&ptr, msg);
        }
        K::Enum { options } => {
            let opts: Vec<String> = options
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|o| {
                            o.as_str()
                                .map_or_else(|| o.to_string(), |s| format!("\"{s}\""))
                        })
                        .collect()
                })
                .unwrap_or_default();
            r.err(
                &ptr,
                format!(
                    "{} is not accepted; use one of: {}",
                    short(&instance),
                    opts.join(", ")
                ),
            );
        }
        K::Constant { expected_value } => {
            r.err(
                &ptr,
                format!(
                    "{} is not accepted; use {}",
                    short(&instance),
                    expected_value
                ),
            );
        }
        K::Minimum { limit } => r.err(&ptr, format!("must be at least {limit}")),
        K::Maximum { limit } => r.err(&ptr, format!("must be at most {limit}")),
        K::MinItems { limit } => r.err(&ptr, format!("must have at least {limit} item(s)")),
        K::MinLength { limit } => r.err(&ptr, format!("must be at least {limit} character(s)")),
        _ => r.err(&ptr, e.to_string()),
    }
    broken.push(ptr);
}

/// A copy of `value` without the fields at `broken`, or `None` when a
/// broken value cannot simply be left out (a list item, the whole document).
fn repair(value: &Value, broken: &[String]) -> Option<Value> {
    let mut v = value.clone();
    let mut ptrs: Vec<&String> = broken.iter().collect();
    ptrs.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in ptrs {
        let (parent, last) = p.rsplit_once('/')?;
        let key = last.replace("~1", "/").replace("~0", "~");
        match v.pointer_mut(parent)? {
            Value::Object(m) => {
                m.remove(&key);
            }
            _ => return None,
        }
    }
    Some(v)
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

/// "unknown field" with a suggestion, or "not supported by podc" for real
/// Kubernetes fields that podc does not run.
pub fn unknown_field_message(def: &str, field: &str, allowed: &[String]) -> String {
    if schema::unsupported_fields(def).contains(&field) {
        return format!(
            "field \"{field}\" is a Kubernetes field that is not supported by podc; remove it (see the README's field support table)"
        );
    }
    let best = allowed
        .iter()
        .map(|a| (strsim::damerau_levenshtein(field, a), a))
        .filter(|(d, a)| *d <= 2.max(a.len() / 3))
        .min_by_key(|(d, _)| *d);
    let best = best.or_else(|| {
        // Case-only differences are common (`hostIpc` for `hostIPC`).
        allowed
            .iter()
            .find(|a| a.eq_ignore_ascii_case(field))
            .map(|a| (0, a))
    });
    match best {
        Some((_, a)) => format!("unknown field \"{field}\", did you mean \"{a}\"?"),
        None if allowed.is_empty() => format!("unknown field \"{field}\""),
        None => format!(
            "unknown field \"{field}\"; expected one of: {}",
            allowed.join(", ")
        ),
    }
}

/// Deserialize into the typed model. `quiet` is for repaired documents,
/// whose failures were already reported by the schema.
fn typed<T: serde::de::DeserializeOwned>(r: &mut Report, value: &Value, quiet: bool) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Some(v),
        Err(_) if quiet => None,
        Err(e) => {
            let ptr: String = e
                .path()
                .iter()
                .filter_map(|seg| match seg {
                    serde_path_to_error::Segment::Seq { index } => Some(format!("/{index}")),
                    serde_path_to_error::Segment::Map { key } => {
                        Some(format!("/{}", key.replace('~', "~0").replace('/', "~1")))
                    }
                    _ => None,
                })
                .collect();
            r.err(&ptr, e.inner().to_string());
            None
        }
    }
}

fn check_meta(r: &mut Report, m: &ObjectMeta, name_check: fn(&str) -> Result<(), String>) {
    if let Err(e) = name_check(&m.name) {
        r.err("/metadata/name", e);
    }
    for (k, v) in &m.labels {
        let ptr = format!(
            "/metadata/labels/{}",
            k.replace('~', "~0").replace('/', "~1")
        );
        if let Err(e) = names::qualified_name(k) {
            r.err_key(&ptr, format!("label key: {e}"));
        }
        if let Err(e) = names::label_value(v) {
            r.err(&ptr, e);
        }
    }
    for k in m.annotations.keys() {
        let ptr = format!(
            "/metadata/annotations/{}",
            k.replace('~', "~0").replace('/', "~1")
        );
        if let Err(e) = names::qualified_name(k) {
            r.err_key(&ptr, format!("annotation key: {e}"));
        }
    }
}

fn decode_b64(r: &mut Report, ptr: &str, v: &str) -> Option<Vec<u8>> {
    match base64::engine::general_purpose::STANDARD.decode(v.trim_end_matches(['\n', '\r'])) {
        Ok(b) => Some(b),
        Err(e) => {
            r.err(
                ptr,
                format!("not valid base64 ({e}); encode the value with `base64 -w0`"),
            );
            None
        }
    }
}

fn check_keys<'k>(r: &mut Report, field: &str, keys: impl Iterator<Item = &'k String>) {
    for k in keys {
        if let Err(e) = names::config_map_key(k) {
            let ptr = format!("/{field}/{}", k.replace('~', "~0").replace('/', "~1"));
            r.err_key(&ptr, e);
        }
    }
}

fn check_config_map(r: &mut Report, cm: &ConfigMap) -> Option<ConfigMapData> {
    check_meta(r, &cm.metadata, names::dns1123_subdomain);
    check_keys(r, "data", cm.data.keys());
    check_keys(r, "binaryData", cm.binary_data.keys());
    let mut out = ConfigMapData {
        data: cm.data.clone(),
        binary: BTreeMap::new(),
    };
    for (k, v) in &cm.binary_data {
        let ptr = format!("/binaryData/{k}");
        if cm.data.contains_key(k) {
            r.err_key(&ptr, format!("key \"{k}\" is in both data and binaryData"));
        }
        if let Some(b) = decode_b64(r, &ptr, v) {
            out.binary.insert(k.clone(), b);
        }
    }
    Some(out)
}

fn check_secret(r: &mut Report, s: &Secret) -> Option<SecretData> {
    check_meta(r, &s.metadata, names::dns1123_subdomain);
    check_keys(r, "data", s.data.keys());
    check_keys(r, "stringData", s.string_data.keys());
    let mut out = SecretData::default();
    for (k, v) in &s.data {
        if let Some(b) = decode_b64(r, &format!("/data/{k}"), v) {
            out.data.insert(k.clone(), b);
        }
    }
    for (k, v) in &s.string_data {
        out.data.insert(k.clone(), v.as_bytes().to_vec());
    }
    Some(out)
}

/// Linux capabilities by Kubernetes name (no `CAP_` prefix).
pub const CAPABILITIES: &[&str] = &[
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "SYSLOG",
    "WAKE_ALARM",
];

/// The field paths `fieldRef` accepts, resolved at build time.
pub fn field_ref_supported(path: &str) -> bool {
    matches!(
        path,
        "metadata.name" | "metadata.namespace" | "spec.nodeName" | "status.podIP"
    ) || label_or_annotation_ref(path).is_some()
}

/// `metadata.labels['k']` → ("labels", "k").
pub fn label_or_annotation_ref(path: &str) -> Option<(&str, &str)> {
    for field in ["labels", "annotations"] {
        let prefix = format!("metadata.{field}['");
        if let Some(rest) = path.strip_prefix(prefix.as_str()) {
            if let Some(key) = rest.strip_suffix("']") {
                return Some((
                    if field == "labels" {
                        "labels"
                    } else {
                        "annotations"
                    },
                    key,
                ));
            }
        }
    }
    None
}

fn check_pod(r: &mut Report, pod: &Pod, refs: &Validated) {
    check_meta(r, &pod.metadata, names::dns1123_subdomain);
    let ns = ns_of(&pod.metadata);
    let spec = &pod.spec;

    if let Some(h) = &spec.hostname {
        if let Err(e) = names::dns1123_label(h) {
            r.err("/spec/hostname", e);
        }
    }
    if let Some(n) = &spec.node_name {
        if let Err(e) = names::dns1123_subdomain(n) {
            r.err("/spec/nodeName", e);
        }
    }
    if spec.share_process_namespace && spec.host_pid {
        r.err(
            "/spec/shareProcessNamespace",
            "shareProcessNamespace and hostPID cannot both be set",
        );
    }
    for (i, a) in spec.host_aliases.iter().enumerate() {
        let p = format!("/spec/hostAliases/{i}");
        if a.ip.parse::<std::net::IpAddr>().is_err() {
            r.err(
                &format!("{p}/ip"),
                format!("\"{}\" is not an IP address", a.ip),
            );
        }
        for (j, h) in a.hostnames.iter().enumerate() {
            if let Err(e) = names::dns1123_subdomain(h) {
                r.err(&format!("{p}/hostnames/{j}"), e);
            }
        }
    }
    if let Some(sc) = &spec.security_context {
        let mut seen = HashSet::new();
        for (i, s) in sc.sysctls.iter().enumerate() {
            let p = format!("/spec/securityContext/sysctls/{i}/name");
            if !seen.insert(s.name.as_str()) {
                r.err(&p, format!("sysctl \"{}\" is set twice", s.name));
            } else if crate::infra::check_sysctl_name(&s.name).is_err() {
                r.err(&p, format!("sysctl \"{}\" is not namespaced, so a pod may not set it; namespaced sysctls are net.*, kernel.shm*, kernel.msg*, kernel.sem and fs.mqueue.*", s.name));
            } else if spec.host_network && s.name.starts_with("net.") {
                r.err(&p, format!("sysctl \"{}\" would change the host's network namespace (hostNetwork: true)", s.name));
            } else if spec.host_ipc && !s.name.starts_with("net.") {
                r.err(
                    &p,
                    format!(
                        "sysctl \"{}\" would change the host's IPC namespace (hostIPC: true)",
                        s.name
                    ),
                );
            }
        }
    }

    // Volumes.
    let mut volumes: HashMap<&str, &Volume> = HashMap::new();
    for (i, v) in spec.volumes.iter().enumerate() {
        let p = format!("/spec/volumes/{i}");
        if let Err(e) = names::dns1123_label(&v.name) {
            r.err(&format!("{p}/name"), e);
        }
        if volumes.insert(v.name.as_str(), v).is_some() {
            r.err(
                &format!("{p}/name"),
                format!("volume name \"{}\" is used twice", v.name),
            );
        }
        exactly_one(
            r,
            &p,
            "a volume needs exactly one source (emptyDir, hostPath, configMap or secret)",
            &[
                v.empty_dir.is_some(),
                v.host_path.is_some(),
                v.config_map.is_some(),
                v.secret.is_some(),
            ],
        );
        if let Some(ed) = &v.empty_dir {
            if let Some(q) = &ed.size_limit {
                check_quantity(r, &format!("{p}/emptyDir/sizeLimit"), &q.0, true);
            }
        }
        if let Some(hp) = &v.host_path {
            let pp = format!("{p}/hostPath/path");
            if !hp.path.starts_with('/') {
                r.err(&pp, "hostPath.path must be an absolute path");
            } else if hp.path.split('/').any(|c| c == "..") {
                r.err(&pp, "hostPath.path must not contain '..'");
            }
        }
        if let Some(cm) = &v.config_map {
            let data = refs.config_maps.get(&(ns.clone(), cm.name.clone()));
            let keys: Option<BTreeSet<String>> = data.map(|d| d.files().into_keys().collect());
            check_projection(
                r,
                &format!("{p}/configMap"),
                "ConfigMap",
                &ns,
                &cm.name,
                "name",
                keys.as_ref(),
                &cm.items,
                cm.optional.unwrap_or(false),
            );
        }
        if let Some(s) = &v.secret {
            let data = refs.secrets.get(&(ns.clone(), s.secret_name.clone()));
            let keys: Option<BTreeSet<String>> = data.map(|d| d.data.keys().cloned().collect());
            check_projection(
                r,
                &format!("{p}/secret"),
                "Secret",
                &ns,
                &s.secret_name,
                "secretName",
                keys.as_ref(),
                &s.items,
                s.optional.unwrap_or(false),
            );
        }
    }

    // Containers.
    let mut names_seen: HashMap<&str, String> = HashMap::new();
    let mut ports_seen: HashMap<(i64, Protocol), String> = HashMap::new();
    let all = spec
        .init_containers
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("/spec/initContainers/{i}"), c, true))
        .chain(
            spec.containers
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("/spec/containers/{i}"), c, false)),
        );
    for (p, c, is_init) in all {
        if let Err(e) = names::dns1123_label(&c.name) {
            r.err(&format!("{p}/name"), e);
        }
        if let Some(first) = names_seen.get(c.name.as_str()) {
            r.err(
                &format!("{p}/name"),
                format!(
                    "container name \"{}\" is already used by {}; names must be unique across initContainers and containers",
                    c.name,
                    pointer_to_path(first)
                ),
            );
        } else {
            names_seen.insert(c.name.as_str(), p.clone());
        }
        check_container(r, &p, c, is_init, &volumes, &ns, refs, pod);
        for (j, port) in c.ports.iter().enumerate() {
            let proto = port.protocol.unwrap_or(Protocol::Tcp);
            let pp = format!("{p}/ports/{j}/containerPort");
            if let Some(first) = ports_seen.get(&(port.container_port, proto)) {
                r.err(
                    &pp,
                    format!(
                        "port {}/{:?} is already declared by {}; containers of a pod share one network namespace",
                        port.container_port,
                        proto,
                        pointer_to_path(first)
                    )
                    .replace("Tcp", "TCP")
                    .replace("Udp", "UDP")
                    .replace("Sctp", "SCTP"),
                );
            } else {
                ports_seen.insert((port.container_port, proto), pp.clone());
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn check_projection(
    r: &mut Report,
    p: &str,
    kind: &str,
    ns: &str,
    name: &str,
    name_field: &str,
    keys: Option<&BTreeSet<String>>,
    items: &[KeyToPath],
    optional: bool,
) {
    if keys.is_none() && !optional {
        r.err(
            &format!("{p}/{name_field}"),
            format!("{kind} \"{name}\" is not defined in namespace \"{ns}\" in the input; add it, or set optional: true"),
        );
    }
    let mut paths = HashSet::new();
    for (j, it) in items.iter().enumerate() {
        let ip = format!("{p}/items/{j}");
        if let Some(k) = keys {
            if !k.contains(&it.key) && !optional {
                r.err(
                    &format!("{ip}/key"),
                    format!(
                        "{kind} \"{name}\" has no key \"{}\"; it has: {}",
                        it.key,
                        k.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
        }
        if let Err(e) = names::relative_path_no_dotdot(&it.path) {
            r.err(&format!("{ip}/path"), e);
        } else if !paths.insert(it.path.as_str()) {
            r.err(
                &format!("{ip}/path"),
                format!("path \"{}\" is used twice", it.path),
            );
        }
    }
}

fn check_quantity(r: &mut Report, ptr: &str, text: &str, memory: bool) -> Option<u64> {
    match quantity::parse(text) {
        Ok(q) => {
            let v = if memory {
                q.to_bytes_ceil()
            } else {
                q.to_millis_ceil()
            };
            if v.is_none() {
                r.err(
                    ptr,
                    format!("\"{text}\" must be a non-negative quantity that fits in 64 bits"),
                );
            }
            v
        }
        Err(e) => {
            r.err(ptr, e);
            None
        }
    }
}

/// Report `what` at `p` unless exactly one of `set` is true (Kubernetes'
/// one-of fields: volume sources, handler actions, `valueFrom`).
fn exactly_one(r: &mut Report, p: &str, what: &str, set: &[bool]) {
    let n = set.iter().filter(|b| **b).count();
    if n != 1 {
        r.err(p, format!("{what}; found {n}"));
    }
}

fn check_handler(r: &mut Report, p: &str, h: &Handler, c: &Container) {
    exactly_one(
        r,
        p,
        "a handler needs exactly one action (exec, httpGet, tcpSocket or sleep)",
        &[
            h.exec.is_some(),
            h.http_get.is_some(),
            h.tcp_socket.is_some(),
            h.sleep.is_some(),
        ],
    );
    let port = h
        .http_get
        .as_ref()
        .map(|g| (&g.port, "httpGet"))
        .or(h.tcp_socket.as_ref().map(|t| (&t.port, "tcpSocket")));
    if let Some((port, field)) = port {
        let pp = format!("{p}/{field}/port");
        match port {
            IntOrString::Int(n) if !(1..=65535).contains(n) => {
                r.err(&pp, "port must be between 1 and 65535")
            }
            IntOrString::String(name)
                if !c.ports.iter().any(|cp| cp.name.as_deref() == Some(name)) =>
            {
                r.err(
                    &pp,
                    format!("container \"{}\" has no port named \"{name}\"", c.name),
                )
            }
            _ => {}
        }
    }
    if let Some(g) = &h.http_get {
        if let Some(path) = &g.path {
            if !path.starts_with('/') {
                r.err(&format!("{p}/httpGet/path"), "path must start with '/'");
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn check_container(
    r: &mut Report,
    p: &str,
    c: &Container,
    is_init: bool,
    volumes: &HashMap<&str, &Volume>,
    ns: &str,
    refs: &Validated,
    pod: &Pod,
) {
    if c.image.trim().is_empty() || c.image.chars().any(char::is_whitespace) {
        r.err(
            &format!("{p}/image"),
            "image must be a reference like busybox:1.36, without spaces",
        );
    }
    if let Some(wd) = &c.working_dir {
        if !wd.starts_with('/') {
            r.err(
                &format!("{p}/workingDir"),
                "workingDir must be an absolute path",
            );
        }
    }
    if let Some(tp) = &c.termination_message_path {
        if !tp.starts_with('/') || tp.split('/').any(|s| s == "..") {
            r.err(
                &format!("{p}/terminationMessagePath"),
                "terminationMessagePath must be an absolute path without '..'",
            );
        }
    }
    let sidecar = is_init && c.restart_policy.is_some();
    if !is_init && c.restart_policy.is_some() {
        r.err(
            &format!("{p}/restartPolicy"),
            "restartPolicy may only be set on init containers (Always makes a sidecar)",
        );
    }
    if let Some(lc) = &c.lifecycle {
        if is_init && !sidecar {
            r.err(
                &format!("{p}/lifecycle"),
                "init containers may not have lifecycle hooks (only sidecars, i.e. restartPolicy: Always, may)",
            );
        }
        if let Some(h) = &lc.post_start {
            check_handler(r, &format!("{p}/lifecycle/postStart"), h, c);
        }
        if let Some(h) = &lc.pre_stop {
            check_handler(r, &format!("{p}/lifecycle/preStop"), h, c);
        }
    }

    // Ports.
    let mut port_names = HashSet::new();
    for (j, port) in c.ports.iter().enumerate() {
        if let Some(n) = &port.name {
            let pp = format!("{p}/ports/{j}/name");
            if let Err(e) = port_name(n) {
                r.err(&pp, e);
            } else if !port_names.insert(n.as_str()) {
                r.err(
                    &pp,
                    format!("port name \"{n}\" is used twice in this container"),
                );
            }
        }
    }

    // Resources.
    if let Some(res) = &c.resources {
        let mut vals: HashMap<(&str, &str), u64> = HashMap::new();
        for (which, list) in [("requests", &res.requests), ("limits", &res.limits)] {
            let Some(list) = list else { continue };
            for (name, q, mem) in [("cpu", &list.cpu, false), ("memory", &list.memory, true)] {
                if let Some(q) = q {
                    let ptr = format!("{p}/resources/{which}/{name}");
                    if let Some(v) = check_quantity(r, &ptr, &q.0, mem) {
                        vals.insert((which, name), v);
                    }
                }
            }
        }
        for name in ["cpu", "memory"] {
            if let (Some(req), Some(lim)) =
                (vals.get(&("requests", name)), vals.get(&("limits", name)))
            {
                if req > lim {
                    r.err(
                        &format!("{p}/resources/requests/{name}"),
                        format!("must be less than or equal to the {name} limit"),
                    );
                }
            }
        }
    }

    // Volume mounts.
    let mut paths = HashSet::new();
    for (j, m) in c.volume_mounts.iter().enumerate() {
        let mp = format!("{p}/volumeMounts/{j}");
        if !volumes.contains_key(m.name.as_str()) {
            let known: Vec<&str> = {
                let mut k: Vec<&str> = volumes.keys().copied().collect();
                k.sort();
                k
            };
            r.err(
                &format!("{mp}/name"),
                if known.is_empty() {
                    format!("volume \"{}\" is not declared in spec.volumes", m.name)
                } else {
                    format!(
                        "volume \"{}\" is not declared in spec.volumes (declared: {})",
                        m.name,
                        known.join(", ")
                    )
                },
            );
        }
        if !m.mount_path.starts_with('/') || m.mount_path.split('/').any(|s| s == "..") {
            r.err(
                &format!("{mp}/mountPath"),
                "mountPath must be an absolute path without '..'",
            );
        } else if !paths.insert(m.mount_path.trim_end_matches('/')) {
            r.err(
                &format!("{mp}/mountPath"),
                format!("mountPath \"{}\" is used twice", m.mount_path),
            );
        }
        if let Some(sp) = &m.sub_path {
            if let Err(e) = names::relative_path_no_dotdot(sp) {
                r.err(&format!("{mp}/subPath"), e);
            }
        }
    }

    // Environment.
    for (j, e) in c.env.iter().enumerate() {
        let ep = format!("{p}/env/{j}");
        if let Err(m) = names::env_var_name(&e.name) {
            r.err(&format!("{ep}/name"), m);
        } else if !crate::escape::systemd_env_name_ok(&e.name) {
            r.err(
                &format!("{ep}/name"),
                format!("\"{}\" is a valid Kubernetes name, but podc passes the environment through systemd, which accepts only letters, digits and '_', not starting with a digit", e.name),
            );
        } else if crate::escape::reserved_env_name(&e.name) {
            r.err(
                &format!("{ep}/name"),
                format!("\"{}\" is reserved: systemd sets it for the container's unit (or it steers the host-side helpers that start the container: MAINPID, NOTIFY_SOCKET, LD_*, ...); choose another name", e.name),
            );
        }
        let Some(from) = &e.value_from else { continue };
        if e.value.as_deref().is_some_and(|v| !v.is_empty()) {
            r.err(
                &format!("{ep}/valueFrom"),
                "may not be set together with value",
            );
        }
        exactly_one(
            r,
            &format!("{ep}/valueFrom"),
            "valueFrom needs exactly one of configMapKeyRef, secretKeyRef, fieldRef",
            &[
                from.config_map_key_ref.is_some(),
                from.secret_key_ref.is_some(),
                from.field_ref.is_some(),
            ],
        );
        let key = |name: &str| (ns.to_string(), name.to_string());
        if let Some(k) = &from.config_map_key_ref {
            let d = refs.config_maps.get(&key(&k.name));
            check_key_ref(
                r,
                &format!("{ep}/valueFrom/configMapKeyRef"),
                "ConfigMap",
                ns,
                k,
                d.map(|d| d.data.keys().cloned().collect()),
                d.and_then(|d| d.data.get(&k.key)).map(|v| v.as_bytes()),
            );
        }
        if let Some(k) = &from.secret_key_ref {
            let d = refs.secrets.get(&key(&k.name));
            check_key_ref(
                r,
                &format!("{ep}/valueFrom/secretKeyRef"),
                "Secret",
                ns,
                k,
                d.map(|d| d.data.keys().cloned().collect()),
                d.and_then(|d| d.data.get(&k.key)).map(Vec::as_slice),
            );
        }
        if let Some(f) = &from.field_ref {
            let fp = format!("{ep}/valueFrom/fieldRef/fieldPath");
            if !field_ref_supported(&f.field_path) {
                r.err(
                    &fp,
                    format!(
                        "fieldPath \"{}\" is not supported by podc; use metadata.name, metadata.namespace, metadata.labels['KEY'], metadata.annotations['KEY'], spec.nodeName or status.podIP",
                        f.field_path
                    ),
                );
            } else if f.field_path == "status.podIP" && pod.spec.host_network {
                r.err(&fp, "status.podIP is not supported by podc with hostNetwork: true (the host's address is not known at build time)");
            }
            if let Some(v) = &f.api_version {
                if v != "v1" {
                    r.err(
                        &format!("{ep}/valueFrom/fieldRef/apiVersion"),
                        "apiVersion must be v1",
                    );
                }
            }
        }
    }
    for (j, e) in c.env_from.iter().enumerate() {
        let ep = format!("{p}/envFrom/{j}");
        exactly_one(
            r,
            &ep,
            "envFrom needs exactly one of configMapRef, secretRef",
            &[e.config_map_ref.is_some(), e.secret_ref.is_some()],
        );
        if let Some(pre) = &e.prefix {
            if let Err(m) = names::env_var_name(pre) {
                r.err(&format!("{ep}/prefix"), m);
            }
        }
        let (what, field, nr, keys) = match (&e.config_map_ref, &e.secret_ref) {
            (Some(nr), _) => (
                "ConfigMap",
                "configMapRef",
                nr,
                refs.config_maps
                    .get(&(ns.to_string(), nr.name.clone()))
                    .map(|d| {
                        d.data
                            .iter()
                            .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
                            .collect::<Vec<_>>()
                    }),
            ),
            (_, Some(nr)) => (
                "Secret",
                "secretRef",
                nr,
                refs.secrets
                    .get(&(ns.to_string(), nr.name.clone()))
                    .map(|d| d.data.clone().into_iter().collect::<Vec<_>>()),
            ),
            _ => continue,
        };
        match keys {
            None if !nr.optional.unwrap_or(false) => r.err(
                &format!("{ep}/{field}/name"),
                format!("{what} \"{}\" is not defined in namespace \"{ns}\" in the input; add it, or set optional: true", nr.name),
            ),
            Some(keys) => {
                for (k, v) in keys {
                    let full = format!("{}{k}", e.prefix.as_deref().unwrap_or(""));
                    if crate::escape::reserved_env_name(&full) {
                        r.warn(&format!("{ep}/{field}/name"), format!("key \"{k}\" of {what} \"{}\" makes {full:?}, which systemd sets for the container's unit (or which steers its host-side helpers), and is skipped", nr.name));
                    } else if !envfrom_name_ok(&full) {
                        // Kubernetes skips invalid keys with an event; say so.
                        r.warn(&format!("{ep}/{field}/name"), format!("key \"{k}\" of {what} \"{}\" does not make an environment variable name systemd accepts (letters, digits, '_') and is skipped", nr.name));
                    } else if let Some(m) = env_value_problem(&v) {
                        r.err(
                            &format!("{ep}/{field}/name"),
                            format!("the value of {what} \"{}\" key \"{k}\" {m}", nr.name),
                        );
                    }
                }
            }
            None => {}
        }
    }

    // Security context.
    if let Some(sc) = &c.security_context {
        if let Some(caps) = &sc.capabilities {
            for (field, list) in [("add", &caps.add), ("drop", &caps.drop)] {
                for (j, cap) in list.iter().enumerate() {
                    let name = cap.strip_prefix("CAP_").unwrap_or(cap);
                    let ok = CAPABILITIES.contains(&name) || (name == "ALL");
                    if !ok {
                        r.err(
                            &format!("{p}/securityContext/capabilities/{field}/{j}"),
                            format!("\"{cap}\" is not a Linux capability; use names like NET_ADMIN, SYS_TIME, or ALL"),
                        );
                    }
                }
            }
        }
        if sc.privileged == Some(true) && sc.allow_privilege_escalation == Some(false) {
            r.err(
                &format!("{p}/securityContext/allowPrivilegeEscalation"),
                "cannot be false when privileged is true",
            );
        } else if sc.allow_privilege_escalation == Some(false)
            && sc.capabilities.as_ref().is_some_and(|c| {
                c.add
                    .iter()
                    .any(|a| a.strip_prefix("CAP_").unwrap_or(a) == "SYS_ADMIN")
            })
        {
            // Kubernetes' rule: CAP_SYS_ADMIN can undo no_new_privs.
            r.err(
                &format!("{p}/securityContext/allowPrivilegeEscalation"),
                "cannot be false when capabilities.add has SYS_ADMIN",
            );
        }
    }
}

/// A `configMapKeyRef`/`secretKeyRef`: the object and key exist unless
/// optional, and the value (when there is one) can be an environment
/// variable.
fn check_key_ref(
    r: &mut Report,
    p: &str,
    kind: &str,
    ns: &str,
    k: &KeySelector,
    keys: Option<BTreeSet<String>>,
    value: Option<&[u8]>,
) {
    if let Some(m) = value.and_then(env_value_problem) {
        r.err(
            &format!("{p}/key"),
            format!("the value of {kind} \"{}\" key \"{}\" {m}", k.name, k.key),
        );
    }
    if k.optional.unwrap_or(false) {
        return;
    }
    match keys {
        None => r.err(
            &format!("{p}/name"),
            format!("{kind} \"{}\" is not defined in namespace \"{ns}\" in the input; add it, or set optional: true", k.name),
        ),
        Some(keys) if !keys.contains(&k.key) => r.err(
            &format!("{p}/key"),
            format!(
                "{kind} \"{}\" has no key \"{}\"; it has: {}",
                k.name,
                k.key,
                keys.into_iter().collect::<Vec<_>>().join(", ")
            ),
        ),
        _ => {}
    }
}

/// Why a value cannot become an environment variable, if it cannot: a NUL
/// byte ends a C string, and systemd (`EnvironmentFile=`, `Environment=`)
/// refuses values that are not UTF-8. Kubernetes would pass such bytes; podc
/// refuses them rather than change them.
fn env_value_problem(v: &[u8]) -> Option<&'static str> {
    if v.contains(&0) {
        Some("contains a NUL byte, which no environment variable can carry")
    } else if std::str::from_utf8(v).is_err() {
        Some("is not UTF-8 text, and systemd passes only UTF-8 environment values")
    } else {
        None
    }
}

/// Whether an `envFrom` key (with its prefix) becomes a variable: valid
/// for Kubernetes and for systemd, and not reserved
/// ([`crate::escape::reserved_env_name`]). Others are skipped, as
/// Kubernetes skips invalid keys.
pub fn envfrom_name_ok(name: &str) -> bool {
    names::env_var_name(name).is_ok()
        && crate::escape::systemd_env_name_ok(name)
        && !crate::escape::reserved_env_name(name)
}

/// Kubernetes' `IsValidPortName` (IANA_SVC_NAME): at most 15 characters,
/// lowercase letters, digits and '-', at least one letter, no '--', no '-'
/// at either end.
fn port_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--");
    if ok {
        Ok(())
    } else {
        Err("a port name must be at most 15 characters of lowercase letters, digits and '-', contain at least one letter, and neither start nor end with '-' or contain '--' (e.g. 'http')".into())
    }
}

/// Kubernetes' `imagePullPolicy` default: Always for `:latest` or no tag
/// (and no digest), else IfNotPresent.
pub fn default_pull_policy(image: &str) -> PullPolicy {
    if image.contains('@') {
        return PullPolicy::IfNotPresent;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        None => PullPolicy::Always,
        Some((_, "latest")) => PullPolicy::Always,
        Some(_) => PullPolicy::IfNotPresent,
    }
}

/// Fill in what Kubernetes fills in.
pub fn apply_defaults(mut pod: Pod) -> Pod {
    if pod.metadata.namespace.is_none() {
        pod.metadata.namespace = Some("default".into());
    }
    let spec = &mut pod.spec;
    spec.restart_policy.get_or_insert(RestartPolicy::Always);
    spec.termination_grace_period_seconds
        .get_or_insert(DEFAULT_GRACE_SECONDS);
    if spec.hostname.is_none() {
        let mut h: String = pod.metadata.name.chars().take(63).collect();
        // Truncation may leave a trailing '-' or '.', which is not a valid
        // hostname: Kubernetes trims those too.
        while h.ends_with(['-', '.']) {
            h.pop();
        }
        spec.hostname = Some(h);
    }
    for c in spec
        .init_containers
        .iter_mut()
        .chain(spec.containers.iter_mut())
    {
        if c.image_pull_policy.is_none() {
            c.image_pull_policy = Some(default_pull_policy(&c.image));
        }
        if c.termination_message_path.is_none() {
            c.termination_message_path = Some("/dev/termination-log".into());
        }
        for p in &mut c.ports {
            p.protocol.get_or_insert(Protocol::Tcp);
        }
    }
    pod
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_defaults() {
        assert_eq!(default_pull_policy("busybox"), PullPolicy::Always);
        assert_eq!(default_pull_policy("busybox:latest"), PullPolicy::Always);
        assert_eq!(
            default_pull_policy("busybox:1.36"),
            PullPolicy::IfNotPresent
        );
        assert_eq!(default_pull_policy("reg:5000/busybox"), PullPolicy::Always);
        assert_eq!(
            default_pull_policy("reg:5000/busybox:1"),
            PullPolicy::IfNotPresent
        );
        assert_eq!(
            default_pull_policy("busybox@sha256:abc"),
            PullPolicy::IfNotPresent
        );
    }

    #[test]
    fn suggestions() {
        let allowed: Vec<String> = ["command", "args", "image"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            unknown_field_message("Container", "comand", &allowed),
            "unknown field \"comand\", did you mean \"command\"?"
        );
        assert!(
            unknown_field_message("Container", "livenessProbe", &allowed)
                .contains("not supported by podc")
        );
        assert!(unknown_field_message("Container", "zzzzzz", &allowed)
            .contains("expected one of: command, args, image"));
    }

    #[test]
    fn field_refs() {
        assert!(field_ref_supported("metadata.labels['app']"));
        assert_eq!(
            label_or_annotation_ref("metadata.annotations['a/b']"),
            Some(("annotations", "a/b"))
        );
        assert!(!field_ref_supported("metadata.uid"));
        assert!(!field_ref_supported("metadata.labels"));
    }
}
