//! httpGet / tcpSocket / sleep lifecycle hooks on a real systemd 252, run
//! by the static helper (`/usr/lib/podc/podc-pause hook ...`) from the host
//! in the pod's network namespace, as the kubelet runs them, and exec
//! hooks inside the running container (its mount, UTS and PID namespaces).
mod support;

use support::podc::Podc;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

#[test]
fn http_get_and_tcp_socket_hooks_run_in_the_pod_network() -> Result {
    let Some(p) = Podc::boot()? else {
        return Ok(());
    };
    p.rootfs("hk", &["server", "worker"]);
    p.sd.sh_ok("mkdir -p /var/lib/podc/pods/default_hk/containers/server/rootfs/www && echo hi > /var/lib/podc/pods/default_hk/containers/server/rootfs/www/index.html && echo bye > /var/lib/podc/pods/default_hk/containers/server/rootfs/www/bye-from-prestop");
    p.manifest(
        "/srv/hk.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hk\nspec:\n  terminationGracePeriodSeconds: 5\n  containers:\n  - name: server\n    image: busybox:1.36\n    command: [httpd, -f, -vv, -p, '127.0.0.1:48081', -h, /www]\n    ports: [{name: web, containerPort: 48081}]\n    lifecycle:\n      postStart:\n        exec:\n          command: [sh, -c, 'for i in $(seq 100); do wget -q -O /dev/null http://127.0.0.1:48081/ && exit 0; sleep 0.05; done; exit 1']\n      preStop:\n        httpGet: {path: /bye-from-prestop, port: web, httpHeaders: [{name: X-Reason, value: pod stopping}]}\n  - name: worker\n    image: busybox:1.36\n    command: [sleep, '1000']\n    lifecycle:\n      postStart:\n        tcpSocket: {port: 48081}\n      preStop:\n        sleep: {seconds: 1}\n",
    );
    let out = p.apply_ok("/srv/hk.yaml", &[]);
    assert!(out.contains("Running 2/2 ready"), "{out}");
    let unit = p.sd.sh_ok("systemctl cat podc_default_hk_worker.service");
    assert!(
        unit.contains("/podc-pause\" \"hook\" \"tcp-socket\""),
        "{unit}"
    );
    let t0 = std::time::Instant::now();
    p.run_ok(&["delete", "hk"]);
    let took = t0.elapsed();
    assert!(took.as_millis() >= 1000, "preStop sleep 1 ran: {took:?}");
    let j =
        p.sd.sh_ok("journalctl --no-pager -o cat -u podc_default_hk_server.service");
    assert!(
        j.contains("/bye-from-prestop"),
        "preStop httpGet reached the server:\n{j}"
    );

    // A tcpSocket postStart against a closed port fails the container start.
    p.rootfs("bad", &["c"]);
    p.manifest(
        "/srv/bad.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 2\n  containers:\n  - name: c\n    image: busybox:1.36\n    command: [sleep, '1000']\n    lifecycle:\n      postStart:\n        tcpSocket: {port: 48999}\n",
    );
    let out = p.apply("/srv/bad.yaml", &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("hook tcp-socket") && text.contains("Connection refused"),
        "{text}"
    );
    Ok(())
}
