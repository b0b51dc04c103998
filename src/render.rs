//! Stage 4, render: the unit model → unit file text, through minijinja
//! templates in `templates/` (embedded; overridable with `--templates DIR`).
//!
//! Escaping is not left to template authors: every `{{ value }}` goes
//! through a formatter that escapes it as free text for systemd (no line
//! breaks, `%` doubled), and the filters below produce the exact syntax of
//! the directive they are used in (`exec`, `env`, `path`, `bind`), marked
//! safe. A value therefore cannot smuggle a directive into a unit.

use crate::argv::{Part, Word};
use crate::escape;
use crate::plan::PodPlan;
use minijinja::value::{Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The built-in templates, by name.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("pod.slice", include_str!("../templates/pod.slice")),
    ("pod.target", include_str!("../templates/pod.target")),
    ("infra.service", include_str!("../templates/infra.service")),
    (
        "container.service",
        include_str!("../templates/container.service"),
    ),
    (
        "start-after.target",
        include_str!("../templates/start-after.target"),
    ),
    ("header", include_str!("../templates/header")),
];

/// A rendered unit.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderedUnit {
    pub name: String,
    pub text: String,
    /// `sha256:<hex>` of the text, recorded in the inventory.
    pub hash: String,
}

/// The template environment: built-ins, optionally overridden from `dir`
/// (a file there named like a built-in replaces it).
pub fn environment(dir: Option<&Path>) -> Result<Environment<'static>, String> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(true);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    for (name, text) in TEMPLATES {
        let text = match dir.map(|d| d.join(name)) {
            Some(p) if p.exists() => {
                std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?
            }
            _ => text.to_string(),
        };
        env.add_template_owned(name.to_string(), text)
            .map_err(|e| format!("template {name}: {e}"))?;
    }
    env.set_formatter(|out, _state, value| {
        if value.is_safe() {
            write!(out, "{value}")?;
        } else if value.is_none() || value.is_undefined() {
            return Err(Error::new(
                ErrorKind::UndefinedError,
                "a template printed an empty value",
            ));
        } else {
            write!(out, "{}", escape::text_value(&value.to_string()))?;
        }
        Ok(())
    });
    env.add_filter("exec", filter_exec);
    env.add_filter("env", filter_env);
    env.add_filter("path", filter_path);
    env.add_filter("bind", filter_bind);
    Ok(env)
}

fn strings(v: &Value) -> Result<Vec<String>, Error> {
    v.try_iter()?
        .map(|x| {
            x.as_str().map(str::to_string).ok_or_else(|| {
                Error::new(ErrorKind::InvalidOperation, "expected a list of strings")
            })
        })
        .collect()
}

/// One argv element from the template context: a string is literal text,
/// a list is literal text and `{"var": NAME}` references, which only the
/// planner creates ([`Word`]). No string is ever read as a reference.
fn context_word(v: &Value) -> Result<Word, Error> {
    if let Some(s) = v.as_str() {
        return Ok(Word::Text(s.to_string()));
    }
    let bad = || {
        Error::new(
            ErrorKind::InvalidOperation,
            "an argument must be a string or a list of strings and {var: NAME} maps",
        )
    };
    if v.kind() != ValueKind::Seq {
        return Err(bad());
    }
    let parts = v
        .try_iter()?
        .map(|p| match (p.as_str(), p.kind()) {
            (Some(s), _) => Ok(Part::Text(s.to_string())),
            (None, ValueKind::Map) => p
                .get_attr("var")?
                .as_str()
                .map(|n| Part::Var { var: n.to_string() })
                .ok_or_else(bad),
            _ => Err(bad()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Word::from_parts(parts))
}

/// One argv element in `Exec*=` syntax: literal text escaped by
/// [`escape::try_exec_arg`] (so `$`, `%`, quotes and control characters
/// reach the process exactly, and a NUL is an error), variables as
/// `${NAME}` for systemd to expand at start.
fn exec_word(word: &Word) -> Result<String, String> {
    let mut out = String::from("\"");
    for part in word.parts() {
        match part {
            Part::Text(t) => {
                let q = escape::try_exec_arg(&t)?;
                out.push_str(&q[1..q.len() - 1]);
            }
            Part::Var { var } if escape::systemd_env_name_ok(&var) => {
                out.push_str(&format!("${{{var}}}"));
            }
            Part::Var { var } => {
                return Err(format!(
                    "variable {var:?} cannot be referenced in a command line: systemd expands only names of ASCII letters, digits and '_'"
                ))
            }
        }
    }
    out.push('"');
    Ok(out)
}

fn invalid(e: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, e)
}

/// `argv | exec` → a command line for `ExecStart=` and friends.
fn filter_exec(v: Value) -> Result<Value, Error> {
    let argv = v
        .try_iter()?
        .map(|w| context_word(&w))
        .collect::<Result<Vec<_>, _>>()?;
    let Some((cmd, args)) = argv.split_first() else {
        return Err(invalid("empty command line".into()));
    };
    let Word::Text(cmd) = cmd else {
        return Err(invalid(
            "a variable cannot be part of the executable's name".into(),
        ));
    };
    let mut line = escape::exec_command(std::slice::from_ref(cmd)).map_err(invalid)?;
    for a in args {
        line.push(' ');
        line.push_str(&exec_word(a).map_err(invalid)?);
    }
    Ok(Value::from_safe_string(line))
}

/// `[name, value] | env` → the value of an `Environment=` line.
fn filter_env(v: Value) -> Result<Value, Error> {
    let pair = strings(&v)?;
    match pair.as_slice() {
        [k, val] => escape::try_env_assignment(k, val)
            .map(Value::from_safe_string)
            .map_err(invalid),
        _ => Err(Error::new(
            ErrorKind::InvalidOperation,
            "env takes [name, value]",
        )),
    }
}

/// `p | path` → a single absolute path for `RootDirectory=` etc.
fn filter_path(v: Value) -> Result<Value, Error> {
    let p = v
        .as_str()
        .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "path takes a string"))?;
    escape::path_value(p)
        .map(Value::from_safe_string)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e))
}

/// `[src, dst] | bind` → one `BindPaths=` entry.
fn filter_bind(v: Value) -> Result<Value, Error> {
    let pair = strings(&v)?;
    match pair.as_slice() {
        [src, dst] => escape::try_path_list_entry(src, Some(dst))
            .map(Value::from_safe_string)
            .map_err(invalid),
        _ => Err(Error::new(
            ErrorKind::InvalidOperation,
            "bind takes [src, dst]",
        )),
    }
}

/// systemd refuses to load a unit with a line longer than
/// [`escape::UNIT_LINE_MAX`]: say so at build time, naming the directive.
fn check_line_lengths(unit: &str, text: &str) -> Result<(), String> {
    let Some(line) = text.lines().find(|l| l.len() > escape::UNIT_LINE_MAX) else {
        return Ok(());
    };
    let key: String = line
        .split('=')
        .next()
        .unwrap_or_default()
        .chars()
        .take(40)
        .collect();
    Err(format!(
        "{unit}: its {} line is {} bytes long; systemd loads no unit with a line longer than {} bytes",
        escape::text_value(&key),
        line.len(),
        escape::UNIT_LINE_MAX
    ))
}

/// Render every unit of a pod.
pub fn render(env: &Environment, plan: &PodPlan) -> Result<Vec<RenderedUnit>, String> {
    plan.units
        .iter()
        .map(|u| {
            let tmpl = env
                .get_template(u.template)
                .map_err(|e| format!("template {}: {e}", u.template))?;
            let mut text = tmpl
                .render(&u.ctx)
                .map_err(|e| format!("rendering {} with template {}: {e:#}", u.name, u.template))?;
            // One blank line at most between sections; one newline at the end.
            while text.contains("\n\n\n") {
                text = text.replace("\n\n\n", "\n\n");
            }
            let text = format!("{}\n", text.trim_end());
            check_line_lengths(&u.name, &text)?;
            Ok(RenderedUnit {
                name: u.name.clone(),
                hash: format!("sha256:{:x}", Sha256::digest(text.as_bytes())),
                text,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_become_systemd_variables_and_text_stays_text() {
        let w = |p: Word| exec_word(&p).unwrap();
        assert_eq!(
            w(Word::with_var("--password=", "DB_PASS", "!")),
            "\"--password=${DB_PASS}!\""
        );
        assert_eq!(w(Word::with_var("", "A", "")), "\"${A}\"");
        assert_eq!(w("$5".into()), "\"$$5\"");
        // Text that looks like the old NUL marker or a reference stays text.
        assert!(exec_word(&"\0A\0".into()).unwrap_err().contains("NUL"));
        assert_eq!(w("${A}".into()), "\"$${A}\"");
        assert!(exec_word(&Word::with_var("", "A}\"\n", "")).is_err());
    }

    #[test]
    fn plain_values_are_escaped_by_the_formatter() {
        let mut env = environment(None).unwrap();
        env.add_template("t", "Description={{ d }}").unwrap();
        let out = env
            .get_template("t")
            .unwrap()
            .render(minijinja::context! { d => "50%\n[Service]\nExecStart=/bin/evil" })
            .unwrap();
        assert!(!out.contains('\n'), "{out}");
        assert!(out.contains("50%%"), "{out}");
    }
}
