//! Shared helpers for codekeep's benchmarks: the summary lines `make bench` ends with.
//!
//! Every comparison is printed as
//! `NAME: ours=<value> <unit> peer=<value> <unit> ratio=<ours/peer>` and appended to
//! `$CARGO_TARGET_DIR/codekeep-bench-summary.txt`. A ratio above 1 means ours is faster (or
//! larger, where the name says larger is better).
#![expect(clippy::print_stdout, reason = "benchmarks report on stdout")]

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where criterion writes its reports and where the summary file lives.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
        },
        PathBuf::from,
    )
}

/// Appends one summary line (and prints it).
pub fn summary(name: &str, ours: f64, peer: f64, unit: &str) {
    let ratio = if peer > 0.0 { ours / peer } else { f64::NAN };
    let line = format!("{name}: ours={ours:.3} {unit} peer={peer:.3} {unit} ratio={ratio:.3}");
    println!("{line}");
    let path = target_dir().join("codekeep-bench-summary.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

/// Starts a fresh summary file (the first bench of a run calls this).
pub fn reset_summary() {
    let _ = std::fs::remove_file(target_dir().join("codekeep-bench-summary.txt"));
}

/// The median wall time of `runs` runs of `f` (after one warm-up run).
pub fn median_time(runs: usize, mut f: impl FnMut()) -> Duration {
    f();
    let mut times: Vec<Duration> = (0..runs.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort_unstable();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// Gigabytes per second for `bytes` in `time`.
pub fn gbps(bytes: u64, time: Duration) -> f64 {
    #[expect(clippy::cast_precision_loss, reason = "throughput figures")]
    let b = bytes as f64;
    b / time.as_secs_f64() / 1e9
}

/// Operations per second for `ops` in `time`.
pub fn per_second(ops: u64, time: Duration) -> f64 {
    #[expect(clippy::cast_precision_loss, reason = "rate figures")]
    let n = ops as f64;
    n / time.as_secs_f64()
}
