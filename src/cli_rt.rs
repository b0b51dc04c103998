//! The runtime half of the CLI: apply, diff, get, describe, delete, logs,
//! exec, and the hidden helpers units call (hook, rootfs).

use super::{make_target, print_diags, read_inputs, usage, Format, Inputs, TargetArgs};
use podc::activate::{self, Options};
use podc::install::{self, DesiredPod, Installed, Paths};
use podc::observe::{self, PodStatus, State};
use podc::plan::NoImages;
use podc::systemd::{self, Systemd};
use podc::term::{json_safe, safe, safe_lines};
use podc::{pipeline, render};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

const EXIT_FAILED: u8 = 1;

#[derive(clap::Args)]
pub struct RuntimeArgs {
    /// systemd unit directory (default /etc/systemd/system, or
    /// /run/systemd/system with --runtime).
    #[arg(long, value_name = "DIR")]
    unit_dir: Option<PathBuf>,
    /// Install under /run/systemd/system, not enabled: gone after reboot.
    #[arg(long)]
    runtime: bool,
    /// The system bus socket systemd is reached through.
    #[arg(
        long,
        value_name = "PATH",
        env = "PODC_SYSTEM_BUS",
        default_value = systemd::SYSTEM_BUS_SOCKET
    )]
    bus: String,
}

impl RuntimeArgs {
    fn paths(&self, root: &Path) -> Paths {
        Paths::new(root, self.runtime, self.unit_dir.as_deref())
    }
    fn connect(&self) -> Result<Systemd, String> {
        Systemd::connect_system_bus(&self.bus)
            .map_err(|e| format!("connecting to systemd through {}: {e}", self.bus))
    }
}

#[derive(clap::Args)]
pub struct ApplyArgs {
    /// Manifests: files, directories or - (compiled in-process). Without
    /// -f, apply installs what `podc build` wrote to --build.
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    files: Vec<String>,
    /// The `podc build` output to install when no -f is given.
    #[arg(long, value_name = "DIR", default_value = "build")]
    build: PathBuf,
    /// Also stop and remove pods podc owns that are not in the input.
    #[arg(long)]
    prune: bool,
    /// Print what would be done; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// How long to wait for pods to be Running (e.g. 120s, 2m).
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    rt: RuntimeArgs,
    #[command(flatten)]
    target: TargetArgs,
}

#[derive(clap::Args)]
pub struct DiffArgs {
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    files: Vec<String>,
    #[arg(long, value_name = "DIR", default_value = "build")]
    build: PathBuf,
    /// Include the removal of owned pods missing from the input.
    #[arg(long)]
    prune: bool,
    #[command(flatten)]
    rt: RuntimeArgs,
    #[command(flatten)]
    target: TargetArgs,
}

#[derive(Clone, Copy, clap::ValueEnum, PartialEq)]
pub enum GetFormat {
    Wide,
    Json,
    Yaml,
}

#[derive(clap::Args)]
pub struct GetArgs {
    /// Resource type: pods (po, pod).
    kind: String,
    /// Only this pod.
    name: Option<String>,
    #[arg(short = 'o', long = "output", value_enum)]
    output: Option<GetFormat>,
    /// Namespace (default: default).
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Pods of every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    #[command(flatten)]
    rt: RuntimeArgs,
}

#[derive(clap::Args)]
pub struct DescribeArgs {
    kind: String,
    name: String,
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    #[command(flatten)]
    rt: RuntimeArgs,
}

#[derive(clap::Args)]
pub struct DeleteArgs {
    /// Pod names (NAME or NS/NAME; an optional leading `pod`/`pods`).
    names: Vec<String>,
    /// Delete the pods of these manifests.
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    files: Vec<String>,
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    rt: RuntimeArgs,
    #[command(flatten)]
    target: TargetArgs,
}

#[derive(clap::Args)]
pub struct LogsArgs {
    name: String,
    #[arg(short = 'c', long)]
    container: Option<String>,
    #[arg(short = 'f', long)]
    follow: bool,
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    #[command(flatten)]
    rt: RuntimeArgs,
}

#[derive(clap::Args)]
pub struct ExecArgs {
    name: String,
    #[arg(short = 'c', long)]
    container: Option<String>,
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
    #[command(flatten)]
    rt: RuntimeArgs,
}

#[derive(clap::Subcommand)]
pub enum HookCommand {
    /// HTTP GET in the pod's network namespace; success on 2xx/3xx.
    HttpGet {
        #[arg(long)]
        netns: Option<String>,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        #[arg(long)]
        port: u16,
        #[arg(long, default_value = "/")]
        path: String,
        #[arg(long, default_value = "http")]
        scheme: String,
        #[arg(long = "header")]
        headers: Vec<String>,
    },
    /// TCP connect in the pod's network namespace.
    TcpSocket {
        #[arg(long)]
        netns: Option<String>,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        #[arg(long)]
        port: u16,
    },
    /// Sleep N seconds.
    Sleep { seconds: u64 },
}

#[derive(clap::Subcommand)]
pub enum RootfsCommand {
    /// Lay out the roots of a pod's containers for the joiner, which mounts
    /// each in the container's own mount namespace: a fresh writable layer
    /// and links to the image's layers. `--dir DIR --image IMAGE`, repeated
    /// in pairs (one exec of podc for the whole pod; the infra unit's
    /// `ExecStartPre=`).
    Prepare {
        #[arg(long, required = true)]
        dir: Vec<PathBuf>,
        #[arg(long, required = true)]
        image: Vec<String>,
    },
    /// Mount the roots on the host (units of older podc versions, and by
    /// hand for inspection) of a pod's containers: `--dir DIR --image IMAGE`,
    /// repeated in pairs (one exec of podc for the whole pod).
    Mount {
        #[arg(long, required = true)]
        dir: Vec<PathBuf>,
        #[arg(long, required = true)]
        image: Vec<String>,
        /// Accepted for units of older podc versions; not used.
        #[arg(long)]
        digest: Vec<String>,
    },
    Umount {
        #[arg(long, required = true)]
        dir: Vec<PathBuf>,
    },
}

/// `120s`, `2m`, `1h`, `500ms`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration like 120s or 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// The desired pods: compiled from -f in-process, or read from a build dir.
fn desired(
    root: &Path,
    files: &[String],
    build: &Path,
    target_args: &TargetArgs,
    pull: bool,
) -> Result<Vec<DesiredPod>, ExitCode> {
    if files.is_empty() {
        let (pods, t) = install::from_build_dir(build).map_err(|e| usage(&e))?;
        if Path::new(&t.state_dir) != root {
            return Err(usage(&format!(
                "{} was built for the state directory {}, not {}: rebuild, or apply with --root {}",
                build.display(),
                t.state_dir,
                root.display(),
                t.state_dir
            )));
        }
        return Ok(pods);
    }
    let inputs = Inputs {
        paths: files.to_vec(),
    };
    let (sources, undecodable) = read_inputs(&inputs).map_err(|e| usage(&e))?;
    let mut target = make_target(target_args).map_err(|e| usage(&e))?;
    target.state_dir = root.display().to_string();
    let templates = render::environment(target_args.templates.as_deref()).map_err(|e| usage(&e))?;
    // imagePullPolicy is decided here, before anything is written: Always
    // pulls, IfNotPresent pulls when missing, Never fails when missing.
    // The units are then compiled against what the store holds.
    let (validated, check_diags) = pipeline::check(&sources);
    if pull && !check_diags.iter().any(|d| d.is_error()) {
        ensure_images(root, &validated)?;
    }
    // Image configs (ENTRYPOINT, CMD, ENV, ...) from the local store when
    // there is one, as `podc build` does.
    let store = root
        .join("images/index.json")
        .exists()
        .then(|| podc::image::Store::open(root).ok())
        .flatten();
    let images: &dyn podc::plan::Images = match &store {
        Some(s) => s,
        None => &NoImages,
    };
    match pipeline::compile_checked(validated, check_diags, &target, images, &templates) {
        Err(mut diags) => {
            diags.extend(undecodable);
            print_diags(&diags, &sources, Format::Text);
            Err(ExitCode::from(super::EXIT_INVALID))
        }
        Ok(_) if !undecodable.is_empty() => {
            print_diags(&undecodable, &sources, Format::Text);
            Err(ExitCode::from(super::EXIT_INVALID))
        }
        Ok(c) => {
            print_diags(&c.warnings, &sources, Format::Text);
            for s in &c.skipped {
                eprintln!(
                    "skipped pod {}/{} ({}): {}",
                    s.namespace, s.name, s.file, s.reason
                );
            }
            Ok(install::from_compiled(&c))
        }
    }
}

/// Pull or check every container image of the validated pods per its
/// `imagePullPolicy`. Every failure is reported, then apply stops.
fn ensure_images(root: &Path, validated: &podc::validate::Validated) -> Result<(), ExitCode> {
    let mut wanted: Vec<(String, podc::model::PullPolicy, String)> = Vec::new();
    for vp in &validated.pods {
        let spec = &vp.pod.spec;
        for c in spec.init_containers.iter().chain(&spec.containers) {
            let policy = c
                .image_pull_policy
                .unwrap_or_else(|| podc::validate::default_pull_policy(&c.image));
            if !wanted.iter().any(|(i, p, _)| *i == c.image && *p == policy) {
                let who = format!(
                    "pod {}/{} container {}",
                    vp.namespace, vp.pod.metadata.name, c.name
                );
                wanted.push((c.image.clone(), policy, who));
            }
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let store = podc::image::Store::open(root).map_err(|e| usage(&format!("{e:#}")))?;
    let mut failed = false;
    for (image, policy, who) in wanted {
        let policy = match policy {
            podc::model::PullPolicy::Always => podc::image::PullPolicy::Always,
            podc::model::PullPolicy::IfNotPresent => podc::image::PullPolicy::IfNotPresent,
            podc::model::PullPolicy::Never => podc::image::PullPolicy::Never,
        };
        if let Err(e) = store.ensure_image(&image, policy, &podc::image::PullOptions::default()) {
            eprintln!(
                "podc: {who}: image {image}: {}",
                safe_lines(&format!("{e:#}"))
            );
            failed = true;
        }
    }
    if failed {
        eprintln!("podc: nothing was changed");
        return Err(ExitCode::from(super::EXIT_INVALID));
    }
    Ok(())
}

pub fn apply(root: &Path, mut a: ApplyArgs) -> ExitCode {
    let sd = (!a.dry_run).then(|| a.rt.connect());
    // Compile for the systemd that runs the pods, as its manager says.
    if a.target.systemd_version.is_none() {
        a.target.systemd_version = sd
            .as_ref()
            .and_then(|s| s.as_ref().ok())
            .and_then(|s| s.manager_version().ok().flatten());
    }
    // --dry-run touches nothing, the image store included. Manifest errors
    // are reported even when systemd cannot be reached.
    let pods = match desired(root, &a.files, &a.build, &a.target, !a.dry_run) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let sd = match sd.transpose() {
        Ok(s) => s,
        Err(e) => return usage(&e),
    };
    let paths = a.rt.paths(root);
    let opts = Options {
        timeout: a.timeout,
        prune: a.prune,
        dry_run: a.dry_run,
    };
    let mut out = std::io::stdout().lock();
    match activate::apply(sd.as_ref(), &paths, &pods, &opts, &mut out) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(EXIT_FAILED),
        Err(e) => {
            let _ = out.flush();
            eprintln!("podc apply: {e}");
            ExitCode::from(3)
        }
    }
}

pub fn diff(root: &Path, a: DiffArgs) -> ExitCode {
    let pods = match desired(root, &a.files, &a.build, &a.target, false) {
        Ok(p) => p,
        Err(_) => return ExitCode::from(2),
    };
    let paths = a.rt.paths(root);
    let installed = match Installed::load(&paths) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("podc diff: {e}");
            return ExitCode::from(2);
        }
    };
    let (text, differs) = activate::diff(&paths, &pods, &installed, a.prune);
    print!("{text}");
    ExitCode::from(differs as u8)
}

fn installed_or_exit(paths: &Paths) -> Result<Installed, ExitCode> {
    Installed::load(paths).map_err(|e| usage(&e))
}

fn check_kind(kind: &str) -> Result<(), ExitCode> {
    match kind {
        "pod" | "pods" | "po" => Ok(()),
        other => Err(usage(&format!(
            "unknown resource type {other:?}: podc knows pods"
        ))),
    }
}

pub fn get(root: &Path, a: GetArgs) -> ExitCode {
    if let Err(c) = check_kind(&a.kind) {
        return c;
    }
    let paths = a.rt.paths(root);
    let installed = match installed_or_exit(&paths) {
        Ok(i) => i,
        Err(c) => return c,
    };
    let sd = match a.rt.connect() {
        Ok(s) => s,
        Err(e) => return usage(&e),
    };
    let mut statuses: Vec<PodStatus> = Vec::new();
    let mut pods: Vec<_> = installed
        .pods
        .values()
        .filter(|p| a.all_namespaces || p.namespace == a.namespace)
        .filter(|p| a.name.as_ref().is_none_or(|n| &p.name == n))
        .collect();
    pods.sort_by(|x, y| (&x.namespace, &x.name).cmp(&(&y.namespace, &y.name)));
    if let Some(n) = &a.name {
        if pods.is_empty() {
            eprintln!("Error from podc: pods \"{n}\" not found");
            return ExitCode::from(EXIT_FAILED);
        }
    }
    for p in &pods {
        match observe::observe(&sd, p) {
            Ok(s) => statuses.push(s),
            Err(e) => {
                eprintln!("podc get: {}: {e}", p.key());
                return ExitCode::from(EXIT_FAILED);
            }
        }
    }
    let now = observe::now_us();
    match a.output {
        Some(GetFormat::Json) | Some(GetFormat::Yaml) => {
            let v = if a.name.is_some() {
                observe::pod_json(&statuses[0])
            } else {
                serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "List",
                    "items": statuses.iter().map(observe::pod_json).collect::<Vec<_>>(),
                })
            };
            // Reasons and messages can quote the image (its user, ...).
            if a.output == Some(GetFormat::Json) {
                let text = serde_json::to_string_pretty(&v).unwrap_or_default();
                println!("{}", json_safe(&text));
            } else {
                print!("{}", json_safe(&observe::to_yaml(&v)));
            }
        }
        fmt => {
            if statuses.is_empty() {
                eprintln!("No resources found in {} namespace.", a.namespace);
                return ExitCode::SUCCESS;
            }
            let wide = fmt == Some(GetFormat::Wide);
            let mut rows = vec![];
            let mut head = vec![];
            if a.all_namespaces {
                head.push("NAMESPACE".to_string());
            }
            head.extend(["NAME", "READY", "STATUS", "RESTARTS", "AGE"].map(String::from));
            if wide {
                head.extend(["TARGET", "INFRA"].map(String::from));
            }
            rows.push(head);
            for (s, p) in statuses.iter().zip(&pods) {
                let mut r = vec![];
                if a.all_namespaces {
                    r.push(s.namespace.clone());
                }
                r.extend([
                    s.name.clone(),
                    s.ready_column(),
                    s.status_column(),
                    s.restarts().to_string(),
                    observe::age(s.start_us, now),
                ]);
                if wide {
                    r.extend([p.target.clone(), s.infra_state.clone()]);
                }
                rows.push(r);
            }
            print_table(&rows);
        }
    }
    ExitCode::SUCCESS
}

/// Prints `rows` as aligned columns; every cell made terminal-safe (a
/// status can quote the image).
fn print_table(rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| safe(c).into_owned()).collect())
        .collect();
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == r.len() {
                    c.clone()
                } else {
                    format!("{c:<w$}", w = widths[i] + 3)
                }
            })
            .collect();
        println!("{}", line.join(""));
    }
}

fn describe_container(c: &observe::ContainerStatus, now: u64) {
    println!("  {}:", c.name);
    println!(
        "    Unit:           {} ({}/{})",
        c.unit, c.active_state, c.sub_state
    );
    let show = |label: &str, s: &State| match s {
        State::Waiting { reason } => {
            println!("    {label:<15} Waiting");
            println!("      Reason:       {}", safe(reason));
        }
        State::Running { started_us } => {
            println!("    {label:<15} Running");
            println!(
                "      Started:      {} ({} ago)",
                observe::rfc3339(*started_us),
                observe::age(*started_us, now)
            );
        }
        State::Terminated {
            reason,
            exit_code,
            started_us,
            finished_us,
        } => {
            println!("    {label:<15} Terminated");
            println!("      Reason:       {}", safe(reason));
            println!("      Exit Code:    {exit_code}");
            println!("      Started:      {}", observe::rfc3339(*started_us));
            println!("      Finished:     {}", observe::rfc3339(*finished_us));
        }
    };
    show("State:", &c.state);
    if let Some(m) = &c.message {
        println!("      Message:      {}", safe(m));
    }
    if let Some(l) = &c.last {
        show("Last State:", l);
    }
    println!(
        "    Ready:          {}",
        if c.ready { "True" } else { "False" }
    );
    println!("    Restart Count:  {}", c.restart_count);
    if c.main_pid != 0 {
        println!("    Main PID:       {}", c.main_pid);
    }
    if !c.result.is_empty() {
        println!("    systemd Result: {}", c.result);
    }
}

pub fn describe(root: &Path, a: DescribeArgs) -> ExitCode {
    if let Err(c) = check_kind(&a.kind) {
        return c;
    }
    let paths = a.rt.paths(root);
    let installed = match installed_or_exit(&paths) {
        Ok(i) => i,
        Err(c) => return c,
    };
    let Some(p) = installed.find(&a.name, &a.namespace) else {
        eprintln!("Error from podc: pods \"{}\" not found", a.name);
        return ExitCode::from(EXIT_FAILED);
    };
    let sd = match a.rt.connect() {
        Ok(s) => s,
        Err(e) => return usage(&e),
    };
    let s = match observe::observe(&sd, p) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("podc describe: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let now = observe::now_us();
    println!("Name:         {}", s.name);
    println!("Namespace:    {}", s.namespace);
    println!("Manifest:     {}", p.file);
    println!(
        "Start Time:   {}",
        if s.start_us == 0 {
            "<none>".into()
        } else {
            observe::rfc3339(s.start_us)
        }
    );
    println!("Status:       {} ({})", s.phase, s.status_column());
    println!("IP:           {}", s.pod_ip.as_deref().unwrap_or("<none>"));
    println!("Target:       {}", p.target);
    println!("Slice:        {}   (systemctl status {})", p.slice, p.slice);
    println!("Infra:        {} ({})", p.infra(), s.infra_state);
    if !s.init_containers.is_empty() {
        println!("Init Containers:");
        for c in &s.init_containers {
            describe_container(c, now);
        }
    }
    println!("Containers:");
    for c in &s.containers {
        describe_container(c, now);
    }
    println!("Conditions:");
    println!("  Type              Status");
    for (t, ok) in [
        ("PodScheduled", true),
        ("Initialized", s.initialized),
        ("ContainersReady", s.containers_ready),
        ("Ready", s.ready()),
    ] {
        println!("  {t:<17} {}", if ok { "True" } else { "False" });
    }
    println!("Journal (last 20 lines of the pod's units):");
    let mut cmd = std::process::Command::new("journalctl");
    cmd.args(["--no-pager", "-n", "20", "-o", "short-iso"]);
    cmd.args(["-u", &p.infra()]);
    for c in &p.containers {
        cmd.args(["-u", &c.unit]);
    }
    if let Ok(o) = cmd.output() {
        for l in String::from_utf8_lossy(&o.stdout).lines() {
            println!("  {}", safe(l));
        }
    }
    ExitCode::SUCCESS
}

pub fn delete(root: &Path, a: DeleteArgs) -> ExitCode {
    let paths = a.rt.paths(root);
    let mut keys: Vec<String> = Vec::new();
    let mut names = a.names.clone();
    if names
        .first()
        .is_some_and(|n| n == "pod" || n == "pods" || n == "po")
    {
        names.remove(0);
    }
    for n in names {
        let n = n.strip_prefix("pod/").unwrap_or(&n).to_string();
        keys.push(if n.contains('/') {
            n
        } else {
            format!("{}/{n}", a.namespace)
        });
    }
    if !a.files.is_empty() {
        match desired(root, &a.files, Path::new("build"), &a.target, false) {
            Ok(pods) => keys.extend(pods.iter().map(|p| p.key())),
            Err(c) => return c,
        }
    }
    if keys.is_empty() {
        return usage("delete: give pod names or -f FILES");
    }
    let sd = match a.rt.connect() {
        Ok(s) => s,
        Err(e) => return usage(&e),
    };
    let mut out = std::io::stdout().lock();
    match activate::delete(&sd, &paths, &keys, a.timeout, &mut out) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(EXIT_FAILED),
        Err(e) => {
            eprintln!("podc delete: {e}");
            ExitCode::from(3)
        }
    }
}

/// The unit of a pod's container: `-c`, else the only/first app container.
fn container_unit(
    installed: &Installed,
    name: &str,
    ns: &str,
    container: Option<&str>,
) -> Result<(String, String), String> {
    let p = installed
        .find(name, ns)
        .ok_or_else(|| format!("pods \"{name}\" not found"))?;
    let c = match container {
        Some(c) => p.containers.iter().find(|x| x.name == c).ok_or_else(|| {
            format!(
                "container {c} is not valid for pod {name}: choose one of [{}]",
                p.containers
                    .iter()
                    .map(|x| x.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        })?,
        None => {
            let apps: Vec<_> = p.containers.iter().filter(|c| c.role == "app").collect();
            let c = apps
                .first()
                .or(p.containers.first().as_ref())
                .copied()
                .ok_or("pod has no containers")?;
            if p.containers.len() > 1 {
                eprintln!(
                    "Defaulted container \"{}\" out of: {}",
                    c.name,
                    p.containers
                        .iter()
                        .map(|x| x.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            c
        }
    };
    Ok((c.name.clone(), c.unit.clone()))
}

pub fn logs(root: &Path, a: LogsArgs) -> ExitCode {
    let paths = a.rt.paths(root);
    let installed = match installed_or_exit(&paths) {
        Ok(i) => i,
        Err(c) => return c,
    };
    let (_, unit) = match container_unit(&installed, &a.name, &a.namespace, a.container.as_deref())
    {
        Ok(u) => u,
        Err(e) => {
            eprintln!("Error from podc: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let mut cmd = std::process::Command::new("journalctl");
    cmd.args(["--no-pager", "-o", "cat", "-u", &unit]);
    if a.follow {
        cmd.arg("-f");
    }
    let e = cmd.exec();
    usage(&format!("journalctl: {e}"))
}

/// Run a command in a running container as `kubectl exec` does: through
/// the container unit's own joiner, as the container (see [`podc::exec`]).
/// Never a program found through a search path: the host's `nsenter`,
/// looked up with the container's PATH, was one an image could plant.
pub fn exec(root: &Path, a: ExecArgs) -> ExitCode {
    let paths = a.rt.paths(root);
    let installed = match installed_or_exit(&paths) {
        Ok(i) => i,
        Err(c) => return c,
    };
    let (cname, unit) =
        match container_unit(&installed, &a.name, &a.namespace, a.container.as_deref()) {
            Ok(u) => u,
            Err(e) => {
                eprintln!("Error from podc: {e}");
                return ExitCode::from(EXIT_FAILED);
            }
        };
    let sd = match a.rt.connect() {
        Ok(s) => s,
        Err(e) => return usage(&e),
    };
    let pid = match observe::read_unit(&sd, &unit) {
        Ok(Some(st)) => st.service.map(|s| s.main_pid).unwrap_or(0),
        _ => 0,
    };
    if pid == 0 {
        eprintln!("error: container {cname} of pod {} is not running", a.name);
        return ExitCode::from(EXIT_FAILED);
    }
    match exec_in_unit(&sd, &unit, pid, &a.command) {
        Ok(never) => match never {},
        Err(e) => {
            eprintln!(
                "Error from podc: exec in container {cname} of pod {}: {e}",
                a.name
            );
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Replace this process with the container unit's joiner running
/// `command` as the container (see [`podc::exec`]): into the unit's cgroup
/// first (so its device policy and limits apply, and the joiner finds
/// the container process in its own cgroup), the joiner's options and
/// path from the unit as systemd holds it, an empty environment, and the
/// main process's environment as data for the command (`--environ-fd`).
fn exec_in_unit(
    sd: &Systemd,
    unit: &str,
    pid: u32,
    command: &[String],
) -> Result<std::convert::Infallible, String> {
    let path = sd
        .get_unit(unit)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("unit {unit} is not loaded"))?;
    let (program, argv) = sd
        .exec_start(path.as_str())
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("unit {unit} has no ExecStart="))?;
    if !program.starts_with('/') {
        return Err(format!("ExecStart= of {unit} is not an absolute path"));
    }
    let nnp = sd
        .no_new_privileges(path.as_str())
        .map_err(|e| e.to_string())?;
    // Data for the command only: never looked at here or by the joiner.
    let environ = std::fs::read(format!("/proc/{pid}/environ"))
        .map_err(|e| format!("environment of process {pid}: {e}"))?;
    let fd = environ_fd(&environ).map_err(|e| format!("environment: {e}"))?;
    let args = podc::exec::joiner_args(&argv, pid, nnp, fd, command)?;
    let cg = sd.control_group(path.as_str()).map_err(|e| e.to_string())?;
    podc::exec::join_unit_cgroup(&cg, pid)
        .map_err(|e| format!("joining the cgroup of {unit}: {e}"))?;
    let e = std::process::Command::new(&program)
        .arg("join")
        .args(&args)
        .env_clear()
        .exec();
    Err(format!("{program}: {e}"))
}

/// An inheritable descriptor (above 2) of an anonymous file holding `data`,
/// read from its start.
fn environ_fd(data: &[u8]) -> std::io::Result<i32> {
    use std::io::{Seek, Write as _};
    use std::os::fd::IntoRawFd;
    let fd = rustix::fs::memfd_create("podc-exec-environ", rustix::fs::MemfdFlags::empty())?;
    let mut f = std::fs::File::from(fd);
    f.write_all(data)?;
    f.rewind()?;
    let raw = f.into_raw_fd();
    if raw > 2 {
        return Ok(raw);
    }
    // A caller started with stdin/stdout/stderr closed: move it above 2.
    // SAFETY: fcntl(F_DUPFD) on a descriptor we own; the copy is ours too.
    let moved = unsafe { nix::libc::fcntl(raw, nix::libc::F_DUPFD, 3) };
    if moved < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(moved)
}

pub fn hook(h: HookCommand) -> ExitCode {
    let r = match h {
        HookCommand::Sleep { seconds } => {
            std::thread::sleep(Duration::from_secs(seconds));
            Ok(())
        }
        HookCommand::TcpSocket { netns, host, port } => netns
            .as_deref()
            .map_or(Ok(()), podc::hook::enter_netns)
            .and_then(|_| podc::hook::tcp_socket(&host, port)),
        HookCommand::HttpGet {
            netns,
            host,
            port,
            path,
            scheme,
            headers,
        } => {
            let hs: Result<Vec<_>, _> = headers
                .iter()
                .map(|h| podc::hook::parse_header(h))
                .collect();
            match hs {
                Err(e) => return usage(&e),
                Ok(hs) => netns
                    .as_deref()
                    .map_or(Ok(()), podc::hook::enter_netns)
                    .and_then(|_| podc::hook::http_get(&scheme, &host, port, &path, &hs))
                    .map(|_| ()),
            }
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("podc hook: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

pub fn rootfs(root: &Path, r: RootfsCommand) -> ExitCode {
    let res = match r {
        RootfsCommand::Mount { dir, image, .. } | RootfsCommand::Prepare { dir, image }
            if dir.len() != image.len() =>
        {
            Err("give --dir and --image in pairs".to_string())
        }
        RootfsCommand::Prepare { dir, image } => {
            let all: Vec<(PathBuf, String)> = dir.into_iter().zip(image).collect();
            podc::rootfs::prepare_all(&all, root)
        }
        RootfsCommand::Mount { dir, image, .. } => {
            let all: Vec<(PathBuf, String)> = dir.into_iter().zip(image).collect();
            podc::rootfs::mount_all(&all, root)
        }
        // Every one, even after a failure.
        RootfsCommand::Umount { dir } => {
            let errs: Vec<String> = dir
                .iter()
                .filter_map(|d| podc::rootfs::umount(d).err())
                .collect();
            if errs.is_empty() {
                Ok(())
            } else {
                Err(errs.join("; "))
            }
        }
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("podc rootfs: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("120s"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("5y").is_err());
    }
}
