//! Resolving a container's process from its image config with Kubernetes'
//! rules.

use super::store::ImageConfig;
use anyhow::{bail, Result};

/// The PATH container runtimes give a process whose image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the pod's container spec says (all optional).
#[derive(Clone, Debug, Default)]
pub struct ContainerOverrides {
    /// `command`: replaces ENTRYPOINT and drops CMD.
    pub command: Option<Vec<String>>,
    /// `args`: replaces CMD.
    pub args: Option<Vec<String>>,
    /// `env`, in order, already `$(VAR)`-expanded by the caller.
    pub env: Vec<(String, String)>,
    /// `workingDir`.
    pub working_dir: Option<String>,
    /// User from `securityContext` (`runAsUser[:runAsGroup]`).
    pub user: Option<String>,
    /// Stop signal from the pod (`lifecycle.stopSignal`).
    pub stop_signal: Option<String>,
}

/// The process a container runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub argv: Vec<String>,
    /// Image env overlaid by the container's, in order; always has PATH.
    pub env: Vec<(String, String)>,
    pub working_dir: String,
    /// `user[:group]` as the image or pod gave it; `None` means root.
    pub user: Option<String>,
    /// `None` means the runtime default (SIGTERM).
    pub stop_signal: Option<String>,
}

impl Process {
    /// The value of `name` in the process environment.
    pub fn env_value(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn set(env: &mut Vec<(String, String)>, k: &str, v: &str) {
    match env.iter_mut().find(|(x, _)| x == k) {
        Some(e) => e.1 = v.to_string(),
        None => env.push((k.to_string(), v.to_string())),
    }
}

/// Resolves the process per Kubernetes:
/// - `command` replaces ENTRYPOINT and drops CMD; `args` replaces CMD;
///   (empty lists count as unset, as in Kubernetes);
/// - env is the image env overlaid by the container's, with the default
///   PATH when neither sets one;
/// - workingDir, user and stop signal come from the image unless the pod
///   gives them; the working dir defaults to `/`.
pub fn resolve_process(image: &ImageConfig, c: &ContainerOverrides) -> Result<Process> {
    fn nonempty(v: &Option<Vec<String>>) -> Option<&[String]> {
        v.as_deref().filter(|v| !v.is_empty())
    }
    // The same rule the compiler applies when it renders ExecStart=.
    let argv = crate::plan::container_argv(
        image.entrypoint.as_deref().unwrap_or_default(),
        image.cmd.as_deref().unwrap_or_default(),
        nonempty(&c.command),
        nonempty(&c.args),
    );
    if argv.is_empty() {
        bail!("no command to run: the image has neither ENTRYPOINT nor CMD and the container sets no command");
    }
    let mut env = Vec::new();
    for e in image.env.iter().flatten() {
        match e.split_once('=') {
            Some((k, v)) => set(&mut env, k, v),
            None => set(&mut env, e, ""),
        }
    }
    for (k, v) in &c.env {
        set(&mut env, k, v);
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.insert(0, ("PATH".into(), DEFAULT_PATH.into()));
    }
    let nonblank = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    Ok(Process {
        argv,
        env,
        working_dir: nonblank(&c.working_dir)
            .or_else(|| nonblank(&image.working_dir))
            .unwrap_or_else(|| "/".into()),
        user: nonblank(&c.user).or_else(|| nonblank(&image.user)),
        stop_signal: nonblank(&c.stop_signal).or_else(|| nonblank(&image.stop_signal)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Option<Vec<String>> {
        Some(s.iter().map(|x| x.to_string()).collect())
    }

    fn img() -> ImageConfig {
        ImageConfig {
            entrypoint: v(&["/entry", "-x"]),
            cmd: v(&["default-arg"]),
            env: v(&["A=1", "PATH=/img/bin", "EMPTY="]),
            working_dir: Some("/work".into()),
            user: Some("1000:1000".into()),
            stop_signal: Some("SIGQUIT".into()),
            labels: None,
        }
    }

    #[test]
    fn kubernetes_command_rules() {
        let none = ContainerOverrides::default();
        assert_eq!(
            resolve_process(&img(), &none).unwrap().argv,
            ["/entry", "-x", "default-arg"]
        );
        let args = ContainerOverrides {
            args: v(&["a", "b"]),
            ..Default::default()
        };
        assert_eq!(
            resolve_process(&img(), &args).unwrap().argv,
            ["/entry", "-x", "a", "b"]
        );
        let cmd = ContainerOverrides {
            command: v(&["sh"]),
            ..Default::default()
        };
        assert_eq!(resolve_process(&img(), &cmd).unwrap().argv, ["sh"]);
        let both = ContainerOverrides {
            command: v(&["sh", "-c"]),
            args: v(&["echo"]),
            ..Default::default()
        };
        assert_eq!(
            resolve_process(&img(), &both).unwrap().argv,
            ["sh", "-c", "echo"]
        );
        let empty = ContainerOverrides {
            command: Some(vec![]),
            ..Default::default()
        };
        assert_eq!(
            resolve_process(&img(), &empty).unwrap().argv,
            ["/entry", "-x", "default-arg"]
        );
    }

    #[test]
    fn env_overlay_and_defaults() {
        let c = ContainerOverrides {
            env: vec![("A".into(), "2".into()), ("B".into(), "3".into())],
            ..Default::default()
        };
        let p = resolve_process(&img(), &c).unwrap();
        assert_eq!(
            p.env,
            [("A", "2"), ("PATH", "/img/bin"), ("EMPTY", ""), ("B", "3")]
                .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        assert_eq!(p.working_dir, "/work");
        assert_eq!(p.user.as_deref(), Some("1000:1000"));
        assert_eq!(p.stop_signal.as_deref(), Some("SIGQUIT"));

        let bare = ImageConfig {
            cmd: v(&["sh"]),
            ..Default::default()
        };
        let p = resolve_process(&bare, &ContainerOverrides::default()).unwrap();
        assert_eq!(p.env_value("PATH"), Some(DEFAULT_PATH));
        assert_eq!(p.working_dir, "/");
        assert_eq!(p.user, None);

        let o = ContainerOverrides {
            working_dir: Some("/other".into()),
            user: Some("0".into()),
            stop_signal: Some("SIGINT".into()),
            ..Default::default()
        };
        let p = resolve_process(&img(), &o).unwrap();
        assert_eq!(
            (
                p.working_dir.as_str(),
                p.user.as_deref(),
                p.stop_signal.as_deref()
            ),
            ("/other", Some("0"), Some("SIGINT"))
        );
    }

    #[test]
    fn no_command_is_an_error() {
        let e =
            resolve_process(&ImageConfig::default(), &ContainerOverrides::default()).unwrap_err();
        assert!(e.to_string().contains("neither ENTRYPOINT nor CMD"));
    }
}
