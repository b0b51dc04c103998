//! `podc image pull`: the OCI distribution API (GET manifests and blobs),
//! with bearer-token and basic auth from the standard auth files.
//!
//! https is the default; a registry the user marks insecure (`--insecure`
//! or listed in `<root>/registries.json` as `{"insecure": ["host:port"]}`)
//! is spoken to over plain http. A registry is not trusted (see
//! docs/images.md, "What a hostile registry cannot do"):
//!
//! - a blob is read up to the size its descriptor declares and no further,
//!   into a download file outside the store lock, and its digest is checked
//!   before anything unpacks it;
//! - every request has a connect, an idle (per read) and a total deadline
//!   derived from the size it transfers (`timeouts` in registries.json);
//! - the store lock is taken only to commit what was downloaded;
//! - credentials go to a token service only on the registry's own host or
//!   one listed for it under `tokenRealms`, and only over https unless the
//!   registry is configured insecure; a secure registry's requests,
//!   redirects included, never fall back to http.
//!
//! Nothing becomes visible in the store unless the whole pull succeeds.

use super::import::pick_platform;
use super::limits::Limits;
use super::reference::{Digest, Reference};
use super::store::{
    ConfigFile, DownloadSlot, Image, Index, Manifest, Store, MAX_JSON, MT_DOCKER_LIST,
    MT_DOCKER_MANIFEST, MT_OCI_INDEX, MT_OCI_MANIFEST,
};
use super::unpack::HashingReader;
use super::ImageError;
use anyhow::{anyhow, bail, Context, Result};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How to reach registries.
#[derive(Clone, Debug, Default)]
pub struct PullOptions {
    /// Speak plain http to the registry of this pull.
    pub insecure: bool,
    /// Auth file to read instead of the standard locations.
    pub auth_file: Option<PathBuf>,
}

/// `<root>/registries.json`:
/// `{"insecure": ["host:port"], "endpoints": {"docker.io": "mirror:5000"},
///   "tokenRealms": {"host:port": ["auth-host"]}, "timeouts": {…}}`.
/// `insecure` registries are spoken to over plain http; `endpoints` sends
/// the requests for a registry name to another host (a mirror), so short
/// names like `busybox` can be served locally; `tokenRealms` lists, per
/// registry host, the other hosts whose token service may receive its
/// credentials; `timeouts` bounds how long a registry may take.
#[derive(serde::Deserialize, Default, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegistriesConf {
    #[serde(default)]
    pub insecure: Vec<String>,
    #[serde(default)]
    pub endpoints: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub token_realms: std::collections::BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub timeouts: Timeouts,
}

/// How long a registry may take (`timeouts` in registries.json). A request
/// transferring up to `n` bytes must finish within
/// `requestSeconds + n / minBytesPerSecond`, and no read may wait more
/// than `idleSeconds` for data: a registry that drips one byte at a time
/// cannot keep a pull alive for ever.
#[derive(serde::Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Timeouts {
    pub connect_seconds: u64,
    pub idle_seconds: u64,
    pub request_seconds: u64,
    pub min_bytes_per_second: u64,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect_seconds: 15,
            idle_seconds: 60,
            request_seconds: 120,
            min_bytes_per_second: 64 << 10,
        }
    }
}

impl Timeouts {
    /// The total time a request transferring up to `bytes` may take.
    fn deadline(&self, bytes: u64) -> Duration {
        let rate = self.min_bytes_per_second.max(1);
        Duration::from_secs(self.request_seconds.saturating_add(bytes / rate))
    }
}

impl RegistriesConf {
    pub fn load(state_root: &Path) -> Result<RegistriesConf> {
        let p = state_root.join("registries.json");
        let conf: RegistriesConf = match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).with_context(|| {
                format!(
                    "{} must look like {{\"insecure\": [\"host:port\"], \"endpoints\": {{\"docker.io\": \"host:port\"}}, \"tokenRealms\": {{\"host:port\": [\"host\"]}}, \"timeouts\": {{\"connectSeconds\": 15, \"idleSeconds\": 60, \"requestSeconds\": 120, \"minBytesPerSecond\": 65536}}}}",
                    p.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RegistriesConf::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
        }?;
        let t = &conf.timeouts;
        if [
            t.connect_seconds,
            t.idle_seconds,
            t.request_seconds,
            t.min_bytes_per_second,
        ]
        .contains(&0)
        {
            bail!("{}: every \"timeouts\" value must be above 0", p.display());
        }
        Ok(conf)
    }
}

fn b64encode(data: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn b64decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for ch in s.trim_end_matches('=').bytes() {
        let v = match ch {
            b'A'..=b'Z' => ch - b'A',
            b'a'..=b'z' => ch - b'a' + 26,
            b'0'..=b'9' => ch - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// `user:password` for `domain` from the standard container auth files.
fn credentials(domain: &str, explicit: Option<&Path>) -> Result<Option<(String, String)>> {
    let mut files: Vec<PathBuf> = Vec::new();
    if let Some(p) = explicit {
        files.push(p.to_path_buf());
    } else {
        if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE") {
            files.push(p.into());
        }
        if let Some(p) = std::env::var_os("XDG_RUNTIME_DIR") {
            files.push(PathBuf::from(p).join("containers/auth.json"));
        }
        files.push(PathBuf::from(format!(
            "/run/containers/{}/auth.json",
            rustix::process::geteuid().as_raw()
        )));
        if let Some(home) = std::env::var_os("HOME") {
            files.push(PathBuf::from(&home).join(".config/containers/auth.json"));
        }
        match std::env::var_os("DOCKER_CONFIG") {
            Some(d) => files.push(PathBuf::from(d).join("config.json")),
            None => {
                if let Some(home) = std::env::var_os("HOME") {
                    files.push(PathBuf::from(home).join(".docker/config.json"));
                }
            }
        }
    }
    for f in files {
        let data = match std::fs::read(&f) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => continue,
            Err(e) => return Err(e).with_context(|| format!("reading auth file {}", f.display())),
        };
        let v: serde_json::Value = serde_json::from_slice(&data)
            .with_context(|| format!("auth file {} is not JSON", f.display()))?;
        let Some(auths) = v.get("auths").and_then(|a| a.as_object()) else {
            continue;
        };
        for (key, entry) in auths {
            let host = key
                .trim_start_matches("https://")
                .trim_start_matches("http://");
            let host = host.split('/').next().unwrap_or("");
            if host != domain {
                continue;
            }
            if let Some(a) = entry.get("auth").and_then(|a| a.as_str()) {
                let dec = b64decode(a).and_then(|b| String::from_utf8(b).ok());
                if let Some((u, p)) = dec.as_deref().and_then(|d| d.split_once(':')) {
                    return Ok(Some((u.to_string(), p.to_string())));
                }
                bail!(
                    "auth file {}: the entry for {domain} is not base64 of user:password",
                    f.display()
                );
            }
            if let (Some(u), Some(p)) = (
                entry.get("username").and_then(|x| x.as_str()),
                entry.get("password").and_then(|x| x.as_str()),
            ) {
                return Ok(Some((u.to_string(), p.to_string())));
            }
        }
    }
    Ok(None)
}

/// Parses `Bearer realm="…",service="…",scope="…"`.
fn parse_challenge(h: &str) -> (String, Vec<(String, String)>) {
    let (scheme, rest) = h.trim().split_once(' ').unwrap_or((h.trim(), ""));
    let mut params = Vec::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let Some((k, after)) = s.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (v, tail) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(i) => (q[..i].to_string(), &q[i + 1..]),
                None => (q.to_string(), ""),
            }
        } else {
            match after.find(',') {
                Some(i) => (after[..i].to_string(), &after[i..]),
                None => (after.to_string(), ""),
            }
        };
        params.push((k, v));
        s = tail.trim_start().trim_start_matches(',').trim_start();
    }
    (scheme.to_ascii_lowercase(), params)
}

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The system trust store (Debian's `ca-certificates`); without it the
/// built-in Mozilla roots are used.
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The `certs.d` directories that may hold CA certificates for a registry,
/// in the layout docker, podman and containerd share: `DIR/HOST[:PORT]/*.crt`.
/// podc's own (`<root>/certs.d`) first, then the ones those tools use.
fn certs_dirs(state_root: &Path) -> Vec<PathBuf> {
    vec![
        state_root.join("certs.d"),
        PathBuf::from("/etc/containers/certs.d"),
        PathBuf::from("/etc/docker/certs.d"),
    ]
}

/// The `*.crt` files for `host` in `dirs`, sorted per directory.
fn ca_files(host: &str, dirs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    // a host[:port] is one path component; anything else is not looked up
    if host.is_empty() || host.starts_with('.') || host.contains(['/', '\\', '\0']) {
        return Ok(vec![]);
    }
    let mut out = Vec::new();
    for d in dirs {
        let dir = d.join(host);
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "crt"))
            .collect();
        files.sort();
        out.extend(files);
    }
    Ok(out)
}

/// The certificates of a PEM file.
fn pem_certs(p: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>> {
    let data = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&data) {
        let item = item.with_context(|| format!("{} is not a PEM file", p.display()))?;
        if let ureq::tls::PemItem::Certificate(c) = item {
            certs.push(c);
        }
    }
    Ok(certs)
}

/// The roots a registry's certificate must chain to: the system trust
/// store (or the built-in roots) plus the registry's own CA files.
fn root_certs(host: &str, dirs: &[PathBuf]) -> Result<ureq::tls::RootCerts> {
    let files = ca_files(host, dirs)?;
    let system = Path::new(SYSTEM_CAS);
    if files.is_empty() && !system.exists() {
        return Ok(ureq::tls::RootCerts::WebPki);
    }
    let mut certs = Vec::new();
    if system.exists() {
        certs.extend(pem_certs(system)?);
    }
    for f in &files {
        let c = pem_certs(f)?;
        if c.is_empty() {
            bail!("{} holds no certificate", f.display());
        }
        certs.extend(c);
    }
    Ok(ureq::tls::RootCerts::new_with_certs(&certs))
}

/// A client for one repository of one registry.
struct Client {
    agent: ureq::Agent,
    /// host[:port] spoken to (the registry, or its configured endpoint)
    host: String,
    base: String,
    r: Reference,
    creds: Option<(String, String)>,
    auth: RefCell<Option<String>>,
    insecure: bool,
    /// other hosts whose token service may receive `creds`
    trusted_realms: Vec<String>,
    timeouts: Timeouts,
}

type Resp = ureq::http::Response<ureq::Body>;

fn registry_errors(resp: Resp) -> String {
    let body = resp
        .into_body()
        .with_config()
        .limit(64 * 1024)
        .read_to_string()
        .unwrap_or_default();
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
        if let Some(errs) = v.get("errors").and_then(|e| e.as_array()) {
            let parts: Vec<String> = errs
                .iter()
                .map(|e| {
                    format!(
                        "{}: {}",
                        e.get("code").and_then(|c| c.as_str()).unwrap_or("ERROR"),
                        e.get("message").and_then(|c| c.as_str()).unwrap_or("")
                    )
                })
                .collect();
            return parts.join("; ");
        }
    }
    body.chars()
        .take(200)
        .collect::<String>()
        .trim()
        .to_string()
}

/// Whether a body read failed on one of the configured timeouts.
fn is_timeout(e: &std::io::Error) -> bool {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<ureq::Error>());
    e.kind() == std::io::ErrorKind::TimedOut || matches!(inner, Some(ureq::Error::Timeout(_)))
}

/// `scheme://host[:port]/…` → (scheme, host[:port]) for http(s) URLs
/// without user info; `None` for anything else.
fn url_origin(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains('@') || !matches!(scheme, "http" | "https") {
        return None;
    }
    Some((scheme, host))
}

/// Whether two host[:port] strings name the same host (the scheme's
/// default port may be left out).
fn same_host(a: &str, b: &str, scheme: &str) -> bool {
    let default = if scheme == "https" { ":443" } else { ":80" };
    let norm = |h: &str| h.strip_suffix(default).unwrap_or(h).to_ascii_lowercase();
    norm(a) == norm(b)
}

/// How a token realm named by a registry's challenge may be used.
#[derive(Debug, PartialEq, Eq)]
enum RealmUse {
    /// ask it for a token with the registry's credentials
    WithCredentials,
    /// ask it for an anonymous token (there are no credentials to protect)
    Anonymous,
}

/// The rule for a token realm: the registry names it, so it is attacker
/// input. Credentials go only over https (http only when the registry is
/// configured insecure, where everything is in clear anyway), and only to
/// the registry's own host or to a host listed for it under `tokenRealms`.
/// Without credentials an https realm elsewhere is asked anonymously, as
/// Docker Hub's separate token service needs.
fn realm_use(
    realm: &str,
    registry: &str,
    insecure: bool,
    trusted: &[String],
    have_creds: bool,
) -> std::result::Result<RealmUse, String> {
    let Some((scheme, host)) = url_origin(realm) else {
        return Err(format!(
            "registry {registry} names a token service {realm:?} that is not an http(s) URL"
        ));
    };
    if scheme == "http" && !insecure {
        return Err(format!(
            "registry {registry} names the token service {realm}, which is not https; podc only speaks http to registries configured insecure"
        ));
    }
    let own =
        same_host(host, registry, scheme) || trusted.iter().any(|t| same_host(host, t, scheme));
    match (own, have_creds) {
        (true, true) => Ok(RealmUse::WithCredentials),
        (_, false) => Ok(RealmUse::Anonymous),
        (false, true) => Err(format!(
            "registry {registry} names the token service {realm}, on another host: podc sends the credentials for {registry} only to its own host, or to a host listed for it under \"tokenRealms\" in registries.json"
        )),
    }
}

impl Client {
    fn new(
        r: &Reference,
        host: &str,
        insecure: bool,
        creds: Option<(String, String)>,
        conf: &RegistriesConf,
        certs_dirs: &[PathBuf],
    ) -> Result<Client> {
        let t = &conf.timeouts;
        let roots = if insecure {
            ureq::tls::RootCerts::WebPki
        } else {
            root_certs(host, certs_dirs)
                .map_err(|e| anyhow::Error::new(ImageError::pull(r, format!("{e:#}"))))?
        };
        let tls = ureq::tls::TlsConfig::builder().root_certs(roots).build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            // every hop of a secure registry, redirects included, is https:
            // a manifest fetched by tag cannot be swapped on an http leg
            .https_only(!insecure)
            .timeout_connect(Some(Duration::from_secs(t.connect_seconds)))
            .timeout_per_read(Some(Duration::from_secs(t.idle_seconds)))
            .timeout_recv_response(Some(Duration::from_secs(t.request_seconds)))
            .user_agent("podc")
            .build()
            .into();
        let scheme = if insecure { "http" } else { "https" };
        Ok(Client {
            agent,
            host: host.to_string(),
            base: format!("{scheme}://{host}/v2/{}", r.repository),
            r: r.clone(),
            creds,
            auth: RefCell::new(None),
            insecure,
            trusted_realms: conf.token_realms.get(host).cloned().unwrap_or_default(),
            timeouts: t.clone(),
        })
    }

    fn err(&self, msg: String) -> anyhow::Error {
        ImageError::pull(&self.r, msg).into()
    }

    /// The error for a failed request or body read, saying where the
    /// bounds are configured when a timeout hit.
    fn io_err(&self, what: &str, e: impl std::fmt::Display, timed_out: bool) -> anyhow::Error {
        let hint = if timed_out {
            " (the registry was too slow: see \"timeouts\" in registries.json)"
        } else {
            ""
        };
        self.err(format!("{what} from registry {}: {e}{hint}", self.host))
    }

    /// GET `url`, which must be done within the deadline for `bytes`.
    fn send(&self, url: &str, accept: Option<&str>, bytes: u64) -> Result<Resp> {
        let mut req = self
            .agent
            .get(url)
            .config()
            .timeout_global(Some(self.timeouts.deadline(bytes)))
            .build();
        if let Some(a) = accept {
            req = req.header("Accept", a);
        }
        if let Some(a) = self.auth.borrow().as_ref() {
            req = req.header("Authorization", a);
        }
        req.call().map_err(|e| match e {
            ureq::Error::Timeout(_) => self.io_err("no answer in time", e, true),
            ureq::Error::RequireHttpsOnly(to) => self.err(format!(
                "registry {} sent podc to {to}, which is not https; podc speaks http only to registries configured insecure",
                self.host
            )),
            _ => self.err(format!("registry {} is unreachable: {e}", self.host)),
        })
    }

    /// Asks the token service `realm` for a bearer token, with the
    /// registry's credentials only where [`realm_use`] allows them.
    fn fetch_token(&self, realm: &str, query: &str) -> Result<String> {
        let how = realm_use(
            realm,
            &self.host,
            self.insecure,
            &self.trusted_realms,
            self.creds.is_some(),
        )
        .map_err(|m| self.err(format!("unauthorized: {m}")))?;
        let sep = if realm.contains('?') { "&" } else { "?" };
        let mut req = self
            .agent
            .get(&format!("{realm}{sep}{query}"))
            .config()
            .timeout_global(Some(self.timeouts.deadline(1 << 20)))
            .build();
        if let (RealmUse::WithCredentials, Some((u, p))) = (how, &self.creds) {
            let basic = format!("Basic {}", b64encode(format!("{u}:{p}").as_bytes()));
            req = req.header("Authorization", basic);
        }
        let tresp = req
            .call()
            .map_err(|e| self.err(format!("token service {realm} is unreachable: {e}")))?;
        if tresp.status().as_u16() != 200 {
            let st = tresp.status().as_u16();
            return Err(self.err(format!(
                "unauthorized: the token service answered HTTP {st}: {}",
                registry_errors(tresp)
            )));
        }
        let body = tresp
            .into_body()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()?;
        let v: serde_json::Value =
            serde_json::from_slice(&body).context("token service answer is not JSON")?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .map(|t| format!("Bearer {t}"))
            .ok_or_else(|| anyhow!("token service answer has no token"))
    }

    /// GET with one round of authentication when the registry asks for it.
    fn get(&self, url: &str, accept: Option<&str>, bytes: u64) -> Result<Resp> {
        let resp = self.send(url, accept, bytes)?;
        if resp.status().as_u16() != 401 {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let (scheme, params) = parse_challenge(&challenge);
        let param = |k: &str| params.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
        let auth = match (scheme.as_str(), &self.creds) {
            ("bearer", _) => {
                let realm = param("realm")
                    .ok_or_else(|| anyhow!("registry asked for a bearer token without a realm"))?;
                let mut q = Vec::new();
                if let Some(s) = param("service") {
                    q.push(format!("service={}", pct(&s)));
                }
                let scope =
                    param("scope").unwrap_or(format!("repository:{}:pull", self.r.repository));
                q.push(format!("scope={}", pct(&scope)));
                self.fetch_token(&realm, &q.join("&"))?
            }
            ("basic", Some((u, p))) => {
                format!("Basic {}", b64encode(format!("{u}:{p}").as_bytes()))
            }
            _ => {
                return Err(self.err(format!(
                    "unauthorized: registry {} requires authentication{}",
                    self.host,
                    if self.creds.is_none() {
                        " and no credentials for it were found in the auth files"
                    } else {
                        ""
                    }
                )))
            }
        };
        *self.auth.borrow_mut() = Some(auth);
        let resp = self.send(url, accept, bytes)?;
        if resp.status().as_u16() == 401 {
            return Err(self.err(format!("unauthorized: {}", registry_errors(resp))));
        }
        Ok(resp)
    }

    fn check(&self, resp: Resp, what: &str) -> Result<Resp> {
        let st = resp.status().as_u16();
        if st == 200 {
            return Ok(resp);
        }
        let detail = registry_errors(resp);
        let msg = match st {
            404 => format!("not found: registry {} has no {what} ({detail})", self.host),
            401 | 403 => format!(
                "unauthorized: registry {} refused access to {what} ({detail})",
                self.host
            ),
            _ => format!(
                "registry {} answered HTTP {st} for {what} ({detail})",
                self.host
            ),
        };
        Err(self.err(msg))
    }

    fn manifest(&self, reference: &str) -> Result<(String, Vec<u8>)> {
        let accept = [
            MT_OCI_INDEX,
            MT_OCI_MANIFEST,
            MT_DOCKER_LIST,
            MT_DOCKER_MANIFEST,
        ]
        .join(", ");
        let resp = self.get(
            &format!("{}/manifests/{reference}", self.base),
            Some(&accept),
            MAX_JSON,
        )?;
        let resp = self.check(resp, &format!("manifest {}:{reference}", self.r.repository))?;
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let data = resp
            .into_body()
            .with_config()
            .limit(MAX_JSON)
            .read_to_vec()
            .map_err(|e| {
                let t = matches!(e, ureq::Error::Timeout(_));
                self.io_err("reading the manifest", e, t)
            })?;
        Ok((ct, data))
    }

    /// Streams blob `d` into `out`, reading at most the `size` bytes its
    /// descriptor declares (one more is the proof of a lie), then checks
    /// its size and digest: only a verified blob is ever unpacked.
    fn download(&self, d: &Digest, size: u64, out: &mut dyn Write) -> Result<()> {
        let resp = self.get(&format!("{}/blobs/{d}", self.base), None, size)?;
        let resp = self.check(resp, &format!("blob {d}"))?;
        let too_long = || {
            self.err(format!(
                "registry {} sent more than the {size} bytes the manifest declares for blob {d}",
                self.host
            ))
        };
        let declared = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > size) {
            return Err(too_long());
        }
        let body = resp.into_body().into_reader().take(size.saturating_add(1));
        let out = std::io::BufWriter::with_capacity(1 << 20, out);
        let mut tee = HashingReader::new(body, Some(out));
        tee.drain().map_err(|e| {
            let t = is_timeout(&e);
            self.io_err(&format!("reading blob {d}"), e, t)
        })?;
        let (got, n, out) = tee.finish();
        if n > size {
            return Err(too_long());
        }
        if let Some(mut out) = out {
            out.flush()?;
        }
        if n < size {
            return Err(self.err(format!(
                "registry {} sent {n} of the {size} bytes of blob {d}",
                self.host
            )));
        }
        if got != *d {
            return Err(self.err(format!(
                "blob {d} from registry {} does not match its digest: its content hashes to {got}",
                self.host
            )));
        }
        Ok(())
    }

    /// A small JSON blob (the image config) of declared `size`, verified.
    fn small_blob(&self, d: &Digest, size: u64) -> Result<Vec<u8>> {
        if size > MAX_JSON {
            return Err(self.err(format!("blob {d} declares {size} bytes, over {MAX_JSON}")));
        }
        let mut data = Vec::new();
        self.download(d, size, &mut data)?;
        Ok(data)
    }
}

fn media_type_of(ct: &str, data: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(data).unwrap_or_default();
    if let Some(mt) = v.get("mediaType").and_then(|m| m.as_str()) {
        return mt.to_string();
    }
    if v.get("manifests").is_some() {
        return MT_OCI_INDEX.into();
    }
    ct.split(';').next().unwrap_or("").trim().to_string()
}

impl Store {
    /// Pulls `reference` from its registry into the store. On any failure the
    /// store is unchanged and the error (an [`ImageError`] with reason
    /// `ErrImagePull` for registry answers) names what the registry said.
    ///
    /// Layers are downloaded and verified without the store lock (other
    /// podc commands go on meanwhile); the lock is taken to unpack and
    /// commit them.
    pub fn pull(&self, reference: &str, opts: &PullOptions) -> Result<Image> {
        let r = Reference::parse(reference).map_err(|e| {
            anyhow::Error::new(ImageError {
                reason: "InvalidImageName",
                message: format!("{e:#}"),
            })
        })?;
        let conf = RegistriesConf::load(self.state_root())?;
        let host = conf.endpoints.get(&r.domain).unwrap_or(&r.domain).clone();
        let insecure = opts.insecure || conf.insecure.contains(&host);
        let creds = credentials(&host, opts.auth_file.as_deref())?;
        let dirs = certs_dirs(self.state_root());
        let client = Client::new(&r, &host, insecure, creds, &conf, &dirs)?;
        let (data, m) = fetch_manifest(&client, &r)?;
        let cd = m.config.digest()?;
        let cdata = client.small_blob(&cd, m.config.size)?;
        let c: ConfigFile =
            serde_json::from_slice(&cdata).context("the image config is not valid")?;
        if c.rootfs.diff_ids.len() != m.layers.len() {
            bail!(
                "image config lists {} diffIDs for {} layers",
                c.rootfs.diff_ids.len(),
                m.layers.len()
            );
        }
        let mut layers = Vec::new();
        for (l, diff) in m.layers.iter().zip(&c.rootfs.diff_ids) {
            layers.push((l.digest()?, l.size, Digest::parse(diff)?));
        }
        let slots = self.download_layers(&client, &layers)?;
        let txn = self.write()?;
        txn.begin_image(layers.len())?;
        txn.put_blob_bytes(&cdata, Some(&cd))?;
        for (ld, size, diff) in &layers {
            let mut body: Box<dyn Read> = match slots.get(ld).and_then(|s| s.as_ref()) {
                Some(slot) => Box::new(slot.reader()?),
                None if txn.layer_verified(ld, diff) => Box::new(std::io::empty()),
                None => bail!("layer {ld} was removed from the store during the pull; pull again"),
            };
            txn.put_layer(&mut body, Some(ld), Some(*size), Some(diff))
                .with_context(|| format!("pulling layer {ld}"))?;
        }
        let names: Vec<Reference> = if r.tag.is_some() && r.digest.is_none() {
            vec![r.clone()]
        } else {
            vec![]
        };
        let digest = txn.add_image(&data, None, &names)?;
        drop(txn);
        drop(slots);
        self.image(digest.as_str())
    }

    /// Downloads the layers the store does not hold verified, each into its
    /// download slot, outside the store lock. The slots are taken in digest
    /// order (two pulls sharing layers cannot deadlock) and held until the
    /// pull is committed: a second pull of a blob waits, then reuses it.
    /// `None` marks a layer already in the store.
    fn download_layers(
        &self,
        client: &Client,
        layers: &[(Digest, u64, Digest)],
    ) -> Result<BTreeMap<Digest, Option<DownloadSlot>>> {
        let limits = Limits::load(self.state_root())?;
        if layers.len() as u64 > limits.max_layers {
            let what = format!("the image has {} layers", layers.len());
            return Err(limits.exceeded("maxLayers", what).into());
        }
        if let Some((ld, size, _)) = layers.iter().find(|l| l.1 > limits.max_layer_stream()) {
            let what = format!("layer {ld} declares {size} bytes");
            return Err(limits.exceeded("maxLayerSize", what).into());
        }
        // what the downloads may put on disk before anything is unpacked:
        // the image cap plus one layer's worth of tar overhead
        let total = layers
            .iter()
            .fold(0u64, |a, (_, n, _)| a.saturating_add(*n));
        let overhead = limits.max_layer_stream() - limits.max_layer_size;
        if total > limits.max_image_size.saturating_add(overhead) {
            let what = format!("its layers declare {total} bytes");
            return Err(limits.exceeded("maxImageSize", what).into());
        }
        let mut slots = BTreeMap::new();
        for (ld, _, _) in layers {
            slots.insert(ld.clone(), None);
        }
        for (ld, slot) in slots.iter_mut() {
            *slot = Some(self.download_slot(ld)?);
        }
        for (ld, size, diff) in layers {
            let verified = layers
                .iter()
                .filter(|(d, _, _)| d == ld)
                .all(|(_, _, diff)| self.layer_verified(ld, diff));
            let Some(slot) = slots.get_mut(ld) else {
                continue;
            };
            if verified {
                *slot = None;
            } else if let Some(s) = slot.as_ref().filter(|s| s.is_empty()) {
                client
                    .download(ld, *size, &mut s.file())
                    .with_context(|| format!("pulling layer {ld} ({diff})"))?;
            }
        }
        Ok(slots)
    }
}

/// The manifest the reference names (resolving an index to the host's
/// platform), checked against the digest it was asked by.
fn fetch_manifest(client: &Client, r: &Reference) -> Result<(Vec<u8>, Manifest)> {
    let host = &client.host;
    let want = r
        .digest
        .as_ref()
        .map(|d| d.to_string())
        .or_else(|| r.tag.clone())
        .unwrap_or_else(|| "latest".into());
    let (mut ct, mut data) = client.manifest(&want)?;
    if let Some(d) = &r.digest {
        let got = Digest::of_bytes(&data);
        if got != *d {
            bail!("registry {host} sent a manifest hashing to {got} for {d}");
        }
    }
    let mut mt = media_type_of(&ct, &data);
    if mt == MT_OCI_INDEX || mt == MT_DOCKER_LIST {
        let index: Index =
            serde_json::from_slice(&data).context("the registry's image index is not valid")?;
        let desc = pick_platform(&index.manifests, &format!("image {}", r.familiar()))?;
        let d = desc.digest()?;
        (ct, data) = client.manifest(d.as_str())?;
        let got = Digest::of_bytes(&data);
        if got != d {
            bail!("registry {host} sent a manifest hashing to {got} for {d}");
        }
        mt = media_type_of(&ct, &data);
    }
    if mt != MT_OCI_MANIFEST && mt != MT_DOCKER_MANIFEST {
        bail!("{}: unsupported manifest type {mt:?}", r.familiar());
    }
    let m: Manifest =
        serde_json::from_slice(&data).context("the registry's manifest is not valid")?;
    Ok((data, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        for s in ["", "a", "ab", "abc", "user:pa ss:word"] {
            assert_eq!(b64decode(&b64encode(s.as_bytes())).unwrap(), s.as_bytes());
        }
        assert_eq!(b64encode(b"user:pass"), "dXNlcjpwYXNz");
    }

    #[test]
    fn bearer_challenge() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull""#,
        );
        assert_eq!(s, "bearer");
        assert_eq!(p[0], ("realm".into(), "https://auth.example/token".into()));
        assert_eq!(p[2], ("scope".into(), "repository:a/b:pull".into()));
    }

    /// Where a registry's credentials may go (item by item of the rule).
    #[test]
    fn token_realm_rule() {
        use RealmUse::*;
        let reg = "reg.example:5000";
        let trusted = vec!["auth.example".to_string()];
        let cases: &[(&str, bool, bool, Option<RealmUse>)] = &[
            (
                "https://reg.example:5000/token",
                false,
                true,
                Some(WithCredentials),
            ),
            (
                "https://auth.example/token",
                false,
                true,
                Some(WithCredentials),
            ),
            (
                "https://auth.example:443/token",
                false,
                true,
                Some(WithCredentials),
            ),
            // another host: anonymous only, never the credentials
            ("https://other.example/token", false, false, Some(Anonymous)),
            ("https://other.example/token", false, true, None),
            ("https://reg.example:5001/token", false, true, None),
            ("https://x@reg.example:5000/token", false, true, None),
            // http only for a registry configured insecure
            ("http://reg.example:5000/token", false, true, None),
            ("http://reg.example:5000/token", false, false, None),
            (
                "http://reg.example:5000/token",
                true,
                true,
                Some(WithCredentials),
            ),
            ("http://other.example/token", true, true, None),
            ("file:///etc/passwd", true, false, None),
            ("reg.example:5000/token", true, true, None),
        ];
        for (realm, insecure, creds, want) in cases {
            let got = realm_use(realm, reg, *insecure, &trusted, *creds).ok();
            assert_eq!(&got, want, "{realm} insecure={insecure} creds={creds}");
        }
    }

    /// A registry not configured insecure is never spoken to over http,
    /// on any hop: ureq checks every request, redirects included, against
    /// `https_only` before it connects (the listener sees no connection).
    #[test]
    fn secure_registry_refuses_http() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let host = format!("127.0.0.1:{}", l.local_addr().unwrap().port());
        let r = Reference::parse(&format!("{host}/a/b:1")).unwrap();
        let mut conf = RegistriesConf::default();
        conf.timeouts.request_seconds = 1;
        let c = Client::new(&r, &host, false, None, &conf, &[]).unwrap();
        let e = c.send(&format!("http://{host}/v2/"), None, 0).unwrap_err();
        assert!(format!("{e:#}").contains("which is not https"), "{e:#}");
        assert!(l.accept().is_err(), "podc connected over http");
    }

    /// Partial timeouts keep the other defaults; zero is refused (a zero
    /// idle timeout would fail every read, none would mean no bound).
    #[test]
    fn timeouts_config() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("registries.json");
        std::fs::write(&f, r#"{"timeouts": {"idleSeconds": 5}}"#).unwrap();
        let c = RegistriesConf::load(t.path()).unwrap();
        let want = Timeouts {
            idle_seconds: 5,
            ..Timeouts::default()
        };
        assert_eq!(c.timeouts, want);
        assert_eq!(want.deadline(64 << 20), Duration::from_secs(120 + 1024));
        std::fs::write(&f, r#"{"timeouts": {"minBytesPerSecond": 0}}"#).unwrap();
        let e = RegistriesConf::load(t.path()).unwrap_err();
        assert!(format!("{e:#}").contains("above 0"), "{e:#}");
    }

    /// Only `*.crt` of the host's own directory, in each certs.d dir; a
    /// host that is not one path component is not looked up.
    #[test]
    fn ca_files_per_host() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        for (d, f) in [
            (&a, "ca.crt"),
            (&a, "client.cert"),
            (&b, "x.crt"),
            (&a, "z.crt"),
        ] {
            std::fs::create_dir_all(d.join("reg:5000")).unwrap();
            std::fs::write(d.join("reg:5000").join(f), "").unwrap();
        }
        std::fs::write(t.path().join("x.crt"), "").unwrap();
        let dirs = [a.clone(), b.clone(), t.path().join("missing")];
        let got = ca_files("reg:5000", &dirs).unwrap();
        let want = [
            a.join("reg:5000/ca.crt"),
            a.join("reg:5000/z.crt"),
            b.join("reg:5000/x.crt"),
        ];
        assert_eq!(got, want);
        for bad in ["", "..", "../b/reg:5000", "a/reg:5000"] {
            assert!(
                ca_files(bad, &[t.path().join("b")]).unwrap().is_empty(),
                "{bad}"
            );
        }
    }

    #[test]
    fn auth_file_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("auth.json");
        std::fs::write(
            &f,
            r#"{"auths":{"https://reg.example:5000/v1/":{"auth":"dXNlcjpwYXNz"}}}"#,
        )
        .unwrap();
        assert_eq!(
            credentials("reg.example:5000", Some(&f)).unwrap(),
            Some(("user".into(), "pass".into()))
        );
        assert_eq!(credentials("other", Some(&f)).unwrap(), None);
    }
}
