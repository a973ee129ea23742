//! Load with `wrk`, a C load generator whose latency histogram resolves microseconds (the
//! figures at one connection are well under a millisecond, where a generator's own overhead
//! would show). The Lua script adds the headers and prints one summary line, parsed here.
//!
//! This module runs wrk and reads its numbers; it judges nothing.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// The wrk script, written next to the run so the binary needs no source checkout.
const SCRIPT: &str = include_str!("../wrk/report.lua");

/// Seconds after which wrk counts a request as timed out.
const TIMEOUT_SECONDS: u32 = 2;

/// Runs wrk with the same settings every time and keeps its reports in one log.
#[derive(Debug)]
pub struct Wrk {
    /// The Lua script, written by [`Wrk::new`].
    script: PathBuf,
    /// Length of each run.
    seconds: u32,
    /// wrk's own reports (latency distributions), appended run after run.
    log: PathBuf,
}

/// What one run sends.
#[derive(Debug, Clone, Copy)]
pub struct Load<'a> {
    /// The URL every request asks for.
    pub url: &'a str,
    /// Open connections (wrk keeps one request in flight on each).
    pub connections: u32,
    /// The whole `Authorization` value, if any.
    pub auth: Option<&'a str>,
    /// A `Range` value, if any.
    pub range: Option<&'a str>,
}

/// The figures of one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    /// Requests completed.
    pub requests: u64,
    /// Length of the run, in seconds.
    pub seconds: f64,
    /// Bytes read.
    pub bytes: u64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// Answers that were not 2xx or 3xx.
    pub non2xx: u64,
    /// Requests without an answer within the timeout.
    pub timeouts: u64,
    /// Connect, read and write errors.
    pub socket_errors: u64,
}

impl Figures {
    /// Requests per second.
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds.max(1e-9)
    }

    /// MiB read per second.
    pub fn mib_per_s(&self) -> f64 {
        self.bytes as f64 / self.seconds.max(1e-9) / 1_048_576.0
    }

    /// Every kind of failed request.
    pub fn errors(&self) -> u64 {
        self.non2xx + self.timeouts + self.socket_errors
    }

    /// "non-2xx / timeouts / socket errors", as the report's tables show them.
    pub fn error_triple(&self) -> String {
        format!(
            "{} / {} / {}",
            self.non2xx, self.timeouts, self.socket_errors
        )
    }
}

/// Reads the `BENCH key=value ...` line the script prints.
pub fn parse_summary(output: &str) -> anyhow::Result<Figures> {
    let line = output
        .lines()
        .find_map(|l| l.strip_prefix("BENCH "))
        .context("no summary line from wrk")?;
    let value = |key: &str| -> anyhow::Result<u64> {
        line.split_whitespace()
            .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
            .with_context(|| format!("no {key} in {line:?}"))?
            .parse()
            .with_context(|| format!("{key} in {line:?}"))
    };
    Ok(Figures {
        requests: value("requests")?,
        seconds: value("duration_us")? as f64 / 1e6,
        bytes: value("bytes")?,
        p50_ms: value("p50_us")? as f64 / 1000.0,
        p99_ms: value("p99_us")? as f64 / 1000.0,
        non2xx: value("status")?,
        timeouts: value("timeout")?,
        socket_errors: value("connect")? + value("read")? + value("write")?,
    })
}

impl Wrk {
    /// Writes the script into `scratch`; runs last `seconds`; reports go to `log`.
    pub fn new(scratch: &Path, seconds: u32, log: PathBuf) -> anyhow::Result<Wrk> {
        let script = scratch.join("report.lua");
        std::fs::write(&script, SCRIPT)?;
        if let Some(parent) = log.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&log, "")?;
        Ok(Wrk {
            script,
            seconds,
            log,
        })
    }

    /// One run. The first answer is checked to be 2xx before, so a bad token or a wrong URL
    /// cannot pass for a fast server.
    pub async fn run(&self, key: &str, load: Load<'_>) -> anyhow::Result<Figures> {
        let mut check = reqwest::Client::new()
            .get(load.url)
            .timeout(std::time::Duration::from_secs(30));
        if let Some(auth) = load.auth {
            check = check.header("Authorization", auth);
        }
        if let Some(range) = load.range {
            check = check.header("Range", range);
        }
        let status = check.send().await?.status();
        if !status.is_success() {
            bail!("{key}: {} answered {status} before the run", load.url);
        }
        let threads = if load.connections < 2 { 1 } else { 2 };
        let output = tokio::process::Command::new("wrk")
            .arg(format!("-t{threads}"))
            .arg(format!("-c{}", load.connections))
            .arg(format!("-d{}s", self.seconds))
            .arg(format!("--timeout={TIMEOUT_SECONDS}s"))
            .arg("--latency")
            .arg("-s")
            .arg(&self.script)
            .arg(load.url)
            .env("BENCH_AUTH", load.auth.unwrap_or_default())
            .env("BENCH_RANGE", load.range.unwrap_or_default())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .context("running wrk (scripts/ensure-deps.sh installs it)")?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let mut log = std::fs::OpenOptions::new().append(true).open(&self.log)?;
        writeln!(
            log,
            "=== {key}: {}, {} connections{}\n{text}",
            load.url,
            load.connections,
            load.range
                .map(|r| format!(", Range: {r}"))
                .unwrap_or_default()
        )?;
        if !output.status.success() {
            bail!("wrk failed for {key}: {text}");
        }
        let figures = parse_summary(&text).with_context(|| format!("{key}: {text}"))?;
        eprintln!(
            "bench: {key:<28} c={:<3} {:>8.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  {:>6.0} MiB/s  errors {}",
            load.connections,
            figures.rps(),
            figures.p50_ms,
            figures.p99_ms,
            figures.mib_per_s(),
            figures.error_triple()
        );
        Ok(figures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_line_is_read_among_wrk_s_own_report() {
        let output = "Running 5s test @ http://x\n  Latency 1ms\n\
            BENCH requests=5000 duration_us=5000000 bytes=1048576 p50_us=250 p90_us=400 \
            p99_us=1500 max_us=9000 connect=1 read=2 write=3 status=4 timeout=5\n";
        let f = parse_summary(output).unwrap();
        assert_eq!(f.requests, 5000);
        assert!((f.rps() - 1000.0).abs() < 1e-9);
        assert!((f.p50_ms - 0.25).abs() < 1e-9);
        assert!((f.p99_ms - 1.5).abs() < 1e-9);
        assert_eq!((f.non2xx, f.timeouts, f.socket_errors), (4, 5, 6));
        assert_eq!(f.errors(), 15);
    }

    #[test]
    fn a_missing_summary_is_an_error_naming_it() {
        let err = parse_summary("wrk: connection refused").unwrap_err();
        assert!(err.to_string().contains("no summary line"));
    }
}
