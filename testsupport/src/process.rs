//! Child processes that cannot outlive the test process.
//!
//! [`ChildGuard`] kills its child when dropped. That is not enough on its own: statics are never
//! dropped, and a test process killed by a timeout runs no destructors at all. So the servers
//! this crate starts are also *tied* to the test process: they are started through `setpriv
//! --pdeathsig`, which asks the kernel to signal them when their parent goes away.
//!
//! The kernel means the parent *thread*, and test harnesses run each test on a thread that ends
//! with the test. So tied children are spawned from one thread that lives as long as the
//! process (see [`spawn_tied`]); a shared server started by the first test then survives that
//! test and still dies with the process.
//!
//! This module must not decide policy (ports, folders, readiness): that is the services' job.

use std::ffi::OsStr;
use std::io;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::SupportError;

/// A child process that is killed (SIGKILL) and reaped when this guard is dropped.
///
/// Works with [`std::process::Child`] and [`tokio::process::Child`]; reach the child itself
/// through `Deref`, e.g. `guard.id()`.
#[derive(Debug)]
pub struct ChildGuard<C: KillOnDrop> {
    /// The child; killed when the guard goes out of scope, whatever the test did with it.
    child: C,
}

impl<C: KillOnDrop> ChildGuard<C> {
    /// Takes ownership of `child`, to kill it on drop.
    pub fn new(child: C) -> Self {
        Self { child }
    }
}

impl<C: KillOnDrop> Deref for ChildGuard<C> {
    type Target = C;

    fn deref(&self) -> &C {
        &self.child
    }
}

impl<C: KillOnDrop> DerefMut for ChildGuard<C> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self.child
    }
}

impl<C: KillOnDrop> Drop for ChildGuard<C> {
    fn drop(&mut self) {
        self.child.kill_and_reap();
    }
}

/// A child process handle that [`ChildGuard`] knows how to kill from a destructor.
pub trait KillOnDrop {
    /// Kills the child if it still runs and reaps it where that cannot block for long.
    fn kill_and_reap(&mut self);
}

impl KillOnDrop for std::process::Child {
    fn kill_and_reap(&mut self) {
        if matches!(self.try_wait(), Ok(None)) {
            // Errors mean the child is already gone, which is what we want.
            let _ = self.kill();
        }
        // After SIGKILL this returns at once; it keeps a zombie from lingering.
        let _ = self.wait();
    }
}

impl KillOnDrop for tokio::process::Child {
    fn kill_and_reap(&mut self) {
        // A destructor cannot await; Tokio reaps children whose handle was dropped.
        let _ = self.start_kill();
        let _ = self.try_wait();
    }
}

/// A command for `program` that is tied to the test process: it gets SIGKILL when the test
/// process exits or dies. Add arguments, environment and stdio as usual, then start it with
/// [`spawn_tied`] (a plain `spawn()` would tie it to the calling thread instead).
///
/// Without `setpriv` (util-linux) the command is returned untied.
pub fn tied_command(program: impl AsRef<OsStr>) -> Command {
    tied_command_as(program.as_ref(), None, "KILL")
}

/// Starts `command` from a thread that lives as long as the test process, so a command made
/// by [`tied_command`] dies with the process rather than with the calling thread, and guards it.
/// Returns once the parent-death signal is set, so even a process exiting right after this
/// call takes the child with it.
pub fn spawn_tied(command: Command) -> Result<ChildGuard<Child>, SupportError> {
    spawn_on_keeper(command).map(ChildGuard::new)
}

/// An unprivileged user to run a program as, because PostgreSQL refuses to run as root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunAs {
    /// Numeric ids, so no name lookup happens between here and `setpriv`.
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// `None` when this process is not root; otherwise the `nobody` user.
///
/// `nobody` exists on every Debian-like system without creating anything, so parallel test
/// processes never race on `useradd`. Other programs running as `nobody` could touch the
/// servers' folders, which is acceptable for throwaway test data.
pub(crate) fn unprivileged_user_if_root() -> Option<RunAs> {
    if !rustix::process::geteuid().is_root() {
        return None;
    }
    Some(lookup_nobody().unwrap_or(RunAs {
        // The kernel's overflow ids, which `nobody`/`nogroup` have wherever they exist.
        uid: 65534,
        gid: 65534,
    }))
}

fn lookup_nobody() -> Option<RunAs> {
    let output = Command::new("getent")
        .args(["passwd", "nobody"])
        .output()
        .ok()?;
    let line = String::from_utf8(output.stdout).ok()?;
    let mut fields = line.trim().split(':').skip(2);
    let uid = fields.next()?.parse().ok()?;
    let gid = fields.next()?.parse().ok()?;
    Some(RunAs { uid, gid })
}

/// Hands ownership of `path` to `user`, if there is one.
pub(crate) fn give_to(path: &Path, user: Option<RunAs>) -> Result<(), SupportError> {
    let Some(user) = user else {
        return Ok(());
    };
    std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid)).map_err(|source| {
        SupportError::File {
            action: "handing to the unprivileged test user",
            path: path.to_path_buf(),
            source,
        }
    })
}

/// A command for `program`, run as `user` if given, and tied to this process so that it gets
/// `death_signal` (a signal name such as "INT") when the process goes away.
///
/// `setpriv` execs the program, so the child's pid is the program's own: signals sent to the
/// child reach the server, not a wrapper. Callers that need `user` must check [`setpriv`]
/// themselves; without it the program runs untied and as the current user.
pub(crate) fn tied_command_as(program: &OsStr, user: Option<RunAs>, death_signal: &str) -> Command {
    let Some(setpriv) = setpriv() else {
        return Command::new(program);
    };
    let mut command = Command::new(setpriv);
    if let Some(user) = user {
        command.args([
            format!("--reuid={}", user.uid),
            format!("--regid={}", user.gid),
            "--clear-groups".to_owned(),
        ]);
    }
    command
        .arg(format!("--pdeathsig={death_signal}"))
        .arg("--")
        .arg(program);
    command
}

/// Where `setpriv` is, if installed.
pub(crate) fn setpriv() -> Option<&'static Path> {
    static SETPRIV: OnceLock<Option<PathBuf>> = OnceLock::new();
    SETPRIV.get_or_init(|| find_on_path("setpriv")).as_deref()
}

/// The error for a root test process without `setpriv`.
pub(crate) fn missing_setpriv() -> SupportError {
    SupportError::MissingBinary {
        what: "setpriv (runs PostgreSQL as an unprivileged user when tests run as root)",
        searched: "on PATH",
        package: "util-linux",
    }
}

/// The first executable file called `name` on `PATH`.
pub(crate) fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;

    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|folder| folder.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

/// One request to the keeper thread: the command, and where to send the started child.
type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `command` on the keeper thread (see the module doc for why).
pub(crate) fn spawn_on_keeper(command: Command) -> Result<Child, SupportError> {
    static KEEPER: OnceLock<Option<mpsc::Sender<SpawnRequest>>> = OnceLock::new();

    let program = command.get_program().to_string_lossy().into_owned();
    let spawn_error = |source| SupportError::Spawn {
        program: program.clone(),
        source,
    };
    let keeper = KEEPER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("ephyra-testsupport-keeper".to_owned())
            .spawn(move || {
                for (mut command, reply) in incoming {
                    let _ = reply.send(command.spawn());
                }
            })
            .ok()
            .map(|_| requests)
    });

    let Some(keeper) = keeper else {
        // No thread could be started: spawn here, tied to this thread instead of the process.
        let mut command = command;
        return command.spawn().map_err(spawn_error);
    };
    let wrapped = setpriv().is_some_and(|setpriv| command.get_program() == setpriv);
    let (reply, answer) = mpsc::channel();
    let gone = || spawn_error(io::Error::other("the process keeper thread has stopped"));
    keeper.send((command, reply)).map_err(|_| gone())?;
    let mut child = answer.recv().map_err(|_| gone())?.map_err(spawn_error)?;
    if wrapped {
        wait_until_setpriv_is_done(&mut child);
    }
    Ok(child)
}

/// Waits until `setpriv` has exec'd the real program, and so has set the parent-death signal:
/// a test process that exited before that would leave the program running. Best effort.
fn wait_until_setpriv_is_done(child: &mut Child) {
    const GIVE_UP_AFTER: Duration = Duration::from_secs(5);

    let Some(setpriv) = setpriv() else {
        return;
    };
    let setpriv = std::fs::canonicalize(setpriv).unwrap_or_else(|_| setpriv.to_path_buf());
    let exe = PathBuf::from(format!("/proc/{}/exe", child.id()));
    let started = Instant::now();
    while started.elapsed() < GIVE_UP_AFTER {
        let exited = !matches!(child.try_wait(), Ok(None));
        // Without /proc there is nothing to watch.
        let exec_done = std::fs::read_link(&exe).map_or(true, |target| target != setpriv);
        if exited || exec_done {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tied_child_is_the_program_itself_not_a_wrapper() {
        let mut command = tied_command("sh");
        command
            .args(["-c", "echo $$"])
            .stdout(std::process::Stdio::piped());
        let child = spawn_on_keeper(command).unwrap();
        let pid = child.id();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success());
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            pid.to_string()
        );
    }

    #[test]
    fn setpriv_runs_the_program_as_the_given_user_only_when_asked() {
        assert!(setpriv().is_some(), "setpriv (util-linux) is installed");
        let command = tied_command_as(OsStr::new("id"), Some(RunAs { uid: 7, gid: 8 }), "INT");
        let args: Vec<_> = command
            .get_args()
            .map(|arg| arg.to_string_lossy())
            .collect();
        assert_eq!(
            args,
            [
                "--reuid=7",
                "--regid=8",
                "--clear-groups",
                "--pdeathsig=INT",
                "--",
                "id"
            ]
        );
        let untied_user = tied_command_as(OsStr::new("id"), None, "KILL");
        let args: Vec<_> = untied_user
            .get_args()
            .map(|arg| arg.to_string_lossy())
            .collect();
        assert_eq!(args, ["--pdeathsig=KILL", "--", "id"]);
    }
}
