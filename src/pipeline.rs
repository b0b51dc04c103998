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

/// `f` over `items` on all cores, results in input order.
fn parallel_map<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || items.len() < 2 {
        return items.into_iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let mut chunks: Vec<Vec<T>> = Vec::new();
    let mut it = items.into_iter().peekable();
    while it.peek().is_some() {
        chunks.push(it.by_ref().take(chunk).collect());
    }
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|c| scope.spawn(move || c.into_iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// Load and validate only (`podc validate`): every diagnostic, sorted.
pub fn check(sources: &[Source]) -> (validate::Validated, Vec<Diagnostic>) {
    // Files are independent until validation: parse them on every core.
    let mut docs = Vec::new();
    let mut diags = Vec::new();
    let loaded = parallel_map(sources.iter().enumerate().collect(), |(i, s)| {
        load::load_source(i, s)
    });
    for (d, g) in loaded {
        docs.extend(d);
        diags.extend(g);
    }
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
    let (validated, diags) = check(sources);
    compile_checked(validated, diags, target, images, templates)
}

/// [`compile`] from what [`check`] returned, for a caller that acts on the
/// validated pods first (`podc apply` pulls their images) without loading
/// and validating the sources twice.
pub fn compile_checked(
    mut validated: validate::Validated,
    mut diags: Vec<Diagnostic>,
    target: &Target,
    images: &dyn Images,
    templates: &Environment,
) -> Result<Compiled, Vec<Diagnostic>> {
    if diags.iter().any(Diagnostic::is_error) {
        return Err(diags);
    }
    // Pods are independent once validated: plan and render them on every
    // core. Each worker drops what rendering consumed as it goes, so peak
    // memory is the input plus the output, not every stage at once.
    let valid_pods = std::mem::take(&mut validated.pods);
    let outcomes = parallel_map(valid_pods, |vp| {
        let mut p = plan::plan_one(&vp, &validated, target, images)?;
        let rendered = p.errors.is_empty().then(|| render::render(templates, &p));
        for u in &mut p.units {
            u.ctx = serde_json::Value::Null;
        }
        Ok((p, rendered))
    });
    let mut skipped = Vec::new();
    let mut pods = Vec::with_capacity(outcomes.len());
    // Notes that say the same thing (one missing image used by ten
    // containers) are shown once, at their first place, with a count.
    let mut seen: HashMap<String, (usize, usize)> = HashMap::new();
    for outcome in outcomes {
        let (p, rendered) = match outcome {
            Ok(x) => x,
            Err(s) => {
                skipped.push(s);
                continue;
            }
        };
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
        match rendered {
            None => {}
            Some(Ok(units)) => pods.push(CompiledPod { plan: p, units }),
            Some(Err(e)) => diags.push(Diagnostic::error(&p.file, at, "", e)),
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
