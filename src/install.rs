//! Stage 5, install: compiled pods → files under a unit directory and the
//! state root, written atomically, with an inventory of what podc owns.
//!
//! Where things go (all overridable, so tests and packagers can move them):
//! ```text
//! <unit_dir>/<unit>                       /etc/systemd/system, or /run/systemd/system (--runtime)
//! <root>/inventory.json                   every pod podc installed: units + hashes, files, containers
//!                                         (<root>, <root>/pods and <run_dir> are 0700: crate::perms)
//! <root>/pods/<id>/data/...               env files, ConfigMap/Secret data (dirs 0700, secrets 0600)
//! <run_dir>/pods/<id>/                    the infra's runtime files (made by podc-pause)
//! ```
//!
//! Every file is written as `tmp + fsync + rename` in its final directory,
//! so a reader (systemd, or the next podc after a `kill -9`) sees the old
//! file or the new one, never half of one. The data directory of a pod is
//! built beside the old one and swapped in with `RENAME_EXCHANGE`. Names
//! come from manifests; every path is joined with [`crate::output::confined`]
//! so nothing is written outside these directories.

use crate::output::confined;
use crate::pipeline::Compiled;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where podc installs.
#[derive(Clone, Debug)]
pub struct Paths {
    /// systemd unit directory.
    pub unit_dir: PathBuf,
    /// State root (`/var/lib/podc`): inventory and pod data.
    pub root: PathBuf,
    /// Runtime root (`/run/podc`): what the infra process creates.
    pub run_dir: PathBuf,
    /// Units go under /run and are not enabled.
    pub runtime: bool,
}

pub const UNIT_DIR: &str = "/etc/systemd/system";
pub const RUNTIME_UNIT_DIR: &str = "/run/systemd/system";

impl Paths {
    pub fn new(root: &Path, runtime: bool, unit_dir: Option<&Path>) -> Paths {
        let unit_dir = unit_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(if runtime { RUNTIME_UNIT_DIR } else { UNIT_DIR }));
        Paths {
            unit_dir,
            root: root.to_path_buf(),
            run_dir: PathBuf::from("/run/podc"),
            runtime,
        }
    }

    pub fn inventory(&self) -> PathBuf {
        self.root.join("inventory.json")
    }

    /// `<root>/pods/<id>`.
    pub fn pod_state(&self, id: &str) -> std::io::Result<PathBuf> {
        confined(&self.root.join("pods"), id)
    }

    /// `<run_dir>/pods/<id>`.
    pub fn pod_run(&self, id: &str) -> std::io::Result<PathBuf> {
        confined(&self.run_dir.join("pods"), id)
    }
}

/// A unit file to install.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitFile {
    pub name: String,
    pub text: String,
}

/// A data file to install under `<root>/pods/<id>/data/`.
#[derive(Clone, Debug, PartialEq)]
pub struct DataFile {
    pub path: String,
    pub mode: u32,
    pub secret: bool,
    pub content: Vec<u8>,
}

/// What a container unit is, as `get pods` needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    pub name: String,
    pub unit: String,
    /// `init`, `sidecar` or `app`.
    pub role: String,
    /// Why the container cannot be created (Kubernetes'
    /// CreateContainerConfigError), from the unit's `X-PodcConfigError=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_error: Option<String>,
}

/// One pod as the input wants it.
#[derive(Clone, Debug)]
pub struct DesiredPod {
    pub namespace: String,
    pub name: String,
    pub id: String,
    pub file: String,
    pub target: String,
    pub slice: String,
    pub units: Vec<UnitFile>,
    pub files: Vec<DataFile>,
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

impl DesiredPod {
    pub fn unit_hashes(&self) -> BTreeMap<String, String> {
        self.units
            .iter()
            .map(|u| (u.name.clone(), sha256(u.text.as_bytes())))
            .collect()
    }

    /// The inventory's record of each data file. Secret files get no hash
    /// (see [`FileRecord`]): whether one changed is decided by comparing it
    /// with the installed root-only copy ([`secret_files_on_disk_match`]).
    pub fn file_records(&self) -> BTreeMap<String, FileRecord> {
        self.files
            .iter()
            .map(|f| {
                (
                    f.path.clone(),
                    FileRecord {
                        mode: format!("{:04o}", f.mode),
                        secret: f.secret,
                        hash: if f.secret {
                            String::new()
                        } else {
                            sha256(&f.content)
                        },
                    },
                )
            })
            .collect()
    }

    /// The infra unit: `podc_<id>.service`.
    pub fn infra(&self) -> String {
        crate::plan::infra_name(&self.id)
    }

    /// Whether the pod uses the host's network (its infra unit says
    /// `--host-network`).
    pub fn host_network(&self) -> bool {
        let infra = self.infra();
        self.units
            .iter()
            .filter(|u| u.name == infra)
            .flat_map(|u| u.text.lines())
            .any(|l| l.starts_with("ExecStart=") && l.contains("\"--host-network\""))
    }

    /// Container units in start order, with their role.
    pub fn containers(&self) -> Vec<ContainerInfo> {
        let prefix = format!("podc_{}_", self.id);
        self.units
            .iter()
            .filter_map(|u| {
                let name = u.name.strip_prefix(&prefix)?.strip_suffix(".service")?;
                Some(ContainerInfo {
                    name: name.to_string(),
                    unit: u.name.clone(),
                    role: role_of(&u.text).to_string(),
                    config_error: config_error_of(&u.text),
                })
            })
            .collect()
    }

    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The reason the planner found that a container cannot be created
/// (`X-PodcConfigError=`, written as free text: `%` doubled).
fn config_error_of(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("X-PodcConfigError="))
        .map(|v| v.replace("%%", "%"))
}

/// A container's role from its unit text: the Description podc renders
/// ("...: init container NAME (...)"), else the unit type.
fn role_of(text: &str) -> &'static str {
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("Description=") {
            for role in ["init", "sidecar", "app"] {
                if d.contains(&format!(": {role} container ")) {
                    return role;
                }
            }
        }
    }
    if text.lines().any(|l| l.trim() == "Type=oneshot") {
        "init"
    } else {
        "app"
    }
}

/// Pods of an in-process compile.
pub fn from_compiled(c: &Compiled) -> Vec<DesiredPod> {
    c.pods
        .iter()
        .map(|p| DesiredPod {
            namespace: p.plan.namespace.clone(),
            name: p.plan.name.clone(),
            id: p.plan.id.clone(),
            file: p.plan.file.clone(),
            target: p.plan.target.clone(),
            slice: p.plan.slice.clone(),
            units: p
                .units
                .iter()
                .map(|u| UnitFile {
                    name: u.name.clone(),
                    text: u.text.clone(),
                })
                .collect(),
            files: p
                .plan
                .files
                .iter()
                .map(|f| DataFile {
                    path: f.path.clone(),
                    mode: if f.secret { 0o600 } else { 0o644 },
                    secret: f.secret,
                    content: f.content.clone(),
                })
                .collect(),
        })
        .collect()
}

#[derive(Deserialize)]
struct BuildInventory {
    target: BuildTarget,
    pods: Vec<BuildPod>,
}

/// The paths a build was compiled for (they are inside the units).
#[derive(Deserialize, Debug, Clone)]
pub struct BuildTarget {
    pub state_dir: String,
    pub run_dir: String,
}

#[derive(Deserialize)]
struct BuildPod {
    namespace: String,
    name: String,
    id: String,
    file: String,
    target: String,
    slice: String,
    units: Vec<BuildEntry>,
    files: Vec<BuildFile>,
}

#[derive(Deserialize)]
struct BuildEntry {
    name: String,
    hash: String,
}

#[derive(Deserialize)]
struct BuildFile {
    path: String,
    secret: bool,
    /// Absent for secret files (the build's inventory is world-readable).
    #[serde(default)]
    hash: String,
}

/// Pods of a `podc build` output directory, checked against the hashes in
/// its inventory (a build edited by hand or half-copied is refused).
pub fn from_build_dir(dir: &Path) -> Result<(Vec<DesiredPod>, BuildTarget), String> {
    let inv_path = dir.join("inventory.json");
    let text = fs::read_to_string(&inv_path).map_err(|e| {
        format!(
            "{}: {e} (run `podc build` first, or give -f FILES)",
            inv_path.display()
        )
    })?;
    let inv: BuildInventory =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", inv_path.display()))?;
    let units_dir = dir.join("units");
    let mut pods = Vec::new();
    for p in inv.pods {
        let mut units = Vec::new();
        for u in p.units {
            let path = confined(&units_dir, &u.name).map_err(|e| e.to_string())?;
            let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            if sha256(text.as_bytes()) != u.hash {
                return Err(format!(
                    "{}: content does not match the build's inventory; rebuild",
                    path.display()
                ));
            }
            units.push(UnitFile { name: u.name, text });
        }
        let data = dir.join("pods").join(&p.id).join("data");
        let mut files = Vec::new();
        for f in p.files {
            let path = confined(&data, &f.path).map_err(|e| e.to_string())?;
            let content = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            if !f.secret && sha256(&content) != f.hash {
                return Err(format!(
                    "{}: content does not match the build's inventory; rebuild",
                    path.display()
                ));
            }
            files.push(DataFile {
                path: f.path,
                mode: if f.secret { 0o600 } else { 0o644 },
                secret: f.secret,
                content,
            });
        }
        pods.push(DesiredPod {
            namespace: p.namespace,
            name: p.name,
            id: p.id,
            file: p.file,
            target: p.target,
            slice: p.slice,
            units,
            files,
        });
    }
    Ok((pods, inv.target))
}

/// What the inventory records of a data file. The inventory is readable by
/// every host user, so a secret file has no hash here: an unsalted hash of
/// secret bytes lets anyone confirm a guess of them offline. Its installed
/// copy (0600 in a 0700 directory) is what a new build is compared with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub mode: String,
    pub secret: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
}

/// What podc has installed: `<root>/inventory.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Installed {
    pub generator: String,
    /// By pod id (`<ns>_<name>`).
    pub pods: BTreeMap<String, InstalledPod>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InstalledPod {
    pub namespace: String,
    pub name: String,
    pub id: String,
    pub file: String,
    pub target: String,
    pub slice: String,
    pub unit_dir: String,
    pub runtime: bool,
    /// Unit name → content hash.
    pub units: BTreeMap<String, String>,
    pub containers: Vec<ContainerInfo>,
    pub files: BTreeMap<String, FileRecord>,
    /// Set before podc touches the pod and cleared once it was started:
    /// an apply killed in between redoes the pod (stop, write, start).
    #[serde(default)]
    pub pending: bool,
    /// Enable symlinks podc made (relative to the unit dir).
    #[serde(default)]
    pub enabled: Vec<String>,
    /// `hostNetwork: true`: the pod's IP is the host's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_network: bool,
}

impl InstalledPod {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn infra(&self) -> String {
        crate::plan::infra_name(&self.id)
    }

    pub fn from_desired(d: &DesiredPod, paths: &Paths) -> InstalledPod {
        InstalledPod {
            namespace: d.namespace.clone(),
            name: d.name.clone(),
            id: d.id.clone(),
            file: d.file.clone(),
            target: d.target.clone(),
            slice: d.slice.clone(),
            unit_dir: paths.unit_dir.display().to_string(),
            runtime: paths.runtime,
            units: d.unit_hashes(),
            containers: d.containers(),
            files: d.file_records(),
            pending: false,
            enabled: Vec::new(),
            host_network: d.host_network(),
        }
    }

    /// Services of the pod, containers last-started first, then the infra:
    /// the order to stop them in.
    pub fn services_stop_order(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .containers
            .iter()
            .rev()
            .map(|c| c.unit.clone())
            .collect();
        v.push(self.infra());
        v
    }
}

impl Installed {
    pub fn load(paths: &Paths) -> Result<Installed, String> {
        let p = paths.inventory();
        match fs::read_to_string(&p) {
            Ok(t) => serde_json::from_str(&t).map_err(|e| format!("{}: {e}", p.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Installed::default()),
            Err(e) => Err(format!("{}: {e}", p.display())),
        }
    }

    pub fn save(&mut self, paths: &Paths) -> std::io::Result<()> {
        self.generator = format!("podc {}", env!("CARGO_PKG_VERSION"));
        crate::perms::private_dir(&paths.root)?;
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        write_atomic(&paths.inventory(), format!("{text}\n").as_bytes(), 0o644)?;
        sync_dir(&paths.root)
    }

    /// Find a pod by `ns/name` or `name` (in `default_ns`).
    pub fn find(&self, name: &str, default_ns: &str) -> Option<&InstalledPod> {
        let (ns, n) = name.split_once('/').unwrap_or((default_ns, name));
        self.pods
            .values()
            .find(|p| p.namespace == ns && p.name == n)
    }
}

pub fn mkdir(path: &Path, mode: u32) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Write `path` atomically: a temporary file in the same directory, fsync,
/// rename over. The directory is not fsynced here (callers do it once).
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // `.#` is what systemd itself uses for temporary files; it never loads them.
    let tmp = dir.join(format!(".#{name}.podc-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let r = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

/// Remove leftovers of writers killed mid-write (`.#NAME.podc-PID`).
pub fn remove_stale_tmp(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(".#") && n.contains(".podc-") {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

/// Do the installed copies of the pod's secret data files hold exactly
/// what `pod` wants? (The inventory records no hash for them.) Reads only
/// podc's root-only data directory.
pub fn secret_files_on_disk_match(paths: &Paths, pod: &DesiredPod) -> bool {
    let Ok(data) = paths.pod_state(&pod.id).map(|s| s.join("data")) else {
        return false;
    };
    pod.files.iter().filter(|f| f.secret).all(|f| {
        confined(&data, &f.path)
            .ok()
            .and_then(|p| fs::read(p).ok())
            .is_some_and(|b| b == f.content)
    })
}

/// Does the unit file on disk hold exactly `hash`?
pub fn unit_on_disk_is(paths: &Paths, name: &str, hash: &str) -> bool {
    confined(&paths.unit_dir, name)
        .ok()
        .and_then(|p| fs::read(p).ok())
        .is_some_and(|b| sha256(&b) == hash)
}

/// Write a pod's unit files (only those whose content differs) and its
/// data directory. Returns whether any unit file changed on disk.
pub fn install_pod(paths: &Paths, pod: &DesiredPod) -> std::io::Result<bool> {
    mkdir(&paths.unit_dir, 0o755)?;
    let mut changed = false;
    for u in &pod.units {
        let path = confined(&paths.unit_dir, &u.name)?;
        if fs::read(&path).ok().as_deref() == Some(u.text.as_bytes()) {
            continue;
        }
        write_atomic(&path, u.text.as_bytes(), 0o644)?;
        changed = true;
    }
    if changed {
        sync_dir(&paths.unit_dir)?;
    }
    install_data(paths, pod)?;
    Ok(changed)
}

/// `<root>/pods/<id>/data`: built complete beside the old one, then swapped.
fn install_data(paths: &Paths, pod: &DesiredPod) -> std::io::Result<()> {
    let state = paths.pod_state(&pod.id)?;
    let data = state.join("data");
    if pod.files.is_empty() {
        if data.exists() {
            fs::remove_dir_all(&data)?;
        }
        return Ok(());
    }
    crate::perms::private_dir(&paths.root.join("pods"))?;
    mkdir(&state, 0o700)?;
    let tmp = state.join(format!(".data.podc-{}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    let r = (|| {
        mkdir(&tmp, 0o700)?;
        for f in &pod.files {
            let path = confined(&tmp, &f.path)?;
            if let Some(dir) = path.parent() {
                mkdir(dir, 0o700)?;
            }
            let mode = if f.secret { 0o600 } else { f.mode & 0o7777 };
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&path)?;
            file.write_all(&f.content)?;
            file.sync_all()?;
        }
        if data.exists() {
            nix::fcntl::renameat2(
                nix::fcntl::AT_FDCWD,
                &tmp,
                nix::fcntl::AT_FDCWD,
                &data,
                nix::fcntl::RenameFlags::RENAME_EXCHANGE,
            )
            .map_err(std::io::Error::from)?;
            fs::remove_dir_all(&tmp)?;
        } else {
            fs::rename(&tmp, &data)?;
        }
        sync_dir(&state)
    })();
    if r.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    r
}

/// Make podc's trees root-only ([`crate::perms`]) before an apply writes
/// or starts anything: the state root, the pods' state and the runtime
/// root. Trees an older podc made 0755 (and pods it started) get private
/// here, without waiting for each pod to be recreated.
pub fn make_private(paths: &Paths) -> std::io::Result<()> {
    for d in [
        paths.root.clone(),
        paths.root.join("pods"),
        paths.run_dir.clone(),
    ] {
        crate::perms::private_dir(&d)?;
    }
    Ok(())
}

/// Remove stale `.data.podc-PID` dirs of killed writers under every pod.
pub fn remove_stale_data_tmp(paths: &Paths) {
    if let Ok(rd) = fs::read_dir(paths.root.join("pods")) {
        for pod in rd.flatten() {
            if let Ok(inner) = fs::read_dir(pod.path()) {
                for e in inner.flatten() {
                    if e.file_name().to_string_lossy().starts_with(".data.podc-") {
                        let _ = fs::remove_dir_all(e.path());
                    }
                }
            }
        }
    }
}

/// Remove every file podc installed for a pod: unit files (and the enable
/// symlinks it made), state dir, runtime leftovers (namespace bind mounts
/// are detached first). Unit drop-ins (`<unit>.d/`) belong to the admin
/// and are left alone.
pub fn remove_pod(paths: &Paths, pod: &InstalledPod) -> std::io::Result<()> {
    let unit_dir = PathBuf::from(&pod.unit_dir);
    for link in &pod.enabled {
        let p = confined(&unit_dir, link)?;
        if p.symlink_metadata().is_ok() {
            fs::remove_file(&p)?;
        }
    }
    for name in pod.units.keys() {
        let p = confined(&unit_dir, name)?;
        match fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    sync_dir(&unit_dir)?;
    let run = paths.pod_run(&pod.id)?;
    if run.exists() {
        detach_mounts_under(&run);
        crate::perms::remove_tree(&run)?;
    }
    let state = paths.pod_state(&pod.id)?;
    if state.exists() {
        detach_mounts_under(&state);
        // Holds the containers' writable layers and emptyDirs.
        crate::perms::remove_tree(&state)?;
    }
    Ok(())
}

/// Lazily unmount every mount point at or under `dir` (deepest first), as
/// `/proc/self/mountinfo` lists them. Mount points of a killed infra (its
/// pinned namespaces) or a container rootfs left mounted would otherwise
/// make the removal fail or keep namespaces alive.
pub fn detach_mounts_under(dir: &Path) {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let canon = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let prefix = canon.to_string_lossy().into_owned();
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|m| *m == prefix || m.starts_with(&format!("{prefix}/")))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = nix::mount::umount2(p.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
}

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> DesiredPod {
        DesiredPod {
            namespace: "default".into(),
            name: "web".into(),
            id: "default_web".into(),
            file: "web.yaml".into(),
            target: "podc_default_web.target".into(),
            slice: "podc-default_web.slice".into(),
            units: vec![
                UnitFile {
                    name: "podc_default_web.service".into(),
                    text: "[Service]\n".into(),
                },
                UnitFile {
                    name: "podc_default_web_init.service".into(),
                    text: "[Unit]\nDescription=podc pod default/web: init container init (x)\n"
                        .into(),
                },
                UnitFile {
                    name: "podc_default_web_app.service".into(),
                    text: "[Unit]\nDescription=podc pod default/web: app container app (x)\n"
                        .into(),
                },
            ],
            files: vec![DataFile {
                path: "env/app.env".into(),
                mode: 0o600,
                secret: true,
                content: b"A=1\n".to_vec(),
            }],
        }
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("podc-install-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn containers_and_roles_come_from_unit_names_and_descriptions() {
        let c = pod().containers();
        assert_eq!(
            c.iter()
                .map(|c| (c.name.as_str(), c.role.as_str()))
                .collect::<Vec<_>>(),
            [("init", "init"), ("app", "app")]
        );
    }

    #[test]
    fn install_writes_units_and_data_and_reports_changes() {
        use std::os::unix::fs::PermissionsExt;
        let d = tmpdir("units");
        let paths = Paths::new(&d.join("state"), false, Some(&d.join("units")));
        let p = pod();
        assert!(install_pod(&paths, &p).unwrap());
        assert!(!install_pod(&paths, &p).unwrap(), "same content: no change");
        let env = d.join("state/pods/default_web/data/env/app.env");
        assert_eq!(fs::read(&env).unwrap(), b"A=1\n");
        assert_eq!(
            fs::metadata(&env).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let dir = d.join("state/pods/default_web/data/env");
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        for (n, h) in p.unit_hashes() {
            assert!(unit_on_disk_is(&paths, &n, &h));
        }
        let mut inv = Installed::default();
        inv.pods
            .insert(p.id.clone(), InstalledPod::from_desired(&p, &paths));
        inv.save(&paths).unwrap();
        let back = Installed::load(&paths).unwrap();
        assert!(back.find("web", "default").is_some());
        assert!(back.find("default/web", "x").is_some());
        remove_pod(&paths, &back.pods["default_web"]).unwrap();
        assert!(!d.join("state/pods/default_web").exists());
        assert_eq!(fs::read_dir(d.join("units")).unwrap().count(), 0);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn names_cannot_escape() {
        let d = tmpdir("escape");
        let paths = Paths::new(&d.join("state"), false, Some(&d.join("units")));
        let mut p = pod();
        p.units[0].name = "../evil.service".into();
        assert!(install_pod(&paths, &p).is_err());
        assert!(!d.join("evil.service").exists());
        let mut p = pod();
        p.files[0].path = "../../x".into();
        assert!(install_pod(&paths, &p).is_err());
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
    }
}
