//! Probing a scan's files through ffprobe fork servers.
//!
//! Debian's ffprobe spends about 70 ms of CPU binding its ~200 shared libraries before it
//! reads a byte: ten times what reading a typical file's headers takes. A [`Prober`] keeps one
//! ffprobe per concurrent probe alive while a scan probes, with `native/ffprobe_fork_server.c`
//! preloaded: that ffprobe forks once per file and runs its own, unchanged `main` in the
//! child, so each answer is exactly what a fresh ffprobe prints, for a tenth of the CPU.
//!
//! It must not: make a scan depend on the fork server (when it cannot start, answers anything
//! but ffprobe's `-version` first, or dies, files get their own ffprobe as [`probe::probe`]
//! runs it), keep processes after the scan's probing (dropping the prober ends them), or read
//! an answer beyond the fork server's own bounds.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::probe::{self, MediaInfo, ProbeError};

/// The fork server `build.rs` compiled; empty where it cannot be built.
const LIBRARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ffprobe_fork_server.so"));
/// The line a fork server writes once it runs in place of ffprobe's `main`.
const GREETING: &str = "ephyra-ffprobe-fork-server 1\n";
/// How long ffprobe may take to start and greet, on a busy machine.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// A probe's child ends itself at its time limit (SIGALRM); the exchange gets this much more
/// before the fork server is given up.
const EXCHANGE_MARGIN: Duration = Duration::from_secs(10);
/// The fork server's own limits on what it answers (`MAX_STDOUT`, `MAX_STDERR` in the C file).
const MAX_STDOUT: u32 = 16 << 20;
const MAX_STDERR: u32 = 64 << 10;
/// The signal that ends a child at its time limit.
const SIGALRM: u32 = 14;

/// Probes files with ffprobe, through fork servers where they work. One per scan.
#[derive(Debug)]
pub struct Prober {
    ffprobe: PathBuf,
    /// The preload library on disk; `None` when fork servers are off or cannot work here.
    library: Option<PathBuf>,
    idle: Mutex<Vec<ForkServer>>,
    /// Set when a fork server would not start: the rest of the scan probes per file.
    unavailable: AtomicBool,
    /// Files answered by fork servers.
    forked: AtomicU64,
}

impl Prober {
    /// A prober running `ffprobe`; with `fork_server`, the preload library is written under
    /// `data_dir` (once per build of the server) for ffprobe to load.
    pub fn new(ffprobe: &Path, fork_server: bool, data_dir: &Path) -> Prober {
        let library = if !fork_server || LIBRARY.is_empty() {
            None
        } else {
            match write_library(data_dir) {
                Ok(path) => Some(path),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot write the ffprobe fork server; each file gets its own ffprobe");
                    None
                }
            }
        };
        Prober {
            ffprobe: ffprobe.to_owned(),
            library,
            idle: Mutex::new(Vec::new()),
            unavailable: AtomicBool::new(false),
            forked: AtomicU64::new(0),
        }
    }

    /// What ffprobe finds in `file`, ended after `timeout`.
    pub async fn probe(&self, file: &Path, timeout: Duration) -> Result<MediaInfo, ProbeError> {
        if let Some(mut server) = self.fork_server().await {
            let exchange = server.probe(file, timeout);
            match tokio::time::timeout(timeout + EXCHANGE_MARGIN, exchange).await {
                Ok(Ok(found)) => {
                    self.forked.fetch_add(1, Ordering::Relaxed);
                    self.idle.lock().expect("idle list").push(server);
                    return found;
                }
                // The server is dropped (killed); this file gets an ffprobe of its own, so
                // the verdict is ffprobe's whatever ended the server.
                Ok(Err(e)) => {
                    tracing::warn!(path = %file.display(), error = %e, "the ffprobe fork server stopped; probing this file alone");
                }
                Err(_) => {
                    tracing::warn!(path = %file.display(), "the ffprobe fork server did not answer in time; probing this file alone");
                }
            }
        }
        probe::probe(&self.ffprobe, file, timeout).await
    }

    /// How many files fork servers answered (the others had an ffprobe of their own).
    pub fn forked(&self) -> u64 {
        self.forked.load(Ordering::Relaxed)
    }

    /// An idle fork server, or a new one; `None` when they cannot work here.
    async fn fork_server(&self) -> Option<ForkServer> {
        let library = self.library.as_ref()?;
        if self.unavailable.load(Ordering::Relaxed) {
            return None;
        }
        if let Some(server) = self.idle.lock().expect("idle list").pop() {
            return Some(server);
        }
        match ForkServer::start(&self.ffprobe, library).await {
            Ok(server) => Some(server),
            Err(reason) => {
                if !self.unavailable.swap(true, Ordering::Relaxed) {
                    tracing::warn!(ffprobe = %self.ffprobe.display(), %reason, "ffprobe cannot run as a fork server; each file gets its own ffprobe");
                }
                None
            }
        }
    }
}

/// One ffprobe running the fork server.
#[derive(Debug)]
struct ForkServer {
    /// Held so dropping the server kills the process (`kill_on_drop`).
    _process: Child,
    requests: ChildStdin,
    answers: BufReader<ChildStdout>,
}

/// What one child did: its exit, and what it printed.
#[derive(Debug)]
struct Answer {
    /// The signal that killed it, or `None` when it exited with `code`.
    signal: Option<u32>,
    code: u32,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl ForkServer {
    /// Starts ffprobe with the library preloaded, waits for the greeting, and checks that the
    /// program forked per request is ffprobe (`-version`), not a wrapper script's shell.
    async fn start(ffprobe: &Path, library: &Path) -> Result<ForkServer, String> {
        let mut process = Command::new(ffprobe)
            .env("LD_PRELOAD", library)
            .env("EPHYRA_FFPROBE_FORK_SERVER", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run ffprobe: {e}"))?;
        let requests = process.stdin.take().ok_or("ffprobe has no stdin")?;
        let answers = BufReader::new(process.stdout.take().ok_or("ffprobe has no stdout")?);
        let mut server = ForkServer {
            _process: process,
            requests,
            answers,
        };
        let mut greeting = String::new();
        tokio::time::timeout(
            START_TIMEOUT,
            (&mut server.answers)
                .take(GREETING.len() as u64)
                .read_line(&mut greeting),
        )
        .await
        .map_err(|_| "no greeting in time".to_owned())?
        .map_err(|e| format!("reading the greeting: {e}"))?;
        if greeting != GREETING {
            return Err(format!(
                "the preloaded library did not run (ffprobe printed {greeting:?}): a static ffprobe or a noexec data folder"
            ));
        }
        let version = tokio::time::timeout(START_TIMEOUT, server.run(&["-version".into()], 10))
            .await
            .map_err(|_| "no answer to -version in time".to_owned())?
            .map_err(|e| format!("asking -version: {e}"))?;
        if version.signal.is_some()
            || version.code != 0
            || !version.stdout.starts_with(b"ffprobe version")
        {
            return Err("the program forked per file does not answer -version as ffprobe".into());
        }
        Ok(server)
    }

    /// Probes `file`; an I/O error means the server itself is gone.
    async fn probe(
        &mut self,
        file: &Path,
        timeout: Duration,
    ) -> std::io::Result<Result<MediaInfo, ProbeError>> {
        let seconds = u32::try_from(timeout.as_secs().max(1)).unwrap_or(u32::MAX);
        let answer = self.run(&probe::arguments(file), seconds).await?;
        Ok(match answer.signal {
            None => probe::answer(file, answer.code == 0, &answer.stdout, &answer.stderr),
            Some(SIGALRM) => Err(ProbeError::Timeout(timeout)),
            Some(signal) => Err(ProbeError::Unreadable(format!(
                "ffprobe was killed by signal {signal}"
            ))),
        })
    }

    /// Sends one command line and reads what its child did.
    async fn run(&mut self, arguments: &[OsString], seconds: u32) -> std::io::Result<Answer> {
        let mut request = Vec::with_capacity(256);
        request.extend_from_slice(&seconds.to_le_bytes());
        request.extend_from_slice(&length(arguments.len())?.to_le_bytes());
        for argument in arguments {
            let bytes = argument.as_bytes();
            request.extend_from_slice(&length(bytes.len())?.to_le_bytes());
            request.extend_from_slice(bytes);
        }
        self.requests.write_all(&request).await?;
        self.requests.flush().await?;
        let how = self.answers.read_u32_le().await?;
        let code = self.answers.read_u32_le().await?;
        let stdout = self.read_bytes(MAX_STDOUT).await?;
        let stderr = self.read_bytes(MAX_STDERR).await?;
        let signal = match how {
            0 => None,
            1 => Some(code),
            other => return Err(invalid(format!("unknown exit kind {other}"))),
        };
        Ok(Answer {
            signal,
            code,
            stdout,
            stderr,
        })
    }

    async fn read_bytes(&mut self, max: u32) -> std::io::Result<Vec<u8>> {
        let len = self.answers.read_u32_le().await?;
        if len > max {
            return Err(invalid(format!("an answer of {len} bytes, over {max}")));
        }
        let mut bytes = vec![0; len as usize];
        self.answers.read_exact(&mut bytes).await?;
        Ok(bytes)
    }
}

fn length(len: usize) -> std::io::Result<u32> {
    u32::try_from(len).map_err(|_| invalid(format!("an argument of {len} bytes")))
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

/// Writes the library to `data_dir/lib/`, named by its content so replicas of two versions
/// sharing a folder never load each other's, and skips the write when it is already there.
fn write_library(data_dir: &Path) -> std::io::Result<PathBuf> {
    let dir = data_dir.join("lib");
    let path = dir.join(format!("ffprobe-fork-server-{:016x}.so", fnv1a(LIBRARY)));
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == LIBRARY.len() as u64) {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir)?;
    // Written aside and renamed, so a concurrent scan never preloads half a file.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let write = WRITES.fetch_add(1, Ordering::Relaxed);
    let partial = dir.join(format!(".{}-{write}.partial", std::process::id()));
    std::fs::write(&partial, LIBRARY)?;
    std::fs::rename(&partial, &path)?;
    Ok(path)
}

/// A stable 64-bit FNV-1a hash (the standard library's hasher may change between builds).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
