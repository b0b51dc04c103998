//! A thin client for systemd's `org.freedesktop.systemd1.Manager` D-Bus API
//! (zbus, blocking), with waiting driven by systemd's own signals.
//!
//! # Which socket: the system bus
//! podc talks to systemd through the system bus (`dbus-daemon`, socket
//! activated by systemd's `dbus.socket`). systemd's private socket
//! `/run/systemd/private` (peer-to-peer, what `systemctl` uses as root)
//! would avoid the bus daemon, but it does not work with zbus, checked on
//! 252:
//! - systemd stamps the SENDER header of every message on a private
//!   connection with `org.freedesktop.systemd1`, a well-known name; zbus
//!   (5.x and 6.x) types SENDER as a unique name and panics in its reader
//!   thread ("Invalid field reconstruction"), so the call never returns.
//! - From outside systemd's PID namespace (the tests), the handshake is
//!   dropped anyway: `SO_PEERCRED` reports pid 0 for a peer not visible in
//!   that namespace, sd-bus then has no valid credentials and rejects
//!   `AUTH EXTERNAL`.
//!
//! The system bus has neither problem: the daemon rewrites SENDER to
//! systemd's unique name, and it authenticates by uid only, so a process
//! outside a test's namespaced systemd connects through
//! `/proc/<pid>/root/run/dbus/system_bus_socket` (checked in
//! `tests/dbus.rs`). The cost: `dbus` must be installed.
//!
//! systemd sends a job's `JobRemoved` to the client that enqueued it, but a
//! unit's `PropertiesChanged` only once some client called `Subscribe`, and
//! then for every unit (mount units included) to the whole bus. Starting 50
//! pods that way was ~18% of all CPU time in D-Bus traffic (systemd,
//! dbus-daemon and this process), so [`Systemd::subscribe`] is called only
//! by what follows unit properties, after the start jobs are done.
//!
//! # Waiting without polling
//! A reader thread, started before any call is made, turns the signals
//! systemd emits (`JobRemoved`, `PropertiesChanged`) into [`Event`]s on a
//! channel. Starting a unit is then: issue `StartUnit`, read events until the
//! `JobRemoved` for that job arrives (its result says done/failed/...). A
//! unit reaching a state is: read its properties once, then re-read them only
//! when a `PropertiesChanged` for its object arrives. Deadlines use the
//! channel's `recv_timeout`; nothing sleeps in a loop.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use zbus::blocking::{Connection, MessageIterator};
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const UNIT: &str = "org.freedesktop.systemd1.Unit";
const SERVICE: &str = "org.freedesktop.systemd1.Service";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";

/// Default path of the system bus socket.
pub const SYSTEM_BUS_SOCKET: &str = "/run/dbus/system_bus_socket";

#[derive(Debug)]
pub enum Error {
    DBus(zbus::Error),
    /// A D-Bus error reply from systemd, e.g. `org.freedesktop.systemd1.NoSuchUnit`.
    Method {
        name: String,
        message: String,
    },
    Timeout(String),
    /// The reader thread stopped: the connection is gone.
    Disconnected,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::DBus(e) => write!(f, "D-Bus: {e}"),
            Error::Method { name, message } => write!(f, "{name}: {message}"),
            Error::Timeout(what) => write!(f, "timed out waiting for {what}"),
            Error::Disconnected => write!(f, "connection to systemd closed"),
        }
    }
}

impl std::error::Error for Error {}

impl From<zbus::Error> for Error {
    fn from(e: zbus::Error) -> Self {
        match e {
            zbus::Error::MethodError(name, message, _) => Error::Method {
                name: name.to_string(),
                message: message.unwrap_or_default(),
            },
            e => Error::DBus(e),
        }
    }
}

impl From<zbus::zvariant::Error> for Error {
    fn from(e: zbus::zvariant::Error) -> Self {
        Error::DBus(e.into())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// One change reported by `EnableUnitFiles`/`DisableUnitFiles`:
/// (type, e.g. `symlink`/`unlink`; file; destination).
pub type UnitFileChange = (String, String, String);

/// A signal from systemd, as delivered by the reader thread.
#[derive(Debug, Clone)]
pub enum Event {
    /// `Manager.JobRemoved(id, job, unit, result)`; result is `done`,
    /// `canceled`, `timeout`, `failed`, `dependency` or `skipped`.
    JobRemoved {
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    },
    /// `PropertiesChanged` on a unit object (`interface` is e.g.
    /// `org.freedesktop.systemd1.Unit` or `...Service`). systemd 252 mostly
    /// sends the changed values; some properties are only invalidated, so
    /// waiters re-read the state instead of trusting this map alone.
    PropertiesChanged {
        path: OwnedObjectPath,
        interface: String,
        changed: HashMap<String, OwnedValue>,
    },
}

/// `Manager.ListUnits` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitStatus {
    pub name: String,
    pub description: String,
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    pub path: OwnedObjectPath,
    /// A job is queued for the unit.
    pub has_job: bool,
}

/// The properties podc derives container and pod state from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitState {
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    /// 128-bit id of the current/last run, hex; empty before the first start.
    /// Unchanged ids prove a unit was not restarted.
    pub invocation_id: String,
    /// Service-only properties (`None` for targets, slices, ...).
    pub service: Option<ServiceState>,
    /// A job is queued for the unit (start/stop/restart pending).
    pub has_job: bool,
    /// The unit file on disk differs from what systemd loaded.
    pub need_daemon_reload: bool,
    /// `ActiveEnterTimestamp`, µs since the epoch (0: never active).
    pub active_enter_us: u64,
    /// `StateChangeTimestamp`, µs since the epoch.
    pub state_change_us: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceState {
    /// `success`, `exit-code`, `signal`, `timeout`, `oom-kill`, ...
    pub result: String,
    /// Exit status, or the signal number when `exec_main_code` is
    /// `CLD_KILLED`/`CLD_DUMPED`.
    pub exec_main_status: i32,
    /// `CLD_EXITED` (1), `CLD_KILLED` (2), `CLD_DUMPED` (3); 0 before exit.
    pub exec_main_code: i32,
    pub n_restarts: u32,
    pub main_pid: u32,
    /// `ExecMainStartTimestamp` / `ExecMainExitTimestamp`, µs since the epoch.
    pub exec_main_start_us: u64,
    pub exec_main_exit_us: u64,
    /// How each `ExecStopPost=` command of the last run ended (systemd
    /// resets these when the unit starts again).
    pub stop_post: Vec<ExecRun>,
}

/// One command of an `Exec*=` property as it last ran.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecRun {
    pub argv: Vec<String>,
    /// `CLD_EXITED` (1), `CLD_KILLED` (2), ...; 0 if it has not run.
    pub code: i32,
    pub status: i32,
}

/// A connection to systemd plus the stream of its signals.
pub struct Systemd {
    conn: Connection,
    events: Mutex<Receiver<Event>>,
    subscribed: std::sync::atomic::AtomicBool,
}

/// The major version in a systemd version string (`252.38-1~deb12u1`,
/// `v256`, `257`).
pub fn parse_version(s: &str) -> Option<u32> {
    let s = s.trim().trim_start_matches('v');
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s[..end].parse().ok()
}

impl Systemd {
    /// Connect through the host's system bus (see the module doc for why
    /// not the private socket).
    pub fn connect() -> Result<Systemd> {
        Self::connect_system_bus(SYSTEM_BUS_SOCKET)
    }

    /// Connection through the system bus daemon listening at `path`.
    pub fn connect_system_bus(path: &str) -> Result<Systemd> {
        let conn =
            zbus::blocking::connection::Builder::address(format!("unix:path={path}").as_str())?
                .build()?;
        Self::with_connection(conn)
    }

    fn with_connection(conn: Connection) -> Result<Systemd> {
        // The match rule (and, on the bus, AddMatch) is in place before
        // Subscribe and before any job is enqueued: no signal can be missed.
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .build();
        let iter = MessageIterator::for_match_rule(rule, &conn, Some(1024))?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("systemd-signals".into())
            .spawn(move || {
                for msg in iter {
                    let Ok(msg) = msg else { break };
                    if let Some(ev) = parse_event(&msg) {
                        if tx.send(ev).is_err() {
                            break;
                        }
                    }
                }
            })
            .map_err(|e| Error::DBus(zbus::Error::InputOutput(std::sync::Arc::new(e))))?;
        Ok(Systemd {
            conn,
            events: Mutex::new(rx),
            subscribed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Ask systemd for every unit's `PropertiesChanged` from now on (once
    /// per connection). Subscribe, then read the state, then follow the
    /// events: no change can fall between.
    pub fn subscribe(&self) -> Result<()> {
        use std::sync::atomic::Ordering;
        if !self.subscribed.swap(true, Ordering::SeqCst) {
            if let Err(e) = self.manager::<_, ()>("Subscribe", &()) {
                self.subscribed.store(false, Ordering::SeqCst);
                return Err(e);
            }
        }
        Ok(())
    }

    fn manager<B, R>(&self, method: &str, body: &B) -> Result<R>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
        R: for<'d> zbus::zvariant::DynamicDeserialize<'d>,
    {
        let reply = self
            .conn
            .call_method(Some(DEST), PATH, Some(MANAGER), method, body)?;
        Ok(reply.body().deserialize()?)
    }

    /// The running manager's major version (`Version`, e.g.
    /// `252.38-1~deb12u1` → 252): what the units will run on, and one
    /// D-Bus call instead of an exec of `systemctl --version`.
    pub fn manager_version(&self) -> Result<Option<u32>> {
        let reply = self.conn.call_method(
            Some(DEST),
            PATH,
            Some(PROPERTIES),
            "Get",
            &(MANAGER, "Version"),
        )?;
        let v: OwnedValue = reply.body().deserialize()?;
        Ok(String::try_from(v).ok().and_then(|s| parse_version(&s)))
    }

    /// `daemon-reload`. The reply comes after the reload finished.
    pub fn reload(&self) -> Result<()> {
        self.manager("Reload", &())
    }

    /// Enqueue a start job (`mode`: usually `replace`); returns the job path.
    pub fn start_unit(&self, name: &str, mode: &str) -> Result<OwnedObjectPath> {
        self.manager("StartUnit", &(name, mode))
    }

    pub fn stop_unit(&self, name: &str, mode: &str) -> Result<OwnedObjectPath> {
        self.manager("StopUnit", &(name, mode))
    }

    pub fn restart_unit(&self, name: &str, mode: &str) -> Result<OwnedObjectPath> {
        self.manager("RestartUnit", &(name, mode))
    }

    /// Forget a failed unit's failure state (`systemctl reset-failed`).
    pub fn reset_failed_unit(&self, name: &str) -> Result<()> {
        self.manager("ResetFailedUnit", &(name,))
    }

    /// Object path of a loaded unit, or `None` if systemd has not loaded it.
    pub fn get_unit(&self, name: &str) -> Result<Option<OwnedObjectPath>> {
        match self.manager("GetUnit", &(name,)) {
            Ok(p) => Ok(Some(p)),
            Err(Error::Method { name, .. }) if name.ends_with(".NoSuchUnit") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Object path of a unit, loading it from disk if needed.
    pub fn load_unit(&self, name: &str) -> Result<OwnedObjectPath> {
        self.manager("LoadUnit", &(name,))
    }

    pub fn list_units(&self) -> Result<Vec<UnitStatus>> {
        Self::unit_rows(self.manager("ListUnits", &())?)
    }

    /// `Manager.ListUnitsByNames`: the rows of these units (loading them if
    /// needed) in one round trip, in the order given.
    pub fn list_units_by_names(&self, names: &[&str]) -> Result<Vec<UnitStatus>> {
        Self::unit_rows(self.manager("ListUnitsByNames", &(names,))?)
    }

    #[allow(clippy::type_complexity)]
    fn unit_rows(
        rows: Vec<(
            String,
            String,
            String,
            String,
            String,
            String,
            OwnedObjectPath,
            u32,
            String,
            OwnedObjectPath,
        )>,
    ) -> Result<Vec<UnitStatus>> {
        Ok(rows
            .into_iter()
            .map(|r| UnitStatus {
                name: r.0,
                description: r.1,
                load_state: r.2,
                active_state: r.3,
                sub_state: r.4,
                path: r.6,
                has_job: r.7 != 0,
            })
            .collect())
    }

    /// `systemctl enable` of unit files (names or paths); `runtime` = under
    /// /run. Returns whether the units carry install info and the changes
    /// made as (type, file, destination).
    pub fn enable_unit_files(
        &self,
        files: &[&str],
        runtime: bool,
        force: bool,
    ) -> Result<(bool, Vec<UnitFileChange>)> {
        self.manager("EnableUnitFiles", &(files, runtime, force))
    }

    pub fn disable_unit_files(&self, files: &[&str], runtime: bool) -> Result<Vec<UnitFileChange>> {
        self.manager("DisableUnitFiles", &(files, runtime))
    }

    fn get_all(&self, path: &str, interface: &str) -> Result<HashMap<String, OwnedValue>> {
        let reply =
            self.conn
                .call_method(Some(DEST), path, Some(PROPERTIES), "GetAll", &(interface,))?;
        Ok(reply.body().deserialize()?)
    }

    /// One property of a unit object.
    fn property(&self, path: &str, interface: &str, name: &str) -> Result<OwnedValue> {
        let reply = self.conn.call_method(
            Some(DEST),
            path,
            Some(PROPERTIES),
            "Get",
            &(interface, name),
        )?;
        Ok(reply.body().deserialize()?)
    }

    /// A service's first `ExecStart=` command as systemd holds it: the
    /// program's path and its argv (as written, before `$VAR` expansion).
    pub fn exec_start(&self, path: &str) -> Result<Option<(String, Vec<String>)>> {
        let v = self.property(path, SERVICE, "ExecStart")?;
        let cmds = Vec::<ExecTuple>::try_from(v)?;
        Ok(cmds.into_iter().next().map(|c| (c.0, c.1)))
    }

    /// A service's `NoNewPrivileges=`.
    pub fn no_new_privileges(&self, path: &str) -> Result<bool> {
        Ok(bool::try_from(self.property(
            path,
            SERVICE,
            "NoNewPrivileges",
        )?)?)
    }

    /// A service's `ControlGroup` (`/pod.slice/x.service`, relative to
    /// each cgroup hierarchy's root); empty when it has none.
    pub fn control_group(&self, path: &str) -> Result<String> {
        Ok(String::try_from(self.property(
            path,
            SERVICE,
            "ControlGroup",
        )?)?)
    }

    /// Read a unit's state (one `GetAll` per interface).
    pub fn unit_state(&self, path: &str) -> Result<UnitState> {
        let u = self.get_all(path, UNIT)?;
        let s = |k: &str| -> String {
            u.get(k)
                .and_then(|v| String::try_from(v.clone()).ok())
                .unwrap_or_default()
        };
        let invocation_id = u
            .get("InvocationID")
            .and_then(|v| Vec::<u8>::try_from(v.clone()).ok())
            .map(|b| b.iter().map(|x| format!("{x:02x}")).collect())
            .unwrap_or_default();
        let id = s("Id");
        let service = if id.ends_with(".service") {
            let sv = self.get_all(path, SERVICE)?;
            let get = |k: &str| sv.get(k).cloned();
            Some(ServiceState {
                result: get("Result")
                    .and_then(|v| String::try_from(v).ok())
                    .unwrap_or_default(),
                exec_main_status: get("ExecMainStatus")
                    .and_then(|v| i32::try_from(v).ok())
                    .unwrap_or_default(),
                exec_main_code: get("ExecMainCode")
                    .and_then(|v| i32::try_from(v).ok())
                    .unwrap_or_default(),
                n_restarts: get("NRestarts")
                    .and_then(|v| u32::try_from(v).ok())
                    .unwrap_or_default(),
                main_pid: get("MainPID")
                    .and_then(|v| u32::try_from(v).ok())
                    .unwrap_or_default(),
                exec_main_start_us: get("ExecMainStartTimestamp")
                    .and_then(|v| u64::try_from(v).ok())
                    .unwrap_or_default(),
                exec_main_exit_us: get("ExecMainExitTimestamp")
                    .and_then(|v| u64::try_from(v).ok())
                    .unwrap_or_default(),
                stop_post: get("ExecStopPost").map(exec_runs).unwrap_or_default(),
            })
        } else {
            None
        };
        Ok(UnitState {
            load_state: s("LoadState"),
            active_state: s("ActiveState"),
            sub_state: s("SubState"),
            invocation_id,
            service,
            // Job is `(uo)`: id 0 means no job.
            has_job: u
                .get("Job")
                .and_then(|v| <(u32, OwnedObjectPath)>::try_from(v.clone()).ok())
                .is_some_and(|(id, _)| id != 0),
            need_daemon_reload: u
                .get("NeedDaemonReload")
                .and_then(|v| bool::try_from(v.clone()).ok())
                .unwrap_or(false),
            active_enter_us: u
                .get("ActiveEnterTimestamp")
                .and_then(|v| u64::try_from(v.clone()).ok())
                .unwrap_or_default(),
            state_change_us: u
                .get("StateChangeTimestamp")
                .and_then(|v| u64::try_from(v.clone()).ok())
                .unwrap_or_default(),
        })
    }

    /// Next signal event, or `None` once `deadline` passed.
    pub fn next_event(&self, deadline: Instant) -> Result<Option<Event>> {
        let rx = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(ev) => Ok(Some(ev)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(Error::Disconnected),
        }
    }

    /// Wait for the `JobRemoved` of `job`; returns its result string.
    /// Call right after enqueuing: events since connect are queued, so a job
    /// that finished before this call is still seen. Events for other jobs
    /// are consumed and dropped meanwhile: with several jobs in flight use
    /// [`Systemd::wait_jobs`].
    pub fn wait_job(&self, job: &OwnedObjectPath, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.next_event(deadline)? {
                Some(Event::JobRemoved { job: j, result, .. }) if &j == job => return Ok(result),
                Some(_) => {}
                None => return Err(Error::Timeout(format!("job {}", job.as_str()))),
            }
        }
    }

    /// Wait for the `JobRemoved` of every job in `jobs` (enqueued in any
    /// order, finishing in any order); returns each job's result. This is
    /// what apply needs after enqueuing the stops and starts of many pods.
    pub fn wait_jobs(
        &self,
        jobs: &[OwnedObjectPath],
        timeout: Duration,
    ) -> Result<HashMap<OwnedObjectPath, String>> {
        let deadline = Instant::now() + timeout;
        let mut results = HashMap::new();
        while results.len() < jobs.len() {
            match self.next_event(deadline)? {
                Some(Event::JobRemoved { job, result, .. }) if jobs.contains(&job) => {
                    results.insert(job, result);
                }
                Some(_) => {}
                None => {
                    let left = jobs.iter().filter(|j| !results.contains_key(*j)).count();
                    return Err(Error::Timeout(format!("{left} of {} jobs", jobs.len())));
                }
            }
        }
        Ok(results)
    }

    /// Start a unit and wait for its job result (`done` on success).
    pub fn start_and_wait(&self, name: &str, timeout: Duration) -> Result<String> {
        let job = self.start_unit(name, "replace")?;
        self.wait_job(&job, timeout)
    }

    /// Stop a unit and wait for its job result.
    pub fn stop_and_wait(&self, name: &str, timeout: Duration) -> Result<String> {
        let job = self.stop_unit(name, "replace")?;
        self.wait_job(&job, timeout)
    }

    /// Wait until `pred` holds for the unit's state: read once, then re-read
    /// on each `PropertiesChanged` of that unit's object. Returns the state
    /// that satisfied `pred`.
    pub fn wait_unit(
        &self,
        name: &str,
        timeout: Duration,
        mut pred: impl FnMut(&UnitState) -> bool,
    ) -> Result<UnitState> {
        let deadline = Instant::now() + timeout;
        self.subscribe()?;
        let path = self.load_unit(name)?;
        let mut state = self.unit_state(path.as_str())?;
        while !pred(&state) {
            match self.next_event(deadline)? {
                Some(Event::PropertiesChanged { path: p, .. }) if p == path => {
                    state = self.unit_state(path.as_str())?;
                }
                Some(_) => {}
                None => {
                    return Err(Error::Timeout(format!(
                        "{name} (last: {}/{})",
                        state.active_state, state.sub_state
                    )))
                }
            }
        }
        Ok(state)
    }
}

fn parse_event(msg: &zbus::Message) -> Option<Event> {
    let h = msg.header();
    let iface = h.interface()?.as_str().to_string();
    let member = h.member()?.as_str().to_string();
    match (iface.as_str(), member.as_str()) {
        (MANAGER, "JobRemoved") => {
            let (id, job, unit, result): (u32, OwnedObjectPath, String, String) =
                msg.body().deserialize().ok()?;
            Some(Event::JobRemoved {
                id,
                job,
                unit,
                result,
            })
        }
        (PROPERTIES, "PropertiesChanged") => {
            let path = OwnedObjectPath::from(h.path()?.clone());
            let (interface, changed, _invalidated): (
                String,
                HashMap<String, OwnedValue>,
                Vec<String>,
            ) = msg.body().deserialize().ok()?;
            Some(Event::PropertiesChanged {
                path,
                interface,
                changed,
            })
        }
        _ => None,
    }
}

/// An `Exec*=` property, `a(sasbttttuii)`: path, argv, ignore errors,
/// start and exit timestamps (realtime, monotonic), pid, code, status.
type ExecTuple = (String, Vec<String>, bool, u64, u64, u64, u64, u32, i32, i32);

fn exec_runs(v: OwnedValue) -> Vec<ExecRun> {
    Vec::<ExecTuple>::try_from(v)
        .map(|cmds| {
            cmds.into_iter()
                .map(|(_, argv, _, _, _, _, _, _, code, status)| ExecRun { argv, code, status })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn manager_versions() {
        use super::parse_version;
        assert_eq!(parse_version("252.38-1~deb12u1"), Some(252));
        assert_eq!(parse_version("257"), Some(257));
        assert_eq!(parse_version("v256.4"), Some(256));
        assert_eq!(parse_version(""), None);
        assert_eq!(parse_version("systemd"), None);
    }
}
