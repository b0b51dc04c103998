//! Stage 3, plan: validated pods + a target → the unit model.
//!
//! The plan decides *what* systemd must do for each pod (which units, in
//! which order, with which namespaces, mounts, environment and limits);
//! [`crate::render`] only decides how that is spelled in unit-file syntax.
//! Values here are raw (unescaped) strings: escaping happens once, in the
//! renderer's filters.
//!
//! Naming (documented in the README):
//! * `podc-<ns>_<pod>.slice` (with `-` escaped as `\x2d`, as systemd-escape
//!   does, because `-` means nesting in slice names);
//! * `podc_<ns>_<pod>.target` — the pod: start/stop/enable it;
//! * `podc_<ns>_<pod>.service` — the infra unit holding the namespaces;
//! * `podc_<ns>_<pod>_<container>.service` — one per container.
//!
//! `_` cannot occur in Kubernetes names, so these names are unique per
//! namespace, pod and container.

use crate::argv::{Part, Word};
use crate::expand;
use crate::model::*;
use crate::quantity;
use crate::validate::{label_or_annotation_ref, ValidPod, Validated};
use serde::Serialize;
use std::collections::BTreeMap;

/// What podc compiles for: the host's systemd and its paths.
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    /// systemd version; decides native directives vs. fallbacks.
    pub systemd_version: u32,
    /// This host's node name (for `nodeName` and `spec.nodeName` refs).
    pub node_name: String,
    /// This host's labels (for `nodeSelector`).
    pub node_labels: BTreeMap<String, String>,
    /// Persistent state: `/var/lib/podc`.
    pub state_dir: String,
    /// Runtime state: `/run/podc`.
    pub run_dir: String,
    /// Where podc's helper binaries live (`podc`, `podc-pause`).
    pub libexec_dir: String,
    /// The host's cgroup hierarchy: decides how requests are converted
    /// and whether memory protection exists at all.
    pub cgroup: Cgroup,
}

/// Which cgroup hierarchy the host's controllers live on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Cgroup {
    /// cgroup v1 controllers (legacy or hybrid): no memory protection
    /// (`MemoryMin=` is v2-only); systemd turns `CPUWeight=` into
    /// `cpu.shares` as weight × 1024 / 100.
    V1,
    /// The unified hierarchy.
    V2,
}

impl Target {
    /// The default target for a host: systemd 252 paths and labels.
    pub fn new(systemd_version: u32, node_name: &str) -> Target {
        let mut node_labels = BTreeMap::new();
        node_labels.insert("kubernetes.io/hostname".into(), node_name.to_string());
        node_labels.insert("kubernetes.io/os".into(), "linux".into());
        node_labels.insert(
            "kubernetes.io/arch".into(),
            std::env::consts::ARCH
                .replace("x86_64", "amd64")
                .replace("aarch64", "arm64"),
        );
        Target {
            systemd_version,
            node_name: node_name.to_string(),
            node_labels,
            state_dir: "/var/lib/podc".into(),
            run_dir: "/run/podc".into(),
            libexec_dir: "/usr/lib/podc".into(),
            cgroup: Cgroup::V2,
        }
    }
}

/// What an image contributes to a container, when the image is known.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    /// `user` as numeric `uid[:gid]`, names looked up in the image's
    /// /etc/passwd and /etc/group; `Err` says what was not found.
    pub user_ids: Option<Result<String, String>>,
    pub stop_signal: Option<String>,
    /// The image's content digest, pinned in the unit so a new image means
    /// a changed unit.
    pub digest: Option<String>,
    /// The image's unpacked layer directories in the store, top first: the
    /// joiner mounts them under the container's fresh writable layer.
    pub layers: Vec<String>,
}

/// Looks up image configs (the image store implements this). Shared by
/// the threads that plan pods in parallel.
pub trait Images: Sync {
    fn config(&self, image: &str) -> Option<ImageConfig>;
}

/// No image store: commands must be explicit.
pub struct NoImages;
impl Images for NoImages {
    fn config(&self, _: &str) -> Option<ImageConfig> {
        None
    }
}

/// A pod's IP (`status.podIP`) when it has its own network namespace:
/// podc gives pods no network beyond loopback, so the address every
/// container of the pod can be reached at is 127.0.0.1. `podc get` reports
/// the same. (A `hostNetwork` pod's IP is the host's; `fieldRef:
/// status.podIP` is refused for it at build time.)
pub const POD_IP: &str = "127.0.0.1";

/// The default PATH container runtimes give an image without one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The capabilities a container gets by default (the set containerd and
/// Docker give), by Kubernetes name.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// One pod's units and data files.
#[derive(Clone, Debug, Serialize)]
pub struct PodPlan {
    pub namespace: String,
    pub name: String,
    /// `<ns>_<pod>`: the pod's directory name and unit-name stem.
    pub id: String,
    pub file: String,
    pub slice: String,
    pub target: String,
    pub units: Vec<UnitPlan>,
    /// Files podc writes for the pod (env files, ConfigMap/Secret data).
    pub files: Vec<DataFile>,
    /// Warnings and the fallbacks chosen for this target, for the user.
    pub notes: Vec<Note>,
    /// Problems that stop this pod from compiling (e.g. no command known).
    pub errors: Vec<Note>,
}

/// A located remark from the planner. Notes with the same `key` say the
/// same thing about different places; the CLI shows them once.
#[derive(Clone, Debug, Serialize)]
pub struct Note {
    pub key: String,
    pub pos: crate::diagnostic::Pos,
    pub path: String,
    pub message: String,
}

impl Note {
    fn at(
        vp: &ValidPod,
        pointer: &str,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Note {
        Note {
            key: key.into(),
            pos: vp.spans.value_pos(pointer),
            path: crate::load::pointer_to_path(pointer),
            message: message.into(),
        }
    }
}

/// One unit: its file name, the template that renders it, and the context.
#[derive(Clone, Debug, Serialize)]
pub struct UnitPlan {
    pub name: String,
    pub template: &'static str,
    pub ctx: serde_json::Value,
}

/// A file podc must install beside the units, relative to the pod's data
/// directory. `secret` files are written 0600 in 0700 directories.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DataFile {
    pub path: String,
    pub mode: u32,
    pub secret: bool,
    #[serde(skip)]
    pub content: Vec<u8>,
}

/// Context shared by every unit of a pod.
#[derive(Clone, Debug, Serialize)]
struct PodCtx {
    namespace: String,
    name: String,
    file: String,
    slice: String,
    target: String,
    infra: String,
    /// `/run/podc/pods/<id>`: owned by the infra process (namespaces,
    /// hosts, hostname, resolv.conf).
    run_dir: String,
    /// `/run/podc/volumes/<id>`: tmpfs-backed volumes (Memory emptyDirs,
    /// ConfigMap and Secret copies), set up by the infra unit.
    volumes_run_dir: String,
    /// `/var/lib/podc/pods/<id>`.
    state_dir: String,
    libexec_dir: String,
}

#[derive(Clone, Debug, Serialize)]
struct SliceCtx {
    pod: PodCtx,
    memory_max: Option<u64>,
    memory_min: Option<u64>,
    cpu_quota: Option<String>,
    cpu_weight: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
struct TargetCtx {
    pod: PodCtx,
    units: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
struct InfraCtx {
    pod: PodCtx,
    argv: Vec<String>,
    setup: Vec<Vec<String>>,
    teardown: Vec<Vec<String>>,
    grace: i64,
}

/// The link target an app container wants and starts after: ordered after
/// the previous app container, without ordering their stops.
#[derive(Clone, Debug, Serialize)]
struct LinkCtx {
    pod: PodCtx,
    container: String,
    after: String,
}

/// A lifecycle hook as systemd runs it, inside the container's sandbox.
#[derive(Clone, Debug, Serialize)]
struct HookCmd {
    argv: Vec<Word>,
}

#[derive(Clone, Debug, Serialize)]
struct ContainerCtx {
    pod: PodCtx,
    container: String,
    image: String,
    image_digest: Option<String>,
    /// `init`, `sidecar` or `app`.
    role: &'static str,
    after: Vec<String>,
    requires: Vec<String>,
    /// The link target that orders this app container's start.
    wants: Vec<String>,
    service_type: &'static str,
    restart: &'static str,
    restart_sec: u32,
    restart_steps: Option<u32>,
    restart_max_delay_sec: Option<u32>,
    start_limit_off: bool,
    remain_after_exit: bool,
    grace: i64,
    netns: Option<String>,
    /// Not privileged: no host devices.
    confined: bool,
    /// Why this container cannot be created (Kubernetes'
    /// CreateContainerConfigError), for observe.
    config_error: Option<String>,
    env: Vec<(String, String)>,
    env_file: Option<String>,
    no_new_privileges: bool,
    memory_max: Option<u64>,
    memory_min: Option<u64>,
    cpu_quota: Option<String>,
    cpu_weight: Option<u64>,
    /// `ExecStopPost=-`: records whether the kernel OOM-killed a process of
    /// the container (its exit status, which systemd keeps until the next
    /// start); systemd 252 does not detect OOM kills on cgroup v1.
    oom_check: Option<Vec<String>>,
    exec_start: Vec<Word>,
    /// Arguments of the infra unit's `podc rootfs prepare` that lays out
    /// this container's root file system (the joiner mounts it); not
    /// rendered here.
    #[serde(skip)]
    rootfs_prepare: Vec<String>,
    /// subPaths the volume setup must pin for this container.
    #[serde(skip)]
    sub_paths: Vec<SubPathPin>,
    post_start: Option<HookCmd>,
    pre_stop: Option<HookCmd>,
    stop_signal: Option<String>,
}

/// A pod skipped because it is not for this host.
#[derive(Clone, Debug)]
pub struct Skipped {
    pub namespace: String,
    pub name: String,
    pub file: String,
    pub reason: String,
}

/// Plan every pod. Pods whose `nodeName`/`nodeSelector` exclude this host
/// are skipped (Kubernetes would leave them Pending), with a reason.
pub fn plan(v: &Validated, target: &Target, images: &dyn Images) -> (Vec<PodPlan>, Vec<Skipped>) {
    let mut plans = Vec::new();
    let mut skipped = Vec::new();
    for vp in &v.pods {
        match plan_one(vp, v, target, images) {
            Ok(p) => plans.push(p),
            Err(s) => skipped.push(s),
        }
    }
    (plans, skipped)
}

/// Plan one pod (`v` supplies the ConfigMaps and Secrets it refers to), or
/// say why it is not for this host.
pub fn plan_one(
    vp: &ValidPod,
    v: &Validated,
    target: &Target,
    images: &dyn Images,
) -> Result<PodPlan, Skipped> {
    match scheduling_mismatch(&vp.pod.spec, target) {
        Some(reason) => Err(Skipped {
            namespace: vp.namespace.clone(),
            name: vp.pod.metadata.name.clone(),
            file: vp.file.clone(),
            reason,
        }),
        None => Ok(plan_pod(vp, v, target, images)),
    }
}

fn scheduling_mismatch(spec: &PodSpec, t: &Target) -> Option<String> {
    if let Some(n) = &spec.node_name {
        if *n != t.node_name {
            return Some(format!("nodeName is {n}, this host is {}", t.node_name));
        }
    }
    for (k, want) in &spec.node_selector {
        match t.node_labels.get(k) {
            Some(have) if have == want => {}
            Some(have) => {
                return Some(format!(
                    "nodeSelector {k}={want} does not match this host's {k}={have}"
                ))
            }
            None => {
                return Some(format!(
                    "nodeSelector {k}={want}: this host has no label {k}"
                ))
            }
        }
    }
    None
}

/// The unit-name stem of a pod.
pub fn pod_id(namespace: &str, name: &str) -> String {
    format!("{namespace}_{name}")
}

pub fn slice_name(id: &str) -> String {
    format!("podc-{}.slice", crate::escape::unit_name_escape(id))
}

pub fn target_name(id: &str) -> String {
    format!("podc_{id}.target")
}

pub fn infra_name(id: &str) -> String {
    format!("podc_{id}.service")
}

pub fn container_unit_name(id: &str, container: &str) -> String {
    format!("podc_{id}_{container}.service")
}

/// The link target that orders an app container's start after the
/// previous app container's (see `LinkCtx`).
pub fn link_target_name(id: &str, container: &str) -> String {
    format!("podc_{id}_{container}.target")
}

/// Kubernetes' `MilliCPUToShares`: the `cpu.shares` of a CPU request,
/// millicores × 1024 / 1000, between 2 and 262144.
pub fn cpu_shares(millis: u64) -> u64 {
    (millis.saturating_mul(1024) / 1000).clamp(2, 262_144)
}

/// Kubernetes' conversion of a CPU request to a cgroup v2 weight
/// (`CPUSharesToCPUWeight`): weight = 1 + (shares − 2) × 9999 / 262142.
pub fn cpu_weight(millis: u64) -> u64 {
    1 + ((cpu_shares(millis) - 2) * 9999) / 262_142
}

/// The `CPUWeight=` that gives Kubernetes' `cpu.shares` on cgroup v1.
/// systemd 252 applies a weight there as shares = weight × 1024 / 100, so
/// the weight is the shares × 100 / 1024, rounded (1 CPU → 100 → 1024
/// shares, 250m → 25 → 256, 100m → 10 → 102: exact for most requests,
/// within 5 shares otherwise). `CPUShares=` would be exact but is
/// deprecated in 252 and warned about on every load.
pub fn cpu_weight_v1(millis: u64) -> u64 {
    ((cpu_shares(millis) * 100 + 512) / 1024).clamp(1, 10_000)
}

/// The CPU weight for the target's cgroup version.
pub fn cpu_weight_for(cgroup: Cgroup, millis: u64) -> u64 {
    match cgroup {
        Cgroup::V1 => cpu_weight_v1(millis),
        Cgroup::V2 => cpu_weight(millis),
    }
}

/// Kubernetes' `MilliCPUToQuota` as the percentage of `CPUQuota=`: the
/// quota is millicores × 100 µs per 100 ms period, at least 1 ms; that is
/// millicores / 10 percent (systemd 252 takes decimals): 200m → `20`,
/// 205m → `20.5`, 1m → `1`.
pub fn cpu_quota(millis: u64) -> String {
    let m = millis.max(10);
    if m % 10 == 0 {
        format!("{}", m / 10)
    } else {
        format!("{}.{}", m / 10, m % 10)
    }
}

/// A pod's resource totals, as Kubernetes computes them for the pod's
/// cgroup (`PodLimits`/`PodRequests`): the sum over app containers and
/// sidecars, or the largest init container (plus the sidecars started
/// before it) when that is more. A limit total exists only when every
/// container declares that limit (`ResourceConfigForPod`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodTotals {
    pub memory_limit: Option<u64>,
    pub cpu_limit_millis: Option<u64>,
    pub memory_request: u64,
    pub cpu_request_millis: u64,
}

/// A container's limits and (defaulted) requests: memory bytes, CPU millis.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Amounts {
    mem_limit: Option<u64>,
    cpu_limit: Option<u64>,
    mem_request: Option<u64>,
    cpu_request: Option<u64>,
}

fn amounts(c: &Container) -> Amounts {
    let res = c.resources.clone().unwrap_or_default();
    let limits = res.limits.unwrap_or_default();
    let requests = res.requests.unwrap_or_default();
    let mem_limit = quantity_of(&limits.memory, true);
    let cpu_limit = quantity_of(&limits.cpu, false);
    // Kubernetes: a limit without a request makes the request equal to it.
    Amounts {
        mem_limit,
        cpu_limit,
        mem_request: quantity_of(&requests.memory, true).or(mem_limit),
        cpu_request: quantity_of(&requests.cpu, false).or(cpu_limit),
    }
}

pub fn pod_totals(spec: &PodSpec) -> PodTotals {
    // One resource at a time: (value, declared) per container, summed for
    // apps and sidecars, maxed over init containers.
    let total = |get: &dyn Fn(&Amounts) -> Option<u64>| -> (u64, bool) {
        let mut sum: u64 = 0;
        let mut declared = true;
        for c in &spec.containers {
            let v = get(&amounts(c));
            declared &= v.is_some_and(|v| v > 0);
            sum = sum.saturating_add(v.unwrap_or(0));
        }
        let mut sidecars: u64 = 0;
        let mut init_max: u64 = 0;
        for c in &spec.init_containers {
            let v = get(&amounts(c)).unwrap_or(0);
            let effective = if c.restart_policy.is_some() {
                sum = sum.saturating_add(v);
                sidecars = sidecars.saturating_add(v);
                sidecars
            } else {
                v.saturating_add(sidecars)
            };
            declared &= effective > 0;
            init_max = init_max.max(effective);
        }
        (sum.max(init_max), declared)
    };
    let (mem_limit, mem_declared) = total(&|a| a.mem_limit);
    let (cpu_limit, cpu_declared) = total(&|a| a.cpu_limit);
    PodTotals {
        memory_limit: mem_declared.then_some(mem_limit),
        cpu_limit_millis: cpu_declared.then_some(cpu_limit),
        memory_request: total(&|a| a.mem_request).0,
        cpu_request_millis: total(&|a| a.cpu_request).0,
    }
}

fn quantity_of(q: &Option<QuantityText>, memory: bool) -> Option<u64> {
    let q = quantity::parse(&q.as_ref()?.0).ok()?;
    if memory {
        q.to_bytes_ceil()
    } else {
        q.to_millis_ceil()
    }
}

fn plan_pod(vp: &ValidPod, v: &Validated, t: &Target, images: &dyn Images) -> PodPlan {
    let pod = &vp.pod;
    let spec = &pod.spec;
    let ns = vp.namespace.clone();
    let name = pod.metadata.name.clone();
    let id = pod_id(&ns, &name);
    let run_dir = format!("{}/pods/{id}", t.run_dir);
    let state_dir = format!("{}/pods/{id}", t.state_dir);
    let pc = PodCtx {
        namespace: ns.clone(),
        name: name.clone(),
        file: vp.file.clone(),
        slice: slice_name(&id),
        target: target_name(&id),
        infra: infra_name(&id),
        run_dir: run_dir.clone(),
        volumes_run_dir: format!("{}/volumes/{id}", t.run_dir),
        state_dir: state_dir.clone(),
        libexec_dir: t.libexec_dir.clone(),
    };
    let mut notes = Vec::new();
    let mut errors = Vec::new();
    let mut files = Vec::new();
    let mut units = Vec::new();
    let grace = spec.termination_grace_period_seconds.unwrap_or(30);
    let restart = spec.restart_policy.unwrap_or(RestartPolicy::Always);
    let hostname = spec.hostname.clone().unwrap_or_else(|| name.clone());

    // Pod-level totals on the slice, as Kubernetes sets them on the pod's
    // cgroup.
    let totals = pod_totals(spec);
    let v2 = t.cgroup == Cgroup::V2;
    units.push(UnitPlan {
        name: pc.slice.clone(),
        template: "pod.slice",
        ctx: to_json(&SliceCtx {
            pod: pc.clone(),
            memory_max: totals.memory_limit,
            memory_min: (v2 && totals.memory_request > 0).then_some(totals.memory_request),
            cpu_quota: totals.cpu_limit_millis.map(cpu_quota),
            cpu_weight: (totals.cpu_request_millis > 0)
                .then(|| cpu_weight_for(t.cgroup, totals.cpu_request_millis)),
        }),
    });
    if !v2 && totals.memory_request > 0 {
        let explicit = |c: &Container| {
            c.resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .is_some_and(|r| r.memory.is_some())
        };
        if let Some(j) = spec
            .containers
            .iter()
            .chain(&spec.init_containers)
            .position(explicit)
        {
            let (list, i) = if j < spec.containers.len() {
                ("containers", j)
            } else {
                ("initContainers", j - spec.containers.len())
            };
            notes.push(Note::at(
                vp,
                &format!("/spec/{list}/{i}/resources"),
                "memory-request-cgroup-v1",
                "this host uses cgroup v1, which has no memory protection: requests.memory is not enforced (MemoryMin= needs cgroup v2); limits.memory is",
            ));
        }
    }

    // Infra.
    let mut argv = vec![
        format!("{}/podc-pause", t.libexec_dir),
        "--pod-id".into(),
        id.clone(),
        "--hostname".into(),
        if spec.host_network {
            t.node_name.clone()
        } else {
            hostname.clone()
        },
    ];
    if t.run_dir != "/run/podc" {
        argv.extend(["--run-root".into(), format!("{}/pods", t.run_dir)]);
    }
    if spec.host_network {
        argv.push("--host-network".into());
    }
    if spec.host_ipc {
        argv.push("--host-ipc".into());
    }
    if spec.share_process_namespace {
        argv.push("--pid".into());
    }
    for a in &spec.host_aliases {
        argv.push("--host-alias".into());
        argv.push(format!("{}={}", a.ip, a.hostnames.join(",")));
    }
    if let Some(sc) = &spec.security_context {
        for s in &sc.sysctls {
            argv.push("--sysctl".into());
            argv.push(format!("{}={}", s.name, s.value));
        }
    }
    let mut setup = Vec::new();
    let mut teardown = Vec::new();
    if !spec.volumes.is_empty() {
        let volumes = |verb: &str| {
            vec![
                format!("{}/podc", t.libexec_dir),
                "volumes".into(),
                verb.into(),
                "--state-dir".into(),
                state_dir.clone(),
                "--run-dir".into(),
                pc.volumes_run_dir.clone(),
            ]
        };
        setup.push(volumes("setup"));
        teardown.push(volumes("teardown"));
    }
    // The infra unit is rendered once the containers are planned: it also
    // mounts their root filesystems (it has no RootDirectory=, which on
    // systemd 252 applies even to `+` commands of the container units).
    let infra_at = units.len();

    // Containers, in Kubernetes' start order: init containers (and
    // sidecars) one by one, then app containers one by one.
    let mut prev: Vec<String> = vec![pc.infra.clone()];
    let mut last_init: Option<String> = None;
    let mut started_after = pc.infra.clone();
    let mut rootfs_setup = Vec::new();
    let mut pins: Vec<SubPathPin> = Vec::new();
    let ordered = spec
        .init_containers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let role = if c.restart_policy.is_some() {
                "sidecar"
            } else {
                "init"
            };
            (format!("/spec/initContainers/{i}"), c, role)
        })
        .chain(
            spec.containers
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("/spec/containers/{i}"), c, "app")),
        );
    // Sidecars so far, and the app container started last.
    let mut sidecars: Vec<String> = Vec::new();
    let mut prev_app: Option<String> = None;
    for (cpath, c, role) in ordered {
        let unit = container_unit_name(&id, &c.name);
        // Each plain init container, and every app container, requires
        // the last plain init container before it to have succeeded.
        let requires = last_init.iter().cloned().collect();
        let mut ctx = container_ctx(
            vp,
            v,
            t,
            images,
            &pc,
            c,
            role,
            vec![started_after.clone()],
            requires,
            restart,
            grace,
            &mut files,
            &mut notes,
            &mut errors,
            &cpath,
        );
        // App containers start one after another (postStart of one before
        // the next) but stop together, as in Kubernetes. systemd stops units
        // in the reverse of their start order, so an app container is not
        // ordered after the previous one directly: it wants a small link
        // target ordered after it. Stopping the pod gives the link no stop
        // job (it is not PartOf the pod), so the app containers' stop jobs
        // are unordered; it stops once unneeded. Every app container is
        // ordered after every sidecar, so sidecars stop after all of them.
        if role == "app" {
            for s in &sidecars {
                if !ctx.after.contains(s) {
                    ctx.after.push(s.clone());
                }
            }
            if let Some(prev) = prev_app.take() {
                let link = link_target_name(&id, &c.name);
                ctx.after.retain(|a| *a != prev);
                ctx.after.push(link.clone());
                ctx.wants.push(link.clone());
                units.push(UnitPlan {
                    name: link,
                    template: "start-after.target",
                    ctx: to_json(&LinkCtx {
                        pod: pc.clone(),
                        container: c.name.clone(),
                        after: prev,
                    }),
                });
            }
            prev_app = Some(unit.clone());
        }
        rootfs_setup.extend(ctx.rootfs_prepare.iter().cloned());
        pins.extend(ctx.sub_paths.iter().cloned());
        units.push(UnitPlan {
            name: unit.clone(),
            template: "container.service",
            ctx: to_json(&ctx),
        });
        if role == "init" {
            last_init = Some(unit.clone());
        }
        if role == "sidecar" {
            sidecars.push(unit.clone());
        }
        started_after = unit.clone();
        prev.push(unit);
    }

    for vol in &spec.volumes {
        plan_volume_files(vol, v, &ns, &mut files);
    }
    if !spec.volumes.is_empty() {
        // What `podc volumes setup` (the infra unit's ExecStartPre=) must
        // prepare before any container starts. Names and modes only: the
        // data itself is in the data files beside it.
        let specs: Vec<VolumeSpec> = spec
            .volumes
            .iter()
            .map(|vol| volume_spec(vol, &pc, &files, &pins))
            .collect();
        let json =
            serde_json::to_vec_pretty(&serde_json::json!({ "volumes": specs })).unwrap_or_default();
        files.push(DataFile {
            path: "volumes.json".into(),
            mode: 0o644,
            secret: false,
            content: json,
        });
    }

    let rootfs = |verb: &str, args: Vec<String>| -> Vec<Vec<String>> {
        if args.is_empty() {
            return Vec::new();
        }
        let cmd = [
            format!("{}/podc", t.libexec_dir),
            "rootfs".into(),
            verb.into(),
        ];
        vec![[cmd.to_vec(), args].concat()]
    };
    let rootfs_setup = rootfs("prepare", rootfs_setup);
    units.insert(
        infra_at,
        UnitPlan {
            name: pc.infra.clone(),
            template: "infra.service",
            ctx: to_json(&InfraCtx {
                pod: pc.clone(),
                argv,
                setup: [setup, rootfs_setup].concat(),
                teardown,
                grace,
            }),
        },
    );

    units.push(UnitPlan {
        name: pc.target.clone(),
        template: "pod.target",
        ctx: to_json(&TargetCtx {
            pod: pc.clone(),
            units: prev,
        }),
    });

    PodPlan {
        namespace: ns,
        name,
        id,
        file: vp.file.clone(),
        slice: pc.slice.clone(),
        target: pc.target.clone(),
        units,
        files,
        notes,
        errors,
    }
}

fn to_json<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// One environment entry before expansion: its value, or where it comes
/// from when it is secret.
enum EnvSource {
    Plain(String),
    Secret(String),
}

#[allow(clippy::too_many_arguments)]
fn container_ctx(
    vp: &ValidPod,
    v: &Validated,
    t: &Target,
    images: &dyn Images,
    pc: &PodCtx,
    c: &Container,
    role: &'static str,
    after: Vec<String>,
    requires: Vec<String>,
    restart: RestartPolicy,
    grace: i64,
    files: &mut Vec<DataFile>,
    notes: &mut Vec<Note>,
    errors: &mut Vec<Note>,
    cpath: &str,
) -> ContainerCtx {
    let pod = &vp.pod;
    let spec = &pod.spec;
    let ns = &vp.namespace;
    // BindsTo= the infra unit wants After= it too; the previous container
    // gives Kubernetes' one-at-a-time start order.
    let mut after = after;
    if !after.contains(&pc.infra) {
        after.insert(0, pc.infra.clone());
    }
    let image = images.config(&c.image);
    if image.is_none() {
        notes.push(Note::at(
            vp,
            &format!("{cpath}/image"),
            format!("no-image {}", c.image),
            format!(
                "image {} is not in the local image store: its ENTRYPOINT, CMD, ENV, WorkingDir and User are not applied in this build (podc apply pulls the image and completes the unit)",
                c.image
            ),
        ));
    }
    // The image's strings are checked before any reaches the unit.
    for problem in image.iter().flat_map(crate::untrusted::problems) {
        errors.push(Note::at(
            vp,
            &format!("{cpath}/image"),
            "image-config",
            format!("image {}: {problem}", c.image),
        ));
    }
    let img = image.clone().unwrap_or_default();

    // Environment: the image's, then the container's, in order; envFrom
    // first, then env (Kubernetes' precedence). Secret values never reach
    // the unit file: they go to a root-only EnvironmentFile.
    let mut entries: Vec<(String, EnvSource)> = Vec::new();
    let mut has_path = false;
    for (k, val) in &img.env {
        if let Some(why) = image_env_problem(k) {
            notes.push(Note::at(
                vp,
                &format!("{cpath}/image"),
                format!("image-env {} {k}", c.image),
                format!(
                    "image {} sets environment variable {k:?}, which podc drops: {why}",
                    c.image
                ),
            ));
            continue;
        }
        has_path |= k == "PATH";
        entries.push((k.clone(), EnvSource::Plain(val.clone())));
    }
    if !has_path {
        entries.push(("PATH".into(), EnvSource::Plain(DEFAULT_PATH.into())));
    }
    for ef in &c.env_from {
        let prefix = ef.prefix.clone().unwrap_or_default();
        if let Some(r) = &ef.config_map_ref {
            if let Some(cm) = v.config_maps.get(&(ns.clone(), r.name.clone())) {
                for (k, val) in &cm.data {
                    let key = format!("{prefix}{k}");
                    if crate::validate::envfrom_name_ok(&key) {
                        entries.push((key, EnvSource::Plain(val.clone())));
                    }
                }
            }
        }
        if let Some(r) = &ef.secret_ref {
            if let Some(s) = v.secrets.get(&(ns.clone(), r.name.clone())) {
                for (k, val) in &s.data {
                    let key = format!("{prefix}{k}");
                    if crate::validate::envfrom_name_ok(&key) {
                        entries.push((
                            key,
                            EnvSource::Secret(String::from_utf8_lossy(val).into_owned()),
                        ));
                    }
                }
            }
        }
    }
    // Only `env` values are expanded (Kubernetes does not expand envFrom
    // or image values); optional references that are absent push nothing.
    let container_env_start = entries.len();
    for e in &c.env {
        let src = match &e.value_from {
            None => EnvSource::Plain(e.value.clone().unwrap_or_default()),
            Some(from) => {
                if let Some(k) = &from.config_map_key_ref {
                    match v
                        .config_maps
                        .get(&(ns.clone(), k.name.clone()))
                        .and_then(|cm| cm.data.get(&k.key))
                    {
                        Some(val) => EnvSource::Plain(val.clone()),
                        None => continue, // optional and absent
                    }
                } else if let Some(k) = &from.secret_key_ref {
                    match v
                        .secrets
                        .get(&(ns.clone(), k.name.clone()))
                        .and_then(|s| s.data.get(&k.key))
                    {
                        Some(val) => EnvSource::Secret(String::from_utf8_lossy(val).into_owned()),
                        None => continue,
                    }
                } else if let Some(f) = &from.field_ref {
                    EnvSource::Plain(field_value(pod, ns, &f.field_path, t))
                } else {
                    continue;
                }
            }
        };
        entries.push((e.name.clone(), src));
    }
    // `$(VAR)` expansion: each `env` value sees the entries before it.
    // Secret values take part in expansion, but any value that used one is
    // itself secret.
    let mut resolved: Vec<(String, String, bool)> = Vec::new();
    for (i, (k, src)) in entries.into_iter().enumerate() {
        let (raw, mut secret) = match src {
            EnvSource::Plain(s) => (s, false),
            EnvSource::Secret(s) => (s, true),
        };
        let val = if i >= container_env_start {
            let used_secret = std::cell::Cell::new(false);
            let lookup = |name: &str| {
                resolved
                    .iter()
                    .rev()
                    .find(|(k, _, _)| k == name)
                    .map(|(_, v, s)| {
                        used_secret.set(used_secret.get() | *s);
                        v.clone()
                    })
            };
            let out = expand::expand(&raw, &lookup);
            secret |= used_secret.get();
            out
        } else {
            raw
        };
        resolved.retain(|(n, _, _)| *n != k);
        resolved.push((k, val, secret));
    }
    let env: Vec<(String, String)> = resolved
        .iter()
        .filter(|e| !e.2)
        .map(|(k, v, _)| (k.clone(), v.clone()))
        .collect();
    let secret_env: Vec<(String, String)> = resolved
        .iter()
        .filter(|e| e.2)
        .map(|(k, v, _)| (k.clone(), v.clone()))
        .collect();
    let env_file = if secret_env.is_empty() {
        None
    } else {
        let rel = format!("env/{}.env", c.name);
        files.push(DataFile {
            path: rel.clone(),
            mode: 0o600,
            secret: true,
            content: env_file_text(&secret_env).into_bytes(),
        });
        Some(format!("{}/data/{rel}", pc.state_dir))
    };

    // command/args against ENTRYPOINT/CMD, then `$(VAR)` expansion against
    // the container's environment. References to secret variables become
    // `${VAR}`, expanded by systemd from the EnvironmentFile at start, so
    // the secret never lands in the unit. Everything else, the image's
    // ENTRYPOINT/CMD included, is literal text (`crate::argv`).
    let lookup_for_argv = |name: &str| -> Option<Part> {
        resolved
            .iter()
            .find(|(k, _, _)| k == name)
            .map(|(k, v, s)| {
                if *s {
                    Part::Var { var: k.clone() }
                } else {
                    Part::Text(v.clone())
                }
            })
    };
    let expand_word = |a: &String| Word::expand(a, &lookup_for_argv);
    let given = |v: &Option<Vec<String>>| -> Option<Vec<Word>> {
        v.as_deref()
            .filter(|v| !v.is_empty())
            .map(|v| v.iter().map(expand_word).collect())
    };
    let text = |v: &[String]| -> Vec<Word> { v.iter().cloned().map(Word::Text).collect() };
    let argv = container_argv(
        &text(&img.entrypoint),
        &text(&img.cmd),
        given(&c.command).as_deref(),
        given(&c.args).as_deref(),
    );
    if argv.is_empty() {
        errors.push(Note::at(
            vp,
            cpath,
            "no-command",
            format!(
                "container {} has no command: set command, or import the image {} so its ENTRYPOINT/CMD is known",
                c.name, c.image
            ),
        ));
    }

    // Namespaces, the user, and how the process is launched. systemd 252
    // can join the pod's network and IPC namespaces by directive, but not
    // its UTS (hostname) or PID namespace: the joiner (`podc-pause join`)
    // does that, sets up the container's root, drops to the container user
    // and its capability set, and execs the command.
    let sc = effective_security(spec.security_context.as_ref(), c.security_context.as_ref());
    // The image's user with names resolved in the image (as runc does);
    // what cannot be resolved stays a name and is reported below.
    let img_user = match (&img.user_ids, img.user.as_deref()) {
        (Some(Ok(ids)), _) => Some(ids.as_str()),
        (_, u) => u,
    };
    let img_user_named = img
        .user
        .as_deref()
        .is_some_and(|u| u.split(':').any(|p| p.parse::<u32>().is_err()));
    let (img_uid, img_gid) = match img_user.filter(|u| !u.is_empty()) {
        Some(u) => match u.split_once(':') {
            Some((a, b)) => (Some(a.to_string()), Some(b.to_string())),
            None => (Some(u.to_string()), None),
        },
        None => (None, None),
    };
    let uid: Option<String> = sc
        .run_as_user
        .map(|u| u.to_string())
        .or(img_uid)
        .map(canonical_id);
    let gid: Option<String> = sc
        .run_as_group
        .map(|g| g.to_string())
        .or(img_gid)
        .map(canonical_id);
    let non_root = sc.run_as_non_root == Some(true);
    // With runAsNonRoot the kubelet refuses a named image user before
    // resolving it (CreateContainerConfigError below), found or not.
    let named_non_root = non_root && sc.run_as_user.is_none() && img_user_named;
    for (what, v) in [("user", &uid), ("group", &gid)] {
        if what == "user" && named_non_root {
            continue;
        }
        if let Some(v) = v.as_deref().filter(|v| v.parse::<u32>().is_err()) {
            errors.push(Note::at(
                vp,
                cpath,
                "image-user-name",
                match &img.user_ids {
                    Some(Err(e)) => format!("image {} runs as {what} {v:?}, which podc cannot resolve: {}; set securityContext.runAsUser/runAsGroup to numeric ids", c.image, crate::term::safe(e)),
                    _ => format!("image {} runs as {what} {v:?}, a name podc cannot resolve; set securityContext.runAsUser/runAsGroup to numeric ids", c.image),
                },
            ));
        }
    }
    // runAsNonRoot against an explicit runAsUser: 0 is a contradiction in
    // the manifest, reported at build time. Against the image's user it is
    // what the kubelet reports when it creates the container: the pod is
    // installed, this container does not start (the joiner refuses uid 0
    // with --non-root) and observe shows CreateContainerConfigError.
    let mut config_error = None;
    if non_root && sc.run_as_user == Some(0) {
        errors.push(Note::at(
            vp,
            cpath,
            "non-root",
            format!("container {} has runAsNonRoot: true but runAsUser: 0; set runAsUser to a non-zero uid", c.name),
        ));
    } else if non_root && (uid.as_deref().is_none_or(|u| u == "0") || named_non_root) {
        // The kubelet does not resolve names for this check: an image
        // user name cannot be verified, even where podc resolves it.
        let why = if named_non_root {
            format!(
                "image has non-numeric user ({}), cannot verify user is non-root",
                crate::term::safe(img.user.as_deref().unwrap_or_default())
            )
        } else if image.is_some() {
            "image will run as root".to_string()
        } else {
            "image will run as root (its user is not known: the image was not in the local store at build time)".to_string()
        };
        let msg = format!(
            "container has runAsNonRoot and {why} (pod: \"{}/{}\", container: {})",
            vp.namespace, pod.metadata.name, c.name
        );
        notes.push(Note::at(
            vp,
            cpath,
            format!("non-root-image {}/{}/{}", vp.namespace, pod.metadata.name, c.name),
            format!("{msg}: the container will not start (CreateContainerConfigError); set runAsUser to a non-zero uid"),
        ));
        config_error = Some(msg);
    }
    let privileged = sc.privileged.unwrap_or(false);
    let capabilities: Option<Vec<String>> = if privileged {
        None
    } else {
        let mut caps: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|s| s.to_string()).collect();
        if let Some(cs) = sc.capabilities.as_ref() {
            let norm = |s: &String| s.strip_prefix("CAP_").unwrap_or(s).to_string();
            if cs.drop.iter().any(|d| d == "ALL") {
                caps.clear();
            } else {
                let drop: Vec<String> = cs.drop.iter().map(norm).collect();
                caps.retain(|c| !drop.contains(c));
            }
            if cs.add.iter().any(|a| a == "ALL") {
                caps = crate::validate::CAPABILITIES
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
            } else {
                for a in cs.add.iter().map(norm) {
                    if !caps.contains(&a) {
                        caps.push(a);
                    }
                }
            }
        }
        caps.sort();
        Some(caps)
    };

    // A container that cannot be created must not run at all: its joiner
    // gets --non-root and no --user, so it refuses to exec (exit 126).
    let refuse = config_error.is_some();

    #[derive(PartialEq)]
    enum Pid {
        Host,
        New,
        Join,
    }
    let pid = if spec.host_pid {
        Pid::Host
    } else if spec.share_process_namespace {
        Pid::Join
    } else {
        Pid::New
    };
    // Everything runs through the joiner (`podc-pause join`, see
    // `crate::join`): systemd 252 cannot give a container the pod's
    // hostname or a PID namespace, and its RootDirectory=/Bind*Paths=
    // sandboxing rereads the host's whole mount table some twenty times
    // per unit start (`crate::container_root`). systemd still resolves
    // nothing inside the container: the joiner execs with the container's
    // PATH, as Kubernetes resolves a bare command name.
    let helper = format!("{}/podc-pause", t.libexec_dir);
    let container_dir = format!("{}/containers/{}", pc.state_dir, c.name);
    let working_dir = c
        .working_dir
        .clone()
        .or(img.working_dir.clone())
        .filter(|w| !w.is_empty());

    // The container's mounts, made by the joiner in the container's own
    // mount namespace: the pod's files, /dev/shm, volumes.
    let mut binds: Vec<(String, String, bool)> = Vec::new();
    if !spec.host_network {
        binds.push((
            format!("{}/hosts", pc.run_dir),
            "/etc/hosts".to_string(),
            true,
        ));
    }
    binds.push((
        format!("{}/hostname", pc.run_dir),
        "/etc/hostname".to_string(),
        true,
    ));
    binds.push((
        format!("{}/resolv.conf", pc.run_dir),
        "/etc/resolv.conf".to_string(),
        true,
    ));
    // /dev/shm: the pod's own 64 MiB tmpfs, which the infra mounts (as
    // containerd and CRI-O give every sandbox one); the host's with
    // hostIPC (bound into a confined container's own /dev; a privileged
    // one has the host's /dev). A volume mounted at /dev/shm (the usual
    // emptyDir with `medium: Memory`) takes its place.
    let shm_volume = c
        .volume_mounts
        .iter()
        .any(|m| m.mount_path.trim_end_matches('/') == "/dev/shm");
    if !spec.host_ipc && !shm_volume {
        binds.push((format!("{}/shm", pc.run_dir), "/dev/shm".to_string(), false));
    } else if !shm_volume && !privileged {
        binds.push(("/dev/shm".to_string(), "/dev/shm".to_string(), false));
    }
    let mut sub_paths = Vec::new();
    for (j, m) in c.volume_mounts.iter().enumerate() {
        let Some(vol) = spec.volumes.iter().find(|v| v.name == m.name) else {
            continue;
        };
        let mut src = volume_host_path(vol, pc);
        if let Some(sp) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            // Never `volume/subPath`: the bind would follow a symlink a
            // container planted there. The volume setup resolves it without
            // following symlinks and pins it; the container binds the pin.
            src = format!("{}/.subpath/{}-{j}", pc.volumes_run_dir, c.name);
            sub_paths.push(SubPathPin {
                volume: vol.name.clone(),
                path: sp.to_string(),
                pin: src.clone(),
            });
        }
        let ro = m.read_only || vol.config_map.is_some() || vol.secret.is_some();
        binds.push((src, m.mount_path.clone(), ro));
    }

    // Joiner options shared by the main command and exec hooks. A confined
    // container (`--ro-sys`) gets a /dev of its own, a read-only /sys and
    // /proc/sys, and masked kernel files (crate::container_root).
    let read_only_root = sc.read_only_root_filesystem.unwrap_or(false);
    let joiner = |hook: bool| -> Vec<Word> {
        let mut j: Vec<Word> = vec![helper.clone().into(), "join".into()];
        if hook {
            // An exec hook runs in the running container's mount namespace.
            j.extend([
                "--mnt".into(),
                Word::with_var("/proc/", "MAINPID", "/ns/mnt"),
            ]);
        } else {
            j.extend(["--rootfs".into(), container_dir.clone().into()]);
            for l in &img.layers {
                j.extend(["--layer".into(), l.clone().into()]);
            }
            for (src, dst, ro) in &binds {
                j.extend([
                    if *ro { "--bind-ro" } else { "--bind" }.into(),
                    src.clone().into(),
                    dst.clone().into(),
                ]);
            }
            if read_only_root {
                j.push("--ro-root".into());
            }
            if !privileged {
                j.push("--ro-sys".into());
            }
            if !spec.host_ipc {
                j.push("--mqueue".into());
            }
        }
        if let Some(w) = &working_dir {
            j.extend(["--cwd".into(), w.clone().into()]);
        }
        if !spec.host_network {
            j.extend(["--uts".into(), format!("{}/ns/uts", pc.run_dir).into()]);
        }
        if !spec.host_ipc {
            j.extend(["--ipc".into(), format!("{}/ns/ipc", pc.run_dir).into()]);
        }
        match (&pid, hook) {
            (Pid::Host, _) => {}
            // A hook joins the container's own PID namespace.
            (_, true) => j.extend([
                "--pid".into(),
                Word::with_var("/proc/", "MAINPID", "/ns/pid"),
            ]),
            (Pid::Join, false) => {
                j.extend(["--pid".into(), format!("{}/ns/pid", pc.run_dir).into()])
            }
            (Pid::New, false) => j.push("--new-pid".into()),
        }
        // Hooks and init containers are waited for; app containers are
        // handed to systemd (Type=notify) with no process left behind.
        if hook || (role == "init" && pid != Pid::Host) {
            j.push("--wait".into());
        }
        if !refuse && (uid.is_some() || gid.is_some()) {
            j.extend([
                "--user".into(),
                format!(
                    "{}:{}",
                    uid.as_deref().unwrap_or("0"),
                    gid.as_deref().unwrap_or("0")
                )
                .into(),
            ]);
        }
        if !sc.supplemental_groups.is_empty() {
            j.extend([
                "--groups".into(),
                sc.supplemental_groups
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
                    .into(),
            ]);
        }
        if let Some(caps) = &capabilities {
            j.extend(["--caps".into(), caps.join(",").into()]);
        }
        if non_root {
            j.push("--non-root".into());
        }
        j.push("--".into());
        j
    };
    let exec_start = [joiner(false), argv.clone()].concat();
    let wrap = |cmd: Vec<Word>| [joiner(true), cmd].concat();

    // Hooks.
    let hook = |h: &Handler| -> HookCmd {
        let pod_port = |p: &IntOrString| -> String {
            match p {
                IntOrString::Int(n) => n.to_string(),
                IntOrString::String(name) => c
                    .ports
                    .iter()
                    .find(|cp| cp.name.as_deref() == Some(name))
                    .map_or_else(|| name.clone(), |cp| cp.container_port.to_string()),
            }
        };
        // httpGet/tcpSocket/sleep run podc's static helper from the host,
        // as the kubelet probes from the host; the unit puts it in the
        // pod's network namespace.
        let mut helper = vec![helper.clone(), "hook".into()];
        if let Some(e) = &h.exec {
            return HookCmd {
                argv: wrap(e.command.iter().map(expand_word).collect()),
            };
        }
        // Probing actions target the pod's address by default.
        let mut probe = |action: &str, host: &Option<String>, port: &IntOrString| {
            helper.push(action.into());
            helper.extend([
                "--host".into(),
                host.clone().unwrap_or_else(|| "127.0.0.1".into()),
                "--port".into(),
                pod_port(port),
            ]);
        };
        if let Some(g) = &h.http_get {
            probe("http-get", &g.host, &g.port);
            helper.extend([
                "--path".into(),
                g.path.clone().unwrap_or_else(|| "/".into()),
            ]);
            if g.scheme == Some(Scheme::Https) {
                helper.extend(["--scheme".into(), "https".into()]);
            }
            for hd in &g.http_headers {
                helper.extend(["--header".into(), format!("{}: {}", hd.name, hd.value)]);
            }
        } else if let Some(s) = &h.tcp_socket {
            probe("tcp-socket", &s.host, &s.port);
        } else if let Some(s) = &h.sleep {
            helper.extend(["sleep".into(), s.seconds.to_string()]);
        }
        HookCmd {
            argv: helper.into_iter().map(Word::Text).collect(),
        }
    };
    let post_start = c
        .lifecycle
        .as_ref()
        .and_then(|l| l.post_start.as_ref())
        .map(&hook);
    let pre_stop = c
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
        .map(&hook);

    // Resources. A container with a memory limit gets the OOM check.
    let amt = amounts(c);
    let oom_check = amt
        .mem_limit
        .map(|_| vec![helper.clone(), "oom-check".to_string()]);

    // Restart policy.
    // Type=notify: with its own or the pod's PID namespace, the joiner
    // hands the command to systemd as a child of PID 1, names it with
    // MAINPID= and exits; in the host's, it says READY=1 once the
    // container is set up and execs the command itself. Either way a
    // setup that fails fails the start.
    let long_running = "notify";
    let (service_type, restart_str, remain) = match role {
        "init" => (
            "oneshot",
            if restart == RestartPolicy::Never {
                "no"
            } else {
                "on-failure"
            },
            true,
        ),
        "sidecar" => (long_running, "always", false),
        _ => (
            long_running,
            match restart {
                RestartPolicy::Always => "always",
                RestartPolicy::OnFailure => "on-failure",
                RestartPolicy::Never => "no",
            },
            false,
        ),
    };
    let native_backoff = t.systemd_version >= 254;
    if !native_backoff && restart_str != "no" && role != "init" {
        notes.push(Note::at(
            vp,
            cpath,
            "restart-backoff",
            format!(
                "systemd {} has no RestartSteps= (254+): restarts use a fixed 10 s delay instead of Kubernetes' 10 s → 300 s back-off",
                t.systemd_version
            ),
        ));
    }

    // An image known at build time: the joiner gets its layers and makes a
    // fresh writable layer at every start (a restarted container starts
    // from the image, as in Kubernetes), with no podc exec per pod. An
    // image that was not in the store at build time is resolved at start
    // by the infra unit's one `podc rootfs prepare` for the pod.
    let rootfs_prepare = if img.layers.is_empty() {
        vec![
            "--dir".into(),
            container_dir,
            "--image".into(),
            c.image.clone(),
        ]
    } else {
        Vec::new()
    };
    ContainerCtx {
        pod: pc.clone(),
        container: c.name.clone(),
        image: c.image.clone(),
        image_digest: img.digest.clone(),
        role,
        after,
        requires,
        wants: Vec::new(),
        service_type,
        restart: restart_str,
        restart_sec: 10,
        restart_steps: (native_backoff && restart_str != "no").then_some(5),
        restart_max_delay_sec: (native_backoff && restart_str != "no").then_some(300),
        start_limit_off: restart_str != "no",
        remain_after_exit: remain,
        grace,
        netns: (!spec.host_network).then(|| format!("{}/ns/net", pc.run_dir)),
        confined: !privileged,
        config_error,
        env,
        env_file,
        no_new_privileges: sc.allow_privilege_escalation == Some(false),
        memory_max: amt.mem_limit,
        memory_min: amt.mem_request.filter(|_| t.cgroup == Cgroup::V2),
        cpu_quota: amt.cpu_limit.map(cpu_quota),
        cpu_weight: amt.cpu_request.map(|m| cpu_weight_for(t.cgroup, m)),
        oom_check,
        exec_start,
        rootfs_prepare,
        sub_paths,
        post_start,
        pre_stop,
        // An empty StopSignal means the default, as in resolve_process.
        stop_signal: img.stop_signal.clone().filter(|s| !s.is_empty()),
    }
}

/// Kubernetes' rule for what a container runs: `command` replaces the
/// image's ENTRYPOINT and drops its CMD, `args` replaces CMD. Callers pass
/// `None` for an unset (or empty) list, as Kubernetes treats both alike.
pub fn container_argv<T: Clone>(
    entrypoint: &[T],
    cmd: &[T],
    command: Option<&[T]>,
    args: Option<&[T]>,
) -> Vec<T> {
    match (command, args) {
        (Some(command), args) => [command, args.unwrap_or_default()].concat(),
        (None, args) => [entrypoint, args.unwrap_or(cmd)].concat(),
    }
}

/// Where a volume lives on the host.
fn volume_host_path(vol: &Volume, pc: &PodCtx) -> String {
    if let Some(hp) = &vol.host_path {
        return hp.path.trim_end_matches('/').to_string();
    }
    let memory = vol
        .empty_dir
        .as_ref()
        .is_some_and(|e| e.medium == Some(StorageMedium::Memory));
    if vol.config_map.is_some() || vol.secret.is_some() || memory {
        // tmpfs-backed, set up by the infra unit; secrets never touch disk
        // beyond podc's root-only data directory.
        format!("{}/{}", pc.volumes_run_dir, vol.name)
    } else {
        format!("{}/volumes/{}", pc.state_dir, vol.name)
    }
}

/// File name → content.
type Files = BTreeMap<String, Vec<u8>>;

/// One volume as `podc volumes setup` prepares it (`volumes.json`).
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSpec {
    pub name: String,
    /// Where the volume lives on the host (what containers bind).
    pub location: String,
    /// `emptyDir` (a directory, or with `tmpfs` a tmpfs), `hostPath`,
    /// `configMap` or `secret`.
    pub kind: &'static str,
    /// emptyDir `medium: Memory`, and every configMap/secret volume.
    pub tmpfs: bool,
    /// emptyDir `sizeLimit` in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_limit: Option<u64>,
    /// hostPath `type` (`""` when unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_path_type: Option<&'static str>,
    /// configMap/secret: files to copy from `data/<source>` with their modes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<VolumeFile>,
    /// volumeMounts' subPaths into this volume, pinned by the setup.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sub_paths: Vec<SubPath>,
}

/// A subPath resolved safely by the volume setup and bind-mounted at `pin`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SubPath {
    pub path: String,
    pub pin: String,
}

/// A subPath of one container's mount, before it is grouped by volume.
#[derive(Clone, Debug)]
struct SubPathPin {
    volume: String,
    path: String,
    pin: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct VolumeFile {
    /// Relative to `data/` in the pod's state directory.
    pub source: String,
    /// Relative to the volume.
    pub path: String,
    pub mode: u32,
}

fn volume_spec(vol: &Volume, pc: &PodCtx, files: &[DataFile], pins: &[SubPathPin]) -> VolumeSpec {
    let mut spec = VolumeSpec {
        name: vol.name.clone(),
        location: volume_host_path(vol, pc),
        kind: "emptyDir",
        tmpfs: false,
        size_limit: None,
        host_path_type: None,
        files: Vec::new(),
        sub_paths: pins
            .iter()
            .filter(|p| p.volume == vol.name)
            .map(|p| SubPath {
                path: p.path.clone(),
                pin: p.pin.clone(),
            })
            .collect(),
    };
    if let Some(ed) = &vol.empty_dir {
        spec.tmpfs = ed.medium == Some(StorageMedium::Memory);
        spec.size_limit = quantity_of(&ed.size_limit, true);
    } else if let Some(hp) = &vol.host_path {
        spec.kind = "hostPath";
        spec.host_path_type = Some(match hp.type_.unwrap_or(HostPathType::Unset) {
            HostPathType::Unset => "",
            HostPathType::DirectoryOrCreate => "DirectoryOrCreate",
            HostPathType::Directory => "Directory",
            HostPathType::FileOrCreate => "FileOrCreate",
            HostPathType::File => "File",
            HostPathType::Socket => "Socket",
            HostPathType::CharDevice => "CharDevice",
            HostPathType::BlockDevice => "BlockDevice",
        });
    } else {
        spec.kind = if vol.secret.is_some() {
            "secret"
        } else {
            "configMap"
        };
        spec.tmpfs = true;
        let prefix = format!("volumes/{}/", vol.name);
        spec.files = files
            .iter()
            .filter_map(|f| {
                f.path.strip_prefix(&prefix).map(|rel| VolumeFile {
                    source: f.path.clone(),
                    path: rel.to_string(),
                    mode: f.mode,
                })
            })
            .collect();
    }
    spec
}

/// ConfigMap and Secret volume content, as files under `data/volumes/`.
fn plan_volume_files(vol: &Volume, v: &Validated, ns: &str, files: &mut Vec<DataFile>) {
    let (content, items, default_mode, secret): (Option<Files>, &[KeyToPath], i64, bool) =
        if let Some(cm) = &vol.config_map {
            (
                v.config_maps
                    .get(&(ns.to_string(), cm.name.clone()))
                    .map(|d| d.files()),
                &cm.items,
                cm.default_mode.unwrap_or(0o644),
                false,
            )
        } else if let Some(s) = &vol.secret {
            (
                v.secrets
                    .get(&(ns.to_string(), s.secret_name.clone()))
                    .map(|d| d.data.clone()),
                &s.items,
                s.default_mode.unwrap_or(0o644),
                true,
            )
        } else {
            return;
        };
    let Some(content) = content else { return };
    let prefix = format!("volumes/{}", vol.name);
    if items.is_empty() {
        for (k, data) in content {
            files.push(DataFile {
                path: format!("{prefix}/{k}"),
                mode: default_mode as u32,
                secret,
                content: data,
            });
        }
    } else {
        for it in items {
            if let Some(data) = content.get(&it.key) {
                files.push(DataFile {
                    path: format!("{prefix}/{}", it.path),
                    mode: it.mode.unwrap_or(default_mode) as u32,
                    secret,
                    content: data.clone(),
                });
            }
        }
    }
}

/// The container's security context over the pod's (container wins).
fn effective_security(
    pod: Option<&PodSecurityContext>,
    c: Option<&SecurityContext>,
) -> EffectiveSecurity {
    let p = pod.cloned().unwrap_or_default();
    let c = c.cloned().unwrap_or_default();
    EffectiveSecurity {
        run_as_user: c.run_as_user.or(p.run_as_user),
        run_as_group: c.run_as_group.or(p.run_as_group),
        run_as_non_root: c.run_as_non_root.or(p.run_as_non_root),
        supplemental_groups: p.supplemental_groups,
        read_only_root_filesystem: c.read_only_root_filesystem,
        allow_privilege_escalation: c.allow_privilege_escalation,
        privileged: c.privileged,
        capabilities: c.capabilities,
    }
}

struct EffectiveSecurity {
    run_as_user: Option<i64>,
    run_as_group: Option<i64>,
    run_as_non_root: Option<bool>,
    supplemental_groups: Vec<u32>,
    read_only_root_filesystem: Option<bool>,
    allow_privilege_escalation: Option<bool>,
    privileged: Option<bool>,
    capabilities: Option<Capabilities>,
}

/// The value of a `fieldRef`, known at build time on one host.
fn field_value(pod: &Pod, ns: &str, path: &str, t: &Target) -> String {
    match path {
        "metadata.name" => pod.metadata.name.clone(),
        "metadata.namespace" => ns.to_string(),
        "spec.nodeName" => t.node_name.clone(),
        "status.podIP" => POD_IP.into(),
        _ => match label_or_annotation_ref(path) {
            Some(("labels", k)) => pod.metadata.labels.get(k).cloned().unwrap_or_default(),
            Some((_, k)) => pod.metadata.annotations.get(k).cloned().unwrap_or_default(),
            None => String::new(),
        },
    }
}

/// A user or group id in its one numeric spelling: the image's `00` or
/// `+0` is uid 0 to the kernel (and to the joiner's parser), so every
/// comparison (runAsNonRoot) and the joiner's `--user` see `0`. Names,
/// which could not be resolved, stay as they are and are reported.
fn canonical_id(id: String) -> String {
    id.parse::<u32>().map_or(id, |n| n.to_string())
}

/// Why an image's environment variable `name` cannot reach the unit, if
/// it cannot. Image authors are not trusted: a name systemd cannot carry
/// would fail the whole pod's render, and a name systemd sets itself
/// (`MAINPID`, `NOTIFY_SOCKET`, ...) or the dynamic loader reads (`LD_*`)
/// would steer the unit's host-side helpers. Dropped with a warning, as the
/// pod still builds.
fn image_env_problem(name: &str) -> Option<&'static str> {
    if !crate::escape::systemd_env_name_ok(name) {
        Some("systemd's Environment= accepts only ASCII letters, digits and '_', not starting with a digit")
    } else if crate::escape::reserved_env_name(name) {
        Some("systemd sets it for the unit's processes, or it steers the host-side helpers that set the container up")
    } else {
        None
    }
}

/// An `EnvironmentFile=` body: one `NAME="value"` per line, escaped for
/// systemd's env-file parser (backslash, double quote, `$` and backtick are
/// backslash-escaped inside double quotes; newlines are kept literally
/// inside the quotes).
pub fn env_file_text(env: &[(String, String)]) -> String {
    let mut s = String::new();
    for (k, v) in env {
        s.push_str(k);
        s.push_str("=\"");
        for ch in v.chars() {
            if matches!(ch, '\\' | '"' | '$' | '`') {
                s.push('\\');
            }
            s.push(ch);
        }
        s.push_str("\"\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_cpu_conversions() {
        // Values from Kubernetes' MilliCPUToShares and CPUSharesToCPUWeight.
        assert_eq!(cpu_weight(1000), 39);
        assert_eq!(cpu_weight(100), 4);
        assert_eq!(cpu_weight(1), 1);
        assert_eq!(cpu_weight(256_000), 10_000); // shares clamp at 262144
        assert_eq!(cpu_shares(1000), 1024);
        assert_eq!(cpu_shares(100), 102);
        assert_eq!(cpu_shares(0), 2);
        assert_eq!(cpu_shares(1_000_000), 262_144);
        // MilliCPUToQuota: millis × 100 µs per 100 ms, at least 1 ms.
        assert_eq!(cpu_quota(200), "20");
        assert_eq!(cpu_quota(205), "20.5");
        assert_eq!(cpu_quota(1500), "150");
        assert_eq!(cpu_quota(1), "1");
        assert_eq!(cpu_quota(u64::MAX), "1844674407370955161.5");
    }

    #[test]
    fn v1_weights_give_kubernetes_shares() {
        // systemd 252 on cgroup v1: cpu.shares = weight × 1024 / 100.
        let applied = |m: u64| cpu_weight_v1(m) * 1024 / 100;
        for m in [100, 200, 250, 500, 1000, 1500, 2000, 4000] {
            assert_eq!(applied(m), cpu_shares(m), "{m}m");
        }
        for m in [1, 10, 150, 333, 999, 12_345, 99_000] {
            assert!(applied(m).abs_diff(cpu_shares(m)) <= 8, "{m}m");
        }
        assert_eq!(cpu_weight_v1(1_000_000), 10_000);
        assert_eq!(cpu_weight_v1(0), 1);
    }

    /// One image for every container name.
    struct OneImage(ImageConfig);
    impl Images for OneImage {
        fn config(&self, _: &str) -> Option<ImageConfig> {
            Some(self.0.clone())
        }
    }

    /// Plan `yaml` (one pod) against `img`: the pod's plan, or the
    /// validation errors.
    fn plan_yaml(yaml: &str, img: ImageConfig) -> Result<PodPlan, Vec<String>> {
        let src = crate::load::decode("p.yaml", yaml.as_bytes().to_vec()).unwrap();
        let (v, diags) = crate::pipeline::check(&[src]);
        let errs: Vec<String> = diags
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.headline())
            .collect();
        if !errs.is_empty() {
            return Err(errs);
        }
        let (mut plans, _) = plan(&v, &Target::new(252, "n"), &OneImage(img));
        Ok(plans.remove(0))
    }

    const NON_ROOT_POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  securityContext: {runAsNonRoot: true}\n  containers:\n  - {name: c, image: i, command: [sleep, '1']}\n";

    fn image_user(user: &str, ids: Result<&str, &str>) -> ImageConfig {
        ImageConfig {
            user: Some(user.into()),
            user_ids: Some(ids.map(str::to_string).map_err(str::to_string)),
            ..Default::default()
        }
    }

    fn config_error(p: &PodPlan) -> Option<String> {
        p.units
            .iter()
            .find(|u| u.name.ends_with("_c.service"))
            .and_then(|u| u.ctx["config_error"].as_str().map(str::to_string))
    }

    #[test]
    fn run_as_non_root_compares_the_image_uid_as_a_number() {
        for user in ["0", "00", "+0", "000:0", "0:1000"] {
            let p = plan_yaml(NON_ROOT_POD, image_user(user, Ok(user))).unwrap();
            let why = config_error(&p).unwrap_or_else(|| panic!("User {user:?} not refused"));
            assert!(why.contains("image will run as root"), "{user}: {why}");
            assert!(p.errors.is_empty(), "{:?}", p.errors);
        }
        // A name, whether it maps to 0 or cannot be resolved at all, is what
        // the kubelet cannot verify: CreateContainerConfigError, not a build error.
        for (user, ids) in [
            ("toor", Ok("0:0")),
            (
                "ghost",
                Err("user \"ghost\" is not in the image's /etc/passwd"),
            ),
        ] {
            let p = plan_yaml(NON_ROOT_POD, image_user(user, ids)).unwrap();
            let why = config_error(&p).unwrap_or_else(|| panic!("User {user:?} not refused"));
            assert!(
                why.contains(&format!("image has non-numeric user ({user})")),
                "{why}"
            );
            assert!(p.errors.is_empty(), "{:?}", p.errors);
        }
        let p = plan_yaml(NON_ROOT_POD, image_user("0010", Ok("0010"))).unwrap();
        assert_eq!(config_error(&p), None);
        let argv = p
            .units
            .iter()
            .find(|u| u.name.ends_with("_c.service"))
            .unwrap()
            .ctx["exec_start"]
            .to_string();
        assert!(argv.contains("\"--user\",\"10:0\""), "{argv}");
    }

    #[test]
    fn image_env_names_systemd_cannot_carry_or_sets_itself_are_dropped() {
        let img = ImageConfig {
            env: [
                ("MAINPID", "1"),
                ("NOTIFY_SOCKET", "/x"),
                ("LD_PRELOAD", "/evil.so"),
                ("WATCHDOG_USEC", "1"),
                ("BAD-NAME", "x"),
                ("PATH", "/evil"),
                ("GOOD", "y"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            ..Default::default()
        };
        let p = plan_yaml(
            NON_ROOT_POD
                .replace("  securityContext: {runAsNonRoot: true}\n", "")
                .as_str(),
            img,
        )
        .unwrap();
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        let env = p
            .units
            .iter()
            .find(|u| u.name.ends_with("_c.service"))
            .unwrap()
            .ctx["env"]
            .to_string();
        assert_eq!(env, r#"[["PATH","/evil"],["GOOD","y"]]"#);
        for k in [
            "MAINPID",
            "NOTIFY_SOCKET",
            "LD_PRELOAD",
            "WATCHDOG_USEC",
            "BAD-NAME",
        ] {
            assert!(
                p.notes.iter().any(|n| n
                    .message
                    .contains(&format!("environment variable \"{k}\", which podc drops"))),
                "{k}: {:?}",
                p.notes
            );
        }
    }

    #[test]
    fn manifest_env_may_not_set_what_systemd_sets() {
        for name in [
            "MAINPID",
            "NOTIFY_SOCKET",
            "LD_PRELOAD",
            "MONITOR_UNIT",
            "TRIGGER_PATH",
        ] {
            let y = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - name: c\n    image: i\n    command: [sleep, '1']\n    env: [{{name: {name}, value: '1'}}]\n");
            let errs = plan_yaml(&y, ImageConfig::default()).unwrap_err();
            assert!(
                errs.iter().any(|e| e.contains("p.yaml:9:")
                    && e.contains("spec.containers[0].env[0].name")
                    && e.contains("is reserved")),
                "{name}: {errs:?}"
            );
        }
    }

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    fn c(name: &str, res: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"name": name, "image": "i", "resources": res})
    }

    #[test]
    fn pod_totals_follow_kubernetes() {
        let lim = |cpu: &str, mem: &str| serde_json::json!({"limits": {"cpu": cpu, "memory": mem}});
        // Apps sum; requests default to limits.
        let s = spec(serde_json::json!({"containers": [
            c("a", lim("200m", "64Mi")),
            c("b", serde_json::json!({"requests": {"cpu": "100m", "memory": "16Mi"}, "limits": {"cpu": "1", "memory": "32Mi"}})),
        ]}));
        assert_eq!(
            pod_totals(&s),
            PodTotals {
                memory_limit: Some(96 << 20),
                cpu_limit_millis: Some(1200),
                memory_request: 80 << 20,
                cpu_request_millis: 300,
            }
        );
        // One container without a memory limit: no pod memory limit.
        let s = spec(serde_json::json!({"containers": [
            c("a", lim("200m", "64Mi")),
            c("b", serde_json::json!({"limits": {"cpu": "1"}})),
        ]}));
        let t = pod_totals(&s);
        assert_eq!((t.memory_limit, t.cpu_limit_millis), (None, Some(1200)));
        assert_eq!(t.memory_request, 64 << 20);
        // A big init container wins; a sidecar counts in both the sum and
        // every init container after it.
        let s = spec(serde_json::json!({
            "initContainers": [
                c("side", lim("100m", "16Mi")).as_object().unwrap().clone().into_iter()
                    .chain([("restartPolicy".to_string(), serde_json::json!("Always"))]).collect::<serde_json::Map<_, _>>(),
                c("big", lim("2", "512Mi")),
            ],
            "containers": [c("a", lim("200m", "64Mi"))],
        }));
        let t = pod_totals(&s);
        assert_eq!(t.memory_limit, Some(528 << 20));
        assert_eq!(t.cpu_limit_millis, Some(2100));
        // Small init containers: the apps' sum plus sidecars.
        let s = spec(serde_json::json!({
            "initContainers": [c("small", lim("10m", "1Mi"))],
            "containers": [c("a", lim("200m", "64Mi")), c("b", lim("300m", "64Mi"))],
        }));
        let t = pod_totals(&s);
        assert_eq!(
            (t.memory_limit, t.cpu_limit_millis),
            (Some(128 << 20), Some(500))
        );
        // An init container without limits: no pod limits (Kubernetes).
        let s = spec(serde_json::json!({
            "initContainers": [c("free", serde_json::json!({}))],
            "containers": [c("a", lim("200m", "64Mi"))],
        }));
        let t = pod_totals(&s);
        assert_eq!((t.memory_limit, t.cpu_limit_millis), (None, None));
        assert_eq!(
            pod_totals(&spec(
                serde_json::json!({"containers": [c("a", serde_json::json!({}))]})
            )),
            PodTotals::default()
        );
    }

    #[test]
    fn command_and_args_against_entrypoint_and_cmd() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (ep, cmd) = (v(&["/ep"]), v(&["cmd"]));
        assert_eq!(container_argv(&ep, &cmd, None, None), v(&["/ep", "cmd"]));
        assert_eq!(
            container_argv(&ep, &cmd, None, Some(&v(&["a"]))),
            v(&["/ep", "a"])
        );
        assert_eq!(
            container_argv(&ep, &cmd, Some(&v(&["/c"])), None),
            v(&["/c"])
        );
        assert_eq!(
            container_argv(&ep, &cmd, Some(&v(&["/c"])), Some(&v(&["a"]))),
            v(&["/c", "a"])
        );
        assert!(container_argv::<String>(&[], &[], None, None).is_empty());
    }

    #[test]
    fn unit_names() {
        assert_eq!(
            slice_name("default_my-web"),
            "podc-default_my\\x2dweb.slice"
        );
        assert_eq!(target_name("default_web"), "podc_default_web.target");
        assert_eq!(
            container_unit_name("default_web", "app"),
            "podc_default_web_app.service"
        );
    }

    /// The container unit's context of the first container of `yaml`.
    fn first_container(yaml: &str) -> (serde_json::Value, Vec<DataFile>) {
        let src = crate::load::Source {
            name: "t.yaml".into(),
            text: yaml.into(),
        };
        let (v, diags) = crate::pipeline::check(&[src]);
        assert!(
            !diags.iter().any(crate::diagnostic::Diagnostic::is_error),
            "{diags:?}"
        );
        let (plans, _) = plan(&v, &Target::new(252, "node1"), &NoImages);
        let p = &plans[0];
        let u = p
            .units
            .iter()
            .find(|u| u.template == "container.service")
            .unwrap();
        (u.ctx.clone(), p.files.clone())
    }

    #[test]
    fn dev_shm_is_the_pods_unless_host_ipc_or_a_volume_takes_it() {
        let pod = |spec: &str, mounts: &str| {
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n{spec}  volumes: [{{name: m, emptyDir: {{medium: Memory}}}}]\n  containers:\n  - name: c\n    image: busybox:1.36\n    command: [sleep, '1']\n{mounts}"
            )
        };
        // the joiner's `--bind SRC DST` arguments with DST /dev/shm
        let shm_binds = |ctx: &serde_json::Value| -> Vec<String> {
            let argv: Vec<&str> = ctx["exec_start"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect();
            argv.windows(3)
                .filter(|w| w[0] == "--bind" && w[2].trim_end_matches('/') == "/dev/shm")
                .map(|w| w[1].to_string())
                .collect()
        };
        let (ctx, _) = first_container(&pod("", ""));
        assert_eq!(shm_binds(&ctx), ["/run/podc/pods/default_p/shm"]);
        // hostIPC: the host's, bound into the container's own /dev; a
        // privileged container has the host's whole /dev
        let (ctx, _) = first_container(&pod("  hostIPC: true\n", ""));
        assert_eq!(shm_binds(&ctx), ["/dev/shm"]);
        let privileged = "    securityContext: {privileged: true}\n";
        let (ctx, _) = first_container(&pod("  hostIPC: true\n", privileged));
        assert!(shm_binds(&ctx).is_empty());
        let (ctx, _) = first_container(&pod(
            "",
            "    volumeMounts: [{name: m, mountPath: /dev/shm/}]\n",
        ));
        assert_eq!(
            shm_binds(&ctx),
            ["/run/podc/volumes/default_p/m"],
            "the volume, not the pod's tmpfs"
        );
    }

    #[test]
    fn only_env_values_expand_whatever_optional_refs_are_absent() {
        let (ctx, files) = first_container(
            r#"apiVersion: v1
kind: ConfigMap
metadata: {name: cm}
data: {A: a, B: "$(A)"}
---
apiVersion: v1
kind: Secret
metadata: {name: s}
stringData: {PW: "p$w"}
---
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: c
    image: busybox:1.36
    command: ["/bin/sh", "-c", "$(PW) $(B)"]
    envFrom:
    - configMapRef: {name: cm}
    env:
    - {name: OX, valueFrom: {configMapKeyRef: {name: cm, key: nope, optional: true}}}
    - {name: OY, valueFrom: {secretKeyRef: {name: s, key: nope, optional: true}}}
    - {name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: Z, value: "$(B)/$(IP)"}
    - {name: S, value: "x$(PW)"}
    - {name: PW, valueFrom: {secretKeyRef: {name: s, key: PW}}}
    - {name: T, value: "$(PW)"}
"#,
        );
        let env: Vec<(String, String)> = serde_json::from_value(ctx["env"].clone()).unwrap();
        let get = |k: &str| env.iter().rev().find(|e| e.0 == k).map(|e| e.1.as_str());
        assert_eq!(get("B"), Some("$(A)"), "envFrom values are not expanded");
        assert_eq!(get("Z"), Some("$(A)/127.0.0.1"));
        assert_eq!(get("S"), Some("x$(PW)"), "PW is not defined yet");
        assert_eq!(get("PW"), None, "secret: not in the unit");
        assert_eq!(get("T"), None, "built from a secret: not in the unit");
        assert_eq!(get("OX"), None);
        let env_file = files.iter().find(|f| f.path == "env/c.env").unwrap();
        assert!(env_file.secret);
        assert_eq!(
            String::from_utf8_lossy(&env_file.content),
            "PW=\"p\\$w\"\nT=\"p\\$w\"\n"
        );
        // The secret is a typed reference (rendered `${PW}`), never text.
        let argv = ctx["exec_start"].as_array().unwrap();
        assert!(
            argv.contains(&serde_json::json!([{"var": "PW"}, " $(A)"])),
            "{argv:?}"
        );
    }

    #[test]
    fn env_file_escaping() {
        assert_eq!(
            env_file_text(&[("A".into(), "x\"$y`\\\nz".into())]),
            "A=\"x\\\"\\$y\\`\\\\\nz\"\n"
        );
    }
}
