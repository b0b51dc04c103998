//! `podc::systemd` against a real systemd 252, from outside its namespace.
mod support;

use std::time::Duration;

use podc::systemd::{Event, Systemd as Client};
use support::systemd::Systemd;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const T: Duration = Duration::from_secs(20);

/// The socket is a path, so /proc/<pid>/root reaches the namespace's /run
/// (dbus.service is socket-activated: the first connection starts it).
fn system_bus(sd: &Systemd) -> Result<Client> {
    let path = sd.path("/run/dbus/system_bus_socket");
    Ok(Client::connect_system_bus(path.to_str().unwrap())?)
}

#[test]
fn start_stop_reload_and_state_over_the_system_bus() -> Result {
    let Some(sd) = Systemd::boot()? else {
        return Ok(());
    };
    let c = system_bus(&sd)?;
    sd.write_unit(
        "ok.service",
        "[Service]\nExecStart=/bin/sleep 1000\n[Install]\nWantedBy=multi-user.target\n",
    )?;
    sd.write_unit(
        "bad.service",
        "[Service]\nExecStart=/bin/sh -c 'sleep 0.2; exit 7'\n",
    )?;
    sd.write_unit(
        "badshot.service",
        "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'exit 4'\n",
    )?;
    assert_eq!(
        c.get_unit("ok.service")?,
        None,
        "not loaded before reload/start"
    );
    c.reload()?;

    // Start: the job's JobRemoved says "done"; the unit has an invocation id.
    assert_eq!(c.start_and_wait("ok.service", T)?, "done");
    let path = c.get_unit("ok.service")?.expect("loaded");
    let st = c.unit_state(path.as_str())?;
    assert_eq!(
        (st.active_state.as_str(), st.sub_state.as_str()),
        ("active", "running")
    );
    assert_eq!(st.invocation_id.len(), 32, "{st:?}");
    let svc = st.service.clone().unwrap();
    assert!(svc.main_pid > 0 && svc.n_restarts == 0, "{svc:?}");
    assert!(c
        .list_units()?
        .iter()
        .any(|u| u.name == "ok.service" && u.active_state == "active"));

    // A restart gives a new invocation id (how podc proves "nothing restarted").
    let job = c.restart_unit("ok.service", "replace")?;
    assert_eq!(c.wait_job(&job, T)?, "done");
    let st2 = c.unit_state(path.as_str())?;
    assert_ne!(st2.invocation_id, st.invocation_id);

    // A service that starts and then exits 7: job done, then the unit fails;
    // waited for through PropertiesChanged, not by polling.
    assert_eq!(c.start_and_wait("bad.service", T)?, "done");
    let st = c.wait_unit("bad.service", T, |s| s.active_state == "failed")?;
    let svc = st.service.unwrap();
    assert_eq!(
        (
            svc.result.as_str(),
            svc.exec_main_status,
            svc.exec_main_code
        ),
        ("exit-code", 7, 1)
    );

    // A oneshot that fails fails its start job.
    assert_eq!(c.start_and_wait("badshot.service", T)?, "failed");
    let st = c.unit_state(c.get_unit("badshot.service")?.unwrap().as_str())?;
    assert_eq!(st.service.unwrap().exec_main_status, 4);

    // Enable writes the [Install] symlink into the namespace's unit dir.
    let (_, changes) = c.enable_unit_files(&["ok.service"], false, false)?;
    assert!(
        changes
            .iter()
            .any(|(t, f, _)| t == "symlink" && f.ends_with("multi-user.target.wants/ok.service")),
        "{changes:?}"
    );
    // (an absolute symlink: check the link itself, its target is only valid inside)
    assert!(sd
        .path("/etc/systemd/system/multi-user.target.wants/ok.service")
        .symlink_metadata()
        .is_ok());

    assert_eq!(c.stop_and_wait("ok.service", T)?, "done");
    let st = c.unit_state(path.as_str())?;
    assert_eq!(st.active_state, "inactive");

    // Unknown unit: a D-Bus error naming it.
    let err = c
        .start_unit("nope.service", "replace")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("NoSuchUnit") || err.contains("not found"),
        "{err}"
    );
    Ok(())
}

#[test]
fn job_and_property_signals_arrive() -> Result {
    let Some(sd) = Systemd::boot()? else {
        return Ok(());
    };
    let c = system_bus(&sd)?;
    sd.write_unit(
        "x.service",
        "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n",
    )?;
    c.reload()?;
    // A job's JobRemoved reaches the client that enqueued it; a unit's
    // PropertiesChanged needs Subscribe.
    c.subscribe()?;
    let job = c.start_unit("x.service", "replace")?;
    // Both signal kinds are seen for this unit.
    let deadline = std::time::Instant::now() + T;
    let (mut removed, mut changed) = (false, false);
    while !(removed && changed) {
        match c.next_event(deadline)? {
            Some(Event::JobRemoved {
                job: j,
                result,
                unit,
                ..
            }) if j == job => {
                assert_eq!((result.as_str(), unit.as_str()), ("done", "x.service"));
                removed = true;
            }
            Some(Event::PropertiesChanged { path, .. })
                if path.as_str().contains("x_2eservice") =>
            {
                changed = true;
            }
            Some(_) => {}
            None => panic!("timed out: JobRemoved {removed}, PropertiesChanged {changed}"),
        }
    }
    Ok(())
}

/// The whole pod through the API: infra (podc-pause) + two containers under
/// a target, started and stopped by jobs, as `podc apply`/`delete` will.
#[test]
fn pod_target_starts_and_stops_through_jobs() -> Result {
    let Some(sd) = Systemd::boot()? else {
        return Ok(());
    };
    sd.copy_in(
        support::helper::static_podc_pause(),
        "/run/podc-test/podc-pause",
    )?;
    sd.write_unit(
        "p-infra.service",
        "[Service]\nType=notify\nExecStart=/run/podc-test/podc-pause --pod-id p\n",
    )?;
    for c in ["a", "b"] {
        sd.write_unit(
            &format!("p-{c}.service"),
            "[Unit]\nBindsTo=p-infra.service\nAfter=p-infra.service\n[Service]\n\
             NetworkNamespacePath=/run/podc/pods/p/ns/net\nExecStart=/bin/sleep 1000\n",
        )?;
    }
    sd.write_unit(
        "p.target",
        "[Unit]\nWants=p-infra.service p-a.service p-b.service\n\
         After=p-infra.service p-a.service p-b.service\n",
    )?;
    let c = system_bus(&sd)?;
    c.reload()?;
    let t0 = std::time::Instant::now();
    assert_eq!(c.start_and_wait("p.target", T)?, "done");
    println!(
        "pod (infra + 2 containers) started through D-Bus in {} ms",
        t0.elapsed().as_millis()
    );
    let ids = |c: &Client| -> Result<Vec<String>> {
        let mut v = Vec::new();
        for u in ["p-infra.service", "p-a.service", "p-b.service"] {
            let st = c.unit_state(c.get_unit(u)?.unwrap().as_str())?;
            assert_eq!(st.active_state, "active", "{u}");
            v.push(st.invocation_id);
        }
        Ok(v)
    };
    let first = ids(&c)?;
    // Several jobs at once, results collected in whatever order they end.
    sd.write_unit(
        "q1.service",
        "[Service]\nType=oneshot\nExecStart=/bin/sleep 0.2\n",
    )?;
    sd.write_unit(
        "q2.service",
        "[Service]\nType=oneshot\nExecStart=/bin/false\n",
    )?;
    c.reload()?;
    let jobs = vec![
        c.start_unit("q1.service", "replace")?,
        c.start_unit("q2.service", "replace")?,
    ];
    let results = c.wait_jobs(&jobs, T)?;
    assert_eq!(
        (results[&jobs[0]].as_str(), results[&jobs[1]].as_str()),
        ("done", "failed")
    );
    // Starting an active pod again is a no-op: same invocations.
    assert_eq!(c.start_and_wait("p.target", T)?, "done");
    assert_eq!(ids(&c)?, first);
    // Stopping the infra unit's job completes after the bound containers stopped.
    assert_eq!(c.stop_and_wait("p-infra.service", T)?, "done");
    for u in ["p-a.service", "p-b.service"] {
        let st = c.unit_state(c.get_unit(u)?.unwrap().as_str())?;
        assert_eq!(st.active_state, "inactive", "{u}");
    }
    assert!(!sd.path("/run/podc/pods/p").exists());
    Ok(())
}
