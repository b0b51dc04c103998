//! Hostile registries: each test runs a registry on 127.0.0.1 that lies or
//! stalls in one way, and checks what `podc image pull` does about it — the
//! bytes it accepts, how long it waits, where credentials go, which stored
//! layers it reuses.

mod image_support;

use image_support::*;
use podc::image::unpack::Compression;
use podc::image::Digest;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;

/// One request as the test registry saw it.
#[derive(Clone, Debug)]
struct Req {
    path: String,
}

/// Runs `handler` for every request to a fresh 127.0.0.1 port (one thread
/// per connection, so a stalling answer blocks nobody else).
fn serve(handler: impl Fn(&Req, &mut TcpStream) + Send + Sync + 'static) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handler = Arc::new(handler);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let handler = handler.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                handler(&Req { path }, &mut conn);
            });
        }
    });
    port
}

/// Writes a whole HTTP answer.
fn reply(conn: &mut TcpStream, status: &str, extra: &str, body: &[u8]) {
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
fn serve_file(files: &HashMap<String, Vec<u8>>, req: &Req, conn: &mut TcpStream) {
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
