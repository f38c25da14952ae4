//! Running external programs, always with a timeout.
//!
//! Another driver wrote timeouts for its commands and never applied them;
//! here there is one way to run a program and it
//! takes the timeout as a required argument. The tests below prove the timeout
//! fires and the child is gone afterwards.
//!
//! On timeout only the child is killed (SIGKILL to its pid, not to a process
//! group, which would include this plugin) and then reaped. A process blocked
//! in the kernel (uninterruptible I/O to a dead NVMe path, say) cannot die until
//! that I/O ends; after [`KILL_GRACE`] it is left to tokio, which reaps it
//! whenever it exits, and the error says so. If the caller drops the future
//! early, the child is killed too (`kill_on_drop`).
//!
//! Programs get `/dev/null` as standard input, so none can stop to ask a
//! question, and `LC_ALL=C`, so their messages are in English and stable.
//! [`run_with_input`] gives a program bytes on a pipe instead (a key for
//! `cryptsetup --key-file=-`): they are written from the caller's buffer,
//! never copied, logged or put into an error, and the pipe is closed after
//! them, so the program still cannot wait for more.

use std::ffi::OsStr;
use std::io;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::{Child, Command};

/// How long a killed child is waited for before it is left to tokio's reaper.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// Why a program could not be run to completion. A program that ran and
/// exited unsuccessfully is not an error here: its [`Output`] is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// The program is not installed (not found in `PATH`).
    #[error("`{program}` is not installed (not found in PATH){}",
        .package.map(|p| format!("; install the Debian package `{p}`")).unwrap_or_default())]
    NotFound {
        /// The program.
        program: String,
        /// The Debian package that provides it, if known.
        package: Option<&'static str>,
    },

    /// The program could not be started for another reason.
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// The program did not finish in time and was killed.
    #[error("`{program}` did not finish within {timeout:?} and was killed (pid {pid}){}",
        if *.reaped { "" } else { "; it has not exited yet, probably stuck in I/O to an unreachable device" })]
    Timeout {
        /// The program.
        program: String,
        /// The limit it was given.
        timeout: Duration,
        /// Its process id, for logs.
        pid: u32,
        /// Whether it had exited and been reaped when this error was made.
        reaped: bool,
    },

    /// Waiting for the program or reading its output failed.
    #[error("waiting for `{program}` failed: {source}")]
    Wait {
        /// The program.
        program: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

/// The Debian package providing each program this driver runs, for the
/// message when one is missing.
const PACKAGES: &[(&str, &str)] = &[
    ("blkid", "util-linux"),
    ("mkfs.ext4", "e2fsprogs"),
    ("resize2fs", "e2fsprogs"),
    ("e2fsck", "e2fsprogs"),
    ("mkfs.xfs", "xfsprogs"),
    ("xfs_growfs", "xfsprogs"),
    ("losetup", "mount"),
    ("sleep", "coreutils"),
    ("cryptsetup", "cryptsetup-bin"),
    ("truncate", "coreutils"),
];

/// The Debian package that provides `program`, if it is one this crate knows.
pub fn debian_package(program: &str) -> Option<&'static str> {
    PACKAGES
        .iter()
        .find(|(name, _)| *name == program)
        .map(|(_, package)| *package)
}

/// Runs `program` with `args`, waits at most `timeout` for it to exit and
/// close its output, and returns its status and captured output.
///
/// On timeout the child is killed and reaped, and [`ToolError::Timeout`] is
/// returned; partial output is discarded.
pub async fn run<A: AsRef<OsStr>>(
    program: &str,
    args: &[A],
    timeout: Duration,
) -> Result<Output, ToolError> {
    run_inner(program, args, None, timeout).await
}

/// [`run`], with `input` written to the program's standard input, which is
/// then closed. A program that exits without reading all of it is not an
/// error (its exit status says what happened). `input` appears in no log
/// and no error: it may be a key.
pub async fn run_with_input<A: AsRef<OsStr>>(
    program: &str,
    args: &[A],
    input: &[u8],
    timeout: Duration,
) -> Result<Output, ToolError> {
    run_inner(program, args, Some(input), timeout).await
}

async fn run_inner<A: AsRef<OsStr>>(
    program: &str,
    args: &[A],
    input: Option<&[u8]>,
    timeout: Duration,
) -> Result<Output, ToolError> {
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("LC_ALL", "C")
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => ToolError::NotFound {
                program: program.to_owned(),
                package: debian_package(program),
            },
            _ => ToolError::Spawn {
                program: program.to_owned(),
                source,
            },
        })?;
    // `id` is `Some` until the child has been waited for, which it has not.
    let pid = child.id().unwrap_or_default();
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();

    let finished = tokio::time::timeout(timeout, async {
        let (written, status, stdout, stderr) = tokio::join!(
            write_all(stdin, input.unwrap_or_default()),
            child.wait(),
            read_all(stdout),
            read_all(stderr)
        );
        written?;
        Ok::<_, io::Error>(Output {
            status: status?,
            stdout: stdout?,
            stderr: stderr?,
        })
    })
    .await;

    match finished {
        Ok(Ok(output)) => {
            tracing::debug!(
                program,
                args = ?args.iter().map(|a| a.as_ref()).collect::<Vec<_>>(),
                status = %output.status,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "tool finished"
            );
            Ok(output)
        }
        Ok(Err(source)) => Err(ToolError::Wait {
            program: program.to_owned(),
            source,
        }),
        Err(_elapsed) => {
            let reaped = kill_and_reap(&mut child).await;
            tracing::warn!(
                program,
                pid,
                ?timeout,
                reaped,
                "tool timed out and was killed"
            );
            Err(ToolError::Timeout {
                program: program.to_owned(),
                timeout,
                pid,
                reaped,
            })
        }
    }
}

/// Writes `input` into a pipe and closes it; no pipe, nothing to write. A
/// reader that went away early (EPIPE) is the program's business, told by
/// its exit status.
async fn write_all(pipe: Option<impl AsyncWrite + Unpin>, input: &[u8]) -> io::Result<()> {
    let Some(mut pipe) = pipe else {
        return Ok(());
    };
    let written = match pipe.write_all(input).await {
        Ok(()) => pipe.shutdown().await,
        Err(e) => Err(e),
    };
    drop(pipe);
    match written {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e),
        _ => Ok(()),
    }
}

/// Reads a pipe to its end; a missing pipe reads as empty.
async fn read_all(pipe: Option<impl AsyncRead + Unpin>) -> io::Result<Vec<u8>> {
    let mut buffer = Vec::new();
    if let Some(mut pipe) = pipe {
        pipe.read_to_end(&mut buffer).await?;
    }
    Ok(buffer)
}

/// Sends SIGKILL to the child alone and waits up to [`KILL_GRACE`] for it to
/// be reaped. Returns whether it was.
async fn kill_and_reap(child: &mut Child) -> bool {
    // This fails only if the child has been reaped already (it exited but kept
    // a pipe open through a descendant); `wait` then returns at once.
    let _ = child.start_kill();
    matches!(
        tokio::time::timeout(KILL_GRACE, child.wait()).await,
        Ok(Ok(_))
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Whether a process with this pid exists and is `sleep` (so that a reused
    /// pid is not mistaken for the child).
    fn sleep_process_exists(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|comm| comm.trim() == "sleep")
            .unwrap_or(false)
    }

    #[tokio::test]
    async fn output_and_status_are_captured() -> Result<(), ToolError> {
        let output = run(
            "sh",
            &["-c", "echo out; echo err >&2; exit 3"],
            Duration::from_secs(60),
        )
        .await?;
        assert_eq!(output.status.code(), Some(3));
        assert_eq!(output.stdout, b"out\n");
        assert_eq!(output.stderr, b"err\n");
        Ok(())
    }

    #[tokio::test]
    async fn stdin_is_empty_and_locale_is_c() -> Result<(), ToolError> {
        let output = run(
            "sh",
            &["-c", "cat; echo \"[$LC_ALL]\""],
            Duration::from_secs(60),
        )
        .await?;
        assert_eq!(String::from_utf8_lossy(&output.stdout), "[C]\n");
        Ok(())
    }

    #[tokio::test]
    async fn input_reaches_standard_input_and_nothing_else() -> Result<(), ToolError> {
        // The program sees exactly the bytes (a trailing newline included),
        // then end of file; its arguments and environment do not hold them.
        let output = run_with_input(
            "sh",
            &["-c", "od -An -c; echo \"[$*]\"; env | grep -c s3cr3t"],
            b"s3cr3t\n",
            Duration::from_secs(60),
        )
        .await?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("s   3   c   r   3   t  \\n"), "{stdout}");
        assert!(stdout.contains("[]\n0\n"), "{stdout}");
        // A program that does not read its input is no error of ours.
        let output = run_with_input(
            "true",
            &[] as &[&str],
            &[7u8; 1 << 20],
            Duration::from_secs(60),
        )
        .await?;
        assert!(output.status.success());
        Ok(())
    }

    #[tokio::test]
    async fn paths_are_accepted_as_arguments() -> Result<(), ToolError> {
        let args = [
            OsStr::new("-c"),
            OsStr::new("echo $0"),
            Path::new("/a b").as_os_str(),
        ];
        let output = run("sh", &args, Duration::from_secs(60)).await?;
        assert_eq!(output.stdout, b"/a b\n");
        Ok(())
    }

    #[tokio::test]
    async fn timeout_fires_and_the_child_is_killed_and_reaped() {
        let started = Instant::now();
        let result = run("sleep", &["30"], Duration::from_millis(200)).await;
        let elapsed = started.elapsed();
        let Err(ToolError::Timeout { pid, reaped, .. }) = result else {
            panic!("expected a timeout, got {result:?}");
        };
        assert!(reaped, "the killed child was not reaped");
        assert!(pid > 0);
        assert!(!sleep_process_exists(pid), "sleep (pid {pid}) still exists");
        // Generous for a loaded machine, far below the 30 s the child wanted.
        assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
        assert!(elapsed >= Duration::from_millis(200), "took {elapsed:?}");
    }

    #[tokio::test]
    async fn timeout_message_names_program_and_limit() {
        let err = run("sleep", &["30"], Duration::from_millis(50)).await.err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.starts_with("`sleep` did not finish within 50ms and was killed"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_descendant_holding_the_pipe_does_not_defeat_the_timeout() {
        // The shell exits at once, but its background child keeps stdout open.
        let started = Instant::now();
        let result = run(
            "sh",
            &["-c", "sleep 5 & exit 0"],
            Duration::from_millis(300),
        )
        .await;
        assert!(
            matches!(result, Err(ToolError::Timeout { reaped: true, .. })),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn dropping_the_future_kills_the_child() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let pid_file = dir.path().join("pid");
        let script = format!("echo $$ > {}; exec sleep 30", pid_file.display());
        let args = ["-c", script.as_str()];
        let mut running = Box::pin(run("sh", &args, Duration::from_secs(60)));
        // Wait (however long a loaded machine takes) until the child has
        // written its pid, then drop the future.
        let pid: u32 = loop {
            tokio::select! {
                result = &mut running => panic!("finished early: {result:?}"),
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
            let text = std::fs::read_to_string(&pid_file).unwrap_or_default();
            if text.ends_with('\n') {
                break text.trim().parse()?;
            }
        };
        drop(running);
        // Killed at once; reaping happens later in tokio's orphan queue, so
        // the process may linger as a zombie ("Z") for a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let alive = stat.contains("(sleep)") && !stat.contains(") Z ");
            if !alive {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "sleep (pid {pid}) still running: {stat}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_missing_program_names_its_package() {
        let err = run("mkfs.xfs-not-here", &["x"], Duration::from_secs(5))
            .await
            .err();
        assert!(
            matches!(err, Some(ToolError::NotFound { package: None, .. })),
            "{err:?}"
        );

        let err = ToolError::NotFound {
            program: "mkfs.xfs".into(),
            package: debian_package("mkfs.xfs"),
        };
        assert_eq!(
            err.to_string(),
            "`mkfs.xfs` is not installed (not found in PATH); install the Debian package `xfsprogs`"
        );
    }
}
