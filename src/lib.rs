//! emag-sync keeps a seller's own database in step with their eMAG Marketplace accounts.
//!
//! The library holds everything the `emag-sync` binary runs: configuration parsing
//! ([`config`]), the sync engine ([`sync`]), and the wiring of accounts to clients
//! ([`accounts`]). The binary adds the command line on top.

pub mod accounts;
pub mod config;
pub mod sync;

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

fn host_name() -> String {
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
        Ok(pid) => std::path::Path::new(&format!("/proc/{pid}")).exists(),
        Err(_) => true,
    }
}
