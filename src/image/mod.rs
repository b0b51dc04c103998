//! The image store: import and pull OCI images, unpack their layers safely,
//! and give each container its own root filesystem.
//!
//! # Library API (for the compiler and the runtime)
//!
//! ```no_run
//! use podc::image::{Store, PullPolicy, PullOptions, ContainerOverrides, ContainerRootfs, resolve_process};
//! # fn main() -> anyhow::Result<()> {
//! let store = Store::open(std::path::Path::new("/var/lib/podc"))?;
//! // imagePullPolicy, decided when pods are applied
//! let policy = PullPolicy::for_container(None, "busybox:1.36")?; // IfNotPresent
//! let image = store.ensure_image("busybox:1.36", policy, &PullOptions::default())?;
//! // ENTRYPOINT/CMD/env/workingDir/user/stopSignal with Kubernetes' rules
//! let process = resolve_process(&image.config, &ContainerOverrides {
//!     args: Some(vec!["echo".into(), "hi".into()]),
//!     ..Default::default()
//! })?;
//! // read-only layers (top first) for overlayfs, and the container's own rootfs
//! let lower = image.lower_dirs();
//! let rootfs = ContainerRootfs::new(&image, std::path::Path::new("/var/lib/podc/pods/web/app"));
//! rootfs.prepare()?;                       // fresh writable layer
//! let unit = rootfs.mount_unit("rootfs of web/app")?; // systemd .mount unit
//! let opts = podc::image::overlay_options(&lower, &rootfs.upper, &rootfs.work)?;
//! store.set_users("web", &[image.digest.clone()])?; // rm/prune keep it
//! # let _ = (process, unit, opts); Ok(()) }
//! ```
//!
//! - [`Store::open`] opens (creates) the store under a podc state root.
//! - [`Store::resolve`] / [`Store::image`] turn a reference (`name:tag`,
//!   `name@sha256:…`, a digest or a ≥12-digit digest prefix) into an [`Image`].
//! - [`Image::config`] is the image config (entrypoint, cmd, env,
//!   workingDir, user, stopSignal); [`resolve_process`] applies the pod's
//!   `command`/`args`/`env`/`workingDir`/user over it.
//! - [`Image::lower_dirs`] lists the layer directories for `lowerdir=`, top
//!   first; [`overlay_options`] builds the mount options, escaping what
//!   overlayfs needs escaped; [`ContainerRootfs`] lays out, mounts, or
//!   renders a `.mount` unit for one container's rootfs.
//! - [`Store::ensure_image`] implements `imagePullPolicy`.
//! - [`Image::find_executable`] resolves a bare command (`sh`) in the image's
//!   PATH inside its layers.
//!
//! Errors that a pod status should show are [`ImageError`]s (downcast the
//! `anyhow::Error`), with Kubernetes' reasons (`ErrImageNeverPull`,
//! `ErrImagePull`, `InvalidImageName`).

pub mod cli;
pub mod config;
pub mod export;
pub mod import;
pub mod limits;
pub mod pull;
pub mod reference;
pub mod rootfs;
pub mod store;
pub mod unpack;
pub mod users;

pub use config::{resolve_process, ContainerOverrides, Process, DEFAULT_PATH};
pub use export::{export_image, export_to};
pub use pull::PullOptions;
pub use reference::{Digest, Reference};
pub use rootfs::{overlay_escape, overlay_options, ContainerRootfs, MountUnit};
pub use store::{Image, ImageConfig, LayerInfo, Store};

use anyhow::{bail, Result};
use std::fmt;

/// An image error a pod status can show, with Kubernetes' reason.
#[derive(Debug, Clone)]
pub struct ImageError {
    /// `ErrImageNeverPull`, `ErrImagePull` or `InvalidImageName`.
    pub reason: &'static str,
    pub message: String,
}

impl ImageError {
    pub(crate) fn pull(r: &Reference, msg: String) -> ImageError {
        ImageError {
            reason: "ErrImagePull",
            message: format!("pulling {}: {msg}", r.familiar()),
        }
    }
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

impl std::error::Error for ImageError {}

/// Kubernetes `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// Parses the manifest value.
    pub fn parse(s: &str) -> Result<PullPolicy> {
        Ok(match s {
            "Always" => PullPolicy::Always,
            "IfNotPresent" => PullPolicy::IfNotPresent,
            "Never" => PullPolicy::Never,
            _ => bail!("unknown imagePullPolicy {s:?}: expected Always, IfNotPresent or Never"),
        })
    }

    /// The policy of a container: the given one, else Kubernetes' default
    /// (Always for `:latest` or no tag, IfNotPresent otherwise).
    pub fn for_container(given: Option<&str>, image: &str) -> Result<PullPolicy> {
        if let Some(g) = given {
            return PullPolicy::parse(g);
        }
        let r = Reference::parse(image)?;
        Ok(if r.is_latest() {
            PullPolicy::Always
        } else {
            PullPolicy::IfNotPresent
        })
    }
}

impl Store {
    /// Makes sure `reference` is in the store per `policy`:
    /// `Always` pulls, `IfNotPresent` pulls only when missing, `Never` fails
    /// with an `ErrImageNeverPull` [`ImageError`] when missing.
    pub fn ensure_image(
        &self,
        reference: &str,
        policy: PullPolicy,
        opts: &PullOptions,
    ) -> Result<Image> {
        if let Err(e) = Reference::parse(reference) {
            if !reference.starts_with("sha256:") {
                return Err(ImageError {
                    reason: "InvalidImageName",
                    message: format!("{e:#}"),
                }
                .into());
            }
        }
        let local = self.resolve(reference)?;
        match (policy, local) {
            (PullPolicy::Always, _) => self.pull(reference, opts),
            (PullPolicy::IfNotPresent, Some(img)) | (PullPolicy::Never, Some(img)) => Ok(img),
            (PullPolicy::IfNotPresent, None) => self.pull(reference, opts),
            (PullPolicy::Never, None) => Err(ImageError {
                reason: "ErrImageNeverPull",
                message: format!(
                    "Container image {reference:?} is not present with pull policy of Never (import it with `podc image import` or change imagePullPolicy)"
                ),
            }
            .into()),
        }
    }
}

/// The compiler reads image configs from the store: ENTRYPOINT/CMD, ENV,
/// WorkingDir, User and StopSignal, and the digest that pins the image in
/// the unit. A reference the store cannot resolve counts as absent.
impl crate::plan::Images for Store {
    fn config(&self, image: &str) -> Option<crate::plan::ImageConfig> {
        let img = self.resolve(image).ok().flatten()?;
        let c = &img.config;
        Some(crate::plan::ImageConfig {
            entrypoint: c.entrypoint.clone().unwrap_or_default(),
            cmd: c.cmd.clone().unwrap_or_default(),
            env: c
                .env
                .iter()
                .flatten()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            working_dir: c.working_dir.clone(),
            user: c.user.clone(),
            user_ids: c
                .user
                .as_deref()
                .filter(|u| !u.is_empty())
                .map(|u| users::resolve_user(&img.lower_dirs(), u)),
            stop_signal: c.stop_signal.clone(),
            digest: Some(img.digest.as_str().to_string()),
            // A store path that is not UTF-8 cannot be a unit argument: the
            // rootfs is then resolved at start (`podc rootfs prepare`).
            layers: img
                .lower_dirs()
                .iter()
                .map(|d| d.to_str().map(String::from))
                .collect::<Option<Vec<_>>>()
                .unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_defaults() {
        assert_eq!(
            PullPolicy::for_container(None, "busybox").unwrap(),
            PullPolicy::Always
        );
        assert_eq!(
            PullPolicy::for_container(None, "busybox:latest").unwrap(),
            PullPolicy::Always
        );
        assert_eq!(
            PullPolicy::for_container(None, "busybox:1.36").unwrap(),
            PullPolicy::IfNotPresent
        );
        let d = format!("busybox@sha256:{}", "0".repeat(64));
        assert_eq!(
            PullPolicy::for_container(None, &d).unwrap(),
            PullPolicy::IfNotPresent
        );
        assert_eq!(
            PullPolicy::for_container(Some("Never"), "busybox").unwrap(),
            PullPolicy::Never
        );
        assert!(PullPolicy::parse("never")
            .unwrap_err()
            .to_string()
            .contains("expected Always"));
    }

    #[test]
    fn never_pull_error_names_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let e = store
            .ensure_image("nothere:1", PullPolicy::Never, &PullOptions::default())
            .unwrap_err();
        let ie = e.downcast_ref::<ImageError>().unwrap();
        assert_eq!(ie.reason, "ErrImageNeverPull");
        assert!(ie.message.contains("not present with pull policy of Never"));
        let e = store
            .ensure_image(
                "Bad Name",
                PullPolicy::IfNotPresent,
                &PullOptions::default(),
            )
            .unwrap_err();
        assert_eq!(
            e.downcast_ref::<ImageError>().unwrap().reason,
            "InvalidImageName"
        );
    }
}
