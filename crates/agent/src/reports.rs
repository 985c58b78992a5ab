//! What the agent reports about its machine, in the shapes MeshCentral's core uses
//! (docs/protocol/agent.md §5.3): `coreinfo`, `netinfo`, `sysinfo`; and the texts of commands 3/31.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha384};

/// Architecture number of this build, as in command 3 (6 = Linux x86-64).
pub fn agent_arch_id() -> u32 {
    match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => 6,
        ("linux", "x86") => 5,
        ("linux", "aarch64") => 26,
        ("linux", "arm") => 25,
        ("macos", _) => 16,
        ("freebsd", _) => 30,
        _ => 6,
    }
}

/// Short architecture name as in command 31 (`x64`, `ia32`, `arm64`, …).
pub fn arch_name() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x64",
        "x86" => "ia32",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `PRETTY_NAME` from os-release, else the OS family.
pub fn os_description() -> String {
    for path in ["/etc/os-release", "/usr/lib/os-release"] {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Some(v) = os_release_value(&text, "PRETTY_NAME") {
                return v;
            }
        }
    }
    std::env::consts::OS.to_string()
}

fn os_release_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().trim_matches('"').trim_matches('\'').to_string())
        .filter(|v| !v.is_empty())
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into a valid buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        if let Ok(s) = std::str::from_utf8(&buf[..end]) {
            if !s.is_empty() {
                return s.to_string();
            }
        }
    }
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Text of command 31: `<OS> - <arch>`.
pub fn host_info() -> String {
    format!("{} - {}", os_description(), arch_name())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `coreinfo`: the agent's version, capabilities, OS description and privilege.
pub fn coreinfo(caps: u32) -> Value {
    json!({
        "action": "coreinfo",
        "value": format!("ironmesh-agent {}", env!("CARGO_PKG_VERSION")),
        "caps": caps,
        "osdesc": os_description(),
        "root": is_root(),
    })
}

/// `netinfo`: `netif2` maps interface names to their addresses.
pub fn netinfo() -> Value {
    json!({ "netif2": interfaces(), "action": "netinfo" })
}

fn interfaces() -> Map<String, Value> {
    let mut by_name: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (name, family, address, netmask) in addresses() {
        let mac = std::fs::read_to_string(format!("/sys/class/net/{name}/address"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "00:00:00:00:00:00".into());
        let status = std::fs::read_to_string(format!("/sys/class/net/{name}/operstate"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let kind = if name == "lo" { "loopback" } else { "ethernet" };
        let mut entry = json!({
            "address": address,
            "netmask": netmask,
            "family": family,
            "mac": mac,
            "type": kind,
            "status": if status == "unknown" && name == "lo" { "up".to_string() } else { status },
        });
        if let Ok(index) = std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex")) {
            if let Ok(i) = index.trim().parse::<u64>() {
                entry["index"] = i.into();
            }
        }
        by_name.entry(name).or_default().push(entry);
    }
    by_name
        .into_iter()
        .map(|(k, v)| (k, Value::Array(v)))
        .collect()
}

/// (interface, "IPv4"|"IPv6", address, netmask) from getifaddrs.
fn addresses() -> Vec<(String, &'static str, String, String)> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs allocates a list we walk read-only and free with freeifaddrs.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut cur = head;
        while !cur.is_null() {
            let ifa = &*cur;
            cur = ifa.ifa_next;
            if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
                continue;
            }
            let name = std::ffi::CStr::from_ptr(ifa.ifa_name)
                .to_string_lossy()
                .into_owned();
            let family = (*ifa.ifa_addr).sa_family as i32;
            let (fam, addr, mask) = match family {
                libc::AF_INET => (
                    "IPv4",
                    sockaddr_v4(ifa.ifa_addr),
                    if ifa.ifa_netmask.is_null() {
                        None
                    } else {
                        sockaddr_v4(ifa.ifa_netmask)
                    },
                ),
                libc::AF_INET6 => (
                    "IPv6",
                    sockaddr_v6(ifa.ifa_addr),
                    if ifa.ifa_netmask.is_null() {
                        None
                    } else {
                        sockaddr_v6(ifa.ifa_netmask)
                    },
                ),
                _ => continue,
            };
            if let Some(addr) = addr {
                out.push((name, fam, addr, mask.unwrap_or_default()));
            }
        }
        libc::freeifaddrs(head);
    }
    out
}

/// SAFETY: `sa` must point to a sockaddr_in.
unsafe fn sockaddr_v4(sa: *const libc::sockaddr) -> Option<String> {
    let sin = &*(sa as *const libc::sockaddr_in);
    Some(std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)).to_string())
}

/// SAFETY: `sa` must point to a sockaddr_in6.
unsafe fn sockaddr_v6(sa: *const libc::sockaddr) -> Option<String> {
    let sin6 = &*(sa as *const libc::sockaddr_in6);
    Some(std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr).to_string())
}

/// `sysinfo`: hardware facts; `hash` is SHA-384 (hex) of the rest, so the server can ask
/// "only if changed".
pub fn sysinfo() -> Value {
    let mut hardware = Map::new();
    let mut identifiers = Map::new();
    identifiers.insert("cpu_name".into(), cpu_model().into());
    identifiers.insert(
        "cpu_count".into(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .into(),
    );
    for (key, file) in [
        ("product_name", "/sys/class/dmi/id/product_name"),
        ("board_vendor", "/sys/class/dmi/id/board_vendor"),
        ("bios_version", "/sys/class/dmi/id/bios_version"),
    ] {
        if let Ok(v) = std::fs::read_to_string(file) {
            identifiers.insert(key.into(), v.trim().into());
        }
    }
    hardware.insert("identifiers".into(), Value::Object(identifiers));
    hardware.insert(
        "linux".into(),
        json!({ "os": os_description(), "kernel": kernel_release(), "memory_kb": mem_total_kb() }),
    );
    hardware.insert(
        "agentvers".into(),
        json!({ "ironmesh-agent": env!("CARGO_PKG_VERSION") }),
    );
    let mut data = Map::new();
    data.insert("hardware".into(), Value::Object(hardware));
    let hash = Sha384::digest(Value::Object(data.clone()).to_string().as_bytes());
    data.insert(
        "hash".into(),
        ironmesh_proto::ids::hex_upper(&hash).to_lowercase().into(),
    );
    json!({ "action": "sysinfo", "data": data })
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default()
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn mem_total_kb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_have_the_expected_shapes() {
        let c = coreinfo(14);
        assert_eq!(c["action"], "coreinfo");
        assert!(c["osdesc"].as_str().unwrap().len() > 1);
        let n = netinfo();
        assert!(
            n["netif2"]["lo"]
                .as_array()
                .is_some_and(|a| a.iter().any(|e| e["address"] == "127.0.0.1")),
            "{n}"
        );
        let s = sysinfo();
        assert_eq!(s["data"]["hash"].as_str().unwrap().len(), 96);
        assert!(!hostname().is_empty());
        assert!(host_info().ends_with(arch_name()));
        assert_eq!(
            os_release_value(
                "NAME=x\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
                "PRETTY_NAME"
            )
            .as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
    }
}
