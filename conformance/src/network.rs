//! Real network faults: a broker in its own network namespace, behind a veth pair, and
//! `iptables` rules in that namespace that cut or thin its traffic.
//!
//! The model's `partition` and `loss` are silent holes in the network that TCP works around:
//! segments are retransmitted and a connection survives a short outage. The real thing is made
//! the same way: the broker runs in a namespace of its own (`ip netns add`), reached from the
//! test's namespace over a veth pair with a /30 of its own, and a fault is an `iptables` rule on
//! the broker's end of the pair — `DROP` for a partition (both directions, or only what the
//! broker sends for the model's one-way split), `-m statistic --mode random --probability P`
//! for loss. Nothing is refused or reset, so the clients and the broker see what they would see
//! on a real network: silence, retransmissions, their own timeouts.
//!
//! A cluster's nodes each get a namespace of their own on one bridge ([`Bridge`]) in the test's
//! namespace, a /24 of their own: the nodes reach each other and the clients (on the bridge's own
//! address) through it, so a hole in one node's link cuts that node from the other nodes and
//! from every client at once.
//!
//! This machine's kernel has no `netem` qdisc and cannot load `tc` actions, so `tc` is not used.
//! Creating namespaces needs root (CAP_NET_ADMIN); the error says so. Dropping a [`Netns`]
//! deletes the namespace, which removes the veth pair and the rules with it.

use crate::process::{check_files, HarnessError};
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub const IP: &str = "/usr/sbin/ip";
pub const IPTABLES: &str = "/usr/sbin/iptables";

/// What a network fault does to the broker's traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hole {
    /// Nothing passes either way.
    Partition,
    /// What the broker sends is dropped; what it is sent arrives (the model's one-way split).
    Muted,
    /// What the broker is sent is dropped; what it sends arrives (the clients muted).
    Deaf,
    /// Each packet, either way, is dropped with probability `per_mille / 1000`.
    Loss { per_mille: u32 },
}

impl Hole {
    /// What the hole does, for a run's report.
    pub fn describe(self) -> String {
        match self {
            Hole::Partition => "drops everything both ways".into(),
            Hole::Muted => "drops what the broker sends".into(),
            Hole::Deaf => "drops what the broker is sent".into(),
            Hole::Loss { per_mille } => format!("loses {per_mille}‰ of packets"),
        }
    }
}

/// A bridge in the test's namespace that a cluster's namespaces hang on, with the clients'
/// address on it; deleted on drop.
#[derive(Debug)]
pub struct Bridge {
    name: String,
    /// The /24's first three octets.
    net: [u8; 3],
    attached: AtomicU32,
}

impl Bridge {
    /// Creates the bridge, with the test's address `.1` of a /24 in 10.214.0.0/16.
    pub fn create() -> Result<Self, HarnessError> {
        check_files(&[(IP, "iproute2"), (IPTABLES, "iptables")])?;
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let id = (std::process::id() % 16) * 16 + NEXT.fetch_add(1, Ordering::Relaxed) % 16;
        let bridge = Bridge {
            name: format!("mqcbr{id}"),
            net: [10, 214, id as u8],
            attached: AtomicU32::new(0),
        };
        run(IP, &["link", "add", &bridge.name, "type", "bridge"]).map_err(|e| {
            HarnessError::new(format!(
                "{e} (network faults on a real cluster need root: CAP_NET_ADMIN)"
            ))
        })?;
        let [a, b, c] = bridge.net;
        run(
            IP,
            &[
                "addr",
                "add",
                &format!("{a}.{b}.{c}.1/24"),
                "dev",
                &bridge.name,
            ],
        )?;
        run(IP, &["link", "set", &bridge.name, "up"])?;
        Ok(bridge)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = run(IP, &["link", "del", &self.name]);
    }
}

/// A network namespace with a veth pair to the test's namespace.
#[derive(Debug)]
pub struct Netns {
    name: String,
    /// The broker's end, inside the namespace.
    inner: String,
    /// The broker's address: clients connect to it from outside.
    pub broker_ip: Ipv4Addr,
    /// On a cluster's bridge: the node is known to its peers by this address.
    pub bridged: bool,
    holes: Vec<Hole>,
}

impl Netns {
    /// Creates the namespace and its veth pair, both ends up, loopback up inside.
    pub fn create() -> Result<Self, HarnessError> {
        check_files(&[(IP, "iproute2"), (IPTABLES, "iptables")])?;
        static NEXT: AtomicU32 = AtomicU32::new(0);
        // A /30 per namespace in 10.213.0.0/16, distinct within the process and (by the pid)
        // unlikely to meet another test process's.
        let id = (std::process::id() % 16) * 1024 + NEXT.fetch_add(1, Ordering::Relaxed) % 1024;
        let (hi, lo) = ((id / 64) as u8, ((id % 64) * 4) as u8);
        let host_ip = Ipv4Addr::new(10, 213, hi, lo + 1);
        let broker_ip = Ipv4Addr::new(10, 213, hi, lo + 2);
        let name = format!("mqc{id}");
        let (outer, inner) = (format!("{name}h"), format!("{name}b"));
        let ns = Netns {
            name,
            inner,
            broker_ip,
            bridged: false,
            holes: Vec::new(),
        };
        run(IP, &["netns", "add", &ns.name]).map_err(|e| {
            HarnessError::new(format!(
                "{e} (network faults on a real broker need root: CAP_NET_ADMIN)"
            ))
        })?;
        run(
            IP,
            &[
                "link", "add", &outer, "type", "veth", "peer", "name", &ns.inner,
            ],
        )?;
        run(IP, &["link", "set", &ns.inner, "netns", &ns.name])?;
        run(
            IP,
            &["addr", "add", &format!("{host_ip}/30"), "dev", &outer],
        )?;
        run(IP, &["link", "set", &outer, "up"])?;
        let broker_cidr = format!("{broker_ip}/30");
        for args in [
            &["addr", "add", &broker_cidr, "dev", &ns.inner][..],
            &["link", "set", &ns.inner, "up"],
            &["link", "set", "lo", "up"],
        ] {
            ns.inside(IP, args)?;
        }
        Ok(ns)
    }

    /// Creates a namespace for one node of a cluster, its veth pair's outer end on `bridge`, its
    /// inner end the next address of the bridge's /24 (`.11`, `.12`, …).
    pub fn on_bridge(bridge: &Bridge) -> Result<Self, HarnessError> {
        let n = bridge.attached.fetch_add(1, Ordering::Relaxed);
        let [a, b, c] = bridge.net;
        let broker_ip = Ipv4Addr::new(a, b, c, 11 + n as u8);
        let name = format!("{}n{n}", bridge.name);
        let (outer, inner) = (format!("{name}h"), format!("{name}b"));
        let ns = Netns {
            name,
            inner,
            broker_ip,
            bridged: true,
            holes: Vec::new(),
        };
        run(IP, &["netns", "add", &ns.name])?;
        run(
            IP,
            &[
                "link", "add", &outer, "type", "veth", "peer", "name", &ns.inner,
            ],
        )?;
        run(IP, &["link", "set", &ns.inner, "netns", &ns.name])?;
        run(IP, &["link", "set", &outer, "master", &bridge.name])?;
        run(IP, &["link", "set", &outer, "up"])?;
        let cidr = format!("{broker_ip}/24");
        for args in [
            &["addr", "add", &cidr, "dev", &ns.inner][..],
            &["link", "set", &ns.inner, "up"],
            &["link", "set", "lo", "up"],
        ] {
            ns.inside(IP, args)?;
        }
        Ok(ns)
    }

    /// A command that runs `program` inside the namespace (`ip netns exec` execs it, so its
    /// pid is the program's).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(IP);
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    fn inside(&self, program: &str, args: &[&str]) -> Result<(), HarnessError> {
        let mut all = vec!["netns", "exec", &self.name, program];
        all.extend_from_slice(args);
        run(IP, &all)
    }

    /// Opens `hole` in the broker's network.
    pub fn open(&mut self, hole: Hole) -> Result<(), HarnessError> {
        self.iptables("-A", hole)?;
        self.holes.push(hole);
        Ok(())
    }

    /// Closes `hole` again (a hole not open is no error).
    pub fn close(&mut self, hole: Hole) -> Result<(), HarnessError> {
        let Some(i) = self.holes.iter().position(|h| *h == hole) else {
            return Ok(());
        };
        self.holes.remove(i);
        self.iptables("-D", hole)
    }

    /// Adds (`-A`) or deletes (`-D`) the rules that make `hole`.
    fn iptables(&self, op: &str, hole: Hole) -> Result<(), HarnessError> {
        for rule in rules(&self.inner, hole) {
            let args: Vec<&str> = std::iter::once(op)
                .chain(rule.iter().map(String::as_str))
                .collect();
            self.inside(IPTABLES, &args)?;
        }
        Ok(())
    }

    /// Closes every hole.
    pub fn heal(&mut self) -> Result<(), HarnessError> {
        while let Some(&hole) = self.holes.last() {
            self.close(hole)?;
        }
        Ok(())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(IP, &["netns", "del", &self.name]);
    }
}

/// The `iptables` rules that make `hole` on the interface `inner`, as the arguments after
/// `-A` / `-D`.
fn rules(inner: &str, hole: Hole) -> Vec<Vec<String>> {
    let drop = |chain: &str, dir: &str| -> Vec<String> {
        let mut r: Vec<String> = [chain, dir, inner].map(String::from).to_vec();
        if let Hole::Loss { per_mille } = hole {
            let p = f64::from(per_mille.min(1000)) / 1000.0;
            r.extend(["-m", "statistic", "--mode", "random", "--probability"].map(String::from));
            r.push(p.to_string());
        }
        r.extend(["-j", "DROP"].map(String::from));
        r
    };
    match hole {
        Hole::Partition | Hole::Loss { .. } => vec![drop("INPUT", "-i"), drop("OUTPUT", "-o")],
        Hole::Muted => vec![drop("OUTPUT", "-o")],
        Hole::Deaf => vec![drop("INPUT", "-i")],
    }
}

fn run(program: &str, args: &[&str]) -> Result<(), HarnessError> {
    crate::process::run(Command::new(program).args(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_drops_both_ways_a_muted_broker_only_what_it_sends() {
        let flat = |h| {
            rules("mqc7b", h)
                .into_iter()
                .map(|r| r.join(" "))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            flat(Hole::Partition),
            ["INPUT -i mqc7b -j DROP", "OUTPUT -o mqc7b -j DROP"]
        );
        assert_eq!(flat(Hole::Muted), ["OUTPUT -o mqc7b -j DROP"]);
        assert_eq!(flat(Hole::Deaf), ["INPUT -i mqc7b -j DROP"]);
        assert_eq!(
            flat(Hole::Loss { per_mille: 250 }),
            [
                "INPUT -i mqc7b -m statistic --mode random --probability 0.25 -j DROP",
                "OUTPUT -o mqc7b -m statistic --mode random --probability 0.25 -j DROP"
            ]
        );
    }
}
