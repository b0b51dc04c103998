//! Pull from a real OCI registry (Debian's docker-registry on 127.0.0.1),
//! pushed to with skopeo.

mod image_support;

use image_support::*;
use podc::image::unpack::Compression;
use podc::image::{ImageError, PullOptions, PullPolicy, Store};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REGISTRY: &str = "/usr/bin/docker-registry";

struct Registry {
    child: Option<Child>,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry on a free 127.0.0.1 port; `htpasswd` turns on basic auth.
    fn start(htpasswd: Option<&str>) -> Option<Registry> {
        if !Path::new(REGISTRY).exists()
            || Command::new("skopeo").arg("--version").output().is_err()
        {
            skip("docker-registry or skopeo is not installed (.ci/image-deps)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut conf = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some(h) = htpasswd {
            let p = dir.path().join("htpasswd");
            std::fs::write(&p, h).unwrap();
            conf.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                p.display()
            ));
        }
        let cp = dir.path().join("config.yml");
        std::fs::write(&cp, conf).unwrap();
        let child = Command::new(REGISTRY)
            .arg("serve")
            .arg(&cp)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Registry {
            child: Some(child),
            port,
            _dir: dir,
        })
    }
    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    /// `skopeo copy` of an OCI layout into the registry.
    fn push(&self, layout: &Path, repo_tag: &str, extra: &[&str]) {
        let o = Command::new("skopeo")
            .args([
                "--insecure-policy",
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
            ])
            .args(extra)
            .arg(format!("oci:{}", layout.display()))
            .arg(format!("docker://{}/{repo_tag}", self.host()))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "skopeo copy failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    /// The raw manifest (or index) the registry serves for `repo_tag`.
    fn raw_manifest(&self, repo_tag: &str) -> Vec<u8> {
        let o = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{}/{repo_tag}", self.host()))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "skopeo inspect failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o.stdout
    }
    /// The manifest digest the registry has for `repo_tag` (skopeo
    /// compresses uncompressed layers on push, so it can differ from the
    /// layout's).
    fn digest(&self, repo_tag: &str) -> podc::image::Digest {
        podc::image::Digest::of_bytes(&self.raw_manifest(repo_tag))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn store_state(root: &Path) -> Vec<PathBuf> {
    let mut t = tree(&root.join("images"));
    t.retain(|p| p != Path::new("lock"));
    t
}

#[test]
fn push_with_skopeo_pull_with_podc() {
    if skip_unless_root("importing layers with whiteouts") {
        return;
    }
    let Some(mut reg) = Registry::start(None) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let img = busybox_image();
    let layout = t.path().join("layout");
    write_oci_layout(&img, &layout, None);
    reg.push(&layout, "test/busybox:1", &[]);
    let root = t.path().join("root");
    let reference = format!("{}/test/busybox:1", reg.host());

    let digest = reg.digest("test/busybox:1");
    let out = run_ok(podc(&root).args(["image", "pull", "--insecure", &reference]));
    assert!(
        out.contains(digest.as_str()),
        "digest differs from the registry's {digest}: {out}"
    );
    assert_eq!(export_listing(&root, &reference), busybox_expected());
    let names = names_in_ls(&root);
    assert_eq!(
        names.get(&reference).map(String::as_str),
        Some(digest.as_str())
    );
    // same config (and so the same diffIDs) as the image pushed
    let pulled = Store::open(&root).unwrap().image(&reference).unwrap();
    assert_eq!(pulled.config_digest, img.config_digest());
    run_ok(podc(&root).args(["image", "check"]));

    // pulling again is a no-op for the layers and keeps the digest
    let out = run_ok(podc(&root).args(["image", "pull", "--insecure", &reference]));
    assert!(out.contains(digest.as_str()));

    // a missing tag: the registry's answer is named, the store is unchanged
    let before = store_state(&root);
    let o = run_err(podc(&root).args([
        "image",
        "pull",
        "--insecure",
        &format!("{}/test/busybox:nope", reg.host()),
    ]));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("ErrImagePull") && e.contains("not found") && e.contains("MANIFEST_UNKNOWN"),
        "{e}"
    );
    let o = run_err(podc(&root).args([
        "image",
        "pull",
        "--insecure",
        &format!("{}/no/such-repo:1", reg.host()),
    ]));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("not found") && (e.contains("NAME_UNKNOWN") || e.contains("MANIFEST_UNKNOWN")),
        "{e}"
    );
    assert_eq!(store_state(&root), before);

    // insecure from the config file instead of the flag, into a fresh store
    let root2 = t.path().join("root2");
    std::fs::create_dir_all(&root2).unwrap();
    let o = run_err(podc(&root2).args(["image", "pull", &reference]));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unreachable"),
        "https to a plain http registry fails"
    );
    std::fs::write(
        root2.join("registries.json"),
        format!(r#"{{"insecure": ["{}"]}}"#, reg.host()),
    )
    .unwrap();
    let out = run_ok(podc(&root2).args(["image", "pull", &reference]));
    assert!(out.contains(digest.as_str()));

    // an endpoint mirror: short Kubernetes names served by the local registry
    reg.push(&layout, "library/busybox:1.36", &[]);
    let root3 = t.path().join("root3");
    std::fs::create_dir_all(&root3).unwrap();
    std::fs::write(
        root3.join("registries.json"),
        format!(
            r#"{{"insecure": ["{0}"], "endpoints": {{"docker.io": "{0}"}}}}"#,
            reg.host()
        ),
    )
    .unwrap();
    let out = run_ok(podc(&root3).args(["image", "pull", "busybox:1.36"]));
    assert!(
        out.contains(reg.digest("library/busybox:1.36").as_str()),
        "{out}"
    );
    assert!(names_in_ls(&root3).contains_key("docker.io/library/busybox:1.36"));
    std::fs::write(
        root3.join("registries.json"),
        r#"{"insecure": [], "mirrors": {}}"#,
    )
    .unwrap();
    let o = run_err(podc(&root3).args(["image", "pull", "busybox:1.36"]));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown field `mirrors`"));

    // a stopped registry: unreachable, store unchanged
    reg.stop();
    let before = store_state(&root);
    let o = run_err(podc(&root).args([
        "image",
        "pull",
        "--insecure",
        &format!("{}/test/other:1", reg.host()),
    ]));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("ErrImagePull") && e.contains("unreachable"),
        "{e}"
    );
    assert_eq!(store_state(&root), before);
}

#[test]
fn multi_arch_index_picks_the_host_platform() {
    if skip_unless_root("importing layers with whiteouts") {
        return;
    }
    let Some(reg) = Registry::start(None) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let img = busybox_image();
    let other_arch = if host_arch() == "s390x" {
        "amd64"
    } else {
        "s390x"
    };
    let mut cfg = busybox_config();
    cfg["architecture"] = serde_json::json!(other_arch);
    let other = TestImage::new(
        vec![layer(
            &[dir("./", 0o755), file("wrong-arch", 0o644, b"x")],
            Compression::Gzip,
        )],
        cfg,
    );
    let layout = t.path().join("layout");
    write_oci_layout_multiarch(&img, &other, other_arch, &layout, "multi:1");
    reg.push(&layout, "test/multi:1", &["--all"]);
    let root = t.path().join("root");
    let reference = format!("{}/test/multi:1", reg.host());
    let index: serde_json::Value =
        serde_json::from_slice(&reg.raw_manifest("test/multi:1")).unwrap();
    let host = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == host_arch().as_str())
        .unwrap();
    let host_digest = host["digest"].as_str().unwrap();
    let out = run_ok(podc(&root).args(["image", "pull", "--insecure", &reference]));
    assert!(out.contains(host_digest), "{out}");
    assert_eq!(
        Store::open(&root)
            .unwrap()
            .image(&reference)
            .unwrap()
            .config_digest,
        img.config_digest()
    );
    assert_eq!(export_listing(&root, &reference), busybox_expected());
    // the layout import picks the same one
    let root2 = t.path().join("root2");
    let out = run_ok(podc(&root2).args(["image", "import"]).arg(&layout));
    assert!(out.contains(img.digest().as_str()), "{out}");
    // an index without the host's platform is a clear error
    let layout2 = t.path().join("layout2");
    write_oci_layout_multiarch(&other, &other, other_arch, &layout2, "x:1");
    let mut idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout2.join("index.json")).unwrap()).unwrap();
    let inner_digest = idx["manifests"][0]["digest"].as_str().unwrap().to_string();
    let inner_path = layout2.join("blobs/sha256").join(&inner_digest[7..]);
    let mut inner: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&inner_path).unwrap()).unwrap();
    inner["manifests"].as_array_mut().unwrap().truncate(1);
    let inner = serde_json::to_vec(&inner).unwrap();
    let d = podc::image::Digest::of_bytes(&inner);
    std::fs::write(layout2.join("blobs/sha256").join(d.hex()), &inner).unwrap();
    idx["manifests"][0]["digest"] = serde_json::json!(d.as_str());
    idx["manifests"][0]["size"] = serde_json::json!(inner.len());
    std::fs::write(
        layout2.join("index.json"),
        serde_json::to_vec(&idx).unwrap(),
    )
    .unwrap();
    let o = run_err(podc(&root2).args(["image", "import"]).arg(&layout2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("no image for this host") && e.contains(&format!("linux/{other_arch}")),
        "{e}"
    );
}

#[test]
fn pull_policies() {
    if skip_unless_root("importing layers with whiteouts") {
        return;
    }
    let Some(mut reg) = Registry::start(None) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let img = busybox_image();
    let layout = t.path().join("layout");
    write_oci_layout(&img, &layout, None);
    reg.push(&layout, "test/busybox:1", &[]);
    let store = Store::open(&t.path().join("root")).unwrap();
    let reference = format!("{}/test/busybox:1", reg.host());
    let opts = PullOptions {
        insecure: true,
        auth_file: None,
    };
    // Never + missing: ErrImageNeverPull, and nothing was fetched
    let e = store
        .ensure_image(&reference, PullPolicy::Never, &opts)
        .unwrap_err();
    assert_eq!(
        e.downcast_ref::<ImageError>().unwrap().reason,
        "ErrImageNeverPull"
    );
    assert!(store.resolve(&reference).unwrap().is_none());
    // IfNotPresent + missing: pulls
    let digest = reg.digest("test/busybox:1");
    assert_eq!(
        store
            .ensure_image(&reference, PullPolicy::IfNotPresent, &opts)
            .unwrap()
            .digest,
        digest
    );
    reg.stop();
    // present: IfNotPresent and Never use it without the (stopped) registry
    assert_eq!(
        store
            .ensure_image(&reference, PullPolicy::IfNotPresent, &opts)
            .unwrap()
            .digest,
        digest
    );
    assert_eq!(
        store
            .ensure_image(&reference, PullPolicy::Never, &opts)
            .unwrap()
            .digest,
        digest
    );
    // Always pulls, so a stopped registry fails it
    let e = store
        .ensure_image(&reference, PullPolicy::Always, &opts)
        .unwrap_err();
    let ie = e.downcast_ref::<ImageError>().unwrap();
    assert_eq!(ie.reason, "ErrImagePull");
    assert!(ie.message.contains("unreachable"), "{}", ie.message);
}

#[test]
fn credentials_come_from_the_auth_file() {
    if skip_unless_root("ownership") {
        return;
    }
    // bcrypt for the registry's htpasswd file
    let hash = Command::new("python3")
        .args([
            "-c",
            "import crypt; print(crypt.crypt('s3cret', crypt.mksalt(crypt.METHOD_BLOWFISH)))",
        ])
        .output();
    let hash = match hash {
        Ok(o) if o.status.success() && o.stdout.starts_with(b"$2") => {
            String::from_utf8(o.stdout).unwrap()
        }
        _ => {
            skip("no bcrypt (python3 crypt) to write an htpasswd file");
            return;
        }
    };
    let Some(reg) = Registry::start(Some(&format!("tester:{}", hash.trim()))) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let img = TestImage::new(
        vec![layer(
            &[dir("./", 0o755), file("f", 0o644, b"f")],
            Compression::Gzip,
        )],
        busybox_config(),
    );
    let layout = t.path().join("layout");
    write_oci_layout(&img, &layout, None);
    reg.push(
        &layout,
        "test/private:1",
        &["--dest-creds", "tester:s3cret"],
    );
    let root = t.path().join("root");
    let reference = format!("{}/test/private:1", reg.host());
    let empty = t.path().join("empty.json");
    std::fs::write(&empty, "{}").unwrap();
    let o = run_err(
        podc(&root)
            .args(["image", "pull", "--insecure", "--authfile"])
            .arg(&empty)
            .arg(&reference),
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("unauthorized"), "{e}");
    let wrong = t.path().join("wrong.json");
    std::fs::write(
        &wrong,
        format!(
            r#"{{"auths":{{"{}":{{"username":"tester","password":"nope"}}}}}}"#,
            reg.host()
        ),
    )
    .unwrap();
    let o = run_err(
        podc(&root)
            .args(["image", "pull", "--insecure", "--authfile"])
            .arg(&wrong)
            .arg(&reference),
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("unauthorized"));
    // the standard variable, base64 "auth" form
    let auth = t.path().join("auth.json");
    let b64 = "dGVzdGVyOnMzY3JldA=="; // tester:s3cret
    std::fs::write(
        &auth,
        format!(r#"{{"auths":{{"{}":{{"auth":"{b64}"}}}}}}"#, reg.host()),
    )
    .unwrap();
    let out = run_ok(
        podc(&root)
            .args(["image", "pull", "--insecure", &reference])
            .env("REGISTRY_AUTH_FILE", &auth),
    );
    assert!(
        out.contains(img.digest().as_str()),
        "gzip layers: skopeo keeps the manifest: {out}"
    );
}

/// A minimal registry that wants a bearer token from its token service,
/// which wants basic credentials: the flow big registries use.
/// With `corrupt`, layer blobs are served with one byte changed.
fn fake_token_registry(
    img: &TestImage,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    corrupt: bool,
) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut blobs = std::collections::HashMap::new();
    blobs.insert(img.config_digest().to_string(), img.config.clone());
    for l in &img.layers {
        let mut b = l.blob.clone();
        if corrupt {
            let last = b.len() - 1;
            b[last] ^= 0xff;
        }
        blobs.insert(l.digest.to_string(), b);
    }
    let manifest = img.manifest.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut auth = String::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if let Some(v) = h
                    .strip_prefix("Authorization: ")
                    .or_else(|| h.strip_prefix("authorization: "))
                {
                    auth = v.trim().to_string();
                }
            }
            log.lock().unwrap().push(format!("{path} {auth}"));
            let bearer_ok = auth == "Bearer tok123";
            let (status, ctype, extra, body): (&str, &str, String, Vec<u8>) = if path
                .starts_with("/token?")
            {
                if auth == "Basic dGVzdGVyOnMzY3JldA==" {
                    (
                        "200 OK",
                        "application/json",
                        String::new(),
                        br#"{"token":"tok123"}"#.to_vec(),
                    )
                } else {
                    (
                        "401 Unauthorized",
                        "application/json",
                        String::new(),
                        br#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#
                            .to_vec(),
                    )
                }
            } else if !bearer_ok {
                let challenge = format!(
                    "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"fake\",scope=\"repository:test/tok:pull\"\r\n"
                );
                (
                    "401 Unauthorized",
                    "application/json",
                    challenge,
                    br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#
                        .to_vec(),
                )
            } else if path == "/v2/test/tok/manifests/1" {
                (
                    "200 OK",
                    "application/vnd.oci.image.manifest.v1+json",
                    String::new(),
                    manifest.clone(),
                )
            } else if let Some(b) = path
                .strip_prefix("/v2/test/tok/blobs/")
                .and_then(|d| blobs.get(d))
            {
                (
                    "200 OK",
                    "application/octet-stream",
                    String::new(),
                    b.clone(),
                )
            } else {
                (
                    "404 Not Found",
                    "application/json",
                    String::new(),
                    br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
                        .to_vec(),
                )
            };
            let head = format!("HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n", body.len());
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body);
        }
    });
    port
}

#[test]
fn bearer_token_flow_with_basic_credentials() {
    let t = tempfile::tempdir().unwrap();
    let img = TestImage::new(
        vec![layer(
            &[dir("./", 0o755), file("f", 0o644, b"token")],
            Compression::Zstd,
        )],
        busybox_config(),
    );
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let port = fake_token_registry(&img, log.clone(), false);
    let reference = format!("127.0.0.1:{port}/test/tok:1");
    let root = t.path().join("root");
    // without credentials: the token service refuses, and the error says so
    let empty = t.path().join("empty.json");
    std::fs::write(&empty, "{}").unwrap();
    let o = run_err(
        podc(&root)
            .args(["image", "pull", "--insecure", "--authfile"])
            .arg(&empty)
            .arg(&reference),
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("unauthorized") && e.contains("UNAUTHORIZED"),
        "{e}"
    );
    // with them (docker config.json form): token, then every GET carries it
    let home = t.path().join("home");
    std::fs::create_dir_all(home.join(".docker")).unwrap();
    std::fs::write(
        home.join(".docker/config.json"),
        format!(r#"{{"auths":{{"127.0.0.1:{port}":{{"auth":"dGVzdGVyOnMzY3JldA=="}}}}}}"#),
    )
    .unwrap();
    log.lock().unwrap().clear();
    let out = run_ok(
        podc(&root)
            .args(["image", "pull", "--insecure", &reference])
            .env("HOME", &home)
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("DOCKER_CONFIG"),
    );
    assert!(out.contains(img.digest().as_str()), "{out}");
    let log = log.lock().unwrap().clone();
    assert!(
        log.iter().any(
            |l| l.starts_with("/token?service=fake&scope=repository%3Atest%2Ftok%3Apull Basic")
        ),
        "{log:?}"
    );
    let after_token: Vec<_> = log
        .iter()
        .skip_while(|l| !l.starts_with("/token"))
        .skip(1)
        .collect();
    assert!(
        after_token.len() >= 3 && after_token.iter().all(|l| l.ends_with("Bearer tok123")),
        "{log:?}"
    );
    let l = export_listing(&root, &reference);
    assert!(l.iter().any(|x| x.starts_with("f file 644")), "{l:?}");
}

#[test]
fn a_corrupt_blob_from_the_registry_fails_the_pull_and_changes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let img = TestImage::new(
        vec![layer(
            &[dir("./", 0o755), file("f", 0o644, b"data")],
            Compression::None,
        )],
        busybox_config(),
    );
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let port = fake_token_registry(&img, log, true);
    let root = t.path().join("root");
    let auth = t.path().join("auth.json");
    std::fs::write(
        &auth,
        format!(r#"{{"auths":{{"127.0.0.1:{port}":{{"auth":"dGVzdGVyOnMzY3JldA=="}}}}}}"#),
    )
    .unwrap();
    run_ok(podc(&root).args(["image", "ls"]));
    let before = store_state(&root);
    let o = run_err(
        podc(&root)
            .args(["image", "pull", "--insecure", "--authfile"])
            .arg(&auth)
            .arg(format!("127.0.0.1:{port}/test/tok:1")),
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("does not match its digest") || e.contains("diffID mismatch"),
        "{e}"
    );
    run_ok(podc(&root).args(["image", "ls"])); // cleans any staging left
    assert_eq!(store_state(&root), before);
}
