//! Lifecycle hook handlers that systemd runs (`ExecStartPost=`/`ExecStop=`
//! with the `+` prefix, outside the container's sandbox):
//! `podc hook http-get|tcp-socket|sleep`.
//!
//! `http-get` and `tcp-socket` first enter the pod's network namespace
//! (`--netns`, the infra's pinned `ns/net`) with `setns`, so `127.0.0.1` is
//! the pod's loopback, then behave like the kubelet's handlers: a plain
//! HTTP/1.1 GET succeeds on a 2xx or 3xx status (redirects are not
//! followed), a TCP check succeeds when the connection opens. Exit 0 on
//! success, 1 on failure (with the reason on stderr, which the journal
//! keeps), 2 on usage errors.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Connect + I/O timeout for the network handlers. The kubelet bounds
/// hooks by the grace period only; systemd's `TimeoutStartSec=` /
/// `TimeoutStopSec=` does that here, this just avoids hanging on a peer
/// that accepts and never answers.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Enter the network namespace at `path`.
pub fn enter_netns(path: &str) -> Result<(), String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("entering network namespace {path}: {e}"))
}

fn connect(host: &str, port: u16) -> Result<TcpStream, String> {
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("{host}:{port}: {e}"))?
        .collect();
    let mut last = format!("{host}:{port}: no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, IO_TIMEOUT) {
            Ok(s) => {
                let _ = s.set_read_timeout(Some(IO_TIMEOUT));
                let _ = s.set_write_timeout(Some(IO_TIMEOUT));
                return Ok(s);
            }
            Err(e) => last = format!("{a}: {e}"),
        }
    }
    Err(last)
}

pub fn tcp_socket(host: &str, port: u16) -> Result<(), String> {
    connect(host, port).map(|_| ())
}

/// The request line and headers the kubelet sends (`User-Agent:
/// kube-lifecycle/...`, `Accept: */*`), plus the user's headers.
pub fn http_request(host: &str, port: u16, path: &str, headers: &[(String, String)]) -> String {
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let host_header = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut req = format!("GET {path} HTTP/1.1\r\n");
    let has = |k: &str| headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(k));
    if !has("host") {
        req.push_str(&format!("Host: {host_header}\r\n"));
    }
    if !has("user-agent") {
        req.push_str("User-Agent: kube-lifecycle/podc\r\n");
    }
    if !has("accept") {
        req.push_str("Accept: */*\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    req
}

/// Status code of an HTTP/1.x status line.
pub fn parse_status(resp: &[u8]) -> Option<u16> {
    let line = resp.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

pub fn http_get(
    scheme: &str,
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
) -> Result<u16, String> {
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(format!(
            "httpGet scheme {scheme} is not supported by podc's hook runner (only HTTP)"
        ));
    }
    let mut s = connect(host, port)?;
    s.write_all(http_request(host, port, path, headers).as_bytes())
        .map_err(|e| format!("sending request: {e}"))?;
    // The status line is all that matters; read until it is complete.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.contains(&b'\n') && buf.len() < 16 * 1024 {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("reading response: {e}")),
        }
    }
    let code =
        parse_status(&buf).ok_or_else(|| "no HTTP status line in the response".to_string())?;
    if (200..400).contains(&code) {
        Ok(code)
    } else {
        Err(format!("HTTP status {code}"))
    }
}

pub const USAGE: &str = "usage: hook http-get [--netns PATH] [--host H] --port P [--path P] [--scheme http] [--header 'K: V']...
       hook tcp-socket [--netns PATH] [--host H] --port P
       hook sleep SECONDS";

/// `hook ...` from raw arguments (the static helper's hand parser; `podc
/// hook` parses with clap). Returns the exit code: 0 success, 1 failure,
/// 2 usage.
pub fn run_args(args: Vec<std::ffi::OsString>) -> i32 {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let Some((kind, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return 2;
    };
    if kind == "sleep" {
        return match rest.first().and_then(|s| s.parse::<u64>().ok()) {
            Some(n) => {
                std::thread::sleep(Duration::from_secs(n));
                0
            }
            None => {
                eprintln!("{USAGE}");
                2
            }
        };
    }
    let (mut netns, mut host, mut port, mut path, mut scheme) = (
        None,
        "127.0.0.1".to_string(),
        None,
        "/".to_string(),
        "http".to_string(),
    );
    let mut headers = Vec::new();
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let Some(v) = it.next() else {
            eprintln!("hook: {flag} needs a value\n{USAGE}");
            return 2;
        };
        match flag.as_str() {
            "--netns" => netns = Some(v.clone()),
            "--host" => host = v.clone(),
            "--port" => port = v.parse::<u16>().ok(),
            "--path" => path = v.clone(),
            "--scheme" => scheme = v.clone(),
            "--header" => match parse_header(v) {
                Ok(h) => headers.push(h),
                Err(e) => {
                    eprintln!("hook: {e}");
                    return 2;
                }
            },
            _ => {
                eprintln!("hook: unknown option {flag}\n{USAGE}");
                return 2;
            }
        }
    }
    let Some(port) = port else {
        eprintln!("hook: --port N is required\n{USAGE}");
        return 2;
    };
    let r = netns
        .as_deref()
        .map_or(Ok(()), enter_netns)
        .and_then(|_| match kind.as_str() {
            "http-get" => http_get(&scheme, &host, port, &path, &headers).map(|_| ()),
            "tcp-socket" => tcp_socket(&host, port),
            other => Err(format!("unknown hook {other}")),
        });
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("hook {kind}: {e}");
            1
        }
    }
}

/// Parse `Name: value` of `--header`.
pub fn parse_header(h: &str) -> Result<(String, String), String> {
    let (k, v) = h
        .split_once(':')
        .ok_or_else(|| format!("--header {h:?}: expected 'Name: value'"))?;
    if k.trim().is_empty() {
        return Err(format!("--header {h:?}: empty name"));
    }
    Ok((k.trim().to_string(), v.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn request_and_status() {
        let r = http_request("127.0.0.1", 80, "healthz", &[("X-A".into(), "b c".into())]);
        assert_eq!(
            r,
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:80\r\nUser-Agent: kube-lifecycle/podc\r\nAccept: */*\r\nX-A: b c\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(parse_status(b"HTTP/1.1 302 Found\r\n"), Some(302));
        assert_eq!(parse_status(b"garbage"), None);
        assert_eq!(
            parse_header("X-Reason: pod stopping").unwrap().1,
            "pod stopping"
        );
        assert!(parse_header("nocolon").is_err());
    }

    fn serve_once(status: &'static str) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut b = [0u8; 1024];
            let _ = s.read(&mut b);
            let _ =
                s.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes());
        });
        port
    }

    #[test]
    fn http_get_success_on_2xx_3xx_only() {
        assert_eq!(
            http_get("http", "127.0.0.1", serve_once("200 OK"), "/", &[]),
            Ok(200)
        );
        assert_eq!(
            http_get("HTTP", "127.0.0.1", serve_once("301 Moved"), "/", &[]),
            Ok(301)
        );
        assert!(http_get("http", "127.0.0.1", serve_once("500 Oops"), "/", &[]).is_err());
        assert!(http_get("https", "127.0.0.1", 1, "/", &[]).is_err());
        let p = serve_once("200 OK");
        assert!(tcp_socket("127.0.0.1", p).is_ok());
    }
}
