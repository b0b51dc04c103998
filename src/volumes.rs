//! `podc volumes setup|teardown`, run by the infra unit
//! (`ExecStartPre=`/`ExecStopPost=`) of a pod with volumes.
//!
//! setup reads `<state>/data/volumes.json` (written by the planner,
//! installed by apply) and prepares each volume at its `location` before
//! any container starts:
//! - `emptyDir`: a directory, 0777 as the kubelet makes it; with `tmpfs`
//!   (`medium: Memory`) a tmpfs, `size=` from `sizeLimit`;
//! - `configMap`/`secret`: a tmpfs (secrets never touch disk there) with
//!   the installed files copied in, with their modes;
//! - `hostPath`: checked or created according to its `type`.
//!
//! teardown unmounts every tmpfs under the pod's volume run dir and
//! removes it; disk emptyDirs live as long as the pod (`podc delete`).

use serde::Deserialize;
use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

#[derive(Deserialize)]
struct VolumesFile {
    volumes: Vec<Volume>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Volume {
    name: String,
    location: String,
    kind: String,
    #[serde(default)]
    tmpfs: bool,
    #[serde(default)]
    size_limit: Option<u64>,
    #[serde(default)]
    host_path_type: Option<String>,
    #[serde(default)]
    files: Vec<VolumeFile>,
}

#[derive(Deserialize)]
struct VolumeFile {
    source: String,
    path: String,
    mode: u32,
}

fn e(what: &Path) -> impl FnOnce(std::io::Error) -> String + '_ {
    move |err| format!("{}: {err}", what.display())
}

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

fn relative(p: &str) -> Result<&Path, String> {
    let path = Path::new(p);
    if p.is_empty()
        || path
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(format!("refusing path {p:?} outside its directory"));
    }
    Ok(path)
}

fn mount_tmpfs(at: &Path, size: Option<u64>) -> Result<(), String> {
    fs::create_dir_all(at).map_err(e(at))?;
    if is_mounted(at) {
        return Ok(());
    }
    let mut opts = "mode=0755".to_string();
    if let Some(s) = size {
        opts.push_str(&format!(",size={s}"));
    }
    nix::mount::mount(
        Some("tmpfs"),
        at,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some(opts.as_str()),
    )
    .map_err(|err| format!("mounting tmpfs on {}: {err}", at.display()))
}

fn mkdir_mode(p: &Path, mode: u32) -> Result<(), String> {
    fs::create_dir_all(p).map_err(e(p))?;
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).map_err(e(p))
}

fn host_path(v: &Volume, at: &Path) -> Result<(), String> {
    let t = v.host_path_type.as_deref().unwrap_or("");
    let meta = fs::metadata(at);
    let want = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(format!(
                "hostPath {} of volume {}: not a {what}",
                at.display(),
                v.name
            ))
        }
    };
    match t {
        "" => Ok(()),
        "DirectoryOrCreate" => {
            if meta.is_err() {
                mkdir_mode(at, 0o755)?;
            }
            want(at.is_dir(), "directory")
        }
        "FileOrCreate" => {
            if meta.is_err() {
                fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(at)
                    .map_err(e(at))?;
            }
            want(at.is_file(), "file")
        }
        "Directory" => want(at.is_dir(), "directory"),
        "File" => want(at.is_file(), "file"),
        "Socket" => want(meta.is_ok_and(|m| m.file_type().is_socket()), "socket"),
        "CharDevice" => want(
            meta.is_ok_and(|m| m.file_type().is_char_device()),
            "character device",
        ),
        "BlockDevice" => want(
            meta.is_ok_and(|m| m.file_type().is_block_device()),
            "block device",
        ),
        other => Err(format!(
            "hostPath type {other} of volume {} is not supported",
            v.name
        )),
    }
}

pub fn setup(state: &Path, run: &Path) -> Result<(), String> {
    let spec_path = state.join("data/volumes.json");
    let text = match fs::read_to_string(&spec_path) {
        Ok(t) => t,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(format!("{}: {err}", spec_path.display())),
    };
    let spec: VolumesFile =
        serde_json::from_str(&text).map_err(|err| format!("{}: {err}", spec_path.display()))?;
    fs::create_dir_all(run).map_err(e(run))?;
    let data = state.join("data");
    for v in &spec.volumes {
        let at = PathBuf::from(&v.location);
        match v.kind.as_str() {
            "emptyDir" => {
                if v.tmpfs {
                    mount_tmpfs(&at, v.size_limit)?;
                    fs::set_permissions(&at, fs::Permissions::from_mode(0o777)).map_err(e(&at))?;
                } else {
                    mkdir_mode(&at, 0o777)?;
                }
            }
            "configMap" | "secret" => {
                mount_tmpfs(&at, None)?;
                for f in &v.files {
                    let src = data.join(relative(&f.source)?);
                    let dst = at.join(relative(&f.path)?);
                    if let Some(d) = dst.parent() {
                        fs::create_dir_all(d).map_err(e(d))?;
                    }
                    fs::copy(&src, &dst).map_err(e(&src))?;
                    fs::set_permissions(&dst, fs::Permissions::from_mode(f.mode & 0o7777))
                        .map_err(e(&dst))?;
                }
            }
            "hostPath" => host_path(v, &at)?,
            other => return Err(format!("volume {}: unknown kind {other}", v.name)),
        }
    }
    Ok(())
}

pub fn teardown(run: &Path) -> Result<(), String> {
    crate::install::detach_mounts_under(run);
    match fs::remove_dir_all(run) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("{}: {err}", run.display()))
        }
        _ => Ok(()),
    }
}
