//! A container's environment from ConfigMaps, Secrets and the pod
//! (`env[].valueFrom`, `envFrom`), on a real systemd 252 through `podc
//! apply`: what the container sees, where secret values are (and are not)
//! on the host, ConfigMap/Secret changes reaching exactly the pods that use
//! them, and missing keys refused before anything is created.
mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use support::podc::{show, Podc, TARGET_FLAGS};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Secret values: distinctive, so finding them anywhere means a leak.
const PASSWORD: &str = "pw-7Hq2zV9x-b4se";
const TOKEN: &str = "tok-Kd83Jq1m-t0k3n";

fn units(pod: &str, containers: &[&str]) -> Vec<String> {
    let mut v = vec![
        format!("podc_default_{pod}.target"),
        format!("podc_default_{pod}.service"),
    ];
    v.extend(
        containers
            .iter()
            .map(|c| format!("podc_default_{pod}_{c}.service")),
    );
    v
}

/// `podc exec POD -- env` as a map (the main process's environment).
fn container_env(p: &Podc, pod: &str) -> std::collections::BTreeMap<String, String> {
    p.run_ok(&["exec", pod, "--", "env"])
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Every regular file under `dir` (host path), symlinks not followed, whose
/// content contains `needle`.
fn files_containing(dir: &Path, needle: &[u8], skip: &[PathBuf], out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let path = e.path();
        if skip.contains(&path) {
            continue;
        }
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            files_containing(&path, needle, skip, out);
        } else if ft.is_file() {
            if let Ok(b) = std::fs::read(&path) {
                if b.windows(needle.len()).any(|w| w == needle) {
                    out.push(path);
                }
            }
        }
    }
}

const ENV_POD: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  PORT: "8080"
  MODE: from-configmap
  RAW: "$(CFG_PORT) stays"
  bad-key: skipped
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
stringData:
  DB_PASSWORD: "@PASSWORD@"
  token: "@TOKEN@"
---
apiVersion: v1
kind: Pod
metadata:
  name: envs
  labels:
    tier: backend
  annotations:
    team: platform
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: app
    image: busybox:1.36
    command:
    - sh
    - -c
    - 'if [ "$1" = "--password=$DB_PASSWORD" ]; then r=ARGV-OK; else r=ARGV-BAD; fi; echo $r > /tmp/argv-check; exec sleep 1000'
    - sh
    - --password=$(DB_PASSWORD)
    envFrom:
    - configMapRef:
        name: settings
      prefix: CFG_
    - secretRef:
        name: creds
    - secretRef:
        name: creds
      prefix: S_
    - configMapRef:
        name: absent
        optional: true
    - secretRef:
        name: absent
        optional: true
    env:
    - name: CFG_MODE
      value: from-env
    - name: DUP
      value: first
    - name: DUP
      value: second
    - name: PORT_REF
      valueFrom:
        configMapKeyRef: {name: settings, key: PORT}
    - name: TOKEN
      valueFrom:
        secretKeyRef: {name: creds, key: token}
    - name: OPTIONAL_KEY
      valueFrom:
        secretKeyRef: {name: creds, key: nope, optional: true}
    - name: OPTIONAL_SECRET
      valueFrom:
        secretKeyRef: {name: absent, key: x, optional: true}
    - name: OPTIONAL_CM
      valueFrom:
        configMapKeyRef: {name: settings, key: nope, optional: true}
    - name: POD_NAME
      valueFrom:
        fieldRef: {fieldPath: metadata.name}
    - name: POD_NAMESPACE
      valueFrom:
        fieldRef: {fieldPath: metadata.namespace}
    - name: TIER
      valueFrom:
        fieldRef: {fieldPath: "metadata.labels['tier']"}
    - name: TEAM
      valueFrom:
        fieldRef: {fieldPath: "metadata.annotations['team']"}
    - name: NODE
      valueFrom:
        fieldRef: {fieldPath: spec.nodeName}
    - name: POD_IP
      valueFrom:
        fieldRef: {fieldPath: status.podIP}
    - name: URL
      value: "http://$(POD_IP):$(CFG_PORT)/$(POD_NAME)"
    - name: DSN
      value: "db://app:$(DB_PASSWORD)@$(POD_IP)"
    - name: LITERAL
      value: "$$(POD_NAME) $(UNDEFINED)"
"#;

#[test]
fn env_from_config_maps_secrets_and_the_pod_and_secrets_stay_root_only() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    p.rootfs("envs", &["app"]);
    let yaml = ENV_POD
        .replace("@PASSWORD@", PASSWORD)
        .replace("@TOKEN@", TOKEN);
    // The input is the user's: root-only, and left out of the search.
    p.sd.sh_ok("mkdir -m 0700 /tmp/in");
    p.manifest("/tmp/in/envs.yaml", &yaml);

    // Through a build directory, so its files are searched too.
    let build = p.run(
        &[
            &["build", "-o", "/tmp/build"][..],
            &TARGET_FLAGS,
            &["/tmp/in"],
        ]
        .concat(),
    );
    assert!(build.status.success(), "{}", show(&build));
    let stderr = String::from_utf8_lossy(&build.stderr);
    assert!(
        stderr.contains("key \"bad-key\" of ConfigMap \"settings\"") && stderr.contains("skipped"),
        "an envFrom key that is no variable name is reported: {}",
        show(&build)
    );
    let out = p.run(&["apply", "--build", "/tmp/build"]);
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("pod default/envs created: Running 1/1 ready"),
        "{text}"
    );

    // What the container sees.
    let env = container_env(&p, "envs");
    let node = p.sd.sh_ok("hostname").trim().to_string();
    let want = [
        ("CFG_PORT", "8080"),
        ("CFG_MODE", "from-env"),         // env after envFrom: env wins
        ("CFG_RAW", "$(CFG_PORT) stays"), // envFrom values are not expanded
        ("DB_PASSWORD", PASSWORD),
        ("token", TOKEN), // envFrom keeps the key's case
        ("S_DB_PASSWORD", PASSWORD),
        ("S_token", TOKEN),
        ("DUP", "second"),
        ("PORT_REF", "8080"),
        ("TOKEN", TOKEN),
        ("POD_NAME", "envs"),
        ("POD_NAMESPACE", "default"),
        ("TIER", "backend"),
        ("TEAM", "platform"),
        ("NODE", node.as_str()),
        ("POD_IP", "127.0.0.1"),
        ("URL", "http://127.0.0.1:8080/envs"),
        ("LITERAL", "$(POD_NAME) $(UNDEFINED)"),
    ];
    for (k, v) in want {
        assert_eq!(env.get(k).map(String::as_str), Some(v), "{k} in {env:?}");
    }
    assert_eq!(env["DSN"], format!("db://app:{PASSWORD}@127.0.0.1"));
    for absent in [
        "OPTIONAL_KEY",
        "OPTIONAL_SECRET",
        "OPTIONAL_CM",
        "bad-key",
        "CFG_bad-key",
    ] {
        assert!(!env.contains_key(absent), "{absent} in {env:?}");
    }
    // `$(DB_PASSWORD)` in args reached the process expanded. (Not by
    // logging: journald records the sender's command line with every
    // message, and this one holds the secret until the `exec`.)
    let check = std::fs::read_to_string(
        p.sd.path("/var/lib/podc/pods/default_envs/containers/app/rootfs/tmp/argv-check"),
    )?;
    assert_eq!(check.trim(), "ARGV-OK");

    // status.podIP: `podc get -o json` says what the variable says.
    let pod: serde_json::Value =
        serde_json::from_str(&p.run_ok(&["get", "pods", "envs", "-o", "json"]))?;
    assert_eq!(pod["status"]["podIP"], env["POD_IP"].as_str(), "{pod}");
    assert_eq!(
        pod["status"]["podIPs"][0]["ip"],
        env["POD_IP"].as_str(),
        "{pod}"
    );

    // systemd's view of every podc unit: no secret value, and the secret
    // variables are not in Environment=.
    let unit = "podc_default_envs_app.service";
    let environment = p.prop(unit, "Environment");
    assert!(environment.contains("CFG_PORT=8080"), "{environment}");
    assert!(environment.contains("POD_IP=127.0.0.1"), "{environment}");
    for secret_var in [
        "DB_PASSWORD=",
        "S_DB_PASSWORD=",
        "TOKEN=",
        "token=",
        "S_token=",
        "DSN=",
    ] {
        assert!(
            !environment.split(' ').any(|kv| kv.starts_with(secret_var)),
            "{secret_var} in Environment={environment}"
        );
    }
    let env_file = "/var/lib/podc/pods/default_envs/data/env/app.env";
    assert!(
        p.prop(unit, "EnvironmentFiles").starts_with(env_file),
        "{}",
        p.prop(unit, "EnvironmentFiles")
    );
    let listed =
        p.sd.sh_ok("systemctl list-units --all --plain --no-legend 'podc*' | cut -d' ' -f1");
    let podc_units: Vec<&str> = listed.split_whitespace().collect();
    assert!(podc_units.len() >= 4, "{podc_units:?}");
    let mut systemd_view = String::new();
    for u in &podc_units {
        systemd_view += &p.sd.sh_ok(&format!(
            "systemctl show {u}; systemctl cat {u} 2>/dev/null || true"
        ));
    }
    systemd_view += &p.sd.sh_ok("systemctl show-environment; systemctl show");
    systemd_view += &p.run_ok(&["get", "pods", "-o", "yaml"]);
    systemd_view += &p.run_ok(&["describe", "pod", "envs"]);
    assert!(
        systemd_view.contains(env_file),
        "the search covers the unit"
    );
    for s in [PASSWORD, TOKEN] {
        assert!(
            !systemd_view.contains(s),
            "{s} in systemctl show/cat or podc's output"
        );
    }

    // Every file in the trees podc writes to (unit dirs, state, runtime,
    // the build dir), the journal, /tmp: the secrets are exactly in the
    // two root-only env files (installed and built).
    let trees = [
        "/etc/systemd",
        "/run",
        "/var/lib/podc",
        "/var/log/journal",
        "/tmp",
    ];
    let skip = vec![p.sd.path("/tmp/in")];
    for s in [PASSWORD, TOKEN] {
        let mut found = Vec::new();
        for t in trees {
            files_containing(&p.sd.path(t), s.as_bytes(), &skip, &mut found);
        }
        found.sort();
        let want: Vec<PathBuf> = [
            "/tmp/build/pods/default_envs/data/env/app.env",
            "/var/lib/podc/pods/default_envs/data/env/app.env",
        ]
        .iter()
        .map(|f| p.sd.path(f))
        .collect();
        assert_eq!(found, want, "files holding {s}");
        for f in &found {
            let m = std::fs::metadata(f)?;
            assert_eq!(
                (m.mode() & 0o7777, m.uid(), m.gid()),
                (0o600, 0, 0),
                "{f:?}"
            );
            let dir = std::fs::metadata(f.parent().unwrap())?;
            assert_eq!(
                (dir.permissions().mode() & 0o7777, dir.uid()),
                (0o700, 0),
                "{f:?}'s directory"
            );
        }
    }
    // The search is real: the input it skipped holds the value.
    let mut found = Vec::new();
    files_containing(&p.sd.path("/tmp"), PASSWORD.as_bytes(), &[], &mut found);
    assert!(found.contains(&p.sd.path("/tmp/in/envs.yaml")), "{found:?}");

    // As a host user: nothing it can read holds a secret, including every
    // process's command line and environment. A file it can read is found
    // (the probe), so the search works.
    p.sd.sh_ok(&format!(
        "echo {PASSWORD} > /tmp/probe && chmod 0644 /tmp/probe"
    ));
    // The patterns come on stdin from a root-only file: in grep's (or a
    // shell's) command line they would be found in /proc.
    p.manifest(
        "/tmp/in/patterns",
        format!("{PASSWORD}\n{TOKEN}\n").as_str(),
    );
    let out =
        p.sd.sh("setpriv --reuid 65534 --regid 65534 --clear-groups -- \
         grep -rlsF -f - /etc/systemd /run /var/lib/podc /var/log/journal /tmp \
         /proc/[0-9]*/cmdline /proc/[0-9]*/environ < /tmp/in/patterns; true");
    let found = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(found.trim(), "/tmp/probe", "{}", show(&out));
    std::fs::remove_file(p.sd.path("/tmp/probe"))?;
    let env_as_user = p.sd.sh(&format!(
        "setpriv --reuid 65534 --regid 65534 --clear-groups -- cat {env_file}"
    ));
    assert!(!env_as_user.status.success(), "{}", show(&env_as_user));

    // Again unchanged: nothing restarts (secret files compare equal with
    // no hash in the inventory).
    let ids = p.invocations(&units("envs", &["app"]));
    let out = p.run_ok(&["apply", "--build", "/tmp/build"]);
    assert!(out.contains("pod default/envs unchanged"), "{out}");
    assert_eq!(p.invocations(&units("envs", &["app"])), ids);
    Ok(())
}

/// Pods using a ConfigMap or Secret, by env or by volume, and one using
/// neither.
const CHANGES: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: shared
data:
  GREETING: hello-v1
  other: untouched
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: unrelated
data:
  X: "1"
---
apiVersion: v1
kind: Secret
metadata:
  name: token
stringData:
  value: TOKEN_V
---
apiVersion: v1
kind: Pod
metadata:
  name: by-env
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: app
    image: busybox:1.36
    command: ["sh", "-c", "exec sleep 1000"]
    env:
    - name: GREETING
      valueFrom:
        configMapKeyRef: {name: shared, key: GREETING}
---
apiVersion: v1
kind: Pod
metadata:
  name: by-volume
spec:
  terminationGracePeriodSeconds: 3
  volumes:
  - name: cfg
    configMap:
      name: shared
  containers:
  - name: app
    image: busybox:1.36
    command: ["sh", "-c", "exec sleep 1000"]
    volumeMounts:
    - {name: cfg, mountPath: /cfg}
---
apiVersion: v1
kind: Pod
metadata:
  name: by-secret
spec:
  terminationGracePeriodSeconds: 3
  volumes:
  - name: tok
    secret:
      secretName: token
  containers:
  - name: app
    image: busybox:1.36
    command: ["sh", "-c", "exec sleep 1000"]
    env:
    - name: TOKEN
      valueFrom:
        secretKeyRef: {name: token, key: value}
    volumeMounts:
    - {name: tok, mountPath: /tok}
---
apiVersion: v1
kind: Pod
metadata:
  name: bystander
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: app
    image: busybox:1.36
    command: ["sh", "-c", "exec sleep 1000"]
    envFrom:
    - configMapRef: {name: unrelated}
---
apiVersion: v1
kind: Pod
metadata:
  name: hostnet
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 3
  containers:
  - name: app
    image: busybox:1.36
    command: ["sh", "-c", "exec sleep 1000"]
"#;

#[test]
fn config_map_and_secret_changes_recreate_exactly_the_pods_that_use_them() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    let pods = ["by-env", "by-volume", "by-secret", "bystander", "hostnet"];
    for pod in pods {
        p.rootfs(pod, &["app"]);
    }
    let write = |greeting: &str, token: &str| {
        p.manifest(
            "/tmp/m/all.yaml",
            &CHANGES
                .replace("hello-v1", greeting)
                .replace("TOKEN_V", token),
        )
    };
    let token_v1 = "tok-v1-Zr8sLq2w";
    let token_v2 = "tok-v2-Mn4xPe7k";
    write("hello-v1", token_v1);
    let out = p.apply_ok("/tmp/m", &[]);
    for pod in pods {
        assert!(
            out.contains(&format!("pod default/{pod} created: Running 1/1 ready")),
            "{out}"
        );
    }
    assert_eq!(container_env(&p, "by-env")["GREETING"], "hello-v1");
    assert_eq!(
        p.run_ok(&["exec", "by-volume", "--", "cat", "/cfg/GREETING"]),
        "hello-v1"
    );
    assert_eq!(container_env(&p, "by-secret")["TOKEN"], token_v1);
    assert_eq!(
        p.run_ok(&["exec", "by-secret", "--", "cat", "/tok/value"]),
        token_v1
    );
    // status.podIP: 127.0.0.1 in the pod's own network namespace, the
    // host's address (its route's source address) with hostNetwork.
    let ip = |pod: &str| -> serde_json::Value {
        let v: serde_json::Value =
            serde_json::from_str(&p.run_ok(&["get", "pods", pod, "-o", "json"])).unwrap();
        v["status"]["podIP"].clone()
    };
    assert_eq!(ip("by-env"), "127.0.0.1");
    let route = p.sd.sh("ip -4 -o route get 192.0.2.1");
    let host_ip = String::from_utf8_lossy(&route.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "src")
        .nth(1)
        .map(str::to_string);
    match host_ip {
        Some(h) => assert_eq!(ip("hostnet"), h.as_str()),
        None => assert_eq!(
            ip("hostnet"),
            serde_json::Value::Null,
            "no route, no address"
        ),
    }
    let ids = |pod: &str| p.invocations(&units(pod, &["app"]));
    let before: Vec<Vec<String>> = pods.iter().map(|pod| ids(pod)).collect();

    // The same input again: nothing restarts.
    let out = p.apply_ok("/tmp/m", &[]);
    for pod in pods {
        assert!(
            out.contains(&format!("pod default/{pod} unchanged")),
            "{out}"
        );
    }
    let now: Vec<Vec<String>> = pods.iter().map(|pod| ids(pod)).collect();
    assert_eq!(now, before);

    // The ConfigMap changes: the pods using it (by env and by volume) are
    // recreated with the new value; the others keep running.
    write("hello-v2", token_v1);
    let d = p.run(&[&["diff", "-f", "/tmp/m"][..], &TARGET_FLAGS].concat());
    assert_eq!(d.status.code(), Some(1), "{}", show(&d));
    let out = p.apply_ok("/tmp/m", &[]);
    println!("{out}");
    for (i, pod) in pods.iter().enumerate() {
        let now = ids(pod);
        if i < 2 {
            assert!(
                out.contains(&format!("pod default/{pod} recreated: Running 1/1 ready")),
                "{out}"
            );
            for (o, n) in before[i].iter().zip(&now) {
                assert_ne!(o, n, "every unit of {pod} restarts");
            }
        } else {
            assert!(
                out.contains(&format!("pod default/{pod} unchanged")),
                "{out}"
            );
            assert_eq!(now, before[i], "{pod} is left alone");
        }
    }
    assert_eq!(container_env(&p, "by-env")["GREETING"], "hello-v2");
    assert_eq!(
        p.run_ok(&["exec", "by-volume", "--", "cat", "/cfg/GREETING"]),
        "hello-v2"
    );
    let before: Vec<Vec<String>> = pods.iter().map(|pod| ids(pod)).collect();

    // The Secret changes: only the pod using it is recreated. Neither the
    // value nor a plain hash of it (or of the env file holding it) is in
    // the world-readable inventory; diff does not show it.
    write("hello-v2", token_v2);
    let d = p.run(&[&["diff", "-f", "/tmp/m"][..], &TARGET_FLAGS].concat());
    assert_eq!(d.status.code(), Some(1), "{}", show(&d));
    let dt = String::from_utf8_lossy(&d.stdout);
    assert!(dt.contains("(secret: content not shown)"), "{dt}");
    assert!(!dt.contains(token_v1) && !dt.contains(token_v2), "{dt}");
    let out = p.apply_ok("/tmp/m", &[]);
    println!("{out}");
    for (i, pod) in pods.iter().enumerate() {
        let now = ids(pod);
        if i == 2 {
            assert!(
                out.contains(&format!("pod default/{pod} recreated: Running 1/1 ready")),
                "{out}"
            );
            for (o, n) in before[i].iter().zip(&now) {
                assert_ne!(o, n, "every unit of {pod} restarts");
            }
        } else {
            assert!(
                out.contains(&format!("pod default/{pod} unchanged")),
                "{out}"
            );
            assert_eq!(now, before[i], "{pod} is left alone");
        }
    }
    assert_eq!(container_env(&p, "by-secret")["TOKEN"], token_v2);
    assert_eq!(
        p.run_ok(&["exec", "by-secret", "--", "cat", "/tok/value"]),
        token_v2
    );

    let inventory = std::fs::read_to_string(p.sd.path("/var/lib/podc/inventory.json"))?;
    let mode = std::fs::metadata(p.sd.path("/var/lib/podc/inventory.json"))?.mode();
    assert_eq!(
        mode & 0o004,
        0o004,
        "the inventory is world-readable, so it must not leak"
    );
    let env_file =
        std::fs::read(p.sd.path("/var/lib/podc/pods/default_by-secret/data/env/app.env"))?;
    use sha2::Digest;
    for secret_bytes in [token_v2.as_bytes(), &env_file[..]] {
        let hex = format!("{:x}", sha2::Sha256::digest(secret_bytes));
        assert!(
            !inventory.contains(&hex),
            "sha256 of secret data in the inventory"
        );
    }
    for t in [token_v1, token_v2] {
        assert!(!inventory.contains(t));
        let mut found = Vec::new();
        files_containing(&p.sd.path("/etc/systemd"), t.as_bytes(), &[], &mut found);
        assert!(found.is_empty(), "{found:?}");
    }
    Ok(())
}

#[test]
fn a_missing_secret_key_is_refused_with_its_location_and_creates_nothing() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    p.rootfs("good", &["app"]);
    p.rootfs("bad", &["app"]);
    let secret =
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  user: app\n";
    let pod = |name: &str, key: &str, optional: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 3\n  containers:\n  - name: app\n    image: busybox:1.36\n    command: [\"sh\", \"-c\", \"exec sleep 1000\"]\n    env:\n    - name: SECRET\n      valueFrom:\n        secretKeyRef:\n          name: creds\n          key: {key}\n{optional}"
        )
    };
    let nothing_created = |p: &Podc| {
        let units =
            p.sd.sh_ok("ls /etc/systemd/system /run/systemd/system 2>/dev/null; true");
        assert!(!units.contains("podc"), "{units}");
        let loaded =
            p.sd.sh_ok("systemctl list-units --all --plain --no-legend 'podc*'");
        assert!(loaded.trim().is_empty(), "{loaded}");
        // Only the container roots the test provisioned.
        let state =
            p.sd.sh_ok("cd /var/lib/podc/pods && find . -maxdepth 2 | sort");
        assert_eq!(
            state.split_whitespace().collect::<Vec<_>>(),
            [
                ".",
                "./default_bad",
                "./default_bad/containers",
                "./default_good",
                "./default_good/containers"
            ],
            "{state}"
        );
        assert!(!p.sd.path("/var/lib/podc/inventory.json").exists());
        assert!(!p.sd.path("/run/podc/pods").exists());
    };

    // A key the Secret does not have; beside it a good pod: apply is all or
    // nothing, and says where the problem is.
    p.manifest("/tmp/a/secret.yaml", secret);
    p.manifest("/tmp/a/good.yaml", &pod("good", "user", ""));
    p.manifest("/tmp/a/bad.yaml", &pod("bad", "password", ""));
    let out = p.apply("/tmp/a", &[]);
    assert_eq!(out.status.code(), Some(1), "invalid input: {}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/tmp/a/bad.yaml:16:16: error: spec.containers[0].env[0].valueFrom.secretKeyRef.key: Secret \"creds\" has no key \"password\"; it has: user"),
        "{}",
        show(&out)
    );
    nothing_created(&p);

    // A Secret that is not in the input at all (Kubernetes would leave the
    // container in CreateContainerConfigError; podc refuses to build it).
    p.manifest("/tmp/b/bad.yaml", &pod("bad", "password", ""));
    let out = p.apply("/tmp/b", &[]);
    assert_eq!(out.status.code(), Some(1), "invalid input: {}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/tmp/b/bad.yaml:15:17: error: spec.containers[0].env[0].valueFrom.secretKeyRef.name: Secret \"creds\" is not defined in namespace \"default\" in the input; add it, or set optional: true"),
        "{}",
        show(&out)
    );
    nothing_created(&p);

    // optional: true: the pod runs without the variable.
    p.manifest(
        "/tmp/a/bad.yaml",
        &pod("bad", "password", "          optional: true\n"),
    );
    let out = p.apply_ok("/tmp/a", &[]);
    assert!(
        out.contains("pod default/bad created: Running 1/1 ready"),
        "{out}"
    );
    assert!(
        out.contains("pod default/good created: Running 1/1 ready"),
        "{out}"
    );
    assert!(!container_env(&p, "bad").contains_key("SECRET"));
    assert_eq!(container_env(&p, "good")["SECRET"], "app");

    // At apply time: the key disappears from the Secret of a running pod.
    // The input is refused; the running pods are left as they were.
    let ids = p.invocations(&units("good", &["app"]));
    p.manifest(
        "/tmp/a/secret.yaml",
        &secret.replace("user: app", "renamed: app"),
    );
    let out = p.apply("/tmp/a", &[]);
    assert_eq!(out.status.code(), Some(1), "invalid input: {}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/tmp/a/good.yaml:16:16: error: spec.containers[0].env[0].valueFrom.secretKeyRef.key: Secret \"creds\" has no key \"user\"; it has: renamed"),
        "{}",
        show(&out)
    );
    assert_eq!(p.invocations(&units("good", &["app"])), ids);
    assert_eq!(container_env(&p, "good")["SECRET"], "app");
    Ok(())
}
