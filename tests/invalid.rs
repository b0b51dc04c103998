//! Negative fixtures: one manifest per validation rule in
//! `tests/fixtures/invalid/`, each ending with the diagnostics it must
//! produce, as `# expect: LINE:COLUMN PATH: MESSAGE` comments. The test
//! checks the exact set of errors: position, field path and message.

use podc::load::Source;
use podc::pipeline::check;
use std::fs;
use std::path::Path;

fn expectations(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_rule_reports_its_error_at_the_right_place() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 25, "one fixture per rule expected");
    let mut failures = Vec::new();
    for path in files {
        let text = fs::read_to_string(&path).unwrap();
        let want = expectations(&text);
        assert!(
            !want.is_empty(),
            "{} has no # expect: lines",
            path.display()
        );
        let (_, diags) = check(&[Source {
            name: "f".into(),
            text,
        }]);
        let got: Vec<String> = diags
            .iter()
            .filter(|d| d.is_error())
            .map(|d| format!("{}:{} {}: {}", d.line, d.column, d.path, d.message))
            .collect();
        if got != want {
            failures.push(format!(
                "{}:\n  want: {want:#?}\n  got:  {got:#?}",
                path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn all_errors_of_all_files_come_out_in_one_run() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let sources: Vec<Source> = ["many-errors.yaml", "bad-enum.yaml", "pod-name.yaml"]
        .iter()
        .map(|n| Source {
            name: n.to_string(),
            text: fs::read_to_string(dir.join(n)).unwrap(),
        })
        .collect();
    let (_, diags) = check(&sources);
    let files: std::collections::BTreeSet<&str> = diags.iter().map(|d| d.file.as_str()).collect();
    assert_eq!(files.len(), 3, "{diags:#?}");
    assert!(
        diags
            .iter()
            .filter(|d| d.file == "many-errors.yaml")
            .count()
            >= 4
    );
}
