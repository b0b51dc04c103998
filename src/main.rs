//! The `podc` command line: a thin shell over the pure core.

use clap::{Parser, Subcommand, ValueEnum};
use podc::diagnostic::Diagnostic;
use podc::load::{self, Source};
use podc::plan::{Cgroup, NoImages, Target};
use podc::{output, pipeline, render, schema};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Compile Kubernetes Pod manifests into systemd units and run them.
#[derive(Parser)]
#[command(name = "podc", version, about)]
struct Cli {
    /// State directory (image store, pod data, inventory).
    #[arg(
        long,
        global = true,
        env = "PODC_ROOT",
        default_value = "/var/lib/podc"
    )]
    root: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate manifests and compile every pod into systemd units.
    Build(BuildArgs),
    /// Validate manifests and print diagnostics; write nothing.
    Validate(ValidateArgs),
    /// Print the JSON schema podc validates manifests against.
    Schema,
    /// Install pods as systemd units and start them (from build/ or -f).
    Apply(cli_rt::ApplyArgs),
    /// Show the unit-level diff apply would make: exit 0 same, 1 differs.
    Diff(cli_rt::DiffArgs),
    /// List pods and their status.
    Get(cli_rt::GetArgs),
    /// Show a pod in detail: phase, conditions, containers, journal.
    Describe(cli_rt::DescribeArgs),
    /// Stop pods gracefully and remove everything podc installed for them.
    Delete(cli_rt::DeleteArgs),
    /// Print a container's output (its journal).
    Logs(cli_rt::LogsArgs),
    /// Run a command inside a running container.
    Exec(cli_rt::ExecArgs),
    /// Lifecycle hook handlers run by container units.
    #[command(subcommand, hide = true)]
    Hook(cli_rt::HookCommand),
    /// Container root filesystems, run by container units.
    #[command(subcommand, hide = true)]
    Rootfs(cli_rt::RootfsCommand),
    /// Manage images: import, pull, ls, inspect, export, rm, prune.
    #[command(subcommand)]
    Image(podc::image::cli::ImageCommand),
    /// Prepare or undo a pod's volumes (run by the pod's infra unit).
    #[command(subcommand, hide = true)]
    Volumes(VolumesCommand),
}

#[derive(Subcommand)]
enum VolumesCommand {
    /// Create emptyDirs, mount tmpfs volumes, fill ConfigMap/Secret volumes,
    /// check hostPath types (infra unit ExecStartPre=).
    Setup(VolumesArgs),
    /// Unmount the pod's tmpfs volumes and remove its run dir (infra unit
    /// ExecStopPost=).
    Teardown(VolumesArgs),
}

#[derive(clap::Args)]
struct VolumesArgs {
    /// The pod's state directory (`data/volumes.json` inside).
    #[arg(long, value_name = "DIR")]
    state_dir: PathBuf,
    /// The pod's volume run directory (tmpfs volumes live below it).
    #[arg(long, value_name = "DIR")]
    run_dir: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
}

#[derive(clap::Args)]
pub(crate) struct Inputs {
    /// Files or directories (searched for *.yaml, *.yml, *.json), or - for stdin.
    #[arg(required = true)]
    pub(crate) paths: Vec<String>,
}

#[derive(clap::Args)]
struct ValidateArgs {
    #[command(flatten)]
    inputs: Inputs,
    /// Diagnostics as text (with source snippets) or as a JSON array.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    format: Format,
}

#[derive(clap::Args)]
struct BuildArgs {
    #[command(flatten)]
    inputs: Inputs,
    /// Output directory; replaced atomically.
    #[arg(short = 'o', long = "out", default_value = "build")]
    out: PathBuf,
    /// Diagnostics as text or JSON.
    #[arg(long = "diagnostics", value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    target: TargetArgs,
}

#[derive(clap::Args)]
pub(crate) struct TargetArgs {
    /// Override built-in templates with files of the same name from DIR.
    #[arg(long, value_name = "DIR")]
    templates: Option<PathBuf>,
    /// The systemd version to target (default: the host's, else 252).
    #[arg(long, value_name = "N")]
    systemd_version: Option<u32>,
    /// The cgroup version of the host the pods run on, 1 (v1 controllers,
    /// legacy or hybrid) or 2 (unified) (default: this host's).
    #[arg(long, value_name = "1|2", value_parser = clap::value_parser!(u8).range(1..=2))]
    cgroup: Option<u8>,
    /// This host's node name (default: its hostname).
    #[arg(long, value_name = "NAME")]
    node_name: Option<String>,
    /// An extra node label for nodeSelector, KEY=VALUE (repeatable).
    #[arg(long = "node-label", value_name = "KEY=VALUE")]
    node_labels: Vec<String>,
    /// Where podc's helper binaries are installed on the host.
    #[arg(long, value_name = "DIR", default_value = "/usr/lib/podc")]
    libexec_dir: String,
}

/// Exit codes: 0 OK, 1 invalid input, 2 usage error.
pub(crate) const EXIT_INVALID: u8 = 1;
pub(crate) const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    // Whatever umask the admin's shell has, nothing podc creates is group-
    // or world-writable (files that hold secrets are 0600 explicitly), and
    // processes `podc exec` starts get the umask container runtimes give.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    // A reader that goes away (`podc get | head`) ends podc quietly, as it
    // ends any Unix filter. Rust ignores SIGPIPE, so every print would
    // otherwise panic with "Broken pipe" and a backtrace.
    // SAFETY: no other thread exists yet, and SIG_DFL installs no handler.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        );
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Schema => {
            print!("{}", schema::render());
            ExitCode::SUCCESS
        }
        Command::Validate(a) => validate(a),
        Command::Build(a) => build(a, &cli.root),
        Command::Apply(a) => cli_rt::apply(&cli.root, a),
        Command::Diff(a) => cli_rt::diff(&cli.root, a),
        Command::Get(a) => cli_rt::get(&cli.root, a),
        Command::Describe(a) => cli_rt::describe(&cli.root, a),
        Command::Delete(a) => cli_rt::delete(&cli.root, a),
        Command::Logs(a) => cli_rt::logs(&cli.root, a),
        Command::Exec(a) => cli_rt::exec(&cli.root, a),
        Command::Hook(a) => cli_rt::hook(a),
        Command::Rootfs(a) => cli_rt::rootfs(&cli.root, a),
        Command::Image(cmd) => match podc::image::cli::run(cmd, &cli.root) {
            Ok(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
            Err(e) => {
                eprintln!("podc: {e:#}");
                ExitCode::from(EXIT_INVALID)
            }
        },
        Command::Volumes(cmd) => {
            let (what, r) = match cmd {
                VolumesCommand::Setup(a) => {
                    ("setup", podc::volumes::setup(&a.state_dir, &a.run_dir))
                }
                VolumesCommand::Teardown(a) => (
                    "teardown",
                    podc::volumes::teardown(&a.state_dir, &a.run_dir),
                ),
            };
            match r {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    for line in format!("{e:#}").lines() {
                        eprintln!("podc volumes {what}: {line}");
                    }
                    ExitCode::from(EXIT_INVALID)
                }
            }
        }
    }
}

mod cli_rt;

/// Read every input into sources; files that are not UTF-8 text become
/// diagnostics. Unreadable paths are usage errors.
pub(crate) fn read_inputs(inputs: &Inputs) -> Result<(Vec<Source>, Vec<Diagnostic>), String> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for p in &inputs.paths {
        if p == "-" {
            let mut buf = Vec::new();
            std::io::stdin()
                .take(load::MAX_FILE_BYTES as u64 + 1)
                .read_to_end(&mut buf)
                .map_err(|e| format!("reading stdin: {e}"))?;
            files.push(("<stdin>".into(), buf));
            continue;
        }
        let path = Path::new(p);
        let meta = std::fs::metadata(path).map_err(|e| format!("{p}: {e}"))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(path, &mut found).map_err(|e| format!("{p}: {e}"))?;
            found.sort();
            for f in found {
                let bytes = std::fs::read(&f).map_err(|e| format!("{}: {e}", f.display()))?;
                files.push((f.display().to_string(), bytes));
            }
        } else {
            let bytes = std::fs::read(path).map_err(|e| format!("{p}: {e}"))?;
            files.push((p.clone(), bytes));
        }
    }
    let mut sources = Vec::new();
    let mut diags = Vec::new();
    for (name, bytes) in files {
        match load::decode(&name, bytes) {
            Ok(s) => sources.push(s),
            Err(d) => diags.push(d),
        }
    }
    Ok((sources, diags))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let ty = entry.file_type()?;
        let path = entry.path();
        if ty.is_dir() {
            walk(&path, out)?;
        } else if ty.is_file()
            && path
                .extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        {
            out.push(path);
        }
    }
    Ok(())
}

pub(crate) fn print_diags(diags: &[Diagnostic], sources: &[Source], format: Format) {
    match format {
        Format::Json => {
            let text = serde_json::to_string_pretty(diags).unwrap_or_else(|_| "[]".into());
            println!("{}", podc::term::json_safe(&text));
        }
        Format::Text => {
            for d in diags {
                let src = sources
                    .iter()
                    .find(|s| s.name == d.file)
                    .map(|s| s.text.as_str());
                eprint!("{}", d.render(src));
            }
            let errors = diags.iter().filter(|d| d.is_error()).count();
            let warnings = diags.len() - errors;
            if errors + warnings > 0 {
                eprintln!("{errors} error(s), {warnings} warning(s)");
            }
        }
    }
}

fn validate(a: ValidateArgs) -> ExitCode {
    let (sources, mut all) = match read_inputs(&a.inputs) {
        Ok(s) => s,
        Err(e) => return usage(&e),
    };
    let (_, diags) = pipeline::check(&sources);
    all.extend(diags);
    print_diags(&all, &sources, a.format);
    if all.iter().any(Diagnostic::is_error) {
        ExitCode::from(EXIT_INVALID)
    } else {
        ExitCode::SUCCESS
    }
}

pub(crate) fn usage(msg: &str) -> ExitCode {
    eprintln!("podc: {msg}");
    ExitCode::from(EXIT_USAGE)
}

/// The host's systemd version from `systemctl --version`, if it answers.
fn host_systemd_version() -> Option<u32> {
    let out = std::process::Command::new("systemctl")
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    podc::systemd::parse_version(text.split_whitespace().nth(1)?)
}

/// This host's cgroup version: the unified hierarchy when
/// `/sys/fs/cgroup` is a cgroup2 mount (it has `cgroup.controllers`), v1
/// when it holds v1 hierarchies (legacy or hybrid), else v2 (what systemd
/// 256+ requires).
fn host_cgroup() -> Cgroup {
    let root = Path::new("/sys/fs/cgroup");
    if !root.join("cgroup.controllers").exists()
        && ["memory", "cpu", "pids"]
            .iter()
            .any(|h| root.join(h).join("cgroup.procs").exists())
    {
        Cgroup::V1
    } else {
        Cgroup::V2
    }
}

pub(crate) fn make_target(a: &TargetArgs) -> Result<Target, String> {
    let version = a
        .systemd_version
        .or_else(host_systemd_version)
        .unwrap_or(252);
    let node = match &a.node_name {
        Some(n) => n.clone(),
        None => nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into()),
    };
    let mut t = Target::new(version, &node);
    let mut labels = BTreeMap::new();
    for l in &a.node_labels {
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| format!("--node-label {l}: expected KEY=VALUE"))?;
        labels.insert(k.to_string(), v.to_string());
    }
    t.node_labels.extend(labels);
    t.libexec_dir = a.libexec_dir.clone();
    t.cgroup = match a.cgroup {
        Some(1) => Cgroup::V1,
        Some(_) => Cgroup::V2,
        None => host_cgroup(),
    };
    Ok(t)
}

fn build(a: BuildArgs, root: &Path) -> ExitCode {
    let (sources, undecodable) = match read_inputs(&a.inputs) {
        Ok(s) => s,
        Err(e) => return usage(&e),
    };
    let target = match make_target(&a.target) {
        Ok(t) => t,
        Err(e) => return usage(&e),
    };
    let templates = match render::environment(a.target.templates.as_deref()) {
        Ok(t) => t,
        Err(e) => return usage(&e),
    };
    // Image configs come from the local store when there is one; building
    // never creates a store or pulls (that is `podc apply`'s job).
    let store = root
        .join("images/index.json")
        .exists()
        .then(|| podc::image::Store::open(root).ok())
        .flatten();
    let images: &dyn podc::plan::Images = match &store {
        Some(s) => s,
        None => &NoImages,
    };
    match pipeline::compile(&sources, &target, images, &templates) {
        Err(mut diags) => {
            diags.extend(undecodable);
            print_diags(&diags, &sources, a.format);
            ExitCode::from(EXIT_INVALID)
        }
        Ok(_) if !undecodable.is_empty() => {
            print_diags(&undecodable, &sources, a.format);
            ExitCode::from(EXIT_INVALID)
        }
        Ok(compiled) => {
            print_diags(&compiled.warnings, &sources, a.format);
            if let Err(e) = output::write_build(&a.out, &compiled, &target) {
                eprintln!("podc: writing {}: {e}", a.out.display());
                return ExitCode::from(EXIT_INVALID);
            }
            for s in &compiled.skipped {
                eprintln!(
                    "skipped pod {}/{} ({}): {}",
                    s.namespace, s.name, s.file, s.reason
                );
            }
            for p in &compiled.pods {
                println!(
                    "pod {}/{}: {} units → {}",
                    p.plan.namespace,
                    p.plan.name,
                    p.units.len(),
                    a.out.join("units").display()
                );
            }
            // The process ends here: freeing every unit and document one by
            // one would cost more than a second for 10,000 pods.
            std::mem::forget(compiled);
            std::mem::forget(sources);
            ExitCode::SUCCESS
        }
    }
}
