//! No input, however malformed, makes the loader or validator panic, hang
//! or grow without bound. Property tests feed random bytes, random YAML-ish
//! text built from Pod vocabulary, and mutations of the real examples
//! through the whole pure pipeline (load → validate → plan → render).

use podc::load::{decode, Source};
use podc::pipeline::compile;
use podc::plan::{NoImages, Target};
use podc::render;
use proptest::prelude::*;
use std::time::{Duration, Instant};

/// Run the pipeline on `bytes`; it must return (Ok or diagnostics) quickly.
fn run(bytes: Vec<u8>) {
    let started = Instant::now();
    let src = match decode("fuzz.yaml", bytes) {
        Ok(s) => s,
        Err(d) => {
            assert!(d.is_error());
            return;
        }
    };
    let env = render::environment(None).unwrap();
    let _ = compile(&[src], &Target::new(252, "edge-1"), &NoImages, &env);
    // Generous: a debug build on a loaded 2-core machine. A hang or a
    // blow-up takes orders of magnitude longer.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

fn examples() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    v.sort();
    v
}

const WORDS: &[&str] = &[
    "apiVersion: v1\n",
    "kind: Pod\n",
    "kind: Secret\n",
    "kind: ConfigMap\n",
    "metadata:\n",
    "  name: web\n",
    "spec:\n",
    "  containers:\n",
    "  - name: a\n",
    "    image: busybox\n",
    "    command: [sh, -c, 'x']\n",
    "    env:\n",
    "    - name: A\n",
    "      value: $(B)\n",
    "      valueFrom: {secretKeyRef: {name: s, key: k}}\n",
    "  volumes:\n",
    "  - name: v\n",
    "    configMap: {name: c, defaultMode: 0644}\n",
    "    emptyDir: {sizeLimit: 1Gi}\n",
    "    resources: {limits: {cpu: 100m, memory: 1e400}}\n",
    "data:\n",
    "  k: dg==\n",
    "---\n",
    "&a [*a]\n",
    "*x\n",
    "<<: *a\n",
    "key: &a {b: c}\n",
    "x: *a\n",
    "!!binary x\n",
    "? complex\n",
    ": value\n",
    "- - - -\n",
    "{{{{\n",
    "]]]]\n",
    "'unterminated\n",
    "\"\\u0000\\xff\"\n",
    "\t\tTabs\n",
    "99999999999999999999999999999999\n",
    "-0x8000000000000000\n",
    "0o777777777777777777777777\n",
    "%YAML 1.1\n",
    "%TAG ! tag:x,2000:\n",
    "!local v\n",
    "    lifecycle: {postStart: {httpGet: {port: http}}}\n",
    "    ports: [{containerPort: 0}]\n",
    "    securityContext: {capabilities: {add: [ALL]}, runAsUser: -1}\n",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        run(bytes);
    }

    #[test]
    fn random_pod_vocabulary(idx in proptest::collection::vec(0..WORDS.len(), 0..80),
                             indent in proptest::collection::vec(0usize..6, 0..80)) {
        let mut s = String::new();
        for (i, w) in idx.iter().enumerate() {
            s.push_str(&" ".repeat(*indent.get(i).unwrap_or(&0)));
            s.push_str(WORDS[*w]);
        }
        run(s.into_bytes());
    }

    #[test]
    fn mutated_examples(which in 0usize..10, edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..4), 1..20)) {
        let ex = examples();
        let mut bytes = ex[which % ex.len()].clone().into_bytes();
        for (pos, byte, op) in edits {
            if bytes.is_empty() { break; }
            let p = pos % bytes.len();
            match op {
                0 => bytes[p] = byte,
                1 => { bytes.remove(p); }
                2 => bytes.insert(p, byte),
                _ => {
                    // duplicate a line: exercises duplicate keys and items
                    let start = bytes[..p].iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                    let end = bytes[p..].iter().position(|b| *b == b'\n').map_or(bytes.len(), |i| p + i + 1);
                    let line = bytes[start..end].to_vec();
                    bytes.splice(start..start, line);
                }
            }
        }
        run(bytes);
    }
}

#[test]
fn pathological_inputs_are_refused_quickly() {
    let bomb = {
        let mut y = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            y.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
        }
        y
    };
    for input in [
        bomb,
        "[".repeat(100_000),
        "{a: ".repeat(50_000),
        "- ".repeat(50_000) + "x",
        format!("x: {}\n", "9".repeat(100_000)),
        "a: 1\n".repeat(10_000),
        format!("{}: x\n", "k".repeat(1_000_000)),
    ] {
        let src = Source {
            name: "p.yaml".into(),
            text: input,
        };
        let started = Instant::now();
        let (_, diags) = podc::pipeline::check(&[src]);
        assert!(diags.iter().any(|d| d.is_error()));
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
