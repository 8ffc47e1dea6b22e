//! The `kd` processes a sweep starts end with it. A cell's `kd` holds its run directory's lock
//! while it trains; if the sweep were stopped alone (`kill <pid>`, a supervisor's timeout) and
//! the cell kept running, the next `cargo xtask reproduce` would find that directory in use and
//! fail. Ctrl-C already reaches the whole process group; on Linux each child also asks the
//! kernel for `SIGTERM` when the sweep dies (`PR_SET_PDEATHSIG`, prctl(2)). Elsewhere a stray
//! cell is refused by its lock, with the holder's pid named, as before.
#![allow(unsafe_code)]

use std::process::Command;

/// Arranges for the process `command` starts to receive `SIGTERM` when this process dies
/// (Linux; a no-op elsewhere). A sweep that died before the child armed the signal makes the
/// start fail (`ESRCH`, "no such process") rather than leave the child running.
pub fn end_with_sweep(command: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let sweep = std::process::id() as libc::pid_t;
        // SAFETY: between fork and exec the closure only calls `prctl` and `getppid`, which
        // are async-signal-safe system calls, and allocates nothing (a raw OS error is a
        // plain value).
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The sweep may have died between fork and prctl: then no signal will come.
                if libc::getppid() != sweep {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}
