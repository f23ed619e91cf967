//! emag-sync keeps a seller's own database in step with their eMAG Marketplace accounts.
//!
//! The library holds everything the `emag-sync` binary runs: configuration parsing
//! ([`config`]), the sync engine ([`sync`]), and the wiring of accounts to clients
//! ([`accounts`]). The binary adds the command line on top.

pub mod accounts;
pub mod alerts;
pub mod analytics;
pub mod backup;
pub mod config;
pub mod demo;
pub mod pidfile;
pub mod scheduler;
pub mod status;
pub mod sync;
pub mod web;

/// Makes every file and directory this process creates from now on private to its user (umask
/// 0077): the database and its WAL, snapshots, logs, pid and lock files hold customer names,
/// phones and addresses. Called first thing by the binary; systemd's `UMask=0077` says the same.
pub fn make_new_files_private() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// This process's identity in run leases: `host:pid:nonce`. The nonce keeps two processes
/// that reuse a pid apart.
pub fn holder_id() -> String {
    use std::sync::OnceLock;
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!("{}:{}:{nonce:08x}", host_name(), std::process::id())
    })
    .clone()
}

static INSTANCE_NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Names this process in run leases instead of the host name (`EMAG_INSTANCE_NAME`). Takes
/// effect if called before the first [`holder_id`]; later calls change nothing.
pub fn set_instance_name(name: &str) {
    let _ = INSTANCE_NAME.set(name.to_owned());
}

fn host_name() -> String {
    if let Some(name) = INSTANCE_NAME.get() {
        return name.clone();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}

/// Whether the process named by a lease holder may still be running. A holder on another
/// host is assumed alive (its heartbeat going stale decides); on this host, a pid that no
/// longer exists — or exists with another start — is dead now, so a killed sync can be
/// resumed at once instead of after the lease expires.
pub fn holder_is_alive(holder: &str) -> bool {
    let mut parts = holder.split(':');
    let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
        return true;
    };
    if host != host_name() {
        return true;
    }
    if holder == holder_id() {
        return true;
    }
    match pid.parse::<u32>() {
        Ok(pid) if pid == std::process::id() => false,
        Ok(pid) => process_alive(pid),
        Err(_) => true,
    }
}

/// Whether a process with this pid runs on this machine. A zombie (exited, not yet reaped by
/// its parent) is not running: it will never write again.
pub fn process_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state is the first field after the command name, which is in parentheses and may
    // itself contain spaces or parentheses.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X" | "x"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_finished_child_is_not() {
        assert!(process_alive(std::process::id()));
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        child.wait().expect("wait");
        assert!(!process_alive(pid));
    }

    #[test]
    fn holders_of_this_process_are_alive_and_of_dead_local_pids_are_not() {
        assert!(holder_is_alive(&holder_id()));
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        child.wait().expect("wait");
        assert!(!holder_is_alive(&format!("{}:{pid}:0", host_name())));
        assert!(
            holder_is_alive(&format!("another-host:{pid}:0")),
            "remote holders expire by heartbeat"
        );
    }
}
