//! A sweep run in lanes: the same command as several child processes side by side, each with
//! every n-th run of the sweep (a seed, or an attribute and seed) and its share of the cores.
//! On small machines this beats one process using every core, because the networks' matrices
//! are too small to keep two threads busy (README: on the 2-core AMD Zen 5 host about 2.5 hours
//! for CelebA's 40 x 2 sweep in two lanes against about 3.5 hours in one process; on the Intel
//! Xeon host a two-seed MNIST sweep 1.71x faster, `bench/lanes.sh`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};

/// The environment variable that tells a child process which lane it is: `index/count`.
const LANE_VAR: &str = "GANEM_LANE";

/// This process's lane, `(index, count)` with `index < count`, when it is one.
fn current() -> Result<Option<(usize, usize)>> {
    std::env::var_os(LANE_VAR)
        .map(|value| parse(&value.to_string_lossy()))
        .transpose()
}

/// A lane as [`LANE_VAR`] gives it: `INDEX/COUNT`.
fn parse(text: &str) -> Result<(usize, usize)> {
    let parsed = text
        .split_once('/')
        .and_then(|(i, n)| Some((i.parse().ok()?, n.parse().ok()?)));
    match parsed {
        Some((index, count)) if index < count => Ok((index, count)),
        _ => bail!("{LANE_VAR}={text}: expected INDEX/COUNT with INDEX below COUNT, e.g. 0/2"),
    }
}

/// The items of lane `index` of `count`: every `count`-th from the `index`-th, so that the
/// lanes get as many items each, whatever order the items come in.
fn share<T: Clone>(items: &[T], (index, count): (usize, usize)) -> Vec<T> {
    items.iter().skip(index).step_by(count).cloned().collect()
}

/// The items this process runs: all of them when it runs alone (`lanes` 1, or a single item),
/// its share when it is a lane; `None` when it has run `lanes` lanes over them instead, each
/// logging to `{log_dir}/{name}_lane{i}.log`, and all of them succeeded (the caller is done).
pub fn split<T: Clone>(
    items: Vec<T>,
    lanes: u64,
    name: &str,
    log_dir: &Path,
) -> Result<Option<Vec<T>>> {
    match current()? {
        Some(lane) => Ok(Some(share(&items, lane))),
        None if lanes > 1 && items.len() > 1 => {
            // `lanes` is at most 64 (clap's range), so the cast cannot truncate.
            let count = (lanes as usize).min(items.len());
            run(name, count, log_dir)?;
            Ok(None)
        }
        None => Ok(Some(items)),
    }
}

/// Runs this very command (its arguments unchanged) as `count` lanes and waits for all of
/// them. Each child learns its lane from [`LANE_VAR`], gets `RAYON_NUM_THREADS` threads
/// (inherited if set, else the cores divided among the lanes) and writes its output to
/// `{log_dir}/{name}_lane{i}.log`. Fails, naming the lanes and their logs, if any lane fails.
fn run(name: &str, count: usize, log_dir: &Path) -> Result<()> {
    anyhow::ensure!(count >= 2, "{count} lane(s): lanes need at least 2");
    let program = std::env::current_exe().context("finding this program to start its lanes")?;
    let arguments: Vec<_> = std::env::args_os().skip(1).collect();
    let threads = match std::env::var("RAYON_NUM_THREADS") {
        Ok(threads) => threads,
        Err(_) => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            (cores / count).max(1).to_string()
        }
    };
    std::fs::create_dir_all(log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
    // (lane number from 1, its log, its process)
    let mut running: Vec<(usize, PathBuf, Child)> = Vec::with_capacity(count);
    for lane in 1..=count {
        let log = log_dir.join(format!("{name}_lane{lane}.log"));
        let started = start_lane(&program, &arguments, (lane - 1, count), &threads, &log);
        let child = match started {
            Ok(child) => child,
            Err(e) => {
                // No half-started sweep: the lanes already running stop too.
                for (_, _, child) in &mut running {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                return Err(e.context(format!("starting lane {lane} of {count}")));
            }
        };
        println!(
            "lane {lane} of {count}: {threads} thread(s), output in {}",
            log.display()
        );
        running.push((lane, log, child));
    }
    // Polled rather than waited for in turn, so that a lane's end is told when it comes and a
    // failed lane's error shows while the others run on.
    let mut failed = Vec::new();
    while !running.is_empty() {
        let mut still = Vec::with_capacity(running.len());
        for (lane, log, mut child) in running {
            let Some(status) = child
                .try_wait()
                .with_context(|| format!("waiting for lane {lane}"))?
            else {
                still.push((lane, log, child));
                continue;
            };
            println!("lane {lane} of {count} ended: {status}");
            if !status.success() {
                eprintln!("lane {lane} failed ({}):", log.display());
                eprintln!("{}", failure_in(&log, 12));
                failed.push((lane, format!("{status}; see {}", log.display())));
            }
        }
        running = still;
        if !running.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }
    // In lane order, whichever ended first, so the message is the same from run to run.
    failed.sort_by_key(|(lane, _)| *lane);
    let failed: Vec<String> = failed
        .iter()
        .map(|(lane, why)| format!("lane {lane} ({why})"))
        .collect();
    anyhow::ensure!(failed.is_empty(), "failed: {}", failed.join(", "));
    Ok(())
}

/// Starts `program` with `arguments` as lane `(index, count)`, its output to `log`.
fn start_lane(
    program: &Path,
    arguments: &[std::ffi::OsString],
    (index, count): (usize, usize),
    threads: &str,
    log: &Path,
) -> Result<Child> {
    let output = std::fs::File::create(log)
        .with_context(|| format!("creating the lane's log {}", log.display()))?;
    let errors = output
        .try_clone()
        .with_context(|| format!("opening {} twice", log.display()))?;
    Command::new(program)
        .args(arguments)
        .env(LANE_VAR, format!("{index}/{count}"))
        .env("RAYON_NUM_THREADS", threads)
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(errors)
        .spawn()
        .with_context(|| format!("running {}", program.display()))
}

/// What a failed lane's log says of its failure: from its last `Error:` line up to a stack
/// backtrace, if any; else its last `lines` lines (empty when it cannot be read).
fn failure_in(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let shown = match all.iter().rposition(|line| line.starts_with("Error:")) {
        Some(start) => all[start..]
            .iter()
            .take_while(|line| !line.starts_with("Stack backtrace:"))
            .copied()
            .collect(),
        None => all[all.len().saturating_sub(lines)..].to_vec(),
    };
    shown.join("\n").trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_share_the_items_round_robin_without_gaps_or_overlap() {
        let items: Vec<usize> = (0..7).collect();
        assert_eq!(share(&items, (0, 2)), vec![0, 2, 4, 6]);
        assert_eq!(share(&items, (1, 2)), vec![1, 3, 5]);
        let mut all: Vec<usize> = (0..3).flat_map(|i| share(&items, (i, 3))).collect();
        all.sort();
        assert_eq!(all, items);
        assert_eq!(share(&items, (0, 1)), items);
    }

    #[test]
    fn a_failed_lane_shows_its_error_without_the_backtrace() {
        let dir = std::env::temp_dir().join(format!("ganem-lanes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("lane1.log");
        let failed = "EM   1: ok\nError: no checkpoint in c/\n\nCaused by:\n    gone\n\n";
        std::fs::write(&log, format!("{failed}Stack backtrace:\n   0: main\n")).unwrap();
        assert_eq!(
            failure_in(&log, 12),
            "Error: no checkpoint in c/\n\nCaused by:\n    gone"
        );
        std::fs::write(&log, "a\nb\nc\n").unwrap();
        assert_eq!(failure_in(&log, 2), "b\nc");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(failure_in(&log, 2), "");
    }

    #[test]
    fn a_lane_is_index_slash_count_with_the_index_below_the_count() {
        assert_eq!(parse("1/2").unwrap(), (1, 2));
        for bad in ["2/2", "1", "a/2", "1/b", ""] {
            let message = parse(bad).unwrap_err().to_string();
            assert!(message.contains(LANE_VAR), "{message}");
        }
    }
}
