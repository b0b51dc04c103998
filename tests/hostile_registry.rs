//! Hostile registries: each test runs a registry on 127.0.0.1 that lies or
//! stalls in one way, and checks what `podc image pull` does about it — the
//! bytes it accepts, how long it waits, where credentials go, which stored
//! layers it reuses.

mod image_support;

use image_support::*;
use podc::image::unpack::Compression;
use podc::image::Digest;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request as the test registry saw it.
#[derive(Clone, Debug)]
struct Req {
    path: String,
    auth: String,
}

/// What a test registry does with one request.
type Handler = dyn Fn(&Req, &mut dyn Write) + Send + Sync;

/// Runs `handler` for every request to a fresh 127.0.0.1 port (one thread
/// per connection, so a stalling answer blocks nobody else).
fn serve(handler: impl Fn(&Req, &mut dyn Write) + Send + Sync + 'static) -> u16 {
    serve_with(Arc::new(handler), None)
}

/// [`serve`], over TLS when `tls` is given.
fn serve_with(handler: Arc<Handler>, tls: Option<Arc<rustls::ServerConfig>>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let (handler, tls) = (handler.clone(), tls.clone());
            std::thread::spawn(move || match tls {
                Some(cfg) => {
                    let Ok(sc) = rustls::ServerConnection::new(cfg) else {
                        return;
                    };
                    handle(rustls::StreamOwned::new(sc, conn), &*handler);
                }
                None => handle(conn, &*handler),
            });
        }
    });
    port
}

/// Reads one request head from `s` and answers it with `handler`.
fn handle(mut s: impl Read + Write, handler: &Handler) {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let mut lines = head.lines();
    let path = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("")
        .to_string();
    let auth = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    handler(&Req { path, auth }, &mut s);
    let _ = s.flush();
}

/// Writes a whole HTTP answer.
fn reply(conn: &mut dyn Write, status: &str, extra: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body);
}

/// The paths of `img` in repository `repo`, tag `tag`, as a registry
/// serves them.
fn image_paths(img: &TestImage, repo: &str, tag: &str) -> HashMap<String, Vec<u8>> {
    let mut m = HashMap::new();
    m.insert(format!("/v2/{repo}/manifests/{tag}"), img.manifest.clone());
    let blob = |d: &Digest| format!("/v2/{repo}/blobs/{d}");
    m.insert(blob(&img.config_digest()), img.config.clone());
    for l in &img.layers {
        m.insert(blob(&l.digest), l.blob.clone());
    }
    m
}

/// Serves `files` by path, 404 for the rest.
fn serve_file(files: &HashMap<String, Vec<u8>>, req: &Req, conn: &mut dyn Write) {
    match files.get(&req.path) {
        Some(b) => reply(conn, "200 OK", "", b),
        None => reply(conn, "404 Not Found", "", br#"{"errors":[]}"#),
    }
}

fn small_image(content: &[u8]) -> TestImage {
    TestImage::new(
        vec![layer(
            &[dir("./", 0o755), file("f", 0o644, content)],
            Compression::Gzip,
        )],
        busybox_config(),
    )
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The largest regular file below `dir`.
fn largest_file(dir: &Path) -> u64 {
    tree(dir)
        .iter()
        .filter_map(|p| std::fs::symlink_metadata(dir.join(p)).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .max()
        .unwrap_or(0)
}

/// Item 1: A manifest declares a 1 KiB layer and the registry streams 64 MiB
/// (no Content-Length, then with a lying one): the pull stops at the
/// declared size with an error saying so, the registry could not push
/// more than socket buffers beyond it, and the store never holds more than
/// the declared bytes of it.
#[test]
fn oversized_blob_stops_at_the_declared_size() {
    const DECLARED: usize = 1024;
    const SENT: u64 = 64 << 20;
    let t = tempfile::tempdir().unwrap();
    let mut img = small_image(b"small");
    // the descriptor of the layer declares 1 KiB of a blob that is bigger:
    // a valid tar of one big file, which an unpacker would happily take
    let mut h = tar::Header::new_gnu();
    h.set_path("big").unwrap();
    h.set_size(SENT - 512);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut big = h.as_bytes().to_vec();
    big.extend(noise(SENT as usize - 512, 7));
    img.layers[0].digest = Digest::of_bytes(&big[..DECLARED]);
    let img = TestImage::new(img.layers, busybox_config());
    let mut manifest: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
    manifest["layers"][0]["size"] = DECLARED.into();
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let mut files = image_paths(&img, "big/blob", "1");
    files.insert("/v2/big/blob/manifests/1".into(), manifest);
    let layer_path = format!("/v2/big/blob/blobs/{}", img.layers[0].digest);
    let sent = Arc::new(AtomicU64::new(0));
    let sent2 = sent.clone();
    let with_length = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let with_length2 = with_length.clone();
    let port = serve(move |req, conn| {
        if req.path != layer_path {
            return serve_file(&files, req, conn);
        }
        let length = if with_length2.load(Ordering::SeqCst) {
            format!("Content-Length: {SENT}\r\n")
        } else {
            String::new()
        };
        let head = format!("HTTP/1.1 200 OK\r\n{length}Connection: close\r\n\r\n");
        let _ = conn.write_all(head.as_bytes());
        for chunk in big.chunks(64 << 10) {
            if conn.write_all(chunk).is_err() {
                break;
            }
            sent2.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        }
    });
    for length in [false, true] {
        with_length.store(length, Ordering::SeqCst);
        sent.store(0, Ordering::SeqCst);
        let root = t.path().join(format!("root-{length}"));
        let reference = format!("127.0.0.1:{port}/big/blob:1");
        let o = run_err(podc(&root).args(["image", "pull", "--insecure", &reference]));
        let e = stderr(&o);
        assert!(
            e.contains("sent more than the 1024 bytes the manifest declares"),
            "{e}"
        );
        // give the server a moment to notice the closed connection
        std::thread::sleep(Duration::from_millis(300));
        let n = sent.load(Ordering::SeqCst);
        assert!(
            n < 64 << 20,
            "the registry pushed {n} bytes (length {length})"
        );
        assert!(
            largest_file(&root.join("images")) <= DECLARED as u64 + 1,
            "{}",
            largest_file(&root.join("images"))
        );
        assert!(names_in_ls(&root).is_empty());
    }
}

/// Writes `<root>/registries.json`.
fn registries(root: &Path, json: &str) {
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(root.join("registries.json"), json).unwrap();
}

/// Item 2: A registry that drips one byte of a layer every 200 ms: the pull
/// fails within the configured bound (2 s + 1 s per KiB of the ~0.6 KiB
/// blob here) with an
/// error naming the timeout settings, and `podc image ls` answers at once
/// while the pull waits (the store lock is not held while downloading).
#[test]
fn slow_registry_times_out_and_blocks_no_one() {
    let t = tempfile::tempdir().unwrap();
    let img = small_image(&noise(512, 3));
    let files = image_paths(&img, "slow/loris", "1");
    let layer_path = format!("/v2/slow/loris/blobs/{}", img.layers[0].digest);
    let blob = img.layers[0].blob.clone();
    let port = serve(move |req, conn| {
        if req.path != layer_path {
            return serve_file(&files, req, conn);
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            blob.len()
        );
        let _ = conn.write_all(head.as_bytes());
        // bounded, so that a podc without timeouts still ends (in ~60 s)
        for b in blob.iter().take(300) {
            std::thread::sleep(Duration::from_millis(200));
            if conn.write_all(&[*b]).is_err() {
                break;
            }
        }
    });
    let root = t.path().join("root");
    registries(
        &root,
        r#"{"timeouts": {"requestSeconds": 2, "minBytesPerSecond": 1024, "idleSeconds": 5}}"#,
    );
    // a first image, so that `ls` has something to list
    let ok = small_image(b"listed");
    let ok_files = image_paths(&ok, "fine/one", "1");
    let ok_port = serve(move |req, conn| serve_file(&ok_files, req, conn));
    let fine = format!("127.0.0.1:{ok_port}/fine/one:1");
    run_ok(podc(&root).args(["image", "pull", "--insecure", &fine]));
    let reference = format!("127.0.0.1:{port}/slow/loris:1");
    let start = Instant::now();
    let mut pull = podc(&root)
        .args(["image", "pull", "--insecure", &reference])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let ls_start = Instant::now();
    let names = names_in_ls(&root);
    let ls_took = ls_start.elapsed();
    assert!(ls_took < Duration::from_secs(3), "ls waited {ls_took:?}");
    assert!(pull.try_wait().unwrap().is_none(), "the pull ended early");
    assert!(names.contains_key(&fine), "{names:?}");
    let o = pull.wait_with_output().unwrap();
    let took = start.elapsed();
    let e = stderr(&o);
    assert!(!o.status.success());
    assert!(e.contains("too slow") && e.contains("timeouts"), "{e}");
    // the bound is 2 s for this blob; podc starts and pulls the rest in less
    assert!(took < Duration::from_secs(8), "the pull took {took:?}");
    assert_eq!(names_in_ls(&root).len(), 1);
}

/// An auth file with `user:pass` for `host`.
fn auth_file(dir: &Path, host: &str) -> std::path::PathBuf {
    let p = dir.join("auth.json");
    // base64("tester:s3cret")
    std::fs::write(
        &p,
        format!(r#"{{"auths":{{"{host}":{{"auth":"dGVzdGVyOnMzY3JldA=="}}}}}}"#),
    )
    .unwrap();
    p
}

/// Item 3: A registry whose challenge names a token service on another host:
/// that host never sees the user's credentials for the registry and the
/// pull fails saying why — unless the admin lists that host for the
/// registry under `tokenRealms` (then the usual flow works).
#[test]
fn credentials_stay_with_the_registry() {
    let t = tempfile::tempdir().unwrap();
    let img = small_image(b"private");
    let seen: Arc<Mutex<Vec<Req>>> = Default::default();
    let seen2 = seen.clone();
    let other = serve(move |req, conn| {
        seen2.lock().unwrap().push(req.clone());
        reply(conn, "200 OK", "", br#"{"token":"tok123"}"#);
    });
    let files = image_paths(&img, "priv/img", "1");
    let registry = serve(move |req, conn| {
        if req.auth != "Bearer tok123" {
            let c = format!("WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{other}/token\",service=\"x\"\r\n");
            return reply(conn, "401 Unauthorized", &c, br#"{"errors":[]}"#);
        }
        serve_file(&files, req, conn)
    });
    let host = format!("127.0.0.1:{registry}");
    let auth = auth_file(t.path(), &host);
    let reference = format!("{host}/priv/img:1");
    let root = t.path().join("root");
    let o = run_err(
        podc(&root)
            .args(["image", "pull", "--insecure", "--authfile"])
            .arg(&auth)
            .arg(&reference),
    );
    let e = stderr(&o);
    assert!(
        e.contains("on another host") && e.contains("tokenRealms"),
        "{e}"
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );
    assert!(names_in_ls(&root).is_empty());
    // the admin's decision: this registry's token service is that host
    registries(
        &root,
        &format!(r#"{{"tokenRealms": {{"{host}": ["127.0.0.1:{other}"]}}}}"#),
    );
    run_ok(
        podc(&root)
            .args(["image", "pull", "--insecure", "--authfile"])
            .arg(&auth)
            .arg(&reference),
    );
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].auth, "Basic dGVzdGVyOnMzY3JldA==");
}

/// Item 4: A hostile image pairs its own layer blob with the diffID of a
/// private layer already in the store: podc does not take the private
/// layer for it. The pull fails on the diffID, and no image the registry
/// served exports the private file.
#[test]
fn a_diff_id_alone_does_not_reuse_a_layer() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let private = TestImage::new(
        vec![layer(
            &[dir("./", 0o755), file("secret", 0o600, b"the private key")],
            Compression::Gzip,
        )],
        busybox_config(),
    );
    let layout = t.path().join("layout");
    write_oci_layout(&private, &layout, Some("private:1"));
    run_ok(podc(&root).arg("image").arg("import").arg(&layout));
    // v1: the attacker's own layer X, pulled honestly (store: blob X)
    let v1 = small_image(b"harmless");
    // v2: blob X again, with the private layer's diffID in the config
    let mut stolen = small_image(b"harmless").layers;
    stolen[0].diff_id = private.layers[0].diff_id.clone();
    let v2 = TestImage::new(stolen, busybox_config());
    let mut files = image_paths(&v1, "evil/steal", "1");
    files.extend(image_paths(&v2, "evil/steal", "2"));
    let port = serve(move |req, conn| serve_file(&files, req, conn));
    let r1 = format!("127.0.0.1:{port}/evil/steal:1");
    let r2 = format!("127.0.0.1:{port}/evil/steal:2");
    run_ok(podc(&root).args(["image", "pull", "--insecure", &r1]));
    let o = run_err(podc(&root).args(["image", "pull", "--insecure", &r2]));
    let e = stderr(&o);
    assert!(e.contains("diffID mismatch"), "{e}");
    let names = names_in_ls(&root);
    assert!(!names.contains_key(&r2), "{names:?}");
    for n in names.keys().filter(|n| n.contains("evil")) {
        let l = export_listing(&root, n);
        assert!(!l.iter().any(|x| x.contains("secret")), "{n}: {l:?}");
    }
    run_ok(podc(&root).args(["image", "check"]));
}

/// A test CA and a certificate for 127.0.0.1 signed by it, made with the
/// openssl CLI: (CA certificate PEM path, server TLS config).
fn test_ca(dir: &Path) -> (std::path::PathBuf, Arc<rustls::ServerConfig>) {
    use rustls::pki_types::pem::PemObject;
    let run = |args: &[&str]| {
        let o = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "openssl {args:?}: {}", stderr(&o));
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=podc test CA",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(dir.join("srv.crt"))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(dir.join("srv.key")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    (dir.join("ca.crt"), Arc::new(cfg))
}

/// Puts `ca` in `<root>/certs.d/HOST/ca.crt`, the docker/podman layout.
fn trust(root: &Path, host: &str, ca: &Path) {
    let d = root.join("certs.d").join(host);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(ca, d.join("ca.crt")).unwrap();
}

/// A TLS registry signed by a private CA is pulled from without
/// `--insecure` once its CA is in `<root>/certs.d/HOST/ca.crt`, and
/// refused (certificate not trusted) without it.
#[test]
fn tls_registry_trusted_through_certs_d() {
    let t = tempfile::tempdir().unwrap();
    let (ca, tls) = test_ca(t.path());
    let img = small_image(b"over tls");
    let files = image_paths(&img, "tls/img", "1");
    let port = serve_with(
        Arc::new(move |req, conn| serve_file(&files, req, conn)),
        Some(tls),
    );
    let host = format!("127.0.0.1:{port}");
    let reference = format!("{host}/tls/img:1");
    let root = t.path().join("root");
    let o = run_err(podc(&root).args(["image", "pull", &reference]));
    let e = stderr(&o).to_lowercase();
    assert!(e.contains("certificate") || e.contains("issuer"), "{e}");
    trust(&root, &host, &ca);
    run_ok(podc(&root).args(["image", "pull", &reference]));
    assert!(names_in_ls(&root).contains_key(&reference));
}

/// Item 5: a TLS registry that redirects the manifest (fetched by tag,
/// so there is no digest to check) to an http URL: the pull fails and the
/// http server never sees a request.
#[test]
fn https_to_http_redirect_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let (ca, tls) = test_ca(t.path());
    let evil = small_image(b"swapped on the http leg");
    let evil_files = image_paths(&evil, "tls/img", "1");
    let seen: Arc<Mutex<Vec<Req>>> = Default::default();
    let seen2 = seen.clone();
    let plain = serve(move |req, conn| {
        seen2.lock().unwrap().push(req.clone());
        serve_file(&evil_files, req, conn)
    });
    let img = small_image(b"the real one");
    let files = image_paths(&img, "tls/img", "1");
    let port = serve_with(
        Arc::new(move |req, conn| {
            if req.path.contains("/manifests/") {
                let to = format!("Location: http://127.0.0.1:{plain}{}\r\n", req.path);
                return reply(conn, "302 Found", &to, b"");
            }
            serve_file(&files, req, conn)
        }),
        Some(tls),
    );
    let host = format!("127.0.0.1:{port}");
    let root = t.path().join("root");
    trust(&root, &host, &ca);
    let o = run_err(podc(&root).args(["image", "pull", &format!("{host}/tls/img:1")]));
    let e = stderr(&o);
    assert!(e.contains("which is not https"), "{e}");
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );
    assert!(names_in_ls(&root).is_empty());
}

/// Two pulls of one image at once, layer downloads outside the store lock:
/// the second waits for the first's download of the shared blob and
/// reuses it (the registry serves the layer once), and both succeed.
#[test]
fn concurrent_pulls_download_a_blob_once() {
    let t = tempfile::tempdir().unwrap();
    let img = small_image(&noise(2048, 5));
    let files = image_paths(&img, "twice/img", "1");
    let layer_path = format!("/v2/twice/img/blobs/{}", img.layers[0].digest);
    let hits = Arc::new(AtomicU64::new(0));
    let hits2 = hits.clone();
    let port = serve(move |req, conn| {
        if req.path == layer_path {
            hits2.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(1500));
        }
        serve_file(&files, req, conn)
    });
    let root = t.path().join("root");
    let reference = format!("127.0.0.1:{port}/twice/img:1");
    let pulls: Vec<_> = (0..2)
        .map(|_| {
            podc(&root)
                .args(["image", "pull", "--insecure", &reference])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for p in pulls {
        let o = p.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert!(names_in_ls(&root).contains_key(&reference));
    let downloads = std::fs::read_dir(root.join("images/downloads")).unwrap();
    assert_eq!(downloads.count(), 0);
    run_ok(podc(&root).args(["image", "check"]));
}

/// Sizes a manifest declares are checked against the image limits before
/// any layer is requested: one layer over `maxLayerSize`, or layers that
/// together are over `maxImageSize` (plus tar overhead), cannot make podc
/// download anything to disk.
#[test]
fn declared_sizes_over_the_caps_are_refused_before_download() {
    let t = tempfile::tempdir().unwrap();
    let layers = vec![
        layer(
            &[dir("./", 0o755), file("a", 0o644, b"a")],
            Compression::Gzip,
        ),
        layer(
            &[dir("./", 0o755), file("b", 0o644, b"b")],
            Compression::Gzip,
        ),
    ];
    let img = TestImage::new(layers, busybox_config());
    let hits = Arc::new(AtomicU64::new(0));
    for (what, sizes) in [
        ("maxLayerSize", [5u64 << 20, 10]),
        ("maxImageSize", [3 << 20, 3 << 20]),
    ] {
        let mut manifest: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
        for (i, n) in sizes.iter().enumerate() {
            manifest["layers"][i]["size"] = (*n).into();
        }
        let mut files = image_paths(&img, "declared/big", "1");
        files.insert(
            "/v2/declared/big/manifests/1".into(),
            serde_json::to_vec(&manifest).unwrap(),
        );
        let layer_paths: Vec<String> = img
            .layers
            .iter()
            .map(|l| format!("/v2/declared/big/blobs/{}", l.digest))
            .collect();
        let hits2 = hits.clone();
        let port = serve(move |req, conn| {
            if layer_paths.contains(&req.path) {
                hits2.fetch_add(1, Ordering::SeqCst);
            }
            serve_file(&files, req, conn)
        });
        let root = t.path().join(what);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(
            root.join("image-limits.json"),
            r#"{"maxLayerSize": "4Mi", "maxImageSize": "4Mi", "maxLayerEntries": 100}"#,
        )
        .unwrap();
        let reference = format!("127.0.0.1:{port}/declared/big:1");
        let o = run_err(podc(&root).args(["image", "pull", "--insecure", &reference]));
        let e = stderr(&o);
        assert!(e.contains(&format!("over the image limit {what}")), "{e}");
        assert_eq!(hits.load(Ordering::SeqCst), 0, "{what}");
    }
}

/// A registry that sends a layer's headers and then nothing: the idle
/// timeout (1 s here) ends the pull long before the total deadline (60 s).
#[test]
fn stalled_body_hits_the_idle_timeout() {
    let t = tempfile::tempdir().unwrap();
    let img = small_image(b"stalled");
    let files = image_paths(&img, "stall/img", "1");
    let layer_path = format!("/v2/stall/img/blobs/{}", img.layers[0].digest);
    let len = img.layers[0].blob.len();
    let port = serve(move |req, conn| {
        if req.path != layer_path {
            return serve_file(&files, req, conn);
        }
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n");
        let _ = conn.write_all(head.as_bytes());
        let _ = conn.flush();
        std::thread::sleep(Duration::from_secs(30));
    });
    let root = t.path().join("root");
    registries(
        &root,
        r#"{"timeouts": {"requestSeconds": 60, "idleSeconds": 1}}"#,
    );
    let start = Instant::now();
    let reference = format!("127.0.0.1:{port}/stall/img:1");
    let o = run_err(podc(&root).args(["image", "pull", "--insecure", &reference]));
    let took = start.elapsed();
    let e = stderr(&o);
    assert!(e.contains("too slow"), "{e}");
    assert!(took < Duration::from_secs(10), "the pull took {took:?}");
}
