//! Finds the Docker bridge's gateway address on this host, so the OTLP receivers can also
//! listen there: containers reach the host as `host.docker.internal` (`host-gateway`), which is
//! that address, while nothing outside the machine can.
//!
//! Read from procfs rather than through an ioctl so no `unsafe` or C library is needed:
//! `/proc/net/route` gives the bridge interface's network, `/proc/net/fib_trie` the host's own
//! (`/32 host LOCAL`) addresses, and the gateway is the local address inside that network.

use std::net::Ipv4Addr;

/// The interface Docker creates for its default bridge network.
pub const DOCKER_BRIDGE: &str = "docker0";

/// The host's address on `iface`, when that interface exists and has an IPv4 address.
pub fn interface_ipv4(iface: &str) -> Option<Ipv4Addr> {
    let route = std::fs::read_to_string("/proc/net/route").ok()?;
    let (net, mask) = network_of(&route, iface)?;
    let trie = std::fs::read_to_string("/proc/net/fib_trie").ok()?;
    local_addresses(&trie)
        .into_iter()
        .find(|a| u32::from(*a) & mask == net)
}

/// The (network, mask) of a directly connected route through `iface`, as host-order u32s.
fn network_of(route: &str, iface: &str) -> Option<(u32, u32)> {
    route.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 || f[0] != iface || f[2] != "00000000" {
            return None;
        }
        // procfs prints the addresses' network-order bytes as a native (little-endian) u32.
        let dest = u32::from_str_radix(f[1], 16).ok()?.swap_bytes();
        let mask = u32::from_str_radix(f[7], 16).ok()?.swap_bytes();
        (mask != 0).then_some((dest & mask, mask))
    })
}

/// Every address `/proc/net/fib_trie` marks as one of the host's own (`/32 host LOCAL`).
fn local_addresses(trie: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in trie.lines() {
        let t = line.trim_start_matches([' ', '|', '+', '-']).trim();
        if let Ok(a) = t.parse::<Ipv4Addr>() {
            last = Some(a);
        } else if t.starts_with("/32 host LOCAL") {
            if let Some(a) = last {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
        eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
        eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
        docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";

    const TRIE: &str = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n\
        \x20    +-- 172.17.0.0/16 2 0 2\n        +-- 172.17.0.0/31 1 0 0\n           |-- 172.17.0.0\n              /16 link UNICAST\n\
        \x20          |-- 172.17.0.1\n              /32 host LOCAL\n\
        \x20    +-- 192.168.0.0/24 2 0 2\n        |-- 192.168.0.7\n           /32 host LOCAL\n";

    #[test]
    fn finds_the_bridge_network() {
        let (net, mask) = network_of(ROUTE, "docker0").unwrap();
        assert_eq!(Ipv4Addr::from(net), Ipv4Addr::new(172, 17, 0, 0));
        assert_eq!(Ipv4Addr::from(mask), Ipv4Addr::new(255, 255, 0, 0));
        assert!(network_of(ROUTE, "docker1").is_none());
    }

    #[test]
    fn finds_local_addresses() {
        assert_eq!(
            local_addresses(TRIE),
            vec![Ipv4Addr::new(172, 17, 0, 1), Ipv4Addr::new(192, 168, 0, 7)]
        );
    }

    #[test]
    fn the_gateway_is_the_local_address_in_the_bridge_network() {
        let (net, mask) = network_of(ROUTE, "docker0").unwrap();
        let found = local_addresses(TRIE)
            .into_iter()
            .find(|a| u32::from(*a) & mask == net);
        assert_eq!(found, Some(Ipv4Addr::new(172, 17, 0, 1)));
    }

    #[test]
    fn garbage_is_none_not_a_panic() {
        assert!(network_of("Iface\nnonsense\n", "docker0").is_none());
        assert!(network_of("h\ndocker0 zz 00000000 1 0 0 0 zz\n", "docker0").is_none());
        assert!(local_addresses("|-- 999.1.1.1\n /32 host LOCAL\n").is_empty());
    }
}
