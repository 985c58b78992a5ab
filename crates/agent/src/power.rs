//! Power actions and Wake-on-LAN asked for by the server (docs/protocol/agent.md §5.2).
//!
//! `poweraction` runs `systemctl poweroff|reboot|suspend`; `IRONMESH_AGENT_POWER_COMMAND`
//! names another program to run with that one argument (tests observe the call that way).
//! `wakeonlan` sends a magic packet per MAC address to the UDP broadcast address, port 9;
//! `IRONMESH_AGENT_WOL_ADDRESS` (`ip:port`) sends them elsewhere (tests use loopback).

use std::net::SocketAddr;

use tokio::net::UdpSocket;
use tokio::process::Command;

/// Where magic packets go unless `IRONMESH_AGENT_WOL_ADDRESS` says otherwise.
const WOL_BROADCAST: &str = "255.255.255.255:9";

/// Each packet is sent this many times, as UDP may drop one.
const WOL_REPEATS: usize = 3;

/// The `systemctl` verb for one of MeshCentral's action types (2 off, 3 restart, 4 sleep).
pub fn verb(actiontype: u64) -> Option<&'static str> {
    match actiontype {
        2 => Some("poweroff"),
        3 => Some("reboot"),
        4 => Some("suspend"),
        _ => None,
    }
}

/// Runs the power action; the result is only logged (the server is told nothing, as with
/// MeshCentral's agent).
pub async fn perform(actiontype: u64) {
    let Some(verb) = verb(actiontype) else {
        tracing::warn!(actiontype, "unknown power action ignored");
        return;
    };
    let program = std::env::var("IRONMESH_AGENT_POWER_COMMAND")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "systemctl".into());
    tracing::info!(actiontype, %program, verb, "power action");
    match Command::new(&program).arg(verb).status().await {
        Ok(status) if status.success() => {}
        Ok(status) => tracing::warn!(%program, verb, %status, "power action failed"),
        Err(e) => tracing::warn!(%program, verb, error = %e, "power action could not start"),
    }
}

/// A MAC address written as six hex pairs separated by `:` or `-`.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(parts) {
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    Some(mac)
}

/// The Wake-on-LAN magic packet: six 0xFF bytes, then the MAC address sixteen times.
pub fn magic_packet(mac: [u8; 6]) -> [u8; 102] {
    let mut packet = [0xFFu8; 102];
    for chunk in packet[6..].chunks_exact_mut(6) {
        chunk.copy_from_slice(&mac);
    }
    packet
}

/// Sends magic packets for every valid address in `macs` (others are logged and skipped).
pub async fn wake(macs: Vec<String>) {
    let target = std::env::var("IRONMESH_AGENT_WOL_ADDRESS")
        .ok()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| WOL_BROADCAST.into());
    let target: SocketAddr = match target.parse() {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(%target, error = %e, "bad Wake-on-LAN address");
            return;
        }
    };
    let bind: SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let socket = match UdpSocket::bind(bind).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "no socket for Wake-on-LAN");
            return;
        }
    };
    if let Err(e) = socket.set_broadcast(true) {
        tracing::warn!(error = %e, "broadcast not allowed for Wake-on-LAN");
    }
    for text in macs {
        let Some(mac) = parse_mac(&text) else {
            tracing::warn!(mac = %text, "not a MAC address; no wake packet");
            continue;
        };
        let packet = magic_packet(mac);
        tracing::info!(mac = %text, %target, "sending Wake-on-LAN");
        for _ in 0..WOL_REPEATS {
            if let Err(e) = socket.send_to(&packet, target).await {
                tracing::warn!(mac = %text, error = %e, "Wake-on-LAN not sent");
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_and_packets() {
        assert_eq!(
            parse_mac("52:54:00:AB:cd:0f"),
            Some([0x52, 0x54, 0, 0xab, 0xcd, 0x0f])
        );
        assert_eq!(
            parse_mac("52-54-00-ab-cd-0f"),
            parse_mac("52:54:00:ab:cd:0f")
        );
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:0f:11",
            "5:254:00:ab:cd:0f",
            "zz:54:00:ab:cd:0f",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
        let p = magic_packet([1, 2, 3, 4, 5, 6]);
        assert_eq!(&p[..6], &[0xFF; 6]);
        assert!(p[6..].chunks(6).all(|c| c == [1, 2, 3, 4, 5, 6]));
        assert_eq!(verb(3), Some("reboot"));
        assert_eq!(verb(5), None);
    }
}
