//! Zero-downtime upgrade: a new `flashgate run --upgrade` takes the listening sockets over
//! from the one running on the same port, through Pingora's upgrade socket.
//!
//! The steps (docs/reload-and-upgrade.md, "Upgrading without a gap"):
//!
//! 1. Every running gateway writes its process id to [`pid_file`] (one per public port).
//! 2. `flashgate run --upgrade` loads and checks its configuration, reads that file, and sends
//!    the old process SIGQUIT while it waits on [`socket`] for the listening sockets (Pingora
//!    gives the old process up to 5 s to connect, and the new one up to 5 s to be asked).
//! 3. The old process hands the sockets over, goes on serving for 5 s (Pingora's close
//!    timeout), then stops accepting, lets its requests finish and exits. Connections that
//!    arrive meanwhile wait in the kernel's accept queue of the very same socket: none is
//!    refused.
//! 4. On Redis the new process serves as soon as it has the sockets: both share the sale in
//!    Redis. On the embedded store the sale lives in the old process until it exits, so the new
//!    one opens the journal only once the old one has let it go ([`LOCK_WAIT`]), replays it and
//!    then serves: a pause of a few seconds for new connections, not a failure, and never two
//!    processes selling from one journal.
//!
//! Without the file (a gateway started by an older flashgate), send the old process SIGQUIT by
//! hand within 5 s of starting the new one.

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How long the new process waits for the journal's lock in an upgrade: the old process goes
/// on serving for Pingora's 5 s close timeout after handing the sockets over, then drains for
/// up to `grace_period_seconds` + `graceful_shutdown_timeout_seconds` (1 s + 5 s).
pub const LOCK_WAIT: Duration = Duration::from_secs(30);

/// Where the gateway on public port `port` keeps its process id.
pub fn pid_file(port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("flashgate-{port}.pid"))
}

/// The Unix socket through which the sockets of public port `port` are handed over.
pub fn socket(port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("flashgate-{port}-upgrade.sock"))
}

/// Why the old process could not be told to hand over.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// The pid file could not be written.
    #[error("{path}: cannot write the process id: {source}")]
    WritePid {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The pid file holds no process id.
    #[error("{path}: not a process id: {text:?}")]
    BadPid { path: PathBuf, text: String },
    /// The thread that signals the old process could not start.
    #[error("cannot start the thread that signals the running flashgate: {0}")]
    Thread(#[source] std::io::Error),
    /// The process in the pid file could not be signalled.
    #[error("cannot send SIGQUIT to the running flashgate (pid {pid}, from {path}): {source}")]
    Signal {
        pid: i32,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
}

/// Record this process as the gateway of `port`.
pub fn write_pid(port: u16) -> Result<(), UpgradeError> {
    let path = pid_file(port);
    std::fs::write(&path, format!("{}\n", std::process::id()))
        .map_err(|source| UpgradeError::WritePid { path, source })
}

/// The process recorded for `port`, if the file is there and names another live process.
fn running(port: u16) -> Result<Option<Pid>, UpgradeError> {
    let path = pid_file(port);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let pid: i32 = text.trim().parse().map_err(|_| UpgradeError::BadPid {
        path: path.clone(),
        text: text.clone(),
    })?;
    if pid <= 0 || pid == std::process::id() as i32 {
        return Err(UpgradeError::BadPid { path, text });
    }
    // A file left by a process that died is no error, and its number may since have gone to
    // another program: only a live flashgate is asked.
    let is_flashgate = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmdline| {
            cmdline
                .split(|&b| b == 0)
                .next()
                .is_some_and(|exe| exe.ends_with(b"flashgate"))
        })
        .unwrap_or(false);
    Ok(is_flashgate.then(|| Pid::from_raw(pid)))
}

/// Ask the gateway running on `port` to hand its sockets over, from a thread of its own so
/// that the caller can go on to wait for them (Pingora's bootstrap, which blocks). Returns
/// whether there was a process to ask; without one, the operator sends SIGQUIT by hand.
pub fn ask_old_process(port: u16) -> Result<bool, UpgradeError> {
    let Some(pid) = running(port)? else {
        return Ok(false);
    };
    let path = pid_file(port);
    tracing::info!(
        old = pid.as_raw(),
        "upgrade: asking the running flashgate to hand its listening sockets over"
    );
    std::thread::Builder::new()
        .name("flashgate upgrade".into())
        .spawn(move || {
            // Let the bootstrap start listening on the upgrade socket first; the old process
            // tries to connect for 5 s in any case.
            std::thread::sleep(Duration::from_millis(200));
            if let Err(source) = kill(pid, Signal::SIGQUIT) {
                let e = UpgradeError::Signal {
                    pid: pid.as_raw(),
                    path: path.clone(),
                    source,
                };
                tracing::error!("upgrade: {e}");
            }
        })
        .map_err(UpgradeError::Thread)?;
    Ok(true)
}
