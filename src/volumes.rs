//! `podc volumes setup|teardown`, run by the infra unit
//! (`ExecStartPre=`/`ExecStopPost=`) of a pod with volumes.
//!
//! setup:
//! - mounts a tmpfs at the pod's volume run dir (`/run/podc/volumes/<id>`),
//!   so ConfigMap/Secret content and `medium: Memory` emptyDirs never
//!   touch disk there;
//! - copies the installed ConfigMap/Secret files
//!   (`<state>/data/volumes/<name>/...`) into `<run>/<name>/`, keeping modes;
//! - creates emptyDir directories (0777, as the kubelet does):
//!   `--empty-dir NAME` under `<state>/volumes/`, `--memory-dir NAME` under
//!   the run dir. Without those flags it finds them in the pod's container
//!   units (`BindPaths=` sources under those two directories).
//!
//! teardown unmounts the tmpfs and removes the run dir; disk emptyDirs live
//! as long as the pod (removed by `podc delete`).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn is_mounted(p: &Path) -> bool {
    let t = p.to_string_lossy();
    fs::read_to_string("/proc/self/mountinfo")
        .map(|i| {
            i.lines()
                .filter_map(|l| l.split(' ').nth(4))
                .any(|m| m == t)
        })
        .unwrap_or(false)
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::create_dir_all(to)?;
    for e in fs::read_dir(from)? {
        let e = e?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let meta = fs::symlink_metadata(&src)?;
        if meta.is_dir() {
            copy_tree(&src, &dst)?;
            fs::set_permissions(&dst, fs::Permissions::from_mode(meta.permissions().mode()))?;
        } else if meta.is_file() {
            fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

/// `BindPaths=` sources of the pod's container units under `dirs`.
fn bind_sources(id: &str, dirs: &[&Path], unit_dirs: &[&Path]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for ud in unit_dirs {
        let Ok(rd) = fs::read_dir(ud) else { continue };
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if !(n.starts_with(&format!("podc_{id}_")) && n.ends_with(".service")) {
                continue;
            }
            let Ok(text) = fs::read_to_string(e.path()) else {
                continue;
            };
            for l in text.lines() {
                let Some(v) = l.strip_prefix("BindPaths=") else {
                    continue;
                };
                let src = v
                    .strip_prefix('"')
                    .and_then(|r| r.split('"').next())
                    .unwrap_or_else(|| v.split(':').next().unwrap_or(""));
                let p = PathBuf::from(src);
                if dirs.iter().any(|d| p.parent() == Some(d)) && !out.contains(&p) {
                    out.push(p);
                }
            }
        }
    }
    out
}

fn mkdir_777(p: &Path) -> std::io::Result<()> {
    fs::create_dir_all(p)?;
    fs::set_permissions(p, fs::Permissions::from_mode(0o777))
}

pub fn setup(state: &Path, run: &Path, empty: &[String], memory: &[String]) -> Result<(), String> {
    fs::create_dir_all(run).map_err(e(run))?;
    if !is_mounted(run) {
        nix::mount::mount(
            Some("tmpfs"),
            run,
            Some("tmpfs"),
            nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
            Some("mode=0755"),
        )
        .map_err(|err| format!("mounting tmpfs on {}: {err}", run.display()))?;
    }
    let data = state.join("data/volumes");
    if data.is_dir() {
        copy_tree(&data, run).map_err(e(&data))?;
    }
    let disk = state.join("volumes");
    fs::create_dir_all(&disk).map_err(e(&disk))?;
    let mut dirs: Vec<PathBuf> = empty.iter().map(|n| disk.join(n)).collect();
    dirs.extend(memory.iter().map(|n| run.join(n)));
    if empty.is_empty() && memory.is_empty() {
        let id = state
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        dirs = bind_sources(
            &id,
            &[&disk, run],
            &[
                Path::new(crate::install::UNIT_DIR),
                Path::new(crate::install::RUNTIME_UNIT_DIR),
            ],
        );
    }
    for d in dirs {
        if !d.exists() {
            mkdir_777(&d).map_err(e(&d))?;
        }
    }
    Ok(())
}

fn e(what: &Path) -> impl FnOnce(std::io::Error) -> String + '_ {
    move |err| format!("{}: {err}", what.display())
}

pub fn teardown(run: &Path) -> Result<(), String> {
    if is_mounted(run) {
        nix::mount::umount2(run, nix::mount::MntFlags::MNT_DETACH)
            .map_err(|err| format!("unmounting {}: {err}", run.display()))?;
    }
    match fs::remove_dir_all(run) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("{}: {err}", run.display()))
        }
        _ => Ok(()),
    }
}
