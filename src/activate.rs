//! Stage 6, activate: bring systemd to the desired pods over D-Bus.
//!
//! `apply` in order, so that a `kill -9` at any point converges on the
//! next run:
//! 1. Diff: a pod is *new* (not in the inventory), *changed* (a unit or data
//!    file hash differs from the inventory or from the file on disk, or an
//!    earlier apply left it `pending`), *unchanged*, or (with `--prune`) *to
//!    prune* (in the inventory, not in the input). Nothing to do → no
//!    reload, no job, exit.
//! 2. The inventory is written with every touched pod marked `pending`
//!    (and still listing units it is about to drop): a killed apply redoes
//!    those pods next time.
//! 3. Changed and pruned pods are stopped gracefully, with their *old*
//!    units (preStop runs, `TimeoutStopSec=` is the grace period); one
//!    job per unit, waited on by their `JobRemoved`.
//! 4. Files are written (atomically), units of pruned pods and units that
//!    a changed pod no longer has are removed, pod targets are enabled
//!    (persistent installs).
//! 5. At most one `daemon-reload`: only if a unit file systemd has loaded
//!    changed or a unit file was removed (files of units systemd never
//!    loaded, as a new pod's, are loaded from disk by the start job).
//! 6. The targets of new and changed pods are started and their start jobs
//!    waited for (`JobRemoved`); every unit's state is then read in one
//!    call. Pods that are not settled yet are followed (`Subscribe`, read
//!    again, then `PropertiesChanged`/`JobRemoved` of their units) until
//!    each pod settled (no job queued, no unit activating other than a
//!    restart timer): Running with every container ready, Succeeded, or
//!    not (Failed, crash looping, init failing): reported with the
//!    container, systemd's Result, the exit status and journal lines.
//! 7. The inventory is written again with `pending` cleared.

use crate::install::{self, DesiredPod, Installed, InstalledPod, Paths};
use crate::observe::{self, Phase, PodStatus, State};
use crate::systemd::{Event, Systemd, UnitState};
use crate::term::safe;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Options {
    pub timeout: Duration,
    pub prune: bool,
    pub dry_run: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Create,
    Recreate,
    Unchanged,
    Prune,
}

#[derive(Clone, Debug)]
pub struct PlanItem {
    pub key: String,
    pub id: String,
    pub action: Action,
    pub why: String,
}

/// Decide what to do with every pod (see the module doc).
pub fn plan(
    desired: &[DesiredPod],
    installed: &Installed,
    paths: &Paths,
    prune: bool,
) -> Vec<PlanItem> {
    let mut items = Vec::new();
    for d in desired {
        let (action, why) = match installed.pods.get(&d.id) {
            None => (Action::Create, "new pod".to_string()),
            Some(i) => {
                let hashes = d.unit_hashes();
                if i.pending {
                    (Action::Recreate, "an earlier apply did not finish".into())
                } else if i.units != hashes {
                    let changed: Vec<&str> = hashes
                        .keys()
                        .chain(i.units.keys())
                        .filter(|u| hashes.get(*u) != i.units.get(*u))
                        .map(String::as_str)
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    (Action::Recreate, format!("changed: {}", changed.join(", ")))
                } else if i.files != d.file_records()
                    || !install::secret_files_on_disk_match(paths, d)
                {
                    (Action::Recreate, "data files changed".into())
                } else if i.unit_dir != paths.unit_dir.display().to_string() {
                    (
                        Action::Recreate,
                        format!("moving units from {}", i.unit_dir),
                    )
                } else if let Some((n, _)) = hashes
                    .iter()
                    .find(|(n, h)| !install::unit_on_disk_is(paths, n, h))
                {
                    (Action::Recreate, format!("{n} on disk differs"))
                } else {
                    (Action::Unchanged, String::new())
                }
            }
        };
        items.push(PlanItem {
            key: d.key(),
            id: d.id.clone(),
            action,
            why,
        });
    }
    if prune {
        for (id, i) in &installed.pods {
            if !desired.iter().any(|d| &d.id == id) {
                items.push(PlanItem {
                    key: i.key(),
                    id: id.clone(),
                    action: Action::Prune,
                    why: "not in the input".into(),
                });
            }
        }
    }
    items
}

fn err<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Stop every unit of these pods (services and target) gracefully and wait
/// for the stop jobs. Units systemd does not know are skipped.
pub fn stop_pods(sd: &Systemd, pods: &[&InstalledPod], deadline: Instant) -> Result<(), String> {
    let mut jobs = Vec::new();
    for p in pods {
        let mut names: Vec<String> = p
            .units
            .keys()
            .filter(|u| u.ends_with(".service"))
            .cloned()
            .collect();
        names.push(p.target.clone());
        for n in names {
            let Some(st) = observe::read_unit(sd, &n).map_err(err("reading units"))? else {
                continue;
            };
            if st.active_state == "inactive" && !st.has_job {
                continue;
            }
            match sd.stop_unit(&n, "replace") {
                Ok(j) => jobs.push(j),
                Err(e) => return Err(format!("stopping {n}: {e}")),
            }
        }
    }
    let left = deadline.saturating_duration_since(Instant::now());
    sd.wait_jobs(&jobs, left)
        .map_err(err("waiting for stop jobs"))?;
    for p in pods {
        for n in p.units.keys() {
            let _ = sd.reset_failed_unit(n);
        }
    }
    Ok(())
}

/// A pod whose infra unit failed (its namespaces or volumes could not be
/// set up: a hostPath that did not exist, ...) is started again by the next
/// apply, as the kubelet keeps retrying a pod's setup. A pod whose
/// containers ended (Completed, or Error under `Never`) is left as it is.
fn retry_failed_setup(sd: &Systemd, installed: &Installed, items: &mut [PlanItem]) {
    for it in items.iter_mut().filter(|i| i.action == Action::Unchanged) {
        let Some(pod) = installed.pods.get(&it.id) else {
            continue;
        };
        let failed = observe::read_unit(sd, &pod.infra())
            .ok()
            .flatten()
            .is_some_and(|s| s.active_state == "failed");
        if failed {
            it.action = Action::Recreate;
            it.why = "its infra unit had failed; retrying the setup".into();
        }
    }
}

/// The outcome of one pod after apply.
#[derive(Debug)]
pub struct Outcome {
    pub key: String,
    pub action: Action,
    pub status: Option<PodStatus>,
    pub ok: bool,
    pub elapsed: Duration,
    pub timed_out: bool,
}

/// Apply: see the module doc. Prints one line per pod (and the reasons of
/// failures) to `out`; returns whether every pod is Running/Succeeded.
pub fn apply(
    sd: Option<&Systemd>,
    paths: &Paths,
    desired: &[DesiredPod],
    opts: &Options,
    out: &mut dyn Write,
) -> Result<bool, String> {
    let t0 = Instant::now();
    let mut installed = Installed::load(paths)?;
    let mut items = plan(desired, &installed, paths, opts.prune);
    if let (Some(sd), false) = (sd, opts.dry_run) {
        retry_failed_setup(sd, &installed, &mut items);
    }
    if opts.dry_run {
        let mut reload = false;
        for it in &items {
            let verb = match it.action {
                Action::Create => "would be created",
                Action::Recreate => "would be recreated",
                Action::Unchanged => "unchanged",
                Action::Prune => "would be pruned",
            };
            reload |= it.action != Action::Unchanged;
            let why = if it.why.is_empty() {
                String::new()
            } else {
                format!(" ({})", it.why)
            };
            let _ = writeln!(out, "pod {} {verb}{why} (dry run)", it.key);
        }
        let _ = writeln!(
            out,
            "daemon-reload: {} (dry run)",
            if reload { "would run" } else { "not needed" }
        );
        return Ok(true);
    }
    let sd = sd.ok_or("no connection to systemd")?;
    // even when nothing changes: trees an older podc left open close here
    install::make_private(paths).map_err(err("making podc's directories private"))?;
    install::remove_stale_tmp(&paths.unit_dir);
    install::remove_stale_data_tmp(paths);
    let touched: Vec<&PlanItem> = items
        .iter()
        .filter(|i| i.action != Action::Unchanged)
        .collect();
    if touched.is_empty() {
        // Idempotent path: no write, no reload, no job.
        let mut all_ok = true;
        for it in &items {
            all_ok &= report_unchanged(sd, &installed.pods[&it.id], out)?;
        }
        return Ok(all_ok);
    }

    // 2. Mark pending, remembering old units that will be dropped.
    let by_id: HashMap<&str, &DesiredPod> = desired.iter().map(|d| (d.id.as_str(), d)).collect();
    let old: BTreeMap<String, InstalledPod> = installed.pods.clone();
    for it in &touched {
        match it.action {
            Action::Create | Action::Recreate => {
                let d = by_id[it.id.as_str()];
                let mut entry = InstalledPod::from_desired(d, paths);
                if let Some(o) = old.get(&it.id) {
                    for (u, h) in &o.units {
                        entry.units.entry(u.clone()).or_insert_with(|| h.clone());
                    }
                    entry.enabled = o.enabled.clone();
                }
                entry.pending = true;
                installed.pods.insert(it.id.clone(), entry);
            }
            Action::Prune => {
                if let Some(p) = installed.pods.get_mut(&it.id) {
                    p.pending = true;
                }
            }
            Action::Unchanged => {}
        }
    }
    installed
        .save(paths)
        .map_err(err("writing the inventory"))?;

    // 3. Stop changed and pruned pods, with their old units.
    let stop: Vec<InstalledPod> = touched
        .iter()
        .filter(|i| i.action != Action::Create)
        .filter_map(|i| installed.pods.get(&i.id).cloned())
        .collect();
    if !stop.is_empty() {
        let refs: Vec<&InstalledPod> = stop.iter().collect();
        stop_pods(sd, &refs, Instant::now() + opts.timeout)?;
    }

    // 4. Files: prune, drop units a changed pod no longer has, write.
    let mut unit_changed = false;
    let mut unit_removed = false;
    for it in touched.iter().filter(|i| i.action == Action::Prune) {
        let p = installed.pods[&it.id].clone();
        if !p.runtime {
            let _ = sd.disable_unit_files(&[p.target.as_str()], false);
        }
        install::remove_pod(paths, &p).map_err(err(&format!("removing pod {}", it.key)))?;
        unit_changed = true;
        unit_removed = true;
        installed.pods.remove(&it.id);
    }
    let mut to_start = Vec::new();
    for it in touched
        .iter()
        .filter(|i| matches!(i.action, Action::Create | Action::Recreate))
    {
        let d = by_id[it.id.as_str()];
        let want = d.unit_hashes();
        let entry = installed.pods.get_mut(&it.id).expect("pending entry");
        let old_dir = std::path::PathBuf::from(
            old.get(&it.id)
                .map(|o| o.unit_dir.clone())
                .unwrap_or_else(|| paths.unit_dir.display().to_string()),
        );
        for u in entry.units.keys().filter(|u| !want.contains_key(*u)) {
            for dir in [&old_dir, &paths.unit_dir] {
                if let Ok(p) = crate::output::confined(dir, u) {
                    if std::fs::remove_file(p).is_ok() {
                        unit_changed = true;
                        unit_removed = true;
                    }
                }
            }
        }
        if old_dir != paths.unit_dir {
            for u in want.keys() {
                if let Ok(p) = crate::output::confined(&old_dir, u) {
                    if std::fs::remove_file(p).is_ok() {
                        unit_changed = true;
                        unit_removed = true;
                    }
                }
            }
        }
        entry.units = want;
        unit_changed |=
            install::install_pod(paths, d).map_err(err(&format!("installing pod {}", it.key)))?;
        if paths.runtime && !entry.enabled.is_empty() {
            // Moved from a persistent install: drop its enable link.
            let _ = sd.disable_unit_files(&[d.target.as_str()], false);
            for l in std::mem::take(&mut entry.enabled) {
                if let Ok(p) = crate::output::confined(&old_dir, &l) {
                    let _ = std::fs::remove_file(p);
                }
            }
        }
        to_start.push(it.id.clone());
    }
    // Persistent installs: enable every started pod's target, in one call.
    if !paths.runtime && !to_start.is_empty() {
        let targets: Vec<&str> = to_start
            .iter()
            .map(|id| installed.pods[id].target.as_str())
            .collect();
        sd.enable_unit_files(&targets, false, true)
            .map_err(err(&format!("enabling {}", targets.join(" "))))?;
        for id in &to_start {
            if let Some(entry) = installed.pods.get_mut(id) {
                let link = format!("multi-user.target.wants/{}", entry.target);
                if paths.unit_dir.join(&link).symlink_metadata().is_ok() {
                    entry.enabled = vec![link];
                }
            }
        }
    }
    // 5. One reload, if a unit file changed (or systemd says it must).
    // Not for files of units systemd has not loaded (new pods): a job that
    // names such a unit loads it from disk, since systemd rebuilds its map
    // of unit files when a unit directory changed. A reload re-reads every
    // unit and reruns the generators: 0.2-0.4 s here, more than starting a
    // pod. The one thing it would add is the enable link's Wants= on the
    // running multi-user.target, which matters at the next boot, when it is
    // read anyway.
    if unit_changed && !unit_removed {
        let mut loaded = false;
        'pods: for id in &to_start {
            for u in installed.pods[id].units.keys() {
                if sd.get_unit(u).map_err(err("reading units"))?.is_some() {
                    loaded = true;
                    break 'pods;
                }
            }
        }
        unit_changed = loaded;
    } else if !unit_changed {
        for id in &to_start {
            for u in installed.pods[id].units.keys() {
                if let Some(st) = observe::read_unit(sd, u).map_err(err("reading units"))? {
                    unit_changed |= st.need_daemon_reload;
                }
            }
        }
    }
    if unit_changed {
        sd.reload().map_err(err("daemon-reload"))?;
    }
    installed
        .save(paths)
        .map_err(err("writing the inventory"))?;

    // 6. Start and follow.
    let started = Instant::now();
    let mut jobs = Vec::new();
    for id in &to_start {
        let p = &installed.pods[id];
        jobs.push(
            sd.start_unit(&p.target, "replace")
                .map_err(err(&format!("starting {}", p.target)))?,
        );
    }
    let deadline = started + opts.timeout;
    // While the pods start, systemd is busy starting them: ask it nothing.
    // A target is ordered after the units it wants, so its start job ends
    // once every unit of its pod has started or failed. Then the states are
    // read (and followed, for what is not settled yet). A timeout here is
    // seen by wait_settled.
    let _ = sd.wait_jobs(&jobs, deadline.saturating_duration_since(Instant::now()));
    let pods: Vec<&InstalledPod> = to_start.iter().map(|id| &installed.pods[id]).collect();
    let (statuses, timed_out) = wait_settled(sd, &pods, deadline)?;
    let settle_time = started.elapsed();

    // 7. Record.
    for id in &to_start {
        if let Some(p) = installed.pods.get_mut(id) {
            p.pending = false;
        }
    }
    installed
        .save(paths)
        .map_err(err("writing the inventory"))?;

    // Report.
    let mut all_ok = true;
    for it in &items {
        match it.action {
            Action::Prune => {
                let _ = writeln!(out, "pod {} pruned", it.key);
            }
            Action::Unchanged => {
                all_ok &= report_unchanged(sd, &installed.pods[&it.id], out)?;
            }
            Action::Create | Action::Recreate => {
                let i = to_start
                    .iter()
                    .position(|id| id == &it.id)
                    .expect("started");
                let st = &statuses[i];
                let ok = pod_ok(st);
                all_ok &= ok;
                let verb = if it.action == Action::Create {
                    "created"
                } else {
                    "recreated"
                };
                let _ = writeln!(
                    out,
                    "pod {} {verb}: {} {} ready ({:.2} s){}",
                    it.key,
                    st.status_column(),
                    st.ready_column(),
                    settle_time.as_secs_f64(),
                    if timed_out && !ok {
                        format!(", not settled after {} s", opts.timeout.as_secs())
                    } else {
                        String::new()
                    }
                );
                if !ok {
                    explain(sd, &installed.pods[&it.id], st, out);
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "{} pod(s) started, {} stopped, daemon-reload: {}, {:.2} s",
        to_start.len(),
        stop.len(),
        if unit_changed { "yes" } else { "no" },
        t0.elapsed().as_secs_f64()
    );
    Ok(all_ok)
}

/// One line for a pod apply leaves alone (and why it is not healthy).
fn report_unchanged(sd: &Systemd, pod: &InstalledPod, out: &mut dyn Write) -> Result<bool, String> {
    let st = observe::observe(sd, pod).map_err(err("reading units"))?;
    let ok = pod_ok(&st);
    let _ = writeln!(
        out,
        "pod {} unchanged: {} {} ready",
        pod.key(),
        st.status_column(),
        st.ready_column()
    );
    if !ok {
        explain(sd, pod, &st, out);
    }
    Ok(ok)
}

fn pod_ok(st: &PodStatus) -> bool {
    st.phase == Phase::Succeeded || (st.phase == Phase::Running && st.ready())
}

/// Print why a pod is not Running: each failing container (or the infra),
/// systemd's Result, the exit status and the last journal lines.
pub fn explain(sd: &Systemd, pod: &InstalledPod, st: &PodStatus, out: &mut dyn Write) {
    let mut shown = false;
    for c in st.failing() {
        shown = true;
        let how = match (&c.state, &c.last) {
            (State::Terminated { exit_code, .. }, _)
            | (_, Some(State::Terminated { exit_code, .. })) => {
                format!("exit status {exit_code}")
            }
            _ => "no exit status".into(),
        };
        let reason = match (&c.state, &c.last) {
            (State::Waiting { reason }, Some(State::Terminated { reason: last, .. })) => {
                format!("{reason} (last run: {last})")
            }
            (State::Waiting { reason }, _) => reason.clone(),
            (State::Terminated { reason, .. }, _) => reason.clone(),
            (State::Running { .. }, _) => "Running".into(),
        };
        // the reason and message can quote the image (its user, ...)
        let _ = writeln!(
            out,
            "  container {} ({}): {}, systemd Result={}, {how}, restarts {}",
            c.name,
            c.unit,
            safe(&reason),
            c.result,
            c.restart_count
        );
        if let Some(m) = &c.message {
            let _ = writeln!(out, "    {}", safe(m));
        }
        journal_tail(&c.unit, 20, out);
    }
    if let Ok(Some(infra)) = observe::read_unit(sd, &pod.infra()) {
        if infra.active_state != "active" {
            shown = true;
            let svc = infra.service.unwrap_or_default();
            let _ = writeln!(
                out,
                "  infra ({}): {}/{}, systemd Result={}, exit status {}",
                pod.infra(),
                infra.active_state,
                infra.sub_state,
                svc.result,
                svc.exec_main_status
            );
            journal_tail(&pod.infra(), 20, out);
        }
    }
    if !shown {
        for c in st.init_containers.iter().chain(&st.containers) {
            if !c.ready
                && !matches!(&c.state, State::Terminated { reason, .. } if reason == "Completed")
            {
                let _ = writeln!(
                    out,
                    "  container {} ({}): {}/{}",
                    c.name, c.unit, c.active_state, c.sub_state
                );
                journal_tail(&c.unit, 10, out);
            }
        }
    }
}

/// The last `n` journal lines of a unit (`journalctl -u UNIT -n N -o cat`).
pub fn journal_tail(unit: &str, n: u32, out: &mut dyn Write) {
    let r = std::process::Command::new("journalctl")
        .args(["--no-pager", "-o", "cat", "-n", &n.to_string(), "-u", unit])
        .stdin(std::process::Stdio::null())
        .output();
    if let Ok(o) = r {
        for l in String::from_utf8_lossy(&o.stdout).lines() {
            let _ = writeln!(out, "    | {}", safe(l));
        }
    }
}

/// Follow the units of `pods` until each settled or the deadline passed.
/// Returns their statuses (in order) and whether the deadline hit first.
pub fn wait_settled(
    sd: &Systemd,
    pods: &[&InstalledPod],
    deadline: Instant,
) -> Result<(Vec<PodStatus>, bool), String> {
    // Units by name and object path → (pod, slot); slot 0 target, 1 infra, 2.. containers.
    let mut by_path: HashMap<String, (usize, usize)> = HashMap::new();
    let mut by_name: HashMap<String, (usize, usize)> = HashMap::new();
    let mut states: Vec<Vec<Option<UnitState>>> = Vec::new();
    let mut paths_of: Vec<Vec<String>> = Vec::new();
    // One round trip for every unit's state; a pod whose units are all
    // active with no job queued is settled as it is (Running), the others
    // are read in full (results, exit statuses, restarts) and followed.
    let names: Vec<Vec<String>> = pods
        .iter()
        .map(|p| {
            let mut n = vec![p.target.clone(), p.infra()];
            n.extend(p.containers.iter().map(|c| c.unit.clone()));
            n
        })
        .collect();
    let flat: Vec<&str> = names.iter().flatten().map(String::as_str).collect();
    let rows = sd
        .list_units_by_names(&flat)
        .map_err(err("reading units"))?;
    let mut rows = rows.into_iter();
    for (pi, names) in names.iter().enumerate() {
        let pod_rows: Vec<_> = rows.by_ref().take(names.len()).collect();
        let all_up = pod_rows.len() == names.len()
            && pod_rows.iter().zip(names).all(|(r, n)| {
                &r.name == n
                    && !r.has_job
                    && r.load_state == "loaded"
                    && r.active_state == "active"
                    && (n.ends_with(".target") || r.sub_state == "running")
            });
        let mut sts = Vec::new();
        let mut ps = Vec::new();
        for (slot, n) in names.iter().enumerate() {
            let path = match pod_rows.get(slot).filter(|r| &r.name == n) {
                Some(r) => r.path.clone(),
                None => sd.load_unit(n).map_err(err(&format!("loading {n}")))?,
            };
            by_path.insert(path.as_str().to_string(), (pi, slot));
            by_name.insert(n.clone(), (pi, slot));
            let st = match pod_rows.get(slot) {
                Some(r) if all_up => UnitState {
                    load_state: r.load_state.clone(),
                    active_state: r.active_state.clone(),
                    sub_state: r.sub_state.clone(),
                    service: n
                        .ends_with(".service")
                        .then(crate::systemd::ServiceState::default),
                    ..UnitState::default()
                },
                _ => sd.unit_state(path.as_str()).map_err(err("reading units"))?,
            };
            sts.push(Some(st));
            ps.push(path.as_str().to_string());
        }
        states.push(sts);
        paths_of.push(ps);
    }
    let status = |pi: usize, sts: &[Option<UnitState>]| {
        observe::derive(pods[pi], sts[0].as_ref(), sts[1].as_ref(), &sts[2..])
    };
    // Settled: no job queued and no unit activating (other than waiting
    // for a restart): nothing will change by itself any more, so the
    // status is final for apply (Running, Succeeded, or a failure).
    let settled = |sts: &[Option<UnitState>], _st: &PodStatus| -> bool {
        !sts.iter()
            .flatten()
            .any(|s| s.has_job || (s.active_state == "activating" && s.sub_state != "auto-restart"))
    };
    let mut statuses: Vec<PodStatus> = (0..pods.len()).map(|i| status(i, &states[i])).collect();
    let mut done: Vec<bool> = (0..pods.len())
        .map(|i| settled(&states[i], &statuses[i]))
        .collect();
    if done.iter().any(|d| !d) {
        // Follow what is not settled: subscribe, then read those pods
        // again, so no change falls between the read and the events.
        sd.subscribe().map_err(err("subscribing to systemd"))?;
        let unsettled: Vec<usize> = (0..pods.len()).filter(|pi| !done[*pi]).collect();
        for pi in unsettled {
            for (slot, p) in paths_of[pi].iter().enumerate() {
                states[pi][slot] = Some(sd.unit_state(p).map_err(err("reading units"))?);
            }
            statuses[pi] = status(pi, &states[pi]);
            done[pi] = settled(&states[pi], &statuses[pi]);
        }
    }
    while done.iter().any(|d| !d) {
        let ev = sd
            .next_event(deadline)
            .map_err(err("waiting for systemd"))?;
        let hit = match ev {
            None => return Ok((statuses, true)),
            Some(Event::PropertiesChanged { path, .. }) => by_path.get(path.as_str()).copied(),
            Some(Event::JobRemoved { unit, .. }) => by_name.get(&unit).copied(),
        };
        let Some((pi, slot)) = hit else { continue };
        states[pi][slot] = Some(
            sd.unit_state(&paths_of[pi][slot])
                .map_err(err("reading units"))?,
        );
        statuses[pi] = status(pi, &states[pi]);
        done[pi] = settled(&states[pi], &statuses[pi]);
    }
    Ok((statuses, false))
}

/// Delete pods: stop gracefully, disable, remove units, data, state and
/// runtime leftovers, drop them from the inventory, one reload.
pub fn delete(
    sd: &Systemd,
    paths: &Paths,
    keys: &[String],
    timeout: Duration,
    out: &mut dyn Write,
) -> Result<bool, String> {
    let mut installed = Installed::load(paths)?;
    let mut pods = Vec::new();
    let mut all_found = true;
    for k in keys {
        match installed.find(k, "default") {
            Some(p) => pods.push(p.clone()),
            None => {
                all_found = false;
                let _ = writeln!(out, "pod {k} not found");
            }
        }
    }
    if pods.is_empty() {
        return Ok(all_found);
    }
    for p in &pods {
        if let Some(e) = installed.pods.get_mut(&p.id) {
            e.pending = true;
        }
    }
    installed
        .save(paths)
        .map_err(err("writing the inventory"))?;
    let refs: Vec<&InstalledPod> = pods.iter().collect();
    stop_pods(sd, &refs, Instant::now() + timeout)?;
    for p in &pods {
        let _ = sd.stop_unit(&p.slice, "replace");
        if !p.runtime {
            let _ = sd.disable_unit_files(&[p.target.as_str()], false);
        }
        install::remove_pod(paths, p).map_err(err(&format!("removing pod {}", p.key())))?;
        installed.pods.remove(&p.id);
    }
    sd.reload().map_err(err("daemon-reload"))?;
    installed
        .save(paths)
        .map_err(err("writing the inventory"))?;
    for p in &pods {
        let _ = writeln!(out, "pod {} deleted", p.key());
    }
    Ok(all_found)
}

/// Unit-level unified diff between what is installed and `desired`.
/// Returns the diff text and whether anything differs.
pub fn diff(
    paths: &Paths,
    desired: &[DesiredPod],
    installed: &Installed,
    prune: bool,
) -> (String, bool) {
    let mut out = String::new();
    let read = |name: &str| {
        crate::output::confined(&paths.unit_dir, name)
            .ok()
            .and_then(|p| std::fs::read_to_string(p).ok())
    };
    let one = |out: &mut String, name: &str, old: Option<String>, new: Option<&str>| {
        let (o, n) = (old.as_deref().unwrap_or(""), new.unwrap_or(""));
        if old.is_some() && o == n && new.is_some() {
            return;
        }
        let path = paths.unit_dir.join(name).display().to_string();
        let a = if old.is_some() {
            format!("a{path}")
        } else {
            "/dev/null".into()
        };
        let b = if new.is_some() {
            format!("b{path}")
        } else {
            "/dev/null".into()
        };
        let d = similar::TextDiff::from_lines(o, n);
        out.push_str(
            &d.unified_diff()
                .context_radius(3)
                .header(&a, &b)
                .to_string(),
        );
    };
    for d in desired {
        for u in &d.units {
            one(&mut out, &u.name, read(&u.name), Some(&u.text));
        }
        if let Some(i) = installed.pods.get(&d.id) {
            for name in i.units.keys() {
                if !d.units.iter().any(|u| &u.name == name) {
                    one(&mut out, name, read(name), None);
                }
            }
            let want = d.file_records();
            let data = paths.root.join("pods").join(&d.id).join("data");
            let secret_differs = |f: &str| {
                let on_disk = crate::output::confined(&data, f)
                    .ok()
                    .and_then(|p| std::fs::read(p).ok());
                d.files
                    .iter()
                    .find(|df| df.path == f)
                    .is_some_and(|df| on_disk.as_deref() != Some(&df.content[..]))
            };
            for (f, rec) in want.iter() {
                if i.files.get(f) != Some(rec) || (rec.secret && secret_differs(f)) {
                    out.push_str(&format!(
                        "data file {}/pods/{}/data/{f} changes{}\n",
                        paths.root.display(),
                        d.id,
                        if rec.secret {
                            " (secret: content not shown)"
                        } else {
                            ""
                        }
                    ));
                }
            }
            for f in i.files.keys().filter(|f| !want.contains_key(*f)) {
                out.push_str(&format!(
                    "data file {}/pods/{}/data/{f} is removed\n",
                    paths.root.display(),
                    d.id
                ));
            }
        }
    }
    if prune {
        for (id, i) in &installed.pods {
            if !desired.iter().any(|d| &d.id == id) {
                for name in i.units.keys() {
                    one(&mut out, name, read(name), None);
                }
            }
        }
    }
    let differs = !out.is_empty();
    (out, differs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::install::{DataFile, UnitFile};

    fn pod(name: &str, text: &str) -> DesiredPod {
        let id = format!("default_{name}");
        DesiredPod {
            namespace: "default".into(),
            name: name.into(),
            id: id.clone(),
            file: "x.yaml".into(),
            target: format!("podc_{id}.target"),
            slice: format!("podc-{id}.slice"),
            units: vec![UnitFile {
                name: format!("podc_{id}_app.service"),
                text: text.into(),
            }],
            files: vec![],
        }
    }

    #[test]
    fn plan_and_diff() {
        let d = std::env::temp_dir().join(format!("podc-activate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let paths = Paths::new(&d.join("state"), false, Some(&d.join("units")));
        let a = pod("a", "[Service]\nExecStart=/bin/true\n");
        let b = pod("b", "[Service]\nExecStart=/bin/false\n");
        let mut inv = Installed::default();
        let items = plan(&[a.clone(), b.clone()], &inv, &paths, true);
        assert!(items.iter().all(|i| i.action == Action::Create));
        for p in [&a, &b] {
            install::install_pod(&paths, p).unwrap();
            inv.pods
                .insert(p.id.clone(), InstalledPod::from_desired(p, &paths));
        }
        let items = plan(&[a.clone(), b.clone()], &inv, &paths, true);
        assert!(
            items.iter().all(|i| i.action == Action::Unchanged),
            "{items:?}"
        );
        let (text, differs) = diff(&paths, &[a.clone(), b.clone()], &inv, false);
        assert!(!differs, "{text}");
        // Change one: only it is recreated; the diff shows the line.
        let a2 = pod("a", "[Service]\nExecStart=/bin/echo hi\n");
        let items = plan(&[a2.clone(), b.clone()], &inv, &paths, false);
        assert_eq!(items[0].action, Action::Recreate);
        assert_eq!(items[1].action, Action::Unchanged);
        let (text, differs) = diff(&paths, &[a2.clone(), b.clone()], &inv, false);
        assert!(differs);
        assert!(
            text.contains("-ExecStart=/bin/true\n+ExecStart=/bin/echo hi\n"),
            "{text}"
        );
        // Prune: b missing from the input.
        let items = plan(std::slice::from_ref(&a), &inv, &paths, true);
        assert_eq!(items[1].action, Action::Prune);
        let items = plan(std::slice::from_ref(&a), &inv, &paths, false);
        assert_eq!(items.len(), 1);
        // Pending (a killed apply): recreated even though hashes match.
        inv.pods.get_mut("default_a").unwrap().pending = true;
        let items = plan(std::slice::from_ref(&a), &inv, &paths, false);
        assert_eq!(items[0].action, Action::Recreate);
        // A file changed on disk behind podc's back.
        inv.pods.get_mut("default_a").unwrap().pending = false;
        std::fs::write(d.join("units/podc_default_a_app.service"), "x").unwrap();
        let items = plan(std::slice::from_ref(&a), &inv, &paths, false);
        assert_eq!(items[0].action, Action::Recreate);
        // Data file change.
        let mut a3 = a.clone();
        a3.files.push(DataFile {
            path: "f".into(),
            mode: 0o644,
            secret: false,
            content: b"x".to_vec(),
        });
        install::install_pod(&paths, &a).unwrap();
        let items = plan(&[a3], &inv, &paths, false);
        assert_eq!(items[0].action, Action::Recreate);
        // A secret file: no hash in the inventory; a change is found by
        // comparing with the installed root-only copy.
        let secret = |v: &[u8]| {
            let mut s = a.clone();
            s.files.push(DataFile {
                path: "env/app.env".into(),
                mode: 0o600,
                secret: true,
                content: v.to_vec(),
            });
            s
        };
        let s1 = secret(b"PW=\"hunter2\"\n");
        install::install_pod(&paths, &s1).unwrap();
        inv.pods
            .insert(s1.id.clone(), InstalledPod::from_desired(&s1, &paths));
        let text = serde_json::to_string(&inv).unwrap();
        assert!(
            !text.contains(&install::sha256(b"PW=\"hunter2\"\n")[7..]),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        let items = plan(std::slice::from_ref(&s1), &inv, &paths, false);
        assert_eq!(items[0].action, Action::Unchanged, "{}", items[0].why);
        let s2 = secret(b"PW=\"hunter3\"\n");
        let items = plan(std::slice::from_ref(&s2), &inv, &paths, false);
        assert_eq!(items[0].action, Action::Recreate);
        let (text, differs) = diff(&paths, std::slice::from_ref(&s2), &inv, false);
        assert!(differs);
        assert!(
            text.contains("env/app.env changes (secret: content not shown)"),
            "{text}"
        );
        assert!(!text.contains("hunter"), "{text}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
