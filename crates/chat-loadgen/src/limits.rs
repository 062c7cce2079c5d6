//! What limits 10,000+ clients on one machine, and the descriptor budget
//! checked before a run starts.
//!
//! - **File descriptors.** Every connection is a descriptor at each end:
//!   one per client here and one per client in the server, so two per
//!   client with `--in-process`. A server out of descriptors logs
//!   `Too many open files` and stops accepting. `loadgen` and the server
//!   binaries raise their soft `RLIMIT_NOFILE` to the hard limit at start;
//!   `loadgen` refuses to start when that is too few
//!   ([`ensure_fd_budget`]), and warns when the server's own limit is
//!   ([`warn_about_server_fds`]). Raising the hard limit takes root
//!   (`ulimit -Hn`, `prlimit`, `LimitNOFILE=` in a systemd unit,
//!   `/etc/security/limits.conf`), up to `fs.nr_open`.
//! - **Ephemeral ports.** Each connection from one client address to one
//!   server address and port needs its own local port, taken from
//!   `net.ipv4.ip_local_port_range` (default `32768 60999`: 28,232 ports).
//!   Beyond that, widen the range or spread the load over several loopback
//!   addresses (all of `127.0.0.0/8` is loopback on Linux).
//! - **The accept queue.** Connections the server has not accepted yet wait
//!   in its listen backlog, capped by `net.core.somaxconn` (4096 by default
//!   since Linux 5.4). The chat servers ask for
//!   [`chat_http::server::LISTEN_BACKLOG`]. When the queue is full the
//!   kernel drops new connection attempts (`ListenOverflows` in `nstat`) and
//!   clients retry their SYN only after a second or more, which is why
//!   connections are opened at `--connect-rate`.
//! - **The server's connection cap.** actix-web stops accepting when one of
//!   its workers holds `max_connections` connections (25,600 per worker by
//!   default in actix-server 2.9; `--workers`, one per core by default).

use anyhow::{Context, bail};

use crate::process;

/// Descriptors the server holds per connection: the socket.
pub const SERVER_FDS_PER_CONNECTION: u64 = 1;
/// Descriptors this process needs besides its clients' connections:
/// stdio, the runtime's epoll and wakers, the sender's and stats'
/// connections, and (in process) the listener and actix's workers.
pub const FD_HEADROOM: u64 = 64;

/// Raises this process's soft descriptor limit to its hard limit, prints it,
/// and fails if `clients` connections (and, `in_process`, the server's ends
/// of them) would not fit.
pub fn ensure_fd_budget(clients: u32, in_process: bool) -> anyhow::Result<()> {
    let limit = rlimit::increase_nofile_limit(u64::MAX)
        .context("cannot raise the file descriptor limit")?;
    let needed = fds_needed(clients, in_process);
    println!("file descriptor limit: {limit} (this run needs about {needed})");
    if needed <= limit {
        return Ok(());
    }
    if in_process {
        bail!(
            "{clients} clients need about {needed} file descriptors in this process (its own \
             end of each connection, and the server's), but the limit is \
             {limit}: raise the hard limit (`ulimit -Hn`, as root), or run the server as its \
             own process and use --url"
        );
    }
    bail!(
        "{clients} clients need about {needed} file descriptors, but the limit is {limit}: \
         raise the hard limit (`ulimit -Hn`, as root)"
    );
}

/// Descriptors this process needs for `clients`: one socket per client,
/// plus the server's share when it runs here, plus [`FD_HEADROOM`].
fn fds_needed(clients: u32, in_process: bool) -> u64 {
    let per_client = if in_process {
        1 + SERVER_FDS_PER_CONNECTION
    } else {
        1
    };
    u64::from(clients) * per_client + FD_HEADROOM
}

/// Warns when the server's own descriptor limit (from `/proc/PID/limits`)
/// is too low for `clients` connections, or prints it.
pub fn warn_about_server_fds(pid: u32, clients: u32) {
    let needed = u64::from(clients) * SERVER_FDS_PER_CONNECTION + FD_HEADROOM;
    match process::max_open_files(pid) {
        Some(soft) if soft < needed => eprintln!(
            "warning: the server (pid {pid}) may open {soft} files, but {clients} clients \
             need about {needed} there: restart it with a higher `ulimit -n`"
        ),
        Some(soft) => println!("server file descriptor limit: {soft}"),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In process, both ends of every connection count.
    #[test]
    fn in_process_needs_both_ends() {
        assert_eq!(fds_needed(1_000, false), 1_000 + FD_HEADROOM);
        assert_eq!(fds_needed(1_000, true), 2_000 + FD_HEADROOM);
    }
}
