//! `kd compare` and the end of `kd suite`: runs side by side as a table, as JSON and as one PNG
//! of their curves; an unfinished run is marked; a directory that is not a run, a damaged file
//! and an `--out` that cannot take a PNG exit with status 2 naming the path.

use std::path::Path;

use kd_tests::{failure, kd, run_dir, success, tiny_config, write};

/// A suite of two tiny runs (seed 7 for one epoch, seed 8 for two), trained; returns the
/// suite's stdout.
fn two_runs(dir: &Path) -> String {
    write(dir, "a.toml", &tiny_config(dir, "a", "resnet8", 5, 1, ""));
    write(
        dir,
        "b.toml",
        &tiny_config(dir, "b", "resnet8", 5, 2, "").replace("seed = 7", "seed = 8"),
    );
    write(
        dir,
        "pair.toml",
        "title = \"pair\"\n\n[[run]]\nlabel = \"first\"\nconfig = \"a.toml\"\n\n\
         [[run]]\nlabel = \"second\"\nconfig = \"b.toml\"\n",
    );
    let out = success(kd(dir, &["suite", "pair.toml"]));
    String::from_utf8(out.stdout).unwrap()
}

fn summary(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap()
}

/// The chart's width, height and whether any pixel is neither white nor grey (a curve).
fn chart_facts(png: &Path) -> (usize, usize, bool) {
    let folder = tempfile::tempdir().unwrap();
    std::fs::create_dir(folder.path().join("chart")).unwrap();
    std::fs::copy(png, folder.path().join("chart").join("c.png")).unwrap();
    let image = kd_core::data::folder::read_folder(folder.path()).unwrap();
    let plane = image.width * image.height;
    let coloured = image.channels == 3
        && (0..plane).any(|i| {
            let (r, g, b) = (
                image.pixels[i],
                image.pixels[plane + i],
                image.pixels[2 * plane + i],
            );
            r != g || g != b
        });
    (image.width, image.height, coloured)
}

#[test]
fn runs_are_compared_as_a_table_as_json_and_in_one_chart() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let suite_out = two_runs(dir);
    let (a, b) = (run_dir(dir, "a"), run_dir(dir, "b"));

    // The suite ends with the comparison, under its labels, and its chart.
    assert!(
        suite_out.contains("\npair\n")
            && suite_out.contains("first")
            && suite_out.contains("second"),
        "{suite_out}"
    );
    let suite_chart = dir.join("runs").join("pair-compare.png");
    assert!(suite_out.contains(&format!("chart: {}", suite_chart.display())));
    assert_eq!(chart_facts(&suite_chart), (1100, 450, true));

    // An unfinished run: b's directory without its summary.
    let c = dir.join("runs").join("c");
    std::fs::create_dir(&c).unwrap();
    for file in ["metrics.jsonl", "config.toml"] {
        std::fs::copy(b.join(file), c.join(file)).unwrap();
    }

    let args = |json: bool| {
        let mut args = vec!["compare", "--out", "cmp.png"];
        args.extend([
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            c.to_str().unwrap(),
        ]);
        if json {
            args.push("--json");
        }
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let table = success(kd(
        dir,
        &args(false).iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let table = String::from_utf8(table.stdout).unwrap();
    for (name, run, epochs) in [("a", &a, 1), ("b", &b, 2)] {
        let s = summary(run);
        let student = &s["outputs"]["student"];
        let row: Vec<&str> = table
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{table}"))
            .split_whitespace()
            .collect();
        assert_eq!(row[1], "finished", "{table}");
        assert_eq!(
            row[2],
            format!("{:.2}", student["best_top1"].as_f64().unwrap())
        );
        assert_eq!(row[3], student["best_epoch"].to_string());
        assert_eq!(
            row[4],
            format!("{:.2}", student["last_top1"].as_f64().unwrap())
        );
        assert_eq!(row[5], epochs.to_string());
        assert_eq!(row[6], s["steps"].to_string());
        assert_eq!(row[8], "resnet8");
        assert_eq!(row[9], "-", "no method stack");
    }
    // The copy keeps b's run name (its config.toml's); it is the third row.
    let row_c = table.lines().nth(3).unwrap();
    assert!(row_c.starts_with("b "), "{table}");
    assert!(row_c.contains("unfinished"), "{table}");
    assert!(table.contains("chart: cmp.png"), "{table}");
    assert_eq!(chart_facts(&dir.join("cmp.png")), (1100, 450, true));

    let json = success(kd(
        dir,
        &args(true).iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    for (got, run) in runs.iter().zip([&a, &b]) {
        let s = summary(run);
        let student = &s["outputs"]["student"];
        assert_eq!(got["finished"], true);
        assert_eq!(got["best_top1"], student["best_top1"]);
        assert_eq!(got["best_epoch"], student["best_epoch"]);
        assert_eq!(got["last_top1"], student["last_top1"]);
        assert_eq!(got["epochs"], s["epochs"]);
        assert_eq!(got["steps"], s["steps"]);
        assert_eq!(got["wall_seconds"], s["wall_seconds"]);
        assert_eq!(got["curve"].as_array().unwrap().len() as u64, s["epochs"]);
    }
    // The unfinished run: its epochs so far, its last top-1 that of its last epoch row.
    let unfinished = &runs[2];
    assert_eq!(unfinished["finished"], false);
    assert_eq!(unfinished["epochs"], 2);
    assert_eq!(unfinished["last_top1"], runs[1]["last_top1"]);
    assert_eq!(unfinished["steps"], runs[1]["steps"]);
}

#[test]
fn a_directory_that_is_not_a_run_is_named_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let empty = dir.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let stderr = failure(kd(dir, &["compare", "empty", "missing"]), 2);
    assert!(
        stderr.contains(
            "empty: not a run directory (it holds neither summary.json nor metrics.jsonl)"
        ) && stderr.contains("missing: no such run directory"),
        "{stderr}"
    );
    assert!(
        !dir.join("compare.png").exists(),
        "no chart for runs not read"
    );
}

#[test]
fn a_damaged_run_file_is_named_with_its_line_and_byte_offset() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    write(dir, "s/summary.json", "{\n  \"run\": 3\n}\n");
    let stderr = failure(kd(dir, &["compare", "s"]), 2);
    assert!(
        stderr.contains("summary.json: line 2 (byte 11)") && stderr.contains("invalid type"),
        "{stderr}"
    );
    write(
        dir,
        "m/metrics.jsonl",
        "{\"kind\":\"epoch\",\"epoch\":1,\"student/top1\":50}\n{\"kind\":\"epoch\",\"epoch\":2,\"student/top1\":150}\n",
    );
    let stderr = failure(kd(dir, &["compare", "m"]), 2);
    assert!(
        stderr.contains("metrics.jsonl: line 2 (byte 45): `student/top1` is 150, not a percentage"),
        "{stderr}"
    );
    write(dir, "m/metrics.jsonl", "{\"kind\":\"epoch\",\"epoch\":1}\n");
    write(dir, "m/config.toml", "stack = [\"kd\"]\n");
    let stderr = failure(kd(dir, &["compare", "m"]), 2);
    assert!(
        stderr.contains("config.toml: `method.kd` is missing"),
        "{stderr}"
    );
    assert!(!dir.join("compare.png").exists());
}

#[test]
fn an_out_that_cannot_take_a_png_is_refused_before_anything_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    write(dir, "keep.json", "{}");
    let stderr = failure(kd(dir, &["compare", "--out", "keep.json", "nothing"]), 2);
    assert!(
        stderr.contains("--out keep.json: the chart is a PNG: give a path ending in .png"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("keep.json")).unwrap(),
        "{}"
    );
    std::fs::create_dir(dir.join("d.png")).unwrap();
    let stderr = failure(kd(dir, &["compare", "--out", "d.png", "nothing"]), 2);
    assert!(stderr.contains("--out d.png: is a directory"), "{stderr}");
    let stderr = failure(kd(dir, &["compare", "--out", "no/c.png", "nothing"]), 2);
    assert!(
        stderr.contains("--out no/c.png: folder no does not exist"),
        "{stderr}"
    );
}
