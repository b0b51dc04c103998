//! The pure core end to end: sources → load → validate → plan → render.
//!
//! No I/O happens here; the CLI reads the files and writes the result. This
//! is what golden tests, the fuzz/property tests and the benchmark call.

use crate::diagnostic::{self, Diagnostic, Pos};
use crate::load::{self, Source};
use crate::plan::{self, Images, PodPlan, Skipped, Target};
use crate::render::{self, RenderedUnit};
use crate::validate;
use minijinja::Environment;
use std::collections::HashMap;

/// One compiled pod.
#[derive(Clone, Debug)]
pub struct CompiledPod {
    pub plan: PodPlan,
    pub units: Vec<RenderedUnit>,
}

/// The result of a successful compile.
#[derive(Clone, Debug, Default)]
pub struct Compiled {
    pub pods: Vec<CompiledPod>,
    pub skipped: Vec<Skipped>,
    /// Warnings (never errors) found on the way.
    pub warnings: Vec<Diagnostic>,
}

/// Load and validate only (`podc validate`): every diagnostic, sorted.
pub fn check(sources: &[Source]) -> (validate::Validated, Vec<Diagnostic>) {
    let (docs, mut diags) = load::load(sources);
    let (validated, more) = validate::validate(sources, &docs);
    diags.extend(more);
    diagnostic::sort(&mut diags);
    (validated, diags)
}

/// Compile everything, or return every diagnostic (errors and warnings)
/// when anything is wrong. Nothing partial is returned on error.
pub fn compile(
    sources: &[Source],
    target: &Target,
    images: &dyn Images,
    templates: &Environment,
) -> Result<Compiled, Vec<Diagnostic>> {
    let (mut validated, mut diags) = check(sources);
    if diags.iter().any(Diagnostic::is_error) {
        return Err(diags);
    }
    // One pod at a time: plan, render, then drop what rendering consumed,
    // so peak memory is the input plus the output, not every stage at once.
    let valid_pods = std::mem::take(&mut validated.pods);
    let mut skipped = Vec::new();
    let mut pods = Vec::with_capacity(valid_pods.len());
    // Notes that say the same thing (one missing image used by ten
    // containers) are shown once, at their first place, with a count.
    let mut seen: HashMap<String, (usize, usize)> = HashMap::new();
    for vp in valid_pods {
        let mut p = match plan::plan_one(&vp, &validated, target, images) {
            Ok(p) => p,
            Err(s) => {
                skipped.push(s);
                continue;
            }
        };
        drop(vp);
        let at = Pos { line: 1, column: 1 };
        for e in &p.errors {
            diags.push(Diagnostic::error(
                &p.file,
                e.pos,
                e.path.clone(),
                e.message.clone(),
            ));
        }
        for n in &p.notes {
            match seen.get_mut(&n.key) {
                Some((_, count)) => *count += 1,
                None => {
                    seen.insert(n.key.clone(), (diags.len(), 0));
                    diags.push(Diagnostic::warning(
                        &p.file,
                        n.pos,
                        n.path.clone(),
                        n.message.clone(),
                    ));
                }
            }
        }
        if !p.errors.is_empty() {
            continue;
        }
        match render::render(templates, &p) {
            Ok(units) => {
                for u in &mut p.units {
                    u.ctx = serde_json::Value::Null;
                }
                pods.push(CompiledPod { plan: p, units })
            }
            Err(e) => diags.push(Diagnostic::error(&p.file, at, "", e)),
        }
    }
    for (idx, count) in seen.into_values() {
        if count > 0 {
            diags[idx]
                .message
                .push_str(&format!(" (and {count} more like this)"));
        }
    }
    diagnostic::sort(&mut diags);
    if diags.iter().any(Diagnostic::is_error) {
        return Err(diags);
    }
    Ok(Compiled {
        pods,
        skipped,
        warnings: diags,
    })
}
