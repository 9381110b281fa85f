//! `mnist-cluster` as a user runs it: bad settings fail within seconds with a message naming
//! the setting and write nothing; a run whose losses explode stops as diverged.

use std::path::{Path, PathBuf};
use std::process::Command;

fn data_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/mnist");
    std::env::var_os("GANEM_DATA_DIR")
        .map(PathBuf::from)
        .or_else(|| dir.is_dir().then_some(dir))
}

/// The local MNIST folder; when there is none, says that the test is skipped.
fn mnist_or_skip() -> Option<PathBuf> {
    let found = data_dir();
    if found.is_none() {
        eprintln!("skipped: no local MNIST (set GANEM_DATA_DIR)");
    }
    found
}

/// Runs mnist-cluster in a fresh folder; returns (success, stderr, files written there).
fn mnist_cluster(name: &str, args: &[&str]) -> (bool, String, Vec<PathBuf>) {
    run(env!("CARGO_BIN_EXE_mnist-cluster"), name, args)
}

fn run(binary: &str, name: &str, args: &[&str]) -> (bool, String, Vec<PathBuf>) {
    let dir = scratch_dir(name);
    let mut cmd = Command::new(binary);
    cmd.current_dir(&dir).env("RUST_BACKTRACE", "0").args(args);
    if let Some(data) = data_dir() {
        cmd.arg("--data-dir").arg(data);
    }
    let out = cmd.output().unwrap();
    let mut files = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), stderr, files)
}

#[test]
fn bad_settings_fail_naming_the_setting_and_write_nothing() {
    if mnist_or_skip().is_none() {
        return;
    }
    let cases: [(&[&str], &str); 8] = [
        (&["--iterations", "0"], "em.iterations = 0"),
        (&["--set", "data.image_size=32"], "data.image_size = 32"),
        (&["--set", "optimizer.lr=-1.0"], "optimizer.lr = -1"),
        (&["--set", "em.lr_decay=1.5"], "em.lr_decay = 1.5"),
        (&["--set", "em.m_step_epochs=nan"], "em.m_step_epochs = NaN"),
        (&["--k", "1"], "--k 1 is out of range"),
        (&["--k", "70000"], "--k 70000 is out of range"),
        (&["--profile", "ci", "--resume"], "no checkpoint"),
    ];
    for (i, (args, expected)) in cases.iter().enumerate() {
        let (ok, stderr, files) = mnist_cluster(&format!("bad{i}"), args);
        assert!(!ok, "{args:?} succeeded");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(files.is_empty(), "{args:?} wrote {files:?}");
    }
    let semi = env!("CARGO_BIN_EXE_semi-supervised");
    let cases: [(&[&str], &str); 3] = [
        (&["--labels", "15"], "--labels 15 is out of range"),
        (
            &["--labels", "100", "--set", "semi.labelled_error_target=1.5"],
            "semi.labelled_error_target = 1.5",
        ),
        (
            &["--labels", "100", "--set", "semi.check_every=0"],
            "semi.check_every = 0",
        ),
    ];
    for (i, (args, expected)) in cases.iter().enumerate() {
        let (ok, stderr, files) = run(semi, &format!("semi{i}"), args);
        assert!(!ok && stderr.contains(expected), "{args:?}: {stderr}");
        assert!(files.is_empty(), "{args:?} wrote {files:?}");
    }
}

/// Without --profile, mnist-cluster runs its best measured recipe and dimred, built on the
/// clustering profiles, `fast`: the run a missing checkpoint names says which.
#[test]
fn each_binary_has_its_default_profile() {
    if mnist_or_skip().is_none() {
        return;
    }
    let (ok, stderr, _) = mnist_cluster("default-profile", &["--resume"]);
    assert!(
        !ok && stderr.contains("mnist_cluster_short-rounds_k10_seed1"),
        "{stderr}"
    );
    let dimred = env!("CARGO_BIN_EXE_dimred");
    let (ok, stderr, _) = run(dimred, "default-profile-dimred", &["--resume"]);
    assert!(!ok && stderr.contains("dimred_mnist_fast_"), "{stderr}");
}

#[test]
fn a_run_whose_losses_explode_stops_as_diverged() {
    if mnist_or_skip().is_none() {
        return;
    }
    let args = [
        "--profile",
        "ci",
        "--set",
        "optimizer.lr=1e4",
        "--set",
        "data.train_subset=2000",
        "--iterations",
        "2",
    ];
    let (ok, stderr, files) = mnist_cluster("diverge", &args);
    assert!(!ok, "the run finished: {stderr}");
    assert!(stderr.contains("diverged in EM iteration"), "{stderr}");
    // It diverged in its first iteration, so no result was written.
    assert!(
        files
            .iter()
            .all(|f| f.to_string_lossy().contains("checkpoints")),
        "{files:?}"
    );
}

/// An empty folder of this test process under the system's temporary folder.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ganem-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A quick `ci` clustering run in `dir`; returns (success, stdout and stderr).
fn small_run_in(dir: &Path, data: &Path, extra: &[&str]) -> (bool, String) {
    small_run_with_threads(dir, data, extra, None)
}

/// [`small_run_in`] with `RAYON_NUM_THREADS` set to `threads`, if given.
fn small_run_with_threads(
    dir: &Path,
    data: &Path,
    extra: &[&str],
    threads: Option<&str>,
) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mnist-cluster"));
    if let Some(threads) = threads {
        command.env("RAYON_NUM_THREADS", threads);
    }
    let out = command
        .current_dir(dir)
        .env("RUST_BACKTRACE", "0")
        .args(["--profile", "ci", "--set", "data.train_subset=1000"])
        .args([
            "--set",
            "data.test_subset=500",
            "--set",
            "em.e_step_iterations=5",
        ])
        .args(extra)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Running a command again after its run was cut off goes on from the checkpoint, keeping the
/// rows written before; `--force` starts afresh.
#[test]
fn a_cut_off_run_goes_on_from_its_checkpoint_when_run_again() {
    let Some(data) = mnist_or_skip() else {
        return;
    };
    let dir = scratch_dir("cut-off");
    // A run of 2 iterations cut off after its first: what the disk holds is that of a run of 1.
    let (ok, text) = small_run_in(&dir, &data, &["--iterations", "1"]);
    assert!(ok, "{text}");
    let (ok, text) = small_run_in(&dir, &data, &["--iterations", "2"]);
    assert!(
        ok && text.contains("going on from its checkpoint")
            && text.contains("resumed at EM iteration 1")
            && !text.contains("EM   1:"),
        "{text}"
    );
    let csv = std::fs::read_dir(dir.join("results"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.extension().is_some_and(|e| e == "csv") && !p.ends_with("mnist_cluster_summary.csv")
        })
        .unwrap();
    assert_eq!(std::fs::read_to_string(&csv).unwrap().lines().count(), 3);
    let (ok, text) = small_run_in(&dir, &data, &["--iterations", "2", "--force"]);
    assert!(
        ok && text.contains("EM   1:") && !text.contains("resumed"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A finished run whose checkpoint and record carry the fingerprint an earlier version gave
/// the same recipe is extended by `--resume --iterations N`; a checkpoint whose record is of
/// another recipe is refused.
#[test]
fn a_run_recorded_by_an_earlier_version_can_be_extended() {
    let Some(data) = mnist_or_skip() else {
        return;
    };
    let dir = scratch_dir("extend");
    let cluster = |extra: &[&str]| small_run_in(&dir, &data, extra);
    let (ok, text) = cluster(&["--iterations", "1"]);
    assert!(ok, "{text}");
    let checkpoint = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("state.json");
    let record = std::fs::read_dir(dir.join("results"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    let rehash = |path: &Path, hash: &str| {
        let mut value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        value["identity"]["profile_hash"] = hash.into();
        std::fs::write(path, value.to_string()).unwrap();
    };
    rehash(&checkpoint, "0123456789abcdef");
    rehash(&record, "0123456789abcdef");
    let (ok, text) = cluster(&["--iterations", "2", "--resume"]);
    assert!(ok && text.contains("resumed at EM iteration 1"), "{text}");
    // Now a checkpoint of the earlier fingerprint whose record is of another recipe.
    rehash(&checkpoint, "0123456789abcdef");
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    value["settings"]["em"]["batch_size"] = 32.into();
    std::fs::write(&record, value.to_string()).unwrap();
    let (ok, text) = cluster(&["--iterations", "3", "--resume"]);
    assert!(
        !ok && text.contains("the checkpoint belongs to another run"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The labels-only baseline trains the E-net alone on the labelled images and files one row
/// per seed, better than chance; asking for no pass is refused.
#[test]
fn the_labels_only_baseline_files_a_row_per_seed() {
    let Some(data) = mnist_or_skip() else {
        return;
    };
    let dir = scratch_dir("labels-only");
    let semi = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_semi-supervised"))
            .current_dir(&dir)
            .args(["--dataset", "mnist", "--labels", "100", "--profile", "ci"])
            .args(["--set", "data.test_subset=1000", "--seeds", "1,2"])
            .args(extra)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap()
    };
    let out = semi(&["--labels-only", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--labels-only 0"));
    let out = semi(&["--labels-only", "100"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = std::fs::read_to_string(dir.join("results/semi_labels_only.csv")).unwrap();
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{table}");
    for row in rows {
        let test_error: f64 = row.split(',').nth(5).unwrap().parse().unwrap();
        assert!(test_error < 0.6, "{table}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--lanes 2` runs the seeds in two processes side by side: each lane leaves its log, the
/// summary covers both seeds, a lane's rows are those of a run with one thread, and a lane
/// that fails fails the command, showing its error.
#[test]
fn seeds_run_in_lanes_give_the_numbers_of_one_thread_runs() {
    let Some(data) = mnist_or_skip() else {
        return;
    };
    // A lane that fails shows its error and fails the command.
    let failing_dir = scratch_dir("seed-lanes-failing");
    let resume = [
        "--iterations",
        "1",
        "--seeds",
        "1,2",
        "--lanes",
        "2",
        "--resume",
    ];
    let (ok, text) = small_run_with_threads(&failing_dir, &data, &resume, Some("1"));
    assert!(!ok && text.contains("lane 2 failed ("), "{text}");
    assert!(
        text.contains("no checkpoint") && text.contains("failed: lane 1 (exit status: 1; see"),
        "{text}"
    );
    std::fs::remove_dir_all(&failing_dir).unwrap();
    let lanes_dir = scratch_dir("seed-lanes");
    let lanes = ["--iterations", "1", "--seeds", "1,2", "--lanes", "2"];
    let (ok, text) = small_run_with_threads(&lanes_dir, &data, &lanes, Some("1"));
    assert!(ok && text.contains("lane 2 of 2"), "{text}");
    for lane in 1..=2 {
        let log = lanes_dir.join(format!("checkpoints/mnist_cluster_k10_lane{lane}.log"));
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("EM   1:"), "{text}");
    }
    let summary = lanes_dir.join("results/mnist_cluster_summary.csv");
    let summary = std::fs::read_to_string(summary).unwrap();
    assert!(summary.contains(",2,1;2,"), "{summary}");
    let alone_dir = scratch_dir("seed-alone");
    let alone = ["--iterations", "1", "--seed", "2"];
    let (ok, text) = small_run_with_threads(&alone_dir, &data, &alone, Some("1"));
    assert!(ok, "{text}");
    // Seed 2's row of its iteration: every column but the seconds.
    let rows = |dir: &Path| {
        let csv = std::fs::read_dir(dir.join("results"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with("_seed2.csv"))
            .unwrap();
        let text = std::fs::read_to_string(&csv).unwrap();
        let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
        let seconds = header.iter().position(|&c| c == "seconds").unwrap();
        text.lines()
            .map(|line| {
                let mut cells: Vec<&str> = line.split(',').collect();
                cells.remove(seconds);
                cells.join(",")
            })
            .collect::<Vec<_>>()
    };
    let (in_lane, alone) = (rows(&lanes_dir), rows(&alone_dir));
    assert_eq!(in_lane.len(), 2);
    assert_eq!(in_lane, alone);
    std::fs::remove_dir_all(&lanes_dir).unwrap();
    std::fs::remove_dir_all(&alone_dir).unwrap();
}

/// The shared data folder, when it holds CelebA.
fn shared_data_with_celeba() -> Option<PathBuf> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    data.join("celeba").is_dir().then_some(data)
}

/// CelebA's labels-only baseline files a row per attribute and seed, better than chance on
/// a visually strong attribute (`--setting semi`: 100 labels); without labels, or with
/// `--setting unsup` beside `--labels 100`, it is refused before any data is read.
#[test]
fn the_celeba_labels_only_baseline_files_a_row_per_attribute_and_seed() {
    let Some(data) = shared_data_with_celeba() else {
        eprintln!("skipped: no local CelebA");
        return;
    };
    let dir = scratch_dir("celeba-labels-only");
    let celeba = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_celeba"))
            .current_dir(&dir)
            .env("RUST_BACKTRACE", "0")
            .args([
                "--attribute",
                "Eyeglasses",
                "--profile",
                "ci",
                "--seeds",
                "1,2",
            ])
            .args(extra)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap()
    };
    let out = celeba(&["--labels-only", "30"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("give --labels 100"));
    assert!(!dir.join("results").exists());
    let out = celeba(&["--setting", "unsup", "--labels", "100"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--setting unsup clusters without labels")
    );
    assert!(!dir.join("results").exists());
    let out = celeba(&["--setting", "semi", "--labels-only", "30"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = std::fs::read_to_string(dir.join("results/celeba_labels_only.csv")).unwrap();
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{table}");
    for row in rows {
        assert!(row.starts_with("celeba:Eyeglasses,100,ci,"), "{table}");
        let test_error: f64 = row.split(',').nth(5).unwrap().parse().unwrap();
        assert!(test_error < 0.4, "{table}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `celeba --lanes 2` runs its attributes and seeds in two processes side by side: every row
/// lands in the shared table, each lane leaves its log, and a lane's numbers are those of a
/// run with one thread.
#[test]
fn celeba_lanes_file_every_row_and_reproduce_a_one_thread_run() {
    let Some(data) = shared_data_with_celeba() else {
        eprintln!("skipped: no local CelebA");
        return;
    };
    // The labels-only baseline: seconds per attribute, through the same lanes as GAN-EM runs.
    let celeba = |name: &str, attributes: &str, threads: Option<&str>, extra: &[&str]| {
        let dir = scratch_dir(name);
        let mut command = Command::new(env!("CARGO_BIN_EXE_celeba"));
        command
            .current_dir(&dir)
            .env("RUST_BACKTRACE", "0")
            .env_remove("RAYON_NUM_THREADS");
        if let Some(threads) = threads {
            command.env("RAYON_NUM_THREADS", threads);
        }
        let out = command
            .args([
                "--attribute",
                attributes,
                "--profile",
                "ci",
                "--seeds",
                "1,2",
            ])
            .args(["--labels", "100", "--labels-only", "10"])
            .args(extra)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let table = std::fs::read_to_string(dir.join("results/celeba_labels_only.csv")).unwrap();
        (dir, table)
    };
    let (lanes_dir, table) = celeba(
        "celeba-lanes",
        "Eyeglasses,Wearing_Hat",
        None,
        &["--lanes", "2"],
    );
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 4, "{table}");
    for attribute in ["Eyeglasses", "Wearing_Hat"] {
        let prefix = format!("celeba:{attribute},100,ci,");
        let of_attribute = rows.iter().filter(|r| r.starts_with(&prefix)).count();
        assert_eq!(of_attribute, 2, "{table}");
    }
    for lane in 1..=2 {
        let log = lanes_dir.join(format!("checkpoints/celeba_labels100_lane{lane}.log"));
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("CelebA: 15723 faces"), "{text}");
    }
    let (alone_dir, alone) = celeba("celeba-one-thread", "Wearing_Hat", Some("1"), &[]);
    // dataset, labels, profile, seed, epochs, test_error, labelled_error: all but the seconds.
    let numbers = |row: &str| row.split(',').take(7).collect::<Vec<_>>().join(",");
    for row in alone.lines().skip(1) {
        assert!(
            rows.iter().any(|r| numbers(r) == numbers(row)),
            "{row} is not among the lanes' rows:\n{table}"
        );
    }
    std::fs::remove_dir_all(&lanes_dir).unwrap();
    std::fs::remove_dir_all(&alone_dir).unwrap();
}
