//! Stage 7, observe: systemd unit state (over D-Bus) → Kubernetes pod
//! status: phase, conditions, per-container state, restarts, age.
//!
//! Everything derives from what systemd reports for the pod's units; podc
//! keeps no state of its own about running pods. [`derive`] is pure (unit
//! tested); [`observe`] reads the units.
//!
//! Mapping (container unit → Kubernetes container state):
//! - `active/running` → Running; an init oneshot `activating/start` → Running.
//! - `activating/start-pre|start|start-post`, or never started →
//!   Waiting `ContainerCreating` (`PodInitializing` while init containers
//!   run): a container whose postStart has not finished is not Running.
//! - `activating/auto-restart` → Waiting `CrashLoopBackOff` (systemd waits
//!   `RestartSec=` before the next start), last state Terminated.
//! - `active/exited` (init oneshot, `RemainAfterExit=`) → Terminated `Completed`.
//! - `failed`, or `inactive` after a run → Terminated `Completed` (exit 0) /
//!   `Error` / `OOMKilled` / `StartError` (the main process never ran);
//!   exit code = status, or 128+signal. OOMKilled: systemd's
//!   `Result=oom-kill` (cgroup v2), or, for a run that did not exit 0, the
//!   container's `ExecStopPost=-…podc-pause oom-check` exited
//!   [`crate::oom::OOM_KILLED`]: the kernel OOM-killed a process of the
//!   unit (cgroup v1, where systemd only says `signal`).
//! - restart count = `NRestarts`.
//!
//! Because systemd applies `Restart=`, a unit that is `failed`/`inactive`
//! is final: its restart policy did not restart it. The phase therefore
//! needs no knowledge of the policy.

use crate::install::{ContainerInfo, InstalledPod};
use crate::systemd::{Systemd, UnitState};
use serde_json::{json, Value};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    Waiting {
        reason: String,
    },
    Running {
        started_us: u64,
    },
    Terminated {
        reason: String,
        exit_code: i32,
        started_us: u64,
        finished_us: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerStatus {
    pub name: String,
    pub unit: String,
    pub role: String,
    pub state: State,
    /// For a container waiting to restart: how its last run ended.
    pub last: Option<State>,
    pub ready: bool,
    pub restart_count: u32,
    /// Why the container is waiting, when podc knows more than the reason
    /// (CreateContainerConfigError's message).
    pub message: Option<String>,
    /// systemd's view, for messages: `ActiveState/SubState`, `Result`.
    pub active_state: String,
    pub sub_state: String,
    pub result: String,
    pub main_pid: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Copy)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Unknown => "Unknown",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodStatus {
    pub namespace: String,
    pub name: String,
    pub phase: Phase,
    pub initialized: bool,
    pub containers_ready: bool,
    pub init_containers: Vec<ContainerStatus>,
    pub containers: Vec<ContainerStatus>,
    /// When the pod (its target, else its infra) became active, µs.
    pub start_us: u64,
    /// The infra unit's state, `active/running` when the namespaces exist.
    pub infra_state: String,
    /// `status.podIP`: [`crate::plan::POD_IP`] in the pod's own network
    /// namespace, the host's address with `hostNetwork`; `None` while the
    /// infra unit is not running (Kubernetes has no IP before the sandbox
    /// exists) or when the host has no address to report.
    pub pod_ip: Option<String>,
}

impl PodStatus {
    pub fn ready(&self) -> bool {
        self.containers_ready && self.initialized
    }

    /// `READY` column: ready / all of the app containers and sidecars
    /// (init containers with `restartPolicy: Always`), as kubectl counts.
    pub fn ready_column(&self) -> String {
        let counted = || {
            self.init_containers
                .iter()
                .filter(|c| c.role == "sidecar")
                .chain(&self.containers)
        };
        let n = counted().count();
        let r = counted().filter(|c| c.ready).count();
        format!("{r}/{n}")
    }

    pub fn restarts(&self) -> u32 {
        self.init_containers
            .iter()
            .chain(&self.containers)
            .map(|c| c.restart_count)
            .sum()
    }

    /// kubectl's STATUS column: the phase, or the most telling container
    /// reason (`Init:1/3`, `Init:CrashLoopBackOff`, `CrashLoopBackOff`,
    /// `Completed`, `Error`, `ContainerCreating`, ...).
    pub fn status_column(&self) -> String {
        let inits: Vec<&ContainerStatus> = self
            .init_containers
            .iter()
            .filter(|c| c.role == "init")
            .collect();
        if !self.initialized {
            for c in &inits {
                match &c.state {
                    State::Terminated { reason, .. } if reason != "Completed" => {
                        return format!("Init:{reason}")
                    }
                    State::Waiting { reason } if reason == "CrashLoopBackOff" => {
                        return format!("Init:{reason}")
                    }
                    _ => {}
                }
            }
            let done = inits
                .iter()
                .filter(|c| matches!(&c.state, State::Terminated { reason, .. } if reason == "Completed"))
                .count();
            return format!("Init:{done}/{}", inits.len());
        }
        let mut reason = None;
        for c in &self.containers {
            match &c.state {
                State::Waiting { reason: r } if r == "CrashLoopBackOff" || reason.is_none() => {
                    reason = Some(r.clone());
                }
                State::Terminated { reason: r, .. }
                    if self.phase != Phase::Running && (reason.is_none() || r != "Completed") =>
                {
                    reason = Some(r.clone());
                }
                _ => {}
            }
        }
        match (self.phase, reason) {
            (Phase::Running, Some(r)) if r == "CrashLoopBackOff" => r,
            (Phase::Running, _) => "Running".into(),
            (Phase::Pending, Some(r)) => r,
            (_, Some(r)) => r,
            (p, None) => p.to_string(),
        }
    }

    /// The containers that explain a failure (failed, crash-looping,
    /// failed to start), init containers first.
    pub fn failing(&self) -> Vec<&ContainerStatus> {
        self.init_containers
            .iter()
            .chain(&self.containers)
            .filter(|c| match &c.state {
                State::Waiting { reason } => {
                    reason == "CrashLoopBackOff" || reason == "CreateContainerConfigError"
                }
                State::Terminated { reason, .. } => reason != "Completed",
                State::Running { .. } => false,
            })
            .collect()
    }
}

/// One container unit's state. `init_pending`: an earlier init container
/// has not completed (Kubernetes says `PodInitializing` then).
pub fn container_status(
    info: &ContainerInfo,
    st: Option<&UnitState>,
    init_pending: bool,
) -> ContainerStatus {
    let creating = if init_pending && info.role == "app" {
        "PodInitializing"
    } else {
        "ContainerCreating"
    };
    let waiting = |r: &str| State::Waiting { reason: r.into() };
    let mut cs = ContainerStatus {
        name: info.name.clone(),
        unit: info.unit.clone(),
        role: info.role.clone(),
        state: waiting(creating),
        last: None,
        ready: false,
        restart_count: 0,
        message: None,
        active_state: String::new(),
        sub_state: String::new(),
        result: String::new(),
        main_pid: 0,
    };
    // The planner found the container cannot be created (runAsNonRoot and
    // a root image): Kubernetes keeps it Waiting with
    // CreateContainerConfigError and never runs it. Its unit's joiner
    // refuses to exec, so whatever systemd says, it did not run.
    if let Some(e) = &info.config_error {
        cs.state = waiting("CreateContainerConfigError");
        cs.message = Some(e.clone());
        if let Some(st) = st {
            cs.active_state = st.active_state.clone();
            cs.sub_state = st.sub_state.clone();
            cs.result = st.service.clone().unwrap_or_default().result;
        }
        return cs;
    }
    let Some(st) = st else { return cs };
    cs.active_state = st.active_state.clone();
    cs.sub_state = st.sub_state.clone();
    let svc = st.service.clone().unwrap_or_default();
    cs.result = svc.result.clone();
    cs.restart_count = svc.n_restarts;
    cs.main_pid = svc.main_pid;
    let terminated = || {
        let exit_code = match svc.exec_main_code {
            1 => svc.exec_main_status,
            2 | 3 => 128 + svc.exec_main_status,
            _ => 0,
        };
        let reason = if svc.result == "oom-kill" {
            "OOMKilled"
        } else if oom_checked(&svc) && !(svc.exec_main_code == 1 && exit_code == 0) {
            // A failed run during which the kernel OOM-killed a process of
            // the unit (podc's check, for cgroup v1; systemd's own result
            // above on v2). As containerd does, any OOM kill in the
            // container counts, not only the main process's.
            "OOMKilled"
        } else if svc.exec_main_start_us == 0 && svc.exec_main_code == 0 {
            "StartError"
        } else if svc.exec_main_code == 1 && exit_code == 0 && svc.result == "success" {
            "Completed"
        } else {
            "Error"
        };
        State::Terminated {
            reason: reason.into(),
            exit_code: if reason == "StartError" {
                128
            } else {
                exit_code
            },
            started_us: svc.exec_main_start_us,
            finished_us: svc.exec_main_exit_us,
        }
    };
    let ran = !st.invocation_id.is_empty();
    cs.state = match (st.active_state.as_str(), st.sub_state.as_str()) {
        ("active", "exited") => terminated(),
        ("active", _) | ("deactivating", _) | ("reloading", _) => State::Running {
            started_us: svc.exec_main_start_us,
        },
        ("activating", "auto-restart") => {
            cs.last = Some(terminated());
            waiting("CrashLoopBackOff")
        }
        ("activating", "start") if info.role == "init" => State::Running {
            started_us: svc.exec_main_start_us,
        },
        ("activating", _) => waiting(creating),
        ("failed", _) => terminated(),
        ("inactive", _) if ran && (svc.exec_main_code != 0 || svc.result != "success") => {
            terminated()
        }
        // Ran and ended well, but systemd never adopted a main process: a
        // `Type=forking` command that exited before the joiner did.
        ("inactive", _) if ran && st.active_enter_us != 0 => State::Terminated {
            reason: "Completed".into(),
            exit_code: 0,
            started_us: st.active_enter_us,
            finished_us: st.state_change_us,
        },
        _ => waiting(creating),
    };
    cs.ready = matches!(cs.state, State::Running { .. });
    cs
}

/// Whether the last run's `podc-pause oom-check` (`ExecStopPost=`) found
/// OOM kills in the unit's cgroup.
fn oom_checked(svc: &crate::systemd::ServiceState) -> bool {
    svc.stop_post.iter().any(|r| {
        r.argv.get(1).is_some_and(|a| a == "oom-check")
            && r.argv.first().is_some_and(|a| a.ends_with("/podc-pause"))
            && r.code == 1
            && r.status == crate::oom::OOM_KILLED
    })
}

/// Derive a pod's status from its units' states (`None`: not loaded).
pub fn derive(
    pod: &InstalledPod,
    target: Option<&UnitState>,
    infra: Option<&UnitState>,
    containers: &[Option<UnitState>],
) -> PodStatus {
    let mut init_containers = Vec::new();
    let mut apps = Vec::new();
    let mut init_pending = false;
    for (info, st) in pod.containers.iter().zip(containers) {
        let cs = container_status(info, st.as_ref(), init_pending);
        match info.role.as_str() {
            "init" => {
                if !matches!(&cs.state, State::Terminated { reason, .. } if reason == "Completed") {
                    init_pending = true;
                }
                init_containers.push(cs);
            }
            "sidecar" => {
                if !matches!(cs.state, State::Running { .. }) {
                    init_pending = true;
                }
                init_containers.push(cs);
            }
            _ => apps.push(cs),
        }
    }
    let initialized = !init_pending;
    let init_failed = init_containers.iter().any(|c| {
        c.role == "init"
            && matches!(&c.state, State::Terminated { reason, .. } if reason != "Completed")
    });
    let all_apps_terminated = !apps.is_empty()
        && apps
            .iter()
            .all(|c| matches!(c.state, State::Terminated { .. }));
    let any_app_live = apps.iter().any(|c| {
        matches!(c.state, State::Running { .. })
            || matches!(&c.state, State::Waiting { reason } if reason == "CrashLoopBackOff")
    });
    let any_app_terminated = apps
        .iter()
        .any(|c| matches!(c.state, State::Terminated { .. }));
    // A container that cannot be created keeps the pod Pending, as the
    // kubelet's phase rule does for a container waiting to start.
    let config_blocked = apps.iter().any(
        |c| matches!(&c.state, State::Waiting { reason } if reason == "CreateContainerConfigError"),
    );
    let phase = if init_failed {
        Phase::Failed
    } else if config_blocked {
        Phase::Pending
    } else if initialized && all_apps_terminated {
        if apps
            .iter()
            .all(|c| matches!(&c.state, State::Terminated { reason, .. } if reason == "Completed"))
        {
            Phase::Succeeded
        } else {
            Phase::Failed
        }
    } else if initialized && (any_app_live || any_app_terminated) {
        Phase::Running
    } else {
        Phase::Pending
    };
    // Sidecars count, as in the kubelet's ContainersReady condition.
    let containers_ready = !apps.is_empty()
        && apps.iter().all(|c| c.ready)
        && init_containers
            .iter()
            .filter(|c| c.role == "sidecar")
            .all(|c| c.ready);
    let start_us = target
        .map(|t| t.active_enter_us)
        .filter(|t| *t != 0)
        .or(infra.map(|i| i.active_enter_us))
        .unwrap_or(0);
    PodStatus {
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        phase,
        initialized,
        containers_ready,
        init_containers,
        containers: apps,
        start_us,
        infra_state: infra
            .map(|i| format!("{}/{}", i.active_state, i.sub_state))
            .unwrap_or_else(|| "not-loaded".into()),
        pod_ip: infra.filter(|i| i.active_state == "active").and_then(|_| {
            if pod.host_network {
                host_ip()
            } else {
                Some(crate::plan::POD_IP.to_string())
            }
        }),
    }
}

/// The host's address as kubelet would report it for a `hostNetwork`
/// pod: the source address of the route to the outside (a UDP `connect`
/// only looks the route up; nothing is sent), else none.
pub fn host_ip() -> Option<String> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then(|| ip.to_string())
}

/// Read a unit's state, `None` when systemd has not loaded it.
pub fn read_unit(sd: &Systemd, name: &str) -> crate::systemd::Result<Option<UnitState>> {
    match sd.get_unit(name)? {
        Some(p) => {
            let st = sd.unit_state(p.as_str())?;
            Ok((st.load_state != "not-found").then_some(st))
        }
        None => Ok(None),
    }
}

/// A pod's status as systemd reports it now.
pub fn observe(sd: &Systemd, pod: &InstalledPod) -> crate::systemd::Result<PodStatus> {
    let target = read_unit(sd, &pod.target)?;
    let infra = read_unit(sd, &pod.infra())?;
    let mut cs = Vec::new();
    for c in &pod.containers {
        cs.push(read_unit(sd, &c.unit)?);
    }
    Ok(derive(pod, target.as_ref(), infra.as_ref(), &cs))
}

/// kubectl-style age: `45s`, `3m12s`, `5h`, `2d`.
pub fn age(start_us: u64, now_us: u64) -> String {
    if start_us == 0 {
        return "<none>".into();
    }
    let s = now_us.saturating_sub(start_us) / 1_000_000;
    match s {
        0..=119 => format!("{s}s"),
        120..=599 => format!("{}m{}s", s / 60, s % 60),
        600..=10_799 => format!("{}m", s / 60),
        10_800..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// RFC 3339 UTC (`2024-05-01T12:00:00Z`) from µs since the epoch.
pub fn rfc3339(us: u64) -> String {
    let secs = (us / 1_000_000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn ts(us: u64) -> Value {
    if us == 0 {
        Value::Null
    } else {
        Value::String(rfc3339(us))
    }
}

fn state_json(s: &State) -> Value {
    match s {
        State::Waiting { reason } => json!({"waiting": {"reason": reason}}),
        State::Running { started_us } => json!({"running": {"startedAt": ts(*started_us)}}),
        State::Terminated {
            reason,
            exit_code,
            started_us,
            finished_us,
        } => json!({"terminated": {
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": ts(*started_us),
            "finishedAt": ts(*finished_us),
        }}),
    }
}

fn container_json(c: &ContainerStatus) -> Value {
    let mut state = state_json(&c.state);
    if let (Some(m), Some(w)) = (&c.message, state.get_mut("waiting")) {
        w["message"] = json!(m);
    }
    json!({
        "name": c.name,
        "state": state,
        "lastState": c.last.as_ref().map(state_json).unwrap_or(json!({})),
        "ready": c.ready,
        "restartCount": c.restart_count,
        "started": matches!(c.state, State::Running { .. }),
    })
}

/// A Kubernetes `Pod` object carrying this status (`kubectl get pod -o json`).
pub fn pod_json(s: &PodStatus) -> Value {
    let cond = |t: &str, ok: bool| json!({"type": t, "status": if ok { "True" } else { "False" }});
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": s.name,
            "namespace": s.namespace,
            "creationTimestamp": ts(s.start_us),
        },
        "status": {
            "phase": s.phase.to_string(),
            "conditions": [
                cond("PodScheduled", true),
                cond("Initialized", s.initialized),
                cond("ContainersReady", s.containers_ready),
                cond("Ready", s.ready()),
            ],
            "podIP": s.pod_ip,
            "podIPs": s.pod_ip.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>(),
            "startTime": ts(s.start_us),
            "initContainerStatuses": s.init_containers.iter().map(container_json).collect::<Vec<_>>(),
            "containerStatuses": s.containers.iter().map(container_json).collect::<Vec<_>>(),
        }
    })
}

/// A small YAML emitter for JSON values (block style; strings in JSON
/// double quotes, which YAML reads the same).
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    yaml_into(v, 0, &mut out);
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

fn yaml_into(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) => {
            for (k, val) in m {
                match val {
                    Value::Object(o) if !o.is_empty() => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        yaml_into(val, indent + 2, out);
                    }
                    Value::Array(a) if !a.is_empty() => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        yaml_into(val, indent, out);
                    }
                    Value::Object(_) => out.push_str(&format!("{pad}{k}: {{}}\n")),
                    Value::Array(_) => out.push_str(&format!("{pad}{k}: []\n")),
                    _ => out.push_str(&format!("{pad}{k}: {}\n", scalar(val))),
                }
            }
        }
        Value::Array(a) => {
            for item in a {
                match item {
                    Value::Object(o) if !o.is_empty() => {
                        let mut sub = String::new();
                        yaml_into(item, indent + 2, &mut sub);
                        // First line of the item goes after "- ".
                        let sub = sub.replacen(&" ".repeat(indent + 2), "", 1);
                        out.push_str(&format!("{pad}- {sub}"));
                    }
                    _ => out.push_str(&format!("{pad}- {}\n", scalar(item))),
                }
            }
        }
        _ => out.push_str(&format!("{pad}{}\n", scalar(v))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::systemd::ServiceState;

    fn info(name: &str, role: &str) -> ContainerInfo {
        ContainerInfo {
            name: name.into(),
            unit: format!("podc_default_p_{name}.service"),
            role: role.into(),
            config_error: None,
        }
    }

    fn st(active: &str, sub: &str, result: &str, code: i32, status: i32) -> Option<UnitState> {
        Some(UnitState {
            load_state: "loaded".into(),
            active_state: active.into(),
            sub_state: sub.into(),
            invocation_id: "ab".repeat(16),
            service: Some(ServiceState {
                result: result.into(),
                exec_main_status: status,
                exec_main_code: code,
                n_restarts: 0,
                main_pid: 0,
                exec_main_start_us: 1,
                exec_main_exit_us: 2,
                stop_post: vec![],
            }),
            ..Default::default()
        })
    }

    fn pod(cs: &[ContainerInfo]) -> InstalledPod {
        InstalledPod {
            namespace: "default".into(),
            name: "p".into(),
            id: "default_p".into(),
            file: String::new(),
            target: "podc_default_p.target".into(),
            slice: String::new(),
            unit_dir: String::new(),
            runtime: false,
            units: Default::default(),
            containers: cs.to_vec(),
            files: Default::default(),
            pending: false,
            enabled: vec![],
            host_network: false,
        }
    }

    #[test]
    fn sidecars_count_in_ready_like_kubectl() {
        let p = pod(&[
            info("init", "init"),
            info("tail", "sidecar"),
            info("a", "app"),
        ]);
        let done = st("active", "exited", "success", 1, 0);
        let run = st("active", "running", "success", 0, 0);
        let waiting = st("activating", "auto-restart", "exit-code", 1, 1);
        let s = derive(&p, None, None, &[done.clone(), run.clone(), run.clone()]);
        assert_eq!(s.ready_column(), "2/2");
        assert!(s.ready());
        // A sidecar that is down keeps the pod from ContainersReady.
        let s = derive(&p, None, None, &[done, waiting, run]);
        assert_eq!(s.ready_column(), "1/2");
        assert!(!s.containers_ready);
    }

    #[test]
    fn phases() {
        let p = pod(&[info("i", "init"), info("a", "app"), info("b", "app")]);
        let done = st("active", "exited", "success", 1, 0);
        let run = st("active", "running", "success", 0, 0);
        let ok = st("inactive", "dead", "success", 1, 0);
        let bad = st("failed", "failed", "exit-code", 1, 3);
        let s = derive(&p, None, None, &[done.clone(), run.clone(), run.clone()]);
        assert_eq!(
            (s.phase, s.ready_column().as_str()),
            (Phase::Running, "2/2")
        );
        assert!(s.ready());
        assert_eq!(s.status_column(), "Running");
        let s = derive(&p, None, None, &[done.clone(), ok.clone(), ok.clone()]);
        assert_eq!(
            (s.phase, s.status_column().as_str()),
            (Phase::Succeeded, "Completed")
        );
        let s = derive(&p, None, None, &[done.clone(), ok.clone(), bad.clone()]);
        assert_eq!(
            (s.phase, s.status_column().as_str()),
            (Phase::Failed, "Error")
        );
        assert_eq!(
            s.containers[1].state,
            State::Terminated {
                reason: "Error".into(),
                exit_code: 3,
                started_us: 1,
                finished_us: 2
            }
        );
        // Failed init under Never: the pod fails, apps never start.
        let s = derive(&p, None, None, &[bad.clone(), None, None]);
        assert_eq!(
            (s.phase, s.status_column().as_str()),
            (Phase::Failed, "Init:Error")
        );
        // Init retried (auto-restart): Pending, Init:CrashLoopBackOff.
        let retry = st("activating", "auto-restart", "exit-code", 1, 1);
        let s = derive(&p, None, None, &[retry, None, None]);
        assert_eq!(
            (s.phase, s.status_column().as_str()),
            (Phase::Pending, "Init:CrashLoopBackOff")
        );
        assert_eq!(
            s.containers[0].state,
            State::Waiting {
                reason: "PodInitializing".into()
            }
        );
        let s = derive(&p, None, None, &[None, None, None]);
        assert_eq!(
            (s.phase, s.status_column().as_str()),
            (Phase::Pending, "Init:0/1")
        );
        // App crash-looping under Always: Running, CrashLoopBackOff.
        let crash = st("activating", "auto-restart", "exit-code", 1, 1);
        let s = derive(&p, None, None, &[done, run, crash]);
        assert_eq!(
            (s.phase, s.status_column().as_str()),
            (Phase::Running, "CrashLoopBackOff")
        );
        assert_eq!(s.failing().len(), 1);
    }

    #[test]
    fn signals_and_oom() {
        let i = info("a", "app");
        let c = container_status(&i, st("failed", "failed", "signal", 2, 9).as_ref(), false);
        assert!(matches!(c.state, State::Terminated { exit_code: 137, .. }));
        let c = container_status(&i, st("failed", "failed", "oom-kill", 2, 9).as_ref(), false);
        assert!(matches!(&c.state, State::Terminated { reason, .. } if reason == "OOMKilled"));
        // cgroup v1: systemd says `signal`; podc's ExecStopPost check says OOM.
        let check = |status: i32| crate::systemd::ExecRun {
            argv: vec!["/usr/lib/podc/podc-pause".into(), "oom-check".into()],
            code: 1,
            status,
        };
        let with_check = |mut u: Option<UnitState>, status: i32| {
            if let Some(s) = u.as_mut().and_then(|u| u.service.as_mut()) {
                s.stop_post = vec![check(status)];
            }
            u
        };
        let killed = with_check(
            st("failed", "failed", "signal", 2, 9),
            crate::oom::OOM_KILLED,
        );
        let c = container_status(&i, killed.as_ref(), false);
        assert_eq!(
            c.state,
            State::Terminated {
                reason: "OOMKilled".into(),
                exit_code: 137,
                started_us: 1,
                finished_us: 2
            }
        );
        // Restarting: the last run was OOM-killed.
        let again = with_check(
            st("activating", "auto-restart", "signal", 2, 9),
            crate::oom::OOM_KILLED,
        );
        let c = container_status(&i, again.as_ref(), false);
        assert!(
            matches!(&c.last, Some(State::Terminated { reason, .. }) if reason == "OOMKilled"),
            "{c:?}"
        );
        // A plain kill -9, and a check that found nothing: Error.
        for (status, st) in [
            (0, st("failed", "failed", "signal", 2, 9)),
            (2, st("failed", "failed", "signal", 2, 9)),
        ] {
            let c = container_status(&i, with_check(st, status).as_ref(), false);
            assert!(matches!(&c.state, State::Terminated { reason, .. } if reason == "Error"));
        }
        // A main process that exited 0 after a child was OOM-killed completed.
        let ok = with_check(
            st("inactive", "dead", "success", 1, 0),
            crate::oom::OOM_KILLED,
        );
        let c = container_status(&i, ok.as_ref(), false);
        assert!(matches!(&c.state, State::Terminated { reason, .. } if reason == "Completed"));
    }

    #[test]
    fn time_formats() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(age(1, 61_000_001), "61s");
        assert_eq!(age(0, 5), "<none>");
    }

    #[test]
    fn yaml() {
        let v = json!({"a": {"b": [ {"c": 1, "d": "x"}, 2 ], "e": {}}});
        assert_eq!(
            to_yaml(&v),
            "a:\n  b:\n  - c: 1\n    d: \"x\"\n  - 2\n  e: {}\n"
        );
    }
}
